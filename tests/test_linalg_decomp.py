"""numpy.linalg eigh, svd, qr, pinv, norm, matrix_power, multi_dot and
scipy.linalg solve_triangular, cho_factor, cho_solve on Vars (fastad._prims_decomp,
fastad._prims_scipy_linalg): values vs NumPy / SciPy, gradients vs central
differences and closed forms (perturbation theory for eigh), Hessians vs
differences of gradients, batched shapes, degenerate points and errors."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg as sl

import fastad as fd
from fastad import _prims_scipy_linalg as fsl
from fastad._registry import REGISTRY
from _numdiff import num_grad, solve_triangular_ref

RNG = np.random.default_rng(31)


def _sym(a):
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _spd(n, batch=()):
    m = RNG.normal(size=batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def _weights(*shape):
    return np.random.default_rng(sum(shape)).normal(size=shape)


def _fns(m, n):
    """Scalar functions of an m x n matrix (the eigh ones of a square symmetric
    one) and the matrices to differentiate them at."""
    k = min(m, n)
    WU, Wv, WV = _weights(m, k), _weights(k), _weights(k, n)
    Wn, Wp = _weights(n, n), _weights(n, m)
    B = _weights(n, 2)

    def svd_all(a):
        U, s, Vh = np.linalg.svd(a, full_matrices=False)
        return np.sum(np.sin(U) * WU) + np.sum(s ** 3 * Wv) + np.sum(np.cos(Vh) * WV)

    def qr_all(a):
        Q, R = np.linalg.qr(a)
        return np.sum(np.sin(Q) * WU) + np.sum(np.sin(R) * _weights(k, n))

    def st(a):
        x = fsl.solve_triangular(a + 3.0 * np.eye(n), B, lower=True, trans="T")
        return np.sum(np.sin(x))

    def cho(a):
        c = fsl.cho_factor(_sym(a) + n * np.eye(n), lower=False)
        return np.sum(np.sin(fsl.cho_solve(c, B)))

    square = {
        "eigh_vectors": lambda a: np.sum(np.sin(np.linalg.eigh(_sym(a))[1]) * Wn),
        "eigh_values": lambda a: np.sum(np.sin(np.linalg.eigh(_sym(a))[0])),
        "matrix_power": lambda a: np.sum(np.sin(np.linalg.matrix_power(a, 3))),
        "matrix_power_neg": lambda a: np.sum(np.linalg.matrix_power(
            a + 3.0 * np.eye(n), -2) * Wn),
        "solve_triangular": st,
        "cho_solve": cho,
    }
    general = {
        "svd": svd_all,
        "svdvals": lambda a: np.sum(np.sin(np.linalg.svd(a, compute_uv=False))),
        "pinv": lambda a: np.sum(np.sin(np.linalg.pinv(a)) * Wp),
        "norm_fro": lambda a: np.linalg.norm(a) ** 1.5,
        "norm_nuc": lambda a: np.linalg.norm(a, "nuc"),
        "norm_2": lambda a: np.linalg.norm(a, 2),
        "norm_1": lambda a: np.linalg.norm(a, 1),
        "norm_inf": lambda a: np.linalg.norm(a, np.inf),
        "norm_p": lambda a: np.sum(np.linalg.norm(a, 3.5, axis=0)),
        "multi_dot": lambda a: np.sum(np.sin(np.linalg.multi_dot([Wp, a, Wn, a.T]))),
    }
    general["qr"] = qr_all
    return square if m == n else {}, general


CASES = [(name, (m, n)) for m, n in ((3, 3), (6, 6), (5, 3), (3, 5))
         for part in _fns(m, n) for name in part]


@pytest.mark.parametrize("name,shape", CASES, ids=["%s-%dx%d" % ((c[0],) + c[1])
                                                   for c in CASES])
def test_gradient_and_hessian_against_differences(name, shape):
    square, general = _fns(*shape)
    f = {**square, **general}[name]
    A = RNG.normal(size=shape)
    if name.startswith("eigh"):
        A = _spd(shape[0])
    val, g = fd.value_and_grad(f)(A)
    np.testing.assert_allclose(val, f(A), rtol=1e-12)
    np.testing.assert_allclose(g, num_grad(f, A), rtol=1e-6, atol=1e-7)
    size = A.size
    H = np.asarray(fd.hessian(f)(A)).reshape(size, size)
    Hn = np.array([((fd.grad(f)(A + e) - fd.grad(f)(A - e)) / 2e-6).ravel()
                   for e in (np.eye(size)[i].reshape(shape) * 1e-6
                             for i in range(size))])
    np.testing.assert_allclose(H, Hn, rtol=1e-5, atol=1e-6)
    v = RNG.normal(size=shape)
    np.testing.assert_allclose(np.asarray(fd.hvp(f)(A, v)).ravel(), H @ v.ravel(),
                               rtol=1e-8, atol=1e-8)


def test_values_and_batched_shapes():
    A = RNG.normal(size=(2, 3, 5, 4))
    Sq = RNG.normal(size=(2, 4, 4))
    S = _spd(4, (3,))
    with fd.Tape() as t:
        Av, Sv, Qv = t.variable(A), t.variable(S), t.variable(Sq)
        got = {
            "eigh": (np.linalg.eigh(Sv), np.linalg.eigh(S)),
            "svd": (np.linalg.svd(Av, full_matrices=False),
                    np.linalg.svd(A, full_matrices=False)),
            "svd_square": (np.linalg.svd(Qv), np.linalg.svd(Sq)),
            "svdvals": ((np.linalg.svd(Av, compute_uv=False),),
                        (np.linalg.svd(A, compute_uv=False),)),
            "qr": (np.linalg.qr(Av), np.linalg.qr(A)),
            "qr_wide": (np.linalg.qr(np.swapaxes(Av, -1, -2)),
                        np.linalg.qr(np.swapaxes(A, -1, -2))),
            "qr_r": ((np.linalg.qr(Av, mode="r"),), (np.linalg.qr(A, mode="r"),)),
            "pinv": ((np.linalg.pinv(Av),), (np.linalg.pinv(A),)),
            "pinv_rcond": ((np.linalg.pinv(Av, rcond=1e-3),),
                           (np.linalg.pinv(A, rcond=1e-3),)),
            "matrix_power": ((np.linalg.matrix_power(Qv, 5),),
                             (np.linalg.matrix_power(Sq, 5),)),
            "matrix_power_0": ((np.linalg.matrix_power(Qv, 0),),
                               (np.linalg.matrix_power(Sq, 0),)),
            "matrix_power_neg": ((np.linalg.matrix_power(Sv, -3),),
                                 (np.linalg.matrix_power(S, -3),)),
        }
    for name, (vs, wants) in got.items():
        assert type(vs) is type(wants) or name in ("svdvals", "qr_r", "pinv",
                                                   "pinv_rcond") or \
            name.startswith("matrix_power"), name
        for v, want in zip(vs, wants):
            assert type(v) is fd.Var, name
            assert v.shape == want.shape, name
            np.testing.assert_allclose(v.value, want, rtol=1e-9, atol=1e-12,
                                       err_msg=name)


NORMS = [(None, None, False), (2, None, False), (1, None, False), (np.inf, None, True),
         (-np.inf, None, False), (3.0, None, False), (0.5, None, False),
         (-1.5, None, False), (0, None, False)]
MATRIX_NORMS = [None, "fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf]


@pytest.mark.parametrize("ord,axis,keepdims", NORMS)
def test_vector_norms(ord, axis, keepdims):
    x = RNG.normal(size=7)
    f = lambda v: np.linalg.norm(v, ord, axis, keepdims)  # noqa: E731
    with fd.Tape() as t:
        got = f(t.variable(x))
    want = f(x)
    np.testing.assert_allclose(np.asarray(getattr(got, "value", got)), want,
                               rtol=1e-13)
    assert np.shape(getattr(got, "value", got)) == np.shape(want)
    if ord == 0:
        assert type(got) is not fd.Var      # a count: piecewise constant
        return
    g = fd.grad(lambda v: np.sum(f(v)))(x)
    np.testing.assert_allclose(g, num_grad(lambda v: np.sum(f(v)), x), rtol=1e-6,
                               atol=1e-8)


@pytest.mark.parametrize("ord", MATRIX_NORMS)
@pytest.mark.parametrize("axis,keepdims", [(None, False), ((0, 2), True),
                                           ((2, 1), False)])
def test_matrix_norms(ord, axis, keepdims):
    x = RNG.normal(size=(3, 4) if axis is None else (3, 4, 5))
    f = lambda v: np.sum(np.linalg.norm(v, ord, axis, keepdims))  # noqa: E731
    with fd.Tape() as t:
        got = np.linalg.norm(t.variable(x), ord, axis, keepdims)
    want = np.linalg.norm(x, ord, axis, keepdims)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.value, want, rtol=1e-12)
    np.testing.assert_allclose(fd.grad(f)(x), num_grad(f, x), rtol=1e-6, atol=1e-8)


def test_norm_of_stacks_and_errors():
    x = RNG.normal(size=(2, 3, 4))
    with fd.Tape() as t:
        v = t.variable(x)
        np.testing.assert_allclose(np.linalg.norm(v).value, np.linalg.norm(x))
        np.testing.assert_allclose(np.linalg.norm(v, axis=-1, keepdims=True).value,
                                   np.linalg.norm(x, axis=-1, keepdims=True))
        with pytest.raises(ValueError):
            np.linalg.norm(v, "fro")           # NumPy's own: 3-D without axis
        with pytest.raises(ValueError):
            np.linalg.norm(v, "nuc", axis=1)   # a matrix order on a vector axis


def test_closed_forms():
    x = RNG.normal(size=6)
    np.testing.assert_allclose(fd.grad(np.linalg.norm)(x), x / np.linalg.norm(x),
                               rtol=1e-12)
    A = RNG.normal(size=(5, 3))
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(fd.grad(lambda a: np.linalg.norm(a, "nuc"))(A),
                               U @ Vh, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fd.grad(lambda a: np.linalg.norm(a, 2))(A),
                               np.outer(U[:, 0], Vh[0]), rtol=1e-10, atol=1e-12)
    # d pinv(A) for full column rank: pinv = (A^T A)^-1 A^T
    E = RNG.normal(size=A.shape)
    _, dP = fd.jvp(np.linalg.pinv, (A,), (E,))
    h = 1e-6
    ref = lambda a: np.linalg.solve(a.T @ a, a.T)  # noqa: E731
    np.testing.assert_allclose(dP, (ref(A + h * E) - ref(A - h * E)) / (2 * h),
                               rtol=1e-6, atol=1e-8)


def test_eigh_against_perturbation_theory():
    S = _spd(5)
    E = _sym(RNG.normal(size=(5, 5)))
    w, V = np.linalg.eigh(S)
    _, dw = fd.jvp(lambda a: np.linalg.eigh(a)[0], (S,), (E,))
    _, dV = fd.jvp(lambda a: np.linalg.eigh(a)[1], (S,), (E,))
    X = V.T @ E @ V
    np.testing.assert_allclose(dw, np.diag(X), rtol=1e-10, atol=1e-12)
    for k in range(5):
        want = sum(V[:, j] * X[j, k] / (w[k] - w[j]) for j in range(5) if j != k)
        np.testing.assert_allclose(dV[:, k], want, rtol=1e-9, atol=1e-11)
    # the gradient of w_k is v_k v_k^T; the sign (gauge) of the vectors is NumPy's
    g = fd.grad(lambda a: np.linalg.eigh(a)[0][2])(S)
    np.testing.assert_allclose(g, np.outer(V[:, 2], V[:, 2]), rtol=1e-10, atol=1e-12)
    with fd.Tape() as t:
        np.testing.assert_array_equal(np.linalg.eigh(t.variable(S))[1].value, V)


def test_degenerate_points():
    # repeated eigenvalues: the eigenvectors' derivative is infinite (JAX's);
    # a function of the eigenvalues alone keeps its finite gradient
    eye = np.eye(3)
    with np.errstate(all="ignore"):
        g = fd.grad(lambda a: np.sum(np.linalg.eigh(a)[1] * _weights(3, 3)))(eye)
    assert not np.all(np.isfinite(g))
    np.testing.assert_allclose(fd.grad(lambda a: np.sum(np.linalg.eigh(a)[0] ** 2))(eye),
                               2 * eye, atol=1e-12)
    np.testing.assert_allclose(
        fd.grad(lambda a: np.sum(np.linalg.svd(a, compute_uv=False)))(eye), eye,
        atol=1e-12)
    # the 2-norm at zero: NaN, as JAX's sqrt(sum(x * x)) gives
    assert np.all(np.isnan(fd.grad(np.linalg.norm)(np.zeros(3))))
    # 1-norm at zero: abs's derivative there
    assert np.all(np.isfinite(fd.grad(lambda v: np.linalg.norm(v, 1))(np.zeros(3))))
    # rank-deficient qr: its R is singular, the derivative a LinAlgError naming qr
    A = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.qr"):
        fd.grad(lambda a: np.sum(np.linalg.qr(a)[0]))(A)


def test_errors_name_the_function():
    with fd.Tape() as t:
        S = t.variable(_spd(3))
        R = t.variable(RNG.normal(size=(3, 4)))
        with pytest.raises(ValueError, match="numpy.linalg.eigh: UPLO"):
            np.linalg.eigh(S, UPLO="X")
        with pytest.raises(TypeError, match="full_matrices"):
            np.linalg.svd(R)
        with pytest.raises(TypeError, match="hermitian"):
            np.linalg.svd(S, hermitian=True)
        with pytest.raises(TypeError, match="mode"):
            np.linalg.qr(S, mode="complete")
        with pytest.raises(ValueError, match="numpy.linalg.eigh"):
            np.linalg.eigh(R)
        with pytest.raises(TypeError):
            np.linalg.matrix_power(S, 1.5)
        with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.inv"):
            np.linalg.matrix_power(t.variable(np.zeros((2, 2))), -1)
        with pytest.raises(np.linalg.LinAlgError,
                           match="scipy.linalg.solve_triangular"):
            fsl.solve_triangular(t.variable(np.zeros((2, 2))), np.ones(2))
        with pytest.raises(np.linalg.LinAlgError, match="scipy.linalg.cho_factor"):
            fsl.cho_factor(t.variable(-np.eye(2)))
        with pytest.raises(ValueError, match="scipy.linalg.solve_triangular"):
            fsl.solve_triangular(S, np.ones(4))
        with pytest.raises(TypeError, match="scipy.linalg.cho_solve"):
            fsl.cho_solve(S, np.ones(3))


def test_scipy_values_and_gradients_in_both_operands():
    n = 4
    A = RNG.uniform(0.5, 1.5, (n, n))
    b = RNG.normal(size=(n, 2))
    for lower in (True, False):
        for trans in (0, 1, "N", "T"):
            for unit in (False, True):
                kw = dict(lower=lower, trans=trans, unit_diagonal=unit)

                def f(x, st=fsl.solve_triangular):
                    return np.sum(np.sin(st(x[:n * n].reshape(n, n),
                                            x[n * n:].reshape(n, 2), **kw)))
                x = np.concatenate([A.ravel(), b.ravel()])
                assert f(x) == pytest.approx(f(x, sl.solve_triangular), rel=1e-13)
                np.testing.assert_allclose(fd.grad(f)(x), num_grad(f, x), rtol=1e-6,
                                           atol=1e-8)
    # batched, a vector b
    A3 = RNG.uniform(0.5, 1.5, (3, n, n))
    with fd.Tape() as t:
        got = fsl.solve_triangular(t.variable(A3), np.ones(n), lower=True)
    np.testing.assert_allclose(got.value, solve_triangular_ref(A3, np.ones(n),
                                                               lower=True), rtol=1e-12)
    # cho_factor / cho_solve: SciPy's values (c's other triangle is a's own);
    # differentiable in c and b
    S = _spd(n)
    for lower in (True, False):
        with fd.Tape() as t:
            c, lo = fsl.cho_factor(t.variable(S), lower=lower)
        c0, lo0 = sl.cho_factor(S, lower=lower)
        assert lo is bool(lo0)          # (SciPy 1.18 gives a 0-d array)
        # the factor's triangle is SciPy's; the other one is a's own entries in
        # fastad (SciPy < 1.18 left a's there too, SciPy 1.18 writes zeros)
        tri = np.tril if lower else np.triu
        np.testing.assert_allclose(tri(c.value), tri(c0), rtol=1e-12)
        off = (lambda m: np.triu(m, 1)) if lower else (lambda m: np.tril(m, -1))
        np.testing.assert_array_equal(off(c.value), off(S))
        y = RNG.normal(size=(n + 1) * n)

        def g(x):
            cc, bb = x[:n * n].reshape(n, n), x[n * n:]
            return np.sum(np.sin(fsl.cho_solve((cc, lower), bb)))
        x = np.concatenate([c0.ravel(), y[:n]])
        assert g(x) == pytest.approx(
            np.sum(np.sin(sl.cho_solve((c0, lower), y[:n]))), rel=1e-13)
        np.testing.assert_allclose(fd.grad(g)(x), num_grad(g, x), rtol=1e-6,
                                   atol=1e-8)


def test_solve_triangular_rules_take_k_directions():
    prim = REGISTRY["solve_triangular"]
    p = dict(lower=False, trans=True, unit_diagonal=False)
    A, b = RNG.uniform(0.5, 1.5, (3, 3)), RNG.normal(size=(3, 2))
    out, res = prim.forward([A, b], p)
    T = [RNG.normal(size=(4, 3, 3)), RNG.normal(size=(4, 3, 2))]
    G = RNG.normal(size=(4, 3, 2))
    g = RNG.normal(size=(3, 2))
    jt = prim.jvp([A, b], out, res, T, p)
    va, vb = prim.vjp([A, b], out, res, G, p, 3)
    sa, sb = prim.second([A, b], out, res, T, g, G, p, 3)
    for j in range(4):
        one = [T[0][j:j + 1], T[1][j:j + 1]]
        np.testing.assert_allclose(jt[j], prim.jvp([A, b], out, res, one, p)[0],
                                   rtol=1e-13)
        assert np.sum(G[j] * jt[j]) == pytest.approx(
            np.sum(va[j] * T[0][j]) + np.sum(vb[j] * T[1][j]), rel=1e-11)
        s1 = prim.second([A, b], out, res, one, g, G[j:j + 1], p, 3)
        np.testing.assert_allclose(sa[j], s1[0][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sb[j], s1[1][0], rtol=1e-12, atol=1e-14)


def test_import_fastad_does_not_import_scipy():
    code = ("import sys, numpy as np, fastad as fd\n"
            "f = lambda a: np.sum(np.linalg.svd(a, compute_uv=False))\n"
            "fd.grad(f)(np.eye(3))\n"
            "assert not any(m == 'scipy' or m.startswith('scipy.') "
            "for m in sys.modules), sorted(m for m in sys.modules if 'scipy' in m)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trace_replays_the_decompositions():
    W = _weights(4, 4)

    def f(a):
        w, V = np.linalg.eigh(_sym(a))
        U, s, Vh = np.linalg.svd(a)
        Q, R = np.linalg.qr(a)
        return (np.sum(np.sin(V) * W) + np.sum(w ** 2) + np.sum(s) +
                np.sum(np.sin(U)) + np.sum(Q * R) + np.sum(np.linalg.pinv(a)) +
                np.linalg.norm(a, "nuc"))
    A = _spd(4)
    tf = fd.trace(f, A)
    for z in (A, A + 0.1 * _sym(RNG.normal(size=(4, 4)))):
        assert tf(z) == pytest.approx(f(z), rel=1e-12)
        np.testing.assert_allclose(tf.grad(z), fd.grad(f)(z), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shapes", [[(2, 3), (3, 4), (4, 2)], [(3,), (3, 4), (4,)],
                                    [(10,), (10, 3), (3, 50), (50, 2)],
                                    [(5, 10), (10, 1), (1, 20), (20,)]])
def test_multi_dot_in_numpys_order(shapes):
    arrays = [RNG.normal(size=s) for s in shapes]
    want = np.linalg.multi_dot(arrays)
    with fd.Tape() as t:
        got = np.linalg.multi_dot([t.variable(a) for a in arrays])
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.value, want, rtol=1e-13, atol=1e-13)

    def f(x):
        return np.sum(np.sin(np.linalg.multi_dot([x] + arrays[1:])))
    np.testing.assert_allclose(fd.grad(f)(arrays[0]), num_grad(f, arrays[0]),
                               rtol=1e-6, atol=1e-8)


def test_uplo_upper_reads_the_upper_triangle():
    # UPLO="U": the eigenvalues of the matrix the upper triangle stands for; the
    # derivative is that of the symmetric matrix (as for "L"), so on a symmetric
    # input both agree with each other and with NumPy
    A = RNG.normal(size=(4, 4))
    U = np.triu(A) + np.triu(A, 1).T          # symmetric, read from the upper part
    B = np.triu(A) + np.tril(RNG.normal(size=(4, 4)), -1)     # junk below
    with fd.Tape() as t:
        b = t.variable(B)
        np.testing.assert_allclose(np.linalg.eigvalsh(b, UPLO="U").value,
                                   np.linalg.eigvalsh(B, UPLO="U"), rtol=1e-12)
        w, V = np.linalg.eigh(b, UPLO="U")
        np.testing.assert_allclose(w.value, np.linalg.eigvalsh(U), rtol=1e-12)
    gu = fd.grad(lambda a: np.sum(np.linalg.eigvalsh(a, UPLO="U") ** 3))(U)
    gl = fd.grad(lambda a: np.sum(np.linalg.eigvalsh(a) ** 3))(U)
    np.testing.assert_allclose(gu, gl, rtol=1e-11, atol=1e-12)
    with pytest.raises(ValueError, match="UPLO"):
        fd.grad(lambda a: np.sum(np.linalg.eigvalsh(a, UPLO="x")))(U)


def test_fd_linalg_is_scipy_linalgs_names_on_vars():
    sla = pytest.importorskip("scipy.linalg")
    A = _spd(4)
    L = np.linalg.cholesky(A)
    b = RNG.normal(size=4)
    np.testing.assert_allclose(fd.linalg.solve_triangular(L, b, lower=True),
                               sla.solve_triangular(L, b, lower=True), rtol=1e-13)
    c, low = fd.linalg.cho_factor(A, lower=True)
    np.testing.assert_allclose(fd.linalg.cho_solve((c, low), b), np.linalg.solve(A, b),
                               rtol=1e-12)
    # d/db of sum(A^-1 b) = A^-T 1, through cho_factor and cho_solve on Vars
    g = fd.grad(lambda v: fd.sum(fd.linalg.cho_solve(fd.linalg.cho_factor(A), v)))(b)
    np.testing.assert_allclose(g, np.linalg.solve(A.T, np.ones(4)), rtol=1e-12)
    # SciPy's own function on a Var cannot dispatch: the error names fd.linalg's
    with fd.Tape() as t:
        with pytest.raises(TypeError, match=r"scipy\.linalg\.solve_triangular on a Var"
                                            r".*fd\.linalg\.solve_triangular"):
            sla.solve_triangular(t.variable(L), b, lower=True)
    assert set(fd.linalg.__all__) == {"solve_triangular", "cho_factor", "cho_solve"}


def test_scipy_functions_on_vars_name_fastads_own():
    st = pytest.importorskip("scipy.stats")
    sp = pytest.importorskip("scipy.special")
    sla = pytest.importorskip("scipy.linalg")
    with fd.Tape() as t:
        v = t.variable(np.eye(2))
        with pytest.raises(TypeError, match=r"scipy\.stats\.norm\.logpdf on a Var.*"
                                            r"call fd\.stats\.norm\.logpdf"):
            st.norm.logpdf(v)
        with pytest.raises(TypeError, match=r"call fd\.special\.logsumexp"):
            sp.logsumexp(v)
        with pytest.raises(TypeError, match=r"no fd\.linalg\.expm \(fd\.linalg has: "
                                            r"solve_triangular"):
            sla.expm(v)
        with pytest.raises(TypeError, match=r"fd\.stack"):     # NumPy's own: as before
            np.array([v[0, 0], v[1, 1]])
