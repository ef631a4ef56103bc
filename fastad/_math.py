"""Math functions composed from the op table's primitives."""
import numpy as np

from fastad._tape import Var, maximum, minimum, where, exp, log, sum as _sum, stack


def clip(x, a_min, a_max):
    """Clip ``x`` to ``[a_min, a_max]``, like ``numpy.clip``; either bound may be
    ``None``.  Recorded as ``maximum`` and ``minimum``, so the gradient is 1
    inside the interval, 0 outside and 0.5 at a bound (ties split evenly).

    Examples
    --------
    >>> fd.grad(lambda x: fd.sum(fd.clip(x, 0.0, 1.0)))(np.array([-1.0, 0.5, 2.0]))
    array([0., 1., 0.])
    """
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis`` (default all elements), computed stably.

    The maximum is factored out, so large inputs do not overflow.  ``keepdims``
    as in NumPy.  Accepts floats, arrays, Vars and lists of Vars or Duals.

    Examples
    --------
    >>> fd.logsumexp(np.array([1000.0, 1000.0]))
    1000.6931471805599
    """
    if isinstance(x, (list, tuple)):
        x = stack(x) if any(type(e) is Var for e in x) else np.asarray(x, dtype=float)
    if type(x) is Var and x.ndim:
        # one implementation for Vars, with softmax and log_softmax
        from fastad._array_math import logsumexp_var
        return logsumexp_var(x, axis, keepdims)
    values = x.value if type(x) is Var else np.asarray(x, dtype=np.float64)
    if np.ndim(values) == 0:
        return x if type(x) is Var else float(values)
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
