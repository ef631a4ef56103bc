"""The IPOPT example (examples/ipopt_optimal_control.py) solves its sparse NLP with
fastad's exact sparse constraint Jacobian and Lagrangian Hessian (issue 14 item 4).
cyipopt is optional: CI installs it on the main Python version (.ci/run)."""
import pathlib
import sys

import numpy as np
import pytest

import fastad as fd

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import ipopt_optimal_control as ex  # noqa: E402

pytest.importorskip("scipy.sparse")


def test_derivatives_handed_to_ipopt_are_exact():
    prob = ex.VanDerPol(15)
    nlp = ex.FastadNLP(prob)
    rng = np.random.default_rng(3)
    z, lam, sigma = rng.uniform(-1, 1, prob.n), rng.normal(size=prob.m), 0.7
    r, c = nlp.jacobianstructure()
    J = np.zeros((prob.m, prob.n))
    J[r, c] = nlp.jacobian(z)
    np.testing.assert_allclose(J, fd.jacobian(prob.constraints)(z), rtol=1e-13,
                               atol=1e-15)
    r, c = nlp.hessianstructure()
    assert np.all(r >= c)
    H = np.zeros((prob.n, prob.n))
    H[r, c] = nlp.hessian(z, lam, sigma)
    H = H + np.tril(H, -1).T
    Hd = fd.hessian(lambda v: prob.lagrangian(v, lam, sigma))(z)
    np.testing.assert_allclose(H, Hd, rtol=1e-12, atol=1e-14)


def test_ipopt_solves_the_optimal_control_problem():
    pytest.importorskip("cyipopt")
    r = ex.solve(T=150)
    assert r["status"] == 0, r["status"]
    assert 0 < r["iterations"] < 100        # Newton-like: exact second derivatives
    assert r["constraint_violation"] < 1e-7
    u = r["z"][2 * 150 + 2:]
    assert np.all(np.abs(u) <= 1.0 + 1e-7)
    # the same problem on a finer grid has (nearly) the same optimal cost
    r2 = ex.solve(T=300)
    assert r2["status"] == 0
    assert abs(r2["objective"] - r["objective"]) < 1e-2 * abs(r["objective"])
