"""The rest of NumPy's array API on Vars: front ends composed of existing entries.

Every entry here is `kind="front_end"`: it records nothing of its own, only the
entries it is written with (getitem, reshape, concatenate, sum, matmul, the op
table), so its derivatives of every order, its traces and its sparsity come from
those.  Each takes NumPy's signature and works on plain arrays and floats too (then
it is NumPy's result, computed with the same compositions).

Layout functions whose output elements are each one input element (flip, roll,
diagonal, take, tile, ...) are one getitem with an integer index array: NumPy's own
function run on the flat positions np.arange(size) says which input element each
output element is.  Where an output element is a zero instead (diag of a vector,
triu, tril) the index points one past the end, at a constant 0 appended.

Integer results (argmax, argmin, argsort) are computed from the values and record,
through Var comparisons, the guards that make them hold: under fd.trace a replay
whose values would give another index fails its guards and retraces instead of
reusing a stale index.

Imported at the end of fastad._prims (the declarations are data; this module only
adds to the table).
"""
from typing import Any, Tuple

import numpy as np

from fastad import _array_math, _arrays, _generic, _registry, _tape
from fastad._registry import REGISTRY, Primitive, declare, test_row as _row
from fastad._tape import Var


def _parse(fname, refused=("out", "dtype")):
    """NumPy's signature is the impl's own: only refuse out= and dtype= by name."""
    def parse(*args, **kwargs):
        for k in refused:
            if kwargs.get(k) is not None:
                if k == "dtype" and np.dtype(kwargs[k]) == np.float64:
                    del kwargs[k]
                    continue
                raise TypeError("fastad: numpy.%s(..., %s=...) is not supported on Vars"
                                % (fname, k))
            kwargs.pop(k, None)
        return args, kwargs
    return parse


def _shape(x):
    return x.shape if type(x) is Var else np.shape(x)


def _flat(x):
    return _tape.reshape(x, (-1,))


def _gather(x, positions):
    """x's elements at the flat positions `positions` (an integer array, any shape);
    position size(x) is a constant zero."""
    positions = np.asarray(positions, dtype=np.intp)
    flat = _flat(x)
    n = int(np.prod(_shape(x), dtype=np.intp))
    if (positions == n).any():
        flat = _tape.concatenate([flat, np.zeros(1)])
    if type(flat) is not Var:
        return np.asarray(flat, dtype=np.float64)[positions].copy()
    return flat[positions]


def _by_index(x, fn):
    """fn (a NumPy layout function) applied to x through the flat positions."""
    shape = _shape(x)
    return _gather(x, fn(np.arange(int(np.prod(shape, dtype=np.intp))).reshape(shape)))


def _with_zeros(x, fn):
    """fn run on positions + 1, where fn writes zeros: those become the zero slot."""
    shape = _shape(x)
    n = int(np.prod(shape, dtype=np.intp))
    pos = fn(np.arange(1, n + 1).reshape(shape)) - 1
    return _gather(x, np.where(pos < 0, n, pos))


def _ax(axis, ndim):
    return axis + ndim if axis < 0 else axis


# ----------------------------------------------------------------------------------
# Layout (one getitem)

def flip(m, axis=None):
    return _by_index(m, lambda i: np.flip(i, axis))


def roll(a, shift, axis=None):
    return _by_index(a, lambda i: np.roll(i, shift, axis))


def swapaxes(a, axis1, axis2):
    return _by_index(a, lambda i: np.swapaxes(i, axis1, axis2))


def moveaxis(a, source, destination):
    return _by_index(a, lambda i: np.moveaxis(i, source, destination))


def diagonal(a, offset=0, axis1=0, axis2=1):
    return _by_index(a, lambda i: np.diagonal(i, offset, axis1, axis2))


def diag(v, k=0):
    if len(_shape(v)) == 1:
        return _with_zeros(v, lambda i: np.diag(i, k))
    return _by_index(v, lambda i: np.diag(i, k))


def triu(m, k=0):
    return _with_zeros(m, lambda i: np.triu(i, k))


def tril(m, k=0):
    return _with_zeros(m, lambda i: np.tril(i, k))


def broadcast_to(array, shape):
    return _by_index(array, lambda i: np.broadcast_to(i, shape))


def tile(A, reps):
    return _by_index(A, lambda i: np.tile(i, reps))


def repeat(a, repeats, axis=None):
    return _by_index(a, lambda i: np.repeat(i, repeats, axis))


def take(a, indices, axis=None, mode="raise"):
    return _by_index(a, lambda i: np.take(i, indices, axis, mode=mode))


def take_along_axis(arr, indices, axis=-1):
    return _by_index(arr, lambda i: np.take_along_axis(i, indices, axis))


def _atleast(nd):
    fn = {1: np.atleast_1d, 2: np.atleast_2d, 3: np.atleast_3d}[nd]

    def atleast(*arys):
        out = [_tape.reshape(a, fn(np.empty(_shape(a))).shape) for a in arys]
        return out[0] if len(out) == 1 else tuple(out)
    atleast.__name__ = fn.__name__
    return atleast


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def _stacker(fn, axis_of):
    def stacker(tup, *, dtype=None, casting="same_kind"):
        # NumPy 2's keywords (np.row_stack passes them): float64 only, as everywhere
        if dtype is not None and np.dtype(dtype) != np.float64:
            raise TypeError("fastad: numpy.%s(dtype=%s) would detach the result from "
                            "the tape" % (fn.__name__, np.dtype(dtype)))
        tup = list(tup)
        if not tup:
            raise ValueError("fastad: numpy.%s needs at least one array" % fn.__name__)
        shapes = [fn([np.empty(_shape(a))]).shape for a in tup]
        parts = [_tape.reshape(a, s) for a, s in zip(tup, shapes)]
        return _tape.concatenate(parts, axis=axis_of(len(shapes[0])))
    stacker.__name__ = fn.__name__
    return stacker


vstack = _stacker(np.vstack, lambda nd: 0)
hstack = _stacker(np.hstack, lambda nd: 0 if nd == 1 else 1)
dstack = _stacker(np.dstack, lambda nd: 2)
column_stack = _stacker(np.column_stack, lambda nd: 1)


# ----------------------------------------------------------------------------------
# Reductions and differences

def var(a, axis=None, ddof=0, keepdims=False):
    shape = _shape(a)
    m = _tape.mean(a, axis=axis, keepdims=True)
    d = a - m
    n = np.prod(shape, dtype=np.float64) / np.prod(_shape(m), dtype=np.float64)
    return _tape.sum(d * d, axis=axis, keepdims=keepdims) / (n - ddof)


def std(a, axis=None, ddof=0, keepdims=False):
    return _tape.sqrt(var(a, axis, ddof, keepdims))


def ptp(a, axis=None, keepdims=False):
    return _array_math.amax(a, axis, keepdims) - _array_math.amin(a, axis, keepdims)


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    if weights is None:
        avg = _tape.mean(a, axis=axis, keepdims=keepdims)
        scl = np.prod(_shape(a)) / np.prod(np.shape(np.mean(np.empty(_shape(a)), axis,
                                                            keepdims=keepdims)))
    else:
        if _shape(weights) != _shape(a):
            raise ValueError("fastad: numpy.average(weights=...) must have the shape "
                             "of a, %s (got %s)" % (_shape(a), _shape(weights)))
        scl = _tape.sum(weights, axis=axis, keepdims=keepdims)
        avg = _tape.sum(a * weights, axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def cumsum(a, axis=None):
    """numpy.cumsum: one record of the linear primitive "cumsum" (O(n) in every
    rule: its transpose is the reversed cumulative sum)."""
    if axis is None:
        a, axis = _flat(a), 0
    nd = len(_shape(a))
    if not -nd <= axis < nd:
        raise ValueError("numpy.cumsum: axis %d is out of bounds for an array of "
                         "dimension %d" % (axis, nd))
    axis = _ax(axis, nd)
    if type(a) is not Var:
        return np.cumsum(np.asarray(a, dtype=np.float64), axis=axis)
    return _generic.bind(REGISTRY["cumsum"], (a,), {"axis": axis})


def _cumsum_forward(values, p):
    return np.cumsum(values[0], axis=p["axis"]), None


def _cumsum_vjp(values, out, res, G, p, needs):
    ax = p["axis"] + 1                       # past the direction axis
    return (np.flip(np.cumsum(np.flip(G, ax), axis=ax), ax),)


def _cumsum_jvp(values, out, res, T, p):
    return np.cumsum(T[0], axis=p["axis"] + 1)


def _cumsum_shape(shapes, p):
    (s,) = shapes
    if not 0 <= p["axis"] < len(s):
        raise ValueError("cumsum: axis %s is not an axis of a %d-d array"
                         % (p["axis"], len(s)))
    return tuple(s)


def cumprod(a, axis=None):
    """numpy.cumprod: one record of the primitive "cumprod", whose rules use no
    division (a zero in the input gives the right derivatives): with P the
    exclusive products and S_j = G_j + x_{j+1} S_{j+1}, the cotangent is P_j S_j;
    every rule is O(n) along the axis."""
    if axis is None:
        a, axis = _flat(a), 0
    nd = len(_shape(a))
    if not -nd <= axis < nd:
        raise ValueError("%s: axis %d is out of bounds for an array of dimension %d"
                         % (_qn(np.cumprod), axis, nd))
    axis = _ax(axis, nd)
    if type(a) is not Var:
        return np.cumprod(np.asarray(a, dtype=np.float64), axis=axis)
    return _generic.bind(REGISTRY["cumprod"], (a,), {"axis": axis})


def _cumprod_forward(values, p):
    return np.cumprod(values[0], axis=p["axis"]), None


def _last(x, ax):
    return np.moveaxis(x, ax, -1)


def _exclusive(out_last):
    """1, out_0, ..., out_{n-2} along the last axis: the products before each."""
    return np.concatenate([np.ones(out_last.shape[:-1] + (1,)), out_last[..., :-1]], -1)


def _suffix(x_last, G_last):
    """S_j = G_j + x_{j+1} S_{j+1} along the last axis (S_{n-1} = G_{n-1})."""
    S = np.array(np.broadcast_to(G_last, np.broadcast_shapes(G_last.shape, x_last.shape)),
                 dtype=np.float64)
    for j in range(S.shape[-1] - 2, -1, -1):
        S[..., j] += x_last[..., j + 1] * S[..., j + 1]
    return S


def _cumprod_vjp(values, out, res, G, p, needs):
    ax = p["axis"]
    x, o = _last(values[0], ax), _last(np.asarray(out), ax)
    g = _exclusive(o) * _suffix(x, _last(G, ax + 1))
    return (np.moveaxis(g, -1, ax + 1),)


def _cumprod_tangent(x, excl, T):
    # t_j = t_{j-1} x_j + P_j T_j, all on the last axis
    t = np.array(excl * T, dtype=np.float64)
    for j in range(1, t.shape[-1]):
        t[..., j] += t[..., j - 1] * x[..., j]
    return t


def _cumprod_jvp(values, out, res, T, p):
    ax = p["axis"]
    x, o = _last(values[0], ax), _last(np.asarray(out), ax)
    return np.moveaxis(_cumprod_tangent(x, _exclusive(o), _last(T[0], ax + 1)), -1, ax + 1)


def _cumprod_second(values, out, res, T, g, Gd, p, needs):
    ax = p["axis"]
    x, o = _last(values[0], ax), _last(np.asarray(out), ax)
    excl = _exclusive(o)
    first = excl * _suffix(x, _last(Gd, ax + 1))                     # J^T Gd
    Tl = _last(T[0], ax + 1)
    t = _cumprod_tangent(x, excl, Tl)                               # d out along T
    d_excl = np.concatenate([np.zeros(t.shape[:-1] + (1,)), t[..., :-1]], -1)
    S = _suffix(x, _last(np.asarray(g), ax))
    dS = np.zeros(np.broadcast_shapes(Tl.shape, S.shape))
    for j in range(dS.shape[-1] - 2, -1, -1):        # dS_j = x_{j+1} dS_{j+1} + T_{j+1} S_{j+1}
        dS[..., j] = x[..., j + 1] * dS[..., j + 1] + Tl[..., j + 1] * S[..., j + 1]
    return (np.moveaxis(first + d_excl * S + excl * dS, -1, ax + 1),)


def _axis_shape(fname):
    def shape(shapes, p):
        (s,) = shapes
        if not 0 <= p["axis"] < len(s):
            raise ValueError("%s: axis %s is not an axis of a %d-d array"
                             % (fname, p["axis"], len(s)))
        return tuple(s)
    return shape


def diff(a, n=1, axis=-1):
    nd = len(_shape(a))
    axis = _ax(axis, nd)
    lo = tuple(slice(None, -1) if k == axis else slice(None) for k in range(nd))
    hi = tuple(slice(1, None) if k == axis else slice(None) for k in range(nd))
    for _ in range(n):
        if type(a) is not Var:
            a = np.asarray(a, dtype=np.float64)
        a = a[hi] - a[lo]
    return a


def trace(a, offset=0, axis1=0, axis2=1):
    return _tape.sum(diagonal(a, offset, axis1, axis2), axis=-1)


def _nan_mask(a):
    # x != x is True exactly at NaN (on Vars: recorded as guards, like any comparison)
    return a != a


def nansum(a, axis=None, keepdims=False):
    return _tape.sum(_tape.where(_nan_mask(a), 0.0, a), axis=axis, keepdims=keepdims)


def nanmean(a, axis=None, keepdims=False):
    count = np.sum(~np.asarray(_nan_mask(a)), axis=axis, keepdims=keepdims)
    return nansum(a, axis, keepdims) / count


def trapezoid(y, x=None, dx=1.0, axis=-1):
    nd = len(_shape(y))
    axis = _ax(axis, nd)
    lo = tuple(slice(None, -1) if k == axis else slice(None) for k in range(nd))
    hi = tuple(slice(1, None) if k == axis else slice(None) for k in range(nd))
    if type(y) is not Var:
        y = np.asarray(y, dtype=np.float64)
    d = dx if x is None else diff(x, axis=axis if len(_shape(x)) == nd else -1)
    return _tape.sum(d * (y[hi] + y[lo]), axis=axis) / 2.0


# ----------------------------------------------------------------------------------
# Order statistics: sort (guards), then constant indices and weights

def _reduce_last(a, axis, fname):
    """a with the axes `axis` (None: all) moved to the end and merged into one;
    also the kept shape for keepdims=True."""
    shape = _shape(a)
    nd = len(shape)
    if axis is None:
        axes = list(range(nd))
    else:
        axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
        for k in axes:
            if not -nd <= k < nd:
                raise ValueError("%s: axis %d is out of bounds for an array of "
                                 "dimension %d" % (fname, k, nd))
        axes = sorted(_ax(k, nd) for k in axes)
        if len(set(axes)) != len(axes):
            raise ValueError("%s: repeated axis" % fname)
    rest = [k for k in range(nd) if k not in axes]
    kept = tuple(1 if k in axes else shape[k] for k in range(nd))
    if type(a) is not Var:
        a = np.asarray(a, dtype=np.float64)
    order = rest + axes
    if order != list(range(nd)):
        a = _by_index(a, lambda i: np.transpose(i, order)) if type(a) is Var \
            else np.transpose(a, order)
    m = int(np.prod([shape[k] for k in axes], dtype=np.intp))
    a = _tape.reshape(a, tuple(shape[k] for k in rest) + (m,))
    if m == 0:
        raise ValueError("%s of an empty array" % fname)
    return a, kept, m


def _nan_slices(out, flat, per_q):
    """NumPy's order statistics of a slice holding a NaN are NaN."""
    nan = np.isnan(_values(flat)).any(axis=-1)
    if not nan.any():
        return out
    return out + np.where(nan[..., None] if per_q else nan, np.nan, 0.0)


_QUANTILE_METHODS = ("inverted_cdf", "averaged_inverted_cdf", "closest_observation",
                     "interpolated_inverted_cdf", "hazen", "weibull", "linear",
                     "median_unbiased", "normal_unbiased", "lower", "higher",
                     "midpoint", "nearest")


def _quantile(fn, a, q, axis, method, keepdims, scale):
    fname = _qn(fn)
    if type(q) is Var:
        raise TypeError("%s: q must be a constant (no derivative in q on Vars)" % fname)
    if method not in _QUANTILE_METHODS:
        raise ValueError("%s: method %r is not one of %s"
                         % (fname, method, ", ".join(_QUANTILE_METHODS)))
    qa = np.asarray(q, dtype=np.float64) / scale
    if np.any((qa < 0) | (qa > 1)) or np.any(np.isnan(qa)):
        raise ValueError("%s: quantiles must be in the range [0, %g]" % (fname, scale))
    flat, kept, n = _reduce_last(a, axis, fname)
    s = sort(flat, axis=-1)
    # NumPy's own method on the positions 0..n-1: the virtual index of each q, so
    # every method is s[lo] + (s[lo + 1] - s[lo]) * frac with constant lo, frac
    vi = np.atleast_1d(np.quantile(np.arange(n, dtype=np.float64), qa.reshape(-1),
                                   method=method))
    lo = np.clip(np.floor(vi).astype(np.intp), 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = vi - lo
    below, above = s[..., lo], s[..., hi]
    d = above - below
    # NumPy's lerp: from the nearer end (frac >= 0.5 from above)
    out = _tape.where(frac >= 0.5, above - d * (1.0 - frac), below + d * frac)
    out = _nan_slices(out, flat, True)
    out = _tape.reshape(out, tuple(_shape(out)[:-1]) + qa.shape)     # (..., *q.shape)
    nq = qa.ndim
    if nq:
        out = moveaxis(out, list(range(-nq, 0)), list(range(nq))) if type(out) is Var \
            else np.moveaxis(out, list(range(-nq, 0)), list(range(nq)))
    if keepdims:
        out = _tape.reshape(out, qa.shape + kept)
    return _plain(out) if type(out) is not Var else out


def quantile(a, q, axis=None, overwrite_input=False, method="linear", keepdims=False,
             weights=None, interpolation=None):
    if weights is not None or interpolation is not None:
        raise TypeError("%s(..., %s=...) is not supported on Vars" % (
            _qn(np.quantile), "weights" if weights is not None else "interpolation"))
    return _quantile(np.quantile, a, q, axis, method, keepdims, 1.0)


def percentile(a, q, axis=None, overwrite_input=False, method="linear", keepdims=False,
               weights=None, interpolation=None):
    if weights is not None or interpolation is not None:
        raise TypeError("%s(..., %s=...) is not supported on Vars" % (
            _qn(np.percentile), "weights" if weights is not None else "interpolation"))
    return _quantile(np.percentile, a, q, axis, method, keepdims, 100.0)


def median(a, axis=None, overwrite_input=False, keepdims=False):
    flat, kept, n = _reduce_last(a, axis, _qn(np.median))
    s = sort(flat, axis=-1)
    if n % 2:
        out = s[..., n // 2]
    else:
        out = (s[..., n // 2 - 1] + s[..., n // 2]) / 2.0    # NumPy's mean of the two
    out = _nan_slices(out, flat, False)
    if keepdims:
        out = _tape.reshape(out, kept)
    return _plain(out) if type(out) is not Var else out


def interp(x, xp, fp, left=None, right=None, period=None):
    """numpy.interp, differentiable in x and fp (xp is a constant).  Which interval
    each x falls in is recorded as guards (comparisons with xp)."""
    fname = _qn(np.interp)
    if type(xp) is Var:
        raise TypeError("%s: xp must be a constant on Vars (no derivative in xp); "
                        "use xp.value for its numbers" % fname)
    if period is not None:
        raise TypeError("%s(..., period=...) is not supported on Vars" % fname)
    if not _any_var(x, fp, left, right):
        return _plain(np.interp(x, xp, fp, left, right))
    xp = np.asarray(xp, dtype=np.float64)
    if xp.ndim != 1 or _shape(fp) != xp.shape or xp.size == 0:
        raise ValueError("%s: xp and fp must be 1-D sequences of the same, nonzero "
                         "length (got shapes %s and %s)" % (fname, xp.shape, _shape(fp)))
    if type(fp) is not Var:
        fp = np.asarray(fp, dtype=np.float64)
    xshape = _shape(x)
    xv = np.atleast_1d(_values(x)).reshape(-1)
    xf = _tape.reshape(x, (-1,)) if type(x) is Var else xv
    n = xp.size
    k = np.searchsorted(xp, xv, side="right")            # xp[k-1] <= x < xp[k]
    L, R, E = xv < xp[0], xv > xp[-1], xv == xp[-1]
    if type(x) is Var:
        # the guards that pin each x's interval
        inner = ~(L | R | E)
        if inner.any():
            ii = np.nonzero(inner)[0]
            xf[ii] >= xp[k[ii] - 1]
            xf[ii] < xp[k[ii]]
        for mask, cmp in ((L, lambda v: v < xp[0]), (R, lambda v: v > xp[-1]),
                          (E, lambda v: v == xp[-1])):
            if mask.any():
                cmp(xf[np.nonzero(mask)[0]])
    if n == 1:
        base = _tape.reshape(fp, (1,))[np.zeros(xv.size, dtype=np.intp)] \
            if type(fp) is Var else np.full(xv.size, fp[0])
        j = None
    else:
        j = np.clip(k - 1, 0, n - 2)
        slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        base = slope * (xf - xp[j]) + fp[j]
    last = fp[n - 1]
    out = _tape.where(E, last, base)
    out = _tape.where(L, fp[0] if left is None else left, out)
    out = _tape.where(R, last if right is None else right, out)
    out = _tape.reshape(out, xshape)
    return _plain(out) if type(out) is not Var else out


# ----------------------------------------------------------------------------------
# Products

def vdot(a, b):
    return _tape.sum(_flat(a) * _flat(b))


def tensordot(a, b, axes=2):
    na, nb = len(_shape(a)), len(_shape(b))
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    ax_a, ax_b = [_ax(k, na) for k in ax_a], [_ax(k, nb) for k in ax_b]
    letters = "abcdefghijklmnopqrstuvwxyz"
    sa = list(letters[:na])
    sb = list(letters[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for k, c in enumerate(sa) if k not in ax_a] + \
        [c for k, c in enumerate(sb) if k not in ax_b]
    return _arrays.einsum("%s,%s->%s" % ("".join(sa), "".join(sb), "".join(out)), a, b)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sublist(sub, fname):
    out = []
    for e in sub:
        if e is Ellipsis:
            out.append("...")
        elif isinstance(e, (int, np.integer)) and 0 <= e < len(_LETTERS):
            out.append(_LETTERS[int(e)])
        else:
            raise ValueError("%s: a subscript in sublist form is an integer in "
                             "[0, %d) or Ellipsis, got %r" % (fname, len(_LETTERS), e))
    return "".join(out)


def _einsum_spec(args, fname):
    """(explicit subscripts with no '...', operands) of a call in either form."""
    if isinstance(args[0], str):
        spec, ops = args[0], list(args[1:])
    else:
        # sublist form: op, sublist, op, sublist, ..., [output sublist]
        ops = list(args[0::2][:len(args) // 2])
        subs = [_sublist(s, fname) for s in args[1::2][:len(ops)]]
        spec = ",".join(subs)
        if len(args) % 2:
            spec += "->" + _sublist(args[-1], fname)
    spec = spec.replace(" ", "")
    explicit = "->" in spec
    lhs, out = spec.split("->") if explicit else (spec, None)
    ins = lhs.split(",")
    if len(ins) != len(ops):
        raise ValueError("%s: %d operands for %d subscript groups"
                         % (fname, len(ops), len(ins)))
    for sub in ins + ([out] if explicit else []):
        rest = sub.replace("...", "", 1)
        if not all(c in _LETTERS for c in rest):
            raise ValueError("%s: invalid subscripts %r" % (fname, sub))
    free = [c for c in _LETTERS if c not in spec]
    ells = []
    for i, sub in enumerate(ins):
        if "..." in sub:
            ne = len(_shape(ops[i])) - (len(sub) - 3)
            if ne < 0:
                raise ValueError("%s: operand %d has %d dimensions, fewer than its "
                                 "subscripts %r" % (fname, i, len(_shape(ops[i])), sub))
            ells.append(ne)
        else:
            ells.append(None)
    n_ell = max([e for e in ells if e is not None], default=0)
    ell = "".join(free[:n_ell])
    ins = [sub if e is None else sub.replace("...", ell[n_ell - e:]) for sub, e in
           zip(ins, ells)]
    if explicit:
        out = out.replace("...", ell)
    else:
        counts = {}
        for sub in ins:
            for c in sub:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    return ins, out, ops


def einsum(*operands, **kwargs):
    """numpy.einsum on Vars: '...' and the sublist form are rewritten as explicit
    subscripts, a repeated index within one operand is its diagonal (one getitem),
    size-1 broadcast dimensions are broadcast (one getitem), and the contraction is
    one einsum record (fastad._arrays.einsum)."""
    fname = _qn(np.einsum)
    if not operands:
        raise TypeError("%s: no subscripts given" % fname)
    if not any(type(o) is Var for o in operands):
        args = list(operands)
        if isinstance(args[0], str):
            args[1:] = [np.asarray(o, dtype=np.float64) for o in args[1:]]
        else:                       # sublist form: the operands at even positions
            for i in range(0, 2 * (len(args) // 2), 2):
                args[i] = np.asarray(args[i], dtype=np.float64)
        return _plain(np.einsum(*args))
    ins, out, ops = _einsum_spec(operands, fname)
    for i, (sub, op) in enumerate(zip(ins, ops)):
        if len(sub) != len(_shape(op)):
            raise ValueError("%s: operand %d has %d dimensions for subscripts %r"
                             % (fname, i, len(_shape(op)), sub))
    sizes = {}
    for sub, op in zip(ins, ops):
        for c, n in zip(sub, _shape(op)):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ValueError("%s: subscript %r has sizes %d and %d"
                                 % (fname, c, sizes[c], n))
            sizes[c] = max(sizes.get(c, 1), n)
    new_ins, new_ops = [], []
    for sub, op in zip(ins, ops):
        if type(op) is not Var:
            op = np.asarray(op, dtype=np.float64)
        uniq = "".join(dict.fromkeys(sub))
        if uniq != sub:
            # a repeated index: the diagonal, as a getitem
            op = _by_index(op, lambda i, s=sub, u=uniq: np.einsum(s + "->" + u, i)) \
                if type(op) is Var else np.einsum(sub + "->" + uniq, op)
            sub = uniq
        full = tuple(sizes[c] for c in sub)
        if _shape(op) != full:
            op = broadcast_to(op, full) if type(op) is Var else np.broadcast_to(op, full)
        new_ins.append(sub)
        new_ops.append(op)
    return _arrays.einsum(",".join(new_ins) + "->" + out, *new_ops)


def _einsum_parse(*operands, **kw):
    kw.pop("optimize", None)
    for k in ("out", "order", "casting"):
        if kw.get(k) is not None:
            raise TypeError("fastad: %s(..., %s=...) is not supported on Vars"
                            % (_qn(np.einsum), k))
        kw.pop(k, None)
    dtype = kw.pop("dtype", None)
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError("fastad: %s(..., dtype=%s): Vars are float64"
                        % (_qn(np.einsum), dtype))
    if kw:
        raise TypeError("fastad: %s got unsupported keyword arguments %s on Vars"
                        % (_qn(np.einsum), sorted(kw)))
    return operands, {}


def kron(a, b):
    sa, sb = _shape(a), _shape(b)
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
    ia = tuple(v for s in sa for v in (s, 1))
    ib = tuple(v for s in sb for v in (1, s))
    out = _tape.reshape(a, ia) * _tape.reshape(b, ib)
    return _tape.reshape(out, tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    if _shape(a)[axisa] != 3 or _shape(b)[axisb] != 3:
        raise ValueError("fastad: numpy.cross on Vars needs vectors of length 3 "
                         "(got %s and %s)" % (_shape(a)[axisa], _shape(b)[axisb]))
    a = moveaxis(a, axisa, -1) if type(a) is Var else np.moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1) if type(b) is Var else np.moveaxis(b, axisb, -1)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    c = _tape.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, axisc) if axisc not in (-1, len(_shape(c)) - 1) else c


def polyval(p, x):
    y = 0.0
    for k in range(_shape(p)[0]):
        y = y * x + p[k]
    return y


def _vector(x, fname):
    shape = _shape(x)
    if len(shape) > 1:
        raise ValueError("%s: the operands must be 1-D (got shape %s)" % (fname, shape))
    if type(x) is not Var:
        x = np.asarray(x, dtype=np.float64)
    if len(shape) == 0:
        x = _tape.reshape(x, (1,))
    if _shape(x)[0] == 0:
        raise ValueError("%s: an operand is empty" % fname)
    return x


def _convolution(fn, a, v, mode, reverse_v):
    fname = _qn(fn)
    if mode not in ("full", "same", "valid"):
        raise ValueError("%s: mode must be 'full', 'same' or 'valid' (got %r)"
                         % (fname, mode))
    a, v = _vector(a, fname), _vector(v, fname)
    n, m = _shape(a)[0], _shape(v)[0]
    if not _any_var(a, v):
        return fn(a, v, mode)
    if reverse_v:
        v = v[::-1]
    lo, hi = min(n, m), max(n, m)
    if mode == "full":
        start, length = 0, n + m - 1
    elif mode == "valid":
        start, length = lo - 1, hi - lo + 1
    else:
        s = (lo - 1) // 2
        # numpy.correlate with the longer operand second swaps them and reverses
        start, length = (lo - 1 - s if reverse_v and n < m else s), hi
    # out[k] = sum_i a[i] v[k - i]: a matrix gathered from v (position m: a zero)
    k = np.arange(start, start + length)[:, None]
    pos = k - np.arange(n)[None, :]
    pos = np.where((pos >= 0) & (pos < m), pos, m)
    return _arrays.matmul(_gather(v, pos), a)


def convolve(a, v, mode="full"):
    return _convolution(np.convolve, a, v, mode, False)


def correlate(a, v, mode="valid"):
    return _convolution(np.correlate, a, v, mode, True)


# ----------------------------------------------------------------------------------
# Padding and splitting (one getitem each)

_PAD_BY_INDEX = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    fname = _qn(np.pad)
    if type(array) is not Var:
        return np.pad(np.asarray(array, dtype=np.float64), pad_width, mode, **kwargs)
    if mode == "constant":
        extra = set(kwargs) - {"constant_values"}
        c = kwargs.get("constant_values", 0.0)
        if type(c) is Var or (isinstance(c, (list, tuple)) and
                              any(type(e) is Var for e in np.ravel(np.array(c, dtype=object)))):
            raise TypeError("%s: constant_values must be constants on Vars" % fname)
    elif mode in _PAD_BY_INDEX:
        extra = set(kwargs) - {"reflect_type"}
        if kwargs.get("reflect_type", "even") != "even":
            raise ValueError("%s: reflect_type='odd' is not supported on Vars" % fname)
    else:
        raise ValueError("%s: mode %r is not supported on Vars (supported: constant, %s)"
                         % (fname, mode, ", ".join(_PAD_BY_INDEX)))
    if extra:
        raise TypeError("%s(mode=%r) got unsupported keyword arguments %s"
                        % (fname, mode, sorted(extra)))
    if mode != "constant":
        return _by_index(array, lambda i: np.pad(i, pad_width, mode, **kwargs))
    out = _with_zeros(array, lambda i: np.pad(i, pad_width, "constant"))
    fill = np.pad(np.zeros(_shape(array)), pad_width, "constant", constant_values=c)
    return out + fill if np.any(fill) else out


def _splitter(fn):
    def split(ary, indices_or_sections, axis=0):
        shape = _shape(ary)
        positions = np.arange(int(np.prod(shape, dtype=np.intp))).reshape(shape)
        pieces = fn(positions, indices_or_sections, axis)   # NumPy's checks and errors
        if type(ary) is not Var:
            a = np.asarray(ary, dtype=np.float64).reshape(-1)
            return [a[p] for p in pieces]
        return [_gather(ary, p) for p in pieces]
    split.__name__ = fn.__name__
    return split


split = _splitter(np.split)
array_split = _splitter(np.array_split)


# ----------------------------------------------------------------------------------
# Elementwise

def logaddexp(x1, x2):
    m = _tape.maximum(x1, x2)
    return m + _tape.log(_tape.exp(x1 - m) + _tape.exp(x2 - m))


def logaddexp2(x1, x2):
    m = _tape.maximum(x1, x2)
    return m + _tape.log2(_tape.exp2(x1 - m) + _tape.exp2(x2 - m))


def sinc(x):
    zero = x == 0
    safe = _tape.where(zero, 1.0, x)
    return _tape.where(zero, 1.0, _tape.sin(np.pi * safe) / (np.pi * safe))


def _any_var(*xs):
    return any(type(x) is Var for x in xs)


def _plain(out):
    return float(out) if np.ndim(out) == 0 else out


def _qn(fn):
    """The NumPy function's name with its module (numpy.median), for messages."""
    return _registry.qualified_name(fn)


def round_(a, decimals=0):
    """numpy.round: one record of the primitive "round" (its value is NumPy's own
    rounding, replayed; its derivative is zero everywhere, as floor's and ceil's)."""
    if not isinstance(decimals, (int, np.integer)):
        raise TypeError("%s: decimals must be an integer, got %r"
                        % (_qn(np.round), decimals))
    if type(a) is not Var:
        return _plain(np.round(np.asarray(a, dtype=np.float64), int(decimals)))
    return _generic.bind(REGISTRY["round"], (a,), {"decimals": int(decimals)})


round_.__name__ = "round"


def _round_forward(values, p):
    return np.round(values[0], p["decimals"]), None


def _zero_vjp(values, out, res, G, p, needs):
    # a zero cotangent, broadcast against the operand (no array of its size)
    return tuple(np.zeros(G.shape[:1] + (1,) * np.ndim(v)) for v in values)


def _zero_jvp(values, out, res, T, p):
    k = next(t.shape[0] for t in T if t is not None)
    return np.zeros((k,) + np.shape(out))


def _same_shape(shapes, p):
    return tuple(shapes[0])


def rint(x):
    return round_(x, 0)


def trunc(x):
    # sign(x) floor(|x|): exact, and its derivative is zero (sign's and floor's)
    return _tape.sign(x) * _tape.floor(_tape.abs(x))


def fmod(x1, x2):
    # C's fmod has the sign of x1 and the magnitude of mod(|x1|, |x2|) (exact);
    # the derivatives are fmod's: 1 in x1, -trunc(x1 / x2) in x2
    return _tape.sign(x1) * _tape.mod(_tape.abs(x1), _tape.abs(x2))


def _fextreme(fn, pick):
    def f(x1, x2):
        if not _any_var(x1, x2):
            return _plain(fn(np.asarray(x1, dtype=np.float64),
                             np.asarray(x2, dtype=np.float64)))
        # NaN loses to a number (NumPy's fmax/fmin): each NaN is replaced by the
        # other operand before the maximum (masks: comparisons, guards under trace)
        a = _tape.where(_nan_mask(x1), x2, x1)
        b = _tape.where(_nan_mask(x2), x1, x2)
        return pick(a, b)
    f.__name__ = fn.__name__
    return f


fmax = _fextreme(np.fmax, _tape.maximum)
fmin = _fextreme(np.fmin, _tape.minimum)


def real(val):
    """A Var is real: numpy.real is the Var itself."""
    if type(val) is Var:
        return val
    return _plain(np.real(np.asarray(val, dtype=np.float64)).copy())


def imag(val):
    """A Var is real: numpy.imag is zeros of its shape (a constant)."""
    z = np.zeros(_shape(val))
    return float(z) if z.ndim == 0 else z


def _nan_extreme(fn, extreme, fill):
    def f(a, axis=None, keepdims=False):
        if type(a) is not Var:
            return _plain(fn(np.asarray(a, dtype=np.float64), axis=axis, keepdims=keepdims))
        nan = np.asarray(_nan_mask(a))
        out = extreme(_tape.where(nan, fill, a), axis, keepdims)
        all_nan = np.all(nan, axis=axis, keepdims=keepdims)
        if np.any(all_nan):
            # NumPy's result for an all-NaN slice (it warns too)
            import warnings
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=3)
            out = out + np.where(all_nan, np.nan, 0.0)
        return out
    f.__name__ = fn.__name__
    return f


nanmax = _nan_extreme(np.nanmax, _array_math.amax, -np.inf)
nanmin = _nan_extreme(np.nanmin, _array_math.amin, np.inf)


# ----------------------------------------------------------------------------------
# Integer results, with guards

def _values(x):
    return x.value if type(x) is Var else np.asarray(x, dtype=np.float64)


def _arg_extreme(fn, strict, loose):
    def arg(a, axis=None, keepdims=False):
        idx = fn(_values(a), axis=axis, keepdims=keepdims)
        if type(a) is Var:
            # the chosen element beats those before it strictly and ties or beats
            # those after it: exactly the conditions for this index (guards)
            v = _flat(a) if axis is None else moveaxis(a, axis, -1)
            if axis is None:
                best = v[int(idx)]
            else:
                k = np.asarray(fn(v.value, axis=-1))[..., None]
                best = take_along_axis(v, k, -1)
            strict(best, v)
            loose(best, v)
        return idx
    arg.__name__ = fn.__name__
    return arg


argmax = _arg_extreme(np.argmax, lambda b, v: b > v, lambda b, v: b >= v)
argmin = _arg_extreme(np.argmin, lambda b, v: b < v, lambda b, v: b <= v)


def argsort(a, axis=-1, kind=None, order=None):
    if order is not None:
        raise TypeError("fastad: numpy.argsort(order=...) is not supported on Vars")
    idx = np.argsort(_values(a), axis=axis, kind="stable")
    if type(a) is Var:
        # sorted neighbours: which are strictly increasing and which tie (guards)
        s = take_along_axis(a, idx, axis)
        nd = len(_shape(a))
        ax = _ax(axis, nd)
        lo = tuple(slice(None, -1) if k == ax else slice(None) for k in range(nd))
        hi = tuple(slice(1, None) if k == ax else slice(None) for k in range(nd))
        if s.shape[ax] > 1:
            s[lo] < s[hi]
            s[lo] == s[hi]
    return idx


def _zero_guards(a):
    if type(a) is Var:
        a != 0.0            # which elements are zero: guards under fd.trace


def nonzero(a):
    _zero_guards(a)
    return np.nonzero(_values(a))


def flatnonzero(a):
    _zero_guards(a)
    return np.flatnonzero(_values(a))


def argwhere(a):
    _zero_guards(a)
    return np.argwhere(_values(a))


def searchsorted(a, v, side="left", sorter=None):
    if side not in ("left", "right"):
        raise ValueError("%s: side must be 'left' or 'right' (got %r)"
                         % (_qn(np.searchsorted), side))
    av, vv = _values(a), _values(v)
    if np.ndim(av) != 1:
        raise ValueError("%s: a must be 1-D (got shape %s)"
                         % (_qn(np.searchsorted), np.shape(av)))
    idx = np.searchsorted(av, vv, side=side, sorter=sorter)
    if _any_var(a, v):
        # a[k-1] < v <= a[k] (side left) or a[k-1] <= v < a[k] (right), with a
        # padded by -inf and +inf: the guards that make each index hold
        s = a if sorter is None else (a[np.asarray(sorter, dtype=np.intp)]
                                      if type(a) is Var else np.asarray(av)[sorter])
        ext = _tape.concatenate([np.array([-np.inf]), s, np.array([np.inf])])
        k = np.atleast_1d(idx).reshape(-1)
        vf = _tape.reshape(v, (-1,)) if type(v) is Var else np.reshape(vv, -1)
        lo, hi = ext[k], ext[k + 1]
        if side == "left":
            lo < vf
            vf <= hi
        else:
            lo <= vf
            vf < hi
    return idx


def sort(a, axis=-1, kind=None, order=None):
    if axis is None:
        a, axis = _flat(a), -1
    return take_along_axis(a, argsort(a, axis, kind, order), axis)


# ----------------------------------------------------------------------------------
# Constants of an operand's shape (no derivative: a plain array)

def zeros_like(a, dtype=None, order="K", subok=True, shape=None):
    return np.zeros(_shape(a) if shape is None else shape, dtype=dtype or np.float64)


def ones_like(a, dtype=None, order="K", subok=True, shape=None):
    return np.ones(_shape(a) if shape is None else shape, dtype=dtype or np.float64)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return np.full(_shape(a) if shape is None else shape, fill_value,
                   dtype=dtype or np.float64)


def _like_parse(fname):
    def parse(a, *args, **kwargs):
        return (a,) + args, kwargs
    return parse


# ----------------------------------------------------------------------------------
# The declarations

_POS = (0.5, 1.5)
# numpy.trapezoid is NumPy 2's name; NumPy 1 has only numpy.trapz
_TRAPEZOID = getattr(np, "trapezoid", None) or getattr(np, "trapz")

_FRONT_ENDS: Tuple[Tuple[Any, ...], ...] = (
    # name, impl, NumPy callable, methods, rows
    ("flip", flip, np.flip, (), (_row((5,)), _row((3, 4), axis=1))),
    ("roll", roll, np.roll, (), (_row((5,), 2), _row((3, 4), -1, axis=0))),
    ("swapaxes", swapaxes, np.swapaxes, (), (_row((2, 3, 4), 0, 2),)),
    ("moveaxis", moveaxis, np.moveaxis, (), (_row((2, 3, 4), 0, -1),)),
    ("diagonal", diagonal, np.diagonal, (),
     (_row((4, 4)), _row((3, 5), 1), _row((2, 3, 3), 0, 1, 2))),
    ("diag", diag, np.diag, (), (_row((4, 4)), _row((3,)), _row((3,), 1))),
    ("triu", triu, np.triu, (), (_row((4, 4)), _row((3, 5), -1))),
    ("tril", tril, np.tril, (), (_row((4, 4)), _row((3, 5), 1))),
    ("broadcast_to", broadcast_to, np.broadcast_to, (), (_row((3,), shape=(2, 3)),)),
    ("tile", tile, np.tile, (), (_row((3,), 2), _row((2, 2), reps=(2, 1)))),
    ("repeat", repeat, np.repeat, (), (_row((3,), 2), _row((2, 3), 2, axis=1))),
    ("take", take, np.take, (),
     (_row((5,), np.array([0, 3, 3])), _row((3, 4), np.array([1, 0]), axis=1))),
    ("take_along_axis", take_along_axis, np.take_along_axis, (),
     (_row((3, 4), np.array([[0], [3], [1]]), axis=1),)),
    ("atleast_1d", atleast_1d, np.atleast_1d, (), (_row(()), _row((3,)))),
    ("atleast_2d", atleast_2d, np.atleast_2d, (), (_row((3,)),)),
    ("atleast_3d", atleast_3d, np.atleast_3d, (), (_row((3, 2)),)),
    ("vstack", vstack, np.vstack, (), (_row([(3,), (3,)]), _row([(2, 3), (1, 3)]))),
    ("hstack", hstack, np.hstack, (), (_row([(3,), (2,)]), _row([(2, 3), (2, 1)]))),
    ("dstack", dstack, np.dstack, (), (_row([(3,), (3,)]),)),
    ("column_stack", column_stack, np.column_stack, (), (_row([(3,), (3, 2)]),)),
    ("var", var, np.var, (),
     (_row((5,)), _row((4, 3), axis=0), _row((4, 3), axis=1, ddof=1, keepdims=True))),
    ("std", std, np.std, (), (_row((5,)), _row((4, 3), axis=1, ddof=1))),
    ("ptp", ptp, np.ptp, (), (_row((5,)), _row((4, 3), axis=1))),
    ("average", average, np.average, (),
     (_row((5,)), _row((4, 3), axis=1), _row((4, 3), weights=np.arange(1.0, 13).reshape(4, 3),
                                             axis=0))),
    ("diff", diff, np.diff, (), (_row((5,)), _row((3, 4), axis=0), _row((6,), 2))),
    ("trace", trace, np.trace, (), (_row((4, 4)), _row((3, 5), 1))),
    ("nansum", nansum, np.nansum, (), (_row((5,)), _row((3, 4), axis=1))),
    ("nanmean", nanmean, np.nanmean, (), (_row((5,)), _row((3, 4), axis=0))),
    ("trapezoid", trapezoid, _TRAPEZOID, (),
     (_row((5,)), _row((3, 4), dx=0.5), _row((4,), np.array([0.0, 0.5, 1.5, 2.0])))),
    ("vdot", vdot, np.vdot, (), (_row((4,), (4,)), _row((2, 3), (2, 3)))),
    ("tensordot", tensordot, np.tensordot, (),
     (_row((3, 4), (4, 3), 1), _row((2, 3, 4), (3, 4, 5)),
      _row((3, 4), (3, 2), axes=([0], [0])))),
    ("kron", kron, np.kron, (), (_row((2,), (3,)), _row((2, 2), (3, 1)))),
    ("cross", cross, np.cross, (), (_row((3,), (3,)), _row((4, 3), (3,)))),
    ("polyval", polyval, np.polyval, (), (_row((4,), (5,)), _row((3,), ()))),
    ("logaddexp", logaddexp, np.logaddexp, (), (_row((4,), (4,)), _row((3, 4), (4,)))),
    ("logaddexp2", logaddexp2, np.logaddexp2, (), (_row((4,), (4,)),)),
    ("sinc", sinc, np.sinc, (), (_row((5,)), _row((3, 4), dom=(0.1, 2.0)))),
    ("median", median, np.median, (),
     (_row((5,)), _row((4,)), _row((3, 4), axis=1), _row((3, 4, 2), axis=(0, 2), keepdims=True),
      _row((3, 4), axis=0, keepdims=True))),
    ("quantile", quantile, np.quantile, (),
     (_row((6,), 0.3), _row((3, 5), np.array([0.1, 0.5, 0.95]), axis=1),
      _row((4, 3), 0.75, axis=0, keepdims=True), _row((7,), 0.4, method="nearest"),
      _row((7,), np.array([0.2, 0.61]), method="midpoint"),
      _row((2, 3, 4), 0.35, axis=(1, 2), method="hazen"))),
    ("percentile", percentile, np.percentile, (),
     (_row((6,), 30.0), _row((3, 5), np.array([10.0, 90.0]), axis=0),
      _row((5,), 42.0, method="lower"))),
    ("interp", interp, np.interp, (),
     (_row((6,), np.array([-0.8, -0.1, 0.3, 0.9]), (4,)),
      _row((3, 2), np.array([-0.5, 0.0, 0.5]), np.array([1.0, -2.0, 0.5])),
      _row((5,), np.array([-0.5, 0.0, 0.5]), (3,), left=-3.0, right=4.0, dom=(-1.0, 1.0)),
      _row((), np.array([-1.0, 1.0]), (2,)))),
    ("convolve", convolve, np.convolve, (),
     (_row((5,), (3,)), _row((3,), (5,), mode="same"), _row((6,), (4,), mode="same"),
      _row((6,), (3,), mode="valid"), _row((), (3,)))),
    ("correlate", correlate, np.correlate, (),
     (_row((5,), (3,)), _row((4,), (6,), mode="same"), _row((6,), (4,), mode="same"),
      _row((3,), (5,), mode="full"), _row((4,), (4,), mode="valid"))),
    ("pad", pad, np.pad, (),
     (_row((4,), 2), _row((3, 4), pad_width=((1, 0), (2, 1)), constant_values=1.5),
      _row((3, 4), pad_width=((1, 2), (0, 3)), mode="edge"),
      _row((5,), pad_width=(3, 2), mode="reflect"),
      _row((3, 3), 2, mode="symmetric"), _row((2, 3), pad_width=((2, 3), (4, 1)), mode="wrap"),
      _row((3, 2), 1, constant_values=((1.0, 2.0), (3.0, 4.0))))),
    ("split", split, np.split, (),
     (_row((6,), 3), _row((4, 6), [1, 4], axis=1))),
    ("array_split", array_split, np.array_split, (),
     (_row((7,), 3), _row((5, 3), 2, axis=0))),
    ("rint", rint, np.rint, (), (_row((5,), dom=(-3.0, 3.0)),)),
    ("trunc", trunc, np.trunc, (), (_row((5,), dom=(-3.0, 3.0)), _row((), dom=(-3.0, 3.0)))),
    ("fmod", fmod, np.fmod, (),
     (_row((4,), (4,), dom=((-3.0, 3.0), (0.5, 1.5))),
      _row((3, 4), (4,), dom=((-3.0, 3.0), (-1.5, -0.5))), _row((), (), dom=((1, 3), (0.3, 1))))),
    ("fmax", fmax, np.fmax, (),
     (_row((4,), (4,)), _row((3, 4), (4,)), _row(np.array([np.nan, 0.5, np.nan]), (3,)),
      _row((3,), np.array([np.nan, 0.5, np.nan])))),
    ("fmin", fmin, np.fmin, (),
     (_row((4,), (4,)), _row(np.array([np.nan, 0.5, np.nan]), (3,)))),
    ("real", real, np.real, (), (_row((4,)), _row((2, 3)))),
    ("nanmax", nanmax, np.nanmax, (), (_row((5,)), _row((3, 4), axis=1, keepdims=True))),
    ("nanmin", nanmin, np.nanmin, (), (_row((5,)), _row((3, 4), axis=0))),
)

for _name, _impl, _np_fn, _methods, _rows in _FRONT_ENDS:
    _parser = _parse(_name, ("out", "dtype", "where", "casting", "order", "subok",
                             "signature")) if isinstance(_np_fn, np.ufunc) else _parse(_name)
    declare(Primitive(_name, _impl, "front_end", numpy=(_np_fn,), methods=_methods,
                      parse=_parser, tests=_rows))

_QUERIES: Tuple[Tuple[Any, ...], ...] = (
        ("argmax", argmax, np.argmax, (), (_row((5,)), _row((3, 4), axis=1))),
        ("argmin", argmin, np.argmin, (), (_row((5,)), _row((3, 4), axis=0))),
        ("argsort", argsort, np.argsort, (), (_row((5,)), _row((3, 4), axis=0))),
        ("zeros_like", zeros_like, np.zeros_like, (), (_row((3, 2)),)),
        ("ones_like", ones_like, np.ones_like, (), (_row((3, 2)),)),
        ("full_like", full_like, np.full_like, (), (_row((3, 2), 2.5),)),
        ("imag", imag, np.imag, (), (_row((3, 2)), _row(()))),
        ("nonzero", nonzero, np.nonzero, (), (_row((5,)), _row((3, 4)))),
        ("flatnonzero", flatnonzero, np.flatnonzero, (), (_row((5,)), _row((3, 4)))),
        ("argwhere", argwhere, np.argwhere, (), (_row((5,)), _row((3, 4)))),
        ("searchsorted", searchsorted, np.searchsorted, (),
         (_row(np.array([-0.5, 0.0, 0.5]), (5,)), _row(np.array([-0.5, 0.0, 0.5]), (3, 2),
                                                        side="right"),
          _row(np.array([-0.5, 0.0, 0.5]), ()))))
for _name, _impl, _np_fn, _methods, _rows in _QUERIES:
    declare(Primitive(_name, _impl, "query", numpy=(_np_fn,), methods=_methods,
                      parse=_like_parse(_name), tests=_rows))

declare(Primitive("cumsum", cumsum, "linear", numpy=(np.cumsum,), parse=_parse("cumsum"),
                  forward=_cumsum_forward, vjp=_cumsum_vjp, jvp=_cumsum_jvp,
                  shape=_cumsum_shape,
                  tests=(_row((5,)), _row((3, 4), axis=0), _row((3, 4)),
                         _row((2, 3, 4), axis=1), _row((40,)))))

declare(Primitive("einsum", einsum, "front_end", numpy=(np.einsum,), parse=_einsum_parse,
                  tests=(_row("ij,jk->ik", (3, 4), (4, 5)), _row("ij,ij->", (5, 4), (5, 4)),
                         _row("i,j", (3,), (4,)), _row("...ij,...jk->...ik", (2, 3, 4), (4, 5)),
                         _row("...i,...i", (2, 3), (3,)), _row("ij...->...", (3, 4, 2)),
                         _row("ii->", (3, 3)), _row("ii->i", (3, 3)), _row("iij->j", (3, 3, 2)),
                         _row("ii,i->i", (3, 3), (3,)), _row("ii", (4, 4)),
                         _row("i...,i...->...", (3, 1, 2), (3, 4, 1)))))

declare(Primitive("cumprod", cumprod, "nonlinear", numpy=(np.cumprod,),
                  parse=_parse("cumprod"), forward=_cumprod_forward, vjp=_cumprod_vjp,
                  jvp=_cumprod_jvp, second=_cumprod_second, shape=_axis_shape("cumprod"),
                  tests=(_row((5,)), _row((3, 4), axis=0), _row((3, 4)),
                         _row((2, 3, 4), axis=1), _row((3, 5), axis=-1, dom=(0.5, 1.5)))))

declare(Primitive("round", round_, "piecewise_linear", numpy=(np.round, np.around),
                  parse=_parse("round"), forward=_round_forward, vjp=_zero_vjp,
                  jvp=_zero_jvp, shape=_same_shape, sparsity="elementwise",
                  tests=(_row((5,), dom=(-3.0, 3.0)), _row((3, 4), decimals=1),
                         _row((4,), decimals=-1, dom=(-300.0, 300.0)), _row(()))))

declare(Primitive("sort", sort, "front_end", numpy=(np.sort,), methods=(),
                  parse=_parse("sort", ()),
                  tests=(_row((5,)), _row((3, 4), axis=0))))

del _name, _impl, _np_fn, _methods, _rows, _parser
