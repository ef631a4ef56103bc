"""The contract of API.md sections 1, 3, 5, 9 and 14 where issue 10 found fastad
deviating: error classes and messages, indexing, wengert() names, bit-exact replay
of the softmax family, and the dtype gradients come back in.
"""
import warnings

import numpy as np
import pytest

import fastad as fd

X3 = np.array([0.5, -1.0, 2.0])


def _vector(x):
    return x * 2.0


# ----------------------------------------------------------------------------------
# 1. shape errors are ValueError naming what came back and what to use instead

@pytest.mark.parametrize("call", [
    lambda: fd.grad(_vector)(X3),
    lambda: fd.value_and_grad(_vector)(X3),
    lambda: fd.hessian(_vector)(X3),
    lambda: fd.hvp(_vector)(X3, X3),
    lambda: fd.grad(lambda x: np.ones(3))(X3),
    lambda: fd.grad(lambda x: [x[0], x[1]])(X3),
    lambda: fd.check_grad(_vector, X3),
], ids=["grad", "value_and_grad", "hessian", "hvp", "ndarray", "list", "check_grad"])
def test_non_scalar_output_is_a_value_error_naming_shape_and_fix(call):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert "scalar" in msg and "fd.jacobian" in msg and "fd.sum" in msg
    assert "(3,)" in msg or "2 items" in msg


@pytest.mark.parametrize("method", ["grad", "value_and_grad", "hessian", "hvp",
                                    "grad_batch"])
def test_traced_non_scalar_output_is_a_value_error(method):
    tf = fd.trace(_vector, X3)
    args = {"hvp": (X3, X3), "grad_batch": (np.ones((2, 3)),)}.get(method, (X3,))
    with pytest.raises(ValueError, match=r"tf\.%s: .*shape \(3,\).*tf\.jacobian"
                       % method):
        getattr(tf, method)(*args)


def test_grad_names_itself_not_value_and_grad():
    with pytest.raises(ValueError, match="^grad: "):
        fd.grad(_vector)(X3)
    with pytest.raises(TypeError, match="^grad: argument 0"):
        fd.grad(_vector)("abc")


@pytest.mark.parametrize("x", [np.ones(2), [1.0, 2.0], np.ones((1, 1))])
def test_derivative_of_an_array_is_a_value_error(x):
    with pytest.raises(ValueError, match=r"derivative: x must be a scalar.*shape.*"
                                         r"fd\.jacobian"):
        fd.derivative(fd.sin)(x)
    assert fd.derivative(fd.sin)(np.array(0.0)) == 1.0     # 0-d is a scalar


def test_jacobian_of_a_ragged_list_is_a_value_error():
    with pytest.raises(ValueError, match="jacobian"):
        fd.jacobian(lambda x: [x[0], [x[1], x[0]]])(X3)


@pytest.mark.parametrize("n", [3, 20])          # scalar slots, and array records
@pytest.mark.parametrize("fname", ["sum", "mean", "prod", "logsumexp", "softmax",
                                   "log_softmax"])
def test_reduction_axes_are_checked_on_both_paths(fname, n):
    fn = getattr(fd, fname)
    x0 = np.arange(1.0, n + 1)
    g = lambda axis: fd.grad(lambda x: fd.sum(fn(x, axis=axis)))(x0)  # noqa: E731
    # the small path once wrapped axis=5 round to 0 and summed silently
    for axis in (5, -2, 1, (0, 0)):
        with pytest.raises(ValueError, match="%s: .*axis" % fname):
            g(axis)
    for axis in (1.5, "a", True):
        with pytest.raises(TypeError, match="%s: axis" % fname):
            g(axis)
    np.testing.assert_allclose(g(0), g(-1))


@pytest.mark.parametrize("n", [3, 20])
def test_transpose_axes_are_checked_on_both_paths(n):
    x0 = np.arange(float(n))
    for axes in [(5,), (1,), (0, 0)]:
        with pytest.raises(ValueError):      # numpy's AxisError is a ValueError
            fd.grad(lambda x: fd.sum(fd.transpose(x, axes)))(x0)
    np.testing.assert_array_equal(fd.grad(lambda x: fd.sum(fd.transpose(x, (-1,))))(x0),
                                  np.ones(n))


# ----------------------------------------------------------------------------------
# 2. a Python int beyond float64 is a ValueError naming the argument

BIG = 10 ** 400


@pytest.mark.parametrize("call, where", [
    (lambda: fd.grad(lambda x: x * x)(BIG), "grad: argument 0"),
    (lambda: fd.grad(lambda x: x[0] * x[1])([1.0, BIG]), "grad: argument 0"),
    (lambda: fd.jacobian(lambda x: x)(-BIG), "jacobian: argument 0"),
    (lambda: fd.hessian(lambda x: x * x)(BIG), "hessian: argument 0"),
    (lambda: fd.hvp(lambda x: x * x)(1.0, BIG), "hvp: v"),
    (lambda: fd.jvp(lambda x: x * x, (1.0,), (BIG,)), "jvp: tangents[0]"),
    (lambda: fd.derivative(lambda x: x * x)(BIG), "derivative: x"),
    (lambda: fd.check_grad(lambda x: x * x, BIG), "check_grad: x"),
    (lambda: fd.trace(lambda x: x * x, BIG), "fd.trace: x0"),
    (lambda: fd.trace(lambda x, p: x * p, 1.0, BIG), "fd.trace: params"),
    (lambda: fd.trace(lambda x: x * x, 1.0)(BIG), "traced f: x"),
    (lambda: fd.trace(lambda x: x * x, 1.0).grad(BIG), "tf.grad: x"),
    (lambda: fd.trace(lambda x, p: x * p, 1.0, 2.0).grad(1.0, BIG), "tf.grad: params"),
    (lambda: fd.Tape().variable(BIG), "tape.variable: value"),
    (lambda: fd.grad(lambda x: x * BIG)(1.0), "operand"),
    (lambda: fd.grad(lambda x: BIG * x)(1.0), "operand"),
    (lambda: fd.grad(lambda x: x ** BIG)(1.0), "operand"),
    (lambda: fd.grad(lambda x: x - (-BIG))(1.0), "operand"),
    (lambda: fd.grad(lambda x: fd.sum(x + BIG))(X3), "y"),
    (lambda: fd.grad(lambda x: fd.sum(x * [1, BIG, 1]))(X3), "y"),
    (lambda: fd.grad(lambda x: x * (x < BIG))(1.0), "other"),
    (lambda: fd.grad(lambda x: fd.maximum(x, BIG))(1.0), "y"),
    (lambda: fd.sin(BIG), "x"),
    (lambda: fd.Dual(BIG, 1.0), "Dual: value"),
    (lambda: fd.Dual(1.0, BIG), "Dual: tangent"),
    (lambda: fd.Dual(1.0, 1.0) * BIG, "y"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_int_too_large_for_float64_is_a_value_error(call, where):
    with pytest.raises(ValueError, match="too large for float64") as e:
        call()
    assert where in str(e.value)
    assert "about 401 digits" in str(e.value)
    assert not isinstance(e.value, OverflowError)


def test_ints_beyond_int64_but_within_float64_still_work():
    # NumPy holds 2**64 as an object: it is still a number, not a type error
    assert fd.grad(lambda x: x * 2 ** 64)(1.0) == 2.0 ** 64
    g = fd.grad(lambda x: fd.sum(x * [1, 2 ** 64, 1]))(X3)
    np.testing.assert_array_equal(g, [1.0, 2.0 ** 64, 1.0])
    assert fd.grad(lambda x: x[0] * x[1])([2 ** 70, 1]) == [1.0, 2.0 ** 70]
    assert fd.trace(lambda x: x * x, 2 ** 64).grad(1.0) == 2.0
    with pytest.raises(ValueError, match="too large"):
        fd.sin(-(10 ** 5000))          # str() of this int would itself be refused


# ----------------------------------------------------------------------------------
# 3. non-numeric inputs are a TypeError naming the argument and its dtype

NON_NUMERIC = [np.array(["a", "b"]), np.array([1, "x"], dtype=object),
               np.array([1.0, 2.0], dtype=object), np.array([b"x"]),
               np.array(["2020-01-01"], dtype="datetime64[D]"),
               np.array([1], dtype="timedelta64[s]")]


@pytest.mark.parametrize("arr", NON_NUMERIC, ids=lambda a: str(a.dtype))
@pytest.mark.parametrize("call, where", [
    (lambda a: fd.trace(lambda x: fd.sum(x), a), "fd.trace: x0"),
    (lambda a: fd.trace(lambda x, p: x, 1.0, a), "fd.trace: params"),
    (lambda a: fd.trace(lambda x: fd.sum(x), np.ones(2)).grad(a), "tf.grad: x"),
    (lambda a: fd.grad(lambda x: fd.sum(x))(a), "grad: argument 0"),
    (lambda a: fd.value_and_grad(lambda x: fd.sum(x))({"k": a}), "value_and_grad: "
                                                                 "argument 0"),
    (lambda a: fd.jacobian(lambda x: x)(a), "jacobian: argument 0"),
    (lambda a: fd.hessian(lambda x: fd.sum(x))(a), "hessian: argument 0"),
    (lambda a: fd.hvp(lambda x: fd.sum(x))(np.ones(2), a), "hvp: v"),
    (lambda a: fd.jvp(lambda x: x, (np.ones(2),), (a,)), "jvp: tangents[0]"),
    (lambda a: fd.Tape().variable(a), "tape.variable: value"),
    (lambda a: fd.check_grad(lambda x: fd.sum(x), a), "check_grad: x"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_non_numeric_arrays_name_argument_and_dtype(arr, call, where):
    with pytest.raises(TypeError) as e:
        call(arr)
    assert where in str(e.value) and str(arr.dtype) in str(e.value)


# ----------------------------------------------------------------------------------
# 4. indexing follows NumPy: IndexError out of range; every misuse a documented class

def _small(x):
    return x * 1.0            # an array of scalar slots (elementwise ops, < 16)


def _record(x):
    return fd.concatenate([x, x])[: x.shape[0]] * 1.0   # >= 16: an array record


OUT_OF_RANGE = [  # keys out of range for a 1-D array of n elements
    lambda n: n, lambda n: -n - 1, lambda n: np.int64(n), lambda n: np.uint64(n + 2),
    lambda n: 10 ** 30, lambda n: -(10 ** 30), lambda n: 2 ** 63, lambda n: -2 ** 63 - 1,
    lambda n: np.uint64(2 ** 63), lambda n: [0, n + 4], lambda n: np.array([1, -n - 6]),
    lambda n: (0, 0), lambda n: (slice(None), 0), lambda n: np.array([True, False]),
]


@pytest.mark.parametrize("make", [lambda x: x, _small, _record],
                         ids=["leaf", "slots", "record"])
@pytest.mark.parametrize("k", range(len(OUT_OF_RANGE)))
@pytest.mark.parametrize("via", ["grad", "trace"])
def test_out_of_range_1d_index_is_an_index_error(make, k, via):
    n = 3 if make is not _record else 20
    key = OUT_OF_RANGE[k](n)

    def f(x):
        return fd.sum(make(x)[key])
    x0 = np.arange(1.0, n + 1)
    with pytest.raises(IndexError):
        fd.grad(f)(x0) if via == "grad" else fd.trace(f, x0)


@pytest.mark.parametrize("key", [(1, 9), (2, 0), (-3, 0), (0, 0, 0), (slice(None), 9),
                                 (0, 2 ** 63), (10 ** 30, 0), np.array([True, False, True])])
@pytest.mark.parametrize("big", [False, True])
def test_out_of_range_2d_index_is_an_index_error(key, big):
    shape = (2, 3) if not big else (2, 10)
    if big and isinstance(key, tuple) and key[1:] == (9,):
        key = key[:1] + (10,)
    x0 = np.arange(float(np.prod(shape))).reshape(shape)
    for make in (lambda x: x, lambda x: x * 1.0):
        f = lambda x: fd.sum(make(x)[key])  # noqa: E731
        with pytest.raises(IndexError):
            fd.grad(f)(x0)
        with pytest.raises(IndexError):
            fd.trace(f, x0)


def test_in_range_indices_still_work_and_agree_with_numpy():
    x0 = np.arange(1.0, 21.0)
    for key in (19, -20, np.int64(3), np.uint64(4), [0, -1], slice(2, 30), (Ellipsis,),
                np.array([True] * 20), (None, 3)):
        g = fd.grad(lambda x: fd.sum(x[key] * x[key]))(x0)
        want = np.zeros(20)
        np.add.at(want, np.arange(20)[key], 2.0 * x0[key])
        np.testing.assert_array_equal(g, want)


def test_var_indices_out_of_range_under_grad_and_trace():
    x0 = np.arange(1.0, 4.0)                     # x[0] * 10 == 10: out of range
    f = lambda x: x[x[0] * 10.0]               # noqa: E731
    with pytest.raises(IndexError):
        fd.grad(f)(x0)
    with pytest.raises(IndexError):
        fd.trace(f, x0)
    tf = fd.trace(lambda x: x[x[0]], x0)         # in range when traced: a guard
    with pytest.raises(fd.TraceError, match="index"):
        tf.grad(x0 * 100.0)


def test_other_indexing_misuse_raises_documented_classes():
    documented = (TypeError, ValueError, IndexError, fd.FastADError)
    x0 = np.arange(1.0, 4.0)
    keys = ["a", 1.5, {}, object(), [[0, 1], [5]], slice(0, 1.5),
            slice(None, None, 0), (Ellipsis, Ellipsis), np.array([0.5]),
            np.array(["a"]), 1j]

    # NumPy < 1.24 warns (VisibleDeprecationWarning) about the ragged [[0, 1], [5]]
    # before refusing it with an IndexError; NumPy 1.24+ refuses it at once
    ragged = getattr(np, "exceptions", np).VisibleDeprecationWarning

    def misuse(x):
        for key in keys:
            with pytest.raises(documented), warnings.catch_warnings():
                warnings.simplefilter("ignore", ragged)
                x[key]
        with pytest.raises(TypeError, match="array Var cannot be used as an index"):
            x[x[:2]]
        with pytest.raises(TypeError):
            x[[x[0], x[1]]]
        with pytest.raises(TypeError):
            x[0][0]                       # a scalar Var has no axes
        assert x[0][()] is not None and x[0][...] is not None
        with pytest.raises(TypeError, match="immutable"):
            x[0] = 1.0
        with pytest.raises(TypeError, match="immutable"):
            del x[0]
        return fd.sum(x)

    fd.grad(misuse)(x0)
    fd.grad(lambda x: misuse(x * 1.0))(np.arange(20.0))
    with fd.Tape() as tape:
        w = tape.variable(x0)
    tape.reset()
    with pytest.raises(fd.TapeError):
        w[0]
    with pytest.raises(fd.TapeError):
        w[1:]


# ----------------------------------------------------------------------------------
# 5. tape.wengert() names array operations recorded as scalar slots

def _spans(text):
    """[(indent, name, first, last)] of the annotation lines of a Wengert list."""
    import re
    out = []
    for line in text.splitlines():
        m = re.match(r"#( *) (\w+): v(\d+)\.\.v(\d+)$", line)
        if m:
            out.append((len(m.group(1)) // 2, m.group(2), int(m.group(3)),
                        int(m.group(4))))
    return out


def _slot_lines(text):
    import re
    return [int(m.group(1)) for m in re.finditer(r"^v(\d+) ", text, re.M)]


@pytest.mark.parametrize("name, fn", [
    ("sum", lambda x: fd.sum(x)), ("mean", lambda x: fd.mean(x, axis=0)),
    ("prod", lambda x: fd.prod(x)), ("softmax", lambda x: fd.softmax(x)),
    ("log_softmax", lambda x: fd.log_softmax(x)),
    ("logsumexp", lambda x: fd.logsumexp(x)),
    ("stack", lambda x: fd.stack([x[0], x[1]])), ("getitem", lambda x: x[1:]),
    ("reshape", lambda x: x.reshape(-1, 1)), ("transpose", lambda x: fd.transpose(x)),
    ("concatenate", lambda x: fd.concatenate([x, x])),
    ("where", lambda x: fd.where(np.array([True, False, True]), x, 0.0)),
])
def test_wengert_names_small_array_ops(name, fn):
    with fd.Tape() as tape:
        x = tape.variable(np.array([0.5, -1.0, 2.0]))
        n0 = len(tape)
        fn(x)
    text = tape.wengert()
    spans = [s for s in _spans(text) if s[0] == 0]
    assert [s[1] for s in spans] == [name], text
    _, _, first, last = spans[0]
    assert first == n0 + 1 and last == len(tape), text
    # the annotation stands right above its first slot; slot lines are unchanged
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("# %s:" % name))
    after = next(line for line in lines[k + 1:] if not line.startswith("#"))
    assert after.startswith("v%-5d = " % first)
    assert _slot_lines(text) == list(range(1, len(tape) + 1))


def test_wengert_nests_and_names_large_arrays_too():
    with fd.Tape() as tape:
        x = tape.variable(np.linspace(-1.0, 1.0, 20))
        y = fd.mean(x[:4])                # small: mean holding a sum
        z = fd.softmax(x)                 # large: one record
        p = fd.prod(x)                    # prod is scalar slots at any size
        s = fd.stack([x[0], x[1]] * 10)   # 20 copies
        fd.sum(z) + y + p + fd.sum(s) + fd.logsumexp(x)
    text = tape.wengert()
    names = [(d, n) for d, n, _, _ in _spans(text)]
    assert (0, "mean") in names and (1, "sum") in names
    assert (0, "prod") in names and (0, "stack") in names
    assert "= softmax  [20 values, array op]" in text
    assert "= logsumexp  [1 values, array op]" in text
    prod_span = next(s for s in _spans(text) if s[1] == "prod")
    assert prod_span[3] - prod_span[2] + 1 == 19        # 19 multiplies


def test_a_traced_tape_keeps_the_names():
    tf = fd.trace(lambda x: fd.sum(fd.softmax(x) * x), np.array([0.5, -1.0, 2.0]))
    names = [n for _, n, _, _ in _spans(tf._tape.wengert())]
    assert names[:2] == ["softmax", "max"] and names.count("sum") == 2


def test_spans_cost_nothing_on_scalar_code_and_go_with_reset():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        for _ in range(100):
            x = fd.sin(x) * 2.0 + 1
    assert tape.spans is None and "#" not in tape.wengert()
    with tape:
        fd.sum(tape.variable(np.ones(3)))
    assert len(tape.spans) == 3 and "# sum" in tape.wengert()
    tape.reset()
    assert tape.spans is None and tape.wengert() == ""


# ----------------------------------------------------------------------------------
# 6. replay is bit-identical to fd.grad for the softmax family

SOFTMAX_CASES = [((3,), -1), ((2, 3), 0), ((2, 3), 1), ((3, 4), None), ((20,), -1),
                 ((5, 8), 0), ((5, 8), -1), ((4, 5, 6), 1), ((64, 10), -1),
                 ((30, 30), (0, 1))]


@pytest.mark.parametrize("kind", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("shape, axis", SOFTMAX_CASES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_softmax_family_replay_is_bit_identical(kind, shape, axis, order):
    if kind != "logsumexp" and (axis is None or isinstance(axis, tuple)):
        axis = -1
    fn = getattr(fd, kind)
    rng = np.random.default_rng(hash((kind, shape, str(axis))) % 2 ** 32)
    w = rng.normal(size=np.shape(fn(np.zeros(shape), axis=axis)))

    def f(x):
        return fd.sum(fn(x, axis=axis) * w) + fd.sum(fn(x * 1.5 - 0.25, axis=axis) * w)

    def point(scale, shift):
        return np.asarray(rng.normal(size=shape) * scale + shift, order=order)

    tf = fd.trace(f, point(3.0, 0.0))
    # near the trace point and far from it: a shift taken from the traced
    # values (not recomputed) overflows at +800
    for x in [point(3.0, 0.0), point(10.0, 5.0), point(1.0, 800.0), point(1.0, -800.0)]:
        v1, g1 = fd.value_and_grad(f)(x)
        v2, g2 = tf.value_and_grad(x)
        assert np.isfinite(v1) and np.all(np.isfinite(g1))
        assert v1 == v2 and np.array_equal(g1, g2), (v1 - v2, np.abs(g1 - g2).max())
        assert np.array_equal(tf(x), fd.value_and_grad(f)(x)[0])


@pytest.mark.parametrize("n", [3, 20])
def test_softmax_family_values_and_gradients_are_right(n):
    # the shift is exact for the formula: values and gradients against closed forms
    x = np.linspace(-2.0, 3.0, n) + 700.0
    w = np.cos(np.arange(n))
    p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    lse = x.max() + np.log(np.exp(x - x.max()).sum())
    np.testing.assert_allclose(fd.softmax(fd.Tape().variable(x)).value, p, rtol=1e-15)
    np.testing.assert_allclose(fd.grad(lambda v: fd.logsumexp(v))(x), p, rtol=1e-15)
    np.testing.assert_allclose(fd.grad(lambda v: fd.sum(fd.softmax(v) * w))(x),
                               p * (w - (w * p).sum()), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(fd.grad(lambda v: fd.sum(fd.log_softmax(v) * w))(x),
                               w - p * w.sum(), rtol=1e-12, atol=1e-15)
    assert abs(fd.logsumexp(fd.Tape().variable(x)).value - lse) <= 1e-12 * lse


# ----------------------------------------------------------------------------------
# 7. gradients come back in the input's floating dtype; arithmetic stays float64

F32 = np.array([1.0 / 3.0, -2.5, 7.125], dtype=np.float32)


def _sq(x):
    return fd.sum(x * x) * 0.5 + fd.sum(fd.sin(x))


def _sq_grad(x):
    # the float64 gradient (its summation order is the tape's): a float32 input
    # must give exactly this, rounded to float32 -- all arithmetic is float64
    return fd.grad(_sq)(np.asarray(x, dtype=np.float64))


def _same(got, want, dtype):
    """got has dtype `dtype` and equals the float64 result rounded to it."""
    assert np.asarray(got).dtype == dtype, (np.asarray(got).dtype, dtype)
    if isinstance(want, float) or np.ndim(want) == 0:
        assert type(got) is np.dtype(dtype).type or (dtype == np.float64 and
                                                    type(got) is float)
    np.testing.assert_array_equal(np.asarray(got),
                                  np.asarray(want, dtype=np.float64).astype(dtype))


@pytest.mark.parametrize("dtype, want", [(np.float32, np.float32),
                                         (np.float16, np.float16),
                                         (np.longdouble, np.longdouble),
                                         (np.float64, np.float64),
                                         (np.int32, np.float64), (np.int64, np.float64),
                                         (np.uint8, np.float64), (bool, np.float64)])
def test_grad_and_value_and_grad_keep_the_floating_dtype(dtype, want):
    x = np.array([1, 0, 3]).astype(dtype)
    _same(fd.grad(_sq)(x), _sq_grad(x), want)
    v, g = fd.value_and_grad(_sq)(x)
    assert type(v) is float                       # the value stays a float
    _same(g, _sq_grad(x), want)
    _same(fd.grad(lambda x: 3.0)(x), np.zeros(3), want)    # a constant output


def test_scalar_inputs_keep_their_type():
    _same(fd.grad(lambda x: x * x)(np.float32(1.5)), 3.0, np.float32)
    _same(fd.grad(lambda x: x * x)(np.array(1.5, np.float16)), 3.0, np.float16)
    assert type(fd.grad(lambda x: x * x)(1.5)) is float
    assert type(fd.grad(lambda x: x * x)(np.float64(1.5))) is float
    assert type(fd.grad(lambda x: x * x)(2)) is float


def test_pytrees_of_mixed_dtypes_and_argnums():
    tree = {"a": F32, "b": F32.astype(np.float64), "c": 1.5, "d": np.arange(3),
            "e": [np.float32(2.0), np.ones(2, np.float16)]}

    def f(t, y):
        return (_sq(t["a"]) + _sq(t["b"]) + t["c"] ** 2 + _sq(t["d"]) +
                t["e"][0] * 3.0 + fd.sum(t["e"][1]) * y)

    g, gy = fd.grad(f, argnums=(0, 1))(tree, np.float32(2.0))
    _same(g["a"], _sq_grad(F32), np.float32)
    _same(g["b"], _sq_grad(F32.astype(np.float64)), np.float64)
    assert type(g["c"]) is float and g["c"] == 3.0
    _same(g["d"], _sq_grad(np.arange(3)), np.float64)
    _same(g["e"][0], 3.0, np.float32)
    _same(g["e"][1], [2.0, 2.0], np.float16)
    _same(gy, 2.0, np.float32)


def test_forward_and_second_order_keep_the_dtype():
    _same(fd.jacobian(fd.sin)(F32), np.diag(fd.cos(F32.astype(np.float64))), np.float32)
    J = fd.jacobian(lambda t: t["a"] * t["b"])({"a": F32, "b": F32.astype(np.float64)})
    assert J["a"].dtype == np.float32 and J["b"].dtype == np.float64
    H = fd.hessian(_sq)(F32)
    _same(H, np.diag(1.0 - fd.sin(F32.astype(np.float64))), np.float32)
    _same(fd.hessian(lambda x: x ** 3)(np.float32(2.0)), 12.0, np.float32)
    _same(fd.hvp(_sq)(F32, np.ones(3)), 1.0 - fd.sin(F32.astype(np.float64)),
          np.float32)
    v, t = fd.jvp(fd.sin, (F32,), (np.ones(3, np.float32),))
    assert v.dtype == np.float64                  # values are float64
    _same(t, fd.cos(F32.astype(np.float64)), np.float32)
    _, t = fd.jvp(lambda a, b: a * b, (F32, np.ones(3)), (np.ones(3), np.ones(3)))
    assert t.dtype == np.float64                  # promoted with a float64 primal
    _, vjp_fn = fd.vjp(lambda a, b: a * b, F32, np.ones(3, np.float16))
    ga, gb = vjp_fn(np.ones(3))
    _same(ga, np.ones(3), np.float32)
    _same(gb, F32.astype(np.float64), np.float16)
    _same(fd.derivative(lambda x: x * x)(np.float32(1.5)), 3.0, np.float32)
    assert type(fd.derivative(lambda x: x * x)(1.5)) is float


def test_tape_gradient_keeps_the_dtype_of_its_sources():
    with fd.Tape() as tape:
        a = tape.variable(F32)
        s = tape.variable(np.float32(0.5))
        b = tape.variable(F32.astype(np.float64))
        y = _sq(a) + s * s + _sq(b) + a[0]
    ga, gs, gb, g0 = tape.gradient(y, [a, s, b, a[0]])
    _same(ga, _sq_grad(F32) + [1.0, 0.0, 0.0], np.float32)
    _same(gs, 1.0, np.float32)
    _same(gb, _sq_grad(F32), np.float64)
    assert type(g0) is float                      # a Var made from a, not a source
    assert a.value.dtype == np.float64            # values are float64 (API.md 1)


def test_traced_functions_keep_the_dtype_of_each_call():
    tf = fd.trace(_sq, np.zeros(3))
    _same(tf.grad(F32), _sq_grad(F32), np.float32)
    _same(tf.grad(F32.astype(np.float64)), _sq_grad(F32), np.float64)
    v, g = tf.value_and_grad(F32.astype(np.float16))
    assert type(v) is float
    _same(g, _sq_grad(F32.astype(np.float16)), np.float16)
    _same(tf.hvp(F32, np.ones(3)), 1.0 - fd.sin(F32.astype(np.float64)), np.float32)
    _same(tf.hessian(F32), np.diag(1.0 - fd.sin(F32.astype(np.float64))), np.float32)
    X = np.stack([F32, F32 * 2])
    _same(tf.grad_batch(X), np.stack([_sq_grad(F32), _sq_grad(F32 * 2)]), np.float32)
    _same(tf.grad_batch(X.astype(np.float64)),
          np.stack([_sq_grad(F32), _sq_grad(F32 * 2)]), np.float64)
    tj = fd.trace(fd.sin, np.zeros(3))
    _same(tj.jacobian(F32), np.diag(fd.cos(F32.astype(np.float64))), np.float32)
    _same(tj.jvp(F32, np.ones(3))[1], fd.cos(F32.astype(np.float64)), np.float32)
    tp = fd.trace(lambda t: _sq(t["a"]) + t["b"] ** 2, {"a": np.zeros(3), "b": 0.0})
    g = tp.grad({"a": F32, "b": np.float32(1.0)})
    _same(g["a"], _sq_grad(F32), np.float32)
    _same(g["b"], 2.0, np.float32)
    g = tp.grad({"a": F32, "b": 1.0})
    assert type(g["b"]) is float


@pytest.mark.parametrize("kind", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_non_finite_max_is_a_guard(kind):
    fn = getattr(fd, kind)
    f = lambda x: fd.sum(fn(x))            # noqa: E731
    x0 = np.array([0.5, -1.0, 2.0])
    bad = np.array([-np.inf, -np.inf, -np.inf])
    with pytest.raises(fd.TraceError, match="guard"):
        fd.trace(f, x0)(bad)               # fd.grad would shift by 0 there
    tf = fd.trace(f, x0, retrace=True)
    for x in (bad, x0, np.array([np.inf, 1.0, 0.0])):
        want, got = fd.value_and_grad(f)(x), tf.value_and_grad(x)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert kind != "logsumexp" or fd.logsumexp(fd.Tape().variable(bad)).value == -np.inf
