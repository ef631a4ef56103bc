"""NumPy's dispatch protocols for Vars: np.sin(x), np.sum(x), np.dot(A, x), ...

Var.__array_ufunc__ / __array_function__ call the hook registered here.  Ufuncs map
by name to the functions generated from the op table (fastad._tape.sin, ...), so
every ufunc the table has is supported the moment its row exists; a handful of
others are compositions.  Anything else raises TypeError naming the function:
handing NumPy a Var's plain values would silently detach the result from the tape.
"""
import numpy as np

from fastad import _tape, _array_math, _arrays, _math
from fastad._tape import Var

# ufuncs whose numpy name differs from the table's python name, or that are
# compositions of table primitives
_UFUNC_ALIASES = {
    "absolute": "abs",
    "true_divide": "divide",
    "fabs": "abs",
    "remainder": "mod",
}


def _reciprocal(x):
    return 1.0 / x


_UFUNC_EXTRA = {
    "reciprocal": _reciprocal,
    "sigmoid": _tape.sigmoid,
}

# comparisons: values only (a boolean array), exactly what Var's operators give.
# With an ndarray on the left (np.arange(3) < x) the comparison is taken reflected
# on the Var: `a < b` would hand it back to ndarray.__lt__, which calls this ufunc
# hook again (infinite recursion, found by tools/fuzz.py).
# Var's own method is called (never the operator), and NotImplemented -- an
# operand it cannot compare with, such as a string array -- becomes a TypeError
# instead of another round through NumPy.
def _comparison(name, reflected):
    method = getattr(Var, "__%s__" % name)
    reflected_method = getattr(Var, "__%s__" % reflected)

    def compare(a, b):
        if type(a) is Var:
            out, other = method(a, b), b
        else:
            out, other = reflected_method(b, a), a
        if out is NotImplemented:
            raise TypeError("fastad: cannot compare a Var with %s"
                            % type(other).__name__)
        return out
    return compare


_COMPARISONS = {
    "less": _comparison("lt", "gt"), "less_equal": _comparison("le", "ge"),
    "greater": _comparison("gt", "lt"), "greater_equal": _comparison("ge", "le"),
    "equal": _comparison("eq", "eq"), "not_equal": _comparison("ne", "ne"),
}


def _ufunc_impl(ufunc):
    name = ufunc.__name__
    if name in _COMPARISONS:
        return _COMPARISONS[name]
    if name in _UFUNC_EXTRA:
        return _UFUNC_EXTRA[name]
    fn = getattr(_tape, _UFUNC_ALIASES.get(name, name), None)
    # only the table's generated math functions (they carry the ufunc's name)
    if fn is None or getattr(fn, "__name__", None) != _UFUNC_ALIASES.get(name, name):
        return None
    return fn


class _Hook:
    """The object Var's NumPy protocols call (fastad._tape._register_numpy_hook)."""

    def array_ufunc(self, ufunc, method, inputs, kwargs):
        name = getattr(ufunc, "__name__", repr(ufunc))
        if method != "__call__":
            if method == "reduce" and name in ("add", "maximum", "minimum", "multiply"):
                return _reduce_method(name, inputs, kwargs)
            raise TypeError("fastad: numpy.%s.%s is not supported on Vars (only "
                            "calling the ufunc, and add/multiply/maximum/minimum.reduce)"
                            % (name, method))
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
        if name == "matmul":
            return _arrays.matmul(*inputs)
        fn = _ufunc_impl(ufunc)
        if fn is None:
            raise TypeError("fastad: numpy.%s is not supported on Vars (it would detach "
                            "the result from the tape); use fastad's functions" % name)
        return fn(*inputs)

    def array_function(self, func, types, args, kwargs):
        impl = _FUNCTIONS.get(func)
        if impl is None:
            raise TypeError("fastad: numpy.%s is not supported on Vars (it would detach "
                            "the result from the tape)" % getattr(func, "__name__", func))
        return impl(*args, **kwargs)


def _reduce_method(name, inputs, kwargs):
    (x,) = inputs
    axis = kwargs.pop("axis", 0)
    keepdims = kwargs.pop("keepdims", False)
    if kwargs:
        raise TypeError("fastad: numpy.%s.reduce got unsupported keyword arguments %s"
                        % (name, sorted(kwargs)))
    f = {"add": _sum, "multiply": _prod, "maximum": _array_math.amax,
         "minimum": _array_math.amin}[name]
    return f(x, axis=axis, keepdims=keepdims)


def _no_out(fname, out, dtype=None):
    if out is not None:
        raise TypeError("fastad: numpy.%s(..., out=...) is not supported on Vars" % fname)
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError("fastad: numpy.%s(..., dtype=%s): Vars are float64"
                        % (fname, dtype))


def _sum(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no_out("sum", out, dtype)
    _no_extra("sum", kw)
    return _tape.sum(a, axis=axis, keepdims=keepdims)


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no_out("mean", out, dtype)
    _no_extra("mean", kw)
    return _tape.mean(a, axis=axis, keepdims=keepdims)


def _prod(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no_out("prod", out, dtype)
    _no_extra("prod", kw)
    return _tape.prod(a, axis=axis, keepdims=keepdims)


def _max(a, axis=None, out=None, keepdims=False, **kw):
    _no_out("max", out)
    _no_extra("max", kw)
    return _array_math.amax(a, axis=axis, keepdims=keepdims)


def _min(a, axis=None, out=None, keepdims=False, **kw):
    _no_out("min", out)
    _no_extra("min", kw)
    return _array_math.amin(a, axis=axis, keepdims=keepdims)


def _no_extra(fname, kw):
    if kw:
        raise TypeError("fastad: numpy.%s got unsupported keyword arguments %s on Vars"
                        % (fname, sorted(kw)))


def _reshape(a, *args, **kw):
    shape = kw.pop("shape", kw.pop("newshape", None))
    if args:
        shape = args[0] if len(args) == 1 else args
    order = kw.pop("order", "C")
    _no_extra("reshape", {k: v for k, v in kw.items() if k != "copy"})
    if order != "C":
        raise TypeError("fastad: numpy.reshape(order=%r) is not supported on Vars" % order)
    return _tape.reshape(a, shape)


def _transpose(a, axes=None):
    return _tape.transpose(a, axes)


def _concatenate(arrays, axis=0, out=None, **kw):
    _no_out("concatenate", out)
    _no_extra("concatenate", kw)
    return _tape.concatenate(arrays, axis=axis)


def _stack(arrays, axis=0, out=None, **kw):
    _no_out("stack", out)
    _no_extra("stack", kw)
    return _tape.stack(arrays, axis=axis)


def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise TypeError("fastad: numpy.where(condition) with one argument is not "
                        "supported on Vars; use np.nonzero(mask) on the values")
    return _tape.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    _no_out("clip", out)
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    _no_extra("clip", kw)
    return _math.clip(a, a_min, a_max)


def _dot(a, b, out=None):
    _no_out("dot", out)
    return _arrays.dot(a, b)


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


_EINSUM_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum(subscripts, *operands, **kw):
    kw.pop("optimize", None)
    _no_out("einsum", kw.pop("out", None), kw.pop("dtype", None))
    _no_extra("einsum", kw)
    return _arrays.einsum(subscripts, *operands)


def _squeeze(a, axis=None):
    return _array_math.squeeze(a, axis)


def _ravel(a, order="C"):
    if order != "C":
        raise TypeError("fastad: numpy.ravel(order=%r) is not supported on Vars" % order)
    return _tape.reshape(a, (-1,))


def _shape(a):
    return a.shape


def _ndim(a):
    return a.ndim


def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


_FUNCTIONS = {
    np.sum: _sum, np.mean: _mean, np.prod: _prod,
    np.max: _max, np.min: _min, np.amax: _max, np.amin: _min,
    np.dot: _dot, np.matmul: lambda a, b, **kw: _arrays.matmul(a, b),
    np.inner: _inner,
    np.outer: lambda a, b, out=None: (_no_out("outer", out), _arrays.outer(a, b))[1],
    np.einsum: _einsum,
    np.reshape: _reshape, np.transpose: _transpose, np.ravel: _ravel,
    np.squeeze: _squeeze, np.expand_dims: lambda a, axis: _array_math.expand_dims(a, axis),
    np.concatenate: _concatenate, np.stack: _stack,
    np.where: _where, np.clip: _clip,
    np.shape: _shape, np.ndim: _ndim, np.size: _size,
}

_tape._register_numpy_hook(_Hook())
