"""Linear algebra primitives (API.md section 13): numpy.linalg solve, inv, det,
slogdet and cholesky on Vars, batched over leading axes as NumPy is.

Each is one registry entry with explicit rules (forward / vjp / jvp / second /
shape), run by the one generic record (fastad._generic).  The rules are JAX's:
solves rather than inverses in the vjps (solve's cotangent of b is a solve with
A^T), the inverse only where the whole of it is the answer (inv's own output, the
A^-T of d log|det A|, computed once per record and kept in `res`), and Cholesky's
tangent symmetrised (NumPy reads only the lower triangle; the derivative is that
of the symmetric matrix, as in JAX).  slogdet is a front end: the sign is a
constant (piecewise), log|det| the primitive "logabsdet".

Directions ride on a leading axis k (T, G, Gd are (k,) + shape); the values have
no k axis, and matmul / np.linalg.solve broadcast them against it.

One factorisation per record: solve, det and slogdet factor their matrix in the
forward (a triangle as it is, a Cholesky factor when the matrix is exactly
symmetric and positive definite, else LU) and keep it in `res` for every rule;
cholesky's rules are sandwiches with the factor (LAPACK's sygst), no inverse.
With SciPy these call its LAPACK and BLAS (imported at first use, never by
`import fastad`); without it, and for stacks, NumPy's solve and inv, the same
values to rounding.  The flop counts are in the helpers' docstrings.
"""
import importlib
from typing import Any, List

import numpy as np

from fastad import _generic
from fastad._registry import Primitive, declare, test_row as _row
from fastad._tape import Var


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _fname(name):
    return "numpy.linalg." + name


def _square(name, argname, s):
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError("%s: argument %s must be a square matrix or a stack of them "
                         "(shape (..., n, n)), got shape %s" % (_fname(name), argname,
                                                                tuple(s)))


def _linalg(name, f, *args):
    """f(*args), a LinAlgError (singular, not positive definite) naming the function."""
    try:
        return f(*args)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError("%s: %s" % (_fname(name), e)) from None


def _is_var(*xs):
    return any(type(x) is Var for x in xs)


def _value(x):
    return x.value if type(x) is Var else np.asarray(x, dtype=np.float64)


def _none_or(needs, i, g):
    return g if needs >> i & 1 else None


# ----------------------------------------------------------------------------------
# solve(a, b): b a vector when b.ndim == 1 (NumPy 2), else a stack of matrices;
# NumPy 1 also took a b of a.ndim - 1 dimensions as a stack of vectors, and the
# rules follow the NumPy that is installed (its solve computes the value)
_NUMPY1 = int(np.__version__.split(".")[0]) < 2


def _is_vec(ndim_a, ndim_b):
    return ndim_b == 1 or (_NUMPY1 and ndim_b == ndim_a - 1)


def _solve_shape(shapes, p):
    sa, sb = (tuple(s) for s in shapes)
    _square("solve", "a", sa)
    n = sa[-1]
    if _is_vec(len(sa), len(sb)):
        if sb[-1] != n:
            raise ValueError("%s: argument b of shape %s does not match a of shape %s"
                             % (_fname("solve"), sb, sa))
        try:
            return np.broadcast_shapes(sa[:-2], sb[:-1]) + (n,)
        except ValueError:
            raise ValueError("%s: the batch shapes of a %s and b %s do not broadcast"
                             % (_fname("solve"), sa, sb)) from None
    if len(sb) < 2 or sb[-2] != n:
        raise ValueError("%s: argument b of shape %s does not match a of shape %s "
                         "(b must be (n,) or (..., n, k))" % (_fname("solve"), sb, sa))
    try:
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError("%s: the batch shapes of a %s and b %s do not broadcast"
                         % (_fname("solve"), sa, sb)) from None
    return batch + sb[-2:]


def _triangle(a):
    """True (lower) or False (upper) for a triangular 2-D matrix, else None: an
    O(n^2) look (no temporary: cached masks) that lets a solve with a Cholesky
    factor cost a triangular solve, not an LU factorisation."""
    if a.ndim != 2 or a.shape[0] < 2:
        return None
    n = a.shape[0]
    if not np.any(a, where=_tri_mask(n, 1)):
        return True
    if not np.any(a, where=_tri_mask(n, -1)):
        return False
    return None


def _tri_mask(n, k):
    """A bool n x n mask: the triangle on and below the diagonal (k = 0), strictly
    above it (k = 1) or strictly below it (k = -1); cached up to n = 2048 (4 MB a
    mask), made afresh above (O(n^2) beside the O(n^3) it serves)."""
    return _cached_mask(n, k) if n <= 2048 else _make_mask(n, k)


def _make_mask(n, k):
    if k == 0:
        return np.tri(n, dtype=bool)
    return ~np.tri(n, dtype=bool) if k == 1 else np.tri(n, k=-1, dtype=bool)


_masks: dict = {}      # (n, k) -> read-only mask, at most 8 (a plain dict: racing
                       # threads at worst both make the same mask)


def _cached_mask(n, k):
    m = _masks.get((n, k))
    if m is None:
        m = _make_mask(n, k)
        m.flags.writeable = False
        if len(_masks) >= 8:
            _masks.clear()
        _masks[(n, k)] = m
    return m


def _solve_factor(a):
    """How solves with a (and a^T) go, found once per record and kept in its res:
    ("tri", lower) for a triangular a (a triangular solve, n^2 per right-hand
    side); with SciPy and a 2-D a, ("chol", L) for an exactly symmetric positive
    definite a (n^3 / 3 flops) or ("lu", lu, piv), the LU factors of a^T
    (2 n^3 / 3); None otherwise (numpy.linalg.solve, an LU per solve).  The
    vjp's solve with a^T then costs n^2 per right-hand side, not another
    factorisation.  LinAlgError when a is singular."""
    lower = _triangle(a)
    if lower is not None:
        if not np.diagonal(a).all():
            raise np.linalg.LinAlgError("%s: Singular matrix" % _fname("solve"))
        return ("tri", lower)
    lb = _lapack()
    if lb is None or a.ndim != 2 or a.shape[-1] == 0:
        return None
    L = _spd_factor(a)
    if L is not None:
        return ("chol", L)
    # a.T: the Fortran-order view of C-order a, factored without a transposing copy
    lu, piv, info = lb[0].dgetrf(a.T)
    if info > 0:
        raise np.linalg.LinAlgError("%s: Singular matrix" % _fname("solve"))
    return ("lu", lu, piv)


def _fsolve(f, a, B, trans):
    """op(a)^-1 B (op: transpose when `trans`) by the factorisation f of
    _solve_factor, B in matrix form (..., n, m) with any leading (direction,
    batch) axes."""
    if f is None:
        return np.linalg.solve(_mT(a) if trans else a, B)
    if f[0] == "tri":
        return triangular_solve(a, B, f[1], trans)
    lb = _lapack()
    n = a.shape[-1]
    flat = np.moveaxis(B, -2, 0)                 # (n, ..., m): one right-hand side
    B2 = flat.reshape(n, -1)
    if f[0] == "chol":
        # C-order L is its upper factor U = L^T in Fortran order: a = U^T U
        X, info = lb[0].dpotrs(f[1].T, B2, lower=0)
    else:
        # f holds a^T's factors: a x = b is (a^T)^T x = b
        X, info = lb[0].dgetrs(f[1], f[2], B2, trans=0 if trans else 1)
    return np.moveaxis(X.reshape(flat.shape), 0, -2)


def _solve_forward(values, p):
    a, b = values
    f = _solve_factor(a)
    if f is None:
        return _linalg("solve", np.linalg.solve, a, b), None
    vec = _is_vec(a.ndim, b.ndim)
    return _uncol(_fsolve(f, a, _col(b, vec), False), vec), f


def _factor_of(a, res):
    # res is None for a record whose forward has not run (read from a file)
    return res if res is not None else _solve_factor(a)


def _col(x, vec):
    return x[..., None] if vec else x


def _uncol(x, vec):
    return x[..., 0] if vec else x


def _solve_vjp(values, out, res, G, p, needs):
    a, b = values
    vec = _is_vec(a.ndim, b.ndim)
    bbar = _fsolve(_factor_of(a, res), a, _col(G, vec), True)
    abar = -bbar @ _mT(_col(out, vec)) if needs & 1 else None
    return abar, _none_or(needs, 1, _uncol(bbar, vec))


def _solve_dx(a, f, x, T, vec):
    """The tangent of x = a^-1 b in matrix form (x and the result (..., n, k))."""
    ta, tb = T
    rhs = 0.0
    if tb is not None:
        rhs = _col(tb, vec)
    if ta is not None:
        rhs = rhs - ta @ x
    return _fsolve(f, a, np.broadcast_to(rhs, np.broadcast_shapes(
        np.shape(rhs), (1,) + x.shape)), False)


def _solve_jvp(values, out, res, T, p):
    a, b = values
    vec = _is_vec(a.ndim, b.ndim)
    return _uncol(_solve_dx(a, _factor_of(a, res), _col(out, vec), T, vec), vec)


def _solve_second(values, out, res, T, g, Gd, p, needs):
    a, b = values
    vec = _is_vec(a.ndim, b.ndim)
    ga, gb = _solve_vjp(values, out, res, Gd, p, needs)
    if T[0] is None and T[1] is None:
        return ga, gb
    f = _factor_of(a, res)
    x = _col(out, vec)
    bbar = _fsolve(f, a, _col(np.asarray(g), vec), True)      # no k axis
    dx = _solve_dx(a, f, x, T, vec)
    dbbar = 0.0 if T[0] is None else -_fsolve(f, a, _mT(T[0]) @ bbar, True)
    if gb is not None and T[0] is not None:
        gb = gb + _uncol(dbbar, vec)
    if ga is not None:
        ga = ga - (dbbar @ _mT(x) + bbar @ _mT(dx))
    return ga, gb


# ----------------------------------------------------------------------------------
# inv(a): the output is the whole inverse

def _one_square(name):
    def shape(shapes, p):
        (s,) = shapes
        _square(name, "a", tuple(s))
        return tuple(s)
    return shape


def _inv_forward(values, p):
    return _linalg("inv", np.linalg.inv, values[0]), None


def _inv_vjp(values, out, res, G, p, needs):
    yt = _mT(out)
    return (-(yt @ G @ yt),)


def _inv_jvp(values, out, res, T, p):
    return -(out @ T[0] @ out)


def _inv_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _inv_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    yt = _mT(out)
    dyt = _mT(-(out @ T[0] @ out))
    return (grad - (dyt @ g @ yt + yt @ g @ dyt),)


# ----------------------------------------------------------------------------------
# det(a) and log|det a|: d log|det A| = A^-T, kept in res once computed

def _det_shape(name):
    def shape(shapes, p):
        (s,) = shapes
        _square(name, "a", tuple(s))
        return tuple(s)[:-2]
    return shape


def _inv_t(name, values, res):
    """A^-T of the record's operand, computed once (res is the record's dict) from
    the factorisation its forward kept: A^-1 (symmetric) from the Cholesky factor
    by LAPACK's potri, or from the LU factors by getrs, with SciPy."""
    if "inv_t" not in res:
        res["inv_t"] = _inverse_from(name, values[0], res)
    return res["inv_t"]


def _inverse_from(name, a, res):
    lb = _lapack()
    if "chol" in res:
        L = res["chol"]
        if lb is None or L.ndim != 2:
            # NumPy has no potri: one LU inverse of a is cheaper than inverting
            # the factor through numpy.linalg.solve (an LU of its own) and a product
            return _linalg(name, np.linalg.inv, a)
        # potri: L^-1 (trtri), then L^-T L^-1 (lauum), 2 n^3 / 3 flops; the
        # Fortran-order transpose of C-order L is its upper factor, no copy
        c, info = lb[0].dpotri(L.T, lower=0)
        return _sym_from_lower(c.T)
    if "lu" in res:
        lu, piv = res["lu"]
        if not np.diagonal(lu).all():
            raise np.linalg.LinAlgError("%s: Singular matrix" % _fname(name))
        # (A^T)^-1 by getrs with the identity, 2 n^3 flops: getri's 4 n^3 / 3
        # measure slower in OpenBLAS (0.9 ms against 0.4 ms at n = 200)
        inv_t, info = lb[0].dgetrs(lu, piv, np.eye(a.shape[-1], order="F"),
                                   overwrite_b=1)
        return inv_t
    return _mT(_linalg(name, np.linalg.inv, a))


def _spd_factor(a):
    """The Cholesky factor of a when a is exactly symmetric and positive definite,
    else None: an O(n^2) look, then at most one Cholesky (n^3 / 3 flops), which
    succeeds for every covariance and kernel matrix and fails for any other
    symmetric one (a matrix with NaN too)."""
    if a.shape[-1] == 0 or not np.array_equal(a, _mT(a)):
        return None
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None


def _slogdet_of(name, a):
    """(sign, log|det a|, res): from a Cholesky factor when a is symmetric
    positive definite (sign 1), else from one LU factorisation (SciPy's getrf,
    kept for the gradient's getrs; numpy.linalg.slogdet for stacks or without
    SciPy).  res holds the factorisation the gradient reuses."""
    L = _spd_factor(a)
    if L is not None:
        logabsdet = 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        sign = np.float64(1.0) if a.ndim == 2 else np.ones(a.shape[:-2])
        return sign, logabsdet, {"chol": L}
    lb = _lapack()
    if lb is None or a.ndim != 2 or a.shape[-1] == 0:
        sign, logabsdet = _linalg(name, np.linalg.slogdet, a)
        return sign, logabsdet, {}
    # det a^T = det a, and getrs of a^T's factors with the identity is A^-T
    # itself; a.T is the Fortran-order view of C-order a (getrf copies it: a is
    # the record's value)
    lu, piv, info = lb[0].dgetrf(a.T)        # info > 0: singular, sign 0
    d = np.diagonal(lu)
    swaps = np.count_nonzero(piv != np.arange(piv.shape[0]))
    # NumPy's rule: each row swap and negative pivot flips the sign (a NaN pivot
    # does not), a zero pivot makes it 0 and log|det| -inf
    flips = swaps + np.count_nonzero(d < 0)
    sign = 0.0 if info > 0 else (-1.0 if flips % 2 else 1.0)
    with np.errstate(divide="ignore"):
        logabsdet = np.sum(np.log(np.abs(d)))
    return np.float64(sign), np.float64(logabsdet), {"lu": (lu, piv)}


def _mats(x):
    return x[..., None, None]


def _det_rules(kind):
    name = "det" if kind == "det" else "slogdet"

    def forward(values, p):
        sign, logabsdet, res = _slogdet_of(name, values[0])
        if kind == "det":
            # NumPy's det is sign * exp(log|det|) of the same factorisation
            return sign * np.exp(logabsdet), res
        res["sign"] = sign                    # the front end reads the sign here
        return logabsdet, res

    def scale(out):
        return _mats(out) if kind == "det" else 1.0

    def vjp(values, out, res, G, p, needs):
        return (_mats(G) * scale(out) * _inv_t(name, values, res),)

    def dlog(values, res, t):
        """tr(A^-1 t): the tangent of log|det A| (k leading axis kept)."""
        return (_inv_t(name, values, res) * t).sum(axis=(-2, -1))

    def jvp(values, out, res, T, p):
        d = dlog(values, res, T[0])
        return d * out if kind == "det" else d

    def second(values, out, res, T, g, Gd, p, needs):
        (grad,) = vjp(values, out, res, Gd, p, needs)
        t = T[0]
        if t is None:
            return (grad,)
        it = _inv_t(name, values, res)
        dit = -(it @ _mT(t) @ it)                   # the tangent of A^-T
        gm = _mats(np.asarray(g))
        if kind == "det":
            c = gm * (_mats(out * dlog(values, res, t)) * it + _mats(out) * dit)
        else:
            c = gm * dit
        return (grad + c,)

    return dict(forward=forward, vjp=vjp, jvp=jvp, second=second,
                shape=_det_shape(name))


# ----------------------------------------------------------------------------------
# LAPACK through SciPy (optional, imported at first use): triangular solves and
# products, the symmetric sandwiches of the Cholesky rules, and the factorisations
# that solve and slogdet keep in their records.  Each helper has a NumPy fallback
# (the same values to rounding), taken without SciPy and for stacks of matrices.

_trsm: List[Any] = []    # [scipy.linalg.solve_triangular or None], at first use
_lapack_blas: List[Any] = []   # [(scipy.linalg.lapack, scipy.linalg.blas) or None]


def _scipy_trsm():
    if not _trsm:
        try:                             # optional: never at import fastad
            _trsm.append(importlib.import_module("scipy.linalg").solve_triangular)
        except ImportError:
            _trsm.append(None)
    return _trsm[0]


def _lapack():
    """(scipy.linalg.lapack, scipy.linalg.blas), or None without SciPy."""
    if not _lapack_blas:
        try:
            _lapack_blas.append((importlib.import_module("scipy.linalg.lapack"),
                                 importlib.import_module("scipy.linalg.blas")))
        except ImportError:
            _lapack_blas.append(None)
    return _lapack_blas[0]


def triangular_solve(E, B, lower, trans=False):
    """op(E)^-1 B for a triangular matrix E (op: transpose when `trans`), B of shape
    (..., n, m) -- its leading axes (directions, batches) are solved at once.  With
    SciPy, a 2-D E goes to LAPACK's triangular solve (half the time of an LU solve
    at n = 1000, single-threaded); else, and for stacks of E, numpy.linalg.solve of
    the triangle, the same values to rounding."""
    st = _scipy_trsm()
    if st is not None and E.ndim == 2:
        n = E.shape[0]
        flat = np.moveaxis(B, -2, 0)                 # (n, ..., m): one right-hand side
        X = st(E, flat.reshape(n, -1), lower=lower, trans=1 if trans else 0,
               check_finite=False)
        return np.moveaxis(X.reshape(flat.shape), 0, -2)
    Et = _mT(E) if trans else E
    batch = np.broadcast_shapes(Et.shape[:-2], B.shape[:-2])
    return np.linalg.solve(np.broadcast_to(Et, batch + Et.shape[-2:]),
                           np.broadcast_to(B, batch + B.shape[-2:]))


def _each(f, X, n):
    """f on each n x n matrix of X (leading direction axes, any count)."""
    flat = X.reshape((-1, n, n))
    if flat.shape[0] == 1:                   # reverse mode: no stacking copy
        return f(flat[0]).reshape(X.shape)
    return np.stack([f(x) for x in flat]).reshape(X.shape)


def _sym_from_lower(C):
    """The symmetric matrix whose lower triangle is C's (C's upper is ignored):
    two masked copies into one new array, no other temporary."""
    out = np.empty(C.shape)
    np.copyto(out, _mT(C))
    np.copyto(out, C, where=_tri_mask(C.shape[-1], 0))
    return out


def _sandwich(L, Q):
    """L^-1 Q L^-T for a lower triangular L and a symmetric Q (k leading axes
    allowed), symmetric.  LAPACK's sygst (itype 1) with SciPy: n^3 flops, where
    two triangular solves with n right-hand sides are 2 n^3."""
    lb = _lapack()
    n = L.shape[-1]
    if lb is None or L.ndim != 2:
        X = triangular_solve(L, _mT(triangular_solve(L, Q, True)), True)
        return 0.5 * (X + _mT(X))
    U = L.T          # C-order L is its upper factor U = L^T in Fortran order

    def one(q):
        # uplo U: inv(U^T) A inv(U) = L^-1 A L^-T, A's upper triangle read
        c, info = lb[0].dsygst(np.array(q, order="F"), U, itype=1, lower=0,
                               overwrite_a=1)
        return _sym_from_lower(c.T)
    return _each(one, Q, n)


def _reversed_f(x):
    """J x^T J in Fortran order (J reverses the order of rows or columns): the
    reversed memory of a C-order x, one sequential copy (always a copy: the
    callers overwrite it, and ascontiguousarray returns a 1 x 1 x itself)."""
    return np.array(x[::-1, ::-1], order="C").T


def _sandwich_t_of(L):
    """A function Qt -> L^-T Q L^-1 for the lower triangular 2-D L, Q symmetric and
    given by Qt's upper triangle (Qt's lower one never read); the result
    symmetric.  None without SciPy.

    sygst (itype 1) computes R^-1 A R^-T for a lower triangular R; with the order
    reversing permutation J, R = J L^T J is lower triangular and
    L^-T Q L^-1 = J R^-1 (J Q J) R^-T J: n^3 flops, where two triangular solves
    with n right-hand sides are 2 n^3."""
    lb = _lapack()
    if lb is None:
        return None

    def one(qt):
        # J Qt J: its lower triangle is Qt's upper one, reversed
        return _sygst_reversed(lb, _reversed_f(L), _reversed_f(_mT(qt)))
    return one


def _sygst_reversed(lb, Rf, a, alpha=1.0):
    """alpha J R^-1 a R^-T J, a (overwritten) in Fortran order with the lower
    triangle read, symmetric.  The result is written into Rf's memory (free once
    sygst has run): at n = 200 each fresh n x n temporary costs about as much in
    page faults as a third of the sygst itself."""
    c, info = lb[0].dsygst(a, Rf, itype=1, lower=1, overwrite_a=1)
    out = Rf.T                            # C order: its own memory, no longer read
    np.multiply(c.T, alpha, out=out)
    np.multiply(c, alpha, out=out, where=_tri_mask(c.shape[-1], 0))
    return out[::-1, ::-1]


_BLOCK = 64     # the block width of _tril_lt_times (timed best at n = 200 and 1000)


def _tril_lt_times(L, g, out=None):
    """A C-order matrix whose lower triangle (with the diagonal) is that of L^T g,
    L lower triangular, 2-D; its strict upper triangle is left unset.  By block
    columns, one matrix product each: the lower triangle of L^T g needs only L's
    rows below each column block, n^3 / 3 flops (plus the diagonal blocks'
    O(n^2 b)) where trmm's whole product is n^3 and a general one 2 n^3.  Right
    whatever g's upper triangle holds: those entries meet only L's zeros or the
    result's unset triangle.  Into `out` when given (any strides)."""
    n = L.shape[0]
    if out is None:
        out = np.empty((n, n))
    for j0 in range(0, n, _BLOCK):
        j1 = min(j0 + _BLOCK, n)
        np.matmul(_mT(L[j0:, j0:j1]), g[j0:, :j1], out=out[j0:j1, :j1])
    return out


def _lower_times(L, X):
    """L X for a lower triangular L, X with k leading axes: BLAS trmm with SciPy
    (n^3 flops where a general product is 2 n^3)."""
    lb = _lapack()
    n = L.shape[-1]
    if lb is None or L.ndim != 2:
        return L @ X
    U = L.T          # C-order L is its transpose in Fortran order: no copy
    return _each(lambda x: lb[1].dtrmm(1.0, U, x, lower=0, trans_a=1), X, n)


# ----------------------------------------------------------------------------------
# cholesky(a): lower L with L L^T = a (its lower triangle read as symmetric)

def _phi(x):
    """The lower triangle with the diagonal halved (self-adjoint: a mask)."""
    return np.tril(x) - 0.5 * (np.eye(x.shape[-1]) * x)


def _chol_forward(values, p):
    return _linalg("cholesky", np.linalg.cholesky, values[0]), None


def _chol_jvp_of(L, t):
    """dL = L Phi(L^-1 sym(t) L^-T) (k leading axes on t)."""
    return _lower_times(L, _phi(_sandwich(L, 0.5 * (t + _mT(t)))))


def _sandwich_t(L, Qt):
    """L^-T Q L^-1, Q symmetric given by Qt's upper triangle (k leading axes)."""
    one = _sandwich_t_of(L) if L.ndim == 2 else None
    if one is not None:
        return _each(one, Qt, L.shape[-1])
    Q = np.triu(Qt) + _mT(np.triu(Qt, 1))
    Y = triangular_solve(L, Q, True, trans=True)                 # L^-T Q
    X = _mT(triangular_solve(L, _mT(Y), True, trans=True))       # L^-T Q L^-1
    return 0.5 * (X + _mT(X))


def _chol_vjp_of(L, G):
    """Abar = sym(L^-T Phi(L^T G) L^-1) (Murray 2016, symmetrised as in JAX) =
    L^-T Q L^-1 with Q = sym(Phi(L^T G)), whose lower triangle (with the
    diagonal) is that of L^T G / 2 (Phi keeps L^T G's lower triangle, halving its
    diagonal).  With SciPy: that triangle by blocks (n^3 / 3 flops) and one sygst
    for the sandwich (n^3), 4 n^3 / 3 in all for a general product and two
    triangular solves' 4 n^3; no inverse formed.  NumPy's fallback (no SciPy, or
    stacks): the product and the two solves."""
    lb = _lapack() if L.ndim == 2 else None
    if lb is None:
        return _sandwich_t(L, 0.5 * (_mT(G) @ L))
    n = L.shape[-1]

    def each(g):
        # sygst's input J Q J in Fortran order (its lower triangle Q's, reversed)
        # is a C-order buffer whose reversed view is Q: the blocks go straight there
        buf = np.empty((n, n))
        _tril_lt_times(L, g, out=buf[::-1, ::-1])
        return _sygst_reversed(lb, _reversed_f(L), buf.T, 0.5)
    return _each(each, G, n)


def _chol_vjp(values, out, res, G, p, needs):
    return (_chol_vjp_of(out, G),)


def _chol_jvp(values, out, res, T, p):
    return _chol_jvp_of(out, T[0])


def _chol_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _chol_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    # The vjp is A0 = sym(s), s = L^-T P L^-1, P = Phi(L^T g); along dL (the
    # tangent of L) ds = L^-T (dP - dL^T s L - L^T s dL) L^-1, dP = Phi(dL^T g),
    # so sym(ds) = L^-T (sym(dP) - Z - Z^T) L^-1 with Z = L^T A0 dL: one more
    # sandwich of a symmetric matrix, no inverse formed
    L = out
    g = np.asarray(g)
    dL = _chol_jvp_of(L, T[0])
    A0 = _chol_vjp_of(L, g[None])[0]
    dP = _phi(_mT(dL) @ g)
    Z = _mT(L) @ A0 @ dL
    W = 0.5 * (dP + _mT(dP)) - Z - _mT(Z)
    # W is symmetric: its transpose (Fortran order) is the sandwich's fast layout
    return (grad + _sandwich_t(L, _mT(W)),)


# ----------------------------------------------------------------------------------
# eigvalsh(a): the eigenvalues of the symmetric matrix a's lower triangle stands
# for; res keeps the eigenvectors V (dw_k = v_k^T sym(dA) v_k)

def _eigvalsh_shape(shapes, p):
    (s,) = shapes
    _square("eigvalsh", "a", tuple(s))
    return tuple(s)[:-1]


def _eigvalsh_forward(values, p):
    w, v = _linalg("eigvalsh", np.linalg.eigh, values[0])
    return w, v


def _eigvalsh_vjp(values, out, res, G, p, needs):
    return ((res * G[..., None, :]) @ _mT(res),)


def _eigvalsh_jvp(values, out, res, T, p):
    s = 0.5 * (T[0] + _mT(T[0]))
    return np.sum((s @ res) * res, axis=-2)


def _eigvalsh_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _eigvalsh_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    V, w = res, out
    x = _mT(V) @ (0.5 * (T[0] + _mT(T[0]))) @ V
    with np.errstate(divide="ignore"):
        # F_ij = 1 / (w_j - w_i) off the diagonal: the eigenvectors' tangent,
        # infinite at repeated eigenvalues as in JAX
        F = 1.0 / (w[..., None, :] - w[..., :, None])
    n = w.shape[-1]
    F[..., np.arange(n), np.arange(n)] = 0.0
    dV = V @ (F * x)
    c = (dV * np.asarray(g)[..., None, :]) @ _mT(V)
    return (grad + c + _mT(c),)


# ----------------------------------------------------------------------------------
# Front ends: NumPy's signatures, plain arrays to NumPy, Vars to one record

def _bind_or(name, numpy_f, shape_rule):
    def impl(*operands):
        if not _is_var(*operands):
            return numpy_f(*operands)
        shape_rule([np.shape(_value(o)) for o in operands], {})
        return _generic.bind(_REG[name], operands, {})
    impl.__name__ = name
    return impl


def _parse1(fname):
    def parse(a, *args, **kw):
        if args or kw:
            raise TypeError("fastad: %s got unsupported arguments on Vars"
                            % _fname(fname))
        return (a,), {}
    return parse


def _solve_parse(a, b, *args, **kw):
    if args or kw:
        raise TypeError("fastad: numpy.linalg.solve got unsupported arguments on Vars")
    return (a, b), {}


def _chol_parse(a, *args, upper=False, **kw):
    if args or kw:
        raise TypeError("fastad: numpy.linalg.cholesky got unsupported arguments "
                        "on Vars")
    if upper:
        raise TypeError("fastad: numpy.linalg.cholesky(upper=True) is not supported "
                        "on Vars; use the transpose of the lower factor")
    return (a,), {}


def _slogdet(a):
    """numpy.linalg.slogdet: (sign, logabsdet), the sign a constant (plain array)."""
    if not _is_var(a):
        return np.linalg.slogdet(a)
    s = np.shape(a.value)
    _square("slogdet", "a", s)
    # one record, one LU: the sign is the one its forward computed (res)
    rec = _generic.new_record(_REG["logabsdet"], {})
    out = _generic.record(rec, (a,))
    return rec.res["sign"], out


_REG = {}


def _decl(name, numpy_f, parse, rules, tests, shape_rule=None):
    impl = _bind_or(name, numpy_f, shape_rule or rules["shape"])
    prim = Primitive(name, impl, "nonlinear", numpy=(numpy_f,) if parse else (),
                     parse=parse, tests=tests, **rules)
    _REG[name] = declare(prim)


_decl("solve", np.linalg.solve, _solve_parse,
      dict(forward=_solve_forward, vjp=_solve_vjp, jvp=_solve_jvp,
           second=_solve_second, shape=_solve_shape),
      tests=(_row((3, 3), (3,)), _row((4, 4), (4, 2)), _row((2, 3, 3), (2, 3, 1))))
_decl("inv", np.linalg.inv, _parse1("inv"),
      dict(forward=_inv_forward, vjp=_inv_vjp, jvp=_inv_jvp, second=_inv_second,
           shape=_one_square("inv")),
      tests=(_row((3, 3)), _row((2, 4, 4))))
_decl("det", np.linalg.det, _parse1("det"), _det_rules("det"),
      tests=(_row((3, 3)), _row((2, 4, 4))))
# log|det a|: no NumPy function of its own (slogdet's second half)
_REG["logabsdet"] = declare(Primitive(
    "logabsdet", _bind_or("logabsdet", lambda a: np.linalg.slogdet(a)[1],
                          _det_shape("slogdet")),
    "nonlinear", tests=(_row((3, 3)), _row((2, 4, 4))), **_det_rules("logabsdet")))
declare(Primitive("slogdet", _slogdet, "front_end", numpy=(np.linalg.slogdet,),
                  parse=_parse1("slogdet"), tests=(_row((3, 3)), _row((2, 4, 4)))))
def _eigvalsh_parse(a, UPLO="L"):
    if UPLO not in ("L", "U"):
        raise ValueError("numpy.linalg.eigvalsh: UPLO must be 'L' or 'U', got %r"
                         % (UPLO,))
    # the upper triangle of a is the lower one of its transpose
    return (a if UPLO == "L" else np.swapaxes(a, -1, -2),), {}


_decl("eigvalsh", np.linalg.eigvalsh, _eigvalsh_parse,
      dict(forward=_eigvalsh_forward, vjp=_eigvalsh_vjp, jvp=_eigvalsh_jvp,
           second=_eigvalsh_second, shape=_eigvalsh_shape),
      # NumPy reads the lower triangle only, the rules differentiate the symmetric
      # matrix: element-wise differences agree on 1 x 1 matrices (tests/test_linalg.py
      # checks n x n through a symmetrised input)
      tests=(_row((1, 1)), _row((3, 1, 1))))
_decl("cholesky", np.linalg.cholesky, _chol_parse,
      dict(forward=_chol_forward, vjp=_chol_vjp, jvp=_chol_jvp, second=_chol_second,
           shape=_one_square("cholesky")),
      # random matrices are not positive definite, 1 x 1 ones of positive entries
      # are (the thorough tests are in tests/test_linalg.py)
      tests=(_row((1, 1), dom=(0.5, 2.0)), _row((3, 1, 1), dom=(0.5, 2.0))))
