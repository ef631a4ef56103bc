# Dual numbers: forward mode without a tape.
#
# A Dual carries a value and a tangent (a float, or a 1-D ndarray for several
# directions at once).  Every operation reads its value and first partials from the
# op table (fad_eval in csrc/fastad_ops.h), the same rows the tape records with, so
# forward and reverse mode can never disagree about a derivative rule:
#     tangent(f(x, y)) = dx * tangent(x) + dy * tangent(y)
# For the constant-operand forms NAME_C1 (x op c) and NAME_C0 (c op x), fad_eval
# returns the partial with respect to the Dual in dx.
cimport cython
from libc.math cimport isfinite

import numbers
import numpy as np

import fastad._tape as _tape
from fastad import _registry
from fastad._tape cimport int_to_double

from fastad._core cimport (
    fad_eval, fad_op_kind, FAD_NUM_SCALAR_OPS, FAD_KIND_BINARY, FAD_COPY, FAD_NEG,
    FAD_ABS, FAD_SQUARE, FAD_ADD, FAD_SUB, FAD_MUL, FAD_DIV, FAD_POW, FAD_MOD,
    FAD_FLOORDIV, FAD_EXP, FAD_LOG1P, FAD_SOFTPLUS,
)


# float() / complex() of a Dual (see Dual.__float__)
_ESCAPE = ("%s() of a fastad Dual would drop its tangent; use fd.sin / np.sin instead "
           "of math.sin, or d.value to read the number")


cdef inline object _scale(double d, object t):
    """d * t for a tangent t (float or ndarray) with the absolute-zero rule of the
    tape sweeps: the product is 0 when either factor is 0, even if the other is inf
    or NaN (sqrt'(0) in a direction that does not move x; a term multiplied by a
    zero constant), so a clean derivative never turns into NaN through 0 * inf.
    """
    if type(t) is float:
        return d * <double>t if (<double>t != 0.0 and d != 0.0) else 0.0
    if d == 0.0:
        return np.zeros(t.shape)
    if isfinite(d):
        return d * <object>t
    with np.errstate(invalid="ignore"):
        return np.where(t == 0.0, 0.0, d * <object>t)


cdef inline object _add(object s, object t):
    if type(s) is float and type(t) is float:
        return <double>s + <double>t
    return s + t


cdef inline object _freeze(object t):
    if type(t) is not float:
        t.flags.writeable = False
    return t


cdef Dual _make(double v, object t):
    cdef Dual d = Dual.__new__(Dual)
    d.v = v
    d.t = _freeze(t)
    return d


cdef object _as_tangent(object tangent):
    """A user-given tangent as a float or a read-only 1-D float64 array (a copy)."""
    if isinstance(tangent, (bool, np.bool_)):
        return float(tangent)
    if type(tangent) is float:
        return tangent
    if type(tangent) is int:
        return int_to_double(tangent, "Dual: tangent")
    if isinstance(tangent, numbers.Real) and not isinstance(tangent, Dual):
        return float(tangent)
    if tangent is None or isinstance(tangent, (str, bytes, Dual, _tape.Var)):
        raise TypeError("Dual: tangent must be a number or a 1-D array of numbers, "
                        "got %s" % type(tangent).__name__)
    try:
        arr = np.array(tangent)
    except Exception:
        raise TypeError("Dual: tangent must be a number or a 1-D array of numbers, "
                        "got %s" % type(tangent).__name__) from None
    if arr.dtype.kind == "c":
        raise TypeError("Dual: tangent must be real, got complex")
    if arr.dtype.kind not in "biuf":
        raise TypeError("Dual: tangent must be a number or a 1-D array of numbers, "
                        "got %s of dtype %s" % (type(tangent).__name__, arr.dtype))
    if arr.ndim == 0:
        return float(arr)
    if arr.ndim != 1:
        raise ValueError("Dual: tangent must be a number or a 1-D array (one entry "
                         "per direction), got shape %s" % (arr.shape,))
    return arr.astype(np.float64)


cdef object _number(object x, str argname):
    """A non-Dual operand as a float, or None if it is an ndarray (handled apart)."""
    if type(x) is float:
        return x
    if type(x) is int or type(x) is bool:
        return int_to_double(x, argname)
    if isinstance(x, _tape.Var):
        raise TypeError("%s: a Dual cannot be combined with a Var (a hand-made Dual "
                        "carries no level; use fd.derivative or fd.jvp, which nest "
                        "inside fd.grad and the other transformations)" % argname)
    if isinstance(x, (numbers.Real, np.bool_)):
        return float(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "c":
            raise TypeError("%s must be real, got a complex array" % argname)
        if x.dtype.kind not in "biufO":
            raise TypeError("%s must be a number or an array of numbers, got dtype %s"
                            % (argname, x.dtype))
        if x.ndim == 0 and x.dtype.kind != "O":
            return float(x)
        return None
    if isinstance(x, (complex, np.complexfloating)):
        raise TypeError("%s must be real, got complex" % argname)
    raise TypeError("%s must be a number, an array or a Dual, got %s"
                    % (argname, type(x).__name__))


cdef object _check_lengths(object s, object t):
    if type(s) is not float and type(t) is not float and s.shape != t.shape:
        raise ValueError("Duals with tangents of different lengths (%d and %d) "
                         "cannot be combined" % (s.shape[0], t.shape[0]))


cdef object _dual1(int op, Dual x):
    cdef double dx, dy
    cdef Dual out
    if op == FAD_LOG1P and x.exp_of is not None:
        # log1p(exp(a)) is softplus(a), as the tape records it (fastad/_tape.pyx,
        # unary_op): exp(a) overflows for a > 709 and log1p's partial 1/(1 + inf) = 0
        # would drop the tangent (true value 1)
        x = <Dual>x.exp_of
        op = FAD_SOFTPLUS
    cdef double r = fad_eval(op, x.v, 0.0, &dx, &dy)
    out = _make(r, _scale(dx, x.t))
    if op == FAD_EXP:
        out.exp_of = x
    return out


cdef object _dual2(int op, object x, object y):
    """op(x, y) where x or y is a Dual and the other a Dual or a number/array."""
    cdef double dx, dy, r
    cdef Dual dxv, dyv
    if type(x) is Dual and type(y) is Dual:
        dxv = <Dual>x
        dyv = <Dual>y
        _check_lengths(dxv.t, dyv.t)
        r = fad_eval(op, dxv.v, dyv.v, &dx, &dy)
        return _make(r, _add(_scale(dx, dxv.t), _scale(dy, dyv.t)))
    if type(x) is Dual:
        c = _number(y, "y")
        if c is None:
            return _over_array(op, x, y, False)
        dxv = <Dual>x
        r = fad_eval(op + 1, dxv.v, <double>c, &dx, &dy)      # NAME_C1: x op c
        return _make(r, _scale(dx, dxv.t))
    c = _number(x, "x")
    if c is None:
        return _over_array(op, y, x, True)
    dyv = <Dual>y
    r = fad_eval(op + 2, dyv.v, <double>c, &dx, &dy)          # NAME_C0: c op y
    return _make(r, _scale(dx, dyv.t))


cdef object _over_array(int op, Dual d, object arr, bint arr_first):
    """A Dual with an ndarray: an object array of Duals, one per element."""
    out = np.empty(arr.shape, dtype=object)
    flat_out = out.reshape(-1)
    for k, e in enumerate(arr.reshape(-1)):
        flat_out[k] = _dual2(op, e, d) if arr_first else _dual2(op, d, e)
    return out


cdef int _elementwise_op(object prim, int nin):
    """The op code of an elementwise registry entry of arity nin, or -1."""
    if prim is None or prim.op < 0:
        return -1
    if (fad_op_kind[prim.op] == FAD_KIND_BINARY) != (nin == 2):
        return -1
    return prim.op


cdef object _map1(int op, object x):
    if type(x) is Dual:
        return _dual1(op, <Dual>x)
    if isinstance(x, np.ndarray) and x.dtype.kind == "O":
        out = np.empty(x.shape, dtype=object)
        flat = out.reshape(-1)
        for k, e in enumerate(x.reshape(-1)):
            flat[k] = _map1(op, e)
        return out
    return _tape._apply1(op, x)


cdef object _map2(int op, object x, object y):
    if type(x) is Dual or type(y) is Dual:
        if type(x) is Dual and type(y) is Dual:
            return _dual2(op, x, y)
        other = y if type(x) is Dual else x
        if not (isinstance(other, np.ndarray) and other.dtype.kind == "O"):
            return _dual2(op, x, y)
    bx, by = np.broadcast_arrays(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
    out = np.empty(bx.shape, dtype=object)
    flat = out.reshape(-1)
    for k, (a, b) in enumerate(zip(bx.reshape(-1), by.reshape(-1))):
        if type(a) is Dual or type(b) is Dual:
            flat[k] = _dual2(op, a, b)
        else:
            flat[k] = _tape._apply2(op, a, b)
    return out if out.ndim else out[()]


@cython.final
@cython.freelist(256)
cdef class Dual:
    """A number with a derivative component: forward-mode automatic differentiation.

    ``Dual(value, tangent)``: `value` is a real number, `tangent` a number or a 1-D
    array (one entry per direction: vector forward mode, several directional
    derivatives in one pass).  Arithmetic, comparisons (of values) and every fastad
    math function work on Duals and propagate the tangent; plain numbers mix in
    freely as constants.
    """
    cdef double v        # the value
    cdef object t        # the tangent: a float, or a read-only 1-D float64 ndarray
    cdef object exp_of   # the Dual this one is exp() of, else None (see _dual1)

    def __init__(self, value, tangent=0.0):
        if isinstance(value, (bool, np.bool_)) or type(value) is int:
            self.v = int_to_double(value, "Dual: value") if type(value) is not np.bool_ \
                else float(value)
        elif isinstance(value, float):
            self.v = value
        elif isinstance(value, (Dual, _tape.Var)):
            raise TypeError("Dual: value must be a real number, got %s (nested Duals "
                            "are not supported: for higher derivatives nest the "
                            "transformations, e.g. fd.derivative(fd.derivative(f)))"
                            % type(value).__name__)
        elif isinstance(value, (complex, np.complexfloating)):
            raise TypeError("Dual: value must be real, got complex")
        elif isinstance(value, numbers.Real):
            self.v = float(value)
        elif isinstance(value, np.ndarray) and value.ndim == 0 and \
                value.dtype.kind in "biuf":
            self.v = float(value)
        else:
            raise TypeError("Dual: value must be a real number, got %s"
                            % type(value).__name__)
        self.t = _freeze(_as_tangent(tangent))

    @property
    def value(self):
        """The value, a float."""
        return self.v

    @property
    def tangent(self):
        """The tangent: a float, or a read-only 1-D ndarray (one per direction)."""
        return self.t

    @property
    def shape(self):
        """``()``: a Dual is a scalar (several Duals travel as a list or array)."""
        return ()

    @property
    def ndim(self):
        """0: a Dual is a scalar."""
        return 0

    @property
    def size(self):
        """1: a Dual is a scalar."""
        return 1

    def __repr__(self):
        if type(self.t) is float:
            return "Dual(%r, tangent=%r)" % (self.v, self.t)
        return "Dual(%r, tangent=%s)" % (
            self.v, np.array2string(self.t, separator=", ", threshold=20))

    def __hash__(self):
        return hash(self.v)

    def __reduce__(self):
        return (Dual, (self.v, self.t))

    # -- escapes into Python --------------------------------------------------------
    # float() would drop the tangent without a trace (math.sin(d) would return a
    # plain number with no derivative); refuse and point at .value instead.  The
    # message has the shape of Var's (fastad/_tape.pyx, _FLOAT_ESCAPE).

    def __float__(self):
        raise TypeError(_ESCAPE % "float")

    def __complex__(self):
        raise TypeError(_ESCAPE % "complex")

    def __int__(self):
        raise TypeError("int() of a Dual would drop its tangent; use .value")

    def __bool__(self):
        return self.v != 0.0

    # -- arithmetic ------------------------------------------------------------------

    def __add__(self, other):
        return _dual2(FAD_ADD, self, other)

    def __radd__(self, other):
        return _dual2(FAD_ADD, other, self)

    def __sub__(self, other):
        return _dual2(FAD_SUB, self, other)

    def __rsub__(self, other):
        return _dual2(FAD_SUB, other, self)

    def __mul__(self, other):
        return _dual2(FAD_MUL, self, other)

    def __rmul__(self, other):
        return _dual2(FAD_MUL, other, self)

    def __truediv__(self, other):
        return _dual2(FAD_DIV, self, other)

    def __rtruediv__(self, other):
        return _dual2(FAD_DIV, other, self)

    def __floordiv__(self, other):
        return _dual2(FAD_FLOORDIV, self, other)

    def __rfloordiv__(self, other):
        return _dual2(FAD_FLOORDIV, other, self)

    def __mod__(self, other):
        return _dual2(FAD_MOD, self, other)

    def __rmod__(self, other):
        return _dual2(FAD_MOD, other, self)

    def __pow__(self, other, mod):
        if mod is not None:
            raise TypeError("pow() with a modulus is not supported for Duals")
        # the tape records x ** 2 as square; do the same so both modes agree exactly
        if (type(other) is int or type(other) is float) and other == 2:
            return _dual1(FAD_SQUARE, self)
        return _dual2(FAD_POW, self, other)

    def __rpow__(self, other, mod):
        if mod is not None:
            raise TypeError("pow() with a modulus is not supported for Duals")
        return _dual2(FAD_POW, other, self)

    def __neg__(self):
        return _dual1(FAD_NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _dual1(FAD_ABS, self)

    # -- comparisons compare values --------------------------------------------------

    def __richcmp__(self, other, int opcode):
        a = self.v
        if type(other) is Dual:
            b = (<Dual>other).v
        elif isinstance(other, (numbers.Real, np.ndarray)):
            b = other
        else:
            return NotImplemented
        if opcode == 0:
            return a < b
        if opcode == 1:
            return a <= b
        if opcode == 2:
            return a == b
        if opcode == 3:
            return a != b
        if opcode == 4:
            return a > b
        return a >= b

    # -- NumPy interoperation: np.sin(d), np.float64(2) * d, array * d ----------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            return NotImplemented
        cdef int op = _elementwise_op(_registry.ufunc_entry(ufunc), ufunc.nin)
        if op < 0:
            return NotImplemented
        if ufunc.nin == 1:
            return _map1(op, inputs[0])
        return _map2(op, inputs[0], inputs[1])

    def __getattr__(self, name):
        # NumPy's object-dtype loops call x.sin(), x.exp(), ... on each element, so
        # np.sin(array_of_duals) works through the same table rows.
        cdef int op = _elementwise_op(_registry.BY_UFUNC_NAME.get(name), 1)
        if op < 0:
            raise AttributeError("'Dual' object has no attribute %r" % name)
        return lambda: _dual1(op, self)

    # -- routing by the registry (fastad._registry): a call of an array primitive
    # whose operands hold a Dual comes here --------------------------------------

    __fastad_level__ = 1

    @staticmethod
    def __fastad_bind__(prim, operands, params):
        """prim on operands holding Duals: an op-table row by Dual arithmetic (the
        rows' own partials), any other entry by its form over Duals."""
        if prim.op >= 0:
            if len(operands) == 1:
                return _map1(prim.op, operands[0])
            return _map2(prim.op, operands[0], operands[1])
        if prim.dual is None:
            raise TypeError("fastad: %s is not supported on Duals" % prim.name)
        return prim.dual(*operands, **params)

    # -- reductions of a scalar (fd.sum(d) and friends) --------------------------------

    def sum(self, axis=None, keepdims=False):
        """The Dual itself (the sum of one scalar), as ``np.sum`` of a scalar."""
        return self

    def mean(self, axis=None, keepdims=False):
        """The Dual itself (the mean of one scalar), as ``np.mean`` of a scalar."""
        return self



def _test_scale(double d, t):
    """_scale for tests of the absolute-zero rule."""
    return _scale(d, t if type(t) is float else np.asarray(t, dtype=np.float64))
