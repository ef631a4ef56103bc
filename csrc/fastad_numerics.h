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

#endif /* FASTAD_NUMERICS_H */
