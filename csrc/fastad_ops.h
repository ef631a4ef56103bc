/* The op table: every scalar primitive of fastad, declared exactly once.
 *
 * Each row gives an op's value, its first partials and its second partials as C
 * expressions in the arguments `a`, `b` and the already computed result `r`, plus
 * the interval its tests sample (test_lo, test_hi per argument).  Everything else is
 * generated from these rows:
 *   - the op-code enum and the name/arity tables below;
 *   - fad_eval() (value and first partials: recording and replay) and
 *     fad_second() (second partials: forward-over-reverse sweeps);
 *   - by tools/gen_ops.py at build time: fastad/_op_codes.pxi, the op codes for
 *     fastad/_core.pxd (the one Cython declaration of this header), and
 *     fastad/_ops.pxi, the Python-level math
 *     functions (fd.sin, ...) and the table tests walk (tests/test_primitives.py).
 * Adding a primitive is one row here plus its test expectations.
 *
 * Each binary row also yields two "constant operand" ops, NAME_C1 (var op c) and
 * NAME_C0 (c op var).  They keep the variable in argument slot `a` and the constant
 * in the `db` field of the tape, so that the reverse sweep stays a uniform
 * `adj[a] += da * g; adj[b] += db * g` with b pointing at the sentinel slot 0.
 */
#ifndef FASTAD_OPS_H
#define FASTAD_OPS_H

#include <math.h>
#include "fastad_numerics.h"

/* X(NAME, "python name", value, d/da, d2/da2, test_lo, test_hi)
 *
 * arcsin, arccos and arctanh write 1 - a^2 as (1 - a) * (1 + a), and arccosh's
 * second partial a^2 - 1 as (a - 1) * (a + 1): near |a| = 1, a*a is rounded before
 * the cancellation, a relative error of ~1e-16 / (1 - |a|) (5e-8 at 1 - 1e-9),
 * while 1 - a is exact there and the product rounds once. */
#define FAD_UNARY_OPS(X)                                                           \
  X(COPY,     "positive", a,               1.0,                   0.0,              -3.0, 3.0) \
  X(NEG,      "negative", -a,              -1.0,                  0.0,              -3.0, 3.0) \
  X(SIN,      "sin",      sin(a),          cos(a),                -r,               -3.0, 3.0) \
  X(COS,      "cos",      cos(a),          -sin(a),               -r,               -3.0, 3.0) \
  X(TAN,      "tan",      tan(a),          1.0 + r * r,           2.0 * r * (1.0 + r * r), -1.2, 1.2) \
  X(ARCSIN,   "arcsin",   asin(a),         1.0 / sqrt((1.0 - a) * (1.0 + a)), a / pow((1.0 - a) * (1.0 + a), 1.5), -0.9, 0.9) \
  X(ARCCOS,   "arccos",   acos(a),         -1.0 / sqrt((1.0 - a) * (1.0 + a)), -a / pow((1.0 - a) * (1.0 + a), 1.5), -0.9, 0.9) \
  X(ARCTAN,   "arctan",   atan(a),         1.0 / (1.0 + a * a),   -2.0 * a / ((1.0 + a * a) * (1.0 + a * a)), -3.0, 3.0) \
  X(SINH,     "sinh",     sinh(a),         cosh(a),               r,                -3.0, 3.0) \
  X(COSH,     "cosh",     cosh(a),         sinh(a),               r,                -3.0, 3.0) \
  X(TANH,     "tanh",     tanh(a),         fad_dtanh(a, r),       -2.0 * r * fad_dtanh(a, r), -3.0, 3.0) \
  X(ARCSINH,  "arcsinh",  asinh(a),        1.0 / hypot(a, 1.0),   -a / pow(a * a + 1.0, 1.5), -3.0, 3.0) \
  X(ARCCOSH,  "arccosh",  acosh(a),        1.0 / (sqrt(a - 1.0) * sqrt(a + 1.0)), -a / pow((a - 1.0) * (a + 1.0), 1.5), 1.1, 4.0) \
  X(ARCTANH,  "arctanh",  atanh(a),        1.0 / ((1.0 - a) * (1.0 + a)), 2.0 * a / (((1.0 - a) * (1.0 + a)) * ((1.0 - a) * (1.0 + a))), -0.9, 0.9) \
  X(EXP,      "exp",      exp(a),          r,                     r,                -3.0, 3.0) \
  X(EXP2,     "exp2",     exp2(a),         r * FAD_LN2,           r * FAD_LN2 * FAD_LN2, -3.0, 3.0) \
  X(EXPM1,    "expm1",    expm1(a),        exp(a),                exp(a),           -3.0, 3.0) \
  X(LOG,      "log",      log(a),          1.0 / a,               -1.0 / (a * a),   0.1, 5.0) \
  X(LOG2,     "log2",     log2(a),         1.0 / (a * FAD_LN2),   -1.0 / (a * a * FAD_LN2), 0.1, 5.0) \
  X(LOG10,    "log10",    log10(a),        1.0 / (a * FAD_LN10),  -1.0 / (a * a * FAD_LN10), 0.1, 5.0) \
  X(LOG1P,    "log1p",    log1p(a),        1.0 / (1.0 + a),       -1.0 / ((1.0 + a) * (1.0 + a)), -0.9, 5.0) \
  X(SQRT,     "sqrt",     sqrt(a),         0.5 / r,               -0.25 / (r * r * r), 0.1, 5.0) \
  X(CBRT,     "cbrt",     cbrt(a),         1.0 / (3.0 * r * r),   -2.0 / (9.0 * r * r * r * r * r), 0.1, 5.0) \
  X(SQUARE,   "square",   a * a,           2.0 * a,               2.0,              -3.0, 3.0) \
  X(ABS,      "abs",      fabs(a),         fad_dabs(a),           0.0,              -3.0, 3.0) \
  X(SIGN,     "sign",     fad_sign(a),     0.0,                   0.0,              -3.0, 3.0) \
  X(FLOOR,    "floor",    floor(a),        0.0,                   0.0,              -3.0, 3.0) \
  X(CEIL,     "ceil",     ceil(a),         0.0,                   0.0,              -3.0, 3.0) \
  X(ERF,      "erf",      erf(a),          FAD_2_SQRTPI * exp(-a * a), -2.0 * a * FAD_2_SQRTPI * exp(-a * a), -2.5, 2.5) \
  X(ERFC,     "erfc",     erfc(a),         -FAD_2_SQRTPI * exp(-a * a), 2.0 * a * FAD_2_SQRTPI * exp(-a * a), -2.5, 2.5) \
  X(SIGMOID,  "sigmoid",  fad_sigmoid(a),  fad_dsigmoid(a),       fad_dsigmoid(a) * (1.0 - 2.0 * r), -5.0, 5.0) \
  X(RELU,     "relu",     fad_relu(a),     fad_step(a),           0.0,              -3.0, 3.0) \
  X(SOFTPLUS, "softplus", fad_softplus(a), fad_sigmoid(a),        fad_dsigmoid(a),  -5.0, 5.0) \
  /* special functions (fd.special; scipy.special's names and conventions) */     \
  X(GAMMALN,  "gammaln",  fad_gammaln(a), fad_digamma(a),        fad_polygamma(1.0, a), 0.2, 6.0) \
  X(DIGAMMA,  "digamma",  fad_digamma(a),  fad_polygamma(1.0, a), fad_polygamma(2.0, a), 0.2, 6.0) \
  X(GAMMA,    "gamma",    tgamma(a),       r * fad_digamma(a),    fad_d2gamma(a, r), 0.2, 5.0) \
  X(GAMMASGN, "gammasgn", fad_gammasgn(a), 0.0,                   0.0,              0.2, 3.0) \
  X(ERFINV,   "erfinv",   fad_erfinv(a),   FAD_SQRTPI_2 * exp(r * r), \
              2.0 * r * (FAD_SQRTPI_2 * exp(r * r)) * (FAD_SQRTPI_2 * exp(r * r)), -0.9, 0.9) \
  X(ERFCX,    "erfcx",    fad_erfcx(a),    2.0 * a * r - FAD_2_SQRTPI, \
              2.0 * r + 2.0 * a * (2.0 * a * r - FAD_2_SQRTPI),       -2.0, 5.0) \
  X(NDTR,     "ndtr",     fad_ndtr(a),     FAD_1_SQRT2PI * exp(-0.5 * a * a), \
              -a * FAD_1_SQRT2PI * exp(-0.5 * a * a),                 -4.0, 4.0) \
  X(LOG_NDTR, "log_ndtr", fad_log_ndtr(a), FAD_SQRT_2_PI / fad_erfcx(-a * FAD_SQRT1_2), \
              fad_d2log_ndtr(a),                                      -6.0, 4.0) \
  X(NDTRI,    "ndtri",    fad_ndtri(a),    FAD_SQRT2PI * exp(0.5 * r * r), \
              r * (FAD_SQRT2PI * exp(0.5 * r * r)) * (FAD_SQRT2PI * exp(0.5 * r * r)), 0.05, 0.95) \
  X(LOGIT,    "logit",    fad_logit(a),    1.0 / (a * (1.0 - a)), \
              (2.0 * a - 1.0) / ((a * (1.0 - a)) * (a * (1.0 - a))),  0.05, 0.95) \
  X(ENTR,     "entr",     fad_entr(a),     -1.0 - log(a),         -1.0 / a,         0.1, 3.0) \
  X(I0,       "i0",       fad_i0(a),       fad_i1(a),             fad_d2i0(a),      -4.0, 4.0) \
  X(I0E,      "i0e",      fad_i0e(a),      fad_i1e(a) - fad_sign(a) * r, fad_d2i0e(a), -4.0, 4.0) \
  X(I1,       "i1",       fad_i1(a),       fad_di1(a, r),         fad_d2i1(a),      -4.0, 4.0) \
  X(I1E,      "i1e",      fad_i1e(a),      fad_di1e(a, r),        fad_d2i1e(a),     -4.0, 4.0)

/* X(NAME, "python name", value, d/da, d/db, d2/da2, d2/dadb, d2/db2,
 *   a_lo, a_hi, b_lo, b_hi) */
#define FAD_BINARY_OPS(X)                                                          \
  X(ADD,      "add",      a + b,  1.0,   1.0,    0.0, 0.0, 0.0,          -3.0, 3.0, -3.0, 3.0) \
  X(SUB,      "subtract", a - b,  1.0,   -1.0,   0.0, 0.0, 0.0,          -3.0, 3.0, -3.0, 3.0) \
  X(MUL,      "multiply", a * b,  b,     a,      0.0, 1.0, 0.0,          -3.0, 3.0, -3.0, 3.0) \
  X(DIV,      "divide",   a / b,  1.0 / b, -r / b, 0.0, -1.0 / (b * b), 2.0 * r / (b * b), -3.0, 3.0, 0.5, 3.0) \
  X(POW,      "power",    pow(a, b), fad_pow_dx(a, b), fad_pow_dy(a, r), \
              fad_pow_dxx(a, b), fad_pow_dxy(a, b), fad_pow_dyy(a, r),  0.2, 3.0, -2.0, 2.0) \
  X(ARCTAN2,  "arctan2",  atan2(a, b), b / (a * a + b * b), -a / (a * a + b * b), \
              -2.0 * a * b / ((a * a + b * b) * (a * a + b * b)), \
              (a * a - b * b) / ((a * a + b * b) * (a * a + b * b)), \
              2.0 * a * b / ((a * a + b * b) * (a * a + b * b)),       -3.0, 3.0, -3.0, 3.0) \
  X(HYPOT,    "hypot",    hypot(a, b), fad_hypot_d(a, b, r), fad_hypot_d(b, a, r), \
              fad_div0(fad_hypot_d(b, a, r) * fad_hypot_d(b, a, r), r), \
              fad_div0(-fad_hypot_d(a, b, r) * fad_hypot_d(b, a, r), r), \
              fad_div0(fad_hypot_d(a, b, r) * fad_hypot_d(a, b, r), r), \
                                                                        -3.0, 3.0, -3.0, 3.0) \
  X(MAXIMUM,  "maximum",  fad_max(a, b), fad_dmax_a(a, b), fad_dmax_a(b, a), 0.0, 0.0, 0.0, -3.0, 3.0, -3.0, 3.0) \
  X(MINIMUM,  "minimum",  fad_min(a, b), fad_dmin_a(a, b), fad_dmin_a(b, a), 0.0, 0.0, 0.0, -3.0, 3.0, -3.0, 3.0) \
  X(MOD,      "mod",      fad_mod(a, b), 1.0, -floor(a / b),    0.0, 0.0, 0.0, -3.0, 3.0, 0.7, 3.0) \
  X(FLOORDIV, "floor_divide", fad_floordiv(a, b), 0.0, 0.0,      0.0, 0.0, 0.0, -3.0, 3.0, 0.7, 3.0) \
  /* polygamma(n, x): n a constant integer (rounded here; the front end refuses    \
   * others), so its n-partials are 0 */                                          \
  X(POLYGAMMA, "polygamma", fad_polygamma(a, b), 0.0, fad_polygamma(a + 1.0, b), \
              0.0, 0.0, fad_polygamma(a + 2.0, b),                    0.8, 1.2, 0.3, 5.0) \
  X(XLOGY,    "xlogy",    fad_xlogy(a, b), log(b), fad_xdivy(a, b), \
              0.0, 1.0 / b, -fad_xdivy(a, b * b),                     -2.0, 2.0, 0.2, 3.0) \
  X(XLOG1PY,  "xlog1py",  fad_xlog1py(a, b), log1p(b), fad_xdivy(a, 1.0 + b), \
              0.0, 1.0 / (1.0 + b), -fad_xdivy(a, (1.0 + b) * (1.0 + b)), -2.0, 2.0, -0.8, 3.0)

/* ---- generated below: nothing to edit when adding an op ---------------------- */

enum fad_op {
    FAD_VAR = 0,     /* a differentiated leaf (and the sentinel slot 0) */
    FAD_PARAM,       /* a leaf that is not differentiated (trace parameters) */
    FAD_CONST,       /* a constant leaf (a number inside fd.stack, say) */
    FAD_BLOCK,       /* one element of an array op's output, written by its kernel */
#define FAD_ENUM_UNARY(N, ...) FAD_##N,
    FAD_UNARY_OPS(FAD_ENUM_UNARY)
#undef FAD_ENUM_UNARY
#define FAD_ENUM_BINARY(N, ...) FAD_##N, FAD_##N##_C1, FAD_##N##_C0,
    FAD_BINARY_OPS(FAD_ENUM_BINARY)
#undef FAD_ENUM_BINARY
    FAD_NUM_SCALAR_OPS
};

/* How an op uses its tape slot:
 *   FAD_KIND_LEAF    no arguments;
 *   FAD_KIND_UNARY   one variable argument `a`; `db` is 0;
 *   FAD_KIND_CONST   one variable argument `a` and a constant held in `db`;
 *   FAD_KIND_BINARY  two variable arguments `a`, `b` with partials `da`, `db`. */
enum fad_kind { FAD_KIND_LEAF = 0, FAD_KIND_UNARY, FAD_KIND_CONST, FAD_KIND_BINARY };

static const unsigned char fad_op_kind[FAD_NUM_SCALAR_OPS] = {
    FAD_KIND_LEAF, FAD_KIND_LEAF, FAD_KIND_LEAF, FAD_KIND_LEAF,
#define FAD_KIND_U(N, ...) FAD_KIND_UNARY,
    FAD_UNARY_OPS(FAD_KIND_U)
#undef FAD_KIND_U
#define FAD_KIND_B(N, ...) FAD_KIND_BINARY, FAD_KIND_CONST, FAD_KIND_CONST,
    FAD_BINARY_OPS(FAD_KIND_B)
#undef FAD_KIND_B
};

static const char *const fad_op_name[FAD_NUM_SCALAR_OPS] = {
    "var", "param", "const", "block",
#define FAD_NAME_U(N, PY, ...) PY,
    FAD_UNARY_OPS(FAD_NAME_U)
#undef FAD_NAME_U
#define FAD_NAME_B(N, PY, ...) PY, PY, PY,
    FAD_BINARY_OPS(FAD_NAME_B)
#undef FAD_NAME_B
};

/* Value and first partials.
 *   op of kind UNARY:  x is the argument; *dx = d/dx.  y is ignored.
 *   op of kind BINARY: f(x, y); *dx, *dy are the partials.
 *   NAME_C1:           f(x, y) with y the constant; *dx = d/dx.
 *   NAME_C0:           f(y, x) with y the constant; *dx = d/dx (the 2nd partial).
 * Leaves return x.  Unknown op codes return NaN, never read out of bounds. */
/* Always inlined: it is the body of every interpreter loop (replay, recording,
 * sweeps), where a call per operation costs a third of the replay's time.  GCC
 * stopped inlining it into _replay.c's loops once that file called it from a third
 * place (measured: tf.grad of a 9,000-op trace 26.5 us -> 36 us). */
#if defined(__GNUC__) || defined(__clang__)
#define FAD_HOT_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FAD_HOT_INLINE static __forceinline
#else
#define FAD_HOT_INLINE static inline
#endif

FAD_HOT_INLINE double fad_eval(int op, double x, double y, double *dx, double *dy) {
    double a, b, r;
    (void)b;
    switch (op) {
    case FAD_VAR:
    case FAD_PARAM:
    case FAD_CONST:
    case FAD_BLOCK:
        *dx = 0.0; *dy = 0.0;
        return x;
#define FAD_EVAL_U(N, PY, VAL, D1, D2, LO, HI)                                     \
    case FAD_##N:                                                                  \
        a = x; r = (VAL); *dx = (D1); *dy = 0.0; return r;
    FAD_UNARY_OPS(FAD_EVAL_U)
#undef FAD_EVAL_U
#define FAD_EVAL_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI)          \
    case FAD_##N:                                                                  \
        a = x; b = y; r = (VAL); *dx = (DA); *dy = (DB); return r;                \
    case FAD_##N##_C1:                                                             \
        a = x; b = y; r = (VAL); *dx = (DA); *dy = y; return r;                   \
    case FAD_##N##_C0:                                                             \
        a = y; b = x; r = (VAL); *dx = (DB); *dy = y; return r;
    FAD_BINARY_OPS(FAD_EVAL_B)
#undef FAD_EVAL_B
    default:
        *dx = 0.0; *dy = 0.0;
        return NAN;
    }
}

/* Second partials at (x, y) with result r, in the same argument convention as
 * fad_eval: for UNARY and the constant forms only *dxx is meaningful. */
static inline void fad_second(int op, double x, double y, double r,
                              double *dxx, double *dxy, double *dyy) {
    double a, b;
    (void)b;
    *dxy = 0.0; *dyy = 0.0;
    switch (op) {
#define FAD_SECOND_U(N, PY, VAL, D1, D2, LO, HI)                                   \
    case FAD_##N: a = x; *dxx = (D2); return;
    FAD_UNARY_OPS(FAD_SECOND_U)
#undef FAD_SECOND_U
#define FAD_SECOND_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI)        \
    case FAD_##N: a = x; b = y; *dxx = (DAA); *dxy = (DAB); *dyy = (DBB); return;   \
    case FAD_##N##_C1: a = x; b = y; *dxx = (DAA); return;                        \
    case FAD_##N##_C0: a = y; b = x; *dxx = (DBB); return;
    FAD_BINARY_OPS(FAD_SECOND_B)
#undef FAD_SECOND_B
    default:
        *dxx = 0.0;
        return;
    }
}

#endif /* FASTAD_OPS_H */
