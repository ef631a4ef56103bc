"""fd.stats against scipy.stats: values on grids (tails and out-of-support points
included), gradients in the data and in every parameter against central
differences of SciPy's values, second derivatives, broadcasting, fd.jvp and
fd.trace replays."""
import importlib.util
import warnings

import numpy as np
import pytest

import fastad as fd
from _numdiff import num_grad

ss = pytest.importorskip("scipy.stats")

HAVE_SPECIAL = importlib.util.find_spec("fastad.special") is not None
needs_special = pytest.mark.skipif(not HAVE_SPECIAL, reason="fastad.special (branch "
                                   "wt-special) is not merged yet")

CONT_METHODS = ("logpdf", "pdf", "logcdf", "cdf", "logsf", "sf")
DISC_METHODS = ("logpmf", "pmf", "logcdf", "cdf", "logsf", "sf")

# (name, parameters after x as SciPy takes them positionally, the data grid: tails,
# support ends and out-of-support points, needs fastad.special for the densities)
CONTINUOUS = [
    ("norm", (0.3, 1.7), [-80, -40, -37, -30, -20.5, -20, -19, -5, -0.5, 0, 0.7, 5, 9,
                          30, 40, 80], False),
    ("cauchy", (0.3, 1.7), [-1e12, -1e6, -3, -0.2, 0, 0.3, 2, 1e6, 1e12], False),
    ("laplace", (0.3, 1.7), [-800, -40, -2, 0.3, 0.31, 1, 40, 800], False),
    ("logistic", (0.3, 1.7), [-1500, -800, -40, -2, 0, 0.3, 1, 40, 800, 1500], False),
    ("expon", (0.2, 1.3), [-1, 0, 0.2, 0.2 + 1e-12, 0.5, 1, 3, 50, 1000], False),
    ("uniform", (-0.5, 2.0), [-1, -0.5, -0.4999, 0, 0.7, 1.4999, 1.5, 2], False),
    ("lognorm", (0.6, 0.1, 1.3), [-1, 0, 0.1, 0.1 + 1e-9, 0.5, 1, 3, 50, 1e4], False),
    ("gamma", (2.5, 0.1, 1.3), [-1, 0.1, 0.2, 0.7, 3, 20, 100], True),
    ("chi2", (3.0, 0.1, 1.3), [-1, 0.1, 0.2, 0.7, 3, 20, 100], True),
    ("beta", (2.0, 3.5, 0.1, 1.3), [-1, 0.1, 0.15, 0.5, 1.0, 1.39, 1.4, 2], True),
    ("t", (3.5, 0.3, 1.7), [-1e8, -50, -2, 0, 0.3, 1, 50, 1e8], True),
]
# the CDFs of these come from SciPy's incomplete gamma / beta (no fastad.special)
CDF_BY_SCIPY = {"gamma", "chi2", "beta", "t"}

DISCRETE = [
    ("bernoulli", (0.3,), [-1, 0, 0.5, 1, 2], False),
    ("poisson", (2.5,), [-1, 0, 1, 2.5, 3, 10, 60], True),
    ("binom", (7, 0.35), [-1, 0, 1, 3, 3.5, 6, 7, 8], True),
]
DISC_CDF_BY_SCIPY = {"poisson", "binom"}


def _dist(name):
    return getattr(fd.stats, name)


def _needs(name, method, special):
    if not special:
        return False
    return not (method not in ("logpdf", "pdf", "logpmf", "pmf") and
                name in CDF_BY_SCIPY | DISC_CDF_BY_SCIPY)


def _close(got, want, rtol, atol=0.0):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, (got.shape, want.shape)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    fin = np.isfinite(want)
    assert np.all(same | fin), (got, want)
    with np.errstate(invalid="ignore"):
        err = np.abs(np.where(fin, got, 0.0) - np.where(fin, want, 0.0)) <= \
            atol + rtol * np.abs(np.where(fin, want, 0.0))
    assert np.all(same | (fin & err)), (got, want)


def _cases(table, methods):
    out = []
    for name, params, grid, special in table:
        for m in methods:
            marks = [needs_special] if _needs(name, m, special) else []
            out.append(pytest.param(name, params, grid, m, marks=marks,
                                    id="%s.%s" % (name, m)))
    return out


# SciPy before 1.15 lost the far tails of these (cauchy's cdf from 0.5 + atan(z)/pi
# cancels; laplace's and expon's logcdf took log(1 - small)): there the reference
# is the closed form at 50 digits (mpmath)
_SCIPY_VERSION = tuple(int(p) for p in __import__("scipy").__version__.split(".")[:2])
_MP_TAILS = {("cauchy", m) for m in ("cdf", "sf", "logcdf", "logsf")} | {
    ("laplace", "logcdf"), ("laplace", "logsf"), ("expon", "logcdf")}


def _mp_reference(name, method, x, loc, scale):
    import mpmath
    mpmath.mp.dps = 50

    def one(xi):
        if scale <= 0:
            return float("nan")
        z = (mpmath.mpf(float(xi)) - loc) / scale
        if name == "cauchy":
            p = mpmath.mpf(0.5) + mpmath.atan(z) / mpmath.pi
            p = p if method in ("cdf", "logcdf") else 1 - p
        elif name == "laplace":
            zz = z if method == "logcdf" else -z
            if zz >= 0:          # log(1 - e^-z / 2) without rounding 1 - tiny to 1
                return float(mpmath.log1p(-mpmath.exp(-zz) / 2))
            p = mpmath.exp(zz) / 2
        else:
            if z > 0:
                return float(mpmath.log1p(-mpmath.exp(-z)))
            p = mpmath.mpf(0)
        if method.startswith("log"):
            return float(mpmath.log(p)) if p > 0 else -np.inf
        return float(p)
    return np.vectorize(one, otypes=[float])(x)


def _scipy(name, method, *args):
    if (name, method) in _MP_TAILS and _SCIPY_VERSION < (1, 15):
        return _mp_reference(name, method, *(list(args) + [0.0, 1.0][len(args) - 1:]))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if name in LOG_TAIL and method in ("logcdf", "logsf"):
            # SciPy takes log(cdf) (0 for cdf = 1 - 1e-61); fastad takes log1p(-sf)
            # above one half, the reference does the same with SciPy's cdf and sf
            d = getattr(ss, name)
            p, q = d.cdf(*args), d.sf(*args)
            if method == "logsf":
                p, q = q, p
            return np.where(p <= 0.5, np.log(p), np.log1p(-q))
        return getattr(getattr(ss, name), method)(*args)


LOG_TAIL = {"gamma", "chi2", "beta", "t", "poisson", "binom"}


# ----------------------------------------------------------------------------------
# values

@pytest.mark.parametrize("name,params,grid,method",
                         _cases(CONTINUOUS, CONT_METHODS) + _cases(DISCRETE, DISC_METHODS))
def test_values_match_scipy(name, params, grid, method):
    x = np.array(grid, dtype=float)
    got = getattr(_dist(name), method)(x, *params)
    _close(got, _scipy(name, method, x, *params), rtol=1e-12)
    # one point at a time: a float in, a NumPy scalar (as SciPy) out
    for xi in grid[:3]:
        v = getattr(_dist(name), method)(float(xi), *params)
        assert np.ndim(v) == 0 and not isinstance(v, fd.Var)
        _close(v, _scipy(name, method, float(xi), *params), rtol=1e-12)


def _bad_params(name, params):
    """parameter sets SciPy rejects (nan): scale <= 0, shapes out of range."""
    out = []
    if name in ("bernoulli",):
        return [(-0.1,), (1.5,)]
    if name == "poisson":
        return [(-1.0,)]
    if name == "binom":
        return [(-1, 0.3), (3.5, 0.3), (5, 1.2)]
    out.append(params[:-1] + (0.0,))
    out.append(params[:-1] + (-1.0,))
    if name in ("lognorm", "gamma", "chi2", "t"):
        out.append((-0.5,) + params[1:])
    if name == "beta":
        out.append((2.0, -1.0) + params[2:])
    return out


@pytest.mark.parametrize("name,params,grid,method",
                         _cases(CONTINUOUS, CONT_METHODS) + _cases(DISCRETE, DISC_METHODS))
def test_invalid_parameters_give_nan_as_scipy(name, params, grid, method):
    x = np.array(grid, dtype=float)
    for bad in _bad_params(name, params):
        want = _scipy(name, method, x, *bad)
        got = getattr(_dist(name), method)(x, *bad)
        if name in ("bernoulli", "binom") and method == "logcdf":
            # SciPy's own quirk: logcdf is 0 above the support even for invalid
            # parameters (its cdf there is nan); fastad gives nan throughout
            want = np.where(want == 0, np.nan, want)
        _close(got, want, rtol=1e-12)


def test_norm_tails_against_the_asymptotic_series():
    # log Phi(-40), log Phi(-1e5): the series, checked against high precision
    # values (mpmath: log(ndtr(-40)) = -804.6084420137538..)
    assert abs(fd.stats.norm.logcdf(-40.0) - -804.6084420137538) < 1e-12
    assert abs(fd.stats.norm.logsf(40.0) - -804.6084420137538) < 1e-12
    v = fd.stats.norm.logcdf(-1e5)
    assert abs(v - ss.norm.logcdf(-1e5)) <= 1e-15 * abs(v)
    # the three branches meet: no jump at -20 or 0
    for z in (-20.0, 0.0):
        a, b = fd.stats.norm.logcdf(z - 1e-9), fd.stats.norm.logcdf(z + 1e-9)
        d = fd.grad(fd.stats.norm.logcdf)(z)
        assert abs((b - a) / 2e-9 - d) < 1e-5 * abs(d)


def test_expon_logsf_and_logistic_logcdf_are_exact_in_the_tails():
    assert fd.stats.expon.logsf(1e4) == -1e4
    assert fd.stats.expon.logcdf(1e-20) == ss.expon.logcdf(1e-20)
    assert fd.stats.logistic.logcdf(-1e4) == -1e4
    assert fd.stats.logistic.logsf(1e4) == -1e4


# ----------------------------------------------------------------------------------
# first derivatives: in the data and in every parameter

# interior points, away from kinks (laplace at loc) and support ends
GRAD_POINTS = {
    "norm": [-45.0, -21.0, -3.0, 0.4, 2.0, 8.0], "cauchy": [-1e3, -2.0, 0.5, 3.0, 1e3],
    "laplace": [-30.0, -1.0, 0.7, 5.0], "logistic": [-30.0, -2.0, 0.5, 3.0, 30.0],
    "expon": [0.3, 1.0, 4.0, 30.0], "uniform": [-0.3, 0.5, 1.2],
    "lognorm": [0.3, 1.0, 3.0, 20.0], "gamma": [0.4, 1.0, 3.0, 9.0],
    "chi2": [0.4, 1.0, 3.0, 9.0],
    "beta": [0.2, 0.5, 1.0, 1.3], "t": [-30.0, -1.0, 0.2, 2.0, 30.0],
    "bernoulli": [0.0, 1.0], "poisson": [0.0, 1.0, 3.0, 7.0], "binom": [0.0, 2.0, 5.0, 7.0],
}
# the data of a discrete distribution is an integer: its derivative is that of the
# continuous extension (logpmf) or 0 (the CDFs); checked in test_discrete_data
GRAD_SKIP_DATA = {"bernoulli", "poisson", "binom"}


def _grad_cases():
    out = []
    for table, methods in ((CONTINUOUS, CONT_METHODS), (DISCRETE, DISC_METHODS)):
        for name, params, _, special in table:
            for m in methods:
                for i in range(len(params) + 1):
                    if i == 0 and name in GRAD_SKIP_DATA:
                        continue
                    if name == "binom" and i == 1:
                        continue          # n is an integer parameter: see below
                    marks = [needs_special] if _needs(name, m, special) else []
                    out.append(pytest.param(name, params, m, i, marks=marks,
                                            id="%s.%s-arg%d" % (name, m, i)))
    return out


@pytest.mark.parametrize("name,params,method,i", _grad_cases())
def test_gradient_matches_central_differences(name, params, method, i):
    pts = np.array(GRAD_POINTS[name], dtype=float)
    pts = pts[np.isfinite(_scipy(name, method, pts, *params))]
    fn = getattr(_dist(name), method)

    def args_with(v):
        a = [pts] + list(params)
        a[i] = v
        return a

    def f(v):
        return fd.sum(fn(*args_with(v)))

    def ref(v):
        return np.sum(_scipy(name, method, *args_with(v)))

    v0 = pts if i == 0 else float(params[i - 1])
    g = fd.grad(f)(v0)
    h = 1e-6 * max(1.0, np.max(np.abs(v0))) if i == 0 else 1e-6
    want = num_grad(ref, v0, h=h) if i == 0 else \
        (ref(v0 + h) - ref(v0 - h)) / (2 * h)
    np.testing.assert_allclose(g, want, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("name,params,grid,method",
                         _cases(CONTINUOUS, CONT_METHODS) + _cases(DISCRETE, DISC_METHODS))
def test_gradients_are_finite_where_scipy_is(name, params, grid, method):
    # out of the support and on its ends: a finite value has a finite derivative
    # in the data, in loc and in scale (0 off the support)
    x = np.array(grid, dtype=float)
    fn = getattr(_dist(name), method)
    value = np.asarray(_scipy(name, method, x, *params))
    for i in range(len(params) + 1):
        if name == "binom" and i == 1 and method not in ("logpmf", "pmf"):
            continue
        for j, xj in enumerate(x):
            if not np.isfinite(value[j]):
                continue
            a = [xj] + list(params)
            v0 = a[i]

            def f(v, a=a):
                b = list(a)
                b[i] = v
                return fn(*b)
            g = fd.grad(f)(float(v0))
            assert np.isfinite(g), (name, method, i, xj, g)


def test_binom_cdf_in_n_raises():
    # n is an integer: the CDFs have no derivative in it (the shape parameters of
    # gamma, chi2, beta and t: tests/test_stats_shape.py)
    with pytest.raises(NotImplementedError, match="shape parameter n"):
        fd.grad(lambda n: fd.stats.binom.cdf(2.0, n, 0.3))(5.0)


def test_discrete_data():
    # the CDF is a step function of k: derivative 0; logpmf's is the continuous
    # extension's (JAX's convention): d/dk [k log mu - mu - gammaln(k + 1)]
    assert fd.grad(lambda k: fd.stats.bernoulli.cdf(k, 0.3))(0.0) == 0.0
    assert fd.grad(lambda k: fd.stats.bernoulli.logpmf(k, 0.3))(1.0) == 0.0
    if HAVE_SPECIAL:
        assert fd.grad(lambda k: fd.stats.poisson.cdf(k, 2.5))(2.0) == 0.0
        from scipy.special import digamma
        g = fd.grad(lambda k: fd.stats.poisson.logpmf(k, 2.5))(2.0)
        assert abs(g - (np.log(2.5) - digamma(3.0))) < 1e-12


# ----------------------------------------------------------------------------------
# second derivatives: fd.hessian against differences of fd.grad

SECOND = [
    ("norm", "logcdf", [-30.0, 0.4, 1.7]), ("norm", "logpdf", [0.4, 0.3, 1.7]),
    ("cauchy", "logsf", [2.0, 0.3, 1.7]), ("logistic", "logcdf", [-3.0, 0.3, 1.7]),
    ("laplace", "logcdf", [0.9, 0.3, 1.7]), ("expon", "logcdf", [0.9, 0.2, 1.3]),
    ("lognorm", "logpdf", [1.2, 0.6, 0.1, 1.3]), ("lognorm", "cdf", [1.2, 0.6, 0.1, 1.3]),
    ("bernoulli", "logpmf", [1.0, 0.3]), ("gamma", "logcdf", [1.2, 2.5, 0.1, 1.3]),
    ("t", "cdf", [0.9, 3.5, 0.3, 1.7]), ("chi2", "logsf", [2.2, 3.0, 0.1, 1.3]),
    ("beta", "logcdf", [0.7, 2.0, 3.5, 0.1, 1.3]), ("t", "logsf", [-1.5, 2.5, 0.3, 1.7]),
    pytest.param("gamma", "logpdf", [1.2, 2.5, 0.1, 1.3], marks=needs_special),
    pytest.param("beta", "logpdf", [0.7, 2.0, 3.5, 0.1, 1.3], marks=needs_special),
    pytest.param("t", "logpdf", [0.9, 3.5, 0.3, 1.7], marks=needs_special),
]


@pytest.mark.parametrize("name,method,point", SECOND)
def test_hessian_matches_differences_of_the_gradient(name, method, point):
    fn = getattr(_dist(name), method)
    free = np.ones(len(point), dtype=bool)
    base = np.array(point, dtype=float)

    def f(v):
        full = [v[int(np.sum(free[:j]))] if free[j] else base[j] for j in range(len(base))]
        return fn(*full)

    v0 = base[free]
    H = fd.hessian(f)(v0)
    want = np.array([num_grad(lambda v: fd.grad(f)(v)[r], v0, h=1e-6)
                     for r in range(len(v0))])
    np.testing.assert_allclose(H, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)


def test_jvp_equals_the_gradient_along_a_direction():
    def f(v):
        return fd.sum(fd.stats.norm.logcdf(v[:3], v[3], v[4]))
    v = np.array([-25.0, 0.1, 2.0, 0.3, 1.7])
    d = np.array([1.0, -2.0, 0.5, 0.3, -0.1])
    _, t = fd.jvp(f, (v,), (d,))
    assert abs(t - fd.grad(f)(v) @ d) < 1e-12 * max(1.0, abs(t))


# ----------------------------------------------------------------------------------
# broadcasting, Vars of every kind, traces

def test_broadcasting_like_scipy():
    x = np.linspace(-2, 3, 3)[:, None]
    loc = np.array([0.0, 0.5, 1.0, 2.0])
    for name, method, extra in (("norm", "logcdf", ()), ("lognorm", "logpdf", (0.7,)),
                                ("expon", "sf", ()), ("uniform", "logpdf", ())):
        got = getattr(_dist(name), method)(x, *extra, loc, 1.5)
        want = _scipy(name, method, x, *extra, loc, 1.5)
        assert np.shape(got) == want.shape == (3, 4)
        _close(got, want, rtol=1e-12)

    # a scalar Var scale against array data and loc: gradient is the sum
    def f(s):
        return fd.sum(fd.stats.logistic.logpdf(x, loc, s))
    g = fd.grad(f)(1.5)
    want = (np.sum(ss.logistic.logpdf(x, loc, 1.5 + 1e-6))
            - np.sum(ss.logistic.logpdf(x, loc, 1.5 - 1e-6))) / 2e-6
    assert abs(g - want) < 1e-6 * abs(want)

    # an array Var loc broadcast against a column of data
    def h(m):
        return fd.sum(fd.stats.laplace.logsf(x, m, 1.5))
    np.testing.assert_allclose(fd.grad(h)(loc + 0.01),
                               num_grad(lambda m: np.sum(ss.laplace.logsf(x, m, 1.5)),
                                        loc + 0.01), rtol=1e-6)


def test_keyword_arguments_and_errors():
    assert fd.stats.norm.logpdf(1.0, scale=2.0) == ss.norm.logpdf(1.0, scale=2.0)
    assert fd.stats.lognorm.cdf(2.0, s=0.5, loc=0.1) == ss.lognorm.cdf(2.0, s=0.5, loc=0.1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fd.stats.norm.logpdf(1.0, sigma=2.0)
    with pytest.raises(TypeError, match="missing required argument 's'"):
        fd.stats.lognorm.logpdf(1.0)
    with pytest.raises(TypeError, match="x must be a real number"):
        fd.stats.norm.logpdf("1.0")
    with pytest.raises(NotImplementedError):
        fd.stats.multivariate_normal.cdf(np.zeros(2))


def test_trace_replay_equals_eager():
    data = np.array([-3.0, -0.2, 0.5, 1.5, 4.0])

    def loss(p):
        return (fd.sum(fd.stats.norm.logpdf(data, p[0], p[1]))
                + fd.sum(fd.stats.logistic.logcdf(data, p[0], p[1]))
                + fd.sum(fd.stats.expon.logpdf(data, -5.0, p[1]))
                + fd.sum(fd.stats.norm.logcdf(data * 20, p[0], p[1])))
    p0 = np.array([0.1, 1.2])
    tf = fd.trace(loss, p0, retrace=True)
    for p in (p0, np.array([0.3, 0.9]), np.array([-0.2, 2.5])):
        assert tf(p) == pytest.approx(loss(p), rel=1e-14)
        np.testing.assert_allclose(tf.grad(p), fd.grad(loss)(p), rtol=1e-13)
        np.testing.assert_allclose(tf.hessian(p), fd.hessian(loss)(p), rtol=1e-12)


def test_trace_guards_the_support_and_the_branches():
    def f(x):
        return fd.sum(fd.stats.expon.logpdf(x)) + fd.sum(fd.stats.norm.logcdf(x * 30))
    x0 = np.array([0.5, 1.0])
    tf = fd.trace(f, x0, retrace=True)
    for x in (np.array([-0.5, 1.0]), np.array([0.5, -1.0]), np.array([2.0, 3.0])):
        assert tf(x) == f(x)
        np.testing.assert_array_equal(tf.grad(x), fd.grad(f)(x))


def test_custom_cdf_primitives_under_trace():
    def f(x):
        return fd.sum(fd.stats.gamma.logcdf(x, 2.5, 0.0, 1.3)) + \
            fd.sum(fd.stats.t.sf(x, 3.0)) + fd.sum(fd.stats.beta.cdf(x / 10, 2.0, 3.0))
    x0 = np.array([0.5, 2.0, 4.0])
    tf = fd.trace(f, x0)
    x1 = np.array([0.7, 1.0, 6.0])
    assert tf(x1) == pytest.approx(f(x1), rel=1e-14)
    np.testing.assert_allclose(tf.grad(x1), fd.grad(f)(x1), rtol=1e-13)
    np.testing.assert_allclose(fd.grad(f)(x1), num_grad(lambda v: np.sum(
        ss.gamma.logcdf(v, 2.5, 0.0, 1.3) + ss.t.sf(v, 3.0) + ss.beta.cdf(v / 10, 2.0, 3.0)),
        x1), rtol=1e-6)


def test_discrete_cdfs_differentiable_in_their_parameter():
    k = np.array([-1.0, 0.0, 1.0, 2.5, 3.0, 10.0])
    for name, method, params, i in (("poisson", "cdf", [2.5], 0),
                                    ("poisson", "logsf", [2.5], 0),
                                    ("binom", "cdf", [7.0, 0.35], 1),
                                    ("binom", "logsf", [7.0, 0.35], 1)):
        fn = getattr(_dist(name), method)
        want_v = _scipy(name, method, k, *params)
        fin = np.isfinite(want_v)

        def f(v):
            a = list(params)
            a[i] = v
            return fd.sum(fn(k[fin], *a))

        def ref(v):
            a = list(params)
            a[i] = v
            return np.sum(_scipy(name, method, k[fin], *a))
        g = fd.grad(f)(params[i])
        assert abs(g - (ref(params[i] + 1e-6) - ref(params[i] - 1e-6)) / 2e-6) < 1e-6
        H = fd.hessian(f)(params[i])
        d = (fd.grad(f)(params[i] + 1e-6) - fd.grad(f)(params[i] - 1e-6)) / 2e-6
        assert abs(H - d) < 1e-5 * max(1.0, abs(d))


# ----------------------------------------------------------------------------------
# multivariate

MV_COV = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, -0.2], [0.1, -0.2, 0.7]])
MV_MEAN = np.array([0.2, -0.1, 0.4])
MV_X = np.array([[0.0, 1.0, 0.5], [1.0, 2.0, -1.0], [3.0, -1.0, 0.0], [0.2, -0.1, 0.4]])


def test_multivariate_normal_values():
    mvn, ref = fd.stats.multivariate_normal, ss.multivariate_normal
    _close(mvn.logpdf(MV_X, MV_MEAN, MV_COV), ref.logpdf(MV_X, MV_MEAN, MV_COV), 1e-13)
    _close(mvn.pdf(MV_X, MV_MEAN, MV_COV), ref.pdf(MV_X, MV_MEAN, MV_COV), 1e-13)
    _close(mvn.logpdf(MV_X[0], MV_MEAN, MV_COV), ref.logpdf(MV_X[0], MV_MEAN, MV_COV), 1e-13)
    diag = np.array([2.0, 1.0, 0.5])
    _close(mvn.logpdf(MV_X, MV_MEAN, diag), ref.logpdf(MV_X, MV_MEAN, diag), 1e-13)
    _close(mvn.logpdf(MV_X, MV_MEAN, 2.0), ref.logpdf(MV_X, MV_MEAN, 2.0), 1e-13)
    _close(mvn.logpdf(np.array([0.3, -1.0]), 0.1, 2.0),
           ref.logpdf(np.array([0.3, -1.0]), 0.1, 2.0), 1e-13)
    _close(mvn.logpdf(0.3), ref.logpdf(0.3), 1e-13)
    _close(mvn.logpdf(MV_X.reshape(2, 2, 3), MV_MEAN, MV_COV),
           ref.logpdf(MV_X.reshape(2, 2, 3), MV_MEAN, MV_COV), 1e-13)


def test_multivariate_normal_gradients_and_hessian():
    mvn, ref = fd.stats.multivariate_normal, ss.multivariate_normal
    gx = fd.grad(lambda x: fd.sum(mvn.logpdf(x, MV_MEAN, MV_COV)))(MV_X)
    np.testing.assert_allclose(gx, num_grad(lambda x: np.sum(ref.logpdf(x, MV_MEAN, MV_COV)),
                                            MV_X), rtol=1e-6, atol=1e-8)
    gm = fd.grad(lambda m: fd.sum(mvn.logpdf(MV_X, m, MV_COV)))(MV_MEAN)
    np.testing.assert_allclose(gm, num_grad(lambda m: np.sum(ref.logpdf(MV_X, m, MV_COV)),
                                            MV_MEAN), rtol=1e-6, atol=1e-8)
    # in cov: the derivative along symmetric perturbations (cov is read as given;
    # SciPy's logpdf of a nonsymmetric matrix is not defined, so symmetrize)
    gc = fd.grad(lambda c: fd.sum(mvn.logpdf(MV_X, MV_MEAN, c)))(MV_COV)
    want = num_grad(lambda c: np.sum(ref.logpdf(MV_X, MV_MEAN, (c + c.T) / 2)), MV_COV)
    np.testing.assert_allclose((gc + gc.T) / 2, want, rtol=1e-5, atol=1e-8)
    H = fd.hessian(lambda m: fd.sum(mvn.logpdf(MV_X, m, MV_COV)))(MV_MEAN)
    np.testing.assert_allclose(H, -len(MV_X) * np.linalg.inv(MV_COV), rtol=1e-12)

    def f(v):
        L = fd.reshape(v, (3, 3))
        return fd.sum(mvn.logpdf(MV_X, MV_MEAN, L @ fd.transpose(L) + 0.1 * np.eye(3)))
    v0 = np.linalg.cholesky(MV_COV).ravel()
    H = fd.hessian(f)(v0)
    np.testing.assert_allclose(H[0], num_grad(lambda v: fd.grad(f)(v)[0], v0),
                               rtol=1e-5, atol=1e-7)


@needs_special
def test_dirichlet():
    alpha = np.array([1.5, 2.0, 3.0])
    x = np.array([[0.2, 0.1], [0.3, 0.6], [0.5, 0.3]])
    _close(fd.stats.dirichlet.logpdf(x, alpha), ss.dirichlet.logpdf(x, alpha), 1e-13)
    _close(fd.stats.dirichlet.pdf(x[:, 0], alpha), ss.dirichlet.pdf(x[:, 0], alpha), 1e-13)
    _close(fd.stats.dirichlet.logpdf(x[:2], alpha), ss.dirichlet.logpdf(x[:2], alpha), 1e-13)
    g = fd.grad(lambda a: fd.sum(fd.stats.dirichlet.logpdf(x, a)))(alpha)
    np.testing.assert_allclose(g, num_grad(lambda a: np.sum(ss.dirichlet.logpdf(x, a)), alpha),
                               rtol=1e-6)
    g = fd.grad(lambda v: fd.sum(fd.stats.dirichlet.logpdf(v, alpha)))(x[:2])
    np.testing.assert_allclose(
        g, num_grad(lambda v: np.sum(ss.dirichlet.logpdf(v, alpha)), x[:2]), rtol=1e-6)
    # off the simplex: -inf (SciPy raises ValueError)
    assert fd.stats.dirichlet.logpdf(np.array([0.2, 0.3, 0.6]), alpha) == -np.inf


def test_scipy_is_not_imported_by_import_fastad():
    import subprocess
    import sys
    code = "import sys, fastad; fastad.stats.norm.logcdf(-40.0); " \
           "print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_all_points_outside_the_support():
    # a Var in gives a Var out (derivative 0), also when no point is inside and at
    # infinite data
    g = fd.grad(lambda x: fd.sum(fd.stats.uniform.logpdf(x)))(np.array([np.inf, 2.0, -1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])
    assert fd.grad(lambda x: fd.stats.expon.cdf(x))(-3.0) == 0.0
    assert fd.grad(lambda p: fd.stats.bernoulli.logpmf(3.0, p))(0.3) == 0.0
    assert fd.grad(lambda p: fd.stats.bernoulli.sf(3.0, p))(0.3) == 0.0
    v = fd.grad(lambda x: fd.sum(fd.stats.lognorm.logpdf(x, 0.5)))(np.array([0.0, -1.0]))
    np.testing.assert_array_equal(v, [0.0, 0.0])


def test_t_for_large_df():
    # the constant log Gamma((df+1)/2) - log Gamma(df/2) as Stirling's series from
    # df = 20 on (two gammaln of 1e11 would lose 1e-5 at df = 1e10); df = inf is
    # the normal distribution, as in SciPy
    x = np.array([-3.0, 0.7, 12.0])
    for df in (19.0, 20.0, 21.0, 1e3, 1e6, 1e10):
        _close(fd.stats.t.logpdf(x, df), ss.t.logpdf(x, df), rtol=1e-12)
    _close(fd.stats.t.logpdf(x, 1e300), ss.norm.logpdf(x), rtol=1e-15)
    _close(fd.stats.t.logpdf(x, np.inf), ss.t.logpdf(x, np.inf), rtol=1e-15)
    _close(fd.stats.t.logpdf(x, np.array([np.inf, 3.0, 1e8])),
           ss.t.logpdf(x, np.array([np.inf, 3.0, 1e8])), rtol=1e-12)
    # the derivative in df is continuous where the branches meet
    g = fd.grad(lambda d: fd.stats.t.logpdf(0.7, d))
    assert abs(g(20.0 - 1e-7) - g(20.0 + 1e-7)) < 1e-9
    for df in (5.0, 19.0, 25.0, 1e4):
        want = (ss.t.logpdf(0.7, df + 1e-6 * df) - ss.t.logpdf(0.7, df - 1e-6 * df)) \
            / (2e-6 * df)
        assert abs(g(df) - want) < 1e-6 * abs(want) + 1e-10   # SciPy differences: 1e-11 noise
    assert fd.grad(lambda d: fd.stats.t.logpdf(0.7, d))(np.inf) == 0.0


@needs_special
def test_multivariate_under_trace_and_jvp():
    alpha_x = np.array([0.2, 0.3, 0.5])

    def f(m):
        return (fd.sum(fd.stats.multivariate_normal.logpdf(MV_X, m, MV_COV))
                + fd.sum(fd.stats.dirichlet.logpdf(alpha_x, fd.exp(m)))
                + fd.sum(fd.stats.gamma.logpdf(MV_X[0] + 1.0, fd.exp(m)))
                + fd.sum(fd.stats.binom.logpmf(np.array([1.0, 2.0, 3.0]), 6.0,
                                               fd.sigmoid(m))))
    m0, m1 = np.array([0.1, 0.2, -0.3]), np.array([0.3, -0.4, 0.2])
    tf = fd.trace(f, m0)
    assert tf(m1) == pytest.approx(f(m1), rel=1e-14)
    np.testing.assert_allclose(tf.grad(m1), fd.grad(f)(m1), rtol=1e-13)
    np.testing.assert_allclose(tf.hessian(m1), fd.hessian(f)(m1), rtol=1e-12, atol=1e-14)
    d = np.array([1.0, -0.5, 2.0])
    assert fd.jvp(f, (m1,), (d,))[1] == pytest.approx(fd.grad(f)(m1) @ d, rel=1e-13)


def test_rvs_draws_with_scipy_and_refuses_vars():
    draws = fd.stats.norm.rvs(loc=2.0, scale=0.5, size=2000, random_state=0)
    assert draws.shape == (2000,) and abs(draws.mean() - 2.0) < 0.05
    x = fd.stats.dirichlet.rvs(np.array([1.5, 2.0, 3.0]), size=1, random_state=1)[0]
    assert x.shape == (3,) and abs(x.sum() - 1.0) < 1e-12
    with fd.Tape() as t:
        with pytest.raises(TypeError, match="not differentiable"):
            fd.stats.norm.rvs(loc=t.variable(0.0))
