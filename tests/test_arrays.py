"""Array Vars: every array operation's gradient against central differences and
closed forms, over many shapes and broadcasting patterns.

Arrays of at least fastad._arrays.RECORD_MIN_SIZE elements are recorded as array
records (NumPy kernels), smaller ones as per-element scalar slots; the shapes below
cover both paths (SMALL / LARGE), and each test checks the path it claims to test.
"""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings, strategies as st

import fastad as fd
from fastad import _arrays, _tape
from _record_paths import elementwise_records  # noqa: F401,E402  (fixture)

# sizes from RECORD_MIN_SIZE up test every op's record, elementwise ones too
pytestmark = pytest.mark.usefixtures("elementwise_records")

MIN = _arrays.RECORD_MIN_SIZE
SMALL = (3, 2)          # scalar slots
LARGE = (9, 8)          # one record per op
assert np.prod(SMALL) < MIN <= np.prod(LARGE)


from _numdiff import num_grad


def value_of(out):
    return out.value if isinstance(out, fd.Var) else out


def check(f, x, rtol=1e-6, atol=1e-8):
    """fd.grad(f) at x against central differences of f on plain arrays."""
    g = fd.grad(f)(x)
    ng = num_grad(lambda v: float(value_of(f(v))), x)
    np.testing.assert_allclose(g, ng, rtol=rtol, atol=atol)
    return g


def records_of(f, *args):
    """Names of the array records f records on a tape at args."""
    with fd.Tape() as t:
        vs = [t.variable(a) for a in args]
        f(*vs)
    return [r.name for r in t.records]


rng = np.random.default_rng(1)


def sample(shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


# ---------------------------------------------------------------------------------
# Elementwise: every op of the table, both paths

UNARY = [(code, name, dom[0]) for code, name, arity, dom in _tape.OP_INFO if arity == 1]
BINARY = [(code, name, dom) for code, name, arity, dom in _tape.OP_INFO if arity == 2]
SMOOTH_SKIP = {"sign", "floor", "ceil", "abs", "relu"}   # kinks: checked separately


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("code,name,dom", UNARY, ids=[u[1] for u in UNARY])
def test_unary_gradient_matches_elementwise_derivative(code, name, dom, shape):
    x = sample(shape, *dom)
    fn = getattr(_tape, name)
    w = sample(shape)
    g = fd.grad(lambda v: fd.sum(fn(v) * w))(x)
    # closed form: the scalar path's derivative at each element, times w
    expect = np.array([_tape._test_eval(code, xi, 0.0)[1] for xi in x.ravel()])
    np.testing.assert_allclose(g, expect.reshape(shape) * w, rtol=1e-12, atol=1e-14)
    if name not in SMOOTH_SKIP:
        check(lambda v: fd.sum(fn(v) * w), x, rtol=1e-5)
    with fd.Tape() as t:
        y = fn(t.variable(x))
    assert bool(t.records) == (x.size >= MIN)
    np.testing.assert_allclose(np.ravel(y.value), [_tape._test_eval(code, xi, 0.0)[0]
                                         for xi in x.ravel()], rtol=1e-13)


SHAPE_PAIRS = [((9, 8), (9, 8)), ((9, 8), (8,)), ((9, 1), (1, 8)), ((9, 8), ()),
               ((), (9, 8)), ((2, 9, 8), (9, 1)), ((3, 2), (2,)), ((70,), (70,))]


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
@pytest.mark.parametrize("code,name,dom", BINARY, ids=[b[1] for b in BINARY])
def test_binary_broadcasting_gradients(code, name, dom, sa, sb):
    if name in ("floor_divide", "mod", "maximum", "minimum"):
        # piecewise: avoid the kinks by sampling away from them below
        pass
    fn = getattr(_tape, name)
    a = sample(sa, *dom[0])
    b = sample(sb, *dom[1])
    if name == "mod":
        a = np.round(a) + 0.3
    w = sample(np.broadcast_shapes(sa, sb))
    ga, gb = fd.grad(lambda x, y: fd.sum(fn(x, y) * w), argnums=(0, 1))(a, b)
    assert np.shape(ga) == sa and np.shape(gb) == sb
    na = num_grad(lambda x: float(np.sum(value_of(fn(x, b)) * w)), a)
    nb = num_grad(lambda y: float(np.sum(value_of(fn(a, y)) * w)), b)
    np.testing.assert_allclose(ga, na, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gb, nb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_constant_operands_and_scalar_vars_on_either_side(shape):
    c = sample(shape)

    def f(v, s):
        return fd.sum((c - v) * s + v / (2.0 + s * s) - 3.0 * v ** 2 + s ** 1.3
                      + 1.5 ** v)

    x = sample(shape)
    gx, gs = fd.grad(f, argnums=(0, 1))(x, 0.7)
    nx = num_grad(lambda v: float(value_of(f(v, 0.7))), x)
    ns = (float(value_of(f(x, 0.7 + 1e-6))) - float(value_of(f(x, 0.7 - 1e-6)))) / 2e-6
    np.testing.assert_allclose(gx, nx, rtol=1e-6, atol=1e-8)
    assert gs == pytest.approx(ns, rel=1e-6)


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_kinks_follow_jax_conventions(shape):
    x = np.zeros(shape)
    x.flat[1] = 1.0
    x.flat[2] = -1.0
    g = fd.grad(lambda v: fd.sum(fd.abs(v) + fd.relu(v)))(x)
    expect = np.zeros(shape)
    expect.flat[1] = 2.0
    expect.flat[2] = -1.0
    np.testing.assert_array_equal(g, expect)
    # maximum splits the gradient evenly on ties
    ga, gb = fd.grad(lambda a, b: fd.sum(fd.maximum(a, b)), argnums=(0, 1))(x, x)
    np.testing.assert_array_equal(ga, np.full(shape, 0.5))
    np.testing.assert_array_equal(gb, np.full(shape, 0.5))


def test_zero_adjoint_does_not_turn_inf_partial_into_nan():
    # sqrt'(0) = inf on an element whose result is not used
    x = np.zeros(LARGE)
    x[0, 0] = 4.0
    mask = np.zeros(LARGE)
    mask[0, 0] = 1.0
    g = fd.grad(lambda v: fd.sum(fd.sqrt(v) * mask))(x)
    assert np.isfinite(g).all()
    assert g[0, 0] == pytest.approx(0.25)


def test_domain_errors_give_nan_without_warnings():
    x = np.full(LARGE, -1.0)
    with fd.Tape() as t:
        y = fd.log(t.variable(x))
    assert np.isnan(y.value).all()


# ---------------------------------------------------------------------------------
# Contractions

MATMUL_SHAPES = [((5,), (5,)), ((4, 5), (5,)), ((5,), (5, 6)), ((4, 5), (5, 6)),
                 ((2, 4, 5), (5, 6)), ((2, 4, 5), (2, 5, 3)), ((4, 5), (3, 5, 2)),
                 ((1, 5), (5, 1)), ((12, 10), (10, 9))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_gradients_closed_form(sa, sb):
    a, b = sample(sa), sample(sb)
    out_shape = np.matmul(a, b).shape
    w = sample(out_shape)
    f = lambda x, y: fd.sum((x @ y) * w)
    ga, gb = fd.grad(f, argnums=(0, 1))(a, b)
    # closed form for 2-D: dA = W B^T, dB = A^T W; in general check differences
    if len(sa) == 2 and len(sb) == 2:
        np.testing.assert_allclose(ga, w @ b.T, rtol=1e-12)
        np.testing.assert_allclose(gb, a.T @ w, rtol=1e-12)
    np.testing.assert_allclose(ga, num_grad(lambda x: float(np.sum((x @ b) * w)), a),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, num_grad(lambda y: float(np.sum((a @ y) * w)), b),
                               rtol=1e-6, atol=1e-8)
    assert "matmul" in records_of(lambda x, y: x @ y, a, b)


def test_matmul_with_constant_operands_and_errors():
    A = sample((4, 5))
    x = sample(5)
    np.testing.assert_allclose(fd.grad(lambda v: fd.sum(fd.matmul(A, v)))(x),
                               A.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fd.grad(lambda v: fd.sum(fd.matmul(v, A.T)))(x),
                               A.sum(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="matmul"):
        fd.grad(lambda v: fd.sum(fd.matmul(v, np.ones((4, 2)))))(x)
    with pytest.raises(ValueError, match="matmul"):
        fd.grad(lambda v: fd.sum(fd.matmul(v, 2.0)))(x)


@pytest.mark.parametrize("sa,sb", [((5,), (5,)), ((3, 5), (5,)), ((3, 5), (5, 2)),
                                   ((2, 3, 4), (4, 2)), ((2, 3, 4), (5, 4, 2)), ((), (3,))])
def test_dot_matches_numpy_and_differences(sa, sb):
    a, b = sample(sa), sample(sb)
    w = sample(np.shape(np.dot(a, b)))
    ga, gb = fd.grad(lambda x, y: fd.sum(fd.dot(x, y) * w), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, num_grad(lambda x: float(np.sum(np.dot(x, b) * w)), a),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, num_grad(lambda y: float(np.sum(np.dot(a, y) * w)), b),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij->", [(3, 4)]), ("i,i->", [(6,), (6,)]),
    ("ijk,ik->j", [(2, 3, 4), (2, 4)]), ("ij,jk", [(3, 4), (4, 2)]),
    ("ij,k->ijk", [(2, 3), (4,)]), ("ij->ji", [(3, 5)]), ("ij,ij->i", [(4, 3), (4, 3)]),
    ("ii,ij->j", [(3, 3), (3, 2)])])
def test_einsum_gradients(spec, shapes):
    ops = [sample(s) for s in shapes]
    w = sample(np.shape(np.einsum(spec, *ops)))
    # differentiate the last operand (a repeated index only ever sits in a constant)
    others = ops[:-1]
    f = lambda v: fd.sum(np.einsum(spec, *others, v) * w)
    g = fd.grad(f)(ops[-1])
    ng = num_grad(lambda v: float(np.sum(np.einsum(spec, *others, v) * w)), ops[-1])
    np.testing.assert_allclose(g, ng, rtol=1e-6, atol=1e-8)
    if len(ops) == 2 and len(set(spec.split("->")[0].split(",")[0])) == len(
            spec.split("->")[0].split(",")[0]):
        g0 = fd.grad(lambda v: fd.sum(np.einsum(spec, v, ops[1]) * w))(ops[0])
        n0 = num_grad(lambda v: float(np.sum(np.einsum(spec, v, ops[1]) * w)), ops[0])
        np.testing.assert_allclose(g0, n0, rtol=1e-6, atol=1e-8)


def test_einsum_diagonals_and_ellipsis_on_vars():
    # repeated indices and '...' on Vars (fastad._prims_array.einsum; more in
    # tests/test_array_api.py)
    x = sample((3, 3))
    np.testing.assert_allclose(fd.grad(lambda v: np.einsum("ii->", v))(x), np.eye(3))
    np.testing.assert_allclose(
        fd.grad(lambda v: fd.sum(np.einsum("...i->...", v)))(np.ones((2, 3))), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"numpy\.einsum: 1 operands for 2 subscript"):
        fd.grad(lambda v: fd.sum(np.einsum("ij,jk->ik", v)))(x)


def test_outer():
    a, b = sample(4), sample((2, 3))
    w = sample((4, 6))
    ga, gb = fd.grad(lambda x, y: fd.sum(np.outer(x, y) * w), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, w @ b.ravel(), rtol=1e-12)
    np.testing.assert_allclose(gb, (a @ w).reshape(2, 3), rtol=1e-12)


# ---------------------------------------------------------------------------------
# Reductions

@st.composite
def array_and_axis(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    big = draw(st.booleans())
    if big:
        shape = shape[:-1] + (shape[-1] * 20,)
    axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          st.sets(st.integers(0, ndim - 1), min_size=1).map(tuple)))
    keepdims = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).uniform(-2, 2, size=shape), axis, keepdims


@settings(max_examples=40, deadline=None)
@given(array_and_axis(), st.sampled_from(["sum", "mean", "max", "min", "prod",
                                          "logsumexp"]))
def test_reductions_value_and_gradient(case, kind):
    x, axis, keepdims = case
    fdf = {"sum": fd.sum, "mean": fd.mean, "max": np.max, "min": np.min,
           "prod": fd.prod, "logsumexp": fd.logsumexp}[kind]
    npf = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
           "prod": np.prod,
           "logsumexp": lambda v, axis, keepdims: sp.logsumexp(v, axis=axis,
                                                                keepdims=keepdims)}[kind]
    expect = npf(x, axis=axis, keepdims=keepdims)
    w = np.random.default_rng(0).uniform(-1, 1, size=np.shape(expect))
    with fd.Tape() as t:
        v = t.variable(x)
        out = fdf(v, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expect)
    np.testing.assert_allclose(out.value, expect, rtol=1e-12, atol=1e-12)
    g = fd.grad(lambda v: fd.sum(fdf(v, axis=axis, keepdims=keepdims) * w))(x)
    ng = num_grad(lambda v: float(np.sum(npf(v, axis=axis, keepdims=keepdims) * w)), x)
    np.testing.assert_allclose(g, ng, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [4, 80])
def test_max_min_split_ties_evenly(n):
    x = np.linspace(0, 1, n)
    x[1] = x[2] = 5.0
    g = fd.grad(lambda v: np.max(v))(x)
    expect = np.zeros(n)
    expect[1] = expect[2] = 0.5
    np.testing.assert_array_equal(g, expect)
    x = -x
    np.testing.assert_array_equal(fd.grad(lambda v: np.min(v))(x), expect)


def test_large_sum_is_numpys_pairwise_sum():
    x = rng.uniform(size=10000)
    with fd.Tape() as t:
        s = fd.sum(t.variable(x))
    assert s.value == np.sum(x)
    assert [r.name for r in t.records] == ["sum"]


# ---------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp

@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), -1), ((3, 4), 0),
                                        ((10, 12), -1), ((10, 12), 0), ((4, 5, 6), 1)])
@pytest.mark.parametrize("fn,ref", [(fd.softmax, sp.softmax),
                                    (fd.log_softmax, sp.log_softmax)])
def test_softmax_family_values_and_gradients(shape, axis, fn, ref):
    x = sample(shape, -3, 3)
    w = sample(shape)
    with fd.Tape() as t:
        y = fn(t.variable(x), axis=axis)
    np.testing.assert_allclose(y.value, ref(x, axis=axis), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fn(x, axis=axis), ref(x, axis=axis), rtol=1e-12)
    check(lambda v: fd.sum(fn(v, axis=axis) * w), x, rtol=1e-5)


@pytest.mark.parametrize("shape", [(6,), (10, 12)])
@pytest.mark.parametrize("scale", [1e3, -1e3])
def test_softmax_family_is_stable_at_large_inputs(shape, scale):
    x = sample(shape, 0, 1) * scale
    for fn, ref in [(fd.softmax, sp.softmax), (fd.log_softmax, sp.log_softmax)]:
        g = fd.grad(lambda v: fd.sum(fn(v) * np.arange(v.size).reshape(v.shape)))(x)
        assert np.isfinite(g).all()
        with fd.Tape() as t:
            y = fn(t.variable(x))
        assert np.isfinite(y.value).all()
        # log_softmax near the max is a difference of numbers ~1e3: absolute error
        np.testing.assert_allclose(y.value, ref(x, axis=-1), rtol=1e-12,
                                   atol=1e-300 if fn is fd.softmax else 1e-15 * abs(scale))
    g = fd.grad(lambda v: fd.logsumexp(v))(x)
    np.testing.assert_allclose(g, sp.softmax(x), rtol=1e-12, atol=1e-300)


# ---------------------------------------------------------------------------------
# Shape ops and indexing

@pytest.mark.parametrize("shape", [SMALL, LARGE, (2, 6, 7)])
def test_shape_ops(shape):
    x = sample(shape)
    n = x.size
    w_flat = sample(n)
    check(lambda v: fd.sum(fd.reshape(v, (-1,)) * w_flat), x)
    check(lambda v: fd.sum(v.T * sample(x.T.shape) if False else v.T * x.T), x)
    check(lambda v: fd.sum(fd.transpose(v) ** 2), x)
    e = np.expand_dims(x, 1)
    check(lambda v: fd.sum(np.squeeze(np.expand_dims(v, 1), 1) * x), x)
    assert np.expand_dims(fd.Tape().variable(x), 0).shape == (1,) + shape
    assert e.shape == np.expand_dims(x, 1).shape


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_indexing_kinds(shape):
    x = sample(shape)
    mask = x > 0
    idx = np.array([0, 2, 1, 0])
    f = lambda v: (fd.sum(v[1:3] * 2.0) + v[0, 1] * v[-1, -1] + fd.sum(v[mask] ** 2)
                   + fd.sum(v[idx]) + fd.sum(v[None, :, 0]))
    check(f, x)


def test_setitem_raises_typeerror_naming_the_alternatives():
    with fd.Tape() as t:
        x = t.variable(np.ones(LARGE))
        with pytest.raises(TypeError, match="immutable.*fd.stack.*fd.where"):
            x[0] = 1.0


def test_array_var_attributes():
    with fd.Tape() as t:
        x = t.variable(np.arange(80.0).reshape(8, 10))
        y = x * 2.0
    assert y.shape == (8, 10) and y.ndim == 2 and y.size == 80 and len(y) == 8
    assert y.T.shape == (10, 8)
    assert [r.shape for r in y] == [(10,)] * 8
    assert "Var(" in repr(y)
    assert not y.value.flags.writeable


# ---------------------------------------------------------------------------------
# Mixing scalar loops and vectorised code; pytrees of arrays

@pytest.mark.parametrize("n", [5, 100])
def test_scalar_loop_mixed_with_vectorised_code(n):
    def f(x):
        acc = 0.0
        for i in range(len(x) - 1):          # scalar-style loop over an array Var
            acc = acc + (x[i + 1] - x[i] ** 2) ** 2
        y = fd.tanh(x) @ np.linspace(-1, 1, len(x))   # vectorised
        z = fd.stack([x[0] * y, acc, fd.sin(x[1])])    # back to an array
        return fd.sum(z * z) + fd.mean(fd.exp(x) * acc)
    check(f, sample(n, -1, 1), rtol=1e-5)


def test_target_inside_a_record_block():
    A = sample((70, 3))
    x = sample(3)
    for i in (0, 35, 69):
        g = fd.grad(lambda v: (A @ v)[i])(x)
        np.testing.assert_allclose(g, A[i], rtol=1e-14)


def _mlp_loss(p, X, Y):
    h = np.tanh(X @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    return -np.sum(fd.log_softmax(z) * Y) / X.shape[0]


def _mlp_numpy_grad(p, X, Y):
    B = X.shape[0]
    h = np.tanh(X @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    dz = (sp.softmax(z, axis=1) - Y) / B
    dh = dz @ p["W2"].T * (1 - h * h)
    return {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ dz, "b2": dz.sum(0)}


@pytest.mark.parametrize("batch", [2, 32])
def test_pytree_of_weight_matrices_mlp(batch):
    r = np.random.default_rng(batch)
    p = {"W1": r.normal(size=(6, 16)) * 0.5, "b1": r.normal(size=16) * 0.1,
         "W2": r.normal(size=(16, 4)) * 0.5, "b2": np.zeros(4)}
    X = r.normal(size=(batch, 6))
    Y = np.eye(4)[r.integers(0, 4, batch)]
    val, g = fd.value_and_grad(_mlp_loss)(p, X, Y)
    expect = _mlp_numpy_grad(p, X, Y)
    assert set(g) == set(p)
    for k in p:
        assert g[k].shape == p[k].shape
        np.testing.assert_allclose(g[k], expect[k], rtol=1e-10, atol=1e-14)
    ref = -np.sum(sp.log_softmax(np.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"],
                                 axis=1) * Y) / batch
    assert val == pytest.approx(ref, rel=1e-12)


# ---------------------------------------------------------------------------------
# The record protocol other engines use: forward (replay) and tangent

RECORD_CASES = [
    ("tanh", lambda v: fd.tanh(v)),
    ("add-broadcast", lambda v: v + np.arange(8.0)),
    ("matmul", lambda v: v @ np.ones((8, 3))),
    ("sum-axis", lambda v: fd.sum(v, axis=0)),
    ("max-axis", lambda v: np.max(v, axis=1, keepdims=True)),
    ("log_softmax", lambda v: fd.log_softmax(v)),
    ("logsumexp", lambda v: fd.logsumexp(v, axis=1)),
    ("softmax", lambda v: fd.softmax(v, axis=0)),
    ("transpose", lambda v: v.T),
    ("einsum", lambda v: np.einsum("ij,ij->j", v, v)),
]


@pytest.mark.parametrize("name,f", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_record_forward_and_tangent(name, f):
    x0 = sample(LARGE)
    with fd.Tape() as t:
        xv = t.variable(x0)
        y = f(xv)
    assert len(t.records) == 1
    rec = t.records[0]
    # forward at a new input reproduces what a fresh recording gives
    x1 = sample(LARGE)
    val = t._slot_values()
    val[xv_slot(xv):xv_slot(xv) + x0.size] = x1.ravel()
    rec.forward(val)
    with fd.Tape() as t2:
        y1 = f(t2.variable(x1))
    np.testing.assert_array_equal(val[rec.base:rec.base + rec.size],
                                  np.ravel(y1.value))
    # tangent: directional derivative against central differences
    v = sample(LARGE)
    tan = np.zeros_like(val)
    tan[xv_slot(xv):xv_slot(xv) + x0.size] = v.ravel()
    rec.tangent(val, tan)
    h = 1e-6
    with fd.Tape() as t3:
        yp = f(t3.variable(x1 + h * v)).value
        ym = f(t3.variable(x1 - h * v)).value
    np.testing.assert_allclose(tan[rec.base:rec.base + rec.size],
                               np.ravel((yp - ym) / (2 * h)), rtol=1e-5, atol=1e-7)


def xv_slot(v):
    return _tape._test_slot(v)


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_debug_nans_names_the_array_operation(shape):
    x = np.full(shape, 2.0)
    with fd.debug_nans():
        with pytest.raises(FloatingPointError, match="log"):
            fd.grad(lambda v: fd.sum(fd.log(v - 3.0)))(x)
        # NaN already in the input: not this operation's fault
        x_nan = x.copy()
        x_nan.flat[0] = np.nan
        g = fd.grad(lambda v: fd.sum(fd.exp(v)))(x_nan)
        assert np.isnan(g.flat[0])


@pytest.mark.parametrize("shape,key", [((10,), np.s_[1:]), ((10,), np.s_[:-1]),
                                       ((10,), np.s_[2:7]), ((4, 5), np.s_[1:3]),
                                       ((4, 5), np.s_[2]), ((2, 3, 4), np.s_[1, 1:]),
                                       ((4, 5), np.s_[:, 1:]), ((10,), np.s_[::2]),
                                       # advanced: a C-contiguous view of a temporary
                                       # (not consecutive slots; quantile met it)
                                       ((4, 5), np.s_[:, [3]]), ((2, 3), np.s_[..., [1]])])
def test_a_contiguous_slice_copies_the_slots_a_gather_would(shape, key):
    # a basic slice whose elements are consecutive slots takes a C loop with no
    # index array; its slots must be the gather's, which an integer-array index
    # of the same elements takes
    x0 = sample(shape)
    flat = np.arange(x0.size).reshape(shape)[key]
    with fd.Tape() as t1:
        a = t1.variable(x0)[key]
    with fd.Tape() as t2:
        b = t2.variable(x0)[np.unravel_index(flat.reshape(-1), shape)]
    assert a.shape == flat.shape and b.size == flat.size
    np.testing.assert_array_equal(a.value, x0[key])
    for u, v in zip(t1._slot_arrays(), t2._slot_arrays()):
        np.testing.assert_array_equal(u, v)
    g = fd.grad(lambda v: fd.sum(fd.sin(v[key]) * 2.0))(x0)
    expect = np.zeros(shape)
    expect[key] = 2.0 * np.cos(x0[key])
    np.testing.assert_allclose(g, expect, rtol=1e-14)
