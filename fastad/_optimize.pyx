# Trace optimisation: a recorded scalar tape rewritten into a smaller equivalent one.
#
# fd.trace records every operation f performed.  Before the trace is kept, this
# pass (one forward sweep, one backward sweep, one compaction, all in C over the
# tape's arrays) rewrites it:
#   - constant folding: an op all of whose variable operands are constants (FAD_CONST
#     leaves, or ops folded before it) becomes a FAD_CONST leaf holding the value it
#     had when recorded -- the same value every replay would compute;
#   - constant operands: a binary op with one constant operand becomes its NAME_C1 /
#     NAME_C0 form (same expressions, the constant in db), so no slot is read for it;
#   - common subexpressions: two slots with the same op, operands and constant are
#     one slot (a hash table keyed by the rewritten op);
#   - dead operations: only what reaches the output or a guard's operands is kept;
#   - renumbering: the kept slots are packed densely, in their recorded order (a
#     topological order), so replay walks contiguous memory.
# Values are bit for bit those of the unoptimised tape (nothing is recomputed by a
# different formula); gradients agree to rounding (merged slots sum their adjoint
# contributions in another order).
#
# Tapes holding array records are not optimised (None is returned): a record reads
# and writes slot ranges that only its own Python code knows, so it is a barrier
# this pass does not look through.
cimport cython
from libc.stdint cimport uint8_t, int32_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset
from cpython.mem cimport PyMem_Malloc, PyMem_Free

import numpy as np
cimport numpy as cnp

from fastad._core cimport (
    fad_op_kind, FAD_CONST, FAD_NUM_SCALAR_OPS,
    FAD_KIND_LEAF, FAD_KIND_UNARY, FAD_KIND_CONST, FAD_KIND_BINARY,
)
from fastad._tape cimport Tape

cnp.import_array()


cdef struct Key:
    uint64_t bits      # the constant's bits (CONST kind and folded leaves), else 0
    int32_t a
    int32_t b
    int32_t op
    int32_t slot       # the slot holding this op (value of the table entry); -1: empty


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    # splitmix64's finaliser: every input bit reaches every output bit
    h ^= h >> 30
    h *= 0xbf58476d1ce4e5b9ULL
    h ^= h >> 27
    h *= 0x94d049bb133111ebULL
    h ^= h >> 31
    return h


cdef inline uint64_t _dbits(double x) noexcept nogil:
    cdef uint64_t u
    memcpy(&u, &x, 8)
    return u


cdef inline double _dconst(uint64_t bits) noexcept nogil:
    cdef double x
    memcpy(&x, &bits, 8)
    return x


cdef int32_t _intern(Key *table, uint64_t mask, int32_t op, int32_t a, int32_t b,
                     uint64_t bits, int32_t slot) noexcept nogil:
    """The slot already holding (op, a, b, bits), or `slot` after inserting it."""
    cdef uint64_t h = _mix(<uint64_t>op * 0x9e3779b97f4a7c15ULL ^ _mix(
        (<uint64_t><uint32_t>a << 32) ^ <uint32_t>b) ^ _mix(bits))
    cdef uint64_t j = h & mask
    while table[j].slot >= 0:
        if (table[j].op == op and table[j].a == a and table[j].b == b
                and table[j].bits == bits):
            return table[j].slot
        j = (j + 1) & mask
    table[j].op = op
    table[j].a = a
    table[j].b = b
    table[j].bits = bits
    table[j].slot = slot
    return slot


cdef struct Work:
    int32_t *rep      # slot -> the slot that now computes its value
    uint8_t *isc      # slot (canonical) is a constant
    uint8_t *live     # slot (canonical) reaches the output or a guard
    int32_t *newi     # canonical slot -> its index in the optimised tape
    uint8_t *nop      # rewritten op of each canonical slot
    int32_t *na
    int32_t *nb
    double *nda
    double *ndb
    Key *table


cdef void _free_work(Work *w) noexcept:
    PyMem_Free(w.rep)
    PyMem_Free(w.isc)
    PyMem_Free(w.live)
    PyMem_Free(w.newi)
    PyMem_Free(w.nop)
    PyMem_Free(w.na)
    PyMem_Free(w.nb)
    PyMem_Free(w.nda)
    PyMem_Free(w.ndb)
    PyMem_Free(w.table)


cdef Py_ssize_t _rewrite(const uint8_t *op, const int32_t *A, const int32_t *B,
                         const double *val, const double *da, const double *db,
                         Py_ssize_t n, Py_ssize_t first, Work *w,
                         uint64_t mask) noexcept nogil:
    """Fold, convert and merge slots first .. n-1 (forward sweep).  Fills rep and
    the rewritten op of every canonical slot."""
    cdef Py_ssize_t i
    cdef int32_t a, b, o, k, r
    cdef uint64_t bits
    cdef bint fold
    for i in range(first):
        w.rep[i] = <int32_t>i
        w.isc[i] = 0          # inputs and parameters change; the sentinel is never read
        w.nop[i] = op[i]
        w.na[i] = A[i]
        w.nb[i] = B[i]
        w.nda[i] = da[i]
        w.ndb[i] = db[i]
    for i in range(first, n):
        o = op[i]
        k = fad_op_kind[o]
        a = w.rep[A[i]]
        b = 0
        bits = 0
        fold = False
        if k == FAD_KIND_LEAF:
            fold = True
        elif k == FAD_KIND_UNARY or k == FAD_KIND_CONST:
            fold = w.isc[a]
            if k == FAD_KIND_CONST:
                bits = _dbits(db[i])
        else:
            b = w.rep[B[i]]
            if w.isc[a] and w.isc[b]:
                fold = True
            elif w.isc[b]:          # var op c: NAME_C1, the constant in db
                o = o + 1
                bits = _dbits(val[b])
                b = 0
            elif w.isc[a]:          # c op var: NAME_C0, the variable in slot a
                o = o + 2
                bits = _dbits(val[a])
                a = b
                b = 0
        if fold:
            r = _intern(w.table, mask, FAD_CONST, 0, 0, _dbits(val[i]), <int32_t>i)
            w.rep[i] = r
            if r == i:
                w.isc[i] = 1
                w.nop[i] = FAD_CONST
                w.na[i] = 0
                w.nb[i] = 0
                w.nda[i] = 0.0
                w.ndb[i] = 0.0
            continue
        r = _intern(w.table, mask, o, a, b, bits, <int32_t>i)
        w.rep[i] = r
        if r != i:
            continue
        w.isc[i] = 0
        w.nop[i] = <uint8_t>o
        w.na[i] = a
        w.nb[i] = b
        if o == op[i]:
            w.nda[i] = da[i]
            w.ndb[i] = db[i]
        elif o == op[i] + 1:        # C1: d/da as recorded, the constant in db
            w.nda[i] = da[i]
            w.ndb[i] = _dconst(bits)
        else:                       # C0: d/d(second argument) is the recorded db
            w.nda[i] = db[i]
            w.ndb[i] = _dconst(bits)
    return n


def optimize(Tape tape, Py_ssize_t n_in, Py_ssize_t n_param, Py_ssize_t out_slot,
             Py_ssize_t out_size, compact):
    """The optimised form of a recorded tape, or None when it is not optimised
    (array records on it, an array or constant output).

    `compact` is the tape's compact guards (fastad._replay.compact_guards): their
    operand slots are kept.  Returns (tape, out_slot, compact) for the new tape.
    """
    if tape.records or out_slot < 0 or out_size != 1:
        return None
    cdef Py_ssize_t n = tape.n, first = 1 + n_in + n_param, i, m, g, m_total, j
    cdef int k
    if out_slot >= n or first > n:
        return None
    kind, ga, gb, gc, go, src, elem = compact
    cdef int32_t[::1] gav = np.ascontiguousarray(ga, dtype=np.int32)
    cdef int32_t[::1] gbv = np.ascontiguousarray(gb, dtype=np.int32)
    cdef Py_ssize_t ng = gav.shape[0]
    cdef uint64_t cap = 16
    while cap < <uint64_t>(2 * n):
        cap <<= 1
    cdef Work w
    memset(&w, 0, sizeof(Work))
    cdef Tape t
    cdef int64_t[::1] kv
    kept = None
    try:
        w.rep = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        w.isc = <uint8_t *>PyMem_Malloc(n)
        w.live = <uint8_t *>PyMem_Malloc(n)
        w.newi = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        w.nop = <uint8_t *>PyMem_Malloc(n)
        w.na = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        w.nb = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        w.nda = <double *>PyMem_Malloc(n * sizeof(double))
        w.ndb = <double *>PyMem_Malloc(n * sizeof(double))
        w.table = <Key *>PyMem_Malloc(cap * sizeof(Key))
        if (w.rep == NULL or w.isc == NULL or w.live == NULL or w.newi == NULL
                or w.nop == NULL or w.na == NULL or w.nb == NULL or w.nda == NULL
                or w.ndb == NULL or w.table == NULL):
            raise MemoryError("fd.trace: no memory to optimise a tape of %d slots" % n)
        for i in range(<Py_ssize_t>cap):
            w.table[i].slot = -1
        with nogil:
            _rewrite(tape.op, tape.arg_a, tape.arg_b, tape.val, tape.da, tape.db,
                     n, first, &w, cap - 1)
            # liveness (backward sweep) from the output and the guards' operands
            memset(w.live, 0, n)
            w.live[w.rep[out_slot]] = 1
            for g in range(ng):
                w.live[w.rep[gav[g]]] = 1
                if gbv[g] >= 0:
                    w.live[w.rep[gbv[g]]] = 1
            for i in range(n - 1, first - 1, -1):
                if w.live[i] and w.rep[i] == i:
                    k = fad_op_kind[w.nop[i]]
                    if k != FAD_KIND_LEAF:
                        w.live[w.na[i]] = 1
                        if k == FAD_KIND_BINARY:
                            w.live[w.nb[i]] = 1
            m = first
            for i in range(first):
                w.newi[i] = <int32_t>i
            for i in range(first, n):
                if w.live[i] and w.rep[i] == i:
                    w.newi[i] = <int32_t>m
                    m += 1
                else:
                    w.newi[i] = -1
            m_total = m
        t = Tape()
        t.reserve(m_total - t.n)
        memcpy(t.op, tape.op, first * sizeof(uint8_t))
        memcpy(t.arg_a, tape.arg_a, first * sizeof(int32_t))
        memcpy(t.arg_b, tape.arg_b, first * sizeof(int32_t))
        memcpy(t.val, tape.val, first * sizeof(double))
        memcpy(t.da, tape.da, first * sizeof(double))
        memcpy(t.db, tape.db, first * sizeof(double))
        with nogil:
            for i in range(first, n):
                j = w.newi[i]
                if j < 0:
                    continue
                k = fad_op_kind[w.nop[i]]
                t.op[j] = w.nop[i]
                t.arg_a[j] = w.newi[w.na[i]] if k != FAD_KIND_LEAF else 0
                t.arg_b[j] = w.newi[w.nb[i]] if k == FAD_KIND_BINARY else 0
                t.val[j] = tape.val[i]
                t.da[j] = w.nda[i]
                t.db[j] = w.ndb[i]
        t.n = m_total
        new_out = w.newi[w.rep[out_slot]]
        # where each old slot index lands: the number of kept slots below it (the
        # new index of the first kept slot at or after it), for slot ranges (spans)
        kept = np.empty(n + 1, dtype=np.int64)
        kv = kept
        kv[0] = 0
        for i in range(n):
            kv[i + 1] = kv[i] + (1 if i < first or w.newi[i] >= 0 else 0)
        nga = np.empty(ng, dtype=np.int32)
        ngb = np.empty(ng, dtype=np.int32)
        for g in range(ng):
            nga[g] = w.newi[w.rep[gav[g]]]
            ngb[g] = w.newi[w.rep[gbv[g]]] if gbv[g] >= 0 else -1
    finally:
        _free_work(&w)
    if tape.dtypes is not None:
        t.dtypes = dict(tape.dtypes)
    if tape.spans is not None:      # wengert()'s names of array ops: ranges follow
        sp = tape.spans
        new_sp = type(sp)("q")
        for j in range(0, len(sp), 3):
            lo, hi = kept[sp[j]], kept[sp[j + 1]]
            if hi > lo:
                new_sp.extend((lo, hi, sp[j + 2]))
        t.spans = new_sp
    return t, new_out, (kind, nga, ngb, gc, go, src, elem)
