# Forward (tangent) and second-order (forward-over-reverse) sweeps over a tape.
#
# Both sweeps read a finished recording whose val/da/db are current (just recorded,
# or just replayed by fastad._replay) and never touch Python per operation: scalar
# slots are swept in C, without the GIL when long; array records (tape.records) are
# handed to their NumPy kernels.  Second partials come from the op table
# (fad_second), so every primitive's second derivative is declared exactly once.
#
# Tangents and tangent-adjoints are (slots, k) row-major blocks: k directions per
# pass, so a dense Hessian of n inputs costs n / k passes whose inner loops run over
# k contiguous doubles (and vectorise).
#
# Record interface used here (besides rec.backward(adj) of reverse mode):
#   rec.tangent(val, tan)             tan[base:base+size] = J @ tan[inputs]
#   rec.hvp(val, tan, adj, adj_dot)   adj_dot[inputs] += J^T adj_dot[block]
#                                        + (d/de J(x + e tan)^T) adj[block]
# val, tan, adj, adj_dot are 1-D float64 views over all slots (tan and adj_dot may
# be strided: one column of a (slots, k) block).  A record without them makes the
# sweep raise TypeError naming the operation.
cimport cython
from libc.math cimport isfinite
from libc.stdint cimport uint8_t, int32_t

import threading
import numpy as np
cimport numpy as cnp

from fastad._core cimport (fad_eval, fad_second, fad_op_kind, FAD_NUM_SCALAR_OPS,
                           FAD_KIND_LEAF, FAD_KIND_UNARY, FAD_KIND_CONST,
                           FAD_KIND_BINARY, FAD_BLOCK)
from fastad._tape cimport Tape, Var, new_array_var

cnp.import_array()

# Sweeps touching more doubles than this release the GIL.
cdef Py_ssize_t NOGIL_WORK = 20000


cdef inline double _az(double c, double x) noexcept nogil:
    """c * x with the absolute-zero rule: exactly 0 when either factor is 0, even if
    the other is inf or NaN (CppAD's azmul).  Written as a select so the compiler
    can still vectorise the loops that use it."""
    return 0.0 if (c == 0.0 or x == 0.0) else c * x


# ----------------------------------------------------------------------------------
# The C loops

cdef void tangent_range(const uint8_t *op, const int32_t *a, const int32_t *b,
                        const double *da, const double *db, double *tan,
                        Py_ssize_t k, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """tan[i] = da[i] * tan[a[i]] (+ db[i] * tan[b[i]] for binary ops), i = lo..hi.

    Leaf slots keep their tangent (a seed, or zero).  A zero tangent contributes
    nothing even through an infinite partial, and a zero partial nothing even from
    an infinite tangent (as in the reverse sweep, which skips zero adjoints).
    """
    cdef Py_ssize_t i, j
    cdef int o, kind
    cdef double p, q
    cdef double *ti
    cdef const double *ta
    cdef const double *tb
    if k == 1:
        tangent_range1(op, a, b, da, db, tan, lo, hi)
        return
    for i in range(lo, hi + 1):
        o = op[i]
        if o >= FAD_NUM_SCALAR_OPS:
            continue
        kind = fad_op_kind[o]
        if kind == FAD_KIND_LEAF:
            continue
        ti = tan + i * k
        ta = tan + a[i] * k
        p = da[i]
        if kind == FAD_KIND_BINARY:
            tb = tan + b[i] * k
            q = db[i]
            for j in range(k):
                ti[j] = _az(p, ta[j]) + _az(q, tb[j])
        else:
            # UNARY, and CONST whose db field holds the constant, not a partial
            for j in range(k):
                ti[j] = _az(p, ta[j])


cdef void tangent_range1(const uint8_t *op, const int32_t *a, const int32_t *b,
                         const double *da, const double *db, double *tan,
                         Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """tangent_range for one direction: no inner loop, ~2x faster per slot."""
    cdef Py_ssize_t i
    cdef int o, kind
    for i in range(lo, hi + 1):
        o = op[i]
        if o >= FAD_NUM_SCALAR_OPS:
            continue
        kind = fad_op_kind[o]
        if kind == FAD_KIND_BINARY:
            tan[i] = _az(da[i], tan[a[i]]) + _az(db[i], tan[b[i]])
        elif kind != FAD_KIND_LEAF:
            tan[i] = _az(da[i], tan[a[i]])


cdef void second_range1(const uint8_t *op, const int32_t *a, const int32_t *b,
                        const double *val, const double *da, const double *db,
                        const double *tan, double *adj, double *adjd,
                        Py_ssize_t hi, Py_ssize_t lo) noexcept nogil:
    """second_range for one direction (Hessian-vector products): same arithmetic,
    in the same order, without the loops over directions."""
    cdef Py_ssize_t i, ai, bi
    cdef int o, kind
    cdef double g, gd, hxx, hxy, hyy
    for i in range(hi, lo - 1, -1):
        g = adj[i]
        gd = adjd[i]
        if g == 0.0 and gd == 0.0:
            continue
        o = op[i]
        if o >= FAD_NUM_SCALAR_OPS:
            continue
        kind = fad_op_kind[o]
        if kind == FAD_KIND_LEAF:
            continue
        ai = a[i]
        hxx = hxy = hyy = 0.0
        if kind == FAD_KIND_BINARY:
            bi = b[i]
            if g != 0.0:
                fad_second(o, val[ai], val[bi], val[i], &hxx, &hxy, &hyy)
                adj[ai] += da[i] * g
                adj[bi] += db[i] * g
            adjd[ai] += _az(da[i], gd) + _az(hxx * g, tan[ai]) + _az(hxy * g, tan[bi])
            adjd[bi] += _az(db[i], gd) + _az(hxy * g, tan[ai]) + _az(hyy * g, tan[bi])
        else:
            if g != 0.0:
                fad_second(o, val[ai], db[i] if kind == FAD_KIND_CONST else 0.0,
                           val[i], &hxx, &hxy, &hyy)
                adj[ai] += da[i] * g
            adjd[ai] += _az(da[i], gd) + _az(hxx * g, tan[ai])


cdef void second_range(const uint8_t *op, const int32_t *a, const int32_t *b,
                       const double *val, const double *da, const double *db,
                       const double *tan, double *adj, double *adjd,
                       Py_ssize_t k, Py_ssize_t hi, Py_ssize_t lo) noexcept nogil:
    """Reverse sweep of adjoints and their tangents (forward over reverse), hi..lo.

    For z = f(x, y) with adjoint g and tangent-adjoint gd (k directions):
        adj[x]  += fx * g
        adjd[x] += fx * gd + (fxx * tan[x] + fxy * tan[y]) * g
    and symmetrically for y.  Unary and constant-operand ops have only the x terms
    (fad_second's dxx is the second partial in the variable for the _C0/_C1 forms).
    A slot whose adjoint and tangent-adjoints are all zero is skipped, as in the
    first-order sweep, and every product uses the absolute-zero rule (_az): that
    keeps 0 * inf out of branches that were never selected.
    """
    cdef Py_ssize_t i, j, ai, bi
    cdef int o, kind
    cdef double g, p, q, hxx, hxy, hyy, gxx, gxy, gyy, y, s
    cdef double *gd
    cdef double *ca
    cdef double *cb
    cdef const double *ta
    cdef const double *tb
    cdef bint live
    if k == 1:
        second_range1(op, a, b, val, da, db, tan, adj, adjd, hi, lo)
        return
    for i in range(hi, lo - 1, -1):
        o = op[i]
        if o >= FAD_NUM_SCALAR_OPS:
            continue
        kind = fad_op_kind[o]
        if kind == FAD_KIND_LEAF:
            continue
        g = adj[i]
        gd = adjd + i * k
        live = g != 0.0
        if not live:
            for j in range(k):
                if gd[j] != 0.0:
                    live = True
                    break
            if not live:
                continue
        ai = a[i]
        p = da[i]
        ta = tan + ai * k
        ca = adjd + ai * k
        hxx = hxy = hyy = 0.0
        if kind == FAD_KIND_BINARY:
            bi = b[i]
            q = db[i]
            tb = tan + bi * k
            cb = adjd + bi * k
            if g != 0.0:
                fad_second(o, val[ai], val[bi], val[i], &hxx, &hxy, &hyy)
                adj[ai] += p * g
                adj[bi] += q * g
            gxx = hxx * g
            gxy = hxy * g
            gyy = hyy * g
            for j in range(k):
                s = gd[j]
                ca[j] += _az(p, s) + _az(gxx, ta[j]) + _az(gxy, tb[j])
                cb[j] += _az(q, s) + _az(gxy, ta[j]) + _az(gyy, tb[j])
        else:
            if g != 0.0:
                y = db[i] if kind == FAD_KIND_CONST else 0.0
                fad_second(o, val[ai], y, val[i], &hxx, &hxy, &hyy)
                adj[ai] += p * g
            gxx = hxx * g
            for j in range(k):
                ca[j] += _az(p, gd[j]) + _az(gxx, ta[j])


# ----------------------------------------------------------------------------------
# Sweeps over a tape: C ranges between array records

cdef list _records_between(Tape t, Py_ssize_t lo, Py_ssize_t hi):
    return [r for r in t.records if lo <= r.base <= hi]


cdef object _record_method(rec, str name, str fname):
    meth = getattr(rec, name, None)
    if meth is None:
        raise TypeError("%s: the array operation %r on the tape does not support "
                        "forward or second-order mode yet (its record has no %s "
                        "method)" % (fname, getattr(rec, "name", type(rec).__name__),
                                     name))
    return meth


cdef int _tangent_c(Tape t, double *tan, Py_ssize_t k, Py_ssize_t lo,
                    Py_ssize_t hi) except -1:
    if (hi - lo + 1) * k < NOGIL_WORK:
        tangent_range(t.op, t.arg_a, t.arg_b, t.da, t.db, tan, k, lo, hi)
        return 0
    t.sweeping += 1
    with nogil:
        tangent_range(t.op, t.arg_a, t.arg_b, t.da, t.db, tan, k, lo, hi)
    t.sweeping -= 1
    return 0


cdef int _second_c(Tape t, double *tan, double *adj, double *adjd, Py_ssize_t k,
                   Py_ssize_t hi, Py_ssize_t lo) except -1:
    if (hi - lo + 1) * k < NOGIL_WORK:
        second_range(t.op, t.arg_a, t.arg_b, t.val, t.da, t.db, tan, adj, adjd,
                     k, hi, lo)
        return 0
    t.sweeping += 1
    with nogil:
        second_range(t.op, t.arg_a, t.arg_b, t.val, t.da, t.db, tan, adj, adjd,
                     k, hi, lo)
    t.sweeping -= 1
    return 0


cdef int forward_tangents(Tape t, object tan, Py_ssize_t lo, Py_ssize_t hi,
                          str fname) except -1:
    """Fill tan (an (n, k) C-contiguous float64 block, seeds set) over slots lo..hi."""
    cdef double[:, ::1] tv = tan
    cdef Py_ssize_t k = tv.shape[1], cur = lo, base, j
    if k == 0 or hi < lo:
        return 0
    recs = _records_between(t, lo, hi)
    val = None
    for rec in recs:
        base = rec.base
        if base > cur:
            _tangent_c(t, &tv[0, 0], k, cur, base - 1)
        if val is None:
            val = np.asarray(<double[:t.n]>t.val)
        meth = getattr(rec, "tangent_block", None)
        if meth is not None:
            meth(val, tan)        # all k directions in one call of the record's rules
        else:                     # a record class of one direction at a time
            meth = _record_method(rec, "tangent", fname)
            for j in range(k):
                meth(val, tan[:, j])
        cur = base + rec.size
    if cur <= hi:
        _tangent_c(t, &tv[0, 0], k, cur, hi)
    return 0


cdef int second_adjoints(Tape t, object tan, object adj, object adjd, Py_ssize_t hi,
                         Py_ssize_t lo, str fname) except -1:
    """Reverse sweep of adj (n,) and adjd (n, k) from hi down to lo; tan is (n, k)
    from forward_tangents and adj, adjd hold the seeds at the output slot."""
    cdef double[:, ::1] tv = tan
    cdef double[::1] av = adj
    cdef double[:, ::1] dv = adjd
    cdef Py_ssize_t k = tv.shape[1], cur = hi, base, end, j
    if k == 0 or hi < lo:
        return 0
    recs = _records_between(t, lo, hi)
    val = None
    for rec in reversed(recs):
        base = rec.base
        end = base + rec.size
        if cur >= end:
            _second_c(t, &tv[0, 0], &av[0], &dv[0, 0], k, cur, end)
        if val is None:
            val = np.asarray(<double[:t.n]>t.val)
        meth = getattr(rec, "hvp_block", None)
        if meth is not None:
            meth(val, tan, adj, adjd)
        else:
            meth = _record_method(rec, "hvp", fname)
            for j in range(k):
                meth(val, tan[:, j], adj, adjd[:, j])
        rec.backward(adj)
        cur = base - 1
    if cur >= lo:
        _second_c(t, &tv[0, 0], &av[0], &dv[0, 0], k, cur, lo)
    return 0


# ----------------------------------------------------------------------------------
# Work buffers

_buffers = threading.local()


cdef object _zeros(str tag, tuple shape):
    """A zeroed float64 work array of `shape`, reused between calls of this thread.

    Fresh np.zeros of a few hundred kB come from mmap and page-fault on first
    touch: that doubled the cost of an hvp at 45k slots.  Callers copy out what
    they return, so no result aliases a buffer.
    """
    cdef Py_ssize_t need = 1
    for d in shape:
        need *= d
    store = getattr(_buffers, "store", None)
    if store is None:
        store = _buffers.store = {}
    # one set of buffers per nesting level: a record's rules may run a sweep of an
    # inner tape (a custom primitive's second-order rule) in the middle of this one
    tag = tag + str(getattr(_buffers, "depth", 0))
    buf = store.get(tag)
    # reallocated when too small, and when a past peak (over 16 MB) is 8x this need
    if buf is None or buf.size < need or (buf.size > (1 << 21) and buf.size > 8 * need):
        buf = store[tag] = np.empty(max(need, 1))
    out = buf[:need].reshape(shape)
    out.fill(0.0)
    return out


def _release_buffers():
    """Drop this thread's work buffers (fd.release_memory)."""
    _buffers.store = {}


# ----------------------------------------------------------------------------------
# Entry points (fastad._forward, and fastad._trace after a replay)

def _holds_tape(fn):
    """Hold tape.sweeping for the whole sweep (records' kernels run Python in
    between C stretches): meanwhile reset() and any growth of the tape raise
    TapeError instead of moving the arrays under the sweep."""
    def wrapped(Tape tape, *args, **kwargs):
        depth = getattr(_buffers, "depth", 0)
        tape.sweeping += 1
        _buffers.depth = depth + 1
        try:
            return fn(tape, *args, **kwargs)
        finally:
            tape.sweeping -= 1
            _buffers.depth = depth
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def var_slots(Var v):
    """The tape slots of Var v's elements (flat, int64): [slot, slot + size)."""
    v.tape.check_var(v)
    cdef Py_ssize_t size = 1 if v.shape_ is None else v.aval.size
    return np.arange(v.slot, v.slot + size, dtype=np.int64)


cdef object _slots(Tape t, object slots, str what):
    s = np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)
    if s.size and (s.min() < 0 or s.max() >= t.n):
        raise ValueError("%s: slot out of range for a tape of %d slots" % (what, t.n))
    return s


cdef object _directions(object directions, Py_ssize_t m, str what):
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim == 1:
        d = d.reshape(1, -1)
    if d.ndim != 2 or d.shape[1] != m:
        raise ValueError("%s must have shape (k, %d), got %s" % (what, m, d.shape))
    return d


@_holds_tape
def tangent_sweep(Tape tape, in_slots, out_slots, directions, str fname="jvp"):
    """Forward mode: tangents of `out_slots` for k directions on `in_slots`.

    directions: (k, m) with m = len(in_slots).  Returns a (k, len(out_slots)) array:
    row j is J @ directions[j].  The tape's val/da/db must be current.
    """
    ins = _slots(tape, in_slots, fname)
    outs = _slots(tape, out_slots, fname)
    d = _directions(directions, ins.size, fname + ": directions")
    k = d.shape[0]
    if ins.size == 0 or outs.size == 0:
        return np.zeros((k, outs.size))
    tan = _zeros("tan", (tape.n, k))
    tan[ins, :] = d.T
    forward_tangents(tape, tan, ins.min(), outs.max(), fname)
    return np.ascontiguousarray(tan[outs, :].T)


@_holds_tape
def reverse_sweep(Tape tape, out_slots, in_slots, cotangents, str fname="vjp"):
    """Reverse mode: cotangents[j] @ J for each row j (shape (k, len(out_slots)));
    returns (k, len(in_slots))."""
    ins = _slots(tape, in_slots, fname)
    outs = _slots(tape, out_slots, fname)
    c = _directions(cotangents, outs.size, fname + ": cotangent")
    cdef Py_ssize_t k = c.shape[0], j
    res = np.zeros((k, ins.size))
    if ins.size == 0 or outs.size == 0:
        return res
    cdef Py_ssize_t hi = outs.max(), lo = ins.min()
    adj = _zeros("adj", (tape.n,))
    cdef double[::1] av = adj
    for j in range(k):
        adj[:hi + 1] = 0.0
        np.add.at(adj, outs, c[j])
        tape.reverse(&av[0], tape.n, hi, lo)
        res[j] = adj[ins]
    return res


@_holds_tape
def hvp_sweep(Tape tape, in_slots, Py_ssize_t out_slot, directions, str fname="hvp"):
    """Hessian-vector products of the scalar slot `out_slot` w.r.t. `in_slots`.

    directions: (k, m).  Returns (gradient (m,), H @ directions[j] for each j as a
    (k, m) array), from one tangent sweep and one second-order reverse sweep.

    Seeding and reading out are C loops rather than NumPy fancy indexing: on a tape
    of a few hundred slots the sweeps take ~4 us and each NumPy call ~1 us.
    """
    cdef long long[::1] ins = _slots(tape, in_slots, fname)
    if out_slot < 0 or out_slot >= tape.n:
        raise ValueError("%s: slot out of range for a tape of %d slots" % (fname, tape.n))
    cdef double[:, ::1] d = np.ascontiguousarray(
        _directions(directions, ins.shape[0], fname + ": v"))
    cdef Py_ssize_t k = d.shape[0], m = ins.shape[0], n = tape.n, i, j, lo
    if m == 0:
        return np.zeros(0), np.zeros((k, 0))
    tan = _zeros("tan", (n, k))
    adj = _zeros("adj", (n,))
    adjd = _zeros("adjd", (n, k))
    cdef double[:, ::1] tv = tan
    cdef double[::1] av = adj
    cdef double[:, ::1] dv = adjd
    lo = ins[0]
    for i in range(m):
        if ins[i] < lo:
            lo = ins[i]
        for j in range(k):
            tv[ins[i], j] = d[j, i]
    forward_tangents(tape, tan, lo, out_slot, fname)
    av[out_slot] = 1.0
    second_adjoints(tape, tan, adj, adjd, out_slot, lo, fname)
    g = np.empty(m)
    hv = np.empty((k, m))
    cdef double[::1] gv = g
    cdef double[:, ::1] hvv = hv
    for i in range(m):
        gv[i] = av[ins[i]]
        for j in range(k):
            hvv[j, i] = dv[ins[i], j]
    return g, hv


@_holds_tape
def hessian_sweep(Tape tape, in_slots, Py_ssize_t out_slot, block=None,
                  str fname="hessian"):
    """Dense Hessian (m, m) and gradient (m,) of the scalar slot `out_slot`,
    sweeping `block` unit directions per pass (all of them at once by default
    when the buffers stay under ~32 MB)."""
    ins = _slots(tape, in_slots, fname)
    _slots(tape, [out_slot], fname)
    m = ins.size
    if m == 0:
        return np.zeros(0), np.zeros((0, 0))
    n = tape.n
    if block is None:
        block = max(1, min(m, (1 << 22) // max(n, 1)))
    block = int(block)
    H = np.empty((m, m))
    lo = ins.min()
    grad = None
    for start in range(0, m, block):
        kk = min(block, m - start)
        tan = _zeros("tan", (n, kk))
        adj = _zeros("adj", (n,))
        adjd = _zeros("adjd", (n, kk))
        tan[ins[start:start + kk], np.arange(kk)] = 1.0
        forward_tangents(tape, tan, lo, out_slot, fname)
        adj[out_slot] = 1.0
        second_adjoints(tape, tan, adj, adjd, out_slot, lo, fname)
        H[:, start:start + kk] = adjd[ins, :]
        if grad is None:
            grad = adj[ins].copy()
    return grad, H


@_holds_tape
def jacobian_forward(Tape tape, in_slots, out_slots, block=None, str fname="jacobian"):
    """Jacobian (len(out_slots), len(in_slots)) by tangent sweeps of unit
    directions, `block` per pass."""
    ins = _slots(tape, in_slots, fname)
    outs = _slots(tape, out_slots, fname)
    m = ins.size
    J = np.zeros((outs.size, m))
    if m == 0 or outs.size == 0:
        return J
    n = tape.n
    if block is None:
        block = max(1, min(m, (1 << 22) // max(n, 1)))
    block = int(block)
    lo, hi = ins.min(), outs.max()
    for start in range(0, m, block):
        kk = min(block, m - start)
        tan = _zeros("tan", (n, kk))
        tan[ins[start:start + kk], np.arange(kk)] = 1.0
        forward_tangents(tape, tan, lo, hi, fname)
        J[:, start:start + kk] = tan[outs, :]
    return J


# ----------------------------------------------------------------------------------
# Helpers for tests of the record protocol (never part of the public API)

def _test_push_block(Tape tape, values):
    """Append FAD_BLOCK slots holding `values` (as an array record would);
    return the first slot."""
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t base = tape.n, i
    tape.reserve(v.size)
    for i in range(v.size):
        tape.push(FAD_BLOCK, 0, 0, v[i], 0.0, 0.0)
    return base


def _test_new_array_var(Tape tape, Py_ssize_t base, shape):
    """An array Var over the block [base, base + prod(shape)) of the tape."""
    vals = np.asarray(<double[:tape.n]>tape.val)[base:base + int(np.prod(shape))]
    return new_array_var(tape, base, vals.reshape(shape))
