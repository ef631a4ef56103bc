"""Probability distributions with SciPy's signatures, differentiable everywhere.

``fd.stats.norm.logpdf(x, loc=0, scale=1)`` and the like: the
names, arguments, defaults, broadcasting and edge values of ``scipy.stats``, written
with fastad's own operations so that every result is differentiable in the data
and in every parameter, on floats, arrays, scalar and array Vars, and under
``fd.trace``: to any order, except the CDFs of gamma, chi2, beta and t (twice in
their shape parameters, through fastad._incshape).

Conventions, each chosen to match SciPy's values and to keep derivatives finite:

- Out of the support, ``logpdf`` is ``-inf`` and ``pdf`` 0 (``cdf`` 0 or 1), with
  derivative 0: the formula is evaluated at a safe interior point and discarded by
  ``where`` (the "double where"), so no NaN or inf reaches the derivative of a
  selected value.
- Invalid parameters (``scale <= 0``, ``p`` outside [0, 1], ...) give ``nan``, as
  SciPy does.
- Which branch of a piecewise formula is taken is decided by comparisons of the
  values, so under ``fd.trace`` each one is a guard: a replay that would take
  another branch fails its guard (or retraces), it never silently reuses the old one.

SciPy is imported only by the functions that need its incomplete gamma and beta
functions (the CDFs of gamma, beta, t, poisson and binom), never by ``import fastad``.
"""
import math

import numpy as np

from fastad import _prims  # noqa: F401  (fills the registry read below)
from fastad._dual import Dual
from fastad._registry import PUBLIC as _P
from fastad._tape import Var
from fastad._custom import custom_jvp
from fastad import _incshape

__all__ = ["norm", "t", "cauchy", "laplace", "logistic", "expon", "gamma", "chi2",
           "beta", "lognorm", "uniform", "poisson", "binom", "bernoulli", "dirichlet",
           "multivariate_normal"]

_where, _log, _log1p, _exp, _expm1 = _P["where"], _P["log"], _P["log1p"], _P["exp"], _P["expm1"]
_erfc, _softplus, _sigmoid, _arctan = _P["erfc"], _P["softplus"], _P["sigmoid"], _P["arctan"]
_abs, _floor, _sum, _square = _P["abs"], _P["floor"], _P["sum"], _P["square"]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_SQRT_2PI = 0.5 * _LOG_2PI
_SQRT1_2 = math.sqrt(0.5)
_NAN, _INF = float("nan"), float("inf")
_LN2 = math.log(2.0)


def _special():
    # fastad.special (gammaln, betaln, xlogy, xlog1py), imported when first needed
    import fastad.special as special
    return special


def _is_node(v):
    return isinstance(v, (Var, Dual))


def _operand(v, name, fname):
    if _is_node(v):
        return v
    if v is None or isinstance(v, (str, bytes, complex, np.complexfloating)):
        raise TypeError("fastad.stats.%s: %s must be a real number, array or Var, got %s"
                        % (fname, name, type(v).__name__))
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
        raise TypeError("fastad.stats.%s: %s must be real, got dtype %s"
                        % (fname, name, arr.dtype))
    arr = arr.astype(np.float64)
    return arr[()] if arr.ndim == 0 else arr


def _mask(m):
    """A comparison's result (a bool, or a bool array) as a bool array."""
    return np.asarray(m, dtype=bool)


def _out(v):
    """SciPy's result type: a 0-d array becomes a NumPy scalar."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v[()]
    return v


def _select(mask, value, other):
    """where(mask, value, other), skipping the where when mask is all one way
    (most calls: the point is inside the support), which keeps tapes short."""
    mask = _mask(mask)
    if mask.all() or not mask.any():
        pick = value if mask.all() else other
        target = np.broadcast_shapes(mask.shape, np.shape(value), np.shape(other))
        return pick if np.shape(pick) == target else pick + np.zeros(target)
    return _where(mask, value, other)


def _safe(mask, value, fill):
    """value where mask holds, fill elsewhere: the inner half of the double where."""
    return _select(mask, value, fill)


def _nan_where(bad, value):
    return _select(np.logical_not(_mask(bad)), value, _NAN)


# ----------------------------------------------------------------------------------
# The standard normal's log CDF, accurate in both tails.
#
# z > 0: log1p(-Q(z)) with Q = erfc(z / sqrt 2) / 2 (no cancellation in 1 - Q).
# -20 <= z <= 0: log(erfc(-z / sqrt 2) / 2); erfc is accurate to relative precision
#   far into its tail.
# z < -20: the asymptotic series of log_ndtr (Abramowitz & Stegun 26.2.12):
#   log Phi(z) = -z^2/2 - log(-z) - log(2 pi)/2 + log(1 - 1/z^2 + 3/z^4 - ...),
#   whose terms (2k-1)!!/z^(2k) fall below 1e-17 within 8 terms for |z| >= 20.

def _norm_logcdf(z):
    if not _is_node(z) and np.ndim(z) == 0:
        z = np.float64(z)
    right = _mask(z > 0)
    left = _mask(z < -20.0)
    mid = np.logical_not(right | left)
    out = None
    if right.any():
        zr = _safe(right, z, 1.0)
        out = _log1p(-0.5 * _erfc(zr * _SQRT1_2))
    if mid.any():
        zm = _safe(mid, z, -1.0)
        vm = _log(0.5 * _erfc(-zm * _SQRT1_2))
        out = vm if out is None else _select(mid, vm, out)
    if left.any():
        zl = _safe(left, z, -30.0)
        w = 1.0 / _square(zl)
        term, series = 1.0, 1.0
        for k in range(1, 9):
            term = -term * (2 * k - 1) * w
            series = series + term
        vl = -0.5 * _square(zl) - _log(-zl) - _LOG_SQRT_2PI + _log(series)
        out = vl if out is None else _select(left, vl, out)
    return out


def _norm_cdf(z):
    return 0.5 * _erfc(-z * _SQRT1_2)


def _log1mexp(y):
    """log(1 - exp(y)) for y <= 0 (Maechler's two branches)."""
    near = _mask(y > -math.log(2.0))
    out = None
    if near.any():
        yn = _safe(near, y, -0.5)
        out = _log(-_expm1(yn))
    far = np.logical_not(near)
    if far.any():
        yf = _safe(far, y, -1.0)
        vf = _log1p(-_exp(yf))
        out = vf if out is None else _select(far, vf, out)
    return out


# ----------------------------------------------------------------------------------
# Argument binding, SciPy style: f(x, *shapes, loc=0, scale=1)

def _bind(fname, names, defaults, args, kw):
    if len(args) > len(names):
        raise TypeError("fastad.stats.%s takes at most %d parameters after x (%s), got %d"
                        % (fname, len(names), ", ".join(names), len(args)))
    vals = dict(zip(names, args))
    for k, v in kw.items():
        if k not in names:
            raise TypeError("fastad.stats.%s got an unexpected keyword argument %r"
                            % (fname, k))
        if k in vals:
            raise TypeError("fastad.stats.%s got multiple values for argument %r"
                            % (fname, k))
        vals[k] = v
    out = []
    for n in names:
        if n in vals:
            out.append(_operand(vals[n], n, fname))
        elif n in defaults:
            out.append(defaults[n])
        else:
            raise TypeError("fastad.stats.%s missing required argument %r" % (fname, n))
    return out


def _rvs(self, *args, **kwargs):
    """Random variates, drawn by scipy.stats (SciPy needed): sampling has no
    derivative here, so a Var among the arguments is a TypeError."""
    for a in list(args) + list(kwargs.values()):
        if type(a) is Var or (isinstance(a, np.ndarray) and a.dtype == object):
            raise TypeError("fastad.stats.%s.rvs: sampling is not differentiable; "
                            "pass plain numbers (v.value)" % self.name)
    try:
        import scipy.stats
    except ImportError:
        raise ImportError("fastad.stats.%s.rvs draws with scipy.stats: "
                          "pip install scipy" % self.name) from None
    return getattr(scipy.stats, self.name).rvs(*args, **kwargs)


class _Continuous:
    """A loc-scale family: subclasses give the standard form's pieces in z."""
    name = ""
    shapes = ()
    support = (-_INF, _INF)      # of z
    interior = 0.0               # a point of the support where every formula is finite
    open_lo = False              # the lower end takes the outside values (lognorm's 0)

    rvs = _rvs

    def __repr__(self):
        return "<fastad.stats.%s>" % self.name

    # standard-form pieces (z already safe: inside the support, parameters valid)
    def _logpdf(self, z, *s):
        raise NotImplementedError

    def _logcdf(self, z, *s):
        return _log(self._cdf(z, *s))

    def _logsf(self, z, *s):
        return _log(self._sf(z, *s))

    def _cdf(self, z, *s):
        return _exp(self._logcdf(z, *s))

    def _sf(self, z, *s):
        return _exp(self._logsf(z, *s))

    def _invalid(self, *s):
        return False

    def _shape_fill(self):
        return tuple(1.0 for _ in self.shapes)

    # --------------------------------------------------------------------------
    def _prepare(self, fname, x, args, kw):
        names = self.shapes + ("loc", "scale")
        vals = _bind("%s.%s" % (self.name, fname), names, {"loc": 0.0, "scale": 1.0},
                     args, kw)
        x = _operand(x, "x", "%s.%s" % (self.name, fname))
        shapes, loc, scale = vals[:-2], vals[-2], vals[-1]
        bad = _mask(scale <= 0) | _mask(self._invalid(*shapes))
        if bad.any():
            scale = _safe(np.logical_not(bad), scale, 1.0)
            shapes = tuple(_safe(np.logical_not(bad), s, f)
                           for s, f in zip(shapes, self._shape_fill()))
        z = (x - loc) / scale
        return z, tuple(shapes), scale, bad

    def _piecewise(self, fname, x, args, kw, fn, below, above, log_jac=False):
        z, shapes, scale, bad = self._prepare(fname, x, args, kw)
        lo, hi = self.support
        if lo == -_INF and hi == _INF:
            out = fn(z, *shapes)
        else:
            under = _mask(z <= lo) if self.open_lo else _mask(z < lo)
            over = _mask(z > hi)
            inside = np.logical_not(under | over)     # nan z stays inside: nan out
            if inside.all():
                out = fn(z, *shapes)
            else:
                # all of z, even when no point is inside, so that a Var in gives
                # a Var out (with derivative 0 there)
                zs = _where(inside, z, self.interior)
                edge = _select(under, below, above) + np.zeros(inside.shape)
                out = _where(inside, fn(zs, *shapes), edge)
        if log_jac:
            out = out - _log(scale)
        if bad.any():
            out = _nan_where(bad, out)
        return _out(out)

    def logpdf(self, x, *args, **kw):
        return self._piecewise("logpdf", x, args, kw, self._logpdf, -_INF, -_INF,
                               log_jac=True)

    def pdf(self, x, *args, **kw):
        return _out(_exp(self.logpdf(x, *args, **kw)))

    def logcdf(self, x, *args, **kw):
        return self._piecewise("logcdf", x, args, kw, self._logcdf, -_INF, 0.0)

    def cdf(self, x, *args, **kw):
        return self._piecewise("cdf", x, args, kw, self._cdf, 0.0, 1.0)

    def logsf(self, x, *args, **kw):
        return self._piecewise("logsf", x, args, kw, self._logsf, 0.0, -_INF)

    def sf(self, x, *args, **kw):
        return self._piecewise("sf", x, args, kw, self._sf, 1.0, 0.0)


# ----------------------------------------------------------------------------------
# Continuous distributions that need only elementary functions

class _Norm(_Continuous):
    name = "norm"

    def _logpdf(self, z):
        return -0.5 * _square(z) - _LOG_SQRT_2PI

    def _logcdf(self, z):
        return _norm_logcdf(z)

    def _logsf(self, z):
        return _norm_logcdf(-z)

    def _cdf(self, z):
        return _norm_cdf(z)

    def _sf(self, z):
        return _norm_cdf(-z)


def _cauchy_cdf(z):
    # 1/2 + arctan(z)/pi cancels for z << 0; arctan(-1/z)/pi there does not
    neg = _mask(z < 0)
    pos = _mask(z > 0)
    out = 0.5 + 0.0 * z
    if neg.any():
        zn = _safe(neg, z, -1.0)
        out = _select(neg, _arctan(-1.0 / zn) / math.pi, out)
    if pos.any():
        zp = _safe(pos, z, 1.0)
        out = _select(pos, 1.0 - _arctan(1.0 / zp) / math.pi, out)
    return out


def _cauchy_logcdf(z):
    neg = _mask(z < 0)
    pos = _mask(z > 0)
    out = math.log(0.5) + 0.0 * z
    if neg.any():
        zn = _safe(neg, z, -1.0)
        out = _select(neg, _log(_arctan(-1.0 / zn)) - math.log(math.pi), out)
    if pos.any():
        zp = _safe(pos, z, 1.0)
        out = _select(pos, _log1p(-_arctan(1.0 / zp) / math.pi), out)
    return out


class _Cauchy(_Continuous):
    name = "cauchy"

    def _logpdf(self, z):
        return -math.log(math.pi) - _log1p(_square(z))

    def _cdf(self, z):
        return _cauchy_cdf(z)

    def _sf(self, z):
        return _cauchy_cdf(-z)

    def _logcdf(self, z):
        return _cauchy_logcdf(z)

    def _logsf(self, z):
        return _cauchy_logcdf(-z)


def _laplace_logcdf(z):
    neg = _mask(z < 0)
    out = None
    if neg.any():
        zn = _safe(neg, z, -1.0)
        out = zn - math.log(2.0)
    pos = np.logical_not(neg)
    if pos.any():
        zp = _safe(pos, z, 1.0)
        vp = _log1p(-0.5 * _exp(-zp))
        out = vp if out is None else _select(pos, vp, out)
    return out


def _laplace_cdf(z):
    neg = _mask(z < 0)
    out = None
    if neg.any():
        zn = _safe(neg, z, -1.0)
        out = 0.5 * _exp(zn)
    pos = np.logical_not(neg)
    if pos.any():
        zp = _safe(pos, z, 1.0)
        vp = 1.0 - 0.5 * _exp(-zp)
        out = vp if out is None else _select(pos, vp, out)
    return out


class _Laplace(_Continuous):
    name = "laplace"

    def _logpdf(self, z):
        return -math.log(2.0) - _abs(z)

    def _logcdf(self, z):
        return _laplace_logcdf(z)

    def _logsf(self, z):
        return _laplace_logcdf(-z)

    def _cdf(self, z):
        return _laplace_cdf(z)

    def _sf(self, z):
        return _laplace_cdf(-z)


class _Logistic(_Continuous):
    name = "logistic"

    def _logpdf(self, z):
        # -z - 2 log(1 + e^-z), each term exact for either sign of z
        return -z - 2.0 * _softplus(-z)

    def _logcdf(self, z):
        return -_softplus(-z)

    def _logsf(self, z):
        return -_softplus(z)

    def _cdf(self, z):
        return _sigmoid(z)

    def _sf(self, z):
        return _sigmoid(-z)


class _Expon(_Continuous):
    name = "expon"
    support = (0.0, _INF)
    interior = 1.0

    def _logpdf(self, z):
        return -z

    def _logcdf(self, z):
        return _log1mexp(-z)

    def _logsf(self, z):
        return -z

    def _cdf(self, z):
        return -_expm1(-z)

    def _sf(self, z):
        return _exp(-z)


class _Uniform(_Continuous):
    name = "uniform"
    support = (0.0, 1.0)
    interior = 0.5

    def _logpdf(self, z):
        return 0.0 * z

    def _logcdf(self, z):
        return _log(z)

    def _logsf(self, z):
        return _log1p(-z)

    def _cdf(self, z):
        return z

    def _sf(self, z):
        return 1.0 - z


class _Lognorm(_Continuous):
    name = "lognorm"
    shapes = ("s",)
    support = (0.0, _INF)
    interior = 1.0
    # z == 0: logpdf -inf, cdf 0, sf 1, the outside values (log(0) in the formulas
    # would give them too, but with a NaN derivative)
    open_lo = True

    def _invalid(self, s):
        return s <= 0

    def _logpdf(self, z, s):
        y = _log(z) / s
        return -0.5 * _square(y) - _LOG_SQRT_2PI - _log(s) - _log(z)

    def _logcdf(self, z, s):
        return _norm_logcdf(_log(z) / s)

    def _logsf(self, z, s):
        return _norm_logcdf(-_log(z) / s)

    def _cdf(self, z, s):
        return _norm_cdf(_log(z) / s)

    def _sf(self, z, s):
        return _norm_cdf(-_log(z) / s)



# ----------------------------------------------------------------------------------
# Continuous distributions built on fastad.special (gammaln, betaln, xlogy, xlog1py)

class _Gamma(_Continuous):
    name = "gamma"
    shapes = ("a",)
    support = (0.0, _INF)
    interior = 1.0

    def _invalid(self, a):
        return a <= 0

    def _logpdf(self, z, a):
        sp = _special()
        return sp.xlogy(a - 1.0, z) - z - sp.gammaln(a)

    def _cdf(self, z, a):
        return _lower_gamma("gamma.cdf", "a", a, a, z)

    def _sf(self, z, a):
        return _upper_gamma("gamma.sf", "a", a, a, z)

    def _logcdf(self, z, a):
        return _log_tail(_lower_gamma("gamma.logcdf", "a", a, a, z),
                         _upper_gamma("gamma.logcdf", "a", a, a, z))

    def _logsf(self, z, a):
        return _log_tail(_upper_gamma("gamma.logsf", "a", a, a, z),
                         _lower_gamma("gamma.logsf", "a", a, a, z))


class _Chi2(_Continuous):
    """chi2(df): gamma(df / 2) of z / 2 (SciPy's chi2, with loc and scale)."""
    name = "chi2"
    shapes = ("df",)
    support = (0.0, _INF)
    interior = 1.0

    def _invalid(self, df):
        return df <= 0

    def _logpdf(self, z, df):
        sp = _special()
        h = 0.5 * df
        return sp.xlogy(h - 1.0, z) - 0.5 * z - h * _LN2 - sp.gammaln(h)

    def _cdf(self, z, df):
        return _lower_gamma("chi2.cdf", "df", df, 0.5 * df, 0.5 * z)

    def _sf(self, z, df):
        return _upper_gamma("chi2.sf", "df", df, 0.5 * df, 0.5 * z)

    def _logcdf(self, z, df):
        return _log_tail(_lower_gamma("chi2.logcdf", "df", df, 0.5 * df, 0.5 * z),
                         _upper_gamma("chi2.logcdf", "df", df, 0.5 * df, 0.5 * z))

    def _logsf(self, z, df):
        return _log_tail(_upper_gamma("chi2.logsf", "df", df, 0.5 * df, 0.5 * z),
                         _lower_gamma("chi2.logsf", "df", df, 0.5 * df, 0.5 * z))


class _Beta(_Continuous):
    name = "beta"
    shapes = ("a", "b")
    support = (0.0, 1.0)
    interior = 0.5

    def _invalid(self, a, b):
        return _mask(a <= 0) | _mask(b <= 0)

    def _logpdf(self, z, a, b):
        sp = _special()
        return sp.xlogy(a - 1.0, z) + sp.xlog1py(b - 1.0, -z) - sp.betaln(a, b)

    def _tail(self, fname, upper, z, a, b):
        """I_z(a, b) (its complement if upper), differentiable in a and b when
        either is a Var; fname is the method called, for the range error."""
        if _is_node(a) or _is_node(b):
            _shape_range(fname, "a", a)
            _shape_range(fname, "b", b)
            return (_betaincc_full if upper else _betainc_full)(a, b, z)
        return (_betaincc if upper else _betainc)(a, b, z)

    def _cdf(self, z, a, b):
        return self._tail("beta.cdf", False, z, a, b)

    def _sf(self, z, a, b):
        return self._tail("beta.sf", True, z, a, b)

    def _logcdf(self, z, a, b):
        return _log_tail(self._tail("beta.logcdf", False, z, a, b),
                         self._tail("beta.logcdf", True, z, a, b))

    def _logsf(self, z, a, b):
        return _log_tail(self._tail("beta.logsf", True, z, a, b),
                         self._tail("beta.logsf", False, z, a, b))


# B_2k / (2k (2k - 1)): the coefficients of Stirling's series for log Gamma
_STIRLING = (1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188, -691.0 / 360360)


def _t_log_norm(x):
    """log Gamma(x + 1/2) - log Gamma(x) - log(2 pi x)/2, the t density's constant at
    df = 2x.  For large df the two gammaln are huge and nearly equal (gammaln(5e9)
    is 1e11, so their difference would lose 1e-5); from x = 10 on it is Stirling's
    series of the difference, x log1p(1/(2x)) - 1/2 + sum c_k ((x + 1/2)^(1-2k)
    - x^(1-2k)), accurate to 1e-16 absolute, and 0 at x = inf in the limit."""
    big = _mask(x >= 10.0)
    out = None
    if big.any():
        xb = _safe(big, x, 10.0)
        xh = xb + 0.5
        v = xb * _log1p(0.5 / xb) - 0.5
        for k, c in enumerate(_STIRLING, start=1):
            v = v + c * (xh ** (1 - 2 * k) - xb ** (1 - 2 * k))
        out = v - _LOG_SQRT_2PI
    small = np.logical_not(big)
    if small.any():
        sp = _special()
        xs = _safe(small, x, 1.0)
        vs = sp.gammaln(xs + 0.5) - sp.gammaln(xs) - 0.5 * _log(2.0 * math.pi * xs)
        out = vs if out is None else _select(small, vs, out)
    return out


class _T(_Continuous):
    name = "t"
    shapes = ("df",)

    def _invalid(self, df):
        return df <= 0

    def _logpdf(self, z, df):
        # df = inf is the normal distribution (SciPy's value); elsewhere
        # log Gamma((df + 1)/2) - log Gamma(df/2) - log(df pi)/2 - (df + 1)/2 log1p(z^2/df)
        normal = _mask(df == _INF)
        if normal.all():
            return -0.5 * _square(z) - _LOG_SQRT_2PI + np.zeros(np.shape(df))
        d = df if not normal.any() else _where(normal, 1.0, df)
        half = 0.5 * (d + 1.0)
        out = _t_log_norm(0.5 * d) - half * _log1p(_square(z) / d)
        if normal.any():
            out = _where(normal, -0.5 * _square(z) - _LOG_SQRT_2PI, out)
        return out

    def _tail(self, fname, z, df):
        """F(z; df), differentiable in df when it is a Var (fname: the method
        called, for the range error)."""
        if _is_node(df):
            _shape_range(fname, "df", df, _T_DF_RANGE)
            return _stdtr_full(df, z)
        return _stdtr(df, z)

    def _cdf(self, z, df):
        return self._tail("t.cdf", z, df)

    def _sf(self, z, df):
        return self._tail("t.sf", -z, df)

    def _logcdf(self, z, df):
        return _log_tail(self._tail("t.logcdf", z, df), self._tail("t.logcdf", -z, df))

    def _logsf(self, z, df):
        return _log_tail(self._tail("t.logsf", -z, df), self._tail("t.logsf", z, df))


# ----------------------------------------------------------------------------------
# CDFs through the regularized incomplete gamma and beta functions.
#
# Each is a custom primitive: its value comes from scipy.special, its derivative in
# the data z is the density (closed form, written with fastad operations, so second
# order works).  With constant shape parameters (the common case) that is the whole
# rule.  With a Var shape parameter the primitive is its "_full" twin, whose rule
# adds (dF/da) ta: dF/da has no closed form, so it is a custom primitive of its own
# (values from fastad._incshape: a series or continued fraction differentiated term
# by term), whose rule gives the second derivatives: d2F/da2 (and d2F/(da db)) from
# the same series, d2F/(da dz) the derivative of the density in a (closed form).
# Derivatives of third order in a shape parameter are not provided (that rule's
# coefficients are constants).  Shape parameters that are Vars must lie in the range
# where _incshape was verified against mpmath; outside it a ValueError names them.

def _log_tail(p, q):
    """log p for a probability p = 1 - q: log p where p <= 1/2, log1p(-q) above, so
    a probability near 1 keeps its distance from 1 (SciPy takes log p alone)."""
    small = _mask(p <= 0.5)
    out = None
    if small.any():
        out = _log(_safe(small, p, 0.5))
    big = np.logical_not(small)
    if big.any():
        vb = _log1p(-_safe(big, q, 0.5))
        out = vb if out is None else _select(big, vb, out)
    return out


_SHAPE_RANGE = (_incshape.PARAM_LO, _incshape.PARAM_HI)
_CHI2_DF_RANGE = (2.0 * _incshape.PARAM_LO, 2.0 * _incshape.PARAM_HI)
_T_DF_RANGE = (2.0 * _incshape.PARAM_LO, _incshape.T_DF_HI)


def _shape_range(fname, name, v, bounds=_SHAPE_RANGE):
    """When the derivative in a shape parameter is taken, every shape parameter (a
    Var or not: dI/da depends on b too) must lie where those derivatives were
    verified (nan passes: its result is nan).  The comparisons are of v itself, so
    under fd.trace they are guards: a replay outside the range does not reuse the
    recording."""
    lo, hi = bounds
    with np.errstate(invalid="ignore"):
        out = _mask(v < lo) | _mask(v > hi)
    if out.any():
        val = _constant(v)
        raise ValueError(
            "fastad.stats.%s: the derivatives in the shape parameters are implemented "
            "for %g <= %s <= %g (checked against mpmath there), got %s = %s; outside "
            "that range pass the shape parameters as numbers or arrays (the data, loc "
            "and scale stay differentiable)"
            % (fname, lo, name, hi, name, np.asarray(val)[out].ravel()[0]))


def _lower_gamma(fname, name, shape, a, z):
    """P(a, z), differentiable in a when the shape parameter is a Var."""
    if _is_node(shape):
        _shape_range(fname, name, shape,
                     _CHI2_DF_RANGE if name == "df" else _SHAPE_RANGE)
        return _gammainc_full(a, z)
    return _gammainc(a, z)


def _upper_gamma(fname, name, shape, a, z):
    """Q(a, z) = 1 - P(a, z), likewise."""
    if _is_node(shape):
        _shape_range(fname, name, shape,
                     _CHI2_DF_RANGE if name == "df" else _SHAPE_RANGE)
        return _gammaincc_full(a, z)
    return _gammaincc(a, z)


def _shape_constant(fname, name, v):
    if _is_node(v):
        raise NotImplementedError(
            "fastad.stats.%s: the derivative in the shape parameter %s (an integer "
            "count) is not implemented; pass %s as a number or array (the data and "
            "the other parameters are differentiable)" % (fname, name, name))


def _scipy_special(fname):
    try:
        import scipy.special as ss
    except ImportError:                                     # pragma: no cover
        raise ImportError("fastad.stats.%s needs SciPy's incomplete gamma and beta "
                          "functions: pip install scipy" % fname) from None
    return ss


def _xlogy_const(c, z):
    """c * log(z) for a constant c, 0 where c == 0 (z may be 0 there)."""
    c = np.asarray(c, dtype=np.float64)
    zero = c == 0
    if zero.any():
        return _where(zero, 0.0 * z, c * _log(_safe(np.logical_not(zero), z, 1.0)))
    return c * _log(z)


def _value(prim, *args):
    """The primitive's value at the arguments' values.  A JVP rule returns it beside
    the tangent; in second order the rule runs on Vars of an inner tape, where only
    its tangent is differentiated (SciPy's functions cannot take Vars).  A Hessian
    runs the rule several times at the same point: the last value is remembered
    (SciPy 1.17's betaincc takes 2.6 ms per 1e3 points)."""
    return np.array(_incshape.cached(prim.fun, *[_constant(a) for a in args]))


@custom_jvp
def _gammainc(a, z):
    return _scipy_special("gamma.cdf").gammainc(a, z)


@_gammainc.defjvp
def _gammainc_jvp(primals, tangents):
    a, z = primals
    a = _constant(a)                # a constant (a Var a raised before)
    ss = _scipy_special("gamma.cdf")
    dens = _exp(_xlogy_const(a - 1.0, z) - z - ss.gammaln(a))
    return _value(_gammainc, a, z), dens * tangents[1]


@custom_jvp
def _gammaincc(a, z):
    return _scipy_special("gamma.sf").gammaincc(a, z)


@_gammaincc.defjvp
def _gammaincc_jvp(primals, tangents):
    a, z = primals
    a = _constant(a)
    ss = _scipy_special("gamma.sf")
    dens = _exp(_xlogy_const(a - 1.0, z) - z - ss.gammaln(a))
    return _value(_gammaincc, a, z), -dens * tangents[1]


def _beta_density(a, b, z, fname):
    ss = _scipy_special(fname)
    a, b = _constant(a), _constant(b)
    return _exp(_xlogy_const(a - 1.0, z) + _xlogy_const(b - 1.0, 1.0 - z)
                - ss.betaln(a, b))


@custom_jvp
def _betainc(a, b, z):
    return _scipy_special("beta.cdf").betainc(a, b, z)


@_betainc.defjvp
def _betainc_jvp(primals, tangents):
    a, b, z = primals
    return _value(_betainc, a, b, z), _beta_density(a, b, z, "beta.cdf") * tangents[2]


@custom_jvp
def _betaincc(a, b, z):
    return _scipy_special("beta.sf").betaincc(a, b, z)


@_betaincc.defjvp
def _betaincc_jvp(primals, tangents):
    a, b, z = primals
    return _value(_betaincc, a, b, z), -_beta_density(a, b, z, "beta.sf") * tangents[2]


@custom_jvp
def _stdtr(df, z):
    return _scipy_special("t.cdf").stdtr(df, z)


@_stdtr.defjvp
def _stdtr_jvp(primals, tangents):
    df, z = primals
    df = _constant(df)
    half = 0.5 * (df + 1.0)
    # the density's constant as t.logpdf takes it (two gammaln of a large df would
    # cancel: 4e-10 relative at df = 1e6)
    dens = _exp(_t_log_norm(0.5 * df) - half * _log1p(_square(z) / df))
    return _value(_stdtr, df, z), dens * tangents[1]


# ----------------------------------------------------------------------------------
# The same CDFs with Var shape parameters (see the comment block above)

def _np_gamma_density(a, z):
    ss = _scipy_special("gamma.cdf")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp(ss.xlogy(a - 1.0, z) - z - ss.gammaln(a))


def _edge_zero(mask, v):
    """v with 0 where mask (the ends of a support, where F is 0 or 1 for every
    parameter and log z or log(1 - z) would make 0 * inf)."""
    return np.where(mask, 0.0, v)


@custom_jvp
def _gammainc_da(a, z):
    """dP(a, z)/da (dQ/da is its negative)."""
    return _incshape.cached(_incshape.gammainc_da, a, z)[0]


@_gammainc_da.defjvp
def _gammainc_da_jvp(primals, tangents):
    a, z = (_constant(v) for v in primals)
    ss = _scipy_special("gamma.cdf")
    d1, d2 = _incshape.cached(_incshape.gammainc_da, a, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        mixed = _edge_zero(z == 0, _np_gamma_density(a, z) * (np.log(z) - ss.psi(a)))
    return d1, d2 * tangents[0] + mixed * tangents[1]


def _gamma_density(a, z):
    """z^(a-1) e^-z / Gamma(a) in fastad operations (a and z may both be Vars)."""
    sp = _special()
    return _exp(sp.xlogy(a - 1.0, z) - z - sp.gammaln(a))


@custom_jvp
def _gammainc_full(a, z):
    return _scipy_special("gamma.cdf").gammainc(a, z)


@_gammainc_full.defjvp
def _gammainc_full_jvp(primals, tangents):
    a, z = primals
    return (_value(_gammainc_full, a, z),
            _gamma_density(a, z) * tangents[1] + _gammainc_da(a, z) * tangents[0])


@custom_jvp
def _gammaincc_full(a, z):
    return _scipy_special("gamma.sf").gammaincc(a, z)


@_gammaincc_full.defjvp
def _gammaincc_full_jvp(primals, tangents):
    a, z = primals
    return (_value(_gammaincc_full, a, z),
            -(_gamma_density(a, z) * tangents[1] + _gammainc_da(a, z) * tangents[0]))


def _beta_second(a, b, z):
    """(I_aa, I_ab, I_bb, I_az, I_bz) of I_z(a, b) at constants."""
    ss = _scipy_special("beta.cdf")
    d = _incshape.cached(_incshape.betainc_dab, a, b, z)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dens = np.exp(ss.xlogy(a - 1.0, z) + ss.xlog1py(b - 1.0, -z) - ss.betaln(a, b))
        edge = (z == 0) | (z == 1)
        psab = ss.psi(a + b)
        iaz = _edge_zero(edge, dens * (np.log(z) - ss.psi(a) + psab))
        ibz = _edge_zero(edge, dens * (np.log1p(-z) - ss.psi(b) + psab))
    return d[2], d[3], d[4], iaz, ibz


@custom_jvp
def _betainc_da(a, b, z):
    """dI_z(a, b)/da (that of the complement is its negative)."""
    return _incshape.cached(_incshape.betainc_dab, a, b, z)[0]


@_betainc_da.defjvp
def _betainc_da_jvp(primals, tangents):
    a, b, z = (_constant(v) for v in primals)
    iaa, iab, _, iaz, _ = _beta_second(a, b, z)
    return (_value(_betainc_da, a, b, z),
            iaa * tangents[0] + iab * tangents[1] + iaz * tangents[2])


@custom_jvp
def _betainc_db(a, b, z):
    """dI_z(a, b)/db."""
    return _incshape.cached(_incshape.betainc_dab, a, b, z)[1]


@_betainc_db.defjvp
def _betainc_db_jvp(primals, tangents):
    a, b, z = (_constant(v) for v in primals)
    _, iab, ibb, _, ibz = _beta_second(a, b, z)
    return (_value(_betainc_db, a, b, z),
            iab * tangents[0] + ibb * tangents[1] + ibz * tangents[2])


def _beta_density_full(a, b, z):
    sp = _special()
    return _exp(sp.xlogy(a - 1.0, z) + sp.xlog1py(b - 1.0, -z) - sp.betaln(a, b))


def _beta_tangent(primals, tangents):
    a, b, z = primals
    return (_beta_density_full(a, b, z) * tangents[2]
            + _betainc_da(a, b, z) * tangents[0] + _betainc_db(a, b, z) * tangents[1])


@custom_jvp
def _betainc_full(a, b, z):
    return _scipy_special("beta.cdf").betainc(a, b, z)


@_betainc_full.defjvp
def _betainc_full_jvp(primals, tangents):
    return _value(_betainc_full, *primals), _beta_tangent(primals, tangents)


@custom_jvp
def _betaincc_full(a, b, z):
    return _scipy_special("beta.sf").betaincc(a, b, z)


@_betaincc_full.defjvp
def _betaincc_full_jvp(primals, tangents):
    return _value(_betaincc_full, *primals), -_beta_tangent(primals, tangents)


@custom_jvp
def _stdtr_ddf(df, z):
    """dF/ddf of the t CDF F(z; df)."""
    return _incshape.cached(_incshape.stdtr_ddf, df, z)[0]


@_stdtr_ddf.defjvp
def _stdtr_ddf_jvp(primals, tangents):
    df, z = (_constant(v) for v in primals)
    d1, d2 = _incshape.cached(_incshape.stdtr_ddf, df, z)
    s = z * z
    with np.errstate(over="ignore", invalid="ignore"):
        dens = np.exp(_t_log_norm(0.5 * df) - 0.5 * (df + 1.0) * np.log1p(s / df))
        dlog = _incshape.t_logpdf_ddf(df, s)
        mixed = _edge_zero(np.isinf(s), dens * dlog)
    return d1, d2 * tangents[0] + mixed * tangents[1]


def _t_density(df, z):
    """The t density in fastad operations (df and z may both be Vars)."""
    return _exp(_t_log_norm(0.5 * df) - 0.5 * (df + 1.0) * _log1p(_square(z) / df))


@custom_jvp
def _stdtr_full(df, z):
    return _scipy_special("t.cdf").stdtr(df, z)


@_stdtr_full.defjvp
def _stdtr_full_jvp(primals, tangents):
    df, z = primals
    return (_value(_stdtr_full, df, z),
            _t_density(df, z) * tangents[1] + _stdtr_ddf(df, z) * tangents[0])


# ----------------------------------------------------------------------------------
# Discrete distributions: f(k, *shapes, loc=0)

class _Discrete:
    name = ""
    shapes = ()

    rvs = _rvs

    def __repr__(self):
        return "<fastad.stats.%s>" % self.name

    def _prepare(self, fname, k, args, kw):
        vals = _bind("%s.%s" % (self.name, fname), self.shapes + ("loc",),
                     {"loc": 0.0}, args, kw)
        k = _operand(k, "k", "%s.%s" % (self.name, fname))
        shapes, loc = tuple(vals[:-1]), vals[-1]
        bad = _mask(self._invalid(*shapes))
        if bad.any():
            shapes = tuple(_safe(np.logical_not(bad), s, f)
                           for s, f in zip(shapes, self._shape_fill()))
        return k - loc, shapes, bad

    def _finish(self, out, bad):
        if bad.any():
            out = _nan_where(bad, out)
        return _out(out)

    def _support(self, *s):
        raise NotImplementedError

    def logpmf(self, k, *args, **kw):
        """log P(K = k); -inf off the support and at non-integer k.  The derivative
        in k is that of the formula's continuous extension (as in JAX)."""
        k, shapes, bad = self._prepare("logpmf", k, args, kw)
        lo, hi = self._support(*shapes)
        inside = (np.logical_not(_mask(k < lo) | _mask(k > hi))
                  & np.logical_not(_mask(_floor(k) != k)))
        inside = inside | np.zeros(np.broadcast_shapes(np.shape(k), *map(np.shape, shapes)),
                                   bool)
        if inside.all():
            out = self._logpmf(k, *shapes)
        else:
            ks = _where(inside, k, self._interior(*shapes))
            out = _where(inside, self._logpmf(ks, *shapes), -_INF)
        return self._finish(out, bad)

    def pmf(self, k, *args, **kw):
        return _out(_exp(self.logpmf(k, *args, **kw)))

    def _tails(self, fname, k, args, kw, fn, below, above):
        k, shapes, bad = self._prepare(fname, k, args, kw)
        lo, hi = self._support(*shapes)
        under = _mask(k < lo)
        over = _mask(k >= hi)
        shape = np.broadcast_shapes(np.shape(k), *map(np.shape, shapes))
        inside = np.logical_not(under | over) | np.zeros(shape, bool)
        edge = _select(under, below, above) + np.zeros(shape)
        # the CDF is a step function of k: floor(k), whose derivative is 0
        kf = _floor(k if inside.all() else _where(inside, k, self._interior(*shapes)))
        out = _select(inside, fn(kf, *shapes), edge)
        return self._finish(out, bad)

    def cdf(self, k, *args, **kw):
        return self._tails("cdf", k, args, kw, self._cdf, 0.0, 1.0)

    def sf(self, k, *args, **kw):
        return self._tails("sf", k, args, kw, self._sf, 1.0, 0.0)

    def logcdf(self, k, *args, **kw):
        return self._tails("logcdf", k, args, kw,
                           lambda kf, *s: _log_tail(self._cdf(kf, *s), self._sf(kf, *s)),
                           -_INF, 0.0)

    def logsf(self, k, *args, **kw):
        return self._tails("logsf", k, args, kw,
                           lambda kf, *s: _log_tail(self._sf(kf, *s), self._cdf(kf, *s)),
                           0.0, -_INF)

    def _shape_fill(self):
        return tuple(0.5 for _ in self.shapes)


class _Bernoulli(_Discrete):
    name = "bernoulli"
    shapes = ("p",)

    def _invalid(self, p):
        return _mask(p < 0) | _mask(p > 1)

    def _support(self, p):
        return 0.0, 1.0

    def _interior(self, p):
        return 0.0

    def _logpmf(self, k, p):
        # k is 0 or 1 here; log p at k = 1, log(1 - p) at k = 0, each evaluated
        # only where it is selected (p may be 0 or 1)
        one = _mask(k == 1) | np.zeros(np.broadcast_shapes(np.shape(k), np.shape(p)), bool)
        out = None
        if one.any():
            out = _log(_safe(one, p, 0.5)) + 0.0 * k
        zero = np.logical_not(one)
        if zero.any():
            v = _log1p(-_safe(zero, p, 0.5)) + 0.0 * k
            out = v if out is None else _select(zero, v, out)
        return out

    def _cdf(self, kf, p):          # kf == 0 here
        return 1.0 - p + 0.0 * kf

    def _sf(self, kf, p):
        return p + 0.0 * kf


class _Poisson(_Discrete):
    name = "poisson"
    shapes = ("mu",)

    def _invalid(self, mu):
        return mu < 0

    def _shape_fill(self):
        return (1.0,)

    def _support(self, mu):
        return 0.0, _INF

    def _interior(self, mu):
        return 0.0

    def _logpmf(self, k, mu):
        sp = _special()
        return sp.xlogy(k, mu) - mu - sp.gammaln(k + 1.0)

    def _cdf(self, kf, mu):
        return _poisson_cdf(_constant(kf), mu)

    def _sf(self, kf, mu):
        return _poisson_sf(_constant(kf), mu)


class _Binom(_Discrete):
    name = "binom"
    shapes = ("n", "p")

    def _invalid(self, n, p):
        n_ok = _mask(n >= 0) & _mask(_floor(n) == n)
        return np.logical_not(n_ok) | _mask(p < 0) | _mask(p > 1)

    def _shape_fill(self):
        return (1.0, 0.5)

    def _support(self, n, p):
        return 0.0, n

    def _interior(self, n, p):
        return 0.0

    def _logpmf(self, k, n, p):
        sp = _special()
        # log C(n, k) = -log(n + 1) - betaln(n - k + 1, k + 1)
        return (-_log1p(n) - sp.betaln(n - k + 1.0, k + 1.0)
                + sp.xlogy(k, p) + sp.xlog1py(n - k, -p))

    def _tails(self, fname, k, args, kw, fn, below, above):
        vals = _bind("binom.%s" % fname, ("n", "p", "loc"), {"loc": 0.0}, args, kw)
        _shape_constant("binom.%s" % fname, "n", vals[0])
        return _Discrete._tails(self, fname, k, args, kw, fn, below, above)

    def _cdf(self, kf, n, p):
        return _binom_cdf(_constant(kf), _constant(n), p)

    def _sf(self, kf, n, p):
        return _binom_sf(_constant(kf), _constant(n), p)


def _constant(v):
    """The value of a Var whose derivative is exactly zero (floor(k), or a shape
    parameter checked to be a plain number)."""
    if isinstance(v, Var):
        return np.asarray(v.value)
    if isinstance(v, Dual):
        return _constant(v.value)
    return np.asarray(v, dtype=np.float64)


# d/dmu P(K <= k; mu) = -pmf(k; mu)
def _poisson_density(kf, mu):
    ss = _scipy_special("poisson.cdf")
    kf = _constant(kf)
    return _exp(_xlogy_const(kf, mu) - mu - ss.gammaln(kf + 1.0))


@custom_jvp
def _poisson_cdf(kf, mu):
    return _scipy_special("poisson.cdf").pdtr(kf, mu)


@_poisson_cdf.defjvp
def _poisson_cdf_jvp(primals, tangents):
    kf, mu = primals
    return _value(_poisson_cdf, kf, mu), -_poisson_density(kf, mu) * tangents[1]


@custom_jvp
def _poisson_sf(kf, mu):
    return _scipy_special("poisson.sf").pdtrc(kf, mu)


@_poisson_sf.defjvp
def _poisson_sf_jvp(primals, tangents):
    kf, mu = primals
    return _value(_poisson_sf, kf, mu), _poisson_density(kf, mu) * tangents[1]


# d/dp P(K <= k; n, p) = -n pmf(k; n - 1, p), for 0 <= k < n
def _binom_density(kf, n, p):
    ss = _scipy_special("binom.cdf")
    kf, n = _constant(kf), _constant(n)
    logc = -ss.betaln(n - kf, kf + 1.0)          # log(n C(n - 1, k))
    return _exp(logc + _xlogy_const(kf, p) + _xlogy_const(n - 1.0 - kf, 1.0 - p))


@custom_jvp
def _binom_cdf(kf, n, p):
    # bdtr(k, n, p) = I_{1-p}(n - k, k + 1), for 0 <= k < n (betainc takes
    # float n and k, bdtr deprecates them)
    return _scipy_special("binom.cdf").betainc(n - kf, kf + 1.0, 1.0 - p)


@_binom_cdf.defjvp
def _binom_cdf_jvp(primals, tangents):
    kf, n, p = primals
    return _value(_binom_cdf, kf, n, p), -_binom_density(kf, n, p) * tangents[2]


@custom_jvp
def _binom_sf(kf, n, p):
    return _scipy_special("binom.sf").betainc(kf + 1.0, n - kf, p)


@_binom_sf.defjvp
def _binom_sf_jvp(primals, tangents):
    kf, n, p = primals
    return _value(_binom_sf, kf, n, p), _binom_density(kf, n, p) * tangents[2]


# ----------------------------------------------------------------------------------
# Multivariate distributions

class _Dirichlet:
    """``dirichlet.logpdf(x, alpha)``: x has the k components along its first axis
    (SciPy's layout; shape (k,) or (k, n)), or k - 1 of them (the last is
    1 - their sum).  Off the simplex the result is -inf (SciPy raises ValueError)."""
    name = "dirichlet"

    rvs = _rvs

    def __repr__(self):
        return "<fastad.stats.dirichlet>"

    def logpdf(self, x, alpha):
        x = _operand(x, "x", "dirichlet.logpdf")
        alpha = _operand(alpha, "alpha", "dirichlet.logpdf")
        if np.ndim(alpha) != 1:
            raise ValueError("fastad.stats.dirichlet.logpdf: alpha must be 1-D, got "
                             "shape %s" % (np.shape(alpha),))
        k = np.shape(alpha)[0]
        if np.ndim(x) == 0 or np.shape(x)[0] not in (k, k - 1):
            raise ValueError("fastad.stats.dirichlet.logpdf: x must have %d (or %d) "
                             "components along its first axis, got shape %s"
                             % (k, k - 1, np.shape(x)))
        if np.shape(x)[0] == k - 1:
            last = 1.0 - _sum(x, axis=0)
            rows = [x[i] for i in range(k - 1)] + [last]
        else:
            rows = [x[i] for i in range(k)]
        sp = _special()
        bad = _mask(alpha <= 0).any()
        tol = 1e-10
        total = rows[0]
        for r in rows[1:]:
            total = total + r
        inside = _mask(_abs(total - 1.0) <= tol)
        for r in rows:
            inside = inside & np.logical_not(_mask(r < 0))
        shape = np.shape(total)
        inside = inside | np.zeros(shape, bool)
        alpha_s = alpha
        if bad:
            alpha_s = _where(_mask(alpha <= 0), 1.0, alpha)
        out = None
        for i, r in enumerate(rows):
            rs = r if inside.all() else _safe(inside, r, 1.0 / k)
            term = sp.xlogy(alpha_s[i] - 1.0, rs)
            out = term if out is None else out + term
        out = out - (_sum(sp.gammaln(alpha_s)) - sp.gammaln(_sum(alpha_s)))
        if not inside.all():
            out = _select(inside, out, -_INF)
        if bad:
            out = out * _NAN
        return _out(out)

    def pdf(self, x, alpha):
        return _out(_exp(self.logpdf(x, alpha)))


class _MultivariateNormal:
    """``multivariate_normal.logpdf(x, mean=None, cov=1, allow_singular=False)``.

    x has the d coordinates along its last axis; cov is (d, d), a 1-D diagonal or a
    scalar, as in SciPy.  log|cov| and the Mahalanobis distance come from the
    Cholesky factor (np.linalg.cholesky and solve on Vars), so the result is
    differentiable in x, mean and cov.  A covariance that is not positive definite
    raises numpy.linalg.LinAlgError (SciPy raises too); allow_singular=True is not
    supported."""
    name = "multivariate_normal"

    rvs = _rvs

    def __repr__(self):
        return "<fastad.stats.multivariate_normal>"

    def logpdf(self, x, mean=None, cov=1, allow_singular=False):
        fname = "multivariate_normal.logpdf"
        if allow_singular:
            raise NotImplementedError("fastad.stats.%s: allow_singular=True is not "
                                      "supported" % fname)
        x = _operand(x, "x", fname)
        cov = _operand(cov, "cov", fname)
        if mean is not None:
            mean = _operand(mean, "mean", fname)
        # the dimension, as SciPy infers it
        if mean is not None and np.ndim(mean) >= 1:
            d = np.shape(mean)[-1]
        elif np.ndim(cov) >= 1:
            d = np.shape(cov)[0]
        else:
            d = 1
        if mean is None:
            mean = np.zeros(d)
        if np.ndim(cov) == 0:
            cov = cov * np.eye(d)
        elif np.ndim(cov) == 1:
            cov = cov * np.eye(d) if not _is_node(cov) else cov[:, None] * np.eye(d)
        if np.shape(cov) != (d, d):
            raise ValueError("fastad.stats.%s: cov must be (%d, %d), got shape %s"
                             % (fname, d, d, np.shape(cov)))
        # x: scalar or (n,) when d == 1 means points; (..., d) otherwise
        if d == 1 and (np.ndim(x) == 0 or np.shape(x)[-1] != 1):
            x = _P["reshape"](x, np.shape(x) + (1,))
        if np.shape(x)[-1] != d:
            raise ValueError("fastad.stats.%s: x must have %d coordinates along its "
                             "last axis, got shape %s" % (fname, d, np.shape(x)))
        diff = x - mean
        lead = np.shape(diff)[:-1]
        flat = _P["reshape"](diff, (-1, d))                 # (m, d)
        L = np.linalg.cholesky(cov)
        y = np.linalg.solve(L, _P["transpose"](flat))      # (d, m)
        maha = _sum(y * y, axis=0)                         # (m,)
        logdet = 2.0 * _sum(_log(np.diagonal(L)))
        out = -0.5 * (d * _LOG_2PI + logdet + maha)
        out = _P["reshape"](out, lead)
        return _out(out)

    def pdf(self, x, mean=None, cov=1, allow_singular=False):
        return _out(_exp(self.logpdf(x, mean, cov, allow_singular)))

    def cdf(self, *args, **kw):
        raise NotImplementedError("fastad.stats.multivariate_normal.cdf is not "
                                  "implemented (SciPy integrates it numerically)")

    logcdf = cdf


norm = _Norm()
cauchy = _Cauchy()
laplace = _Laplace()
logistic = _Logistic()
expon = _Expon()
uniform = _Uniform()
lognorm = _Lognorm()
gamma = _Gamma()
chi2 = _Chi2()
beta = _Beta()
t = _T()
bernoulli = _Bernoulli()
poisson = _Poisson()
binom = _Binom()
dirichlet = _Dirichlet()
multivariate_normal = _MultivariateNormal()
