"""examples/bayes_logistic.py: the tape's gradient and Hessian of the log posterior
are the textbook ones, the MAP is SciPy's (analytic-gradient) MAP, the HMC draws
agree with the Laplace approximation, and the script writes its plot."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastad as fd

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bayes_logistic.py"


def load():
    spec = importlib.util.spec_from_file_location("example_bayes_logistic", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bayes = load()

WEIGHTS = [np.zeros(4), bayes.W_TRUE, np.array([0.3, -1.2, 0.7, 2.0]),
           np.array([4.0, -6.0, 5.0, -3.0])]     # the last: |X w| large, p near 0 or 1


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def rel_err(got, want):
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("n", [7, 200])
def test_gradient_is_the_analytic_gradient(w, n):
    X, y = bayes.make_data(n, seed=1)
    g = fd.grad(bayes.log_posterior)(w, X, y)
    want = bayes.log_posterior_grad_analytic(w, X, y)
    assert rel_err(g, want) < 1e-10


@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("n", [7, 200])
def test_hessian_is_the_analytic_hessian(w, n):
    X, y = bayes.make_data(n, seed=1)
    H = fd.hessian(bayes.log_posterior)(w, X, y)
    want = bayes.log_posterior_hessian_analytic(w, X, y)
    assert H.shape == (4, 4)
    assert rel_err(H, want) < 1e-10
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(want).max())


def test_value_is_the_bernoulli_logpmf_form_and_scipy():
    # log_expit form == the literal bernoulli.logpmf(y, expit(z)) form == scipy.stats
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    X, y = bayes.make_data(50, seed=2)
    for w in WEIGHTS[:3]:
        want = (np.sum(stats.bernoulli.logpmf(y, special.expit(X @ w)))
                + np.sum(stats.norm.logpdf(w, 0.0, bayes.PRIOR_SD)))
        assert bayes.log_posterior(w, X, y) == pytest.approx(want, rel=1e-12)
        assert bayes.log_posterior_bernoulli(w, X, y) == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(fd.grad(bayes.log_posterior_bernoulli)(w, X, y),
                                   fd.grad(bayes.log_posterior)(w, X, y), rtol=1e-9)


def test_analytic_gradient_is_a_derivative():
    # The hand-derived reference is itself checked, by central differences.
    X, y = bayes.make_data(30, seed=3)
    w, h = np.array([0.2, -0.3, 0.8, -1.1]), 1e-5
    g = bayes.log_posterior_grad_analytic(w, X, y)
    H = bayes.log_posterior_hessian_analytic(w, X, y)
    for j in range(4):
        e = np.zeros(4)
        e[j] = h
        fdiff = (bayes.log_posterior(w + e, X, y) - bayes.log_posterior(w - e, X, y)) / (2 * h)
        assert g[j] == pytest.approx(fdiff, rel=1e-6, abs=1e-8)
        gdiff = (bayes.log_posterior_grad_analytic(w + e, X, y)
                 - bayes.log_posterior_grad_analytic(w - e, X, y)) / (2 * h)
        np.testing.assert_allclose(H[:, j], gdiff, rtol=1e-6, atol=1e-8)


def test_map_matches_scipy():
    pytest.importorskip("scipy")
    X, y = bayes.make_data(200, seed=0)
    res = bayes.fit_map(X, y)
    assert res.success
    assert np.linalg.norm(fd.grad(bayes.log_posterior)(res.x, X, y)) < 1e-7
    ref = bayes.fit_map_scipy(X, y)
    # (older SciPy's BFGS may stop with "precision loss" at its gtol and report no
    # success; its point is what is compared)
    assert ref.success or "precision loss" in ref.message
    np.testing.assert_allclose(res.x, ref.x, atol=1e-7)
    assert res.fun == pytest.approx(ref.fun, rel=1e-12)
    # the Laplace covariance is symmetric positive definite: a maximum, not a saddle
    cov = bayes.laplace(res.x, X, y)
    np.testing.assert_allclose(cov, cov.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_hmc_agrees_with_laplace():
    pytest.importorskip("scipy")
    X, y = bayes.make_data(200, seed=0)
    w_map = bayes.fit_map(X, y).x
    cov = bayes.laplace(w_map, X, y)
    sd = np.sqrt(np.diag(cov))
    draws, rate, n_grad = bayes.hmc(X, y, w_map, cov, n_samples=400, n_warmup=50)
    assert draws.shape == (400, 4) and n_grad == 1 + 450 * 4
    assert 0.7 < rate <= 1.0
    # posterior means within a few Laplace sds of the MAP (n = 200: nearly Gaussian)
    assert np.all(np.abs(draws.mean(axis=0) - w_map) < 3 * sd)
    assert np.all((0.7 * sd < draws.std(axis=0)) & (draws.std(axis=0) < 1.4 * sd))
    # seeded: the same draws again
    again, _, _ = bayes.hmc(X, y, w_map, cov, n_samples=400, n_warmup=50)
    np.testing.assert_array_equal(draws, again)


def test_hmc_leaves_a_gaussian_invariant():
    # With no data the posterior is the N(0, 2.5^2 I) prior, and the Laplace
    # covariance is exact: the draws have its mean and sd.
    X, y = np.zeros((0, 4)), np.zeros(0)
    cov = np.linalg.inv(-bayes.log_posterior_hessian_analytic(np.zeros(4), X, y))
    np.testing.assert_allclose(cov, bayes.PRIOR_SD ** 2 * np.eye(4), rtol=1e-14)
    draws, rate, _ = bayes.hmc(X, y, np.zeros(4), cov, n_samples=400, n_warmup=20)
    assert rate > 0.9
    assert np.all(np.abs(draws.mean(axis=0)) < 4 * bayes.PRIOR_SD / np.sqrt(400))
    assert np.all(np.abs(draws.std(axis=0) / bayes.PRIOR_SD - 1) < 0.2)


def test_script_writes_png(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    out = tmp_path / "post.png"
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(out), "--samples", "300"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    for word in ("MAP", "Laplace sd", "HMC mean", "HMC sd", "intercept", "wrote"):
        assert word in proc.stdout
    assert out.stat().st_size > 0 and is_png(out)
    assert [p.name for p in tmp_path.iterdir()] == ["post.png"]   # nothing else written


def test_main_in_process(tmp_path):
    pytest.importorskip("scipy")
    out = tmp_path / "none.png"
    result = bayes.main(["", "--n", "120", "--seed", "4", "--samples", "200", "--quiet"])
    assert not out.exists() and not list(tmp_path.iterdir())     # '' skips the plot
    assert np.linalg.norm(result["grad"]) < 1e-7
    np.testing.assert_allclose(result["w_map"], result["scipy"].x, atol=1e-6)
    assert result["draws"].shape == (200, 4)
