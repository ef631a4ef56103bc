"""Derivatives of the regularized incomplete gamma and beta functions in their
parameters, to second order: plain NumPy (SciPy's gammaln / psi / polygamma), used
by the CDFs of fd.stats (gamma, chi2, beta, t) as the values of custom primitives.

P(a, z) (the gamma CDF), I_x(a, b) (the beta CDF) and the t CDF have no closed
form derivative in a, b or df.  Each is written as prefactor * F, with F a series
or a continued fraction, and F is differentiated term by term:

- P(a, z) for z < a + 1: P = z^a e^-z / Gamma(a + 1) * sum_k t_k with
  t_k = z^k / prod_{j<=k} (a + j); dt_k/da = t_k s1_k with s1_k = -sum 1/(a + j), and
  d2t_k/da2 = t_k (s1_k^2 + s2_k) with s2_k = sum 1/(a + j)^2.  All terms are
  positive (t_k, s1_k^2 + s2_k) or all negative (t_k s1_k): no cancellation.
- Q(a, z) for z >= a + 1: Legendre's continued fraction, Q = z^a e^-z / Gamma(a) / K
  with K = (z + 1 - a) - 1 (1 - a) / ((z + 3 - a) - 2 (2 - a) / ...).
- I_x(a, b) for x < (a + 1) / (a + b + 2): the continued fraction of DLMF 8.17.22,
  brought by an equivalence transformation to polynomial coefficients,
  I = x^a (1 - x)^b / (B(a, b) K), K = a + p_1 / ((a + 1) + p_2 / ((a + 2) + ...)),
  p_(2m+1) = -(a + m)(a + b + m) x, p_(2m) = m (b - m) x; above, the symmetry
  I_x(a, b) = 1 - I_(1-x)(b, a).
- The t CDF in df: F = I_x(df/2, 1/2) / 2 for z <= 0, x = df / (df + z^2), whose
  fraction runs on jets in df itself (x moves with df); see stdtr_ddf.

Each side is the one where its series or fraction converges fast and its value is
at most about 1/2, so the derivative of the small side is computed directly (that
of the other is its negative) and keeps its relative accuracy in both tails.  A
continued fraction is evaluated by the forward recurrence A_n = b_n A_(n-1) +
a_n A_(n-2) (likewise B_n) carried on second-order jets (value, gradient, Hessian
in the parameters), rescaled each step by |B_n| (a plain number, so the ratio's
derivatives are unchanged), which, unlike Lentz's method, has no division by a
quantity that may pass through zero.  The log of the prefactor is differentiated
in closed form (digamma, trigamma).

Verified against mpmath (tests/test_stats_shape.py) for parameters in
[PARAM_LO, PARAM_HI] (the t CDF's df up to T_DF_HI); callers refuse Var parameters
outside it.
"""
import importlib
import threading

import numpy as np

PARAM_LO, PARAM_HI = 0.05, 1000.0     # the verified range of a, b (and df / 2)
# The t CDF's dF/ddf is of size 1/df^2, made of terms of size 1/df.  stdtr_ddf
# cancels those in closed form, but in the tails (z^2 > 9) the continued fraction's
# first terms still cancel (b_0 + a_1 / (...) with a_1 / (...) near -b_0), an error
# that grows with df, and not smoothly: on dense grids the second derivatives
# keep 1.2e-10 up to df = 200 (the first 4e-12), but lose 1e-9 at a point at
# df = 300.  A Var df stops at 200.
T_DF_HI = 200.0
_EPS = 2e-16
_NMAX = 4000         # enough for 2 sqrt(a) log(1/eps)-ish terms at PARAM_HI


def _ss():
    # importlib, not an import statement: SciPy is optional and ships no type
    # stubs, so mypy (tools/check_types.sh) must not follow it from here
    return importlib.import_module("scipy.special")


# ----------------------------------------------------------------------------------
# Second-order jets in m parameters: (value (N,), gradient (m, N), Hessian (m, m, N))

def _jmul(A, B):
    av, ag, ah = A
    bv, bg, bh = B
    outer = ag[:, None] * bg[None, :]
    return (av * bv, ag * bv + av * bg,
            ah * bv + av * bh + outer + np.swapaxes(outer, 0, 1))


def _jadd(A, B):
    return (A[0] + B[0], A[1] + B[1], A[2] + B[2])


def _jscale(A, s):
    return (A[0] * s, A[1] * s, A[2] * s)


def _jtake(A, keep):
    return (A[0][keep], A[1][:, keep], A[2][:, :, keep])


def _jlog_ratio(A, B):
    """Gradient and Hessian of log(A / B) (the value not needed)."""
    la = A[1] / A[0]
    lb = B[1] / B[0]
    ha = A[2] / A[0] - la[:, None] * la[None, :]
    hb = B[2] / B[0] - lb[:, None] * lb[None, :]
    return la - lb, ha - hb


def _cf_log_derivs(m, n_pts, b0, coef, scale=None):
    """Gradient (m, N) and Hessian (m, m, N) of log K, K = b_0 + a_1 / (b_1 + a_2 /
    (b_2 + ...)); coef(n, idx) gives the jets (a_n, b_n) at the points idx.  The
    iteration stops when they change by less than eps times their size plus
    `scale` (N,), the size of the result they enter (default 1)."""
    scale = np.ones(n_pts) if scale is None else np.asarray(scale, dtype=np.float64)
    zeros_g = np.zeros((m, n_pts))
    zeros_h = np.zeros((m, m, n_pts))
    one = (np.ones(n_pts), zeros_g.copy(), zeros_h.copy())
    zero = (np.zeros(n_pts), zeros_g.copy(), zeros_h.copy())
    Am2, Am1, Bm2, Bm1 = one, b0, zero, one
    idx = np.arange(n_pts)
    out_g, out_h = np.zeros((m, n_pts)), np.zeros((m, m, n_pts))
    prev_g, prev_h = None, None
    latched = np.zeros(n_pts, bool)
    for n in range(1, _NMAX + 1):
        an, bn = coef(n, idx)
        A = _jadd(_jmul(bn, Am1), _jmul(an, Am2))
        B = _jadd(_jmul(bn, Bm1), _jmul(an, Bm2))
        s = np.abs(B[0])
        s = 1.0 / np.where(s > 0, s, 1.0)
        A, B, Am1, Bm1 = _jscale(A, s), _jscale(B, s), _jscale(Am1, s), _jscale(Bm1, s)
        g, h = _jlog_ratio(A, B)
        if prev_g is not None:
            sc = scale[idx]
            tol = _EPS * (sc + np.abs(g).max(axis=0))
            latched |= ((np.abs(g - prev_g) <= tol).all(axis=0)
                        & (np.abs(h - prev_h) <= 4.0 * _EPS * (sc + np.abs(h)))
                        .all(axis=(0, 1)))
            latched |= ~np.isfinite(g).all(axis=0)   # nan parameters: nan out, no loop
            # a converged point stays converged when iterated on: the active set is
            # compacted only when that saves work (a compaction costs an iteration)
            done = latched
            n_done = np.count_nonzero(done)
            if n_done == done.size or n_done * 8 >= done.size or n % 16 == 0 and n_done:
                latched = np.zeros(done.size - n_done, bool)
                out_g[:, idx[done]] = g[:, done]
                out_h[:, :, idx[done]] = h[:, :, done]
                keep = ~done
                if not keep.any():
                    return out_g, out_h
                idx = idx[keep]
                A, B, Am1, Bm1 = (_jtake(J, keep) for J in (A, B, Am1, Bm1))
                g, h = g[:, keep], h[:, :, keep]
        Am2, Am1, Bm2, Bm1 = Am1, A, Bm1, B
        prev_g, prev_h = g, h
    raise FloatingPointError("fastad.stats: the continued fraction of an incomplete "
                             "gamma / beta function did not converge in %d steps"
                             % _NMAX)


# ----------------------------------------------------------------------------------
# The incomplete gamma function

def _p_series(a, z):
    """(P, dP/da, d2P/da2) by the series (z < a + 1, z > 0)."""
    ss = _ss()
    t = np.ones_like(z)
    s1 = np.zeros_like(z)
    s2 = np.zeros_like(z)
    S, S1, S2 = t.copy(), s1.copy(), s2.copy()
    acc = [np.zeros_like(z) for _ in range(3)]
    idx = np.arange(z.size)
    ak, zk = a, z
    for k in range(1, _NMAX + 1):
        r = 1.0 / (ak + k)
        t = t * zk * r
        s1 = s1 - r
        s2 = s2 + r * r
        d1, d2 = t * s1, t * (s1 * s1 + s2)
        S, S1, S2 = S + t, S1 + d1, S2 + d2
        done = ((t <= _EPS * S) & (np.abs(d1) <= _EPS * np.abs(S1))
                & (d2 <= _EPS * S2)) | ~np.isfinite(S2)
        if done.any():
            for o, v in zip(acc, (S, S1, S2)):
                o[idx[done]] = v[done]
            keep = ~done
            if not keep.any():
                break
            idx = idx[keep]
            t, s1, s2, S, S1, S2, ak, zk = (v[keep] for v in
                                            (t, s1, s2, S, S1, S2, ak, zk))
    else:
        raise FloatingPointError("fastad.stats: the series of P(a, z) did not "
                                 "converge in %d terms" % _NMAX)
    S, S1, S2 = acc
    lz = np.log(z)
    P = np.exp(a * lz - z - ss.gammaln(a + 1.0)) * S
    la = lz - ss.psi(a + 1.0) + S1 / S
    laa = -ss.polygamma(1, a + 1.0) + S2 / S - (S1 / S) ** 2
    return P, P * la, P * (la * la + laa)


def _q_fraction(a, z):
    """(Q, dQ/da, d2Q/da2) by Legendre's continued fraction (z >= a + 1)."""
    ss = _ss()
    n_pts = z.size
    b0 = (z + 1.0 - a, -np.ones((1, n_pts)), np.zeros((1, 1, n_pts)))

    def coef(n, idx):
        ai, zi = a[idx], z[idx]
        k = idx.size
        an = (-n * (n - ai), np.full((1, k), float(n)), np.zeros((1, 1, k)))
        bn = (zi + 2.0 * n + 1.0 - ai, -np.ones((1, k)), np.zeros((1, 1, k)))
        return an, bn

    g, h = _cf_log_derivs(1, n_pts, b0, coef)
    lz = np.log(z)
    # Q = z^a e^-z / Gamma(a) / K: the prefactor's log-derivatives minus K's
    la = lz - ss.psi(a) - g[0]
    laa = -ss.polygamma(1, a) - h[0, 0]
    # the value is SciPy's gammaincc (the recurrence keeps only log K's derivatives)
    Q = ss.gammaincc(a, z)
    return Q, Q * la, Q * (la * la + laa)


def gammainc_da(a, z):
    """(dP/da, d2P/da2) of P(a, z) = gammainc(a, z), broadcast; dQ/da is -dP/da.
    z == 0 and z == inf give 0 (P is 0 or 1 for every a)."""
    a, z = np.broadcast_arrays(np.asarray(a, dtype=np.float64),
                               np.asarray(z, dtype=np.float64))
    shape = a.shape
    a, z = a.ravel(), z.ravel()
    d1, d2 = np.zeros(a.size), np.zeros(a.size)
    edge = (z == 0) | (z == np.inf)
    nan = np.isnan(a) | np.isnan(z)
    d1[nan] = d2[nan] = np.nan
    lower = ~edge & ~nan & (z < a + 1.0)
    upper = ~edge & ~nan & ~lower
    with np.errstate(over="ignore", under="ignore", invalid="ignore",
                     divide="ignore"):
        if lower.any():
            _, d1[lower], d2[lower] = _p_series(a[lower], z[lower])
        if upper.any():
            _, q1, q2 = _q_fraction(a[upper], z[upper])
            d1[upper], d2[upper] = -q1, -q2
    return d1.reshape(shape), d2.reshape(shape)


# ----------------------------------------------------------------------------------
# The incomplete beta function

def _beta_side(a, b, x, y):
    """(I, gradient (2, N), Hessian (2, 2, N)) of I_x(a, b) by the continued
    fraction, x below the switch point; y = 1 - x given accurately."""
    ss = _ss()
    n_pts = x.size
    e_a = np.zeros((2, n_pts))
    e_a[0] = 1.0
    b0 = (a.copy(), e_a, np.zeros((2, 2, n_pts)))

    def coef(n, idx):
        ai, bi, xi = a[idx], b[idx], x[idx]
        k = idx.size
        g = np.zeros((2, k))
        h = np.zeros((2, 2, k))
        if n % 2:
            m = (n - 1) // 2
            v = -(ai + m) * (ai + bi + m) * xi
            g[0] = -xi * (2.0 * ai + bi + 2.0 * m)
            g[1] = -xi * (ai + m)
            h[0, 0] = -2.0 * xi
            h[0, 1] = h[1, 0] = -xi
        else:
            m = n // 2
            v = m * (bi - m) * xi
            g[1] = m * xi
        bg = np.zeros((2, k))
        bg[0] = 1.0
        return (v, g, h), (ai + n, bg, np.zeros((2, 2, k)))

    g, h = _cf_log_derivs(2, n_pts, b0, coef)
    psab, p1ab = ss.psi(a + b), ss.polygamma(1, a + b)
    lx, ly = np.log(x), np.log(y)
    la = np.stack([lx - ss.psi(a) + psab - g[0], ly - ss.psi(b) + psab - g[1]])
    laa = np.empty((2, 2, n_pts))
    laa[0, 0] = -ss.polygamma(1, a) + p1ab - h[0, 0]
    laa[0, 1] = laa[1, 0] = p1ab - h[0, 1]
    laa[1, 1] = -ss.polygamma(1, b) + p1ab - h[1, 1]
    # the value is SciPy's betainc (the recurrence keeps only log K's derivatives)
    value = ss.betainc(a, b, x)
    return value, value * la, value * (la[:, None] * la[None, :] + laa)


def betainc_dab(a, b, x, y=None):
    """(I_a, I_b, I_aa, I_ab, I_bb): the derivatives of I_x(a, b) = betainc(a, b, x)
    in a and b, broadcast; those of the complement are their negatives.  y = 1 - x,
    when the caller has it more accurately than 1 - x.  x == 0 and x == 1 give 0."""
    if y is None:
        y = 1.0 - np.asarray(x, dtype=np.float64)
    a, b, x, y = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                       for v in (a, b, x, y)))
    shape = a.shape
    a, b, x, y = a.ravel(), b.ravel(), x.ravel(), y.ravel()
    out = np.zeros((5, a.size))
    nan = np.isnan(a) | np.isnan(b) | np.isnan(x)
    out[:, nan] = np.nan
    inner = ~nan & (x > 0) & (y > 0)
    swap = inner & (x > (a + 1.0) / (a + b + 2.0))
    direct = inner & ~swap
    with np.errstate(over="ignore", under="ignore", invalid="ignore",
                     divide="ignore"):
        if direct.any():
            _, g, h = _beta_side(a[direct], b[direct], x[direct], y[direct])
            out[:, direct] = g[0], g[1], h[0, 0], h[0, 1], h[1, 1]
        if swap.any():
            # I_x(a, b) = 1 - J with J = I_y(b, a): J's first parameter is b
            _, g, h = _beta_side(b[swap], a[swap], y[swap], x[swap])
            out[:, swap] = -g[1], -g[0], -h[1, 1], -h[0, 1], -h[0, 0]
    return tuple(o.reshape(shape) for o in out)


# ----------------------------------------------------------------------------------
# The t CDF in df

# B_2k / (2k): the coefficients of the asymptotic series of digamma
_PSI_SERIES = (1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132, -691.0 / 32760,
               1.0 / 12)


def _psi_half_gap(a):
    """psi(a + 1/2) - psi(a) - 1/(2a), about 1/(8a^2).  Two digamma values of
    size log a would leave an absolute error of eps log a, 4e-11 relative at
    a = 100; from a = 10 on it is the difference of the asymptotic series,
    log1p(1/(2a)) - 1/(2a + 1) - sum c_k ((a + 1/2)^-2k - a^-2k), the first two
    as one power series in 1/(2a) (their terms of size 1/a cancel), the others
    through expm1 (the last omitted is below 1e-16 of the result)."""
    ss = _ss()
    big = a >= 10.0
    ab = np.where(big, a, 10.0)
    u = 0.5 / ab
    # log1p(u) - u / (1 + u) = sum_(k>=2) (-1)^k (k - 1)/k u^k, u <= 1/20
    v = np.zeros_like(u)
    for k in range(17, 1, -1):
        v = v + (-1) ** k * (k - 1.0) / k * u ** k
    # (a + 1/2)^-2k - a^-2k = a^-2k expm1(-2k log1p(u)), without cancellation
    lu = np.log1p(u)
    for k, c in enumerate(_PSI_SERIES, start=1):
        v = v - c * ab ** (-2 * k) * np.expm1(-2 * k * lu)
    with np.errstate(invalid="ignore", divide="ignore"):
        small = ss.psi(a + 0.5) - ss.psi(a) - 0.5 / a
    return np.where(big, v, small)


def _log1p_gap(u):
    """log1p(u) - u / (1 + u), about u^2 / 2, for u >= 0: a power series below
    u = 0.1 (the two terms of size u cancel), directly above."""
    u = np.asarray(u, dtype=np.float64)
    small = u < 0.1
    us = np.where(small, u, 0.0)
    v = np.zeros_like(us)
    for k in range(24, 1, -1):
        v = v + (-1) ** k * (k - 1.0) / k * us ** k
    with np.errstate(invalid="ignore"):
        big = np.log1p(u) - u / (1.0 + u)
    return np.where(small, v, big)


def t_logpdf_ddf(df, s):
    """d/ddf of the log of the t density at z^2 = s:
      (psi((df + 1)/2) - psi(df/2) - 1/df) / 2 - (log1p(s/df) - (s/df)/(1 + s/df)) / 2
      + s / (2 df (df + s)),
    each bracket of size 1/df^2 computed without its terms of size 1/df."""
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        u = s / df
        return (0.5 * _psi_half_gap(0.5 * df) - 0.5 * _log1p_gap(u)
                + 0.5 * s / (df * (df + s)))


def _t_side(df, x, y, swap):
    """Gradient and Hessian (in df) of log S, S = I_x(df/2, 1/2) (swap False) or
    I_y(1/2, df/2) (swap True), with x = df / (df + z^2) and y = 1 - x moving with
    df: the continued fraction on jets in df alone.

    Both share the prefactor x^a y^b / B(a, b) (a = df/2, b = 1/2), whose log has
    the derivatives
      d/ddf   = (log x + y - x/df + psi(a + 1/2) - psi(a)) / 2
      d2/ddf2 = (y^2/df + x^2/df^2 + (psi'(a + 1/2) - psi'(a)) / 2) / 2,
    written (log x + y) + (psi(a + 1/2) - psi(a) - 1/df) + y/df for the first: the
    terms of size 1/df cancel in closed form, not in rounding (the t CDF tends to
    the normal's, so its derivative in df is of size 1/df^2)."""
    ss = _ss()
    n_pts = df.size
    a = 0.5 * df
    b = 0.5
    s = y / x * df                       # z^2, as the caller had it
    xv = s / (df + s) ** 2               # dx/ddf; dy/ddf is its negative
    xh = -2.0 * s / (df + s) ** 3
    zero_g, zero_h = np.zeros((1, n_pts)), np.zeros((1, 1, n_pts))
    half_g = np.full((1, n_pts), 0.5)

    def jet(v, g, h, idx):
        return (v[idx], g[:, idx], h[:, :, idx])

    X = (x, xv[None], xh[None, None])
    Y = (y, -xv[None], -xh[None, None])

    if not swap:
        b0 = (a.copy(), half_g.copy(), zero_h.copy())

        def coef(n, idx):
            k = idx.size
            ai = a[idx]
            hg, zh = np.full((1, k), 0.5), np.zeros((1, 1, k))
            Xi = jet(*X, idx)
            if n % 2:
                m = (n - 1) // 2
                p = _jmul(_jmul((ai + m, hg, zh), (ai + b + m, hg, zh)), Xi)
                p = _jscale(p, -1.0)
            else:
                m = n // 2
                p = _jscale(Xi, m * (b - m))
            return p, (ai + n, hg, zh)
    else:
        b0 = (np.full(n_pts, b), zero_g.copy(), zero_h.copy())

        # the coefficients' derivatives in closed form: with a = df/2 and y =
        # s/(df + s), d/ddf (a + c) y = y (s/2 - c)/(df + s) and d2/ddf2 (a + c) y =
        # (x y/df)(2c - s)/(df + s), whose terms of size 1/df cancel here, not in
        # rounding
        xy_df = x * y / df

        def coef(n, idx):
            k = idx.size
            ai, yi, di, si = a[idx], y[idx], df[idx], s[idx]
            q = xy_df[idx]
            zg, zh = np.zeros((1, k)), np.zeros((1, 1, k))
            if n % 2:
                m = (n - 1) // 2
                c = b + m                   # p = -c (a + c) y
                v = -c * (ai + c) * yi
                g = -c * yi * (0.5 * si - c) / (di + si)
                h = -c * q * (2.0 * c - si) / (di + si)
            else:
                m = n // 2                  # p = m (a - m) y
                v = m * (ai - m) * yi
                g = m * yi * (0.5 * si + m) / (di + si)
                h = m * q * (-2.0 * m - si) / (di + si)
            return (v, g[None], h[None, None]), (np.full(k, b + n), zg, zh)

    # the result is of size 1/df^2 (see above): so is the tolerance
    g, h = _cf_log_derivs(1, n_pts, b0, coef, scale=np.minimum(1.0, df ** -2.0))
    lx = np.where(y < 0.5, np.log1p(-y), np.log(x))
    lp1 = 0.5 * ((lx + y) + _psi_half_gap(a) + y / df)
    lp2 = 0.5 * (y * y / df + (x / df) ** 2
                 + 0.5 * (ss.polygamma(1, a + b) - ss.polygamma(1, a)))
    return lp1 - g[0], lp2 - h[0, 0]


def stdtr_ddf(df, z):
    """(dF/ddf, d2F/ddf2) of the t CDF F(z; df) = stdtr(df, z), broadcast.

    For z <= 0, F = I_x(df/2, 1/2) / 2 with x = df / (df + z^2), y = 1 - x =
    z^2 / (df + z^2) (computed as such, not as 1 - x); F(z) = 1 - F(-z) above.
    Below the switch point x < (a + 1) / (a + b + 2) F is the small side; above,
    F = (1 - J) / 2 with J = I_y(1/2, df/2).  z = 0 (F = 1/2 for every df) and
    infinite z give 0."""
    ss = _ss()
    df, z = np.broadcast_arrays(np.asarray(df, dtype=np.float64),
                                np.asarray(z, dtype=np.float64))
    shape = df.shape
    df, z = df.ravel(), z.ravel()
    d1, d2 = np.zeros(df.size), np.zeros(df.size)
    nan = np.isnan(df) | np.isnan(z)
    d1[nan] = d2[nan] = np.nan
    inner = ~nan & (z != 0) & np.isfinite(z)
    with np.errstate(over="ignore", under="ignore", invalid="ignore",
                     divide="ignore"):
        s = z * z
        x = df / (df + s)
        y = s / (df + s)
        a = 0.5 * df
        # the small side below the switch point; for large df also above it up
        # to z^2 = 16 (F >= 3e-5 there), where the direct fraction's first terms
        # cancel (b_0 + a_1 / ... with a_1 / ... close to -b_0), while the
        # complement's coefficients are of size 1
        swap = inner & ((x > (a + 1.0) / (a + 2.5)) | (df >= _T_SWAP_DF) & (s <= _T_SWAP_S))
        direct = inner & ~swap
        if direct.any():
            i = direct
            l1, l2 = _t_side(df[i], x[i], y[i], False)
            G = 0.5 * ss.betainc(a[i], 0.5, x[i])
            d1[i], d2[i] = G * l1, G * (l1 * l1 + l2)
        if swap.any():
            i = swap
            l1, l2 = _t_side(df[i], x[i], y[i], True)
            J = ss.betainc(0.5, a[i], y[i])
            d1[i], d2[i] = -0.5 * J * l1, -0.5 * J * (l1 * l1 + l2)
    sign = np.where(z > 0, -1.0, 1.0)
    return (sign * d1).reshape(shape), (sign * d2).reshape(shape)


_T_SWAP_DF, _T_SWAP_S = 50.0, 9.0

_cache = threading.local()


def cached(fn, *args):
    """fn(*args) remembered for the last arguments of each fn (per thread): a JVP
    rule asks for the first derivatives, its own rule for the second, from one
    evaluation."""
    arrs = tuple(np.asarray(v, dtype=np.float64) for v in args)
    key = (fn, tuple((v.shape, v.tobytes()) for v in arrs))
    store = getattr(_cache, "store", None)
    if store is None:
        store = _cache.store = {}
    hit = store.get(fn)
    if hit is not None and hit[0] == key:
        return hit[1]
    out = fn(*arrs)
    store[fn] = (key, out)
    return out
