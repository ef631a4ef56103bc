"""Math functions composed from the op table's primitives."""
import numpy as np

from fastad._tape import Var, maximum, minimum, where, exp, log, sum as _sum, stack
from fastad._tape import OP_INFO, _reduce

_MAXIMUM = next(code for code, name, arity, dom in OP_INFO if name == "maximum")


def clip(x, a_min, a_max):
    """Clip x to [a_min, a_max], like numpy.clip (either bound may be None)."""
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over `axis`, computed stably (the max is factored out)."""
    if isinstance(x, (list, tuple)):
        x = stack(x) if any(type(e) is Var for e in x) else np.asarray(x, dtype=float)
    if type(x) is Var:
        # large arrays: one record (fastad._arrays) instead of four elementwise ops
        from fastad._array_math import logsumexp_record
        out = logsumexp_record(x, axis, keepdims)
        if out is not NotImplemented:
            return out
    values = x.value if type(x) is Var else np.asarray(x, dtype=np.float64)
    if np.ndim(values) == 0:
        return x if type(x) is Var else float(values)
    if type(x) is Var:
        # The shift m is computed on the tape, not taken from x.value: a replay
        # (fd.trace) at a far-away x must shift by that x's max, or exp overflows.
        # Its gradient, 1 - sum(softmax), is zero up to rounding.  The finiteness
        # test is a comparison on Vars, so a replay checks it as a guard.
        m = _reduce(_MAXIMUM, x, axis, True)     # scalar maximum slots
        m = where((m < np.inf) & (m > -np.inf), m, 0.0)
    else:
        m = np.max(values, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
    out = log(_sum(exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        if axis is None:
            out = out.reshape(()) if type(out) is Var else float(np.asarray(out).reshape(()))
        else:
            out = out.reshape(np.squeeze(m, axis=axis).shape) if type(out) is Var \
                else np.squeeze(out, axis=axis)
    if type(out) is not Var and np.ndim(out) == 0:
        return float(out)
    return out
