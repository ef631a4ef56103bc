"""Training losses: fd.nn.cross_entropy and fd.nn.mse.

Both accept Vars (inside fd.grad / a Tape) or plain NumPy arrays (then they return a
float), so the same loss code serves training and evaluation.
"""
import numpy as np

from fastad._math import logsumexp
from fastad._tape import Var, mean

__all__ = ["cross_entropy", "mse"]


def _shape(x):
    return x.shape if type(x) is Var else np.shape(x)


def _as_operand(x, name, fname):
    if type(x) is Var:
        return x
    if x is None or isinstance(x, (str, bytes, complex, np.complexfloating)):
        raise TypeError("%s: %s must be a real number, array or Var, got %s"
                        % (fname, name, type(x).__name__))
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError("%s: %s must be real, got dtype %s" % (fname, name, arr.dtype))
    return arr.astype(np.float64, copy=False)


def cross_entropy(logits, labels):
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``.

    Computed as ``mean(logsumexp(logits) - logits[label])``, which never forms
    softmax probabilities, so large logits cannot overflow and a confident wrong
    prediction gives a large finite loss instead of ``log(0)``.

    Parameters
    ----------
    logits : Var or array_like
        Shape ``(n, k)`` (a batch of n rows of k class scores) or ``(k,)`` (one
        sample).
    labels : array_like of int
        Integers in ``[0, k)``, shape ``(n,)`` (or a single int for one sample).

    Returns
    -------
    Var or float
        A scalar Var for Var logits, a float for plain arrays.

    Examples
    --------
    >>> round(fd.nn.cross_entropy(np.array([[2.0, 0.0], [0.0, 2.0]]), [0, 1]), 6)
    0.126928
    """
    logits = _as_operand(logits, "logits", "cross_entropy")
    shape = _shape(logits)
    if len(shape) not in (1, 2) or shape[-1] == 0:
        raise ValueError("cross_entropy: logits must have shape (n, k) or (k,) with k >= 1, "
                         "got %s" % (shape,))
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        if lab.dtype.kind == "f" and lab.size and np.all(lab == np.round(lab)):
            pass   # float arrays holding whole numbers (e.g. from np.loadtxt) are fine
        else:
            raise TypeError("cross_entropy: labels must be integers, got dtype %s"
                            % lab.dtype)
    lab = lab.astype(np.intp)
    k = shape[-1]
    single = len(shape) == 1
    if single:
        if lab.ndim != 0:
            raise ValueError("cross_entropy: with logits of shape (k,), labels must be "
                             "one int, got shape %s" % (lab.shape,))
    elif lab.shape != (shape[0],):
        raise ValueError("cross_entropy: labels must have shape (%d,) to match logits %s, "
                         "got %s" % (shape[0], shape, lab.shape))
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        raise ValueError("cross_entropy: labels must be in [0, %d), got values in [%d, %d]"
                         % (k, lab.min(), lab.max()))
    if single:
        out = logsumexp(logits) - logits[int(lab)]
        return out if type(out) is Var else float(out)
    if shape[0] == 0:
        raise ValueError("cross_entropy: empty batch (logits of shape %s)" % (shape,))
    picked = logits[np.arange(shape[0]), lab]
    out = mean(logsumexp(logits, axis=-1) - picked)
    return out if type(out) is Var else float(out)


def mse(pred, target):
    """Mean squared error, ``mean((pred - target) ** 2)``, over all elements.

    ``pred`` and ``target`` must have the same shape (a ``ValueError`` otherwise:
    no silent broadcasting, since an ``(n, 1)`` prediction against an ``(n,)``
    target would average n * n errors).  Returns a scalar Var for Var input, a
    float for plain arrays.

    Examples
    --------
    >>> fd.nn.mse(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    2.0
    """
    pred = _as_operand(pred, "pred", "mse")
    target = _as_operand(target, "target", "mse")
    if _shape(pred) != _shape(target):
        raise ValueError("mse: pred has shape %s but target has shape %s"
                         % (_shape(pred), _shape(target)))
    d = pred - target
    if _shape(d) == ():
        out = d * d
    else:
        out = mean(d * d)
    if type(out) is Var:
        return out
    return float(out)

