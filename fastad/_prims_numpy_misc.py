"""The rest of NumPy's everyday functions on Vars (API.md section 13), each a front
end lowered to entries that have rules: layout variants (rot90, flipud, fliplr,
rollaxis, vsplit / hsplit / dsplit, append) as one indexing record,
unit conversions (degrees, radians) as a product with a constant, nan_to_num as a
selection whose mask is recorded as guards, gradient as a constant linear map along
the axis (NumPy's own finite-difference weights, taken from np.gradient of the
identity), select as nested wheres, linspace between Var endpoints.
"""
from typing import Any, Tuple

import numpy as np

from fastad import _prims_array as _pa
from fastad import _tape
from fastad._registry import Primitive, declare, test_row as _row
from fastad._tape import Var


def _shape(x):
    return x.shape if type(x) is Var else np.shape(x)


def _is_var(*xs):
    return any(type(x) is Var for x in xs)


# ----------------------------------------------------------------------------------
# Layout: the positions NumPy's own function moves, gathered in one record

def flipud(m):
    return _pa._by_index(m, np.flipud)


def fliplr(m):
    return _pa._by_index(m, np.fliplr)


def rot90(m, k=1, axes=(0, 1)):
    return _pa._by_index(m, lambda i: np.rot90(i, k, axes))


def rollaxis(a, axis, start=0):
    return _pa._by_index(a, lambda i: np.rollaxis(i, axis, start))


def _splitter(fn):
    def split(ary, indices_or_sections):
        shape = _shape(ary)
        positions = np.arange(int(np.prod(shape, dtype=np.intp))).reshape(shape)
        pieces = fn(positions, indices_or_sections)     # NumPy's checks and errors
        if type(ary) is not Var:
            a = np.asarray(ary, dtype=np.float64).reshape(-1)
            return [a[p] for p in pieces]
        return [_pa._gather(ary, p) for p in pieces]
    split.__name__ = fn.__name__
    return split


vsplit, hsplit, dsplit = _splitter(np.vsplit), _splitter(np.hsplit), \
    _splitter(np.dsplit)


def append(arr, values, axis=None):
    if axis is None:
        return _tape.concatenate([_pa._flat(arr) if type(arr) is Var
                                  else np.ravel(arr),
                                  _pa._flat(values) if type(values) is Var
                                  else np.ravel(values)])
    return _tape.concatenate([arr, values], axis=axis)


# ----------------------------------------------------------------------------------
# Elementwise

_DEG = 180.0 / np.pi
_RAD = np.pi / 180.0


def degrees(x):
    return x * _DEG


def radians(x):
    return x * _RAD


def real_if_close(a, tol=100):
    return a            # a Var is real: NumPy returns real input unchanged


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN and infinities replaced by constants (derivative zero there), the finite
    elements passed through; which elements are finite is recorded as guards."""
    if type(x) is not Var:
        return np.nan_to_num(np.asarray(x, dtype=np.float64), nan=nan, posinf=posinf,
                             neginf=neginf)
    finite = _tape.finite_guard(x)
    v = x.value
    fill = np.nan_to_num(np.where(finite, 0.0, v), nan=nan, posinf=posinf,
                         neginf=neginf)
    if finite.all():
        return x
    # the guards x < inf and x > -inf tell NaN, inf and -inf apart too: a replay
    # whose elements move between them fails its guards
    return np.where(finite, x, fill)


# ----------------------------------------------------------------------------------
# gradient: linear in f, NumPy's weights along each axis

def _gradient_along(f, spacing, axis, edge_order, ndim):
    n = _shape(f)[axis]
    eye = np.eye(n)
    args = () if spacing is None else (spacing,)
    D = np.gradient(eye, *args, axis=0, edge_order=edge_order)   # out = D @ f
    moved = _pa.moveaxis(f, axis, 0) if axis != 0 else f
    out = _pa.tensordot(D, moved, axes=([1], [0]))
    return _pa.moveaxis(out, 0, axis) if axis != 0 else out


def gradient(f, *varargs, axis=None, edge_order=1):
    shape = _shape(f)
    ndim = len(shape)
    if type(f) is not Var:
        return np.gradient(np.asarray(f, dtype=np.float64), *varargs, axis=axis,
                           edge_order=edge_order)
    axes = tuple(range(ndim)) if axis is None else (
        (axis,) if np.ndim(axis) == 0 else tuple(axis))
    axes = tuple(a + ndim if a < 0 else a for a in axes)
    if len(varargs) == 0:
        spacings = [None] * len(axes)
    elif len(varargs) == 1:
        spacings = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise TypeError("fastad: numpy.gradient: invalid number of arguments")
    for s in spacings:
        if _is_var(s):
            raise TypeError("fastad: numpy.gradient: the spacing must be a constant "
                            "(a number or an array of coordinates), not a Var")
    for a in axes:
        if shape[a] < edge_order + 1:
            raise ValueError("fastad: numpy.gradient: the shape of the array along "
                             "axis %d must be at least edge_order + 1" % a)
    outs = [_gradient_along(f, s, a, edge_order, ndim) for s, a in zip(spacings, axes)]
    return outs[0] if len(outs) == 1 else tuple(outs)


# ----------------------------------------------------------------------------------
# select, linspace

def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("fastad: numpy.select: list of cases must be same length as "
                         "list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = np.where(cond, choice, out)
    return out


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """Evenly spaced values from start to stop: start + (stop - start) * t with t
    NumPy's own fractions, so the endpoints are differentiable."""
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError("fastad: numpy.linspace(dtype=%s) would detach the result "
                        "from the tape" % np.dtype(dtype))
    num = int(num)
    t = np.linspace(0.0, 1.0, num, endpoint=endpoint)
    shape = np.broadcast_shapes(np.shape(start.value if type(start) is Var else start),
                                np.shape(stop.value if type(stop) is Var else stop))
    t = t.reshape((num,) + (1,) * len(shape))
    delta = stop - start
    out = start + delta * t
    if num > 1 and endpoint:
        # NumPy's last sample is stop itself, not start + (stop - start)
        last = stop if type(stop) is Var else np.asarray(stop, dtype=np.float64)
        if _shape(last) != shape:
            last = _pa.broadcast_to(last, shape) if type(last) is Var \
                else np.broadcast_to(last, shape)
        out = _tape.concatenate([out[:-1], _tape.reshape(last, (1,) + shape)
                                 if type(last) is Var else last.reshape((1,) + shape)],
                                axis=0)
    if axis != 0:
        out = _pa.moveaxis(out, 0, axis)
    if retstep:
        div = (num - 1) if endpoint else num
        return out, (delta / div if div > 0 else np.nan)
    return out


# ----------------------------------------------------------------------------------
# The declarations

_FRONT_ENDS: Tuple[Tuple[Any, ...], ...] = (
    ("flipud", flipud, np.flipud, (_row((4, 3)), _row((5,)))),
    ("fliplr", fliplr, np.fliplr, (_row((4, 3)), _row((2, 3, 2)))),
    ("rot90", rot90, np.rot90, (_row((3, 4)), _row((3, 4), 2),
                                 _row((2, 3, 4), -1, axes=(1, 2)))),
    ("rollaxis", rollaxis, np.rollaxis, (_row((2, 3, 4), 2), _row((2, 3, 4), 0, 2))),
    ("vsplit", vsplit, np.vsplit, (_row((4, 3), 2), _row((5, 2), np.array([1, 3])))),
    ("hsplit", hsplit, np.hsplit, (_row((3, 4), 2), _row((6,), 3))),
    ("dsplit", dsplit, np.dsplit, (_row((2, 2, 4), 2),)),
    ("append", append, np.append, (_row((3,), (2,)), _row((2, 3), (2, 3), axis=0),
                                   _row((2, 2), (3,)))),
    ("degrees", degrees, np.degrees, (_row((4,)), _row(()))),
    ("rad2deg", degrees, np.rad2deg, (_row((4,)),)),
    ("radians", radians, np.radians, (_row((4,)), _row(()))),
    ("deg2rad", radians, np.deg2rad, (_row((4,)),)),
    ("real_if_close", real_if_close, np.real_if_close, (_row((4,)),)),
    ("nan_to_num", nan_to_num, np.nan_to_num,
     (_row((4,)), _row(np.array([0.5, np.nan, np.inf, -np.inf]), nan=1.5))),
    ("gradient", gradient, np.gradient,
     (_row((6,)), _row((5,), 0.5), _row((4, 5), axis=1), _row((6,), edge_order=2),
      _row((5,), np.array([0.0, 0.5, 1.5, 2.0, 3.5])))),
    ("select", select, np.select,
     (_row(np.array([[True, False, False], [False, True, False]]), [(3,), (3,)], 0.5),)),
    ("linspace", linspace, np.linspace,
     (_row((), (), 5), _row((2,), (2,), 4, endpoint=False), _row((), (2,), 3))),
)

_UFUNCS = (np.degrees, np.rad2deg, np.radians, np.deg2rad)

for _name, _impl, _np_fn, _rows in _FRONT_ENDS:
    _parser = _pa._parse(_name, ("out", "dtype", "where", "casting", "order", "subok",
                                 "signature")) if _np_fn in _UFUNCS else \
        _pa._parse(_name, ("out",) if _name == "linspace" else ("out", "dtype"))
    declare(Primitive(_name, _impl, "front_end", numpy=(_np_fn,), parse=_parser,
                      tests=_rows))
