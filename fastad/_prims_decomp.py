"""Matrix decompositions on Vars (API.md section 13): numpy.linalg eigh, svd (and
svdvals), qr and pinv as registry entries with explicit rules, and the front ends
norm, matrix_power and multi_dot composed of differentiable entries.

A decomposition has several outputs, a record one: eigh, svd and qr record one
"factors" entry whose output packs the factors along the second-to-last axis, and
their front ends slice it (one factorisation per call, as NumPy does):

    eigh_factors (..., n+1, n)     row 0 the eigenvalues w, rows 1.. the vectors V
    svd_factors  (..., m+1+n, k)   U (m rows), s (1 row), V = Vh^T (n rows)
    qr_factors   (..., m+n, n)     Q (m rows), R (n rows)         (m >= n; the
                                   front end composes m < n from it)

The rules are JAX's (the real case): the eigenvectors' and singular vectors'
tangents carry F_ij = 1/(w_j - w_i) (eigh) and 1/(s_j^2 - s_i^2) (svd), infinite
at repeated eigen / singular values as in JAX; a cotangent that is exactly zero
contributes zero there (JAX's symbolic zeros), so the eigenvalues alone of eigh,
or U alone, keep finite gradients.  qr's rule is JAX's for m >= n (a solve with R,
no inverse); pinv's is the Golub-Pereyra derivative (constant rank).  The vjps are
solves and matmuls, never explicit inverses.

The `second` rules (forward over reverse) differentiate each vjp rule along the
direction T with a small forward mode over NumPy arrays (_D below): the vjp is
written once, on arrays or on _D pairs, and its tangent is the curvature term.
"""
import functools
import operator

import numpy as np

from fastad import _generic
from fastad._registry import Primitive, declare, test_row as _row
from fastad._prims_linalg import _REG, _fname, _is_var, _linalg, _mT, _square, _value


# ----------------------------------------------------------------------------------
# Forward mode over arrays: a value and its tangents (k directions on a leading
# axis, or None for a constant).  Only what the vjp rules below use.

def _tadd(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _tneg(a):
    return None if a is None else -a


class _D:
    __slots__ = ("v", "t")
    __array_ufunc__ = None          # ndarray (op) _D defers to _D's reflected ops

    def __init__(self, v, t=None):
        self.v, self.t = v, t

    def __add__(self, o):
        o = _lift(o)
        return _D(self.v + o.v, _tadd(self.t, o.t))

    __radd__ = __add__

    def __sub__(self, o):
        o = _lift(o)
        return _D(self.v - o.v, _tadd(self.t, _tneg(o.t)))

    def __rsub__(self, o):
        return _lift(o) - self

    def __neg__(self):
        return _D(-self.v, _tneg(self.t))

    def __mul__(self, o):
        o = _lift(o)
        return _D(self.v * o.v, _tadd(None if self.t is None else self.t * o.v,
                                      None if o.t is None else self.v * o.t))

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = _lift(o)
        q = self.v / o.v
        return _D(q, _tadd(None if self.t is None else self.t / o.v,
                           None if o.t is None else -(q * o.t) / o.v))

    def __rtruediv__(self, o):
        return _lift(o) / self

    def __matmul__(self, o):
        o = _lift(o)
        return _D(self.v @ o.v, _tadd(None if self.t is None else self.t @ o.v,
                                      None if o.t is None else self.v @ o.t))

    def __rmatmul__(self, o):
        return _lift(o) @ self

    def __getitem__(self, key):          # keys that start with Ellipsis only
        return _D(self.v[key], None if self.t is None else self.t[key])


def _lift(x):
    return x if type(x) is _D else _D(x)


def _lin(f, x):
    """A linear map f (acting on the trailing axes) on an array or a _D."""
    if type(x) is _D:
        return _D(f(x.v), None if x.t is None else f(x.t))
    return f(x)


def mT(x):
    return _lin(_mT, x)


def _diagonal(x):
    return _lin(lambda y: np.diagonal(y, axis1=-2, axis2=-1), x)


def _diag_embed(x):
    n = np.shape(_lift(x).v)[-1]
    return _lin(lambda y: y[..., :, None] * np.eye(n), x)


def _tril(x, k=0):
    return _lin(lambda y: np.tril(y, k), x)


def _bsolve(a, b):
    """a^-1 b for stacks a (..., n, n), b (..., n, m), batch axes broadcast."""
    batch = np.broadcast_shapes(np.shape(a)[:-2], np.shape(b)[:-2])
    return np.linalg.solve(np.broadcast_to(a, batch + np.shape(a)[-2:]),
                           np.broadcast_to(b, batch + np.shape(b)[-2:]))


def _solve(a, b):
    """_bsolve on arrays or _D pairs (dx = a^-1 (db - da x))."""
    if type(a) is not _D and type(b) is not _D:
        return _bsolve(a, b)
    a, b = _lift(a), _lift(b)
    x = _bsolve(a.v, b.v)
    rhs = _tadd(b.t, None if a.t is None else -(a.t @ x))
    return _D(x, None if rhs is None else _bsolve(a.v, rhs))


def _recip_offdiag(gap):
    """1 / gap off the diagonal, 0 on it (inf where gap is 0: repeated values)."""
    def value(d):
        with np.errstate(divide="ignore"):
            f = 1.0 / d
        n = d.shape[-1]
        f[..., np.arange(n), np.arange(n)] = 0.0
        return f
    if type(gap) is not _D:
        return value(gap)
    f = value(gap.v)
    with np.errstate(invalid="ignore"):
        return _D(f, None if gap.t is None else -(f * f) * gap.t)


def _mul_nz(f, x):
    """f * x, zero where x's value is exactly zero (a zero cotangent contributes
    zero even where f is infinite, as JAX's symbolic zeros do)."""
    xv = _lift(x).v
    mask = xv != 0
    return _lin(lambda y: np.where(mask, y, 0.0), f) * x


def _sym(x):
    return 0.5 * (x + mT(x))


def _curvature(vjp_of, primals, tangents, g):
    """d/de vjp_of(primals + e tangents, g): the tangent part of the vjp on _Ds."""
    c = vjp_of(*[_D(p, t) for p, t in zip(primals, tangents)], *g)
    return c.t


# ----------------------------------------------------------------------------------
# eigh(a): w ascending, V NumPy's (LAPACK's) eigenvectors of the symmetric matrix
# a's lower triangle stands for; the derivative is that of sym(a) (JAX's)

def _eigh_shape(shapes, p):
    (s,) = shapes
    s = tuple(s)
    _square("eigh", "a", s)
    return s[:-2] + (s[-1] + 1, s[-1])


def _eigh_forward(values, p):
    w, V = _linalg("eigh", np.linalg.eigh, values[0])
    return np.concatenate([w[..., None, :], V], axis=-2), None


def _eigh_split(x):
    return x[..., 0, :], x[..., 1:, :]


def _eigh_F(w):
    return _recip_offdiag(w[..., None, :] - w[..., :, None])   # 1 / (w_j - w_i)


def _eigh_tangent(w, V, T):
    X = _mT(V) @ _sym(T) @ V
    with np.errstate(invalid="ignore"):
        dV = V @ (_eigh_F(w) * X)
    return np.diagonal(X, axis1=-2, axis2=-1), dV


def _eigh_cot(w, V, Gw, GV):
    inner = _diag_embed(Gw) + _mul_nz(_eigh_F(w), mT(V) @ GV)
    return _sym(V @ inner @ mT(V))


def _eigh_jvp(values, out, res, T, p):
    w, V = _eigh_split(out)
    dw, dV = _eigh_tangent(w, V, T[0])
    return np.concatenate([dw[..., None, :], dV], axis=-2)


def _eigh_vjp(values, out, res, G, p, needs):
    w, V = _eigh_split(out)
    return (_eigh_cot(w, V, *_eigh_split(G)),)


def _eigh_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _eigh_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    w, V = _eigh_split(out)
    return (grad + _curvature(_eigh_cot, (w, V), _eigh_tangent(w, V, T[0]),
                              _eigh_split(np.asarray(g))),)


# ----------------------------------------------------------------------------------
# svd(a, full_matrices=False): a = U diag(s) Vh, s descending; svdvals(a): s

def _svd_shape(shapes, p):
    (s,) = shapes
    s = tuple(s)
    if len(s) < 2:
        raise ValueError("%s: argument a must be a matrix or a stack of them (shape "
                         "(..., m, n)), got shape %s" % (_fname("svd"), s))
    m, n = s[-2:]
    return s[:-2] + (m + 1 + n, min(m, n))


def _svdvals_shape(shapes, p):
    s = tuple(shapes[0])
    _svd_shape(shapes, p)
    return s[:-2] + (min(s[-2:]),)


def _svd(a):
    U, s, Vh = _linalg("svd", np.linalg.svd, a, False)
    return U, s, _mT(Vh)


def _svd_forward(values, p):
    U, s, V = _svd(values[0])
    return np.concatenate([U, s[..., None, :], V], axis=-2), None


def _svd_split(x, m):
    return x[..., :m, :], x[..., m, :], x[..., m + 1:, :]


def _svd_F(s):
    s2 = s * s
    return _recip_offdiag(s2[..., None, :] - s2[..., :, None])   # 1 / (s_j^2 - s_i^2)


def _svd_tangent(U, s, V, T):
    m, n = U.shape[-2], V.shape[-2]
    dS = _mT(U) @ T @ V
    srow, scol = s[..., None, :], s[..., :, None]
    F = _svd_F(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        dU = U @ (F * (dS * srow + scol * _mT(dS)))
        dV = V @ (F * (scol * dS + srow * _mT(dS)))
        if m > n:
            TV = T @ V
            dU = dU + (TV - U @ (_mT(U) @ TV)) / srow
        if n > m:
            TU = _mT(T) @ U
            dV = dV + (TU - V @ (_mT(V) @ TU)) / srow
    return dU, np.diagonal(dS, axis1=-2, axis2=-1), dV


def _svd_cot(U, s, V, GU, Gs, GV):
    m, n = _lift(U).v.shape[-2], _lift(V).v.shape[-2]
    F = _svd_F(s)
    M = _mul_nz(F, mT(U) @ GU)
    N = _mul_nz(F, mT(V) @ GV)
    srow, scol = s[..., None, :], s[..., :, None]
    Sbar = _diag_embed(Gs) + (M + mT(M)) * srow + scol * (N + mT(N))
    A = U @ Sbar @ mT(V)
    if m > n:
        A = A + ((GU - U @ (mT(U) @ GU)) / srow) @ mT(V)
    if n > m:
        A = A + U @ mT((GV - V @ (mT(V) @ GV)) / srow)
    return A


def _svd_jvp(values, out, res, T, p):
    m = values[0].shape[-2]
    U, s, V = _svd_split(out, m)
    dU, ds, dV = _svd_tangent(U, s, V, T[0])
    return np.concatenate([dU, ds[..., None, :], dV], axis=-2)


def _svd_vjp(values, out, res, G, p, needs):
    m = values[0].shape[-2]
    U, s, V = _svd_split(out, m)
    return (_svd_cot(U, s, V, *_svd_split(G, m)),)


def _svd_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _svd_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    m = values[0].shape[-2]
    U, s, V = _svd_split(out, m)
    return (grad + _curvature(_svd_cot, (U, s, V), _svd_tangent(U, s, V, T[0]),
                              _svd_split(np.asarray(g), m)),)


# svdvals: res (U, V); ds = diag(U^T dA V), its vjp U diag(G) V^T

def _svdvals_forward(values, p):
    U, s, V = _svd(values[0])
    return s, (U, V)


def _svdvals_cot(U, V, Gs):
    return (U * Gs[..., None, :]) @ mT(V)


def _svdvals_jvp(values, out, res, T, p):
    U, V = res
    return np.diagonal(_mT(U) @ T[0] @ V, axis1=-2, axis2=-1)


def _svdvals_vjp(values, out, res, G, p, needs):
    U, V = res
    return (_svdvals_cot(U, V, G),)


def _svdvals_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _svdvals_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    U, V = res
    dU, _, dV = _svd_tangent(U, out, V, T[0])
    return (grad + _curvature(_svdvals_cot, (U, V), (dU, dV), (np.asarray(g),)),)


# ----------------------------------------------------------------------------------
# qr(a) (mode "reduced"): a = Q R, JAX's rule for m >= n (the front end composes
# m < n from it)
#   C = Q^T dA R^-1, O = tril(C, -1) - tril(C, -1)^T,
#   dQ = Q (O - C) + dA R^-1, dR = (C - O) R

def _qr_shape(shapes, p):
    (s,) = shapes
    s = tuple(s)
    if len(s) < 2 or s[-2] < s[-1]:
        raise ValueError("%s: the factors' record needs a matrix (or a stack of "
                         "them) with at least as many rows as columns (m >= n), got "
                         "shape %s" % (_fname("qr"), s))
    return s[:-2] + (s[-2] + s[-1], s[-1])


def _qr_forward(values, p):
    Q, R = _linalg("qr", np.linalg.qr, values[0])
    return np.concatenate([Q, R], axis=-2), None


def _qr_split(x, m):
    return x[..., :m, :], x[..., m:, :]


def _qr_right_solve(Y, R):
    """Y R^-1 (a solve with R^T; R singular: the matrix has not full column rank)."""
    return mT(_linalg("qr", _solve, mT(R), mT(Y)))


def _qr_tangent(Q, R, T):
    Y = _qr_right_solve(T, R)
    C = _mT(Q) @ Y
    L = np.tril(C, -1)
    O = L - _mT(L)
    return Q @ (O - C) + Y, (C - O) @ R


def _qr_cot(Q, R, GQ, GR):
    B = mT(Q) @ GQ - GR @ mT(R)
    Cbar = _tril(B - mT(B), -1) - B
    Ybar = GQ + Q @ Cbar
    return mT(_linalg("qr", _solve, R, mT(Ybar)))          # Ybar R^-T


def _qr_jvp(values, out, res, T, p):
    Q, R = _qr_split(out, values[0].shape[-2])
    dQ, dR = _qr_tangent(Q, R, T[0])
    return np.concatenate([dQ, dR], axis=-2)


def _qr_vjp(values, out, res, G, p, needs):
    m = values[0].shape[-2]
    Q, R = _qr_split(out, m)
    return (_qr_cot(Q, R, *_qr_split(G, m)),)


def _qr_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _qr_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    m = values[0].shape[-2]
    Q, R = _qr_split(out, m)
    return (grad + _curvature(_qr_cot, (Q, R), _qr_tangent(Q, R, T[0]),
                              _qr_split(np.asarray(g), m)),)


# ----------------------------------------------------------------------------------
# pinv(a): P; the Golub-Pereyra derivative (valid where the rank is constant)
#   dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P

def _pinv_shape(shapes, p):
    s = tuple(shapes[0])
    if len(s) < 2:
        raise ValueError("%s: argument a must be a matrix or a stack of them (shape "
                         "(..., m, n)), got shape %s" % (_fname("pinv"), s))
    return s[:-2] + (s[-1], s[-2])


def _pinv_forward(values, p):
    return _linalg("pinv", functools.partial(np.linalg.pinv, **p), values[0]), None


def _pinv_tangent(A, P, T):
    Tt = _mT(T)
    PtP = _mT(P) @ P
    PPt = P @ _mT(P)
    X = PPt @ Tt
    Y = Tt @ PtP
    return -(P @ T @ P) + (X - (X @ A) @ P) + (Y - P @ (A @ Y))


def _pinv_cot(A, P, G):
    Gt = mT(G)
    X = Gt @ (P @ mT(P))                                  # (I - A P) Gt P P^T
    Y = (mT(P) @ P) @ Gt                                  # P^T P Gt (I - P A)
    return -(mT(P) @ G @ mT(P)) + (X - A @ (P @ X)) + (Y - (Y @ P) @ A)


def _pinv_jvp(values, out, res, T, p):
    return _pinv_tangent(values[0], out, T[0])


def _pinv_vjp(values, out, res, G, p, needs):
    return (_pinv_cot(values[0], out, G),)


def _pinv_second(values, out, res, T, g, Gd, p, needs):
    (grad,) = _pinv_vjp(values, out, res, Gd, p, needs)
    if T[0] is None:
        return (grad,)
    A = values[0]
    return (grad + _curvature(_pinv_cot, (A, out), (T[0], _pinv_tangent(A, out, T[0])),
                              (np.asarray(g),)),)


# ----------------------------------------------------------------------------------
# Front ends: NumPy's signatures, plain arrays to NumPy, Vars to the records

def _result_type(f, *args):
    """NumPy's named tuple of f's results (EighResult, ...), or tuple (NumPy 1)."""
    t = type(f(*args))
    return t if t is not tuple else (lambda *xs: tuple(xs))


_EighResult = _result_type(np.linalg.eigh, np.eye(1))
_SVDResult = _result_type(np.linalg.svd, np.eye(1))
_QRResult = _result_type(np.linalg.qr, np.eye(1))


def _bind(name, operands, params=None):
    params = params or {}
    prim = _REG[name]
    prim.shape([np.shape(_value(o)) for o in operands], params)
    return _generic.bind(prim, operands, params)


def _no_extra(fname, args, kw):
    if args or kw:
        raise TypeError("fastad: %s got unsupported arguments on Vars %s"
                        % (_fname(fname), sorted(kw) if kw else ""))


def _uplo(fname, UPLO):
    if UPLO not in ("L", "U"):
        raise ValueError("%s: UPLO must be 'L' or 'U', got %r" % (_fname(fname), UPLO))
    return UPLO


def _eigh_parse(a, UPLO="L"):
    return (a,), {"UPLO": _uplo("eigh", UPLO)}


def eigh(a, UPLO="L"):
    if not _is_var(a):
        return np.linalg.eigh(a, UPLO)
    if _uplo("eigh", UPLO) == "U":
        # the upper triangle of a is the lower one of its transpose
        a = np.swapaxes(a, -1, -2)
    packed = _bind("eigh_factors", (a,))
    w, V = _eigh_split(packed)
    return _EighResult(w, V)


def _svd_parse(a, full_matrices=True, compute_uv=True, hermitian=False):
    return (a,), dict(full_matrices=full_matrices, compute_uv=compute_uv,
                      hermitian=hermitian)


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    if not _is_var(a):
        return np.linalg.svd(a, full_matrices, compute_uv, hermitian)
    if hermitian:
        raise TypeError("fastad: numpy.linalg.svd(hermitian=True) is not supported on "
                        "Vars (use hermitian=False, or numpy.linalg.eigh)")
    s = a.shape
    if not compute_uv:
        return _bind("svdvals", (a,))
    if full_matrices and len(s) >= 2 and s[-1] != s[-2]:
        raise TypeError("fastad: numpy.linalg.svd(full_matrices=True) of a matrix that "
                        "is not square is not supported on Vars (the extra columns of "
                        "U or rows of Vh have no derivative); pass "
                        "full_matrices=False, or compute_uv=False for the values")
    m = s[-2]
    U, sv, V = _svd_split(_bind("svd_factors", (a,)), m)
    return _SVDResult(U, sv, np.swapaxes(V, -1, -2))


def svdvals(x):
    if not _is_var(x):
        return np.linalg.svd(x, compute_uv=False)
    return _bind("svdvals", (x,))


def _qr_parse(a, mode="reduced"):
    return (a,), dict(mode=mode)


def qr(a, mode="reduced"):
    if not _is_var(a):
        return np.linalg.qr(a, mode)
    if mode not in ("reduced", "r"):
        raise TypeError("fastad: numpy.linalg.qr(mode=%r) is not supported on Vars "
                        "(only mode='reduced' and mode='r')" % (mode,))
    if a.ndim >= 2 and a.shape[-2] < a.shape[-1]:
        # m < n (JAX's rule): a = [X | Y], X m x m: Q R_X = X, and R = [R_X | Q^T Y]
        # (Householder QR reflects with the first m columns alone: NumPy's Q and R)
        m = a.shape[-2]
        Q, RX = _qr_split(_bind("qr_factors", (a[..., :m],)), m)
        R = np.concatenate([RX, np.swapaxes(Q, -1, -2) @ a[..., m:]], axis=-1)
    else:
        m = a.shape[-2] if a.ndim >= 2 else 0
        Q, R = _qr_split(_bind("qr_factors", (a,)), m)
    return R if mode == "r" else _QRResult(Q, R)


def _pinv_params(rcond=None, hermitian=False, **kw):
    """pinv's keywords that were given (NumPy 1 has no rtol, NumPy 2 rcond=None)."""
    p = {k: v for k, v in kw.items() if k == "rtol"}
    if set(kw) - {"rtol"}:
        raise TypeError("fastad: numpy.linalg.pinv got unsupported arguments %s"
                        % sorted(set(kw) - {"rtol"}))
    if rcond is not None:
        p["rcond"] = rcond
    if hermitian:
        p["hermitian"] = True
    return p


def _pinv_parse(a, *args, **kw):
    return (a,), _pinv_params(*args, **kw)


def pinv(a, *args, **kw):
    if not _is_var(a):
        return np.linalg.pinv(a, *args, **kw)
    return _bind("pinv", (a,), _pinv_params(*args, **kw))


# norm(x, ord=None, axis=None, keepdims=False): compositions of exact entries

def _vector_norm(x, ord, axis):
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axis))
    if ord == np.inf:
        return np.max(np.abs(x), axis=axis)
    if ord == -np.inf:
        return np.min(np.abs(x), axis=axis)
    if ord == 1:
        return np.sum(np.abs(x), axis=axis)
    p = float(ord)
    return np.sum(np.abs(x) ** p, axis=axis) ** (1.0 / p)


def _matrix_norm(x, ord, r, c):
    if ord is None or ord == "fro":
        return np.sqrt(np.sum(x * x, axis=(r, c)))
    if ord in ("nuc", 2, -2):
        s = svdvals(np.moveaxis(x, (r, c), (-2, -1)))
        return {"nuc": np.sum, 2: np.max, -2: np.min}[ord](s, axis=-1)
    if ord in (1, -1):
        red = np.max if ord == 1 else np.min
        return red(np.sum(np.abs(x), axis=r), axis=c - 1 if c > r else c)
    if ord in (np.inf, -np.inf):
        red = np.max if ord == np.inf else np.min
        return red(np.sum(np.abs(x), axis=c), axis=r - 1 if r > c else r)
    raise ValueError("%s: invalid norm order %r for matrices" % (_fname("norm"), ord))


def _norm_parse(x, ord=None, axis=None, keepdims=False):
    return (x,), dict(ord=ord, axis=axis, keepdims=keepdims)


def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: NumPy's orders, axes and keepdims; on Vars each order is
    a composition of differentiable entries (module docstring of the guide)."""
    if not _is_var(x):
        return np.linalg.norm(x, ord, axis, keepdims)
    want = np.shape(np.linalg.norm(x.value, ord, axis, keepdims))   # NumPy's checks
    nd = x.ndim
    if axis is None:
        if ord is None:
            return np.reshape(np.sqrt(np.sum(x * x)), want)
        axes = tuple(range(nd))
    elif isinstance(axis, tuple):
        axes = tuple(operator.index(a) % nd for a in axis)
    else:
        axes = (operator.index(axis) % nd,)
    if len(axes) == 1:
        if ord == 0:
            # the number of non-zero elements: piecewise constant, a plain array
            return np.linalg.norm(x.value, ord, axis, keepdims)
        out = _vector_norm(x, ord, axes[0])
    else:
        out = _matrix_norm(x, ord, *axes)
    return np.reshape(out, want)


def _matrix_power_parse(a, n):
    return (a, n), {}


def matrix_power(a, n):
    if not _is_var(a):
        return np.linalg.matrix_power(a, n)
    n = operator.index(n)
    _square("matrix_power", "a", a.shape)
    if n == 0:
        # the identity: a constant, kept a Var of a's tape
        return a * 0.0 + np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    if n < 0:
        a, n = np.linalg.inv(a), -n
    result, base = None, a
    while True:              # binary powers, as NumPy computes them
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if not n:
            return result
        base = base @ base


def _multi_dot_parse(arrays, *, out=None):
    if out is not None:
        raise TypeError("fastad: numpy.linalg.multi_dot(out=...) is not supported on "
                        "Vars")
    return (arrays,), {}


def _chain_order(dims):
    """The cheapest parenthesisation of matrices of shapes (dims[i], dims[i+1])
    (the textbook dynamic programme NumPy's multi_dot also solves): split[i][j]."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def multi_dot(arrays, *, out=None):
    arrays = list(arrays)
    if not _is_var(*arrays):
        return np.linalg.multi_dot(arrays, out=out)
    _multi_dot_parse(arrays, out=out)
    if len(arrays) < 2:
        raise ValueError("%s: expecting at least two arrays" % _fname("multi_dot"))
    shapes = [np.shape(_value(a)) for a in arrays]
    if len(arrays) == 2 or any(len(s) != 2 for s in shapes[1:-1]) or \
            not 1 <= len(shapes[0]) <= 2 or not 1 <= len(shapes[-1]) <= 2:
        return functools.reduce(operator.matmul, arrays)   # matmul's own errors
    # 1-D ends as a row and a column, as NumPy does; the cheapest order of @
    first, last = len(shapes[0]) == 1, len(shapes[-1]) == 1
    if first:
        arrays[0] = np.reshape(arrays[0], (1, -1))
    if last:
        arrays[-1] = np.reshape(arrays[-1], (-1, 1))
    dims = [np.shape(_value(arrays[0]))[0]] + [np.shape(_value(a))[1] for a in arrays]
    split = _chain_order(dims)

    def product(i, j):
        if i == j:
            return arrays[i]
        k = split[i][j]
        return product(i, k) @ product(k + 1, j)
    result = product(0, len(arrays) - 1)
    if first and last:
        return np.reshape(result, ())
    if first or last:
        return np.reshape(result, (-1,))
    return result


# ----------------------------------------------------------------------------------
# Declarations

def _impl_of(name):
    def impl(a, **params):
        if not _is_var(a):
            out, _ = _REG[name].forward([np.asarray(a, dtype=np.float64)], params)
            return out
        return _bind(name, (a,), params)
    impl.__name__ = name
    return impl


def _ruled(name, rules, tests, numpy=(), parse=None):
    _REG[name] = declare(Primitive(name, _impl_of(name), "nonlinear", numpy=numpy,
                                   parse=parse, tests=tests, **rules))


# the packed factors: no NumPy function of their own (the front ends slice them).
# Random matrices are not symmetric and NumPy reads eigh's lower triangle only, so
# eigh's rows are 1 x 1 (tests/test_linalg_decomp.py checks n x n)
_ruled("eigh_factors", dict(forward=_eigh_forward, vjp=_eigh_vjp, jvp=_eigh_jvp,
                            second=_eigh_second, shape=_eigh_shape),
       tests=(_row((1, 1)), _row((2, 1, 1))))
_ruled("svd_factors", dict(forward=_svd_forward, vjp=_svd_vjp, jvp=_svd_jvp,
                           second=_svd_second, shape=_svd_shape),
       tests=(_row((3, 3)), _row((4, 2)), _row((2, 3)), _row((2, 3, 2))))
_ruled("qr_factors", dict(forward=_qr_forward, vjp=_qr_vjp, jvp=_qr_jvp,
                          second=_qr_second, shape=_qr_shape),
       tests=(_row((3, 3)), _row((4, 2)), _row((2, 3, 2))))
_ruled("svdvals", dict(forward=_svdvals_forward, vjp=_svdvals_vjp, jvp=_svdvals_jvp,
                       second=_svdvals_second, shape=_svdvals_shape),
       numpy=tuple(f for f in (getattr(np.linalg, "svdvals", None),) if f),
       parse=lambda x: ((x,), {}),
       tests=(_row((3, 3)), _row((4, 2)), _row((2, 2, 3))))
_ruled("pinv", dict(forward=_pinv_forward, vjp=_pinv_vjp, jvp=_pinv_jvp,
                    second=_pinv_second, shape=_pinv_shape),
       numpy=(np.linalg.pinv,), parse=_pinv_parse,
       tests=(_row((3, 3)), _row((4, 2)), _row((2, 3)), _row((2, 3, 2))))

for _name, _impl, _np_f, _parse, _tests in (
        ("eigh", eigh, np.linalg.eigh, _eigh_parse, (_row((1, 1)), _row((2, 1, 1)))),
        ("svd", svd, np.linalg.svd, _svd_parse, (_row((3, 3)), _row((2, 3, 3)))),
        ("qr", qr, np.linalg.qr, _qr_parse, (_row((3, 3)), _row((4, 2)),
                                             _row((2, 4)))),
        ("norm", norm, np.linalg.norm, _norm_parse,
         (_row((5,)), _row((3, 4)), _row((3, 4), ord="nuc"), _row((3, 4), ord=2),
          _row((3, 4), ord=1), _row((3, 4), ord=-np.inf), _row((5,), ord=np.inf),
          _row((5,), ord=3.0), _row((2, 3, 4), axis=(0, 2), ord="fro"),
          _row((2, 3, 4), axis=1, keepdims=True), _row((2, 3, 4), axis=(2, 1), ord=2),
          _row((2, 3, 4), axis=(1, 2), ord=np.inf, keepdims=True))),
        ("matrix_power", matrix_power, np.linalg.matrix_power, _matrix_power_parse,
         (_row((3, 3), 3), _row((3, 3), 0), _row((2, 3, 3), 2))),
        ("multi_dot", multi_dot, np.linalg.multi_dot, _multi_dot_parse,
         (_row([(2, 3), (3, 4), (4, 2)]), _row([(3,), (3, 4), (4,)])))):
    declare(Primitive(_name, _impl, "front_end", numpy=(_np_f,), parse=_parse,
                      tests=_tests))
