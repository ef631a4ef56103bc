"""scipy.linalg's solve_triangular, cho_factor and cho_solve on Vars (API.md
section 13), SciPy's signatures and values.

SciPy is optional and never imported by `import fastad`: the entries claim no
SciPy callable (a claim would need the function object, and so SciPy itself), and
the triangular solves (fastad._prims_linalg.triangular_solve, the Cholesky rules'
too) import scipy.linalg at their first call, falling back to numpy.linalg.solve of
the triangle (same values to rounding) when SciPy is not installed or the
triangles are stacks.  SciPy's
functions convert their arguments with numpy.asarray, so they cannot dispatch to
fastad by themselves: on Vars call the functions of this module (the registry
entries' impls).

solve_triangular is one registry entry (rules: those of solve for the triangle
SciPy reads, the cotangent of `a` masked to that triangle); cho_factor is a front
end (numpy.linalg.cholesky's entry, the other triangle a's own entries as SciPy
leaves them), cho_solve two triangular solves, differentiable in c and b.
"""
import importlib
from typing import Any

import numpy as np

from fastad import _generic
from fastad._registry import Primitive, declare, test_row as _row
from fastad._prims_linalg import _REG, _is_var, _mT, _value, triangular_solve


def _sname(name):
    return "scipy.linalg." + name


def _scipy_linalg() -> Any:
    """scipy.linalg, imported when first asked for (SciPy is optional)."""
    return importlib.import_module("scipy.linalg")


def _trans(trans):
    if trans in (0, "N", "n"):
        return False
    if trans in (1, 2, "T", "C", "t", "c"):     # real matrices: 'C' is 'T'
        return True
    raise ValueError("%s: trans must be 0, 1, 2, 'N', 'T' or 'C', got %r"
                     % (_sname("solve_triangular"), trans))


def _masked(x, lower, unit):
    """x's entries that SciPy reads of a (the diagonal too unless unit_diagonal),
    zeros elsewhere, over the last two axes: one pass, no mask array."""
    k = -1 if unit else 0
    return np.tril(x, k) if lower else np.triu(x, -k)


def _effective(a, p):
    """The triangular matrix op(M) whose system is solved, and whether it is lower."""
    n = a.shape[-1]
    M = _masked(a, p["lower"], p["unit_diagonal"])
    if p["unit_diagonal"]:
        M = M + np.eye(n)
    if p["trans"]:
        return _mT(M), not p["lower"]
    return M, p["lower"]


def _tsolve(E, lower, B):
    """E^-1 B for triangular E (lower or upper), B a stack of matrices; batch axes
    broadcast.  LinAlgError naming scipy.linalg.solve_triangular when singular."""
    try:
        if np.any(np.diagonal(E, axis1=-2, axis2=-1) == 0):
            raise np.linalg.LinAlgError("singular matrix: a zero on the diagonal")
        return triangular_solve(E, B, lower)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError("%s: %s" % (_sname("solve_triangular"), e)) from None


def _col(x, vec):
    return x[..., None] if vec else x


def _uncol(x, vec):
    return x[..., 0] if vec else x


def _st_shape(shapes, p):
    sa, sb = (tuple(s) for s in shapes)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError("%s: argument a must be a square matrix or a stack of them, "
                         "got shape %s" % (_sname("solve_triangular"), sa))
    n = sa[-1]
    vec = len(sb) == 1
    if len(sb) == 0 or (sb[-1] if vec else sb[-2]) != n:
        raise ValueError("%s: shapes of a %s and b %s are incompatible"
                         % (_sname("solve_triangular"), sa, sb))
    try:
        batch = np.broadcast_shapes(sa[:-2], sb[:-1] if vec else sb[:-2])
    except ValueError:
        raise ValueError("%s: the batch shapes of a %s and b %s do not broadcast"
                         % (_sname("solve_triangular"), sa, sb)) from None
    return batch + ((n,) if vec else sb[-2:])


def _st_forward(values, p):
    a, b = values
    vec = b.ndim == 1
    E, lower = _effective(a, p)
    return _uncol(_tsolve(E, lower, _col(b, vec)), vec), None


def _cot_a(Ebar, p, n):
    """The cotangent of a from that of op(M): transposed back, masked."""
    if p["trans"]:
        Ebar = _mT(Ebar)
    return _masked(Ebar, p["lower"], p["unit_diagonal"])


def _st_vjp(values, out, res, G, p, needs):
    a, b = values
    vec = b.ndim == 1
    E, lower = _effective(a, p)
    bbar = _tsolve(_mT(E), not lower, _col(G, vec))
    abar = None
    if needs & 1:
        abar = _cot_a(-(bbar @ _mT(_col(out, vec))), p, a.shape[-1])
    return abar, (_uncol(bbar, vec) if needs & 2 else None)


def _dE(T, p, n):
    """The tangent of op(M) for a's tangent T (the entries SciPy reads)."""
    if T is None:
        return None
    M = _masked(T, p["lower"], p["unit_diagonal"])
    return _mT(M) if p["trans"] else M


def _st_dx(E, lower, x, dE, tb, vec):
    rhs = 0.0
    if tb is not None:
        rhs = _col(tb, vec)
    if dE is not None:
        rhs = rhs - dE @ x
    rhs = np.broadcast_to(rhs, np.broadcast_shapes(np.shape(rhs), (1,) + x.shape))
    return _tsolve(E, lower, rhs)


def _st_jvp(values, out, res, T, p):
    a, b = values
    vec = b.ndim == 1
    E, lower = _effective(a, p)
    dE = _dE(T[0], p, a.shape[-1])
    return _uncol(_st_dx(E, lower, _col(out, vec), dE, T[1], vec), vec)


def _st_second(values, out, res, T, g, Gd, p, needs):
    a, b = values
    vec = b.ndim == 1
    ga, gb = _st_vjp(values, out, res, Gd, p, needs)
    if T[0] is None and T[1] is None:
        return ga, gb
    n = a.shape[-1]
    E, lower = _effective(a, p)
    x = _col(out, vec)
    dE = _dE(T[0], p, n)
    bbar = _tsolve(_mT(E), not lower, _col(np.asarray(g), vec))     # no k axis
    dx = _st_dx(E, lower, x, dE, T[1], vec)
    dbbar = None if dE is None else -_tsolve(_mT(E), not lower, _mT(dE) @ bbar)
    if gb is not None and dbbar is not None:
        gb = gb + _uncol(dbbar, vec)
    if ga is not None:
        dEbar = -(bbar @ _mT(dx))
        if dbbar is not None:
            dEbar = dEbar - dbbar @ _mT(x)
        ga = ga + _cot_a(dEbar, p, n)
    return ga, gb


def _st_params(trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
               check_finite=True):
    return dict(trans=_trans(trans), lower=bool(lower),
                unit_diagonal=bool(unit_diagonal))


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False,
                     overwrite_b=False, check_finite=True):
    """scipy.linalg.solve_triangular on Vars (and arrays): a x = b, a triangular
    (its `lower` or upper triangle read), trans 0/'N' or 1/'T'."""
    return _st_impl(a, b, **_st_params(trans, lower, unit_diagonal))


def _st_impl(a, b, **p):
    if not _is_var(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        _st_shape([a.shape, b.shape], p)
        return _st_forward([a, b], p)[0]
    _REG["solve_triangular"].shape([np.shape(_value(a)), np.shape(_value(b))], p)
    return _generic.bind(_REG["solve_triangular"], (a, b), p)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cho_factor: (c, lower), c the Cholesky factor of the matrix in
    a's `lower` (or upper) triangle, the other triangle of c a's own entries."""
    if not _is_var(a):
        return _scipy_linalg().cho_factor(a, lower=lower, overwrite_a=overwrite_a,
                                          check_finite=check_finite)
    a_ = a if lower else np.swapaxes(a, -1, -2)
    try:
        L = np.linalg.cholesky(a_)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError("%s: %s" % (_sname("cho_factor"),
                                                str(e).split(": ", 1)[-1])) from None
    if lower:
        return L + np.triu(a, 1), True
    return np.swapaxes(L, -1, -2) + np.tril(a, -1), False


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """scipy.linalg.cho_solve: x with A x = b, A = L L^T from cho_factor's (c,
    lower); differentiable in c (its factor triangle) and b."""
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError):
        raise TypeError("%s: the first argument must be the tuple (c, lower) of "
                        "scipy.linalg.cho_factor" % _sname("cho_solve")) from None
    if not _is_var(c, b):
        return _scipy_linalg().cho_solve((c, lower), b, overwrite_b=overwrite_b,
                                         check_finite=check_finite)
    if lower:
        y = solve_triangular(c, b, lower=True)
        return solve_triangular(c, y, trans=1, lower=True)
    y = solve_triangular(c, b, trans=1, lower=False)
    return solve_triangular(c, y, lower=False)


def _cho_solve_impl(c_and_lower, b):
    return cho_solve(c_and_lower, b)


# ----------------------------------------------------------------------------------
# Declarations (no NumPy or SciPy callable claimed: see the module docstring)

_TRI = ((0.5, 1.5), (-1.0, 1.0))        # a's entries away from zero: well conditioned
_REG["solve_triangular"] = declare(Primitive(
    "solve_triangular", _st_impl, "nonlinear",
    forward=_st_forward, vjp=_st_vjp, jvp=_st_jvp, second=_st_second, shape=_st_shape,
    tests=(_row((3, 3), (3,), dom=_TRI, lower=True, trans=False, unit_diagonal=False),
           _row((3, 3), (3, 2), dom=_TRI, lower=False, trans=True, unit_diagonal=False),
           _row((4, 4), (4, 2), dom=_TRI, lower=True, trans=True, unit_diagonal=True),
           _row((2, 3, 3), (2, 3, 1), dom=_TRI, lower=False, trans=False,
                unit_diagonal=False))))

class _Const(tuple):
    """A (c, lower) pair in a test row: a tuple spec there is a random array's
    shape, a tuple subclass a constant passed as is."""
    __slots__ = ()


_C3 = np.linalg.cholesky(np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]]))
declare(Primitive("cho_factor", cho_factor, "front_end",
                  tests=(_row((1, 1), True, dom=(0.5, 2.0)),
                         _row((1, 1), False, dom=(0.5, 2.0)))))
declare(Primitive("cho_solve", _cho_solve_impl, "front_end",
                  tests=(_row(_Const((_C3, True)), (3,)),
                         _row(_Const((_C3.T, False)), (3, 2)))))
