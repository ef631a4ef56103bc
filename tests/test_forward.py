"""Forward mode: Dual numbers, fd.derivative, fd.jvp, fd.vjp, fd.jacobian.

Forward mode reads the same op table as reverse mode, so the checks here are of
three kinds: Duals and tangent sweeps against reverse-mode gradients (exactly the
same partials, so they must agree to rounding) on every primitive and on random
expressions (hypothesis); Jacobians of every shape combination against central
finite differences; and the adjoint identity <u, J v> == <J^T u, v>.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import fastad as fd
from fastad import _second, _tape

OP_INFO = _tape.OP_INFO
UNARY = [r for r in OP_INFO if r[2] == 1]
BINARY = [r for r in OP_INFO if r[2] == 2]


def _fn(name):
    return getattr(_tape, name)


def _points(lo, hi, n, seed):
    pts = np.random.default_rng(seed).uniform(lo, hi, n)
    return [float(p) for p in pts if abs(p - round(p)) > 1e-3]


# ---------------------------------------------------------------------------------
# Dual numbers on every primitive

@pytest.mark.parametrize("row", UNARY, ids=[r[1] for r in UNARY])
def test_dual_unary_matches_reverse_mode(row):
    code, name, _, ((lo, hi),) = row
    f = _fn(name)
    for a in _points(lo, hi, 5, code):
        d = f(fd.Dual(a, 1.0))
        assert type(d) is fd.Dual
        assert d.value == f(a)
        assert d.tangent == fd.grad(f)(a)
        dv = f(fd.Dual(a, np.array([1.0, -2.0, 0.0])))
        np.testing.assert_array_equal(dv.tangent, np.array([1.0, -2.0, 0.0]) * d.tangent)


@pytest.mark.parametrize("row", BINARY, ids=[r[1] for r in BINARY])
def test_dual_binary_matches_reverse_mode(row):
    code, name, _, ((alo, ahi), (blo, bhi)) = row
    f = _fn(name)
    for a, b in zip(_points(alo, ahi, 5, code), _points(blo, bhi, 5, code + 1)):
        ga, gb = fd.grad(lambda x, y: f(x, y), argnums=(0, 1))(a, b)
        d = f(fd.Dual(a, np.array([1.0, 0.0])), fd.Dual(b, np.array([0.0, 1.0])))
        assert d.value == f(a, b)
        np.testing.assert_array_equal(d.tangent, [ga, gb])
        # constant-operand forms: Dual op number, number op Dual
        assert f(fd.Dual(a, 1.0), b).tangent == ga
        assert f(a, fd.Dual(b, 1.0)).tangent == gb


# ---------------------------------------------------------------------------------
# Dual arithmetic

def test_dual_operators():
    x = fd.Dual(1.5, 2.0)
    cases = [
        (x + 1, 2.5, 2.0), (1 + x, 2.5, 2.0), (x - 4, -2.5, 2.0), (4 - x, 2.5, -2.0),
        (x * 3, 4.5, 6.0), (3 * x, 4.5, 6.0), (x / 2, 0.75, 1.0),
        (3 / x, 2.0, -3.0 / 1.5 ** 2 * 2.0), (x ** 2, 2.25, 6.0),
        (x ** 3, 3.375, 3 * 1.5 ** 2 * 2.0), (2 ** x, 2 ** 1.5, 2 ** 1.5 * math.log(2) * 2),
        (-x, -1.5, -2.0), (+x, 1.5, 2.0), (abs(-x), 1.5, 2.0), (x // 1, 1.0, 0.0),
        (x % 1, 0.5, 2.0), (7 % x, 7 % 1.5, -math.floor(7 / 1.5) * 2.0),
        (x * x, 2.25, 6.0), (x / x, 1.0, 0.0), (x - x, 0.0, 0.0),
    ]
    for d, v, t in cases:
        assert type(d) is fd.Dual
        assert d.value == pytest.approx(v, rel=1e-15)
        assert d.tangent == pytest.approx(t, rel=1e-14)


def test_dual_comparisons_compare_values():
    x, y = fd.Dual(1.0, 5.0), fd.Dual(2.0, -1.0)
    assert x < y and x <= y and y > x and y >= x and x != y and not x == y
    assert x == 1.0 and x < 1.5 and 0.5 < x and x == fd.Dual(1.0, 3.0)
    assert bool(fd.Dual(0.0, 1.0)) is False and bool(x) is True
    assert max(x, y) is y


def test_dual_vector_tangents():
    x = fd.Dual(0.3, np.array([1.0, 0.0]))
    y = fd.Dual(-1.2, np.array([0.0, 1.0]))
    z = fd.sin(x * y) + fd.exp(x) / (1 + y * y)
    g = fd.grad(lambda a, b: fd.sin(a * b) + fd.exp(a) / (1 + b * b), argnums=(0, 1))(0.3, -1.2)
    np.testing.assert_allclose(z.tangent, g, rtol=1e-14)
    # a scalar-tangent Dual (a constant) mixes with vector tangents
    c = fd.Dual(2.0)
    np.testing.assert_allclose((x * c).tangent, [2.0, 0.0])
    assert not z.tangent.flags.writeable
    with pytest.raises(ValueError, match="different lengths"):
        x + fd.Dual(1.0, np.ones(3))


def test_dual_tangent_is_copied():
    t = np.array([1.0, 2.0])
    d = fd.Dual(1.0, t)
    t[0] = 100.0
    assert d.tangent[0] == 1.0


def test_dual_with_numpy():
    x = fd.Dual(0.5, 1.0)
    for d in (np.sin(x), np.float64(2.0) * x, x * np.float32(2.0), np.exp(x) + np.int64(1)):
        assert type(d) is fd.Dual
    assert np.sin(x).tangent == math.cos(0.5)
    assert np.hypot(x, 1.0).tangent == pytest.approx(0.5 / math.hypot(0.5, 1.0))
    arr = x * np.array([1.0, 2.0, 3.0])
    assert arr.dtype == object and arr.shape == (3,)
    assert [e.tangent for e in arr] == [1.0, 2.0, 3.0]
    arr2 = np.array([1.0, 2.0]) + x
    assert [e.value for e in arr2] == [1.5, 2.5]
    assert np.sum(np.sin(arr)).tangent == pytest.approx(
        sum(k * math.cos(0.5 * k) for k in (1, 2, 3)))
    assert fd.sum(x) is x
    assert fd.clip(x, 0.0, 0.4).tangent == 0.0 and fd.clip(x, 0.0, 1.0).tangent == 1.0


def test_dual_repr_and_properties():
    d = fd.Dual(1, 2)
    assert d.value == 1.0 and type(d.value) is float and d.tangent == 2.0
    assert repr(d) == "Dual(1.0, tangent=2.0)"
    assert "tangent=[1., 2.]" in repr(fd.Dual(1.0, [1, 2]))
    assert fd.Dual(3.0).tangent == 0.0
    assert d.shape == () and d.ndim == 0


def test_dual_absolute_zero():
    # sqrt'(0) = inf, but a direction that does not move x gives 0, not NaN
    d = fd.sqrt(fd.Dual(0.0, np.array([0.0, 1.0])))
    assert d.tangent[0] == 0.0 and d.tangent[1] == math.inf
    assert (0.0 * fd.sqrt(fd.Dual(0.0, 1.0))).tangent == 0.0


def test_dual_errors():
    with pytest.raises(TypeError, match="complex"):
        fd.Dual(1j)
    with pytest.raises(TypeError, match="value must be a real number"):
        fd.Dual("a")
    with pytest.raises(TypeError, match="value must be a real number"):
        fd.Dual(None)
    with pytest.raises(TypeError, match="nested"):
        fd.Dual(fd.Dual(1.0))
    with pytest.raises(ValueError, match="tangent must be a number or a 1-D array"):
        fd.Dual(1.0, np.ones((2, 2)))
    with pytest.raises(TypeError, match="tangent"):
        fd.Dual(1.0, "x")
    with pytest.raises(TypeError, match="tangent must be real"):
        fd.Dual(1.0, 1j)
    x = fd.Dual(1.0, 1.0)
    with pytest.raises(TypeError, match="drop its tangent"):
        float(x)
    with pytest.raises(TypeError, match="drop its tangent"):
        math.sin(x)
    with pytest.raises(TypeError):
        x + "a"
    with pytest.raises(TypeError):
        x + None
    with pytest.raises(TypeError, match="complex"):
        x * 1j
    with fd.Tape() as t:
        v = t.variable(1.0)
        with pytest.raises(TypeError):
            x + v
        with pytest.raises(TypeError):
            v * x
    with pytest.raises(TypeError, match="modulus"):
        pow(x, 2, 3)


def test_dual_pickles():
    import pickle
    d = pickle.loads(pickle.dumps(fd.Dual(1.5, np.array([1.0, 2.0]))))
    assert d.value == 1.5 and list(d.tangent) == [1.0, 2.0]


# ---------------------------------------------------------------------------------
# fd.derivative

def test_derivative():
    assert fd.derivative(fd.sin)(0.3) == math.cos(0.3)
    assert fd.derivative(lambda x: x ** 3 + 2 * x)(2.0) == 14.0
    assert fd.derivative(lambda x: 5.0)(2.0) == 0.0
    out = fd.derivative(lambda x: [x, x * x, 3.0])(1.5)
    np.testing.assert_array_equal(out, [1.0, 3.0, 0.0])
    out = fd.derivative(lambda x: fd.exp(x * np.array([[1.0, 2.0], [3.0, 4.0]])))(0.1)
    np.testing.assert_allclose(out, np.array([[1, 2], [3, 4]]) *
                               np.exp(0.1 * np.array([[1, 2], [3, 4]])), rtol=1e-15)
    np.testing.assert_array_equal(fd.derivative(lambda x: np.ones(2))(1.0), [0.0, 0.0])
    assert fd.derivative(lambda x, c: c * x ** 2)(3.0, 2.0) == 12.0
    assert fd.derivative(fd.sin)(np.float32(0.5)) == pytest.approx(math.cos(0.5))
    assert fd.derivative(lambda x: x * x)(3) == 6.0


def test_derivative_errors():
    with pytest.raises(ValueError, match="derivative: x must be a scalar"):
        fd.derivative(fd.sin)(np.ones(2))
    with pytest.raises(TypeError, match="derivative: x must be a real number"):
        fd.derivative(fd.sin)("1")
    with pytest.raises(TypeError, match="derivative: f must be callable"):
        fd.derivative(1.0)
    with pytest.raises(TypeError, match="derivative: f must return"):
        fd.derivative(lambda x: "s")(1.0)


# ---------------------------------------------------------------------------------
# random expressions: forward mode against reverse mode

def _squash(v, lo, hi):
    # a smooth map of any real into the op's test domain (its own ops recorded too)
    return lo + (hi - lo) * fd.sigmoid(v)


def _build(program):
    """A function of 3 inputs from a program of (op row, argument, argument)."""
    def f(x0, x1, x2):
        vals = [x0, x1, x2]
        for row_index, i, j in program:
            code, name, arity, dom = OP_INFO[row_index]
            fn = _fn(name)
            a = _squash(vals[i % len(vals)], *dom[0])
            if arity == 1:
                vals.append(fn(a))
            else:
                vals.append(fn(a, _squash(vals[j % len(vals)], *dom[1])))
        out = vals[3] if len(vals) > 3 else vals[0]
        for v in vals[4:]:
            out = out + 0.5 * v
        return out
    return f


programs = st.lists(st.tuples(st.integers(0, len(OP_INFO) - 1), st.integers(0, 50),
                              st.integers(0, 50)), min_size=1, max_size=8)
inputs = st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None)
@given(programs, inputs, st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3))
def test_forward_equals_reverse_on_random_expressions(program, x, v):
    f = _build(program)
    g = np.array(fd.grad(f, argnums=(0, 1, 2))(*x))
    # non-finite partials: forward mode's absolute-zero rule (a zero tangent
    # contributes 0 even through an inf/NaN partial) legitimately differs there
    assume(np.all(np.isfinite(g)))
    # vector forward mode with Duals: all three directions in one pass
    eye = np.eye(3)
    d = f(*[fd.Dual(x[k], eye[k]) for k in range(3)])
    tan = d.tangent if type(d) is fd.Dual else np.zeros(3)
    np.testing.assert_allclose(tan, g, rtol=1e-10, atol=1e-12)
    # tangent sweep over a recording (fd.jvp)
    value, jv = fd.jvp(f, tuple(x), tuple(v))
    assert jv == pytest.approx(float(g @ np.array(v)), rel=1e-10, abs=1e-12)
    assert value == pytest.approx(fd.value_and_grad(f)(*x)[0], rel=0, abs=0)
    # and the Jacobian (1 output, 3 inputs: reverse) equals the gradient
    J = fd.jacobian(lambda a: f(a[0], a[1], a[2]))(np.array(x))
    np.testing.assert_allclose(J, g, rtol=1e-12, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(programs, inputs)
def test_hvp_equals_jvp_of_gradient(program, x):
    """Forward over reverse on the tape against finite differences of gradients."""
    # An exact zero puts the symmetric-domain ops on their non-differentiable
    # points (abs(0) reached from one side only, arctan2(0, 0)): there the tape's
    # conventions (abs'(0) = 0, ...) legitimately differ from finite differences.
    assume(np.all(np.abs(np.array(x)) > 1e-3))
    f = _build(program)
    fv = lambda a: f(a[0], a[1], a[2])
    x = np.array(x)
    v = np.array([0.3, -0.5, 0.8])
    hv = fd.hvp(fv)(x, v)

    def fdiff(h):
        return (fd.grad(fv)(x + h * v) - fd.grad(fv)(x - h * v)) / (2 * h)

    d1, d2 = fdiff(1e-5), fdiff(1e-6)
    scale = max(1.0, np.abs(d1).max())
    # a kink (abs, floor, maximum, ...) between x - hv and x + hv makes the
    # differences depend on h; only smooth neighbourhoods are compared
    assume(np.all(np.isfinite(d1)) and np.abs(d1 - d2).max() < 1e-3 * scale)
    # A kink of the gradient exactly at x (arctan2 on its branch cut, reached
    # when a computed value is exactly 0: the value jumps by 2 pi and what
    # follows sees a mirrored curvature) is symmetric, so the central
    # differences agree at every h while the one-sided ones differ: the tape
    # gives one side's Hessian there, the central difference their mean.
    h = 1e-5
    g0 = fd.grad(fv)(x)
    ahead = (fd.grad(fv)(x + h * v) - g0) / h
    behind = (g0 - fd.grad(fv)(x - h * v)) / h
    assume(np.abs(ahead - behind).max() < 1e-3 * scale)
    np.testing.assert_allclose(hv, d1, rtol=1e-4, atol=1e-4 * scale)


# ---------------------------------------------------------------------------------
# Jacobians of every shape combination

IN_SHAPES = [(), (3,), (2, 2)]
OUT_SHAPES = [(), (4,), (2, 3)]


def _vector_fn(in_shape, out_shape, seed=0):
    m = int(np.prod(in_shape, dtype=int))
    p = int(np.prod(out_shape, dtype=int))
    W = np.random.default_rng(seed).normal(size=(p, m))

    def f(x):
        u = fd.reshape(x * np.ones(in_shape), (m,))
        z = fd.sin(fd.matmul(W, u)) * (1.0 + fd.sum(u * u)) + fd.exp(u[0] * 0.3)
        return fd.reshape(z, out_shape) if out_shape else fd.sum(z)
    return f


def _fd_jacobian(f, x, out_shape, h=1e-6):
    x = np.asarray(x, dtype=float)
    J = np.empty(tuple(out_shape) + x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros(x.shape)
        e[idx] = h
        hi = np.asarray(f(x + e) if x.shape else f(float(x + e)))
        lo = np.asarray(f(x - e) if x.shape else f(float(x - e)))
        J[(Ellipsis,) + idx] = (hi - lo) / (2 * h)
    return J


@pytest.mark.parametrize("in_shape", IN_SHAPES, ids=str)
@pytest.mark.parametrize("out_shape", OUT_SHAPES, ids=str)
def test_jacobian_shapes(in_shape, out_shape):
    f = _vector_fn(in_shape, out_shape)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, in_shape) if in_shape else 0.4
    J = fd.jacobian(f)(x)
    want = _fd_jacobian(f, x, out_shape)
    if not in_shape and not out_shape:
        assert isinstance(J, float)
    else:
        assert J.shape == tuple(out_shape) + tuple(in_shape)
    np.testing.assert_allclose(J, want, rtol=1e-6, atol=1e-7)
    # forward and reverse sweeps of the same recording agree
    with fd.Tape() as t:
        xv = t.variable(x)
        y = f(xv)
    ins, outs = _second.var_slots(xv), _second.var_slots(y)
    Jf = _second.jacobian_forward(t, ins, outs)
    Jr = _second.reverse_sweep(t, outs, ins, np.eye(outs.size))
    np.testing.assert_allclose(Jf, Jr, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Jf.reshape(np.shape(J)), J, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("in_shape", IN_SHAPES, ids=str)
@pytest.mark.parametrize("out_shape", OUT_SHAPES, ids=str)
def test_jvp_vjp_adjoint_identity(in_shape, out_shape):
    f = _vector_fn(in_shape, out_shape, seed=5)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, in_shape) if in_shape else 0.2
    v = rng.normal(size=in_shape) if in_shape else 0.7
    out, jv = fd.jvp(f, (x,), (v,))
    out2, vjp_fn = fd.vjp(f, x)
    np.testing.assert_array_equal(out, out2)
    assert np.shape(jv) == tuple(out_shape)
    for _ in range(3):  # vjp_fn is reusable
        u = rng.normal(size=out_shape) if out_shape else 1.3
        (ju,) = vjp_fn(u)
        assert np.shape(ju) == tuple(in_shape)
        assert np.sum(np.asarray(u) * jv) == pytest.approx(np.sum(np.asarray(ju) * v),
                                                          rel=1e-12, abs=1e-13)


def test_jacobian_argnums_and_pytrees():
    def f(a, b):
        return fd.stack([a["w"] * b, fd.sin(a["w"]) + b * b, a["v"][1] * b])

    a = {"w": 0.5, "v": np.array([1.0, 2.0])}
    ja, jb = fd.jacobian(f, argnums=(0, 1))(a, 1.5)
    assert set(ja) == {"w", "v"}
    np.testing.assert_allclose(ja["w"], [1.5, math.cos(0.5), 0.0])
    np.testing.assert_allclose(ja["v"], [[0, 0], [0, 0], [0, 1.5]])
    np.testing.assert_allclose(jb, [0.5, 3.0, 2.0])
    # a list of scalar Vars as the output is stacked
    np.testing.assert_allclose(fd.jacobian(lambda x: [x * 2.0, x * x])(3.0), [2.0, 6.0])
    # constant output
    np.testing.assert_array_equal(fd.jacobian(lambda x: np.ones(2))(np.ones(3)),
                                  np.zeros((2, 3)))


def test_jvp_many_primals_and_pytrees():
    def f(x, p):
        return x * p["s"] + fd.sum(p["v"] ** 2)

    value, t = fd.jvp(f, (2.0, {"s": 3.0, "v": np.array([1.0, 2.0])}),
                      (1.0, {"s": 0.5, "v": np.array([1.0, 0.0])}))
    assert value == 11.0
    assert t == pytest.approx(3.0 + 2.0 * 0.5 + 2.0)


def test_vjp_tuple_of_primals():
    out, fn = fd.vjp(lambda x, y: x * fd.sin(y), np.array([1.0, 2.0]), 0.5)
    gx, gy = fn(np.array([1.0, 1.0]))
    np.testing.assert_allclose(gx, [math.sin(0.5)] * 2)
    assert gy == pytest.approx(3.0 * math.cos(0.5))
    gx, gy = fn(np.array([0.0, 1.0]))
    np.testing.assert_allclose(gx, [0.0, math.sin(0.5)])
    assert gy == pytest.approx(2.0 * math.cos(0.5))


def test_forward_api_errors():
    with pytest.raises(TypeError, match="jvp: primals must be a tuple"):
        fd.jvp(fd.sin, 1.0, (1.0,))
    with pytest.raises(ValueError, match="jvp: primals and tangents"):
        fd.jvp(fd.sin, (1.0,), (1.0, 2.0))
    with pytest.raises(ValueError, match=r"jvp: tangents\[0\] has shape"):
        fd.jvp(lambda x: fd.sum(x), (np.ones(2),), (np.ones(3),))
    with pytest.raises(TypeError, match=r"jvp: tangents\[0\]"):
        fd.jvp(fd.sin, (1.0,), ("a",))
    with pytest.raises(TypeError, match="jvp: f must be callable"):
        fd.jvp(None, (1.0,), (1.0,))
    out, fn = fd.vjp(lambda x: x * 2.0, np.ones(2))
    with pytest.raises(ValueError, match="vjp_fn: cotangent must have the shape"):
        fn(np.ones(3))
    with pytest.raises(TypeError, match="vjp_fn: cotangent"):
        fn(None)
    with pytest.raises(TypeError, match="jacobian: f must return"):
        fd.jacobian(lambda x: "s")(1.0)
    with pytest.raises(TypeError, match="jacobian: argument 0"):
        fd.jacobian(lambda x: x)("s")
    with pytest.raises(TypeError, match="argnums"):
        fd.jacobian(lambda x: x, argnums=1.5)(1.0)
    with pytest.raises(ValueError, match="argnums"):
        fd.jacobian(lambda x: x, argnums=3)(1.0)


def test_derivative_of_numpy_code_duals_cannot_run_retries_on_a_tape():
    # np.linalg on an array of Duals raises UFuncTypeError (a TypeError); the
    # derivative then comes from a tape, as fd.jvp's does
    A = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.2]])
    calls = []

    def f(t):
        calls.append(1)
        return np.linalg.det(A * t)
    d = fd.derivative(f)
    expect = 3 * 1.3 ** 2 * np.linalg.det(A)             # det(tA) = t^3 det A
    assert d(1.3) == pytest.approx(expect, rel=1e-12)
    assert len(calls) == 2                              # the Dual try, then the tape
    assert d(1.3) == pytest.approx(expect, rel=1e-12)
    assert len(calls) == 3                              # remembered: the tape at once
    assert fd.derivative(lambda t: np.sum(np.linalg.solve(A * t, np.ones(3))))(1.3) \
        == pytest.approx(-np.sum(np.linalg.solve(A, np.ones(3))) / 1.3 ** 2, rel=1e-12)
    # an error of f itself is reported from the tape's run, the Dual one chained
    with pytest.raises(TypeError, match="must be a number or an array") as info:
        fd.derivative(lambda t: t + "s")(1.0)
    assert isinstance(info.value.__cause__, TypeError)
