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

import math

import numpy as np
cimport numpy as cnp

from fastad._core cimport (fad_op_name, fad_second, fad_value_array, fad_vjp_array,
                           FAD_BLOCK, FAD_NUM_SCALAR_OPS)
from fastad._tape cimport (Tape, Var, new_var, as_float_array, common_tape,
                           normalize_axes, debug_nans_on)
from fastad._tape import OP_INFO, current_tape
import fastad._tape as _tape

cnp.import_array()

# Arrays smaller than this keep the core's per-element scalar slots (the array
# operations other than elementwise ones: sums, softmax, ...).  Scalar slots replay
# in C without the GIL (fd.trace), so tiny arrays stay there; from 16 up a record's
# one rule beats a chain of slots.
RECORD_MIN_SIZE = 16

# Elementwise operations whose operands the core can read as runs of slots (an
# array Var with a number, a scalar Var, a Var or a float64 array of its shape:
# fastad._tape.fits_slot_block) stay scalar slots up to this size: the core
# records them from one C loop with no NumPy calls, ~0.9 us + 3 ns per element
# recorded and swept, against a record's ~4.5 us + 10 ns per element of Python
# and NumPy calls.  Measured (100-op chains, 2-core x86_64, 2026-12-02): slots
# 0.95 / 2.0 / 3.3 / 6.0 us per op at 32 / 128 / 256 / 512 elements, records 4.6 /
# 5.1 / 7.7 / 10.4; records win from ~1000.  Broadcasting operands take the
# core's general slot path (NumPy index arithmetic, ~5-14 us), so they record
# from RECORD_MIN_SIZE as every other array operation does.
ELEMENTWISE_RECORD_MIN_SIZE = 256

# op code -> NumPy ufunc of the op's name (the value kernel when there is one)
_UFUNC = {}
# op code -> its name as a str (a record's name; decoding fad_op_name per record
# cost ~0.2 us)
_OP_NAME = {}
for _code, _name, _arity, _dom in OP_INFO:
    _OP_NAME[_code] = fad_op_name[_code].decode()
    _uf = getattr(np, _name, None)
    if isinstance(_uf, np.ufunc):
        _UFUNC[_code] = _uf

# Ops whose value is one IEEE operation (or a sign or comparison): the op table's C
# kernel gives NumPy's bits exactly, as fast, and raises no floating-point warning,
# so it needs no np.errstate (~1 us, a third of a 1000-element record's recording).
# The transcendental ones keep NumPy's SIMD ufuncs, under errstate.
cdef bint _PLAIN_VALUE[FAD_NUM_SCALAR_OPS]
memset(_PLAIN_VALUE, 0, sizeof(_PLAIN_VALUE))
for _code, _name, _arity, _dom in OP_INFO:
    if _name in ("add", "subtract", "multiply", "divide", "negative", "positive",
                 "square", "abs", "maximum", "minimum"):
        _PLAIN_VALUE[_code] = True


cdef inline bint _is_c_f64(object a):
    """a is an ndarray of native float64 in C order: its data can be read as doubles."""
    return (type(a) is np.ndarray
            and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_DOUBLE
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a))


cdef inline object _c_f64(object a):
    """a as a C-ordered float64 ndarray, a itself when it is one already."""
    if _is_c_f64(a):
        return a
    return np.asarray(a, dtype=np.float64, order="C")


cdef inline double *_data(object a):
    """The doubles of an array _is_c_f64 accepted."""
    return <double *>cnp.PyArray_DATA(<cnp.ndarray>a)


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
    out = _c_f64(out)
    cdef Py_ssize_t m = cnp.PyArray_SIZE(<cnp.ndarray>out)
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
    rec.base = _new_block(t, _data(out), m)
    rec.size = m
    rec.out_shape = out.shape
    t.records.append(rec)
    if cnp.PyArray_NDIM(<cnp.ndarray>out) == 0:
        return new_var(t, rec.base, _data(out)[0])
    cnp.PyArray_CLEARFLAGS(<cnp.ndarray>out, cnp.NPY_ARRAY_WRITEABLE)
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


cdef object block_view(object buf, Py_ssize_t slot, object shape):
    """The rows of an operand in an (n, k) block as an array of shape + (k,): a view
    (the rows of a C-contiguous block are contiguous), directions on the last axis."""
    cdef Py_ssize_t size = 1
    for d in shape:
        size *= d
    return buf[slot:slot + size].reshape(tuple(shape) + (buf.shape[1],))


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

    # -- block sweeps: all k directions of an (n, k) tangent block in one call.  A
    #    record class without block rules runs its one-direction rules per column.

    def tangent_block(self, val, tan):
        """tan[block, :] from tan[inputs, :] for every column (direction) of tan."""
        for j in range(tan.shape[1]):
            self.tangent(val, tan[:, j])

    def hvp_block(self, val, tan, adj, adjd):
        """hvp for every column of tan (n, k) and adjd (n, k) at once."""
        for j in range(tan.shape[1]):
            self.hvp(val, tan[:, j], adj, adjd[:, j])

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
    out = _c_f64(rec._compute(rec.values))
    if debug_nans_on():
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
        if _PLAIN_VALUE[self.op]:
            out = _plain_value(self.op, self.arity, values)
            if out is not None:
                return out
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
        # raw pointers, not memoryviews: acquiring four memoryviews cost ~1 us, a
        # quarter of a 1000-element record's backward
        if not _is_c_f64(adj):
            raise TypeError("fastad: an adjoint buffer that is not C-ordered float64")
        cdef double *adjv = _data(adj)
        cdef const double *av
        cdef const double *bv
        cdef const double *rv
        cdef Py_ssize_t n = self.size, inner = n, size0, size1, r, off
        cdef Py_ssize_t s0 = self.slots[0]
        cdef Py_ssize_t s1 = self.slots[1] if self.arity == 2 else -1
        a = _c_f64(self.values[0])
        b = _c_f64(self.values[1]) if self.arity == 2 else a
        out = _c_f64(self.out)
        av, bv, rv = _data(a), _data(b), _data(out)
        size0 = cnp.PyArray_SIZE(<cnp.ndarray>a)
        size1 = cnp.PyArray_SIZE(<cnp.ndarray>b)
        if l0 == 2:
            inner = min(inner, size0)
        if l1 == 2:
            inner = min(inner, size1)
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

    def tangent_block(self, val, tan):
        self._load(val)
        shape, k = self.out_shape, tan.shape[1]
        parts = self._partials(np.ones(shape), shape)
        t = np.zeros(tuple(shape) + (k,))
        for i in range(self.arity):
            if parts[i] is not None:
                t += parts[i][..., None] * block_view(tan, self.slots[i], self.shapes[i])
        tan[self.base:self.base + self.size] = t.reshape(self.size, k)

    def hvp_block(self, val, tan, adj, adjd):
        """hvp for k directions: the partials and second partials once, each applied
        along the last (direction) axis.  Zero adjoints contribute exactly zero, as
        in the kernels (an infinite partial on a branch no adjoint reaches)."""
        self._load(val)
        shape, k = tuple(self.out_shape), tan.shape[1]
        b0, b1 = self.base, self.base + self.size
        values, out = self.values, self.out
        g = np.asarray(adj[b0:b1]).reshape(shape)
        gd = np.asarray(adjd[b0:b1]).reshape(shape + (k,))
        parts = self._partials(np.ones(shape), shape)
        a = np.broadcast_to(values[0], shape)
        b = np.broadcast_to(values[1], shape) if self.arity == 2 else a
        hxx, hxy, hyy = _second_partials(self.op, self.arity, a, b, out)
        T = [block_view(tan, s, sh) if s >= 0 else None
             for s, sh in zip(self.slots, self.shapes)]
        if self.arity == 1:
            T.append(None)
        live = (g != 0.0)[..., None]
        with np.errstate(all="ignore"):
            for i, (h_a, h_b) in enumerate(((hxx, hxy), (hxy, hyy))[:self.arity]):
                if parts[i] is None:
                    continue
                gi = np.where(gd != 0.0, parts[i][..., None] * gd, 0.0)
                # only the Var operands' curvature terms (see _curvature)
                c = None if T[0] is None else h_a[..., None] * T[0]
                if T[1] is not None:
                    c = h_b[..., None] * T[1] if c is None else c + h_b[..., None] * T[1]
                if c is not None:
                    gi = gi + np.where(live, g[..., None] * c, 0.0)
                view = block_view(adjd, self.slots[i], self.shapes[i])
                view += unbroadcast(gi, tuple(self.shapes[i]) + (k,))

    def _curvature(self, grads, g, tans, values, out):
        # the second partials come from the op table, like the first ones
        shape = self.out_shape
        a = np.broadcast_to(values[0], shape)
        b = np.broadcast_to(values[1], shape) if self.arity == 2 else a
        hxx, hxy, hyy = _second_partials(self.op, self.arity, a, b, out)
        # Only the Var operands' terms: a constant's tangent is zero, but its
        # partials need not be finite (pow's d/db is r log(a), NaN for a < 0 in
        # x ** 3), and 0 * NaN would poison the curvature
        ta = np.broadcast_to(tans[0], shape) if tans[0] is not None else None
        tb = np.broadcast_to(tans[1], shape) if self.arity == 2 and tans[1] is not None \
            else None
        with np.errstate(all="ignore"):
            for i, (h_a, h_b) in enumerate(((hxx, hxy), (hxy, hyy))[:self.arity]):
                if grads[i] is None:
                    continue
                c = None if ta is None else h_a * ta
                if tb is not None:
                    c = h_b * tb if c is None else c + h_b * tb
                if c is not None:
                    # grads[i] is _partials' output-shaped array (hvp sums it onto
                    # the operand once): the term joins it in that shape.  Summed to
                    # the operand's shape here, hvp broadcast it back and summed it
                    # again: a broadcast operand's curvature came out size-fold
                    grads[i] = grads[i] + g * c


cdef object _plain_value(int op, int arity, list values):
    """op's value from the op table's C kernel, for operands that are each a single
    element or of the output's shape (C-ordered float64); None for any other
    layout (broadcasting proper), which the ufunc then computes."""
    a = values[0]
    b = values[1] if arity == 2 else a
    if not (_is_c_f64(a) and _is_c_f64(b)):
        return None
    cdef Py_ssize_t na = cnp.PyArray_SIZE(<cnp.ndarray>a)
    cdef Py_ssize_t nb = cnp.PyArray_SIZE(<cnp.ndarray>b)
    cdef int da = cnp.PyArray_NDIM(<cnp.ndarray>a), db = cnp.PyArray_NDIM(<cnp.ndarray>b)
    cdef Py_ssize_t sa = 1, sb = 1
    if da == db and (arity == 1 or a.shape == b.shape):
        shape = a.shape
    elif na == 1 and da <= db:
        shape, sa = b.shape, 0
    elif nb == 1 and db <= da:
        shape, sb = a.shape, 0
    else:
        return None
    if arity == 1:
        sb = 0
    out = np.empty(shape, dtype=np.float64)
    fad_value_array(op, cnp.PyArray_SIZE(<cnp.ndarray>out), _data(a), sa, _data(b), sb,
                    _data(out))
    return out


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
    operands = (x,) if y is None else (x, y)
    cdef Py_ssize_t size = max([_size(o) for o in operands])
    if size < RECORD_MIN_SIZE or (size < ELEMENTWISE_RECORD_MIN_SIZE
                                  and _tape.fits_slot_block(x, y)):
        return NotImplemented
    cdef ElementwiseRecord rec = ElementwiseRecord.__new__(ElementwiseRecord)
    rec.op = op
    rec.name = _OP_NAME[op]
    rec.arity = len(operands)
    return _record(rec, operands, ("x", "y"))


cdef Py_ssize_t _size(object o):
    """Elements of an operand; np.size of a float costs ~2 us, this ~20 ns."""
    t = type(o)
    if t is Var:
        return 1 if (<Var>o).shape_ is None else (<Var>o).aval.size
    if t is float or t is int:
        return 1
    if t is np.ndarray:
        return (<cnp.ndarray>o).size
    return np.size(o)


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

    def tangent_block(self, val, tan):
        subs = _MATMUL_SUBS.get((len(self.shapes[0]), len(self.shapes[1])))
        if subs is None:          # batched: one direction at a time
            ArrayRecord.tangent_block(self, val, tan)
        else:
            _einsum_tangent_block(self, subs[0], subs[1], val, tan)

    def hvp_block(self, val, tan, adj, adjd):
        subs = _MATMUL_SUBS.get((len(self.shapes[0]), len(self.shapes[1])))
        if subs is None:
            ArrayRecord.hvp_block(self, val, tan, adj, adjd)
        else:
            _einsum_hvp_block(self, subs[0], subs[1], val, tan, adj, adjd)


# -- block rules of the multilinear records, through einsum: the directions get a
#    letter of their own on the last axis of every tangent and dotted adjoint

_MATMUL_SUBS = {(1, 1): (("j", "j"), ""), (1, 2): (("j", "jk"), "k"),
                (2, 1): (("ij", "j"), "i"), (2, 2): (("ij", "jk"), "ik")}


def _free_letter(subs):
    used = set("".join(subs))
    for c in "KZYXWVUTSRQPONMLJIHGFEDCBA":
        if c not in used:
            return c
    return None


# Below this many multiply-adds np.einsum's own loop beats tensordot's ~15 us of
# Python around its GEMM (one direction through an (80, 50) matrix: 4,000; fifty
# directions: 200,000).
_CONTRACT_BLAS_MIN = 1 << 15


def _multiply_adds(subs, ops):
    """The product of the sizes of every letter of a two-operand einsum."""
    size = {}
    for sub, op in zip(subs, ops):
        for c, n in zip(sub, np.shape(op)):
            size[c] = n
    return math.prod(size.values())


def _contract(subs, out_sub, ops):
    """np.einsum(",".join(subs) + "->" + out_sub, *ops), through BLAS (tensordot)
    for the two-operand products the block rules of matmul and einsum records
    make: every letter once per operand, the shared ones summed, every other one
    kept.  np.einsum without a path runs its own loops: a (80, 50) matrix times
    50 directions took ~58 us there against ~5 us in tensordot's GEMM.  Anything
    else (a batch letter in both operands and the output, a letter summed within
    one operand) goes to np.einsum."""
    if len(ops) == 2:
        a, b = subs
        if (len(set(a)) == len(a) and len(set(b)) == len(b)
                and _multiply_adds(subs, ops) >= _CONTRACT_BLAS_MIN):
            shared = [c for c in a if c in b]
            rest = [c for c in a if c not in shared] + [c for c in b if c not in shared]
            if (not any(c in out_sub for c in shared) and len(rest) == len(out_sub)
                    and set(rest) == set(out_sub)):
                r = np.tensordot(ops[0], ops[1],
                                 axes=([a.index(c) for c in shared],
                                       [b.index(c) for c in shared]))
                perm = [rest.index(c) for c in out_sub]
                return r if perm == sorted(perm) else r.transpose(perm)
    return np.einsum(",".join(subs) + "->" + out_sub, *ops)


def _einsum_vjp_block(ins, j, shape_j, operands, cot_sub, cot, K):
    """Operand j's cotangent, shape_j + (k,): einsum of the cotangent (cot_sub) with
    every other operand (sub, value), the direction letter K kept."""
    target = ins[j]
    avail = set(cot_sub).union(*[set(sub) for sub, _ in operands])
    kept = "".join(c for c in target if c in avail)
    gi = _contract([cot_sub] + [sub for sub, _ in operands], kept + K,
                   [cot] + [v for _, v in operands])
    k = gi.shape[-1]
    # a letter only operand j carries was summed away: constant along that axis
    gi = gi.reshape([shape_j[i] if c in avail else 1 for i, c in enumerate(target)]
                    + [k])
    return np.broadcast_to(gi, tuple(shape_j) + (k,))


def _einsum_tangent_block(rec, ins, out_sub, val, tan):
    rec._load(val)
    K, k = _free_letter(list(ins) + [out_sub]), tan.shape[1]
    t = np.zeros(tuple(rec.out_shape) + (k,))
    for i, s in enumerate(rec.slots):
        if s < 0:
            continue
        subs = [sub + K if m == i else sub for m, sub in enumerate(ins)]
        vals = [block_view(tan, s, rec.shapes[i]) if m == i else v
                for m, v in enumerate(rec.values)]
        t += _contract(subs, out_sub + K, vals)
    tan[rec.base:rec.base + rec.size] = t.reshape(rec.size, k)


def _einsum_hvp_block(rec, ins, out_sub, val, tan, adj, adjd):
    """adjd[operand j] += J_j^T adjd[block] (k directions) + the curvature: operand
    j's vjp of adj[block] with another operand i replaced by its k tangents."""
    rec._load(val)
    K, k = _free_letter(list(ins) + [out_sub]), tan.shape[1]
    b0, b1 = rec.base, rec.base + rec.size
    shape = tuple(rec.out_shape)
    g = np.asarray(adj[b0:b1]).reshape(shape)
    gd = np.asarray(adjd[b0:b1]).reshape(shape + (k,))
    T = [block_view(tan, s, sh) if s >= 0 else None
         for s, sh in zip(rec.slots, rec.shapes)]
    for j, s in enumerate(rec.slots):
        if s < 0:
            continue
        others = [(ins[m], rec.values[m]) for m in range(len(ins)) if m != j]
        gj = _einsum_vjp_block(ins, j, rec.shapes[j], others, out_sub + K, gd, K)
        for i, ti in enumerate(T):
            if i == j or ti is None:
                continue
            swapped = [(ins[m] + K, ti) if m == i else (ins[m], rec.values[m])
                       for m in range(len(ins)) if m != j]
            gj = gj + _einsum_vjp_block(ins, j, rec.shapes[j], swapped, out_sub, g, K)
        view = block_view(adjd, s, rec.shapes[j])
        view += gj


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

    def tangent_block(self, val, tan):
        if _free_letter(list(self.ins) + [self.out_sub]) is None:
            ArrayRecord.tangent_block(self, val, tan)
        else:
            _einsum_tangent_block(self, self.ins, self.out_sub, val, tan)

    def hvp_block(self, val, tan, adj, adjd):
        if _free_letter(list(self.ins) + [self.out_sub]) is None:
            ArrayRecord.hvp_block(self, val, tan, adj, adjd)
        else:
            _einsum_hvp_block(self, self.ins, self.out_sub, val, tan, adj, adjd)


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
