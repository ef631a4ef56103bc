/* Numerics helpers used by the op table (fastad_ops.h).
 *
 * Anything longer than a one-line expression lives here, so that each row of the
 * op table stays readable.  Every function is pure and branch-light; the sweeps
 * inline them.
 */
#ifndef FASTAD_NUMERICS_H
#define FASTAD_NUMERICS_H

#include <math.h>

#define FAD_LN2      0.693147180559945309417232121458
#define FAD_LN10     2.302585092994045684017991454684
#define FAD_2_SQRTPI 1.128379167095512573896158903122  /* 2 / sqrt(pi) */
#define FAD_PI       3.141592653589793238462643383280
#define FAD_SQRTPI_2 0.886226925452758013649083741671  /* sqrt(pi) / 2 */
#define FAD_SQRT2PI  2.506628274631000502415765284811  /* sqrt(2 pi) */
#define FAD_1_SQRT2PI 0.398942280401432677939946059934 /* 1 / sqrt(2 pi) */
#define FAD_SQRT_2_PI 0.797884560802865355879892119869 /* sqrt(2 / pi) */
#define FAD_SQRT1_2  0.707106781186547524400844362105  /* 1 / sqrt(2) */
#define FAD_SQRT2    1.414213562373095048801688724210

/* sigmoid(x) = 1 / (1 + exp(-x)), evaluated without overflow on either side. */
static inline double fad_sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* sigmoid'(x) = sigmoid(x) * sigmoid(-x).  Written as the product of the two stable
 * halves: r * (1 - r) loses every digit once r rounds to 1 (x > 37). */
static inline double fad_dsigmoid(double x) {
    return fad_sigmoid(x) * fad_sigmoid(-x);
}

/* tanh'(x) = 1 - tanh(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|).  1 - r * r is
 * exact enough while |x| < 1 (r's rounding error of half an ulp of 1 is at most
 * 5e-16 relative to 1 - r^2 there), but r rounds to +-1 for |x| > 19 and the
 * difference becomes 0 (true value 1.7e-17 at x = 20); the exp form keeps every
 * digit until it underflows.  The cutoff is 1, not lower: the exp costs a libm
 * call per element that the vectorised array kernels cannot vectorise (the MLP
 * benchmark's tanh backward: 414 us at 512x128 with a cutoff of 0.5, where a
 * third of the pre-activations need exp; 4% do with 1).  (The derivative of
 * expm1 is exp(a) for the same reason: r + 1 is 0 once expm1(a) rounds to -1.) */
static inline double fad_dtanh(double x, double r) {
    if (fabs(x) < 1.0) return 1.0 - r * r;
    double e = exp(-2.0 * fabs(x));
    return 4.0 * e / ((1.0 + e) * (1.0 + e));
}

/* softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)). */
static inline double fad_softplus(double x) {
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

/* NumPy's sign: -1, 0, 1, and NaN for NaN. */
static inline double fad_sign(double x) {
    if (x > 0.0) return 1.0;
    if (x < 0.0) return -1.0;
    return x;  /* 0.0, -0.0 or NaN */
}

/* JAX's convention: abs'(0) = 0, NaN stays NaN. */
static inline double fad_dabs(double x) { return fad_sign(x); }

/* relu keeps NaN (as numpy.maximum(x, 0) does); relu'(0) = 0. */
static inline double fad_relu(double x) { return (x > 0.0 || x != x) ? x : 0.0; }
static inline double fad_step(double x) { return x > 0.0 ? 1.0 : (x != x ? x : 0.0); }

/* maximum and minimum propagate NaN like numpy.maximum; on ties the gradient is
 * split evenly between the two arguments (JAX's convention). */
static inline double fad_max(double a, double b) {
    if (a != a || b != b) return a + b;
    return a >= b ? a : b;
}
static inline double fad_min(double a, double b) {
    if (a != a || b != b) return a + b;
    return a <= b ? a : b;
}
static inline double fad_dmax_a(double a, double b) {
    return a > b ? 1.0 : (a == b ? 0.5 : 0.0);
}
static inline double fad_dmin_a(double a, double b) {
    return a < b ? 1.0 : (a == b ? 0.5 : 0.0);
}

/* Python's and NumPy's modulo: the result takes the sign of the divisor. */
static inline double fad_mod(double a, double b) {
    double m = fmod(a, b);
    if (m != 0.0 && ((m < 0.0) != (b < 0.0))) m += b;
    return m;
}
/* numpy.floor_divide: (a - a % b) / b, rounded, so that a == b * (a // b) + a % b. */
static inline double fad_floordiv(double a, double b) {
    if (b == 0.0) return a / b;
    double m = fmod(a, b);
    double d = (a - m) / b;
    if (m != 0.0 && ((m < 0.0) != (b < 0.0))) d -= 1.0;
    if (d != 0.0) {
        double fd = floor(d);
        if (d - fd > 0.5) fd += 1.0;
        return fd;
    }
    return copysign(0.0, a / b);
}

/* x ** y and its partials.  JAX's conventions at the edges: d/dx is 0 when y == 0
 * (x ** 0 is the constant 1, even at x = 0), and d/dy is 0 when x == 0 (the log
 * factor is replaced, as the limit x -> 0+ of x**y * log(x) is 0 for y > 0). */
static inline double fad_pow_dx(double x, double y) {
    if (y == 0.0) return 0.0;
    return y * pow(x, y - 1.0);
}
static inline double fad_pow_dy(double x, double r) {
    if (x == 0.0) return 0.0;
    return r * log(x);
}
static inline double fad_pow_dxx(double x, double y) {
    if (y == 0.0 || y == 1.0) return 0.0;
    return y * (y - 1.0) * pow(x, y - 2.0);
}
static inline double fad_pow_dxy(double x, double y) {
    /* d/dy of y * x**(y-1) at y = 0 is 1/x (x != 0): not 0, although dx is 0 there */
    if (y == 0.0) return x == 0.0 ? 0.0 : 1.0 / x;
    if (x == 0.0) return pow(x, y - 1.0);  /* the log term is dropped, as in dy */
    return pow(x, y - 1.0) * (1.0 + y * log(x));
}
static inline double fad_pow_dyy(double x, double r) {
    if (x == 0.0) return 0.0;
    double l = log(x);
    return r * l * l;
}

/* hypot'(0, 0) is taken as 0 (a subgradient), not 0/0. */
static inline double fad_div0(double num, double den) {
    return den == 0.0 ? 0.0 : num / den;
}

/* d hypot(a, b) / da = a / r, with r = hypot(a, b); 0 at the origin (see above).
 * When r is subnormal it has lost relative precision (hypot(5e-324, 5e-324)
 * rounds to 5e-324, so a / r would be 1 instead of 0.7071): rescale by 2**600
 * first, exactly, and divide then.  The second partials are products of these
 * unit components over r, never b * b / r**3, which overflows to inf / inf = NaN
 * for |a|, |b| > 1e103 and underflows to 0 / 0 below 1e-103. */
static inline double fad_hypot_d(double a, double b, double r) {
    if (r == 0.0) return 0.0;
    if (r < 2.2250738585072014e-308) {
        a *= 0x1p600;
        b *= 0x1p600;
        r = hypot(a, b);
    }
    return a / r;
}

/* ---- Special functions (fd.special) -------------------------------------------
 *
 * Written for the op table's special-function rows.  Accuracy target: a few ulps
 * against scipy.special / mpmath on the rows' ranges, tails included (measured in
 * tests/test_special.py; docs/guide/special.md has the numbers).  Methods:
 *   digamma      recurrence up to x >= 10, then the asymptotic series; reflection
 *                for x < 0; a Taylor series about its positive root x0 = 1.4616...
 *                (where the recurrence would cancel to a relative error ~eps/|x-x0|)
 *   polygamma    (-1)^(n+1) n! zeta(n+1, x), the Hurwitz zeta of an integer s by a
 *                direct sum up to x + N >= 16 + s and Euler-Maclaurin for the rest
 *                (valid for negative non-integer x too); trigamma reflects for x < 0
 *   erfcx        erfc(x) exp(x^2) with exp(x^2) to full precision (x^2 split by an
 *                fma), the asymptotic series from x >= 10
 *   erfinv, ndtri  a starting value (series or Abramowitz-Stegun 26.2.23) refined by
 *                Halley steps against erf or erfc, whichever keeps its argument
 *                exact (1 - y is exact for y >= 1/2): accurate near 0 and near +-1
 *   ndtr, log_ndtr  through erfcx in the left tail (no underflow of log_ndtr to -inf:
 *                log_ndtr(-40) = -804.608...)
 *   i0 i1 i0e i1e  power series for |x| <= 20 (all terms positive), the asymptotic
 *                expansion of e^-x I_n(x) beyond
 */

/* exp(x * x) with x * x's rounding error restored (fma gives it exactly): exp(x*x)
 * alone has a relative error of x^2 * eps, 4e-14 at x = 20. */
static inline double fad_expx2(double x) {
    double h = x * x, l;
    if (!(h < INFINITY)) return exp(h);     /* inf, nan: no inf - inf below */
    l = fma(x, x, -h);
    return exp(h) * (1.0 + l);
}
/* exp(-x * x / 2), likewise. */
static inline double fad_expmx2_2(double x) {
    double h = x * x, l;
    if (!(h < INFINITY)) return exp(-0.5 * h);
    l = fma(x, x, -h);
    return exp(-0.5 * h) * (1.0 - 0.5 * l);
}

/* erfcx(x) = exp(x^2) erfc(x) */
static inline double fad_erfcx(double x) {
    int k;
    if (x != x) return x;
    if (x < 0.0) return 2.0 * fad_expx2(x) - fad_erfcx(-x);
    if (x < 10.0) return erfc(x) * fad_expx2(x);
    /* erfcx(x) = 1/(x sqrt(pi)) sum_k (-1)^k (2k-1)!! / (2x^2)^k; from x = 10 the
     * terms fall below 1e-17 by k = 12, long before they grow again (k ~ x^2) */
    {
        double u = 0.5 / (x * x), term = 1.0, sum = 1.0;
        for (k = 1; k < 60; k++) {
            term *= -(2.0 * k - 1.0) * u;
            sum += term;
            if (fabs(term) < 1e-17) break;
        }
        return (sum / x) * (1.0 / 1.772453850905516027298167483341);
    }
}

/* ndtr(x) = Phi(x), the standard normal CDF.  The left tail is 0.5 erfcx(t) exp(-x^2/2)
 * with t = -x / sqrt(2): 0.5 erfc(t) alone has a relative error of ~x^2 eps from
 * the rounding of t (1.5e-13 at x = -37). */
static inline double fad_ndtr(double x) {
    double t = x * FAD_SQRT1_2;
    if (x != x) return x;
    if (x < -1.0) return 0.5 * fad_erfcx(-t) * fad_expmx2_2(x);
    if (x < 1.0) return 0.5 + 0.5 * erf(t);
    return 1.0 - 0.5 * fad_erfcx(t) * fad_expmx2_2(x);
}

/* log(Phi(x)), finite far into the left tail. */
static inline double fad_log_ndtr(double x) {
    if (x != x) return x;
    if (x < -1.0) return log(0.5 * fad_erfcx(-x * FAD_SQRT1_2)) - 0.5 * x * x;
    if (x <= 0.0) return log(fad_ndtr(x));
    return log1p(-fad_ndtr(-x));
}

/* d/dx log(Phi(x)) = phi(x) / Phi(x) = sqrt(2/pi) / erfcx(-x / sqrt(2)) */
static inline double fad_dlog_ndtr(double x) {
    return FAD_SQRT_2_PI / fad_erfcx(-x * FAD_SQRT1_2);
}

/* d2/dx2 log(Phi(x)) = -d (x + d), d the first derivative.  For x < -14.2 the sum
 * x + d cancels (d ~ -x); with erfcx(t) = S / (t sqrt(pi)), S = 1 + m, d = -x / S
 * and x + d = x m / S, m from the asymptotic series. */
static inline double fad_d2log_ndtr(double x) {
    if (x < -14.2) {
        double u = 1.0 / (x * x), term = 1.0, m = 0.0, S;
        int k;
        for (k = 1; k < 60; k++) {
            term *= -(2.0 * k - 1.0) * u;
            m += term;
            if (fabs(term) < 1e-17 * fabs(m)) break;
        }
        S = 1.0 + m;
        return x * x * m / (S * S);
    }
    {
        double d = fad_dlog_ndtr(x);
        return -d * (x + d);
    }
}

/* x with erf(x) = y, |y| <= 1/2: the Maclaurin series (error < 3e-5) and two Halley
 * steps on erf(x) - y (f''/f' = -2x). */
static inline double fad_erfinv_mid(double y) {
    double z = FAD_SQRTPI_2 * y, z2 = z * z, x, f, d;
    int i;
    x = z * (1.0 + z2 * (1.0 / 3.0 + z2 * (7.0 / 30.0 + z2 * (127.0 / 630.0
                                                             + z2 * (4369.0 / 22680.0)))));
    if (fabs(y) < 1e-9) return x;   /* the series is exact to rounding there */
    for (i = 0; i < 3; i++) {
        f = erf(x) - y;
        d = f / (FAD_2_SQRTPI * exp(-x * x));
        x -= d / (1.0 + x * d);
    }
    return x;
}

/* x with erfc(x) = q, 0 < q <= 1/2.  Start: A&S 26.2.23 (|error| < 4.5e-4), then
 * Halley steps on erfc(x) - q.  The Newton step (erfc(x) - q) / erfc'(x) is written
 * -(sqrt(pi)/2) erfcx(x) (1 - q / erfc(x)), free of the underflow of exp(-x^2). */
static inline double fad_erfcinv_tail(double q) {
    double t = sqrt(-2.0 * log(0.5 * q)), x, e, d;
    int i;
    x = (t - (2.515517 + t * (0.802853 + t * 0.010328))
             / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))) * FAD_SQRT1_2;
    for (i = 0; i < 3; i++) {
        e = erfc(x);
        if (q > 1e-290 && e > 0.0)
            d = -FAD_SQRTPI_2 * fad_erfcx(x) * (1.0 - q / e);
        else   /* q (and erfc(x)) subnormal: q exp(x^2) through logs */
            d = -FAD_SQRTPI_2 * (fad_erfcx(x) - exp(log(q) + x * x));
        x -= d / (1.0 + x * d);
    }
    return x;
}

/* erfcinv(q), 0 <= q <= 2 (nan outside). */
static inline double fad_erfcinv(double q) {
    if (q != q || q < 0.0 || q > 2.0) return NAN;
    if (q == 0.0) return INFINITY;
    if (q == 2.0) return -INFINITY;
    if (q <= 0.5) return fad_erfcinv_tail(q);
    if (q < 1.5) return fad_erfinv_mid(1.0 - q);      /* 1 - q is exact */
    return -fad_erfcinv_tail(2.0 - q);                 /* 2 - q is exact */
}

static inline double fad_erfinv(double y) {
    if (y != y || y < -1.0 || y > 1.0) return NAN;
    if (y == 1.0) return INFINITY;
    if (y == -1.0) return -INFINITY;
    if (fabs(y) <= 0.5) return fad_erfinv_mid(y);
    if (y > 0.0) return fad_erfcinv_tail(1.0 - y);   /* exact for y >= 1/2 */
    return -fad_erfcinv_tail(1.0 + y);
}

/* ndtri(p) = -sqrt(2) erfcinv(2 p): 2 p is exact, so the left tail keeps every
 * digit down to subnormal p; the right tail and the middle through erfcinv's exact
 * 2 - q and 1 - q. */
static inline double fad_ndtri(double p) {
    if (p != p || p < 0.0 || p > 1.0) return NAN;
    return -FAD_SQRT2 * fad_erfcinv(2.0 * p);
}

/* tan(pi x) and sin(pi x)^2 with the argument reduced exactly first */
static inline double fad_tanpi(double x) {
    return tan(FAD_PI * (x - nearbyint(x)));
}
static inline double fad_sinpi2(double x) {
    double s = sin(FAD_PI * (x - nearbyint(x)));
    return s * s;
}

/* Bernoulli numbers over factorials, B_2j / (2j)!, j = 1..10 (Euler-Maclaurin) */
static const double fad_bern_fact[10] = {
    1.0 / 12.0, -1.0 / 720.0, 1.0 / 30240.0, -1.0 / 1209600.0, 1.0 / 47900160.0,
    -691.0 / 1307674368000.0, 1.0 / 74724249600.0, -3617.0 / 10670622842880000.0,
    43867.0 / 5109094217170944000.0, -174611.0 / 802857662698291200000.0};

/* Hurwitz zeta(s, x) = sum_{k >= 0} (x + k)^-s for an integer s >= 2; x may be
 * negative (not a non-positive integer: inf there).  Direct sum until w = x + N >=
 * 16 + s, then Euler-Maclaurin: w^(1-s)/(s-1) + w^-s/2 + sum_j B_2j/(2j)! (s)_(2j-1)
 * w^(1-s-2j); its tenth term is below 1e-24 of the sum. */
static inline double fad_hzeta_int(double s, double x) {
    double w = x, sum = 0.0, lim = 16.0 + s, ws, tail, fac, w2;
    int j;
    if (x != x || !(s < 1e6)) return NAN;   /* nan or huge s (no endless sum) */
    if (x == INFINITY) return 0.0;
    if (x <= 0.0 && x == floor(x)) return INFINITY;
    if (x < -1e6) return NAN;          /* a direct sum of more than 10^6 terms */
    while (w < lim) {
        sum += pow(w, -s);
        w += 1.0;
    }
    ws = pow(w, -s);
    tail = w * ws / (s - 1.0) + 0.5 * ws;
    fac = s * ws / w;
    w2 = 1.0 / (w * w);
    for (j = 0; j < 10; j++) {
        tail += fad_bern_fact[j] * fac;
        fac *= (s + 2.0 * j + 1.0) * (s + 2.0 * j + 2.0) * w2;
    }
    return sum + tail;
}

/* digamma's positive root, as hi + lo, and the Taylor coefficients about it:
 * c_k = psi^(k)(x0) / k! = (-1)^(k+1) zeta(k+1, x0) (computed with mpmath) */
#define FAD_DIGAMMA_X0_HI 1.4616321449683622
#define FAD_DIGAMMA_X0_LO 9.549995429965697e-17
static const double fad_digamma_root[22] = {
    0.9676722454476212, -0.4427631689835921, 0.258499760955651,
    -0.16394270544240652, 0.10782405069126237, -0.07219956125645471,
    0.04880428816414311, -0.03316112647484736, 0.022597648232218104,
    -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
    0.004926781395729853, -0.003369801655439328, 0.002305126326734928,
    -0.0015769367714301972, 0.0010788252019162967, -0.0007380709389960052,
    0.000504953265834602, -0.0003454680251063077, 0.00023635601564027053,
    -0.00016170622091974803};

/* digamma(x), with SciPy's values at the poles: -inf at +0, +inf at -0, nan at the
 * negative integers. */
static inline double fad_digamma(double x) {
    double acc = 0.0, ix2;
    int k;
    if (x != x || x == INFINITY) return x;
    if (x <= 0.0) {
        if (x == floor(x))
            return x == 0.0 ? (signbit(x) ? INFINITY : -INFINITY) : NAN;
        /* psi(1 - x) - psi(x) = pi cot(pi x) */
        return fad_digamma(1.0 - x) - FAD_PI / fad_tanpi(x);
    }
    if (fabs(x - FAD_DIGAMMA_X0_HI) < 0.2) {
        double t = (x - FAD_DIGAMMA_X0_HI) - FAD_DIGAMMA_X0_LO, p = 0.0;
        for (k = 21; k >= 0; k--) p = p * t + fad_digamma_root[k];
        return p * t;
    }
    while (x < 10.0) {
        acc -= 1.0 / x;
        x += 1.0;
    }
    /* log x - 1/(2x) - sum_k B_2k / (2k x^2k) */
    ix2 = 1.0 / (x * x);
    return acc + log(x) - 0.5 / x
        - ix2 * (1.0 / 12.0 - ix2 * (1.0 / 120.0 - ix2 * (1.0 / 252.0 - ix2 * (
            1.0 / 240.0 - ix2 * (1.0 / 132.0 - ix2 * (691.0 / 32760.0 - ix2 * (
                1.0 / 12.0 - ix2 * (3617.0 / 8160.0))))))));
}

/* polygamma(n, x), n rounded to the nearest integer (fd.special.polygamma refuses
 * a non-integer n before it gets here); nan for n < 0. */
static inline double fad_polygamma(double n, double x) {
    double f;
    if (n != n || x != x) return n + x;
    n = floor(n + 0.5);
    if (n < 0.0 || n == INFINITY) return NAN;
    if (n == 0.0) return fad_digamma(x);
    if (n == 1.0 && x < 0.0 && x != floor(x))
        /* psi'(x) + psi'(1 - x) = pi^2 / sin^2(pi x): no direct sum over -x terms */
        return FAD_PI * FAD_PI / fad_sinpi2(x) - fad_hzeta_int(2.0, 1.0 - x);
    f = tgamma(n + 1.0);
    if (fmod(n, 2.0) == 0.0) f = -f;
    return f * fad_hzeta_int(n + 1.0, x);
}

/* scipy.special.gammasgn: the sign of gamma(x); nan at the poles x = -1, -2, ... */
static inline double fad_gammasgn(double x) {
    if (x != x) return x;
    if (x > 0.0) return 1.0;
    if (x == 0.0) return signbit(x) ? -1.0 : 1.0;
    if (x == floor(x)) return NAN;
    return fmod(floor(x), 2.0) == 0.0 ? 1.0 : -1.0;
}

/* log|gamma(x)|; -inf at -inf, as scipy.special.gammaln (C's lgamma gives +inf) */
static inline double fad_gammaln(double x) {
    return x == -INFINITY ? x : lgamma(x);
}

/* d2/dx2 gamma(x) = gamma(x) (psi(x)^2 + psi'(x)) */
static inline double fad_d2gamma(double x, double r) {
    double p = fad_digamma(x);
    return r * (p * p + fad_polygamma(1.0, x));
}

static inline double fad_logit(double x) {
    if (x >= 0.25 && x <= 0.75) return log1p((2.0 * x - 1.0) / (1.0 - x));  /* both exact */
    return log(x / (1.0 - x));
}

/* scipy.special.entr: -x log x, 0 at 0, -inf for x < 0 */
static inline double fad_entr(double x) {
    if (x > 0.0) return -x * log(x);
    if (x == 0.0) return 0.0;
    if (x != x) return x;
    return -INFINITY;
}

/* xlogy, xlog1py: 0 where x == 0 (y not nan), as SciPy; their y-partial x / y is 0
 * there too (JAX), so a gradient at x = 0 is finite even at y = 0. */
static inline double fad_xlogy(double x, double y) {
    if (x == 0.0 && y == y) return 0.0;
    return x * log(y);
}
static inline double fad_xlog1py(double x, double y) {
    if (x == 0.0 && y == y) return 0.0;
    return x * log1p(y);
}
static inline double fad_xdivy(double x, double y) {
    return x == 0.0 ? 0.0 : x / y;
}

/* Modified Bessel functions of the first kind, orders 0..3, and their exponentially
 * scaled forms e^-|x| I_n(x).  |x| <= 20: the power series sum (x/2)^(2k+n) /
 * (k! (k+n)!), whose terms are all positive; beyond, the asymptotic expansion
 * e^-x I_n(x) ~ (2 pi x)^-1/2 sum_k (-1)^k prod_{j<=k} (4n^2 - (2j-1)^2) / (k! (8x)^k),
 * whose smallest term (k ~ 2x) is ~e^-2x < 5e-18 there. */
static inline double fad_bessel_series(int n, double x) {   /* x >= 0 */
    double h = 0.5 * x, q = h * h, term = 1.0, sum;
    int k;
    for (k = 1; k <= n; k++) term *= h / k;
    sum = term;
    for (k = 1; k < 200 && term > 1e-17 * sum; k++) {
        term *= q / ((double)k * (double)(k + n));
        sum += term;
    }
    return sum;
}
static inline double fad_bessel_asym(int n, double x) {     /* x > 20, scaled */
    double mu = 4.0 * n * n, term = 1.0, sum = 1.0, prev = 2.0;
    int k;
    for (k = 1; k < 100; k++) {
        term *= ((2.0 * k - 1.0) * (2.0 * k - 1.0) - mu) / (8.0 * k * x);
        if (fabs(term) >= prev) break;        /* the asymptotic series turns */
        sum += term;
        prev = fabs(term);
        if (prev < 1e-17 * fabs(sum)) break;
    }
    return sum / sqrt(2.0 * FAD_PI * x);
}
/* I_n(x), or e^-|x| I_n(x) when scaled */
static inline double fad_bessel_i(int n, double x, int scaled) {
    double ax = fabs(x), v;
    if (x != x) return x;
    if (ax == INFINITY) v = scaled ? 0.0 : INFINITY;
    else if (ax <= 20.0) v = fad_bessel_series(n, ax) * (scaled ? exp(-ax) : 1.0);
    else v = fad_bessel_asym(n, ax) * (scaled ? 1.0 : exp(ax));
    return (x < 0.0 && (n & 1)) ? -v : v;
}
static inline double fad_i0(double x) { return fad_bessel_i(0, x, 0); }
static inline double fad_i1(double x) { return fad_bessel_i(1, x, 0); }
static inline double fad_i0e(double x) { return fad_bessel_i(0, x, 1); }
static inline double fad_i1e(double x) { return fad_bessel_i(1, x, 1); }

/* I1'(x) = I0(x) - I1(x) / x, 1/2 at 0 */
static inline double fad_di1(double x, double r) {
    if (x == 0.0) return 0.5;
    return fad_i0(x) - r / x;
}
/* (e^-|x| I1(x))' = i0e(x) - sign(x) i1e(x) - i1e(x) / x, 1/2 at 0 */
static inline double fad_di1e(double x, double r) {
    if (x == 0.0) return 0.5;
    return fad_i0e(x) - fad_sign(x) * r - r / x;
}
/* Second derivatives from I0'' = (I0 + I2) / 2, I1'' = (3 I1 + I3) / 4 (no
 * cancellation near 0) and (e^-sx I)'' = e^-sx (I'' - 2 s I' + s^2 I), s = sign(x). */
static inline double fad_d2i0(double x) {
    return 0.5 * (fad_bessel_i(0, x, 0) + fad_bessel_i(2, x, 0));
}
static inline double fad_d2i1(double x) {
    return 0.25 * (3.0 * fad_bessel_i(1, x, 0) + fad_bessel_i(3, x, 0));
}
static inline double fad_d2i0e(double x) {
    double s = fad_sign(x), e0 = fad_bessel_i(0, x, 1), e1 = fad_bessel_i(1, x, 1);
    return 0.5 * (e0 + fad_bessel_i(2, x, 1)) - 2.0 * s * e1 + s * s * e0;
}
static inline double fad_d2i1e(double x) {
    double s = fad_sign(x), e0 = fad_bessel_i(0, x, 1), e1 = fad_bessel_i(1, x, 1);
    return 0.25 * (3.0 * e1 + fad_bessel_i(3, x, 1)) - s * (e0 + fad_bessel_i(2, x, 1))
        + s * s * e1;
}

#endif /* FASTAD_NUMERICS_H */
