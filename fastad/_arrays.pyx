# cython: wraparound=True
# Array records: array operations recorded as one block with NumPy kernels.
#
# The core tape records an array op element by element (one scalar slot per output
# element, from a C loop).  That is exact and every sweep understands it, but it
# costs a libm call and ~33 bytes per element and cannot use BLAS: a 512x64 @ 64x128
# product would be four million scalar slots.  Here an array op instead appends a
# *record*: a block of FAD_BLOCK slots [base, base + size) holding the output values,
# written by a NumPy kernel, plus an object in tape.records whose
#     backward(adj)      adds the vector-Jacobian product into its inputs' adjoints,
#     forward(val)       recomputes its block from its inputs' slots (trace replay),
#     tangent(val, tan)  writes its block's tangents from its inputs' (forward mode),
#     hvp(val, tan, adj, adj_dot)   second order (forward over reverse), below.
# Inputs are Vars (blocks of consecutive slots, so their adjoints are contiguous
# views of the adjoint buffer) or constants (held by the record).
#
# Elementwise ops use kernels generated from the op table (csrc/fastad_vec.h): the
# value comes from NumPy's ufunc of the same name when there is one (SIMD), the
# partials always from the table's rows.  No derivative is written down twice.
cimport cython
from libc.string cimport memset, memcpy
from libc.stdint cimport uint8_t, int32_t

import numpy as np
cimport numpy as cnp

from fastad._core cimport (fad_op_name, fad_second, fad_value_array, fad_vjp_array,
                           FAD_BLOCK, FAD_NUM_SCALAR_OPS)
from fastad._tape cimport (Tape, Var, new_var, as_float_array, common_tape,
                           normalize_axes)
from fastad._tape import OP_INFO, current_tape
import fastad._tape as _tape

cnp.import_array()

# Arrays smaller than this keep the core's per-element scalar slots.  Recording
# costs about the same on both paths up to ~64 elements (a record's fixed ~5 us of
# Python and NumPy calls against the core's index bookkeeping), but scalar slots
# replay in C without the GIL (fd.trace), so tiny arrays stay there.  From 16 up,
# records win: the MLP benchmark's (32,) temporaries cost 15 us each as slots.
RECORD_MIN_SIZE = 16

# op code -> NumPy ufunc of the op's name (the value kernel when there is one)
_UFUNC = {}
for _code, _name, _arity, _dom in OP_INFO:
    _uf = getattr(np, _name, None)
    if isinstance(_uf, np.ufunc):
        _UFUNC[_code] = _uf


# ----------------------------------------------------------------------------------
# Blocks and operands

cdef Py_ssize_t _new_block(Tape t, const double *values, Py_ssize_t m) except -1:
    """Append m FAD_BLOCK slots holding `values`; return the first slot."""
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    # argument slots point at the sentinel, partials are zero: a scalar sweep that
    # ran over the block by mistake would only touch adj[0]
    memset(t.op + base, FAD_BLOCK, m * sizeof(uint8_t))
    memset(t.arg_a + base, 0, m * sizeof(int32_t))
    memset(t.arg_b + base, 0, m * sizeof(int32_t))
    #memset(t.da + base, 0, m * sizeof(double))
    #memset(t.db + base, 0, m * sizeof(double))
    memcpy(t.val + base, values, m * sizeof(double))
    t.n = base + m
    return base


cdef object _emit(Tape t, ArrayRecord rec, object out):
    """Append rec's block holding `out` and return the Var that names it."""
    out = np.asarray(out, dtype=np.float64, order="C")
    cdef Py_ssize_t m = out.size
    cdef const double[::1] flat
    cdef Var r
    if m == 0:
        # nothing to differentiate: an empty array Var without a record (a record
        # of size 0 would share its base with the next one)
        r = Var.__new__(Var)
        r.tape = t
        r.slot = t.n
        r.gen = t.generation
        out.setflags(write=False)
        r.aval = out
        r.shape_ = out.shape
        r.v = np.nan
        return r
    flat = out.reshape(-1)
    rec.base = _new_block(t, &flat[0], m)
    rec.size = m
    rec.out_shape = out.shape
    t.records.append(rec)
    if out.ndim == 0:
        return new_var(t, rec.base, flat[0])
    out.setflags(write=False)
    r = Var.__new__(Var)
    r.tape = t
    r.slot = rec.base
    r.gen = t.generation
    r.aval = out           # the record's own result array: no copy
    r.shape_ = out.shape
    r.v = np.nan
    return r


cdef object _value(object x, str argname):
    """The value of an operand as a float64 ndarray (0-d for scalars)."""
    if type(x) is Var:
        if (<Var>x).shape_ is None:
            return np.array((<Var>x).v)
        return (<Var>x).aval
    return as_float_array(x, argname)


cdef inline Py_ssize_t _slot(object x):
    return (<Var>x).slot if type(x) is Var else -1


cdef object _adj_view(object adj, Py_ssize_t slot, object shape):
    cdef Py_ssize_t size = 1
    for d in shape:
        size *= d
    return adj[slot:slot + size].reshape(shape)


def unbroadcast(g, shape):
    """Sum g over the axes along which an operand of `shape` was broadcast."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


cdef _accumulate(object adj, Py_ssize_t slot, object shape, object g):
    """adj of the input at `slot` (its `shape`) += g, unbroadcast, in place."""
    view = _adj_view(adj, slot, shape)
    g = unbroadcast(g, shape)
    np.add(view, g, out=view)


# ----------------------------------------------------------------------------------
# The record base class

cdef class ArrayRecord:
    """One array op on the tape.  Subclasses set name and implement
    _compute(values) -> output, _vjp(g, values, out) -> [gradient per input or None],
    _jvp(values, tangents, out) -> output tangent, and
    _curvature(grads, g, tans, values, out): the second-order term (below)."""
    cdef public Py_ssize_t base, size
    cdef public str name
    cdef public object out_shape
    cdef public tuple slots       # each input's first slot, -1 for a constant
    cdef public tuple shapes      # each input's shape (() for a scalar)
    cdef public list values       # each input's current value (refreshed by forward)
    cdef public object out        # the current output value

    def _init_inputs(self, tuple operands, names):
        self.slots = tuple(_slot(x) for x in operands)
        self.values = [_value(x, n) for x, n in zip(operands, names)]
        self.shapes = tuple(v.shape for v in self.values)

    def _load(self, val):
        """Refresh the Var inputs' values from the slot values `val`."""
        for i, s in enumerate(self.slots):
            if s >= 0:
                self.values[i] = _adj_view(val, s, self.shapes[i]).copy()

    def backward(self, adj):
        g = adj[self.base:self.base + self.size].reshape(self.out_shape)
        grads = self._vjp(g, self.values, self.out)
        for s, shape, gi in zip(self.slots, self.shapes, grads):
            if s >= 0 and gi is not None:
                _accumulate(adj, s, shape, gi)

    def forward(self, val):
        self._load(val)
        out = np.asarray(self._compute(self.values), dtype=np.float64, order="C")
        self.out = out
        val[self.base:self.base + self.size] = out.reshape(-1)

    def tangent(self, val, tan):
        self._load(val)
        tans = [None if s < 0 else _adj_view(tan, s, shape)
                for s, shape in zip(self.slots, self.shapes)]
        t = self._jvp(self.values, tans, self.out)
        tan[self.base:self.base + self.size] = np.broadcast_to(
            t, self.out_shape).reshape(-1)

    def hvp(self, val, tan, adj, adj_dot):
        """Second order (forward over reverse): adj_dot[inputs] += J^T adj_dot[block]
        + (d/de J(x + e tan)^T) adj[block].  The first term is the record's own
        vector-Jacobian product; the second, the curvature, is each subclass's
        _curvature (fastad._second's sweeps call this, knowing no record class)."""
        self._load(val)
        values, slots, shapes = self.values, self.slots, self.shapes
        out = self.out if self.out is not None else self._compute(values)
        b0, b1 = self.base, self.base + self.size
        g = np.asarray(adj[b0:b1]).reshape(self.out_shape)
        gd = np.asarray(adj_dot[b0:b1]).reshape(self.out_shape)
        tans = [None if s < 0 else np.asarray(tan[s:s + int(np.prod(sh, dtype=np.int64))])
                .reshape(sh) for s, sh in zip(slots, shapes)]
        grads = list(self._vjp(gd, values, out))
        self._curvature(grads, g, tans, values, out)
        for s, sh, gi in zip(slots, shapes, grads):
            if s >= 0 and gi is not None:
                size = int(np.prod(sh, dtype=np.int64))
                view = adj_dot[s:s + size]
                view += np.asarray(unbroadcast(np.asarray(gi), sh),
                                   dtype=np.float64).reshape(-1)

    def _curvature(self, grads, g, tans, values, out):
        """grads[i] += (d/de J_i(x + e tans)^T) g for every operand i with a gradient
        (grads[i] not None).  A record class without a rule refuses second order."""
        raise TypeError("the array operation %r has no second-order rule" % self.name)

    def __repr__(self):
        return "<%s record: slots %d..%d>" % (self.name, self.base,
                                              self.base + self.size - 1)


cdef object _record(ArrayRecord rec, tuple operands, names):
    """Run rec's kernel on the operands' values and append it to their tape."""
    cdef Tape t = common_tape(operands)
    rec.slots = tuple([_slot(x) for x in operands])
    rec.values = [_value(x, n) for x, n in zip(operands, names)]
    rec.shapes = tuple([v.shape for v in rec.values])
    out = np.asarray(rec._compute(rec.values), dtype=np.float64, order="C")
    if _tape._debug_nans_enabled():
        _check_nans(rec, out)
    rec.out = out
    return _emit(t, rec, out)


def record(ArrayRecord rec, tuple operands, names):
    """_record for record classes defined above this module (fastad._generic's)."""
    return _record(rec, operands, names)


cdef _check_nans(ArrayRecord rec, object out):
    """fd.debug_nans: a NaN output from NaN-free inputs names this operation."""
    if not np.isnan(out).any():
        return
    for v in rec.values:
        if np.isnan(v).any():
            return
    raise FloatingPointError("fd.debug_nans: %s produced NaN from non-NaN inputs "
                             "(array of shape %s)" % (rec.name, out.shape))


# ----------------------------------------------------------------------------------
# Elementwise ops with kernels from the op table

cdef tuple _strided(object v, object shape):
    """(contiguous array, element stride) reading v broadcast to `shape`."""
    if v.size == 1:
        return np.ascontiguousarray(v, dtype=np.float64).reshape(1), 0
    if v.shape == shape:
        return np.ascontiguousarray(v, dtype=np.float64).reshape(-1), 1
    return np.ascontiguousarray(np.broadcast_to(v, shape), dtype=np.float64).reshape(-1), 1


cdef int _layout(object v, tuple shape):
    """How operand v broadcasts to `shape`: 0 a single element, 1 the same shape,
    2 a trailing block repeated over leading axes (shape (k,) under (m, k)), 3 other."""
    if v.size == 1:
        return 0
    vs = v.shape
    if vs == shape:
        return 1
    cdef Py_ssize_t k = 0
    while k < len(vs) and vs[k] == 1:
        k += 1
    vs = vs[k:]
    if len(vs) <= len(shape) and tuple(shape[len(shape) - len(vs):]) == vs:
        return 2
    return 3


cdef class ElementwiseRecord(ArrayRecord):
    cdef public int op
    cdef public int arity

    def _compute(self, values):
        uf = _UFUNC.get(self.op)
        with np.errstate(all="ignore"):   # NaN/inf as the op table says, no warning
            if uf is not None:
                return uf(*values)
        shape = np.broadcast_shapes(*[v.shape for v in values])
        cdef const double[::1] av, bv
        cdef double[::1] rv
        cdef Py_ssize_t sa, sb = 0
        a, sa = _strided(values[0], shape)
        if self.arity == 2:
            b, sb = _strided(values[1], shape)
        else:
            b = a
        out = np.empty(shape, dtype=np.float64)
        if out.size == 0:
            return out
        av, bv, rv = a, b, out.reshape(-1)
        fad_value_array(self.op, rv.shape[0], &av[0], sa, &bv[0], sb, &rv[0])
        return out

    def _partials(self, g, shape):
        """(ga, gb): g times each partial, of the output's shape (None: constant)."""
        cdef const double[::1] av, bv, rv, gv
        cdef double[::1] gav, gbv
        cdef Py_ssize_t sa, sb = 0, n
        a, sa = _strided(self.values[0], shape)
        b, sb = _strided(self.values[1], shape) if self.arity == 2 else (a, 0)
        ga = np.zeros(shape) if self.slots[0] >= 0 else None
        gb = np.zeros(shape) if self.arity == 2 and self.slots[1] >= 0 else None
        g = np.ascontiguousarray(np.broadcast_to(g, shape), dtype=np.float64)
        n = g.size
        if n == 0:
            return ga, gb
        av, bv, gv = a, b, g.reshape(-1)
        rv = np.ascontiguousarray(self.out).reshape(-1)
        gav = ga.reshape(-1) if ga is not None else None
        gbv = gb.reshape(-1) if gb is not None else None
        fad_vjp_array(self.op, n, &av[0], sa, &bv[0], sb, &rv[0], &gv[0],
                      &gav[0] if ga is not None else NULL, 1,
                      &gbv[0] if gb is not None else NULL, 1)
        return ga, gb

    def backward(self, adj):
        # Accumulate straight into the adjoint buffer, no temporaries, when every
        # operand is a scalar (stride 0: the kernel sums), of the output's shape, or
        # a trailing block broadcast over leading axes (a bias row): the kernel then
        # runs row by row.  Anything else goes through a temporary and a sum.
        shape = self.out_shape
        cdef int l0 = _layout(self.values[0], shape)
        cdef int l1 = _layout(self.values[1], shape) if self.arity == 2 else 0
        if l0 == 3 or l1 == 3:
            self._backward_general(adj)
            return
        cdef double[::1] adjv = adj
        cdef const double[::1] av, bv, rv
        cdef Py_ssize_t n = self.size, inner = n, size0, size1, r, off
        cdef Py_ssize_t s0 = self.slots[0]
        cdef Py_ssize_t s1 = self.slots[1] if self.arity == 2 else -1
        av = np.ascontiguousarray(self.values[0], dtype=np.float64).reshape(-1)
        bv = np.ascontiguousarray(self.values[1], dtype=np.float64).reshape(-1) \
            if self.arity == 2 else av
        size0 = av.shape[0]
        size1 = bv.shape[0]
        if l0 == 2:
            inner = min(inner, size0)
        if l1 == 2:
            inner = min(inner, size1)
        rv = self.out.reshape(-1)
        cdef Py_ssize_t sa = 0 if l0 == 0 else 1
        cdef Py_ssize_t sb = 0 if l1 == 0 else 1
        cdef double *ga
        cdef double *gb
        cdef Py_ssize_t o0, o1
        for r in range(n // inner):
            off = r * inner
            o0 = 0 if l0 == 0 else off % size0
            o1 = 0 if l1 == 0 else off % size1
            ga = &adjv[s0 + o0] if s0 >= 0 else NULL
            gb = &adjv[s1 + o1] if s1 >= 0 else NULL
            fad_vjp_array(self.op, inner, &av[o0], sa, &bv[o1], sb, &rv[off],
                          &adjv[self.base + off], ga, sa, gb, sb)

    def _backward_general(self, adj):
        """Any broadcasting: materialised operands and temporaries, then sums."""
        cdef double[::1] adjv = adj
        cdef const double[::1] av, bv, rv
        cdef double *pa = NULL
        cdef double *pb = NULL
        cdef Py_ssize_t sa, sb = 0, sga = 0, sgb = 0, n = self.size
        shape = self.out_shape
        a, sa = _strided(self.values[0], shape)
        b, sb = _strided(self.values[1], shape) if self.arity == 2 else (a, 0)
        tmp_a = tmp_b = None
        cdef double[::1] ta, tb
        cdef Py_ssize_t s0 = self.slots[0]
        cdef Py_ssize_t s1 = self.slots[1] if self.arity == 2 else -1
        if s0 >= 0:
            if self.values[0].size == 1:
                pa, sga = &adjv[s0], 0
            elif self.shapes[0] == shape:
                pa, sga = &adjv[s0], 1
            else:
                tmp_a = np.zeros(n)
                ta = tmp_a
                pa, sga = &ta[0], 1
        if s1 >= 0:
            if self.values[1].size == 1:
                pb, sgb = &adjv[s1], 0
            elif self.shapes[1] == shape:
                pb, sgb = &adjv[s1], 1
            else:
                tmp_b = np.zeros(n)
                tb = tmp_b
                pb, sgb = &tb[0], 1
        av, bv = a, b
        rv = self.out.reshape(-1)
        fad_vjp_array(self.op, n, &av[0], sa, &bv[0], sb, &rv[0], &adjv[self.base],
                      pa, sga, pb, sgb)
        if tmp_a is not None:
            _accumulate(adj, s0, self.shapes[0], tmp_a.reshape(shape))
        if tmp_b is not None:
            _accumulate(adj, s1, self.shapes[1], tmp_b.reshape(shape))

    def _jvp(self, values, tans, out):
        shape = self.out_shape
        ga, gb = self._partials(np.ones(shape), shape)
        t = np.zeros(shape)
        if ga is not None:
            t = t + ga * tans[0]
        if gb is not None:
            t = t + gb * tans[1]
        return t

    def _vjp(self, g, values, out):
        ga, gb = self._partials(g, self.out_shape)
        return [ga, gb][:self.arity]

    def _curvature(self, grads, g, tans, values, out):
        # the second partials come from the op table, like the first ones
        shape = self.out_shape
        a = np.broadcast_to(values[0], shape)
        b = np.broadcast_to(values[1], shape) if self.arity == 2 else a
        hxx, hxy, hyy = _second_partials(self.op, self.arity, a, b, out)
        ta = np.broadcast_to(tans[0], shape) if tans[0] is not None else 0.0
        tb = np.broadcast_to(tans[1], shape) if self.arity == 2 and tans[1] is not None \
            else 0.0
        with np.errstate(all="ignore"):
            if grads[0] is not None:
                grads[0] = grads[0] + unbroadcast(g * (hxx * ta + hxy * tb), self.shapes[0])
            if self.arity == 2 and grads[1] is not None:
                grads[1] = grads[1] + unbroadcast(g * (hxy * ta + hyy * tb), self.shapes[1])


cdef object _second_partials(int op, int arity, object a, object b, object r):
    """Arrays (dxx, dxy, dyy) of fad_second over broadcast operands."""
    cdef const double[::1] av = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    cdef const double[::1] bv = np.ascontiguousarray(b, dtype=np.float64).reshape(-1)
    cdef const double[::1] rv = np.ascontiguousarray(r, dtype=np.float64).reshape(-1)
    n = av.shape[0]
    hxx = np.empty(n)
    hxy = np.empty(n)
    hyy = np.empty(n)
    cdef double[::1] xx = hxx, xy = hxy, yy = hyy
    cdef Py_ssize_t i
    for i in range(n):
        fad_second(op, av[i], bv[i] if arity == 2 else 0.0, rv[i], &xx[i], &xy[i], &yy[i])
    shape = np.shape(r)
    return hxx.reshape(shape), hxy.reshape(shape), hyy.reshape(shape)


def elementwise(int op, x, y=None):
    """Record op(x) or op(x, y) (NumPy broadcasting) as one record, or return
    NotImplemented when the output is small enough for scalar slots."""
    cdef ElementwiseRecord rec = ElementwiseRecord.__new__(ElementwiseRecord)
    rec.op = op
    rec.name = fad_op_name[op].decode()
    if y is None:
        rec.arity = 1
        operands = (x,)
    else:
        rec.arity = 2
        operands = (x, y)
    sizes = [(<Var>o).aval.size if type(o) is Var and (<Var>o).shape_ is not None
             else np.size(o) for o in operands]
    if max(sizes) < RECORD_MIN_SIZE:
        return NotImplemented
    return _record(rec, operands, ("x", "y"))


# ----------------------------------------------------------------------------------
# Contractions: matmul, dot, outer, einsum

cdef class MatmulRecord(ArrayRecord):

    def _compute(self, values):
        return np.matmul(values[0], values[1])

    def _vjp(self, g, values, out):
        a, b = values
        if a.ndim == 2 and b.ndim == 2:
            return [g @ b.T if self.slots[0] >= 0 else None,
                    a.T @ g if self.slots[1] >= 0 else None]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if self.slots[0] >= 0:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.slots[1] >= 0:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return [ga, gb]

    def _jvp(self, values, tans, out):
        a, b = values
        t = np.zeros(self.out_shape)
        if tans[0] is not None:
            t = t + np.matmul(tans[0], b)
        if tans[1] is not None:
            t = t + np.matmul(a, tans[1])
        return t

    def _curvature(self, grads, g, tans, values, out):
        _multilinear_curvature(self, grads, g, tans, values, out)


def _multilinear_curvature(rec, grads, g, tans, values, out):
    """The curvature of a record linear in each operand (matmul, einsum): the
    derivative of operand j's gradient along operand i's tangent is j's vector-
    Jacobian product with operand i replaced by its tangent."""
    for i, ti in enumerate(tans):
        if ti is None:
            continue
        swapped = list(values)
        swapped[i] = ti
        for j, gj in enumerate(rec._vjp(g, swapped, out)):
            if j != i and gj is not None and grads[j] is not None:
                grads[j] = grads[j] + gj


cdef bint _has_var(tuple operands):
    for x in operands:
        if type(x) is Var:
            return True
    return False


def _plain(out):
    return float(out) if np.ndim(out) == 0 else out


def matmul(a, b):
    """Matrix product with NumPy's matmul rules, recorded as one record."""
    if not _has_var((a, b)):
        return _plain(np.matmul(as_float_array(a, "a"), as_float_array(b, "b")))
    av = _value(a, "a")
    bv = _value(b, "b")
    if av.ndim == 0 or bv.ndim == 0:
        raise ValueError("matmul: operands must be at least 1-D (use * for scalars), "
                         "got shapes %s and %s" % (av.shape, bv.shape))
    try:
        np.broadcast_shapes(av.shape[:-2], bv.shape[:-2])
        ok = av.shape[-1] == (bv.shape[-2] if bv.ndim > 1 else bv.shape[0])
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("matmul: shapes %s and %s are not aligned"
                         % (av.shape, bv.shape))
    rec = MatmulRecord.__new__(MatmulRecord)
    rec.name = "matmul"
    return _record(rec, (a, b), ("a", "b"))


def dot(a, b):
    """numpy.dot: products for scalars, matmul up to 2-D, a sum-product beyond."""
    if not _has_var((a, b)):
        return _plain(np.dot(as_float_array(a, "a"), as_float_array(b, "b")))
    av = _value(a, "a")
    bv = _value(b, "b")
    if av.ndim == 0 or bv.ndim == 0:
        return _tape.multiply(a, b)
    if av.ndim <= 2 and bv.ndim <= 2:
        return matmul(a, b)
    # dot(a, b)[i..., k..., m] = sum_j a[i..., j] * b[k..., j, m]
    letters = "abcdefghijklmnopqrstuvwxyz"
    sa = letters[:av.ndim - 1] + "z"
    rest = letters[av.ndim - 1:av.ndim - 1 + bv.ndim - 1]
    sb = rest[:-1] + "z" + rest[-1:]
    return einsum("%s,%s->%s" % (sa, sb, sa[:-1] + rest), a, b)


def outer(a, b):
    """numpy.outer: the flattened operands' outer product."""
    if not _has_var((a, b)):
        return np.outer(as_float_array(a, "a"), as_float_array(b, "b"))
    fa = _tape.reshape(a, (-1,)) if type(a) is Var else as_float_array(a, "a").reshape(-1)
    fb = _tape.reshape(b, (-1,)) if type(b) is Var else as_float_array(b, "b").reshape(-1)
    return einsum("i,j->ij", fa, fb)


cdef class EinsumRecord(ArrayRecord):
    cdef public tuple ins         # each operand's subscripts
    cdef public str out_sub       # the output's subscripts

    def _compute(self, values):
        return np.einsum(",".join(self.ins) + "->" + self.out_sub, *values)

    def _vjp(self, g, values, out):
        grads = []
        for i, target in enumerate(self.ins):
            if self.slots[i] < 0:
                grads.append(None)
                continue
            others = [j for j in range(len(self.ins)) if j != i]
            avail = set(self.out_sub).union(*[set(self.ins[j]) for j in others])
            kept = "".join(c for c in target if c in avail)
            spec = ",".join([self.out_sub] + [self.ins[j] for j in others]) + "->" + kept
            gi = np.einsum(spec, g, *[values[j] for j in others])
            # a letter only operand i carries was summed away: its gradient is
            # constant along that axis
            shape = values[i].shape
            gi = np.broadcast_to(
                gi.reshape([shape[k] if c in avail else 1 for k, c in enumerate(target)]),
                shape)
            grads.append(gi)
        return grads

    def _jvp(self, values, tans, out):
        t = np.zeros(self.out_shape)
        for i in range(len(values)):
            if tans[i] is not None:
                vs = list(values)
                vs[i] = tans[i]
                t = t + self._compute(vs)
        return t

    def _curvature(self, grads, g, tans, values, out):
        _multilinear_curvature(self, grads, g, tans, values, out)


def einsum(subscripts, *operands):
    """numpy.einsum on Vars and arrays (explicit or implicit output, no '...')."""
    if not isinstance(subscripts, str):
        raise TypeError("einsum: subscripts must be a string, got %s"
                        % type(subscripts).__name__)
    if not _has_var(operands):
        return _plain(np.einsum(subscripts, *[as_float_array(o, "operands")
                                              for o in operands]))
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ValueError("einsum: '...' (ellipsis) subscripts are not supported on "
                         "Vars; write the axes out explicitly")
    if "->" in spec:
        lhs, out_sub = spec.split("->")
    else:
        lhs = spec
        letters = lhs.replace(",", "")
        out_sub = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = tuple(lhs.split(","))
    if len(ins) != len(operands):
        raise ValueError("einsum: %d operands for %d subscript groups"
                         % (len(operands), len(ins)))
    for sub, op in zip(ins, operands):
        if type(op) is Var and len(set(sub)) != len(sub):
            raise ValueError("einsum: repeated subscripts within one Var operand "
                             "(diagonals, %r) are not supported" % sub)
    values = [_value(o, "operands") for o in operands]
    np.einsum(",".join(ins) + "->" + out_sub, *values)   # NumPy validates shapes
    rec = EinsumRecord.__new__(EinsumRecord)
    rec.name = "einsum"
    rec.ins = ins
    rec.out_sub = out_sub
    return _record(rec, tuple(operands), ["operands"] * len(operands))


# Reductions (sum, mean, max, min), the softmax family and the layout ops are
# declared with their rules in fastad._prims and recorded by fastad._generic.
