"""The factorisations numpy.linalg's rules keep and reuse (fastad._prims_linalg):
slogdet, det and solve factor their matrix once per record -- a Cholesky when it
is exactly symmetric and positive definite, else an LU -- and the gradient, the
tangents and the second-order rule reuse it; cholesky's rules are sandwiches with
the factor (LAPACK's sygst with SciPy), no inverses.  Each path is checked
against closed forms, central differences and differences of gradients, with
SciPy's LAPACK and with the NumPy fallback (no SciPy), on symmetric positive
definite, symmetric indefinite and nonsymmetric matrices, negative determinants
and stacks."""
import numpy as np
import pytest

import fastad as fd
import fastad._prims_linalg as pl
from fastad._registry import REGISTRY

from _numdiff import num_grad

RNG = np.random.default_rng(2026)


def _matrix(kind, n, rng=RNG):
    m = rng.normal(size=(n, n))
    if kind == "spd":
        return m @ m.T + n * np.eye(n)
    if kind == "sym_indef":                  # symmetric, eigenvalues of both signs
        return m + m.T + np.diag(np.r_[-3.0, 3.0 * np.ones(n - 1)])
    if kind == "nonsym":
        return m + 3.0 * np.eye(n)
    if kind == "negdet":                     # nonsymmetric, det < 0
        a = m + 3.0 * np.eye(n)
        a[0] *= -1.0
        return a
    raise AssertionError(kind)


KINDS = ("spd", "sym_indef", "nonsym", "negdet")


@pytest.fixture(params=["scipy", "numpy"])
def backend(request, monkeypatch):
    """Every test twice: SciPy's LAPACK, and the NumPy fallback without it."""
    if request.param == "scipy":
        pytest.importorskip("scipy.linalg")
    else:
        monkeypatch.setattr(pl, "_lapack_blas", [None])
        monkeypatch.setattr(pl, "_trsm", [None])
    return request.param


def _hvp_vs_gradient_differences(f, A, v, rtol=1e-5, atol=1e-7, h=1e-6):
    hv = np.asarray(fd.hvp(f)(A, v))
    hn = (fd.grad(f)(A + h * v) - fd.grad(f)(A - h * v)) / (2 * h)
    np.testing.assert_allclose(hv, hn, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------
# slogdet and det

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [3, 8, 40])
def test_slogdet_and_det_closed_forms(kind, n, backend):
    A = _matrix(kind, n)
    sign_ref, logabs_ref = np.linalg.slogdet(A)
    seen = {}

    def logabsdet(a):
        sign, la = np.linalg.slogdet(a)
        seen["sign"] = sign
        return la
    val, g = fd.value_and_grad(logabsdet)(A)
    assert seen["sign"] == sign_ref
    assert type(seen["sign"]) is type(sign_ref)
    assert val == pytest.approx(logabs_ref, rel=1e-12, abs=1e-12)
    Ainv_t = np.linalg.inv(A).T
    np.testing.assert_allclose(g, Ainv_t, rtol=1e-9, atol=1e-12)   # d log|det A| = A^-T
    d, gd = fd.value_and_grad(np.linalg.det)(A)
    assert d == pytest.approx(np.linalg.det(A), rel=1e-9)
    assert np.sign(d) == sign_ref
    np.testing.assert_allclose(gd, np.linalg.det(A) * Ainv_t, rtol=1e-8,
                               atol=1e-12 * abs(d))


@pytest.mark.parametrize("kind", KINDS)
def test_slogdet_and_det_against_differences_and_hvp(kind, backend):
    n = 6                                    # 36 elements: one record
    A = _matrix(kind, n)
    W = RNG.normal(size=(n, n))
    for f in (lambda a: np.linalg.slogdet(a)[1] * 1.5 + np.sum(a * W),
              lambda a: np.linalg.det(a) / abs(np.linalg.det(A))):
        np.testing.assert_allclose(fd.grad(f)(A), num_grad(f, A), rtol=1e-6, atol=1e-7)
        _hvp_vs_gradient_differences(f, A, RNG.normal(size=(n, n)))
    # the Hessian (every direction at once, the block sweeps) against the hvp
    f = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
    H = np.asarray(fd.hessian(f)(A)).reshape(n * n, n * n)
    v = RNG.normal(size=(n, n))
    np.testing.assert_allclose(H @ v.ravel(), np.asarray(fd.hvp(f)(A, v)).ravel(),
                               rtol=1e-9, atol=1e-10)
    # closed form: d(A^-T) along V is -A^-T V^T A^-T
    Ai_t = np.linalg.inv(A).T
    np.testing.assert_allclose(np.asarray(fd.hvp(f)(A, v)), -(Ai_t @ v.T @ Ai_t),
                               rtol=1e-9, atol=1e-11)


def test_slogdet_keeps_one_factorisation_for_its_gradient():
    pytest.importorskip("scipy.linalg")
    prim = REGISTRY["logabsdet"]
    _, res = prim.forward([_matrix("spd", 30)], {})
    assert "chol" in res and "lu" not in res
    for kind in ("sym_indef", "nonsym", "negdet"):
        _, res = prim.forward([_matrix(kind, 30)], {})
        assert "lu" in res and "chol" not in res, kind


@pytest.mark.parametrize("mixed", [False, True])
def test_slogdet_of_stacks(mixed, backend):
    # a stack of SPD matrices takes the Cholesky path as a whole; one indefinite
    # matrix in it sends the stack to the LU path
    A = np.stack([_matrix("spd", 7) for _ in range(3)])
    if mixed:
        A[1] = _matrix("sym_indef", 7)
    sign, _ = np.linalg.slogdet(A)
    seen = {}

    def f(a):
        s, la = np.linalg.slogdet(a)
        seen["sign"] = s
        return np.sum(la * np.array([1.0, -2.0, 0.5]))
    val, g = fd.value_and_grad(f)(A)
    np.testing.assert_array_equal(seen["sign"], sign)
    assert val == pytest.approx(f(A), rel=1e-12)
    w = np.array([1.0, -2.0, 0.5])[:, None, None]
    want = np.swapaxes(np.linalg.inv(A), -1, -2) * w
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-13)
    _hvp_vs_gradient_differences(f, A, RNG.normal(size=A.shape))


def test_slogdet_singular_and_nan(backend):
    # NumPy's values (sign 0 and -inf; NaN with sign 1), and a gradient that
    # cannot exist says so, naming the function
    S = np.diag([1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 6.0])
    with fd.Tape() as t:
        sign, la = np.linalg.slogdet(t.variable(S))
    assert (sign, la.value) == tuple(np.linalg.slogdet(S))
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.slogdet"):
        fd.grad(lambda a: np.linalg.slogdet(a)[1])(S)
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.det"):
        fd.grad(np.linalg.det)(S)
    N = np.full((6, 6), np.nan)
    with np.errstate(invalid="ignore"), fd.Tape() as t:
        sign, la = np.linalg.slogdet(t.variable(N))
        ref = np.linalg.slogdet(N)
    assert sign == ref[0] and np.isnan(la.value)


# ----------------------------------------------------------------------------------
# solve

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bshape", [(30,), (30, 3)])
def test_solve_closed_forms(kind, bshape, backend):
    A = _matrix(kind, 30)
    b = RNG.normal(size=bshape)
    c = RNG.normal(size=bshape)
    x = np.linalg.solve(A, b)
    with fd.Tape() as t:
        np.testing.assert_allclose(np.linalg.solve(t.variable(A), b).value, x,
                                   rtol=1e-10, atol=1e-12)

    def f(a, bb):
        return np.sum(c * np.linalg.solve(a, bb))
    ga, gb = fd.grad(f, argnums=(0, 1))(A, b)
    bbar = np.linalg.solve(A.T, c)                      # the cotangent of b
    np.testing.assert_allclose(gb, bbar, rtol=1e-10, atol=1e-12)
    abar = -(bbar[:, None] * x[None, :] if bbar.ndim == 1 else bbar @ x.T)
    np.testing.assert_allclose(ga, abar, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_solve_against_differences_and_hvp(kind, backend):
    n = 6
    A = _matrix(kind, n)
    b = RNG.normal(size=(n, 2))

    def f(x):
        a, bb = x[:n * n].reshape(n, n), x[n * n:].reshape(n, 2)
        return np.sum(np.linalg.solve(a, bb) ** 2)
    x0 = np.concatenate([A.ravel(), b.ravel()])
    np.testing.assert_allclose(fd.grad(f)(x0), num_grad(f, x0), rtol=1e-6, atol=1e-8)
    _hvp_vs_gradient_differences(f, x0, RNG.normal(size=x0.shape))
    H = np.asarray(fd.hessian(f)(x0))
    v = RNG.normal(size=x0.shape)
    np.testing.assert_allclose(H @ v, np.asarray(fd.hvp(f)(x0, v)), rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("kind", ["spd", "nonsym"])
def test_solve_rules_with_a_kept_factorisation_take_k_directions(kind, backend):
    prim = REGISTRY["solve"]
    A, b = _matrix(kind, 12), RNG.normal(size=(12, 2))
    out, res = prim.forward([A, b], {})
    if backend == "scipy":
        assert res[0] == ("chol" if kind == "spd" else "lu")
    T = [RNG.normal(size=(4, 12, 12)), RNG.normal(size=(4, 12, 2))]
    G = RNG.normal(size=(4, 12, 2))
    jt = prim.jvp([A, b], out, res, T, {})
    va, vb = prim.vjp([A, b], out, res, G, {}, 3)
    for j in range(4):
        lhs = np.sum(G[j] * jt[j])
        assert lhs == pytest.approx(np.sum(va[j] * T[0][j]) + np.sum(vb[j] * T[1][j]),
                                    rel=1e-10)


def test_solve_singular_symmetric_matrix_names_the_function(backend):
    S = np.ones((8, 8))                  # symmetric, not positive definite, singular
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.solve"):
        fd.grad(lambda a: np.sum(np.linalg.solve(a, np.ones(8))))(S)


# ----------------------------------------------------------------------------------
# cholesky

def _chol_f(W):
    # symmetrised first: NumPy reads the lower triangle, the rule differentiates
    # the symmetric matrix it stands for, and differences then agree with it
    def f(a):
        L = np.linalg.cholesky(0.5 * (a + np.swapaxes(a, -1, -2)))
        return np.sum(W * L) + np.sum(np.sin(L))
    return f


@pytest.mark.parametrize("n", [5, 12])
def test_cholesky_against_differences_and_hvp(n, backend):
    A = _matrix("spd", n)
    f = _chol_f(RNG.normal(size=(n, n)))     # a full cotangent: its upper part too
    g = fd.grad(f)(A)
    np.testing.assert_allclose(g, num_grad(f, A), rtol=1e-6, atol=1e-8)
    _hvp_vs_gradient_differences(f, A, RNG.normal(size=(n, n)))


@pytest.mark.parametrize("n", [40, 150])
def test_cholesky_closed_forms(n, backend):
    A = _matrix("spd", n)
    Ai = np.linalg.inv(A)
    # sum(log diag L) = log det A / 2: gradient A^-1 / 2, hvp -A^-1 V A^-1 / 2
    f = lambda a: np.sum(np.log(np.diagonal(np.linalg.cholesky(a))))  # noqa: E731
    np.testing.assert_allclose(fd.grad(f)(A), 0.5 * Ai, rtol=1e-9, atol=1e-13)
    V = RNG.normal(size=(n, n))
    V = V + V.T
    np.testing.assert_allclose(np.asarray(fd.hvp(f)(A, V)), -0.5 * Ai @ V @ Ai,
                               rtol=1e-8, atol=1e-13)
    # y^T A^-1 y through z = L^-1 y: gradient -a a^T, a = A^-1 y
    y = RNG.normal(size=n)

    def quad(a):
        z = np.linalg.solve(np.linalg.cholesky(a), y)
        return np.dot(z, z)
    al = Ai @ y
    np.testing.assert_allclose(fd.grad(quad)(A), -np.outer(al, al), rtol=1e-9,
                               atol=1e-13)


def test_cholesky_rules_take_k_directions(backend):
    prim = REGISTRY["cholesky"]
    n = 10
    A = _matrix("spd", n)
    out, res = prim.forward([A], {})
    T = RNG.normal(size=(3, n, n))
    G = RNG.normal(size=(3, n, n))
    jt = prim.jvp([A], out, res, [T], {})
    (va,) = prim.vjp([A], out, res, G, {}, 1)
    for j in range(3):
        np.testing.assert_allclose(va[j], va[j].T, rtol=1e-12, atol=1e-14)
        # the vjp is the adjoint of the jvp on symmetric tangents
        Ts = 0.5 * (T[j] + T[j].T)
        jts = prim.jvp([A], out, res, [Ts[None]], {})[0]
        assert np.sum(G[j] * jts) == pytest.approx(np.sum(va[j] * Ts), rel=1e-10)
        np.testing.assert_allclose(jt[j], jts, rtol=1e-10, atol=1e-13)
        # and the tangent is that of L: lower triangular, L dL^T + dL L^T = sym(T)
        assert not np.triu(jt[j], 1).any()
        np.testing.assert_allclose(out @ jt[j].T + jt[j] @ out.T, Ts, rtol=1e-9,
                                   atol=1e-12)


def test_cholesky_of_a_stack(backend):
    A = np.stack([_matrix("spd", 6) for _ in range(2)])
    f = _chol_f(RNG.normal(size=(2, 6, 6)))
    np.testing.assert_allclose(fd.grad(f)(A), num_grad(f, A), rtol=1e-6, atol=1e-8)
    _hvp_vs_gradient_differences(f, A, RNG.normal(size=A.shape))


def test_gp_gradient_matches_its_closed_form(backend):
    # the GP benchmark's NLML: both writings (cholesky, or solve + slogdet) give
    # 1/2 tr((K^-1 - a a^T) dK) for each hyperparameter
    n = 60
    x = np.sort(RNG.uniform(-3.0, 3.0, n))
    y = np.sin(x) + 0.1 * RNG.normal(size=n)
    D2 = (x[:, None] - x[None, :]) ** 2

    def kern(theta):
        return np.exp(theta[1]) * np.exp(-0.5 * D2 / np.exp(2.0 * theta[0])) \
            + np.exp(theta[2]) * np.eye(n)

    def nlml_chol(theta):
        L = np.linalg.cholesky(kern(theta))
        z = np.linalg.solve(L, y)
        return 0.5 * np.dot(z, z) + np.sum(np.log(np.diagonal(L)))

    def nlml_slogdet(theta):
        K = kern(theta)
        return 0.5 * np.dot(y, np.linalg.solve(K, y)) + 0.5 * np.linalg.slogdet(K)[1]
    theta = np.array([0.2, -0.1, np.log(0.05)])
    K = kern(theta)
    Ki = np.linalg.inv(K)
    a = Ki @ y
    Wm = Ki - np.outer(a, a)
    E = K - np.exp(theta[2]) * np.eye(n)
    want = 0.5 * np.array([np.sum(Wm * E * D2) * np.exp(-2.0 * theta[0]),
                           np.sum(Wm * E), np.exp(theta[2]) * np.trace(Wm)])
    for f in (nlml_chol, nlml_slogdet):
        np.testing.assert_allclose(fd.grad(f)(theta), want, rtol=1e-8)
        H = np.asarray(fd.hessian(f)(theta))
        Hn = np.array([(fd.grad(f)(theta + e) - fd.grad(f)(theta - e)) / 2e-6
                       for e in np.eye(3) * 1e-6])
        np.testing.assert_allclose(H, Hn, rtol=1e-5, atol=1e-6)
