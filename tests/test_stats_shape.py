"""The CDFs of fd.stats.gamma, chi2, beta and t in their shape parameters (a, b,
df): first and second derivatives against mpmath (50-digit numerical derivatives
of the log of the smaller tail, so that both tails keep their relative accuracy),
gradients of the public functions against central differences of SciPy's values,
Hessians against differences of gradients, broadcasting, forward mode, traces,
the range check, and a censored-data fit that recovers a known shape."""
import numpy as np
import pytest

import fastad as fd
from fastad import _incshape
from _numdiff import num_grad

mp = pytest.importorskip("mpmath")
ss = pytest.importorskip("scipy.stats")
sc = pytest.importorskip("scipy.special")

mp.mp.dps = 40


def _log_derivs(f, params):
    """The small side's value S, and the gradient and Hessian of log S (mpmath)."""
    params = [mp.mpf(p) for p in params]
    n = len(params)
    S = f(*params)

    def L(*p):
        return mp.log(f(*p))
    g = []
    for i in range(n):
        o = [0] * n
        o[i] = 1
        g.append(mp.diff(L, params, tuple(o)))
    H = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            o = [0] * n
            o[i] += 1
            o[j] += 1
            H[i][j] = H[j][i] = mp.diff(L, params, tuple(o))
    return S, g, H


def _derivs(f, params, sign):
    """First and second derivatives of sign * S from those of log S."""
    S, g, H = _log_derivs(f, params)
    n = len(params)
    d1 = [float(sign * S * g[i]) for i in range(n)]
    d2 = [[float(sign * S * (g[i] * g[j] + H[i][j])) for j in range(n)]
          for i in range(n)]
    return np.array(d1), np.array(d2)


def _check(got1, got2, want1, want2, rtol=1e-10):
    """rtol on every first derivative (they never vanish inside the support); the
    second derivatives change sign near the mode, so theirs is relative to the
    larger of themselves and 1e-2 of the first derivatives."""
    np.testing.assert_allclose(got1, want1, rtol=rtol, atol=0)
    scale = np.maximum(np.abs(want2), 1e-2 * np.max(np.abs(want1)))
    assert np.all(np.abs(got2 - want2) <= rtol * scale), (got2, want2)


# ----------------------------------------------------------------------------------
# against mpmath

GAMMA_A = [0.05, 0.1, 0.5, 1.0, 2.5, 10.0, 50.0, 200.0, 1000.0]


def _gamma_points(a):
    r = np.sqrt(a)
    return [1e-8 * a, 0.1 * a, 0.5 * a, max(a - 2 * r, 0.3 * a), a, a + 1.0,
            a + 3 * r + 1, a + 10 * r + 10, 50 * a + 500]


@pytest.mark.parametrize("a", GAMMA_A)
def test_gammainc_in_a_against_mpmath(a):
    for z in _gamma_points(a):
        if z < a:
            f, sign = (lambda s: mp.gammainc(s, 0, z, regularized=True)), 1
        else:
            f, sign = (lambda s: mp.gammainc(s, z, mp.inf, regularized=True)), -1
        w1, w2 = _derivs(f, [a], sign)
        d1, d2 = _incshape.gammainc_da(a, z)
        _check(np.array([d1]), np.array([[d2]]), w1, w2)


BETA_AB = [(0.05, 0.1), (0.05, 200.0), (0.5, 2.0), (0.5, 0.5), (3.0, 0.1),
           (3.0, 200.0), (30.0, 2.0), (200.0, 200.0), (1000.0, 0.1), (1000.0, 30.0)]


@pytest.mark.parametrize("a,b", BETA_AB)
def test_betainc_in_a_and_b_against_mpmath(a, b):
    m = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    xs = [1e-6, m - 6 * sd, m - 2 * sd, m, m + 0.5 * sd, m + 3 * sd, 1 - 1e-6]
    checked = 0
    for x in xs:
        x = float(x)
        if not 0 < x < 1:
            continue
        if x < m:
            f, sign = (lambda s, t: mp.betainc(s, t, 0, x, regularized=True)), 1
        else:
            # the upper tail as I_(1-x)(b, a): mpmath's betainc(a, b, x, 1) is
            # 1 - I_x(a, b), which cancels
            f, sign = (lambda s, t: mp.betainc(t, s, 0, 1 - mp.mpf(x),
                                               regularized=True)), -1
        small = f(mp.mpf(a), mp.mpf(b))
        got = np.array(_incshape.betainc_dab(a, b, x), dtype=float)
        if abs(small) < 1e-250:
            # beyond double precision (mpmath's own value is noise there): the
            # derivatives underflow to 0 with the tail
            assert np.all(np.abs(got) < 1e-200), got
            continue
        w1, w2 = _derivs(f, [a, b], sign)
        _check(got[:2], np.array([[got[2], got[3]], [got[3], got[4]]]), w1, w2)
        checked += 1
    assert checked >= 4


T_DF = [0.1, 0.5, 1.0, 3.0, 10.0, 49.0, 50.0, 120.0, 200.0]
# both tails, the centre, and around z^2 = 9 and the switch point of the fraction
T_Z = [-1e6, -200.0, -20.0, -5.0, -3.5, -3.0, -2.2, -1.8, -1.0, -0.3, -1e-4, 0.01,
       0.7, 1.9, 3.1, 40.0, 1e4]


@pytest.mark.parametrize("df", T_DF)
def test_t_cdf_in_df_against_mpmath(df):
    for z in T_Z:
        s = mp.mpf(z) ** 2

        def lower(n):           # F(-|z|; n)
            return mp.betainc(n / 2, mp.mpf(1) / 2, 0, n / (n + s), regularized=True) / 2
        w1, w2 = _derivs(lower, [df], 1 if z <= 0 else -1)
        d1, d2 = _incshape.stdtr_ddf(df, z)
        _check(np.array([d1]), np.array([[d2]]), w1, w2)
    # z = 0: F = 1/2 for every df
    assert _incshape.stdtr_ddf(df, 0.0) == (0.0, 0.0)


# ----------------------------------------------------------------------------------
# the public functions: gradients, Hessians, broadcasting, tails

METHODS = ("cdf", "sf", "logcdf", "logsf")
# (name, shape parameters, loc, scale, data with both tails)
CASES = [
    ("gamma", (2.5,), 0.1, 1.3, [0.1 + 1e-2, 0.2, 1.0, 3.3, 20.0, 60.0]),
    ("gamma", (0.3,), 0.0, 1.0, [1e-10, 0.01, 0.3, 2.0, 30.0]),
    ("gamma", (150.0,), 0.0, 1.0, [80.0, 140.0, 150.0, 165.0, 250.0]),
    ("chi2", (3.0,), 0.1, 1.3, [0.2, 1.0, 4.0, 30.0, 150.0]),
    ("beta", (2.0, 3.5), 0.1, 1.3, [0.1 + 1e-2, 0.15, 0.5, 1.0, 1.39]),
    ("beta", (0.4, 40.0), 0.0, 1.0, [1e-9, 0.001, 0.01, 0.05, 0.3]),
    ("t", (3.5,), 0.3, 1.7, [-1e4, -50.0, -2.0, 0.0, 0.3, 1.0, 9.0, 1e3]),
    ("t", (0.7,), 0.0, 1.0, [-1e5, -3.0, 0.5, 40.0]),
    ("t", (150.0,), 0.0, 1.0, [-8.0, -1.8, -1.0, 0.2, 3.0]),
    ("t", (195.0,), 0.0, 1.0, [-6.0, -3.1, -1.0, 0.2, 2.0]),
]


def _cases():
    return [pytest.param(c, m, id="%s%s.%s" % (c[0], c[1], m)) for c in CASES
            for m in METHODS]


@pytest.mark.parametrize("case,method", _cases())
def test_gradient_in_every_parameter_against_scipy(case, method):
    name, shapes, loc, scale, x = case
    x = np.array(x)
    theta = np.array(list(shapes) + [loc, scale])
    fn = getattr(getattr(fd.stats, name), method)
    ref = getattr(getattr(ss, name), method)

    def f(th):
        return fd.sum(fn(x, *[th[i] for i in range(len(th))]))

    def r(th):
        return np.sum(ref(x, *th))
    g = fd.grad(f)(theta)
    # relative steps (the shape parameters span 0.3 to 150); loc's is a small part
    # of the data's distance to the support's end
    steps = 1e-6 * np.maximum(np.abs(theta), 0.1)
    steps[-2] = 1e-6 * np.median(np.abs(x - loc))     # on the data's scale
    if name != "t":
        steps[-2] = min(steps[-2], 1e-4 * np.min(np.abs(x - loc)))
    want = np.array([(r(theta + e) - r(theta - e)) / (2 * e[i]) for i, e in
                     enumerate(np.diag(steps))])
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-9 * np.max(np.abs(want)))


@pytest.mark.parametrize("case,method", _cases())
def test_hessian_in_every_parameter_against_differences_of_gradients(case, method):
    name, shapes, loc, scale, x = case
    x = np.array(x)
    theta = np.array(list(shapes) + [loc, scale])
    fn = getattr(getattr(fd.stats, name), method)

    def f(th):
        return fd.sum(fn(x, *[th[i] for i in range(len(th))]))
    H = fd.hessian(f)(theta)
    steps = 1e-6 * np.maximum(np.abs(theta), 0.1)
    steps[-2] = 1e-6 * np.median(np.abs(x - loc))     # on the data's scale
    if name != "t":
        steps[-2] = min(steps[-2], 1e-4 * np.min(np.abs(x - loc)))
    want = np.array([(fd.grad(f)(theta + e) - fd.grad(f)(theta - e)) / (2 * e[i])
                     for i, e in enumerate(np.diag(steps))])
    np.testing.assert_allclose(H, want, rtol=2e-6, atol=1e-8 * np.max(np.abs(want)))
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-15 * np.max(np.abs(H)))


def test_second_derivative_in_the_data_and_the_shape():
    # d2 P / (da dz) is the density's derivative in a: f (log z - psi(a))
    a, z = 2.5, 1.7
    H = fd.hessian(lambda v: fd.stats.gamma.cdf(v[1], v[0]))(np.array([a, z]))
    dens = ss.gamma.pdf(z, a)
    assert H[0, 1] == pytest.approx(dens * (np.log(z) - sc.digamma(a)), rel=1e-13)
    assert H[1, 0] == pytest.approx(H[0, 1], rel=1e-13)
    assert H[0, 0] == pytest.approx(float(_incshape.gammainc_da(a, z)[1]), rel=1e-13)


def test_tails_against_mpmath():
    # d/da of log Q(2, 60) ~ 1e-24 tail; log I_x(a, b) at x = 1e-10; log F(-1000; 3)
    q = fd.grad(lambda a: fd.stats.gamma.logsf(60.0, a))(2.0)
    _, g, _ = _log_derivs(lambda s: mp.gammainc(s, 60, mp.inf, regularized=True), [2.0])
    assert q == pytest.approx(float(g[0]), rel=1e-12)

    gb = fd.grad(lambda p: fd.stats.beta.logcdf(1e-10, p[0], p[1]))(np.array([2.0, 3.0]))
    _, g, _ = _log_derivs(lambda s, t: mp.betainc(s, t, 0, mp.mpf("1e-10"),
                                                  regularized=True), [2.0, 3.0])
    np.testing.assert_allclose(gb, [float(v) for v in g], rtol=1e-12)

    gt = fd.grad(lambda d: fd.stats.t.logcdf(-1000.0, d))(3.0)
    _, g, _ = _log_derivs(lambda n: mp.betainc(n / 2, mp.mpf(1) / 2, 0,
                                               n / (n + 10 ** 6), regularized=True), [3.0])
    assert gt == pytest.approx(float(g[0]), rel=1e-10)


def test_broadcast_shape_parameters():
    x = np.array([[0.2], [1.0], [4.0], [9.0]])            # (4, 1)
    a = np.array([0.3, 2.5, 12.0])                          # (3,)

    def f(av):
        return fd.sum(fd.stats.gamma.logsf(x, av, scale=0.5) ** 2)

    def r(av):
        return np.sum(ss.gamma.logsf(x, av, scale=0.5) ** 2)
    np.testing.assert_allclose(fd.grad(f)(a), num_grad(r, a, h=1e-6), rtol=1e-6)
    # a (2, 1) grid of (a, b) against (3,) data
    ab = np.array([[0.5, 2.0], [4.0, 0.8]])
    xb = np.array([0.05, 0.5, 0.97])

    def fb(p):
        return fd.sum(fd.stats.beta.cdf(xb, p[:, :1], p[:, 1:]))

    def rb(p):
        return np.sum(ss.beta.cdf(xb, p[:, :1], p[:, 1:]))
    np.testing.assert_allclose(fd.grad(fb)(ab), num_grad(rb, ab, h=1e-6), rtol=1e-6)
    H = fd.hessian(fb)(ab)
    assert H.shape == (2, 2, 2, 2)
    Hf = H.reshape(4, 4)
    np.testing.assert_allclose(Hf, Hf.T, rtol=1e-12, atol=1e-15)


def test_forward_mode_and_traces_agree_with_reverse_mode():
    x = np.array([0.4, 1.5, 3.0])

    def f(th):
        return (fd.sum(fd.stats.gamma.logcdf(x, th[0], scale=th[1]))
                + fd.sum(fd.stats.t.sf(x - 1.0, th[2]))
                + fd.sum(fd.stats.beta.logsf(x / 4, th[0], th[2])))
    th = np.array([2.5, 1.2, 3.5])
    g = fd.grad(f)(th)
    v = np.array([0.3, -0.7, 1.1])
    _, tangent = fd.jvp(f, (th,), (v,))
    assert tangent == pytest.approx(g @ v, rel=1e-12)
    # Duals: one scalar shape parameter
    d = fd.derivative(lambda a: fd.stats.gamma.cdf(1.5, a))(2.5)
    assert d == pytest.approx(float(_incshape.gammainc_da(2.5, 1.5)[0]), rel=1e-14)
    tf = fd.trace(f, th)
    th1 = np.array([2.7, 1.1, 3.0])
    assert tf(th1) == pytest.approx(f(th1), rel=1e-14)
    np.testing.assert_allclose(tf.grad(th1), fd.grad(f)(th1), rtol=1e-13)
    np.testing.assert_allclose(tf.hessian(th1), fd.hessian(f)(th1), rtol=1e-12)


def test_complements_and_chi2_as_gamma():
    a = 2.5
    gc = fd.grad(lambda v: fd.stats.gamma.cdf(3.0, v))(a)
    gs = fd.grad(lambda v: fd.stats.gamma.sf(3.0, v))(a)
    assert gc == -gs and gc < 0
    # chi2(df) at x is gamma(df / 2) at x / 2
    g2 = fd.grad(lambda d: fd.stats.chi2.logsf(7.0, d))(4.0)
    gg = fd.grad(lambda v: fd.stats.gamma.logsf(3.5, v))(2.0)
    assert g2 == pytest.approx(gg / 2, rel=1e-14)
    # the t CDF is symmetric: F(-z; df) = 1 - F(z; df)
    gt = fd.grad(lambda d: fd.stats.t.cdf(1.3, d) + fd.stats.t.cdf(-1.3, d))(2.5)
    assert abs(gt) < 1e-17


def test_invalid_shapes_nan_and_support_ends():
    # a <= 0 is nan (SciPy's value), a nan shape gives nan, the ends of the
    # support have derivative 0 in the shape
    v, g = fd.value_and_grad(lambda a: fd.sum(fd.stats.gamma.cdf(np.array([1.0, 2.0]),
                                                                  a)))(-1.0)
    assert np.isnan(v) and not np.isnan(ss.gamma.cdf(1.0, 2.0))
    g = fd.grad(lambda a: fd.sum(fd.stats.gamma.cdf(np.array([1.0, 2.0]), a)))(np.nan)
    assert np.isnan(g)
    g = fd.grad(lambda a: fd.sum(fd.stats.gamma.cdf(np.array([-1.0, 0.0]), a)))(2.0)
    assert g == 0.0
    g = fd.grad(lambda p: fd.sum(fd.stats.beta.sf(np.array([0.0, 1.0, 2.0]),
                                                   p[0], p[1])))(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_shape_outside_the_verified_range_is_an_error():
    with pytest.raises(ValueError, match=r"gamma.cdf: .*a <= 1000 .*got a = 2000"):
        fd.grad(lambda a: fd.stats.gamma.cdf(2.0, a))(2000.0)
    with pytest.raises(ValueError, match=r"beta.logsf: .*got b = 0.01"):
        fd.grad(lambda b: fd.stats.beta.logsf(0.3, 2.0, b))(0.01)
    # b is a constant, but dI/da depends on it
    with pytest.raises(ValueError, match=r"beta.cdf: .*got b = 5000"):
        fd.grad(lambda a: fd.stats.beta.cdf(0.3, a, 5000.0))(2.0)
    with pytest.raises(ValueError, match=r"t.cdf: .*df <= 200 .*got df = 300"):
        fd.grad(lambda d: fd.stats.t.cdf(0.3, d))(300.0)
    with pytest.raises(ValueError, match=r"chi2.sf: .*df <= 2000"):
        fd.grad(lambda d: fd.stats.chi2.sf(3.0, d))(3000.0)
    # under fd.trace the range check is a guard: a replay outside it fails (or
    # retraces, and then raises), it does not reuse the recording
    def f(a):
        return fd.sum(fd.stats.gamma.logcdf(np.array([0.5, 2.0]), a))
    with pytest.raises(fd.TraceError, match="guard failed"):
        fd.trace(f, 2.5).grad(2000.0)
    with pytest.raises(ValueError, match="got a = 2000"):
        fd.trace(f, 2.5, retrace=True).grad(2000.0)
    # a constant shape parameter outside it is fine: only its derivative is refused
    g = fd.grad(lambda x: fd.stats.gamma.cdf(x, 2000.0))(1990.0)
    assert g == pytest.approx(ss.gamma.pdf(1990.0, 2000.0), rel=1e-12)
    assert fd.grad(lambda x: fd.stats.t.cdf(x, 1e6))(0.5) == \
        pytest.approx(ss.t.pdf(0.5, 1e6), rel=1e-12)


def test_censored_gamma_fit_recovers_the_shape():
    # right-censored survival times: the density of the observed ones, the log
    # survival function of the censored ones (which needs d logsf / da)
    rng = np.random.default_rng(3)
    a_true, scale_true, n = 2.7, 1.8, 4000
    t = rng.gamma(a_true, scale_true, size=n)
    c = rng.uniform(2.0, 12.0, size=n)
    seen = t <= c
    obs, cens = t[seen], c[~seen]
    assert 0.1 < np.mean(~seen) < 0.5

    def nll(p):
        a, s = fd.exp(p[0]), fd.exp(p[1])
        return -(fd.sum(fd.stats.gamma.logpdf(obs, a, scale=s))
                 + fd.sum(fd.stats.gamma.logsf(cens, a, scale=s))) / n

    res = fd.minimize(nll, np.array([0.0, 0.0]), method="trust-exact",
                      options={"gtol": 1e-10})
    assert res.success
    a_hat, s_hat = np.exp(res.x)
    # the maximum of SciPy's likelihood (Nelder-Mead, no derivatives)
    import scipy.optimize as so

    def ref(p):
        a, s = np.exp(p)
        return -(np.sum(ss.gamma.logpdf(obs, a, scale=s))
                 + np.sum(ss.gamma.logsf(cens, a, scale=s))) / n
    r = so.minimize(ref, np.array([0.0, 0.0]), method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    # fastad's optimum is as good in SciPy's own likelihood, and close to its
    np.testing.assert_allclose(res.x, r.x, atol=1e-4)
    assert ref(res.x) <= ref(r.x) + 1e-15
    # and the known shape, within the estimate's standard error (from the Hessian)
    H = fd.hessian(nll)(res.x) * n
    se = np.sqrt(np.diag(np.linalg.inv(H)))
    assert abs(np.log(a_hat) - np.log(a_true)) < 4 * se[0]
    assert abs(np.log(s_hat) - np.log(scale_true)) < 4 * se[1]
    assert np.all(np.abs(fd.grad(nll)(res.x)) < 1e-9)
    e = 1e-6 * np.eye(2)
    want = np.array([(fd.grad(nll)(res.x + e[i]) - fd.grad(nll)(res.x - e[i])) / 2e-6
                     for i in range(2)])
    np.testing.assert_allclose(H / n, want, rtol=1e-6)
