"""fd.minimize: SciPy's optimisers driven by fastad's exact derivatives."""
import builtins
import sys

import numpy as np
import pytest

import fastad as fd

scipy_optimize = pytest.importorskip("scipy.optimize")


def rosen(x):
    return fd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def counted(f):
    def g(*a):
        g.calls += 1
        return f(*a)
    g.calls = 0
    return g


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP"])
def test_rosenbrock_gradient_methods(method):
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    options = {"maxiter": 5000} if method in ("CG", "SLSQP") else {}
    if method == "TNC":
        options = {"maxfun": 5000}
    res = fd.minimize(rosen, x0, method=method, options=options, tol=1e-12)
    np.testing.assert_allclose(res.x, np.ones(4), atol=2e-4)
    assert res.fun < 1e-7
    # exact gradients: the optimiser never needed finite-difference evaluations
    assert res.nfev < 2000


def test_gradient_is_exact_not_finite_difference():
    # fd.minimize must hand SciPy the exact gradient: count calls of f.  With SciPy's
    # own finite differences, L-BFGS-B calls f (n + 1) times per gradient.
    f = counted(rosen)
    res = fd.minimize(f, np.zeros(20), method="L-BFGS-B")
    assert res.success
    assert f.calls == res.nfev
    np.testing.assert_allclose(res.x, np.ones(20), atol=1e-4)


def test_gradient_free_method_gets_no_jac():
    res = fd.minimize(lambda x: (x - 2.0) ** 2, 0.0, method="Nelder-Mead")
    assert res.params == pytest.approx(2.0, abs=1e-4)
    assert isinstance(res.params, float)


def test_pytree_x0():
    target = {"a": 3.0, "w": np.arange(6.0).reshape(2, 3)}

    def f(p):
        return (p["a"] - target["a"]) ** 2 + fd.sum((p["w"] - target["w"]) ** 2) \
            + p["a"] * fd.sum(p["w"]) * 0.0

    res = fd.minimize(f, {"a": 0.0, "w": np.zeros((2, 3))}, method="BFGS")
    assert res.x.shape == (7,)
    assert isinstance(res.params["a"], float)
    assert res.params["w"].shape == (2, 3)
    np.testing.assert_allclose(res.params["w"], target["w"], atol=1e-6)
    assert res.params["a"] == pytest.approx(3.0, abs=1e-6)


def test_args_are_passed_through():
    res = fd.minimize(lambda x, c: fd.sum((x - c) ** 2), np.zeros(3),
                      args=(np.array([1.0, 2.0, 3.0]),))
    np.testing.assert_allclose(res.x, [1.0, 2.0, 3.0], atol=1e-6)


def test_bounds():
    res = fd.minimize(rosen, np.zeros(3), method="L-BFGS-B",
                      bounds=[(-2.0, 0.5), (-2.0, 2.0), (-2.0, 2.0)])
    assert res.x[0] == pytest.approx(0.5, abs=1e-7)


def sigmoid_data(seed=0, n=200, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w_true = np.array([1.5, -2.0, 0.7])
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w_true + 0.3)))).astype(float)
    return X, y


def logistic_nll(p, X, y):
    z = fd.matmul(X, p["w"]) + p["b"]
    # log(1 + e^z) - y z, summed; softplus is the stable log(1 + e^z)
    return fd.sum(fd.softplus(z) - z * y) / len(y) + 0.01 * fd.sum(p["w"] * p["w"])


def test_logistic_regression_reaches_optimum():
    X, y = sigmoid_data()
    res = fd.minimize(logistic_nll, {"w": np.zeros(3), "b": 0.0}, args=(X, y), tol=1e-12)
    assert res.success
    w, b = res.params["w"], res.params["b"]
    # Optimality: the gradient of the penalised NLL vanishes (written out by hand).
    p = 1 / (1 + np.exp(-(X @ w + b)))
    grad_w = X.T @ (p - y) / len(y) + 0.02 * w
    grad_b = np.mean(p - y)
    assert np.max(np.abs(grad_w)) < 1e-6 and abs(grad_b) < 1e-6
    # and SciPy with its own finite differences agrees on the minimiser
    # (res.x is the flat vector in sorted key order: b first, then w)
    flat = lambda v: logistic_nll({"b": v[0], "w": v[1:]}, X, y)    # noqa: E731
    ref = scipy_optimize.minimize(flat, np.zeros(4), method="BFGS", tol=1e-10)
    np.testing.assert_array_equal(res.x, np.r_[b, w])
    np.testing.assert_allclose(res.x, ref.x, atol=1e-4)


def test_rejects_user_derivatives_and_bad_arguments():
    with pytest.raises(TypeError, match="jac"):
        fd.minimize(rosen, np.zeros(2), jac=lambda x: x)
    with pytest.raises(TypeError, match="callable"):
        fd.minimize(3.0, np.zeros(2))
    with pytest.raises(TypeError, match="x0"):
        fd.minimize(rosen, [None, 1.0])
    with pytest.raises(TypeError, match="method"):
        fd.minimize(rosen, np.zeros(2), method=3)
    with pytest.raises(ValueError, match="scalar"):
        fd.minimize(lambda x: x * 2.0, np.zeros(2))


def test_without_scipy_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_scipy(name, *a, **k):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("No module named 'scipy'")
        return real_import(name, *a, **k)

    for mod in list(sys.modules):
        if mod == "scipy" or mod.startswith("scipy."):
            monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(ImportError, match=r"pip install fastad\[scipy\]"):
        fd.minimize(rosen, np.zeros(2))


# ----- second-order methods (exact Hessian-vector products / Hessians) ----------------

# Rosenbrock in 4-D also has a local minimum near (-0.78, 0.61, 0.38, 0.15); some
# methods fall into it from (-1.2, 1, -0.5, 0.8), so those start from SciPy's
# documentation point instead.
@pytest.mark.parametrize("method, x0", [
    ("Newton-CG", [-1.2, 1.0, -0.5, 0.8]), ("trust-ncg", [-1.2, 1.0, -0.5, 0.8]),
    ("trust-krylov", [-1.2, 1.0, -0.5, 0.8]), ("trust-exact", [1.3, 0.7, 0.8, 1.9]),
    ("trust-constr", [1.3, 0.7, 0.8, 1.9])])
def test_second_order_methods_on_rosenbrock(method, x0):
    res = fd.minimize(rosen, np.array(x0), method=method, tol=1e-10)
    np.testing.assert_allclose(res.x, np.ones(4), atol=1e-5)


def test_dogleg_on_a_strictly_convex_function():
    # dogleg needs a positive definite Hessian everywhere on its path
    c = np.array([0.5, -1.0, 2.0])

    def f(x):
        return fd.logsumexp(x) + 0.5 * fd.sum((x - c) ** 2)

    res = fd.minimize(f, np.zeros(3), method="dogleg", tol=1e-9)
    g = fd.grad(f)(res.x)
    assert res.success and np.max(np.abs(g)) < 1e-9


def test_derivatives_given_to_scipy_are_exact(monkeypatch):
    # Capture what fd.minimize hands to scipy.optimize.minimize and check the
    # gradient and the Hessian-vector product against closed forms.
    A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    b = np.array([1.0, 2.0, 3.0])
    seen = {}

    def spy(fun, x0, **kw):
        seen.update(kw, fun=fun)
        return scipy_optimize.OptimizeResult(x=x0)

    monkeypatch.setattr(scipy_optimize, "minimize", spy)
    for trace in (False, True):
        seen.clear()
        fd.minimize(lambda x: 0.5 * fd.sum(x * fd.matmul(A, x)) - fd.sum(x * b),
                    np.zeros(3), method="Newton-CG", trace=trace)
        assert seen["jac"] is True
        x, p = np.array([0.3, -1.0, 2.0]), np.array([1.0, 0.5, -2.0])
        value, g = seen["fun"](x)
        assert value == pytest.approx(0.5 * x @ A @ x - b @ x, rel=1e-14)
        np.testing.assert_allclose(g, A @ x - b, rtol=1e-14)
        np.testing.assert_allclose(seen["hessp"](x, p), A @ p, rtol=1e-14)


def test_second_order_with_pytree_x0():
    def f(p):
        return fd.sum((p["w"] - 2.0) ** 4) + (p["c"] + 1.0) ** 2 + p["c"] * fd.sum(p["w"]) * 0.1

    res = fd.minimize(f, {"w": np.zeros((2, 2)), "c": 0.0}, method="trust-ncg", tol=1e-12)
    g = fd.grad(f)(res.params)
    assert np.max(np.abs(g["w"])) < 1e-6 and abs(g["c"]) < 1e-6


# ----- trace=True: the function is recorded once and replayed ------------------------

@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG", "trust-krylov"])
def test_trace_same_answer_as_untraced(method):
    x0 = np.linspace(-1.0, 0.5, 8)
    f = counted(rosen)
    traced = fd.minimize(f, x0, method=method, trace=True, tol=1e-10)
    calls_traced = f.calls
    plain = fd.minimize(rosen, x0, method=method, tol=1e-10)
    np.testing.assert_allclose(traced.x, np.ones(8), atol=1e-5)
    # replay is exact, so the optimiser takes the same path
    np.testing.assert_array_equal(traced.x, plain.x)
    assert traced.nfev == plain.nfev
    # f ran in Python only to record it (no control flow, so never re-recorded)
    assert calls_traced == 1


def test_trace_retraces_when_a_branch_flips():
    # abs-like branch in Python: the trace must re-record when x crosses 0
    def f(x):
        total = 0.0
        for i in range(len(x)):
            xi = x[i]
            total = total + ((xi - 1.0) if xi > 1.0 else (1.0 - xi)) ** 2 + 0.1 * xi * xi
        return total

    res = fd.minimize(f, np.array([3.0, -2.0]), method="L-BFGS-B", trace=True, tol=1e-12)
    np.testing.assert_allclose(res.x, [1.0 / 1.1, 1.0 / 1.1], atol=1e-6)


def test_trace_with_dynamic_parameters_and_pytree():
    X, y = sigmoid_data(seed=3)
    plain = fd.minimize(logistic_nll, {"w": np.zeros(3), "b": 0.0}, args=(X, y), tol=1e-12)
    traced = fd.minimize(logistic_nll, {"w": np.zeros(3), "b": 0.0}, args=(X, y),
                         trace=True, tol=1e-12)
    np.testing.assert_allclose(traced.x, plain.x, rtol=1e-12, atol=1e-14)
    assert isinstance(traced.params["b"], float)
