"""fd.special: scipy.special's functions, differentiable.

Each works on floats and NumPy arrays (giving floats and arrays), on Vars (scalar
or array), lists and object arrays of Vars, and Duals, under every transformation
(fd.grad, fd.hessian, fd.jvp, fd.trace and its replay and compiled forms), with first
and second derivatives.

Most are rows of the op table (csrc/fastad_ops.h, numerics in
csrc/fastad_numerics.h): gammaln digamma polygamma gamma gammasgn erfinv erfcx ndtr
log_ndtr ndtri logit entr i0 i0e i1 i1e xlogy xlog1py.  The rest are exact
compositions of rows: betaln, beta, erfcinv, expit (the sigmoid row), log_expit,
and logsumexp / softmax / log_softmax (fastad's own, with SciPy's signatures:
they reduce over all axes unless `axis` is given).

SciPy is never imported here: scipy.special's ufuncs applied to a Var dispatch to
these functions (fastad._registry.ufunc_entry), found by name once SciPy is imported
by the user.
"""
import numbers

import numpy as np

from fastad import _array_math, _math, _registry, _tape
from fastad._registry import Primitive, declare, test_row as _row

__all__ = ["gammaln", "digamma", "psi", "polygamma", "gamma", "gammasgn", "beta",
           "betaln", "erf", "erfc", "erfcx", "erfinv", "erfcinv", "ndtr", "log_ndtr",
           "ndtri", "expit", "logit", "log_expit", "xlogy", "xlog1py", "entr",
           "logsumexp", "softmax", "log_softmax", "i0", "i0e", "i1", "i1e"]

# the op-table rows
gammaln = _tape.gammaln
digamma = _tape.digamma
psi = digamma
gamma = _tape.gamma
gammasgn = _tape.gammasgn
erf = _tape.erf
erfc = _tape.erfc
erfcx = _tape.erfcx
erfinv = _tape.erfinv
ndtr = _tape.ndtr
log_ndtr = _tape.log_ndtr
ndtri = _tape.ndtri
expit = _tape.sigmoid
logit = _tape.logit
entr = _tape.entr
xlogy = _tape.xlogy
xlog1py = _tape.xlog1py
i0 = _tape.i0
i0e = _tape.i0e
i1 = _tape.i1
i1e = _tape.i1e

_SQRT1_2 = 0.7071067811865476


def polygamma(n, x):
    """The n-th derivative of digamma at x, like scipy.special.polygamma; n = 0 is
    digamma.  `n` is a constant non-negative integer (or an integer array,
    broadcast against x); its derivative is 0.  ValueError for a negative or
    non-integer n, TypeError for an n that is a Var or Dual."""
    if type(n) is _tape.Var or _registry.binder((n,)) is not None or (
            isinstance(n, (list, tuple, np.ndarray)) and np.asarray(n).dtype == object):
        raise TypeError("fd.special.polygamma: n must be a constant integer, got %s "
                        "(its derivative would be undefined)" % type(n).__name__)
    if isinstance(n, bool) or not isinstance(n, (numbers.Real, list, tuple, np.ndarray)):
        raise TypeError("fd.special.polygamma: n must be a non-negative integer, got %s"
                        % type(n).__name__)
    nv = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(nv)) or np.any(nv != np.floor(nv)) or np.any(nv < 0):
        raise ValueError("fd.special.polygamma: n must be a non-negative integer, "
                         "got n=%r" % (n,))
    return _tape.polygamma(float(nv) if nv.ndim == 0 else nv, x)


def betaln(a, b):
    """log|B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b), like
    scipy.special.betaln.  Written as that sum of three gammaln rows: exact in the
    derivatives, and accurate to a few ulps of the largest of the three terms (so
    for very large a + b, where betaln is a small difference of large gammaln
    values, its relative error grows like gammaln(a + b) / |betaln|)."""
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def beta(a, b):
    """B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), like scipy.special.beta:
    exp(betaln(a, b)) times the sign from the gammasgn row (zero derivative), so it
    does not overflow where the gammas would."""
    return gammasgn(a) * gammasgn(b) * gammasgn(a + b) * _tape.exp(betaln(a, b))


def erfcinv(y):
    """The inverse of erfc on [0, 2], like scipy.special.erfcinv:
    -ndtri(y / 2) / sqrt(2) (y / 2 is exact, so the tails keep their digits)."""
    return -ndtri(y * 0.5) * _SQRT1_2


def log_expit(x):
    """log(expit(x)) = -softplus(-x), like scipy.special.log_expit, finite for all
    finite x."""
    return -_tape.softplus(-x)


def _no_b(fname, b, return_sign=False):
    if b is not None:
        raise TypeError("fd.special.%s: the weights b= are not supported; multiply "
                        "inside instead: logsumexp(a + log(b))" % fname)
    if return_sign:
        raise TypeError("fd.special.%s: return_sign=True is not supported" % fname)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis` (all axes when None), like
    scipy.special.logsumexp: differentiable in `a` and in the weights `b`
    (broadcast against `a`; a negative sum gives NaN, as SciPy without
    return_sign); `return_sign` is refused (TypeError)."""
    _no_b("logsumexp", None, return_sign)
    if b is None:
        return _math.logsumexp(a, axis=axis, keepdims=keepdims)
    if not any(type(v) is _tape.Var for v in (a, b)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    # the shift is the recorded max of a, so a replay shifts by its own (the result
    # does not depend on it: its derivative through the shift cancels)
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(b * np.exp(a - m), axis=axis, keepdims=True))
    if keepdims:
        return out
    return np.reshape(out, np.shape(np.sum(np.zeros(np.shape(
        getattr(a, "value", a))), axis=axis)))


def _all_axes(x):
    return tuple(range(np.ndim(getattr(x, "value", x))))


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) over `axis` (all axes when None), like
    scipy.special.softmax."""
    return _array_math.softmax(x, axis=_all_axes(x) if axis is None else axis)


def log_softmax(x, axis=None):
    """x - logsumexp(x) over `axis` (all axes when None), like
    scipy.special.log_softmax."""
    return _array_math.log_softmax(x, axis=_all_axes(x) if axis is None else axis)


# ----------------------------------------------------------------------------------
# scipy.special's ufuncs on Vars: the rows answer by name already (the registry's
# BY_UFUNC_NAME); these are the compositions and the names SciPy spells otherwise.

def _ufunc_parse(name):
    def parse(*inputs, **kwargs):
        if kwargs:
            raise TypeError("fastad: scipy.special.%s got unsupported keyword arguments "
                            "%s on Vars" % (name, sorted(kwargs)))
        return inputs, {}
    return parse


_POS = (0.3, 3.0)
for _name, _impl, _tests in (
        ("betaln", betaln, (_row((3,), (3,), dom=(_POS, _POS)), _row((), (2, 3), dom=(_POS, _POS)))),
        ("beta", beta, (_row((3,), (3,), dom=(_POS, _POS)), _row((4,), (), dom=(_POS, _POS)))),
        ("erfcinv", erfcinv, (_row((3,), dom=(0.1, 1.9)), _row((), dom=(0.1, 1.9)))),
        ("expit", expit, (_row((3,), dom=(-5.0, 5.0)), _row((), dom=(-5.0, 5.0)))),
        ("log_expit", log_expit, (_row((3,), dom=(-5.0, 5.0)), _row((), dom=(-5.0, 5.0))))):
    _registry.declare_scipy_special(_name, declare(Primitive(
        "special." + _name, _impl, "front_end", parse=_ufunc_parse(_name), tests=_tests)))
_registry.declare_scipy_special("psi", _registry.REGISTRY["digamma"])
del _name, _impl, _tests
