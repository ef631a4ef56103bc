"""examples/gp.py: the tape's NLML gradient is the textbook one, the fit converges
to SciPy's (analytic-gradient) fit, and the script writes its plot."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastad as fd

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gp.py"


def load():
    spec = importlib.util.spec_from_file_location("example_gp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gp = load()


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("theta", [gp.THETA0, np.array([0.3, -0.4, -2.0]),
                                   np.array([-0.7, 1.2, -4.0]), np.array([1.5, 0.0, 0.5])])
@pytest.mark.parametrize("n", [5, 40])
def test_gradient_is_the_analytic_gp_gradient(theta, n):
    x, y = gp.make_data(n, seed=1)
    value, grad = fd.value_and_grad(gp.nlml)(theta, x, y)
    want_value, want_grad = gp.nlml_grad_analytic(theta, x, y)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-10 * np.abs(want_grad).max())
    assert gp.nlml(theta, x, y) == pytest.approx(want_value, rel=1e-12)   # plain arrays


def test_analytic_gradient_is_a_derivative():
    # The hand-derived reference is itself checked, by central differences.
    x, y = gp.make_data(20, seed=2)
    theta, h = np.array([0.2, -0.3, -1.5]), 1e-5
    _, g = gp.nlml_grad_analytic(theta, x, y)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fdiff = (gp.nlml(theta + e, x, y) - gp.nlml(theta - e, x, y)) / (2 * h)
        assert g[j] == pytest.approx(fdiff, rel=1e-6, abs=1e-8)


def test_fit_converges_and_matches_scipy():
    pytest.importorskip("scipy")
    x, y = gp.make_data(40, seed=0)
    res = gp.fit(x, y)
    assert res.success
    _, g = fd.value_and_grad(gp.nlml)(res.x, x, y)
    assert np.linalg.norm(g) < 1e-5                         # a stationary point
    assert gp.nlml(res.x, x, y) < gp.nlml(gp.THETA0, x, y) - 1.0
    ref = gp.fit_scipy(x, y)
    assert ref.success
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)
    assert res.fun == pytest.approx(ref.fun, rel=1e-10)
    # the data were made with noise sd 0.2: the fitted noise variance is near 0.04
    assert 0.01 < np.exp(res.x[2]) < 0.1


def test_predict_interpolates_with_small_noise():
    x, y = gp.make_data(15, seed=3)
    theta = np.array([np.log(0.2), 0.0, np.log(1e-8)])   # short lengthscale: well posed
    mean, var = gp.predict(theta, x, y, x)
    np.testing.assert_allclose(mean, y, atol=1e-5)
    assert np.all(var < 1e-6)
    far_mean, far_var = gp.predict(theta, x, y, np.array([100.0]))
    assert abs(far_mean[0]) < 1e-12 and far_var[0] == pytest.approx(1.0)   # the prior


def test_script_writes_png(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    out = tmp_path / "gp.png"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(out), "--n", "25"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fitted" in proc.stdout and "NLML" in proc.stdout and "wrote" in proc.stdout
    assert out.stat().st_size > 0 and is_png(out)
    assert [p.name for p in tmp_path.iterdir()] == ["gp.png"]   # nothing else written


def test_main_in_process(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    out = tmp_path / "fit.png"
    result = gp.main([str(out), "--n", "30", "--seed", "4", "--quiet"])
    assert np.linalg.norm(result["grad"]) < 1e-5
    assert out.stat().st_size > 0 and is_png(out)
    if "scipy" in result:
        np.testing.assert_allclose(result["theta"], result["scipy"].x, atol=1e-5)
