"""numpy.linalg on Vars (fastad._prims_linalg): values vs NumPy, gradients vs
central differences and closed forms, Hessians vs differences of gradients,
batched shapes, small (3 x 3, below the record threshold) and large matrices,
and the errors (singular, not positive definite, not square)."""
import numpy as np
import pytest

import fastad as fd
from fastad._registry import REGISTRY

RNG = np.random.default_rng(12)


def _well(n, batch=()):
    return RNG.normal(size=batch + (n, n)) + 3.0 * np.eye(n)


def _spd(n, batch=()):
    m = RNG.normal(size=batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


from _numdiff import num_grad as _num_grad


B3 = RNG.normal(size=(3, 2))
W = RNG.normal(size=(3, 3))

# scalar functions of one matrix A (n = 3, small Vars) and their NumPy values
FUNCS = {
    "solve_vec": (lambda A: np.sum(np.linalg.solve(A, B3[:, 0]) ** 2), _well),
    "solve_mat": (lambda A: np.sum(np.linalg.solve(A, B3) * B3), _well),
    "inv": (lambda A: np.sum(np.linalg.inv(A) * W), _well),
    "det": (lambda A: np.linalg.det(A), _well),
    "slogdet": (lambda A: np.linalg.slogdet(A)[1], _well),
    # symmetrised first: NumPy reads the lower triangle, the rule differentiates
    # the symmetric matrix (JAX's), and differences then agree with it
    "eigvalsh": (lambda A: np.sum(np.sin(np.linalg.eigvalsh(0.5 * (A + A.T)))), _spd),
    "cholesky": (lambda A: np.sum(np.sin(np.linalg.cholesky(0.5 * (A + A.T)))), _spd),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("n", [3, 6])
def test_gradient_and_hessian_against_differences(name, n):
    f, make = FUNCS[name]
    if n != 3:
        # n = 6 (36 elements: one record, not scalar slots) with operands to match
        B = RNG.normal(size=(n, 2))
        Wn = RNG.normal(size=(n, n))
        f = {"solve_vec": lambda A: np.sum(np.linalg.solve(A, B[:, 0]) ** 2),
             "solve_mat": lambda A: np.sum(np.linalg.solve(A, B) * B),
             "inv": lambda A: np.sum(np.linalg.inv(A) * Wn)}.get(name, f)
    A = make(n)
    val, g = fd.value_and_grad(f)(A)
    assert val == pytest.approx(f(A), rel=1e-12)
    np.testing.assert_allclose(g, _num_grad(f, A), rtol=1e-6, atol=1e-7)
    H = np.asarray(fd.hessian(f)(A)).reshape(n * n, n * n)
    Hn = np.array([((fd.grad(f)(A + e) - fd.grad(f)(A - e)) / 2e-6).ravel()
                   for e in (np.eye(n * n)[i].reshape(n, n) * 1e-6
                             for i in range(n * n))])
    np.testing.assert_allclose(H, Hn, rtol=1e-5, atol=1e-6)
    v = RNG.normal(size=(n, n))
    hv = fd.hvp(f)(A, v)
    np.testing.assert_allclose(np.asarray(hv).ravel(), H @ v.ravel(), rtol=1e-9,
                               atol=1e-9)


def test_closed_forms():
    A = _well(4)
    np.testing.assert_allclose(fd.grad(lambda a: np.linalg.slogdet(a)[1])(A),
                               np.linalg.inv(A).T, rtol=1e-12)
    np.testing.assert_allclose(fd.grad(np.linalg.det)(A),
                               np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-11)
    # d tr(inv(A) B) / dA = -(inv(A) B inv(A))^T
    Bm = RNG.normal(size=(4, 4))
    Ai = np.linalg.inv(A)
    np.testing.assert_allclose(fd.grad(lambda a: np.sum(np.linalg.inv(a) * Bm.T))(A),
                               -(Ai @ Bm @ Ai).T, rtol=1e-11, atol=1e-13)
    # d/db of c . solve(A, b) = solve(A^T, c)
    c = RNG.normal(size=4)
    np.testing.assert_allclose(
        fd.grad(lambda b: np.sum(c * np.linalg.solve(A, b)))(RNG.normal(size=4)),
        np.linalg.solve(A.T, c), rtol=1e-12)


def test_eigvalsh_closed_forms():
    # d w_max / dA = v v^T (symmetric); d sum(w) / dA = I (the trace)
    S = _spd(5)
    w, V = np.linalg.eigh(S)
    g = fd.grad(lambda a: np.linalg.eigvalsh(a)[-1])(S)
    np.testing.assert_allclose(g, np.outer(V[:, -1], V[:, -1]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fd.grad(lambda a: np.sum(np.linalg.eigvalsh(a)))(S),
                               np.eye(5), atol=1e-12)


def test_values_and_batched_shapes():
    A = _well(3, (2, 5))
    b = RNG.normal(size=(2, 5, 3, 4))
    S = _spd(4, (3,))
    with fd.Tape() as t:
        Av = t.variable(A)
        got = {
            "solve": (np.linalg.solve(Av, b), np.linalg.solve(A, b)),
            "inv": (np.linalg.inv(Av), np.linalg.inv(A)),
            "det": (np.linalg.det(Av), np.linalg.det(A)),
            "logabsdet": (np.linalg.slogdet(Av)[1], np.linalg.slogdet(A)[1]),
            "cholesky": (np.linalg.cholesky(t.variable(S)), np.linalg.cholesky(S)),
            "eigvalsh": (np.linalg.eigvalsh(t.variable(S)), np.linalg.eigvalsh(S)),
        }
        sign = np.linalg.slogdet(Av)[0]
    for name, (v, want) in got.items():
        assert type(v) is fd.Var, name
        assert v.shape == want.shape, name
        np.testing.assert_allclose(v.value, want, rtol=1e-12, err_msg=name)
    np.testing.assert_array_equal(sign, np.linalg.slogdet(A)[0])


def test_batched_gradient_sums_over_the_batch():
    A = _well(3, (4,))
    g = fd.grad(lambda a: np.sum(np.linalg.slogdet(a)[1]))(A)
    np.testing.assert_allclose(g, np.swapaxes(np.linalg.inv(A), -1, -2), rtol=1e-12)
    b = RNG.normal(size=(4, 3, 1))
    f = lambda a: np.sum(np.linalg.solve(a, b) ** 2)  # noqa: E731
    np.testing.assert_allclose(fd.grad(f)(A), _num_grad(f, A), rtol=1e-6, atol=1e-8)


def test_gradient_with_respect_to_both_solve_operands():
    A = _well(3)

    def f(x):
        a, b = x[:9].reshape(3, 3), x[9:]
        return np.sum(np.linalg.solve(a, b) ** 2)
    x = np.concatenate([A.ravel(), RNG.normal(size=3)])
    np.testing.assert_allclose(fd.grad(f)(x), _num_grad(f, x), rtol=1e-6, atol=1e-8)
    H = np.asarray(fd.hessian(f)(x))
    Hn = np.array([(fd.grad(f)(x + e) - fd.grad(f)(x - e)) / 2e-6
                   for e in np.eye(12) * 1e-6])
    np.testing.assert_allclose(H, Hn, rtol=1e-5, atol=1e-6)


def test_solve_rules_take_k_directions():
    prim = REGISTRY["solve"]
    A, b = _well(3), RNG.normal(size=(3, 2))
    out, res = prim.forward([A, b], {})
    T = [RNG.normal(size=(4, 3, 3)), RNG.normal(size=(4, 3, 2))]
    G = RNG.normal(size=(4, 3, 2))
    jt = prim.jvp([A, b], out, res, T, {})
    va, vb = prim.vjp([A, b], out, res, G, {}, 3)
    for j in range(4):
        lhs = np.sum(G[j] * jt[j])
        assert lhs == pytest.approx(np.sum(va[j] * T[0][j]) + np.sum(vb[j] * T[1][j]),
                                    rel=1e-11)


def test_cholesky_reads_the_lower_triangle_as_symmetric():
    # NumPy ignores the upper triangle; the derivative is that of the symmetric
    # matrix (JAX's rule), so the gradient is symmetric
    S = _spd(3)
    g = fd.grad(lambda a: np.sum(np.linalg.cholesky(a) ** 2))(S)
    np.testing.assert_allclose(g, g.T, rtol=1e-12)


def test_errors_name_the_function():
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.inv"):
        fd.grad(lambda a: np.sum(np.linalg.inv(a)))(np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.solve"):
        fd.grad(lambda a: np.sum(np.linalg.solve(a, np.ones(3))))(np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.cholesky"):
        fd.grad(lambda a: np.sum(np.linalg.cholesky(a)))(-np.eye(3))
    for f in (np.linalg.inv, np.linalg.det, np.linalg.cholesky,
              lambda a: np.linalg.slogdet(a)[1]):
        with pytest.raises(ValueError, match=r"numpy\.linalg\.\w+: argument a must be "
                                             r"a square matrix"):
            fd.grad(lambda a: np.sum(f(a)))(np.ones((2, 3)))
    with pytest.raises(ValueError, match="numpy.linalg.solve: argument b"):
        fd.grad(lambda a: np.sum(np.linalg.solve(a, np.ones(4))))(np.eye(3))


def test_plain_arrays_go_to_numpy():
    A = _well(3)
    assert REGISTRY["inv"].impl(A).tolist() == np.linalg.inv(A).tolist()
    assert REGISTRY["slogdet"].impl(A) == np.linalg.slogdet(A)


def test_traces_replay_and_refuse_to_save(tmp_path):
    # a trace replays the records at a new point; saving has no data form for
    # these records yet, and says so instead of writing something wrong
    f = lambda a: np.linalg.slogdet(a)[1] + np.sum(np.linalg.inv(a))  # noqa: E731
    tr = fd.trace(f, _well(3))
    A = _well(3)
    assert tr(A) == pytest.approx(f(A), rel=1e-12)
    with pytest.raises(fd.TraceError, match="logabsdet"):
        tr.save(str(tmp_path / "t.fad"))


def test_solve_with_b_of_one_dimension_less_follows_the_installed_numpy():
    # a (3, 3, 3), b (3, 3): NumPy 2 reads b as one 3 x 3 matrix per batch entry,
    # NumPy 1 as a stack of three vectors; value and gradient must follow the
    # NumPy that computes the value, whichever it is
    A = _well(3, (3,))
    b = RNG.normal(size=(3, 3))
    with fd.Tape() as t:
        got = np.linalg.solve(t.variable(A), b)
    np.testing.assert_allclose(got.value, np.linalg.solve(A, b), rtol=1e-12)
    w = RNG.normal(size=np.shape(np.linalg.solve(A, b)))
    f = lambda a: np.sum(np.linalg.solve(a, b) * w)  # noqa: E731
    np.testing.assert_allclose(fd.grad(f)(A), _num_grad(f, A), rtol=1e-6, atol=1e-8)
    g = lambda bb: np.sum(np.linalg.solve(A, bb) * w)  # noqa: E731
    np.testing.assert_allclose(fd.grad(g)(b), _num_grad(g, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("bshape", [(5,), (5, 3)])
def test_solve_with_a_triangular_matrix(lower, bshape):
    # a triangular a is solved by the triangle (a Cholesky factor's solve costs no
    # LU): NumPy's values, and the derivative in every entry of a -- the zeros too
    rng = np.random.default_rng(11)
    A = rng.normal(size=(5, 5)) + 4 * np.eye(5)
    A = np.tril(A) if lower else np.triu(A)
    b = rng.normal(size=bshape)
    with fd.Tape() as t:
        np.testing.assert_allclose(np.linalg.solve(t.variable(A), b).value,
                                   np.linalg.solve(A, b), rtol=1e-13)
    w = rng.normal(size=bshape)

    def f(a):
        return fd.sum(np.linalg.solve(a, b) * w)
    ga = fd.grad(f)(A)
    num = _num_grad(lambda a: np.sum(np.linalg.solve(a, b) * w), A)
    np.testing.assert_allclose(ga, num, rtol=1e-6, atol=1e-8)
    assert np.abs(ga[np.triu_indices(5, 1) if lower else np.tril_indices(5, -1)]).max() > 0
    v = rng.normal(size=A.shape)
    H = fd.hvp(f)(A, v)
    hn = (fd.grad(f)(A + 1e-6 * v) - fd.grad(f)(A - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(H, hn, rtol=1e-5, atol=1e-7)
    S = A.copy()
    S[2, 2] = 0.0
    with pytest.raises(np.linalg.LinAlgError, match="numpy.linalg.solve"):
        fd.grad(lambda a: fd.sum(np.linalg.solve(a, b)))(S)
