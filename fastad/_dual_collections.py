"""fd.sum, fd.stack, fd.logsumexp, ... over collections of Dual numbers.

A Dual's value is a number (API.md section 4), so several Duals travel as a list,
a tuple or a NumPy object array of Duals.  NumPy's object-dtype reductions and
contractions call Dual's own + and *, so every rule still comes from the op table;
this module only shapes the collections.  Each function is the `dual` form of
its entry in fastad._prims: fastad._registry routes a call whose operands hold a
Dual here, so code without Duals never reaches this module.
"""
import numpy as np

from fastad._dual import Dual
from fastad._tape import exp, log


def as_objects(x):
    """x as an object ndarray of Duals and floats."""
    if type(x) is np.ndarray and x.dtype == object:
        return x
    if type(x) is Dual:
        out = np.empty((), dtype=object)
        out[()] = x
        return out
    if type(x) is list or type(x) is tuple:
        parts = [as_objects(e) for e in x]
        out = np.empty((len(parts),) + (parts[0].shape if parts else ()), dtype=object)
        for i, p in enumerate(parts):
            if p.shape != out.shape[1:]:
                raise ValueError("Duals: ragged nested sequence, shapes %s and %s"
                                 % (out.shape[1:], p.shape))
            out[i, ...] = p   # element-wise, not the 0-d array as one object
        return out
    return np.asarray(x, dtype=np.float64).astype(object)


def _scalar(out):
    """A 0-d object array (or a plain number) as its element."""
    if type(out) is np.ndarray and out.ndim == 0:
        return out[()]
    return out


def values(x):
    """The numbers of an object array of Duals and floats."""
    return np.vectorize(lambda e: e.value if type(e) is Dual else float(e),
                        otypes=[np.float64])(x)


def sum(x, axis=None, keepdims=False):
    return _scalar(np.sum(as_objects(x), axis=axis, keepdims=keepdims))


def prod(x, axis=None, keepdims=False):
    return _scalar(np.prod(as_objects(x), axis=axis, keepdims=keepdims))


def mean(x, axis=None, keepdims=False):
    arr = as_objects(x)
    count = arr.size if axis is None else int(np.prod(
        [arr.shape[a] for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]))
    return _scalar(np.sum(arr, axis=axis, keepdims=keepdims) / float(count))


def where(cond, x, y):
    c = np.asarray(cond)
    ox, oy = as_objects(x), as_objects(y)
    if c.ndim == 0 and ox.ndim == 0 and oy.ndim == 0:
        # one Dual in, a Dual out, whichever branch is taken: fd.where(False, d, 3.0)
        # is the constant 3.0 with a zero tangent of d's length, so code after it
        # (d.tangent, vector forward mode) sees the same type on both paths
        picked, other = (ox[()], oy[()]) if c else (oy[()], ox[()])
        if type(picked) is Dual:
            return picked
        zero = 0.0 if type(other.tangent) is float else np.zeros_like(other.tangent)
        return Dual(picked, zero)
    return np.where(c, ox, oy)


def stack(items, axis=0):
    return np.stack([as_objects(i) for i in items], axis=axis)


def array(obj):
    return as_objects(obj)


def dot(a, b):
    return _scalar(np.dot(as_objects(a), as_objects(b)))


def matmul(a, b):
    return _scalar(np.matmul(as_objects(a), as_objects(b)))


def reshape(x, shape):
    return np.reshape(as_objects(x), shape)


def transpose(x, axes=None):
    return np.transpose(as_objects(x), axes)


def concatenate(arrays, axis=0):
    return np.concatenate([as_objects(a) for a in arrays], axis=axis)


def _shift(arr, axis):
    # a constant shift: d/dm of m + log(sum(exp(x - m))) is exactly 0
    m = np.max(values(arr), axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def logsumexp(x, axis=None, keepdims=False):
    arr = as_objects(x)
    if arr.ndim == 0:
        return arr[()]
    m = _shift(arr, axis)
    out = log(np.sum(exp(arr - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return _scalar(out)


def softmax(x, axis=-1):
    arr = as_objects(x)
    e = exp(arr - _shift(arr, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    arr = as_objects(x)
    return arr - logsumexp(arr, axis=axis, keepdims=True)
