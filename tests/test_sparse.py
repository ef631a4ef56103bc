"""Sparse Jacobians and Hessians (API.md section 12, issue 14): patterns from the
tape, colorings, values through compressed sweeps, errors."""
import subprocess
import sys

import numpy as np
import pytest

import fastad as fd
from fastad import _sparse_plan

sp = pytest.importorskip("scipy.sparse")

RNG = np.random.default_rng(14)


# ----------------------------------------------------------------------------------
# Test functions: hand-known patterns, in scalar-slot (small) and record (large) forms

def tridiagonal(x):
    # a 1-D Bratu-like residual: x[i-1] - 2 x[i] + x[i+1] + h^2 exp(x[i])
    inner = x[:-2] - 2.0 * x[1:-1] + x[2:] + 0.01 * fd.exp(x[1:-1])
    return fd.concatenate([x[:1] - 1.0, inner, x[-1:] * x[-1:]])


def arrowhead(x):
    # every output depends on x[0]; x[0]'s output on everything
    head = fd.reshape(fd.sum(x * x), (1,))
    return fd.concatenate([head, x[1:] * fd.sin(x[0])])


def laplacian(x, k=None):
    k = int(round(np.sqrt(x.size))) if k is None else k
    u = fd.reshape(x, (k, k))
    pad = fd.concatenate([np.zeros((1, k)), u, np.zeros((1, k))], axis=0)
    up, down = pad[:-2], pad[2:]
    padc = fd.concatenate([np.zeros((k, 1)), u, np.zeros((k, 1))], axis=1)
    left, right = padc[:, :-2], padc[:, 2:]
    r = 4.0 * u - up - down - left - right + u ** 3
    return fd.reshape(r, (-1,))


def block_diagonal(x, b=4):
    X = fd.reshape(x, (-1, b))
    Y = fd.sin(X) * fd.sum(X, axis=1, keepdims=True)
    return fd.reshape(Y, (-1,))


def banded_matmul(x):
    n = x.size
    A = np.zeros((n, n))
    for d in (-1, 0, 2):
        A += np.diag(np.ones(n - abs(d)), d)
    return fd.matmul(A, fd.tanh(x))


def hand_tridiagonal(n):
    P = np.eye(n, dtype=bool)
    P[0] = False
    P[0, 0] = True
    for i in range(1, n - 1):
        P[i, i - 1:i + 2] = True
    return P


CASES = [
    ("tridiagonal", tridiagonal, (8, 40)),
    ("arrowhead", arrowhead, (7, 33)),
    ("laplacian", laplacian, (16, 64)),
    ("block_diagonal", block_diagonal, (12, 64)),
    ("banded_matmul", banded_matmul, (9,)),
]


def _dense_jac(f, x):
    return np.atleast_2d(fd.jacobian(f)(x))


@pytest.mark.parametrize("name,f,sizes", CASES, ids=[c[0] for c in CASES])
def test_jacobian_pattern_contains_every_nonzero_at_random_points(name, f, sizes):
    for n in sizes:
        x0 = RNG.uniform(0.5, 1.5, n)
        P = fd.jacobian_sparsity(f)(x0)
        assert isinstance(P, sp.csr_array) and P.dtype == bool
        m = np.asarray(f(x0)).size
        assert P.shape == (m, n)
        dense = P.toarray()
        for _ in range(3):
            x = RNG.uniform(0.5, 1.5, n)
            assert np.array_equal(fd.jacobian_sparsity(f)(x).toarray(), dense)
            J = _dense_jac(f, x)
            assert not np.any((J != 0) & ~dense), name


def test_hand_known_patterns():
    n = 30                                   # >= 16: array records
    assert np.array_equal(fd.jacobian_sparsity(tridiagonal)(np.ones(n)).toarray(),
                          hand_tridiagonal(n))
    P = fd.jacobian_sparsity(arrowhead)(np.ones(n)).toarray()
    want = np.eye(n, dtype=bool)
    want[0] = True
    want[:, 0] = True
    assert np.array_equal(P, want)
    k = 6
    P = fd.jacobian_sparsity(laplacian)(np.ones(k * k)).toarray()
    want = np.zeros((k * k, k * k), dtype=bool)
    for i in range(k):
        for j in range(k):
            r = i * k + j
            want[r, r] = True
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= i + di < k and 0 <= j + dj < k:
                    want[r, (i + di) * k + j + dj] = True
    assert np.array_equal(P, want)
    P = fd.jacobian_sparsity(block_diagonal)(np.ones(24)).toarray()
    assert np.array_equal(P, np.kron(np.eye(6), np.ones((4, 4))).astype(bool))


def test_pattern_is_structural_not_numerical():
    # d/dx1 of x0 * x1 is x0 = 0 here, but the entry stays
    P = fd.jacobian_sparsity(lambda x: x[:1] * x[1:2])(np.array([0.0, 3.0, 1.0]))
    assert P.toarray().tolist() == [[True, True, False]]


def test_matmul_record_pattern_is_the_band_not_dense():
    n = 20
    P = fd.jacobian_sparsity(banded_matmul)(np.ones(n)).toarray()
    A = np.zeros((n, n), dtype=bool)
    for d in (-1, 0, 2):
        A |= np.diag(np.ones(n - abs(d), dtype=bool), d)
    assert np.array_equal(P, A)


def _hess_cases():
    def chain(x):
        return fd.sum(x[1:] ** 2 * x[:-1]) + fd.sum(fd.exp(x[::3])) + x[0] * x[-1]

    def broyden_banded(x):
        # the objective sum f_i^2 of the Broyden banded residuals (bandwidth 5, 1)
        n = x.size
        out = 0.0
        r = x * (2.0 + 5.0 * x * x) + 1.0
        for d in range(1, 6):
            r = r - fd.concatenate([np.zeros(min(d, n)), (x * (1.0 + x))[:n - d]])
        r = r - fd.concatenate([(x * (1.0 + x))[1:], np.zeros(1)])
        return fd.sum(r * r) + out

    def rosen(x):
        return fd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def linear(x):
        return fd.sum(3.0 * x) - x[0]

    def bilinear(x):
        return fd.sum(x[:-1] * x[1:])        # mul: cross terms only, no diagonal

    return [("chain", chain), ("broyden", broyden_banded), ("rosen", rosen),
            ("linear", linear), ("bilinear", bilinear)]


@pytest.mark.parametrize("name,f", _hess_cases(), ids=[c[0] for c in _hess_cases()])
@pytest.mark.parametrize("n", [9, 40])
def test_hessian_pattern_values_and_star_coloring(name, f, n):
    x0 = RNG.uniform(0.5, 1.5, n)
    Q = fd.hessian_sparsity(f)(x0)
    assert isinstance(Q, sp.csr_array) and Q.shape == (n, n) and Q.dtype == bool
    dense = Q.toarray()
    assert np.array_equal(dense, dense.T)
    for _ in range(3):
        x = RNG.uniform(0.5, 1.5, n)
        Hd = np.atleast_2d(fd.hessian(f)(x))
        assert not np.any((Hd != 0) & ~dense), name
        H, info = fd.sparse_hessian(f, info=True)(x)
        assert isinstance(H, sp.csr_array) and H.shape == (n, n)
        assert H.dtype == np.float64
        np.testing.assert_allclose(H.toarray(), Hd, rtol=1e-12, atol=1e-12)
        assert info.colors <= max(1, n) and info.nnz == Q.nnz


def test_hessian_patterns_by_op_table():
    x = np.ones(4)
    assert fd.hessian_sparsity(lambda x: fd.sum(x[:-1] * x[1:]))(x).toarray().diagonal().sum() == 0
    assert fd.hessian_sparsity(lambda x: fd.sum(x + 2.0 * x - x))(x).nnz == 0
    Q = fd.hessian_sparsity(lambda x: fd.sin(x[0]) + x[1] * x[2] + x[3])(x).toarray()
    want = np.zeros((4, 4), dtype=bool)
    want[0, 0] = want[1, 2] = want[2, 1] = True
    assert np.array_equal(Q, want)
    # an unused nonlinear intermediate adds nothing (only what reaches the output)
    Q = fd.hessian_sparsity(lambda x: (fd.exp(x[0]), fd.sum(x * 2.0))[1])(x)
    assert Q.nnz == 0


def test_second_partials_come_from_the_op_table():
    nz = _sparse_plan._NONZERO2
    from fastad._tape import OP_INFO
    by = {name: code for code, name, _, _ in OP_INFO}
    assert not nz[by["add"]].any() and not nz[by["negative"]].any()
    assert nz[by["multiply"]].tolist() == [False, True, False]
    assert nz[by["sin"], 0] and nz[by["power"]].all()
    assert nz[by["divide"]].tolist() == [False, True, True]


# ----------------------------------------------------------------------------------
# Colorings

def _check_column_coloring(P, colors):
    # no two columns of one color share a row
    P = np.asarray(P, dtype=bool)
    for i in range(P.shape[0]):
        c = colors[np.nonzero(P[i])[0]]
        assert c.size == np.unique(c).size


def _check_star(Q, colors):
    A = np.asarray(Q, dtype=bool) & ~np.eye(Q.shape[0], dtype=bool)
    nb = [np.nonzero(A[i])[0] for i in range(A.shape[0])]
    for v in range(A.shape[0]):
        for w in nb[v]:
            assert colors[v] != colors[w]           # proper
            for x in nb[w]:
                if x == v:
                    continue
                for y in nb[x]:
                    if y in (w, v):
                        continue
                    # the path v-w-x-y must not be two-colored
                    assert not (colors[v] == colors[x] and colors[w] == colors[y])


@pytest.mark.parametrize("name,f,sizes", CASES, ids=[c[0] for c in CASES])
def test_jacobian_coloring_is_valid_and_values_equal_dense(name, f, sizes):
    for n in sizes:
        x = RNG.uniform(0.5, 1.5, n)
        tf = fd.trace(f, x)
        J, info = tf.sparse_jacobian(x, info=True)
        plan = tf._sparse_plans[("jacobian", tf._paths[0].key)]
        P = plan.pattern(sp).toarray()
        for mode, (k, colors, _, _) in plan.ways.items():
            _check_column_coloring(P if mode == "forward" else P.T, colors)
            assert k == colors.max() + 1
            np.testing.assert_allclose(
                sp.csr_array((plan._data(tf._tape, mode, "t"), plan.indices,
                              plan.indptr), shape=plan.shape).toarray(),
                _dense_jac(f, x), rtol=1e-13, atol=1e-13)
        assert info.colors == plan.ncolors == plan.colors.max() + 1
        assert info.mode == plan.mode
        assert info.mode in ("forward", "reverse")
        assert isinstance(J, sp.csr_array) and J.dtype == np.float64
        for _ in range(2):
            x = RNG.uniform(0.5, 1.5, n)
            Jd = _dense_jac(f, x)
            np.testing.assert_allclose(tf.sparse_jacobian(x).toarray(), Jd,
                                       rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(fd.sparse_jacobian(f)(x).toarray(), Jd,
                                       rtol=1e-13, atol=1e-13)


def test_colors_bounded_by_twice_the_row_nonzeros():
    x = RNG.uniform(0.5, 1.5, 400)
    J, info = fd.sparse_jacobian(laplacian, info=True)(x)
    assert info.colors <= 2 * np.diff(J.indptr).max()
    J, info = fd.sparse_jacobian(tridiagonal, info=True)(RNG.uniform(size=500))
    assert info.colors == 3


def test_row_coloring_chosen_when_fewer_colors():
    # one dense row, the rest diagonal: columns need n colors, rows need 2
    def f(x):
        return fd.concatenate([fd.reshape(fd.sum(x), (1,)), x * x])
    x = RNG.uniform(size=30)
    J, info = fd.sparse_jacobian(f, info=True)(x)
    assert info.mode == "reverse" and info.colors == 2
    np.testing.assert_allclose(J.toarray(), _dense_jac(f, x), rtol=1e-14)


def test_star_coloring_random_symmetric_patterns():
    from fastad._coloring import star_coloring
    for trial in range(20):
        n = int(RNG.integers(2, 40))
        A = RNG.uniform(size=(n, n)) < RNG.uniform(0.05, 0.4)
        A = (A | A.T) & ~np.eye(n, dtype=bool)
        rows, cols = np.nonzero(A)
        ptr, idx = _sparse_plan._csr(rows.astype(np.int64), cols.astype(np.int64), n)
        colors, k = star_coloring(ptr, idx, np.arange(n, dtype=np.int64))
        _check_star(A, colors)
        Q = A | np.eye(n, dtype=bool)
        r, c = np.nonzero(Q)
        take = _sparse_plan.star_recovery(r, c, colors, k, n)   # raises if not star
        H = RNG.normal(size=(n, n))
        H = (H + H.T) * Q
        seed = np.zeros((k, n))
        seed[colors, np.arange(n)] = 1.0
        B = (H @ seed.T).T
        np.testing.assert_allclose(B[take], H[r, c], rtol=1e-12, atol=1e-12)


def test_hessian_star_coloring_of_a_real_pattern():
    n = 60
    f = _hess_cases()[1][1]
    tf = fd.trace(f, np.ones(n))
    H, info = tf.sparse_hessian(np.ones(n), info=True)
    plan = tf._sparse_plans[("hessian", tf._paths[0].key)]
    _check_star(plan.pattern(sp).toarray(), plan.colors)
    assert info.colors <= 2 * np.diff(H.indptr).max()


# ----------------------------------------------------------------------------------
# Traces: the plan is kept; guards keep their meaning

def test_traced_sparse_jacobian_keeps_the_plan():
    x = RNG.uniform(size=50)
    tf = fd.trace(tridiagonal, x)
    tf.sparse_jacobian(x)
    plan = tf._sparse_plans[("jacobian", tf._paths[0].key)]
    tf.sparse_jacobian(x + 1.0)
    assert tf._sparse_plans[("jacobian", tf._paths[0].key)] is plan
    assert len(tf._sparse_plans) == 1


def test_traced_guards_raise_or_retrace():
    def f(x):
        if x[0] > 0:
            return x * x
        return fd.concatenate([fd.reshape(fd.sum(x), (1,)), x[1:]])
    x = np.array([1.0, 2.0, 3.0])
    tf = fd.trace(f, x)
    with pytest.raises(fd.TraceError):
        tf.sparse_jacobian(-x)
    tf = fd.trace(f, x, retrace=True)
    assert tf.sparse_jacobian(x).nnz == 3
    J = tf.sparse_jacobian(-x)
    np.testing.assert_allclose(J.toarray(), fd.jacobian(f)(-x))
    assert J.nnz == 5


def test_constant_output():
    J = fd.sparse_jacobian(lambda x: np.ones(3))(np.ones(2))
    assert J.shape == (3, 2) and J.nnz == 0
    H = fd.sparse_hessian(lambda x: 1.0)(np.ones(2))
    assert H.shape == (2, 2) and H.nnz == 0


# ----------------------------------------------------------------------------------
# Errors

def test_errors():
    with pytest.raises(ValueError, match="1-D"):
        fd.sparse_jacobian(lambda x: x)(np.ones((2, 2)))
    with pytest.raises(ValueError, match="1-D"):
        fd.jacobian_sparsity(lambda x: x)(1.0)
    with pytest.raises(ValueError, match="1-D"):
        fd.sparse_hessian(lambda x: fd.sum(x))(np.ones((2, 2)))
    with pytest.raises(ValueError, match="1-D array"):
        fd.sparse_jacobian(lambda x: fd.sum(x))(np.ones(3))      # scalar output
    with pytest.raises(ValueError, match="scalar"):
        fd.sparse_hessian(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        fd.trace(lambda x: x, np.ones((2, 2))).sparse_jacobian(np.ones((2, 2)))
    with pytest.raises(TypeError, match="callable"):
        fd.sparse_jacobian(3)
    with pytest.raises(TypeError, match="x must be"):
        fd.sparse_jacobian(lambda x: x)({"a": 1.0})


def test_import_error_without_scipy():
    code = (
        "import sys; sys.modules['scipy'] = None; sys.modules['scipy.sparse'] = None\n"
        "import numpy as np, fastad as fd\n"
        "try:\n"
        "    fd.sparse_jacobian(lambda x: x * x)(np.ones(3))\n"
        "except ImportError as e:\n"
        "    print('IMPORTERROR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "IMPORTERROR" in out.stdout and "pip install scipy" in out.stdout, out


def test_registry_sparsity_rules_declared():
    from fastad._registry import REGISTRY, SPARSITY_RULES, Primitive, declare
    for prim in REGISTRY.values():
        assert prim.sparsity in SPARSITY_RULES or callable(prim.sparsity)
        if prim.kind == "elementwise":
            assert prim.sparsity == "elementwise"
    assert REGISTRY["reshape"].sparsity == "by_index"
    assert REGISTRY["sum"].sparsity == "reduce"
    with pytest.raises(ValueError, match="sparsity"):
        declare(Primitive("bogus_sparsity", lambda x: x, "linear", sparsity="wrong"))


# ----------------------------------------------------------------------------------
# Solvers

def test_least_squares_sparse_and_dense_agree_with_scipy_fd():
    from scipy import optimize

    def bratu(x):
        n = x.size
        h2 = 1.0 / (n + 1) ** 2
        xp = fd.concatenate([np.zeros(1), x, np.zeros(1)])
        return xp[:-2] - 2.0 * x + xp[2:] + h2 * fd.exp(x)

    n = 60
    x0 = np.zeros(n)
    tol = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)
    res = fd.least_squares(bratu, x0, **tol)   # sparse by default at this size
    assert res.success and np.max(np.abs(res.fun)) < 1e-9
    assert isinstance(res.jac, sp.csr_array) or sp.issparse(res.jac)
    dense = fd.least_squares(bratu, x0, sparse=False, **tol)
    assert isinstance(dense.jac, np.ndarray)
    np.testing.assert_allclose(res.x, dense.x, atol=1e-8)
    ref = optimize.least_squares(lambda x: np.asarray(bratu(x)), x0, **tol)
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
    # the Jacobian handed to SciPy is the exact one
    np.testing.assert_allclose(np.asarray(res.jac.toarray()),
                               fd.jacobian(bratu)(res.x), rtol=1e-13, atol=1e-14)


def test_least_squares_errors():
    with pytest.raises(TypeError, match="jac"):
        fd.least_squares(lambda x: x, np.ones(2), jac="2-point")
    with pytest.raises(TypeError, match="args"):
        fd.least_squares(lambda x: x, np.ones(2), args=(1.0,))
    with pytest.raises(ValueError, match="1-D"):
        fd.least_squares(lambda x: x, np.ones((2, 2)))


def test_trust_constr_gets_the_sparse_hessian(monkeypatch):
    from scipy import optimize as scipy_optimize
    seen = {}
    real = scipy_optimize.minimize

    def spy(fun, x0, **kw):
        seen.update(kw)
        return real(fun, x0, **kw)

    monkeypatch.setattr(scipy_optimize, "minimize", spy)

    def rosen(x):
        return fd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    for trace in (False, True):
        seen.clear()
        res = fd.minimize(rosen, np.full(30, 0.9), method="trust-constr", trace=trace,
                          options={"gtol": 1e-10, "xtol": 1e-12})
        assert "hessp" not in seen
        x = RNG.uniform(size=30)
        H = seen["hess"](x)
        assert isinstance(H, sp.csr_array) and H.nnz == 3 * 30 - 2
        np.testing.assert_allclose(H.toarray(), fd.hessian(rosen)(x), rtol=1e-13)
        np.testing.assert_allclose(res.x, np.ones(30), atol=1e-6)


def test_record_rules_give_exact_patterns():
    # each array record's rule (tape.records, n >= 16 elements): the pattern equals
    # the nonzeros of the dense Jacobian at a generic point
    k = 6
    cases = {
        "transpose (by_index)": lambda x: fd.reshape(fd.transpose(fd.reshape(x, (k, k))),
                                                     (-1,)) * 2.0,
        "sum over an axis (reduce)": lambda x: fd.sum(fd.reshape(x, (k, k)), axis=0),
        "softmax (callable)": lambda x: fd.reshape(
            fd.softmax(fd.reshape(x, (k, k)), axis=1), (-1,)),
        "broadcast (elementwise)": lambda x: fd.reshape(
            fd.reshape(x, (k, k)) * fd.reshape(x, (k, k))[:1], (-1,)),
        "matmul of two variables (callable)": lambda x: fd.reshape(
            fd.matmul(fd.reshape(x, (k, k)), fd.reshape(x, (k, k))[:, :2]), (-1,)),
    }
    x = RNG.uniform(0.5, 1.5, k * k)
    for name, f in cases.items():
        tf = fd.trace(f, x)
        assert tf._tape.records, name           # the rule under test ran
        P = fd.jacobian_sparsity(f)(x).toarray()
        J = _dense_jac(f, x)
        assert np.array_equal(P, J != 0), name
    # einsum has no rule of its own: "dense", a superset
    f = lambda x: fd.reshape(np.einsum("ij,jk->ik", fd.reshape(x, (k, k)),
                                       np.eye(k)), (-1,))
    P = fd.jacobian_sparsity(f)(x).toarray()
    assert P.all() and not np.any((_dense_jac(f, x) != 0) & ~P)


@pytest.mark.parametrize("name,f,sizes", CASES, ids=[c[0] for c in CASES])
def test_pattern_in_many_chunks_equals_one_pass(name, f, sizes, monkeypatch):
    # over 64 inputs, a pass covers one 64-bit word of inputs at a time when the
    # row budget is tiny: the chunks reuse one buffer, and must give the same
    x = RNG.uniform(0.5, 1.5, 144)          # 12 x 12, 36 blocks of 4
    whole = fd.jacobian_sparsity(f)(x).toarray()
    hwhole = fd.hessian_sparsity(lambda v: fd.sum(f(v) ** 2))(x).toarray()
    monkeypatch.setattr(_sparse_plan, "_MAX_WORDS", 1)
    assert np.array_equal(fd.jacobian_sparsity(f)(x).toarray(), whole)
    assert np.array_equal(fd.hessian_sparsity(lambda v: fd.sum(f(v) ** 2))(x).toarray(),
                          hwhole)
    assert not np.any((_dense_jac(f, x) != 0) & ~whole)


def test_by_index_rule_passes_masks_and_maps_constants_to_nothing():
    # a record of fd.where (the registry's rule is "by_index"; today where records
    # slots, so a stand-in record runs the rule as a future where record would)
    class WhereRecord:
        name = "where"
        base, size, out_shape = 10, 4, (4,)
        slots = (-1, 1, -1)                       # mask constant, x at slots 1..4, c const
        shapes = ((4,), (4,), (4,))
        values = [np.array([True, False, True, False]), np.ones(4), np.full(4, 7.0)]

        @staticmethod
        def _compute(vals):
            return np.where(vals[0], vals[1], vals[2])

    bits = np.zeros((20, 1), dtype=np.uint64)
    bits[1:5, 0] = [1, 2, 4, 8]                   # x[j] depends on input j
    out = _sparse_plan._record_bits(WhereRecord, bits, 1)
    assert out[:, 0].tolist() == [1, 0, 4, 0]


def test_hessian_block_and_single_direction_sweeps_agree():
    f = _hess_cases()[1][1]
    x = RNG.uniform(0.5, 1.5, 40)
    tf = fd.trace(f, x)
    H = tf.sparse_hessian(x)
    plan = tf._sparse_plans[("hessian", tf._paths[0].key)]
    assert plan.sweep in ("block", "single") and plan.ncolors > 1
    Hd = fd.hessian(f)(x)
    for how in ("block", "single"):
        hv = plan._hv(tf._tape, how, "t")
        np.testing.assert_allclose(hv[plan.take], Hd[plan.rows, plan.cols], rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_allclose(H.toarray(), Hd, rtol=1e-12, atol=1e-12)
