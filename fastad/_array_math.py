"""Array functions on top of the array records: softmax, log_softmax, max/min
reductions, squeeze, expand_dims.  (Large elementwise ops, sums, matmul and dot
become one NumPy-kernel record each, fastad._arrays, through the record forms
declared in fastad._prims.)

Small arrays (fewer than _arrays.RECORD_MIN_SIZE elements) are composed from the
op table's scalar primitives instead, which every sweep (second order included)
understands; both paths shift by the max, so they are stable at |x| ~ 1e3.
"""
import numpy as np

from fastad import _arrays, _generic, _registry, _tape
from fastad._tape import (OP_INFO, Var, exp, finite_guard, floor, log, normalize_axes,
                          span_end, span_start, sum as _sum, where)

_MAXIMUM = next(code for code, name, arity, dom in OP_INFO if name == "maximum")


def _big(x):
    return type(x) is Var and x.ndim > 0 and x.size >= _arrays.RECORD_MIN_SIZE


def _values(x):
    v = getattr(x, "value", x) if not isinstance(x, np.ndarray) else x
    return np.asarray(v, dtype=np.float64)


def _shift(x, axis):
    """max over axis (keepdims), as a constant; non-finite maxima shift by 0.
    For plain arrays and Duals, which are never replayed."""
    m = np.max(_values(x), axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def _plain_or_var(x):
    if type(x) is Var or hasattr(x, "tangent"):
        return x
    return np.asarray(_tape.array(x) if isinstance(x, (list, tuple)) else x,
                      dtype=np.float64)


# ----------------------------------------------------------------------------------
# The softmax family on a Var.  A large array is one record (fastad._arrays), whose
# replay runs the same kernel as its first evaluation.  A small one is composed
# from scalar slots by _softmax_slots, which every sweep replays op by op: for
# fd.trace to give fd.grad's numbers bit for bit, everything the result depends on
# must be on the tape -- the shift included.  (A shift taken from x.value was a
# constant of the recording: a replay at another x shifted by the old max, which
# rounds differently from fd.grad at that x, and overflows far from it.)

def _softmax_var(kind, x, axis, keepdims=False):
    """softmax / log_softmax / logsumexp of an array Var along `axis`."""
    if _big(x):
        # one record, whose rules are the registry entry's (fastad._prims)
        p = {"axes": normalize_axes(axis, x.ndim, kind), "keepdims": bool(keepdims)}
        return _generic.bind(_registry.REGISTRY[kind], (x,), p)
    return _softmax_slots(kind, x, normalize_axes(axis, x.ndim, kind), keepdims)


def _softmax_slots(kind, x, axes, keepdims):
    token = span_start(x)
    # the shift: floor of the max along the axes, 0 where the max is not finite.
    # Recorded (maximum slots), so a replay shifts by its own x's max; floor's
    # derivative is 0, so no gradient flows through the shift (softmax's formula
    # does not depend on it).  The finiteness test is a guard under fd.trace, so a
    # replay takes the branch fd.grad would.
    m = _tape._reduce(_MAXIMUM, x, axes, True, "max")
    finite = finite_guard(m)
    shift = floor(m) if finite.all() else where(finite, floor(m), 0.0)
    z = x - shift
    if kind == "softmax":
        e = exp(z)
        out = e / _sum(e, axis=axes, keepdims=True)
    else:
        lse = log(_sum(exp(z), axis=axes, keepdims=True))
        if kind == "log_softmax":
            out = z - lse
        else:
            out = lse + shift
            if not keepdims:
                out = _tape.reshape(out, tuple(d for i, d in enumerate(x.shape)
                                               if i not in axes))
    span_end(token, kind)
    return out


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (default the last), computed stably.

    The maximum along ``axis`` is shifted out first, so the result is finite for
    inputs of any size.  Accepts floats, arrays, Vars and lists of Duals.

    Examples
    --------
    >>> fd.softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    x = _plain_or_var(x)
    if np.ndim(_values(x)) == 0:
        return 1.0 if type(x) is not Var else x * 0.0 + 1.0
    if type(x) is Var:
        return _softmax_var("softmax", x, axis)
    if not hasattr(x, "tangent"):
        e = np.exp(x - _shift(x, axis))
        return e / np.sum(e, axis=axis, keepdims=True)
    e = exp(x - _shift(x, axis))
    return e / _sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis`` (default the last), computed stably.

    Examples
    --------
    >>> fd.log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """
    x = _plain_or_var(x)
    if np.ndim(_values(x)) == 0:
        return 0.0 if type(x) is not Var else x * 0.0
    if type(x) is Var:
        return _softmax_var("log_softmax", x, axis)
    z = x - _shift(x, axis)
    if not hasattr(x, "tangent"):
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return z - log(_sum(exp(z), axis=axis, keepdims=True))


def logsumexp_var(x, axis=None, keepdims=False):
    """logsumexp of an array Var (fd.logsumexp's Var case)."""
    return _softmax_var("logsumexp", x, axis, keepdims)


def amax(x, axis=None, keepdims=False):
    """Largest element (over `axis`), like numpy.max; ties share the gradient."""
    return _extreme("max", x, axis, keepdims)


def amin(x, axis=None, keepdims=False):
    """Smallest element (over `axis`), like numpy.min; ties share the gradient."""
    return _extreme("min", x, axis, keepdims)


def _extreme(kind, x, axis, keepdims):
    if type(x) is Var:
        if x.ndim == 0:
            return x
        xv = x.value
        axes = normalize_axes(axis, xv.ndim, kind)
        if any(xv.shape[a] == 0 for a in axes):
            raise ValueError("%s: zero-size array to reduction operation %s which has "
                             "no identity" % (kind, kind))
        return _generic.bind(_registry.REGISTRY[kind], (x,),
                             {"axes": axes, "keepdims": bool(keepdims)})
    f = np.max if kind == "max" else np.min
    out = f(_tape.array(x) if isinstance(x, (list, tuple)) else
            np.asarray(x, dtype=np.float64), axis=axis, keepdims=keepdims)
    return float(out) if np.ndim(out) == 0 else out


def squeeze(x, axis=None):
    """Remove axes of length one, like numpy.squeeze."""
    if type(x) is not Var:
        return np.squeeze(np.asarray(x, dtype=np.float64), axis=axis)
    return _tape.reshape(x, np.squeeze(x.value, axis=axis).shape)


def expand_dims(x, axis):
    """Insert axes of length one, like numpy.expand_dims."""
    if type(x) is not Var:
        return np.expand_dims(np.asarray(x, dtype=np.float64), axis)
    return _tape.reshape(x, np.expand_dims(x.value, axis).shape)
