/* Vectorised kernels for array records, generated from the op table rows.
 *
 * Nothing here is a second table: every case below expands the value and partial
 * expressions of the rows in fastad_ops.h.  The op switch sits outside the loops,
 * so each case is a plain loop the compiler can vectorise (the scalar fad_eval
 * switches once per element).
 *
 * Operand x is read at x[k * sx]: stride 1 for an operand of the output's shape,
 * stride 0 for a scalar broadcast over it.  Adjoint targets ga, gb may be NULL
 * (constant operand) and use the same stride convention, so a stride-0 target
 * accumulates the sum over k (the unbroadcast of a scalar operand).
 */
#ifndef FASTAD_VEC_H
#define FASTAD_VEC_H

#include <stddef.h>
#include "fastad_ops.h"

/* r[k] = value of op at (a[k*sa], b[k*sb]).  op is a unary or a plain binary code
 * (not a _C1/_C0 form: a constant operand is passed as an array).  Returns -1 for
 * an op code that has no value rule. */
static int fad_value_array(int op, ptrdiff_t n, const double *A, ptrdiff_t sa,
                           const double *B, ptrdiff_t sb, double *R) {
    ptrdiff_t k;
    switch (op) {
#define FAD_VAL_U(N, PY, VAL, D1, D2, LO, HI)                                      \
    case FAD_##N:                                                                  \
        for (k = 0; k < n; k++) { const double a = A[k * sa]; R[k] = (VAL); }      \
        return 0;
    FAD_UNARY_OPS(FAD_VAL_U)
#undef FAD_VAL_U
#define FAD_VAL_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI)           \
    case FAD_##N:                                                                  \
        for (k = 0; k < n; k++) {                                                  \
            const double a = A[k * sa], b = B[k * sb]; R[k] = (VAL);               \
        }                                                                          \
        return 0;
    FAD_BINARY_OPS(FAD_VAL_B)
#undef FAD_VAL_B
    default:
        return -1;
    }
}

/* Vector-Jacobian product, accumulated in place:
 *     ga[k*sga] += g[k] * d op / d a,   gb[k*sgb] += g[k] * d op / d b
 * at a = A[k*sa], b = B[k*sb], r = R[k].  A zero g[k] contributes nothing (the
 * reverse sweep's absolute-zero rule: no 0 * inf = NaN from an unselected branch).
 * Returns -1 for an op code without partials. */
static int fad_vjp_array(int op, ptrdiff_t n, const double *A, ptrdiff_t sa,
                         const double *B, ptrdiff_t sb, const double *R,
                         const double *G, double *GA, ptrdiff_t sga,
                         double *GB, ptrdiff_t sgb) {
    ptrdiff_t k;
    switch (op) {
#define FAD_VJP_U(N, PY, VAL, D1, D2, LO, HI)                                      \
    case FAD_##N:                                                                  \
        if (GA)                                                                    \
            for (k = 0; k < n; k++) {                                              \
                const double a = A[k * sa], r = R[k], g = G[k];                    \
                (void)a; (void)r;                                                  \
                GA[k * sga] += g != 0.0 ? g * (D1) : 0.0;                          \
            }                                                                      \
        return 0;
    FAD_UNARY_OPS(FAD_VJP_U)
#undef FAD_VJP_U
#define FAD_VJP_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI)           \
    case FAD_##N:                                                                  \
        if (GA)                                                                    \
            for (k = 0; k < n; k++) {                                              \
                const double a = A[k * sa], b = B[k * sb], r = R[k], g = G[k];     \
                (void)a; (void)b; (void)r;                                         \
                GA[k * sga] += g != 0.0 ? g * (DA) : 0.0;                          \
            }                                                                      \
        if (GB)                                                                    \
            for (k = 0; k < n; k++) {                                              \
                const double a = A[k * sa], b = B[k * sb], r = R[k], g = G[k];     \
                (void)a; (void)b; (void)r;                                         \
                GB[k * sgb] += g != 0.0 ? g * (DB) : 0.0;                          \
            }                                                                      \
        return 0;
    FAD_BINARY_OPS(FAD_VJP_B)
#undef FAD_VJP_B
    default:
        return -1;
    }
}

#endif /* FASTAD_VEC_H */
