"""NumPy's own functions on Vars go through __array_ufunc__ / __array_function__:
supported ones record on the tape (checked by their gradients), everything else
raises TypeError naming the function, never a silently detached result."""
import re
import numpy as np
import pytest

import fastad as fd
from fastad import _tape

rng = np.random.default_rng(7)


from _numdiff import num_grad


def check(f, x, rtol=1e-6):
    """f works on Vars (through NumPy dispatch) and on arrays; gradients agree."""
    g = fd.grad(lambda v: f(v))(x)
    ng = num_grad(lambda v: float(f(v)), x)
    np.testing.assert_allclose(g, ng, rtol=rtol, atol=1e-8)


# name -> the test domain of the op's first argument (from the op table)
DOMAIN = {name: dom[0] for _, name, _, dom in _tape.OP_INFO}
TABLE_UFUNCS = sorted(name for name in DOMAIN
                      if isinstance(getattr(np, name, None), np.ufunc))


@pytest.mark.parametrize("shape", [(4,), (9, 8)])
@pytest.mark.parametrize("name", TABLE_UFUNCS)
def test_every_table_ufunc_dispatches(name, shape):
    uf = getattr(np, name)
    lo, hi = DOMAIN[name]
    x = rng.uniform(max(lo, 0.3), min(hi, 2.0), size=shape)
    w = rng.uniform(-1, 1, size=shape)
    if uf.nin == 1:
        check(lambda v: np.sum(uf(v) * w), x)
    else:
        c = rng.uniform(0.3, 0.9, size=shape)
        if name in ("floor_divide", "remainder", "mod"):
            c = c + 1.0
        check(lambda v: np.sum(uf(v, c) * w), x)
        check(lambda v: np.sum(uf(c, v) * w), x)


@pytest.mark.parametrize("shape", [(4,), (9, 8)])
def test_ufunc_aliases_and_operators_with_ndarray_on_the_left(shape):
    x = rng.uniform(0.5, 1.5, size=shape)
    A = rng.uniform(-1, 1, size=shape)
    check(lambda v: np.sum(np.absolute(v - 1.0) + np.true_divide(A, v)
                           + np.reciprocal(v) + np.fabs(v)), x)
    check(lambda v: np.sum(A * v + A - v + A / v + A ** 2 * v ** A), x)


def test_ndarray_matmul_var_and_var_matmul_ndarray():
    A = rng.uniform(-1, 1, size=(5, 4))
    x = rng.uniform(-1, 1, size=4)
    g = fd.grad(lambda v: np.sum(A @ v))(x)
    np.testing.assert_allclose(g, A.sum(axis=0), rtol=1e-12)
    g = fd.grad(lambda v: np.sum(v @ A.T))(x)
    np.testing.assert_allclose(g, A.sum(axis=0), rtol=1e-12)
    g = fd.grad(lambda v: np.sum(np.matmul(A, v)))(x)
    np.testing.assert_allclose(g, A.sum(axis=0), rtol=1e-12)


FUNCTIONS = [
    ("sum", lambda v: np.sum(v, axis=0) @ np.arange(1.0, 9.0)),
    ("sum-keepdims", lambda v: np.sum(np.sum(v, axis=1, keepdims=True) ** 2)),
    ("mean", lambda v: np.mean(v ** 2) + np.mean(v, axis=(0, 1))),
    ("prod", lambda v: np.prod(v[:2, :3])),
    ("max", lambda v: np.max(v) + np.sum(np.max(v, axis=0))),
    ("amin", lambda v: np.sum(np.amin(v, axis=1))),
    ("min-method-free", lambda v: np.sum(np.min(v, axis=1, keepdims=True))),
    ("dot", lambda v: np.sum(np.dot(v, np.ones(8)) ** 2)),
    ("dot-T", lambda v: np.sum(np.dot(v.T, v))),
    ("matmul", lambda v: np.sum(np.matmul(v, v.T))),
    ("inner", lambda v: np.sum(np.inner(v, v))),
    ("outer", lambda v: np.sum(np.outer(v[0], v[1]) ** 2)),
    ("einsum", lambda v: np.einsum("ij,ij->", v, v)),
    ("reshape", lambda v: np.sum(np.reshape(v, (4, 18)) * np.arange(72.0).reshape(4, 18))),
    ("reshape-method", lambda v: np.sum(v.reshape(-1) * np.arange(72.0))),
    ("transpose", lambda v: np.sum(np.transpose(v) * np.arange(72.0).reshape(8, 9))),
    ("ravel", lambda v: np.sum(np.ravel(v) * np.arange(72.0))),
    ("squeeze", lambda v: np.sum(np.squeeze(v[None]) * v)),
    ("expand_dims", lambda v: np.sum(np.expand_dims(v, 0) * v)),
    ("concatenate", lambda v: np.sum(np.concatenate([v, v ** 2], axis=1) ** 2)),
    ("stack", lambda v: np.sum(np.stack([v, 2.0 * v], axis=0) ** 3)),
    ("where", lambda v: np.sum(np.where(v.value > 0.5 if hasattr(v, "value") else v > 0.5,
                                        v ** 2, np.sin(v)))),
    ("clip", lambda v: np.sum(np.clip(v, 0.3, 0.7) ** 2)),
    ("exp-log", lambda v: np.sum(np.log(np.exp(v) + 1.0))),
    ("method-sum", lambda v: (v * v).sum() + v.sum(axis=0).sum()),
    ("add.reduce", lambda v: np.sum(np.add.reduce(v, axis=0) ** 2)),
    ("maximum.reduce", lambda v: np.sum(np.maximum.reduce(v, axis=1))),
]


@pytest.mark.parametrize("name,f", FUNCTIONS, ids=[c[0] for c in FUNCTIONS])
def test_numpy_functions_on_vars(name, f):
    x = rng.uniform(0.05, 0.95, size=(9, 8))
    check(f, x, rtol=1e-5)


def test_shape_queries():
    with fd.Tape() as t:
        x = t.variable(np.ones((3, 4)))
        assert np.shape(x) == (3, 4) and np.ndim(x) == 2 and np.size(x) == 12


UNSUPPORTED = [
    # (median and cumprod are supported now: fastad._prims_array)
    ("partition", lambda v: np.partition(v, 1)),
    ("cov", lambda v: np.cov(v)),
    ("fft", lambda v: np.fft.fft(v)),
    ("ldexp", lambda v: np.ldexp(v, 2)),
    ("accumulate", lambda v: np.add.accumulate(v)),
    ("out=", lambda v: np.sin(v, out=np.empty(v.shape))),
    ("where-1arg", lambda v: np.where(v)),
    ("asarray", lambda v: np.asarray(v)),
]


@pytest.mark.parametrize("name,f", UNSUPPORTED, ids=[c[0] for c in UNSUPPORTED])
def test_unsupported_numpy_raises_typeerror_naming_it(name, f):
    with fd.Tape() as t:
        x = t.variable(np.linspace(0.1, 1.0, 5))
        with pytest.raises(TypeError) as info:
            f(x)
    msg = str(info.value)
    key = {"out=": "out", "where-1arg": "where", "asarray": "detach",
           "fft": "fft"}.get(name, name)
    assert key in msg


# np.inner(a, b) sums over the last axis of both: shape a.shape[:-1] + b.shape[:-1]
# (a scalar operand multiplies).  It is not np.dot: inner(a, B) is B @ a.
INNER_SHAPES = [
    ((), ()), ((), (3,)), ((3,), ()), ((), (2, 3)), ((2, 3), ()),
    ((3,), (3,)), ((3,), (3, 3)), ((3, 3), (3,)), ((3,), (2, 3)), ((2, 3), (3,)),
    ((2, 3), (4, 3)), ((3, 3), (3, 3)), ((2, 2, 3), (3,)), ((3,), (2, 2, 3)),
    ((2, 2, 3), (4, 3)), ((4, 3), (2, 2, 3)), ((2, 1, 3), (2, 4, 3)),
    ((1, 2, 1, 2), (3, 1, 2)), ((0,), (0,)), ((2, 0), (3, 0)),
]


@pytest.mark.parametrize("sa, sb", INNER_SHAPES, ids=["%s-%s" % s for s in INNER_SHAPES])
@pytest.mark.parametrize("which", ["var-var", "var-array", "array-var"])
def test_inner_follows_numpy_for_every_shape(sa, sb, which):
    r = np.random.default_rng(len(sa) * 10 + len(sb))
    A, B = r.normal(size=sa), r.normal(size=sb)
    expect = np.inner(A, B)
    W = r.normal(size=np.shape(expect))      # a scalar target that sees every element
    var_a, var_b = which != "array-var", which != "var-array"

    def target(a, b):
        return np.sum(W * np.inner(a, b))

    with fd.Tape() as tape:
        a = tape.variable(A) if var_a else A
        b = tape.variable(B) if var_b else B
        out = np.inner(a, b)
        y = target(a, b)
    assert type(out) is fd.Var and out.shape == np.shape(expect)
    np.testing.assert_allclose(out.value, expect, rtol=1e-13, atol=1e-15)
    if var_a:
        np.testing.assert_allclose(np.asarray(tape.gradient(y, a)), num_grad(
            lambda v: target(v, B), A), rtol=1e-7, atol=1e-9)
    if var_b:
        np.testing.assert_allclose(np.asarray(tape.gradient(y, b)), num_grad(
            lambda v: target(A, v), B), rtol=1e-7, atol=1e-9)


def test_inner_of_a_vector_and_a_matrix_is_matrix_times_vector():
    a, B = np.array([1.0, 2.0, 3.0]), np.arange(9.0).reshape(3, 3)
    g = fd.grad(lambda v: np.sum(np.inner(v, B) * np.array([1.0, 0.0, 0.0])))(a)
    np.testing.assert_array_equal(g, B[0])          # d/da (B @ a)[0] = B[0], not B[:, 0]
    out = fd.grad(lambda M: np.inner(a, M)[2])(B)
    np.testing.assert_array_equal(out, np.outer([0.0, 0.0, 1.0], a))


def test_inner_shape_mismatch_is_a_value_error():
    with fd.Tape() as t:
        x = t.variable(np.ones(3))
        with pytest.raises(ValueError, match="inner"):
            np.inner(x, np.ones(2))
        with pytest.raises(ValueError, match="inner"):
            np.inner(np.ones((2, 4)), x)
        with pytest.raises(TypeError):
            np.inner(x, "abc")


@pytest.mark.parametrize("call, name", [
    (lambda x: np.linalg.eig(x), "numpy.linalg.eig"),
    (lambda x: np.fft.fft(x), "numpy.fft.fft"),
    (lambda x: np.spacing(x), "numpy.spacing"),
])
def test_unsupported_functions_are_named_with_their_module(call, name):
    x = fd.Tape().variable(np.eye(3) + 1.0)
    with pytest.raises(TypeError, match=r"fastad: %s is not supported" % re.escape(name)):
        call(x)


def test_unsupported_scipy_ufuncs_are_named_with_their_module():
    sp = pytest.importorskip("scipy.special")
    x = fd.Tape().variable(np.ones(3))
    with pytest.raises(TypeError, match=r"fastad: scipy\.special\.loggamma is not"):
        sp.loggamma(x)


@pytest.mark.parametrize("build", [
    lambda a, b: np.array([a, a * 2.0]),     # an ODE right-hand side's np.array([dx, dy])
    lambda a, b: np.array([1.0, a]),
    lambda a, b: np.array([b, b]),
    lambda a, b: np.asarray(b),
])
def test_numpy_array_of_vars_points_to_fd_stack(build):
    t = fd.Tape()
    a, b = t.variable(1.0), t.variable(np.ones(3))
    with pytest.raises(TypeError, match=r"fd\.stack\(\[dx, dy\]\) or fd\.array"):
        build(a, b)
