"""The declarations of fastad's array primitives: one entry per array operation.

Each entry (fastad._registry.Primitive) names what the operation answers to -- the
NumPy callables it takes over on Vars, the Var methods it backs, its fd.<name> --
and how it is called: its implementation (`impl`, today's function: the op table's
generated functions, the array records of fastad._arrays, the slot forms of the
core), its NumPy-style signature (`parse`, which refuses out=, dtype= and the like
with a TypeError naming them), its form over Duals (`dual`) and, for the core, its
record form for large arrays (`record`).  Importing this module fills the registry;
fd.*, NumPy's dispatch on Vars and Duals, and tests/test_registry.py all read it.

Elementwise entries are generated from the op table (OP_INFO), one per row: every
NumPy ufunc of a row's name is supported the moment the row exists, and ufuncs of
other libraries dispatch by name (scipy.special.erf is fd.erf).  Anything NumPy
calls on a Var that has no entry raises TypeError naming the function: handing
NumPy a Var's plain values would silently detach the result from the tape.
"""

import numpy as np

from fastad import _array_math, _arrays, _dual_collections as _dc, _generic, _math, _registry, _tape
from fastad._registry import Primitive, declare, test_row as _row
from fastad._tape import OP_INFO, SPECIAL_ROWS, Var


# ----------------------------------------------------------------------------------
# NumPy-style signatures

def _no_out(fname, out, dtype=None):
    if out is not None:
        raise TypeError("fastad: numpy.%s(..., out=...) is not supported on Vars" % fname)
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError("fastad: numpy.%s(..., dtype=%s): Vars are float64"
                        % (fname, dtype))


def _no_extra(fname, kw):
    if kw:
        raise TypeError("fastad: numpy.%s got unsupported keyword arguments %s on Vars"
                        % (fname, sorted(kw)))


def _ufunc_parse(name):
    """numpy.<ufunc>(*inputs, **kwargs): only the inputs (and dtype=float64)."""
    def parse(*inputs, **kwargs):
        out = kwargs.pop("out", None)
        if out is not None:
            raise TypeError("fastad: numpy.%s(..., out=...) cannot write a Var into an "
                            "array; use the returned value" % name)
        for k in ("where", "casting", "order", "subok", "signature"):
            if k in kwargs:
                raise TypeError("fastad: numpy.%s(..., %s=...) is not supported on Vars"
                                % (name, k))
        dtype = kwargs.pop("dtype", None)
        if dtype is not None and np.dtype(dtype) != np.float64:
            raise TypeError("fastad: numpy.%s(..., dtype=%s): Vars are float64"
                            % (name, dtype))
        if kwargs:
            raise TypeError("fastad: numpy.%s got unsupported keyword arguments %s"
                            % (name, sorted(kwargs)))
        return inputs, {}
    return parse


def _reduction_parse(fname, dtype):
    """numpy.sum/mean/prod (with dtype=) and numpy.max/min (without)."""
    def parse_dtype(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        _no_out(fname, out, dtype)
        _no_extra(fname, kw)
        return (a,), {"axis": axis, "keepdims": keepdims}

    def parse(a, axis=None, out=None, keepdims=False, **kw):
        _no_out(fname, out)
        _no_extra(fname, kw)
        return (a,), {"axis": axis, "keepdims": keepdims}
    return parse_dtype if dtype else parse


def _pair_parse(fname):
    """numpy.dot / numpy.outer (a, b, out=None)."""
    def parse(a, b, out=None):
        _no_out(fname, out)
        return (a, b), {}
    return parse


def _inner_parse(a, b):
    return (a, b), {}


def _reshape_parse(a, *args, **kw):
    shape = kw.pop("shape", kw.pop("newshape", None))
    if args:
        shape = args[0] if len(args) == 1 else args
    order = kw.pop("order", "C")
    _no_extra("reshape", {k: v for k, v in kw.items() if k != "copy"})
    if order != "C":
        raise TypeError("fastad: numpy.reshape(order=%r) is not supported on Vars" % order)
    return (a, shape), {}


def _transpose_parse(a, axes=None):
    return (a, axes), {}


def _ravel_parse(a, order="C"):
    if order != "C":
        raise TypeError("fastad: numpy.ravel(order=%r) is not supported on Vars" % order)
    return (a,), {}


def _squeeze_parse(a, axis=None):
    return (a, axis), {}


def _expand_dims_parse(a, axis):
    return (a, axis), {}


def _join_parse(fname):
    """numpy.concatenate / numpy.stack (arrays, axis=0, out=None)."""
    def parse(arrays, axis=0, out=None, **kw):
        _no_out(fname, out)
        _no_extra(fname, kw)
        return (arrays,), {"axis": axis}
    return parse


def _where_parse(condition, x=None, y=None):
    if x is None or y is None:
        raise TypeError("fastad: numpy.where(condition) with one argument is not "
                        "supported on Vars; use np.nonzero(mask) on the values")
    return (condition, x, y), {}


def _clip_parse(a, a_min=None, a_max=None, out=None, **kw):
    _no_out("clip", out)
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    _no_extra("clip", kw)
    return (a, a_min, a_max), {}


def _one_parse(a):
    return (a,), {}


def _size_parse(a, axis=None):
    return (a,), {"axis": axis}


# ----------------------------------------------------------------------------------
# Implementations that are compositions (front ends) rather than calls of one
# existing function

def _reciprocal(x):
    return _tape.divide(1.0, x)


def _ravel(a):
    return _tape.reshape(a, (-1,))


_EINSUM_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _inner(a, b):
    """numpy.inner: a sum over the last axis of both operands (a scalar operand
    multiplies), so inner(a, b).shape == a.shape[:-1] + b.shape[:-1].  Not np.dot:
    inner(a, B) for a (k,) and a (n, k) is B @ a, where dot would give a @ B."""
    sa, sb = np.shape(getattr(a, "value", a)), np.shape(getattr(b, "value", b))
    if len(sa) == 0 or len(sb) == 0:
        return _tape.multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError("fastad: numpy.inner: the last axes of a and b must have the "
                         "same length, got shapes %s and %s" % (sa, sb))
    # the shapes dot/matmul already handle, one matmul record each
    if len(sb) == 1 and len(sa) <= 2:
        return _arrays.dot(a, b)                  # a . b, or A @ b
    if len(sa) == 1 and len(sb) == 2:
        return _arrays.dot(b, a)                  # B @ a
    letters = _EINSUM_LETTERS
    if len(sa) + len(sb) - 1 > len(letters):
        raise ValueError("fastad: numpy.inner: operands of %d and %d dimensions are "
                         "too many axes for one contraction" % (len(sa), len(sb)))
    fa = letters[:len(sa) - 1]
    fb = letters[len(sa) - 1:len(sa) + len(sb) - 2]
    k = letters[len(sa) + len(sb) - 2]
    return _arrays.einsum("%s%s,%s%s->%s%s" % (fa, k, fb, k, fa, fb), a, b)


def _getitem(x, key):
    if type(x) is not Var:
        return np.asarray(x, dtype=np.float64)[key]
    return _tape.getitem(x, key)


def _shape(a):
    return a.shape if type(a) is Var else np.shape(a)


def _ndim(a):
    return a.ndim if type(a) is Var else np.ndim(a)


def _size(a, axis=None):
    if type(a) is not Var:
        return np.size(a, axis)
    return a.size if axis is None else a.shape[axis]


# Comparisons: values only (a boolean array), exactly what Var's operators give.
# With an ndarray on the left (np.arange(3) < x) the comparison is taken reflected
# on the Var: `a < b` would hand it back to ndarray.__lt__, which calls the ufunc
# hook again (infinite recursion, found by tools/fuzz.py).
# Var's own method is called (never the operator), and NotImplemented -- an
# operand it cannot compare with, such as a string array -- becomes a TypeError
# instead of another round through NumPy.
def _comparison(ufunc, name, reflected):
    method = getattr(Var, "__%s__" % name)
    reflected_method = getattr(Var, "__%s__" % reflected)

    def compare(a, b):
        if type(a) is Var:
            out, other = method(a, b), b
        elif type(b) is Var:
            out, other = reflected_method(b, a), a
        else:
            return ufunc(a, b)
        if out is NotImplemented:
            raise TypeError("fastad: cannot compare a Var with %s"
                            % type(other).__name__)
        return out
    compare.__name__ = ufunc.__name__
    return compare


# ----------------------------------------------------------------------------------
# Rules (docs/design/array-registry.md 2.1): directions on a leading axis, so an
# operand's axis a is axis a + 1 of T, G and Gd.

def _lead(axes):
    return tuple(a + 1 for a in axes)


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return _keep_shape(shape, axes)
    return tuple(d for i, d in enumerate(shape) if i not in axes)


# The softmax family: the shifted max and the two kernels, once, for all three
# entries (their small-array slot forms are in fastad._array_math).

def _shifted(x, axes):
    """(x - m, m): m the max along the axes (keepdims), 0 where it is not finite."""
    m = x.max(axis=axes, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(all="ignore"):
        return x - m, m


def _lse(x, axes):
    """logsumexp along the axes, keepdims form."""
    z, m = _shifted(x, axes)
    with np.errstate(all="ignore"):
        lse = np.log(np.exp(z).sum(axis=axes, keepdims=True))
    lse += m
    return lse


def _softmax_of(x, axes):
    """exp(x - max) / sum: exp(x - lse) would carry lse's rounding, |lse| * 2**-53
    absolutely (5e-14 at lse = 1000)."""
    z, _ = _shifted(x, axes)
    with np.errstate(all="ignore"):
        e = np.exp(z)
        return e / e.sum(axis=axes, keepdims=True)


def _softmax_forward(kind):
    def forward(values, p):
        x, axes = values[0], p["axes"]
        if kind == "softmax":
            return _softmax_of(x, axes), None
        # logsumexp and log_softmax keep the probabilities as their residual: every
        # rule reads them, and they come from the forward's own exp and sum (the
        # same operations as _softmax_of, so the same bits)
        z, m = _shifted(x, axes)
        with np.errstate(all="ignore"):
            e = np.exp(z)
            s = e.sum(axis=axes, keepdims=True)
            lse = np.log(s)
            lse += m
            probs = e / s
            if kind == "logsumexp":
                return (lse if p["keepdims"] else
                        lse.reshape(_reduced_shape(x.shape, axes, False))), probs
            return x - lse, probs
    return forward


def _probs(kind, values, out, p, res=None):
    if kind == "softmax":
        return out
    # the forward's residual; None where the rule runs without a forward first
    return res if res is not None else _softmax_of(values[0], p["axes"])


def _softmax_vjp(kind):
    def vjp(values, out, res, G, p, needs):
        P = _probs(kind, values, out, p, res)
        ax = _lead(p["axes"])
        if kind == "logsumexp":
            return (G.reshape((G.shape[0],) + _keep_shape(values[0].shape, p["axes"]))
                    * P,)
        if kind == "log_softmax":
            return (G - P * G.sum(axis=ax, keepdims=True),)
        return (P * (G - (G * P).sum(axis=ax, keepdims=True)),)
    return vjp


def _softmax_jvp(kind):
    def jvp(values, out, res, T, p):
        t = T[0]
        P = _probs(kind, values, out, p, res)
        s = (P * t).sum(axis=_lead(p["axes"]), keepdims=True)
        if kind == "logsumexp":
            return s.reshape((t.shape[0],) + _reduced_shape(values[0].shape, p["axes"],
                                                            p["keepdims"]))
        if kind == "log_softmax":
            return t - s
        return P * (t - s)
    return jvp


def _softmax_second(kind):
    vjp = _softmax_vjp(kind)

    def second(values, out, res, T, g, Gd, p, needs):
        (grad,) = vjp(values, out, res, Gd, p, needs)
        t = T[0]
        if t is None:
            return (grad,)
        P = _probs(kind, values, out, p, res)
        axes = p["axes"]
        ax = _lead(axes)
        with np.errstate(all="ignore"):
            dp = P * (t - np.sum(P * t, axis=ax, keepdims=True))
            if kind == "logsumexp":
                c = g.reshape(_keep_shape(values[0].shape, axes)) * dp
            elif kind == "log_softmax":
                c = -dp * np.sum(g, axis=axes, keepdims=True)
            else:
                c = dp * (g - np.sum(g * P, axis=axes, keepdims=True)) \
                    - P * np.sum(g * dp, axis=ax, keepdims=True)
        return (grad + c,)
    return second


def _checked_axes(kind, s, p, empty_ok):
    """p["axes"] of a reduction-like op on shape s (a saved trace's params come from
    the file): increasing axes of s, and none empty unless the op has an identity."""
    axes = p["axes"]
    if any(not 0 <= a < len(s) for a in axes) or list(axes) != sorted(set(axes)):
        raise ValueError("%s: axes %s are not increasing axes of a %d-d array"
                         % (kind, axes, len(s)))
    if not empty_ok and any(s[a] == 0 for a in axes):
        raise ValueError("%s over an empty axis" % kind)
    return axes


def _softmax_shape(kind):
    def shape(shapes, p):
        (s,) = shapes
        axes = _checked_axes(kind, s, p, empty_ok=False)
        return _reduced_shape(s, axes, p["keepdims"]) if kind == "logsumexp" else s
    return shape


# Reductions: sum and mean linear, max and min piecewise linear (second order is
# the vjp of Gd for all four)

def _count(shape, axes):
    c = 1.0
    for a in axes:
        c *= shape[a]
    return c


def _reduce_forward(kind):
    def forward(values, p):
        # ndarray methods: np.sum & co. add a Python-level wrapper (~1.5 us each)
        return getattr(values[0], kind)(axis=p["axes"], keepdims=p["keepdims"]), None
    return forward


def _extreme_weights(x, out, p):
    """d out / d x as an array of x's shape (max/min: ties share evenly)."""
    mask = x == out.reshape(_keep_shape(x.shape, p["axes"]))
    with np.errstate(all="ignore"):
        return mask / mask.sum(axis=p["axes"], keepdims=True)


def _reduce_vjp(kind):
    def vjp(values, out, res, G, p, needs):
        x = values[0]
        G = G.reshape((G.shape[0],) + _keep_shape(x.shape, p["axes"]))
        # broadcast against x (the record adds them without materialising)
        if kind == "sum":
            return (G,)
        if kind == "mean":
            return (G / _count(x.shape, p["axes"]),)
        return (G * _extreme_weights(x, out, p),)
    return vjp


def _reduce_jvp(kind):
    def jvp(values, out, res, T, p):
        t, ax, kd = T[0], _lead(p["axes"]), p["keepdims"]
        if kind == "sum":
            return t.sum(axis=ax, keepdims=kd)
        if kind == "mean":
            return t.mean(axis=ax, keepdims=kd)
        return (t * _extreme_weights(values[0], out, p)).sum(axis=ax, keepdims=kd)
    return jvp


def _reduce_shape(kind):
    def shape(shapes, p):
        (s,) = shapes
        axes = _checked_axes(kind, s, p, empty_ok=kind not in ("max", "min"))
        return _reduced_shape(s, axes, p["keepdims"])
    return shape


def _reduce_rules(kind):
    return dict(forward=_reduce_forward(kind), vjp=_reduce_vjp(kind),
                jvp=_reduce_jvp(kind), shape=_reduce_shape(kind),
                saved=("reduce", {"axes": "axes", "keepdims": "bool"}))


def _reduce_record(kind):
    """The record form of sum / mean: one record from RECORD_MIN_SIZE elements up,
    else NotImplemented (the core then chains scalar slots)."""
    def record(x, axis, keepdims):
        if x.size < _arrays.RECORD_MIN_SIZE:
            return NotImplemented
        p = {"axes": _tape.normalize_axes(axis, x.ndim, kind), "keepdims": bool(keepdims)}
        return _generic.bind(_registry.REGISTRY[kind], (x,), p)
    return record


# Layout: reshape and transpose, linear (second order is the vjp of Gd)

def _reshape_forward(values, p):
    return values[0].reshape(p["arg"]), None


def _reshape_vjp(values, out, res, G, p, needs):
    return (G.reshape((G.shape[0],) + values[0].shape),)


def _reshape_jvp(values, out, res, T, p):
    return T[0].reshape((T[0].shape[0],) + tuple(p["arg"]))


def _reshape_shape(shapes, p):
    (s,) = shapes
    if int(np.prod(p["arg"], dtype=np.int64)) != int(np.prod(s, dtype=np.int64)):
        raise ValueError("reshape of %s to %s changes the size" % (s, p["arg"]))
    return tuple(p["arg"])


def _transpose_forward(values, p):
    return values[0].transpose(p["arg"]), None


def _transpose_vjp(values, out, res, G, p, needs):
    return (G.transpose((0,) + _lead(np.argsort(p["arg"]))),)


def _transpose_jvp(values, out, res, T, p):
    return T[0].transpose((0,) + _lead(p["arg"]))


def _transpose_shape(shapes, p):
    (s,) = shapes
    if sorted(p["arg"]) != list(range(len(s))):
        raise ValueError("transpose axes %s are not a permutation of %d axes"
                         % (p["arg"], len(s)))
    return tuple(s[a] for a in p["arg"])


# Record forms the core calls for large arrays (NotImplemented: keep scalar slots).
def _reshape_record(x, shape):
    if x.size < _arrays.RECORD_MIN_SIZE:
        return NotImplemented
    new = x.value.reshape(shape).shape     # NumPy resolves -1 and checks the size
    return _generic.bind(_registry.REGISTRY["reshape"], (x,), {"arg": tuple(new)})


def _transpose_record(x, axes):
    if x.size < _arrays.RECORD_MIN_SIZE:
        return NotImplemented
    xv = x.value
    if axes is None:
        axes = tuple(range(xv.ndim))[::-1]
    # NumPy checks the permutation (and each axis's range: wrapping them with %
    # first turned an invalid axis into a valid one, as the small path refuses)
    xv.transpose(axes)
    axes = tuple(int(a) % xv.ndim for a in axes) if xv.ndim else ()
    return _generic.bind(_registry.REGISTRY["transpose"], (x,), {"arg": axes})


# ----------------------------------------------------------------------------------
# Elementwise: one entry per op-table row

# NumPy ufuncs that are a row under another name (beyond numpy.<row name>)
_UFUNC_ALIASES = {"abs": (np.fabs,), "positive": (np.conjugate,)}
# ufunc.reduce of a row: the reduction entry it is
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}
# Var's operators that record the row (their scalar fast paths call the core
# directly, with the row's op code)
_OPERATORS = {
    "positive": ("__pos__",), "negative": ("__neg__",), "abs": ("__abs__",),
    "add": ("__add__", "__radd__"), "subtract": ("__sub__", "__rsub__"),
    "multiply": ("__mul__", "__rmul__"), "divide": ("__truediv__", "__rtruediv__"),
    "floor_divide": ("__floordiv__", "__rfloordiv__"), "mod": ("__mod__", "__rmod__"),
    "power": ("__pow__", "__rpow__"),
}
# rows that are operators, not fd.* functions
_NOT_PUBLIC = {"positive", "negative", "add", "subtract", "multiply", "divide",
               "floor_divide", "mod"}

for _code, _name, _arity, _dom in OP_INFO:
    _uf = getattr(np, _name, None)
    _numpy = ((_uf,) if isinstance(_uf, np.ufunc) else ()) + _UFUNC_ALIASES.get(_name, ())
    if _arity == 1:
        _rows = (_row((3,), dom=_dom), _row((5, 4), dom=_dom), _row((), dom=_dom))
    else:
        _rows = (_row((3,), (3,), dom=_dom), _row((5, 4), (4,), dom=_dom),
                 _row((), (4, 5), dom=_dom))
    declare(Primitive(
        _name, getattr(_tape, _name), "elementwise", numpy=_numpy,
        methods=_OPERATORS.get(_name, ()),
        # the special-function rows are fd.special.<name> (fastad/special.py)
        public=None if _name in _NOT_PUBLIC or _name in SPECIAL_ROWS else _name,
        parse=_ufunc_parse(_name),
        op=_code, reduce=_REDUCE.get(_name), record=_arrays.elementwise, tests=_rows,
        sparsity="elementwise"))
del _code, _name, _arity, _dom, _uf, _numpy, _rows

declare(Primitive(
    "reciprocal", _reciprocal, "front_end", numpy=(np.reciprocal,),
    parse=_ufunc_parse("reciprocal"), tests=(_row((3,), dom=(0.5, 2.0)),)))

for _uf, _name, _reflected in (
        (np.less, "lt", "gt"), (np.less_equal, "le", "ge"), (np.greater, "gt", "lt"),
        (np.greater_equal, "ge", "le"), (np.equal, "eq", "eq"),
        (np.not_equal, "ne", "ne")):
    declare(Primitive(
        _uf.__name__, _comparison(_uf, _name, _reflected), "comparison", numpy=(_uf,),
        methods=("__%s__" % _name,), parse=_ufunc_parse(_uf.__name__),
        tests=(_row((4,), (4,)), _row((4,), 0.0))))
del _uf, _name, _reflected

# ----------------------------------------------------------------------------------
# Reductions

declare(Primitive(
    "sum", _tape.sum, "linear", numpy=(np.sum,), methods=("sum",), public="sum",
    parse=_reduction_parse("sum", True), dual=_dc.sum,
    record=_reduce_record("sum"), **_reduce_rules("sum"),
    tests=(_row((4,)), _row((5, 4), axis=1), _row((5, 4), axis=0, keepdims=True),
           _row((2, 3, 4), axis=(0, 2))),
    sparsity="reduce"))
declare(Primitive(
    "mean", _tape.mean, "linear", numpy=(np.mean,), methods=("mean",), public="mean",
    parse=_reduction_parse("mean", True), dual=_dc.mean,
    record=_reduce_record("mean"), **_reduce_rules("mean"),
    tests=(_row((4,)), _row((5, 4), axis=1), _row((5, 4), axis=0, keepdims=True)),
    sparsity="reduce"))
declare(Primitive(
    "prod", _tape.prod, "nonlinear", numpy=(np.prod,), public="prod",
    parse=_reduction_parse("prod", True), dual=_dc.prod,
    tests=(_row((4,), dom=(0.5, 1.5)), _row((3, 4), axis=1, dom=(0.5, 1.5))),
    sparsity="reduce"))
declare(Primitive(
    "max", _array_math.amax, "piecewise_linear", numpy=(np.max, np.amax),
    parse=_reduction_parse("max", False), **_reduce_rules("max"),
    tests=(_row((4,)), _row((5, 4), axis=1), _row((5, 4), axis=0, keepdims=True)),
    sparsity="reduce"))
declare(Primitive(
    "min", _array_math.amin, "piecewise_linear", numpy=(np.min, np.amin),
    parse=_reduction_parse("min", False), **_reduce_rules("min"),
    tests=(_row((4,)), _row((5, 4), axis=1), _row((5, 4), axis=0, keepdims=True)),
    sparsity="reduce"))

# ----------------------------------------------------------------------------------
# The softmax family

def _softmax_sparsity(rec, bits):
    """Each output element depends on every operand element along the axes."""
    b = bits[0]
    axes = tuple(rec.p["axes"])
    return np.broadcast_to(np.bitwise_or.reduce(b, axis=axes, keepdims=True), b.shape)


def _softmax_rules(kind):
    return dict(forward=_softmax_forward(kind), vjp=_softmax_vjp(kind),
                jvp=_softmax_jvp(kind), second=_softmax_second(kind),
                shape=_softmax_shape(kind),
                saved=("softmax", {"axes": "axes", "keepdims": "bool"}))


declare(Primitive(
    "logsumexp", _math.logsumexp, "nonlinear", public="logsumexp", dual=_dc.logsumexp,
    **_softmax_rules("logsumexp"),
    tests=(_row((4,)), _row((5, 4), axis=1), _row((5, 4), axis=0, keepdims=True)),
    sparsity="reduce"))
declare(Primitive(
    "softmax", _array_math.softmax, "nonlinear", public="softmax", dual=_dc.softmax,
    **_softmax_rules("softmax"),
    tests=(_row((4,)), _row((5, 4), axis=0)), sparsity=_softmax_sparsity))
declare(Primitive(
    "log_softmax", _array_math.log_softmax, "nonlinear", public="log_softmax",
    dual=_dc.log_softmax, tests=(_row((4,)), _row((5, 4), axis=0)),
    **_softmax_rules("log_softmax"), sparsity=_softmax_sparsity))

# ----------------------------------------------------------------------------------
# Contractions

def _matmul_sparsity(rec, bits):
    """out[..., i, k] depends on a[..., i, j] and b[..., j, k] for every j whose
    product term is not structurally zero: a constant operand's zero entries
    (part of the recording) drop their terms, so A @ x with a banded constant A
    gets the band.  1-D operands are a row and a column vector, as in matmul."""
    a, b = bits           # each: operand shape + (words,)
    masks = [np.asarray(v) != 0 if s < 0 else np.ones(np.shape(v), dtype=bool)
             for s, v in zip(rec.slots, rec.values)]
    a2, ma = (a[None, :], masks[0][None, :]) if a.ndim == 2 else (a, masks[0])
    b2, mb = (b[:, None], masks[1][:, None]) if b.ndim == 2 else (b, masks[1])
    batch = np.broadcast_shapes(a2.shape[:-3], b2.shape[:-3])
    w = a.shape[-1]
    out = np.zeros(batch + (a2.shape[-3], b2.shape[-2], w), dtype=np.uint64)
    for j in range(a2.shape[-2]):
        term = a2[..., :, j, None, :] | b2[..., None, j, :, :]
        live = ma[..., :, j, None] & mb[..., None, j, :]
        out |= np.where(live[..., None], term, np.uint64(0))
    return out.reshape(tuple(rec.out_shape) + (w,))


declare(Primitive(
    "matmul", _arrays.matmul, "multilinear", numpy=(np.matmul,),
    methods=("__matmul__", "__rmatmul__"), public="matmul",
    parse=_ufunc_parse("matmul"), dual=_dc.matmul,
    tests=(_row((3, 4), (4,)), _row((4,), (4, 2)), _row((5, 4), (4, 6)),
           _row((2, 3, 4), (4, 2))),
    sparsity=_matmul_sparsity))
declare(Primitive(
    "dot", _arrays.dot, "front_end", numpy=(np.dot,), methods=("dot",), public="dot",
    parse=_pair_parse("dot"), dual=_dc.dot,
    tests=(_row((4,), (4,)), _row((3, 4), (4,)), _row((5, 4), (4, 6)), _row((), (3,)),
           _row((2, 3, 4), (4, 2)))))
declare(Primitive(
    "outer", _arrays.outer, "front_end", numpy=(np.outer,), parse=_pair_parse("outer"),
    tests=(_row((3,), (4,)), _row((2, 2), (5,)))))
declare(Primitive(
    "inner", _inner, "front_end", numpy=(np.inner,), parse=_inner_parse,
    tests=(_row((4,), (4,)), _row((3,), (2, 3)), _row((2, 2, 3), (4, 3)),
           _row((), (3,)))))
# einsum ('...', the sublist form, diagonals) is a front end in fastad._prims_array

# ----------------------------------------------------------------------------------
# Layout

declare(Primitive(
    "reshape", _tape.reshape, "linear", numpy=(np.reshape,), methods=("reshape",),
    public="reshape", parse=_reshape_parse, dual=_dc.reshape, record=_reshape_record,
    forward=_reshape_forward, vjp=_reshape_vjp, jvp=_reshape_jvp, shape=_reshape_shape,
    saved=("layout", {"arg": "shape"}),
    tests=(_row((3, 4), shape=(4, 3)), _row((5, 4), shape=(2, -1)),
           _row((6,), shape=(2, 3))),
    sparsity="by_index"))
declare(Primitive(
    "transpose", _tape.transpose, "linear", numpy=(np.transpose,),
    methods=("transpose", "T"), public="transpose", parse=_transpose_parse,
    dual=_dc.transpose, record=_transpose_record,
    forward=_transpose_forward, vjp=_transpose_vjp, jvp=_transpose_jvp,
    shape=_transpose_shape, saved=("layout", {"arg": "shape"}),
    tests=(_row((3, 4)), _row((2, 3, 4), axes=(1, 2, 0)), _row((5, 4))),
    sparsity="by_index"))
declare(Primitive(
    "ravel", _ravel, "front_end", numpy=(np.ravel,), parse=_ravel_parse,
    tests=(_row((3, 4)), _row((5, 4)))))
declare(Primitive(
    "squeeze", _array_math.squeeze, "front_end", numpy=(np.squeeze,),
    parse=_squeeze_parse, tests=(_row((3, 1, 4)), _row((1, 20), axis=0))))
declare(Primitive(
    "expand_dims", _array_math.expand_dims, "front_end", numpy=(np.expand_dims,),
    parse=_expand_dims_parse, tests=(_row((3, 4), axis=1), _row((20,), axis=0))))

# ----------------------------------------------------------------------------------
# Indexing and assembly

declare(Primitive(
    "getitem", _getitem, "linear", methods=("__getitem__",),
    tests=(_row((5,), key=slice(1, None)), _row((5, 4), key=(slice(None), 2)),
           _row((5, 4), key=np.array([0, 2, 2])), _row((20,), key=slice(None, None, -3))),
    sparsity="by_index"))
declare(Primitive(
    "stack", _tape.stack, "linear", numpy=(np.stack,), public="stack",
    parse=_join_parse("stack"), dual=_dc.stack,
    tests=(_row([(3,), (3,)]), _row([(5, 4), (5, 4)], axis=1), _row([(), ()])),
    sparsity="by_index"))
declare(Primitive(
    "concatenate", _tape.concatenate, "linear", numpy=(np.concatenate,),
    public="concatenate", parse=_join_parse("concatenate"), dual=_dc.concatenate,
    tests=(_row([(3,), (2,)]), _row([(5, 4), (5, 2)], axis=1)),
    sparsity="by_index"))
declare(Primitive(
    "array", _tape.array, "linear", public="array", dual=_dc.array,
    tests=(_row([(), (), ()]), _row([(3,), (3,)])),
    sparsity="by_index"))
declare(Primitive(
    "where", _tape.where, "linear", numpy=(np.where,), public="where",
    parse=_where_parse, dual=_dc.where,
    tests=(_row(np.array([True, False, True]), (3,), (3,)),
           _row(np.array([[True], [False]]), (2, 10), (10,))),
    sparsity="by_index"))
declare(Primitive(
    "clip", _math.clip, "front_end", numpy=(np.clip,), public="clip", parse=_clip_parse,
    tests=(_row((5,), -0.5, 0.5), _row((5, 4), None, 0.3))))

# ----------------------------------------------------------------------------------
# Queries: no derivative, no recording

declare(Primitive("shape", _shape, "query", numpy=(np.shape,), parse=_one_parse,
                  tests=(_row((3, 4)),)))
declare(Primitive("ndim", _ndim, "query", numpy=(np.ndim,), parse=_one_parse,
                  tests=(_row((3, 4)),)))
declare(Primitive("size", _size, "query", numpy=(np.size,), parse=_size_parse,
                  tests=(_row((3, 4)), _row((3, 4), axis=1))))

# Linear algebra (numpy.linalg): its own module, declared after the core entries
from fastad import _prims_linalg  # noqa: E402,F401
from fastad import _prims_array  # noqa: E402,F401  the rest of NumPy's array API
from fastad import _prims_numpy_misc  # noqa: E402,F401  and its everyday odds and ends
# numpy.linalg's decompositions (eigh, svd, qr, pinv) and norm, matrix_power,
# multi_dot; scipy.linalg's triangular and Cholesky solves (SciPy never imported here)
from fastad import _prims_decomp  # noqa: E402,F401
from fastad import _prims_scipy_linalg  # noqa: E402,F401
