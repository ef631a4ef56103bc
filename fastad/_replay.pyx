# Replay of a recorded tape at new inputs: the engine under fd.trace.
#
# A trace is a Tape recorded once (fastad/_trace.py): slots 1..n_in are the
# differentiated inputs (FAD_VAR), the next n_param slots the dynamic parameters
# (FAD_PARAM), everything after them the recorded operations.  Replaying rewrites
# val, da and db of every operation slot from the op table (fad_eval), exactly as
# recording computed them, so a replayed gradient is bit for bit the gradient a fresh
# recording would give.  Constant-operand ops (NAME_C0/NAME_C1) keep their constant
# in db, which replay reads and never writes.
#
# Guards (comparisons and escapes of values into Python) are copied at trace time
# into five flat C arrays and checked after the forward pass in one C loop.
#
# Single calls replay into the tape's own arrays (so the tangent and second-order
# sweeps of fastad/_second can run right after on a current tape).  Batches give
# each thread its own val/da/db/adjoint buffers and run whole rows without the GIL.
#
# A Replay owns its tape and freezes it (Tape.freeze): nothing can record on it,
# grow (realloc) its arrays or reset it, so the pointers below stay valid.  They
# are still re-read from the tape at every call, under the lock.
cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memset, memcpy
from libc.math cimport isnan, trunc
from libc.stdint cimport uint8_t, int32_t, int64_t

import threading
import numpy as np
cimport numpy as cnp

from fastad._errors import TraceError
from fastad._core cimport (
    fad_eval, fad_op_kind, FAD_VAR, FAD_PARAM, FAD_CONST, FAD_BLOCK, FAD_NUM_SCALAR_OPS,
    FAD_KIND_LEAF, FAD_KIND_UNARY, FAD_KIND_CONST, FAD_KIND_BINARY,
)
from fastad._tape cimport Tape, Var, new_var, leaf_block, as_float_array, sweep_scalar

cnp.import_array()

# Replays and sweeps shorter than this keep the GIL: releasing and re-taking it
# costs about as much as sweeping this many slots.
cdef Py_ssize_t NOGIL_SLOTS = 4000

# A batch thread replays about this many slots (a few ms) between two looks at its
# stop flag and, in the main thread, at pending signals: Ctrl-C then stops a long
# grad_batch within milliseconds instead of when the batch ends.
cdef Py_ssize_t BLOCK_SLOTS = 1 << 20

# Compact guard kinds.  0..5 are the comparison opcodes of Python's rich compare
# (<, <=, ==, !=, >, >=): the recorded outcome must repeat.  A value that escaped
# into Python as a float or an index must stay the same value; one taken by int()
# must truncate to the same integer.
cdef enum:
    GK_SAME = 6
    GK_INT = 7

# "float" is no longer recorded (float() of a Var raises: API.md 14); it stays so
# that traces recorded before that still replay with their guards.
GUARD_CODES = {"<": 0, "<=": 1, "==": 2, "!=": 3, ">": 4, ">=": 5,
               "float": GK_SAME, "index": GK_SAME, "int": GK_INT}
GUARD_NAMES = {0: "<", 1: "<=", 2: "==", 3: "!=", 4: ">", 5: ">="}


# The forward loop, as C generated from the op table's rows (its X macros), like
# fad_eval: each op's case computes exactly fad_eval's expressions, but knows its
# form at compile time, so a slot costs one dispatch (no kind or FIXED lookup, no
# choice of the second operand) and writes only what can change:
#   - ops whose first partials do not depend on the values (a literal, or the op's
#     own constant: fad_replay_fixed) write the value only; their da/db were set
#     once by set_partials_once() and stay;
#   - a unary op writes val and da (its db is 0, set once);
#   - a constant-operand op (NAME_C1, NAME_C0) reads its constant from db, which
#     it never writes (fad_eval hands the constant back unchanged).
# Leaves (inputs, parameters, constants; FAD_BLOCK slots, written by their
# record's forward()) are skipped.  Measured on Rosenbrock (n = 1000, 9,000 slots):
# the forward ~20% faster than one fad_eval switch per slot with those lookups.
# (Keeping the previous slot's value in a register, for the many ops that read
# it, measured 3% slower: a compare per operand.)
cdef extern from *:
    """
    #include "fastad_ops.h"
    #if defined(_MSC_VER)
    #define FAD_RESTRICT __restrict
    #else
    #define FAD_RESTRICT restrict
    #endif

    /* first partials that do not depend on the values (tests/test_optimize.py
     * checks it on every op listed); a constant expression for a constant op */
    static inline int fad_replay_fixed(int op) {
        switch (op) {
        case FAD_COPY: case FAD_NEG: case FAD_SIGN: case FAD_FLOOR: case FAD_CEIL:
        case FAD_ADD: case FAD_ADD_C1: case FAD_ADD_C0:
        case FAD_SUB: case FAD_SUB_C1: case FAD_SUB_C0:
        case FAD_MUL_C1: case FAD_MUL_C0: case FAD_DIV_C1: case FAD_MOD_C1:
        case FAD_FLOORDIV: case FAD_FLOORDIV_C1: case FAD_FLOORDIV_C0:
            return 1;
        default:
            return 0;
        }
    }

    static void fad_replay_forward(const unsigned char *FAD_RESTRICT op,
                                   const int32_t *FAD_RESTRICT ia,
                                   const int32_t *FAD_RESTRICT ib,
                                   double *FAD_RESTRICT val, double *FAD_RESTRICT da,
                                   double *FAD_RESTRICT db,
                                   Py_ssize_t lo, Py_ssize_t hi) {
        Py_ssize_t i;
        for (i = lo; i < hi; i++) {
            switch (op[i]) {
    #define FAD_RF_U(N, PY, VAL, D1, D2, LO, HI)                                   \
            case FAD_##N: {                                                        \
                const double a = val[ia[i]];                                       \
                const double r = (VAL);                                            \
                val[i] = r;                                                        \
                if (!fad_replay_fixed(FAD_##N)) da[i] = (D1);                      \
                break; }
            FAD_UNARY_OPS(FAD_RF_U)
    #undef FAD_RF_U
    #define FAD_RF_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI)        \
            case FAD_##N: {                                                        \
                const double a = val[ia[i]], b = val[ib[i]];                       \
                const double r = (VAL);                                            \
                val[i] = r;                                                        \
                if (!fad_replay_fixed(FAD_##N)) { da[i] = (DA); db[i] = (DB); }    \
                break; }                                                           \
            case FAD_##N##_C1: {                                                   \
                const double a = val[ia[i]], b = db[i];                            \
                const double r = (VAL);                                            \
                val[i] = r;                                                        \
                if (!fad_replay_fixed(FAD_##N##_C1)) da[i] = (DA);                 \
                break; }                                                           \
            case FAD_##N##_C0: {                                                   \
                const double a = db[i], b = val[ia[i]];                            \
                const double r = (VAL);                                            \
                val[i] = r;                                                        \
                if (!fad_replay_fixed(FAD_##N##_C0)) da[i] = (DB);                 \
                break; }
            FAD_BINARY_OPS(FAD_RF_B)
    #undef FAD_RF_B
            default:     /* leaves keep their value */
                break;
            }
        }
    }
    """
    int fad_replay_fixed(int op) noexcept nogil
    void fad_replay_forward(const uint8_t *op, const int32_t *a, const int32_t *b,
                            double *val, double *da, double *db,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


# The ops whose partials replay sets once (fad_replay_fixed above).
FIXED_PARTIAL_OPS = tuple(o for o in range(FAD_NUM_SCALAR_OPS) if fad_replay_fixed(o))


# A compiled trace's machine code (fastad._compile): the forward pass over slots
# first .. n-1, with the same effect on val/da/db as forward_scalar (tf.jvp,
# tf.hvp, ... read them afterwards), and the reverse sweep from the output slot
# down to slot 1, which leaves the inputs' adjoints in adj as reverse_scalar does
# (run_row reads only those; a rerolled loop keeps intermediates in registers).
ctypedef void (*fwd_fn)(double *val, double *da, double *db) noexcept nogil
ctypedef void (*rev_fn)(const double *da, const double *db, double *adj) noexcept nogil


cdef struct Prog:
    # Everything a row of replay + gradient reads, as plain pointers (no GIL).
    const uint8_t *op
    const int32_t *a
    const int32_t *b
    Py_ssize_t n            # slots in use (sentinel included)
    Py_ssize_t first        # first slot after the input and parameter leaves
    Py_ssize_t n_in         # input slots: 1 .. n_in
    Py_ssize_t n_param      # parameter slots: n_in + 1 .. n_in + n_param
    Py_ssize_t out          # output slot (first of its block); -1: constant output
    Py_ssize_t ng           # compact guards
    const uint8_t *gk
    const int32_t *ga
    const int32_t *gb
    const double *gc
    const double *go
    fwd_fn fwd              # NULL: interpret the tape
    rev_fn rev


cdef inline void forward_scalar(const uint8_t *op, const int32_t *a, const int32_t *b,
                                double *val, double *da, double *db,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Recompute val, da, db of slots lo .. hi-1 from their arguments' values, as
    fad_eval computes them (fad_replay_forward above).  Needs set_partials_once()
    to have run on the tape."""
    fad_replay_forward(op, a, b, val, da, db, lo, hi)


cdef void set_partials_once(const uint8_t *op, const int32_t *a, const int32_t *b,
                            const double *val, double *da, double *db,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Write the partials of slots lo .. hi-1 that forward_scalar does not: da/db of
    the fixed ops (what every replay would write there: they do not depend on the
    values; a constant-operand op's db is its constant and comes back unchanged)
    and the zero db of the unary ops (a tape loaded from a file may hold anything
    there)."""
    cdef Py_ssize_t i
    cdef int o, k
    cdef double y
    for i in range(lo, hi):
        o = op[i]
        k = fad_op_kind[o]
        if fad_replay_fixed(o):
            y = val[b[i]] if k == FAD_KIND_BINARY else db[i]
            fad_eval(o, val[a[i]], y, &da[i], &db[i])
        elif k == FAD_KIND_UNARY:
            db[i] = 0.0


cdef void reverse_scalar(const int32_t *a, const int32_t *b, const double *da,
                         const double *db, double *adj,
                         Py_ssize_t hi, Py_ssize_t lo) noexcept nogil:
    """The reverse sweep of fastad._tape.sweep_scalar, minus the sentinel writes.

    sweep_scalar adds db*g into adj[0] for every unary and constant-operand op (b
    points at the sentinel): harmless, but it chains every iteration through one
    memory cell (load, add, store, forwarded to the next iteration's load).
    Skipping b == 0 performs the same additions, in the same order and with the
    same operands, on every real slot, so gradients are bit for bit those of
    sweep_scalar.  (Keeping a[i] == i - 1 contributions in a register was tried:
    faster, but NaN payloads then depend on the compiler's operand order.)
    """
    cdef Py_ssize_t i
    cdef int32_t bi
    cdef double g
    for i in range(hi, lo - 1, -1):
        g = adj[i]
        if g != 0.0:
            adj[a[i]] += da[i] * g
            bi = b[i]
            if bi != 0:
                adj[bi] += db[i] * g


cdef inline bint _compare(int kind, double x, double y) noexcept nogil:
    if kind == 0:
        return x < y
    if kind == 1:
        return x <= y
    if kind == 2:
        return x == y
    if kind == 3:
        return x != y
    if kind == 4:
        return x > y
    return x >= y


cdef Py_ssize_t check_guards(const Prog *p, const double *val) noexcept nogil:
    """Index of the first compact guard that no longer holds, or -1."""
    cdef Py_ssize_t k
    cdef int kind
    cdef double x, y, want
    for k in range(p.ng):
        kind = p.gk[k]
        x = val[p.ga[k]]
        want = p.go[k]
        if kind <= 5:
            y = val[p.gb[k]] if p.gb[k] >= 0 else p.gc[k]
            if _compare(kind, x, y) != (want != 0.0):
                return k
        elif kind == GK_INT:
            if not (trunc(x) == trunc(want)):
                return k
        else:
            if not (x == want or (isnan(x) and isnan(want))):
                return k
    return -1


cdef Py_ssize_t run_row(const Prog *p, const double *x, const double *prm,
                        double *val, double *da, double *db, double *adj,
                        double *grad) noexcept nogil:
    """Replay at inputs x and parameters prm; if grad != NULL, the gradient of the
    scalar output into grad[0 .. n_in).  Returns -1, or the failing guard's index."""
    cdef Py_ssize_t g, top
    if p.n_in:   # x is NULL for an empty input; memcpy(_, NULL, 0) is undefined (UBSan)
        memcpy(val + 1, x, p.n_in * sizeof(double))
    if p.n_param:
        memcpy(val + 1 + p.n_in, prm, p.n_param * sizeof(double))
    if p.fwd != NULL:
        p.fwd(val, da, db)
    else:
        forward_scalar(p.op, p.a, p.b, val, da, db, p.first, p.n)
    g = check_guards(p, val)
    if g >= 0:
        return g
    if grad != NULL:
        if p.out >= 0:
            top = p.out if p.out > p.n_in else p.n_in
            memset(adj, 0, (top + 1) * sizeof(double))
            adj[p.out] = 1.0
            if p.rev != NULL:
                p.rev(da, db, adj)
            else:
                # down to the first operation, not slot 1: an input or parameter
                # leaf only adds 0 * g into the sentinel adj[0], which nothing reads,
                # and those additions, one chain through one memory cell, cost ~9%
                # of a Rosenbrock value_and_grad at n = 1000
                reverse_scalar(p.a, p.b, da, db, adj, p.out, p.first)
            memcpy(grad, adj + 1, p.n_in * sizeof(double))
        else:
            memset(grad, 0, p.n_in * sizeof(double))
    return -1


cdef inline bint _plain_vector(obj) noexcept:
    """obj is a 1-D ndarray of native float64, contiguous and aligned: its data can
    be read in place (read-only arrays too)."""
    return (cnp.PyArray_CheckExact(obj)
            and cnp.PyArray_TYPE(<cnp.ndarray>obj) == cnp.NPY_DOUBLE
            and cnp.PyArray_NDIM(<cnp.ndarray>obj) == 1
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>obj)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>obj))


def plain_float64(obj):
    """True when obj is an ndarray of native float64, C-contiguous and aligned (any
    shape): what a traced function's fast call passes straight to run()."""
    return (cnp.PyArray_CheckExact(obj)
            and cnp.PyArray_TYPE(<cnp.ndarray>obj) == cnp.NPY_DOUBLE
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>obj)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>obj))


@cython.final
cdef class _Stop:
    """Set by the calling thread of a batch (Ctrl-C, an error) to stop its workers
    at their next block; read with the GIL held."""
    cdef bint stop


cdef int _alloc(void **p, Py_ssize_t count, size_t itemsize) except -1:
    p[0] = PyMem_Malloc(<size_t>max(count, 1) * itemsize)
    if p[0] == NULL:
        raise MemoryError("fastad.trace: no memory for %d work slots" % count)
    return 0


@cython.final
cdef class Replay:
    """One recorded path of a traced function: the tape, its input/parameter/output
    slots and its guards, with the C loops that replay it.

    fastad._trace.TracedFunction wraps one or more of these (one per path when
    retracing); this class knows nothing of pytrees.
    """
    cdef readonly Tape tape
    cdef Prog prog
    cdef readonly Py_ssize_t n_in, n_param, out_slot, out_size
    cdef readonly bint has_records
    cdef readonly list guards         # the tape's guard tuples, for messages
    cdef readonly object guard_src    # int32 ndarray: compact guard -> guards index
    cdef readonly object guard_elem   # int64 ndarray: element within an array guard
    cdef object g_kind, g_a, g_b, g_c, g_out   # ndarrays owning the guard storage
    cdef object lock                  # one replay at a time on the tape's arrays
    cdef readonly object compiled     # the loaded library of a compiled trace, or None
    cdef public Py_ssize_t ops_recorded   # len() of the tape as recorded (before
                                          # optimisation), or -1 when not known

    def __cinit__(self):
        self.lock = threading.Lock()
        self.prog.fwd = NULL
        self.prog.rev = NULL

    def __init__(self, Tape tape, Py_ssize_t n_in, Py_ssize_t n_param,
                 Py_ssize_t out_slot, Py_ssize_t out_size, guards=None, compact=None):
        """`compact` (5 guard arrays + src + elem) is given when loading a file;
        otherwise the guards are compacted from `guards` (the tape's list)."""
        if out_slot >= 0 and (out_size < 1 or out_slot + out_size > tape.n):
            # every run reads val[out_slot:out_slot + out_size] with no further check
            raise ValueError("Replay: output slots %d..%d outside a tape of %d slots"
                             % (out_slot, out_slot + out_size - 1, tape.n))
        self.tape = tape
        self.n_in = n_in
        self.n_param = n_param
        self.out_slot = out_slot
        self.out_size = out_size
        self.guards = list(guards if guards is not None else tape.guards)
        self.has_records = bool(tape.records)
        for rec in tape.records:
            if not callable(getattr(rec, "forward", None)):
                raise TraceError(
                    "fd.trace: the array operation %r cannot be replayed (its tape "
                    "record has no forward()); call the function eagerly instead"
                    % getattr(rec, "name", type(rec).__name__))
        if compact is None:
            compact = compact_guards(tape, self.guards)
        kind, ga, gb, gc, go, src, elem = compact
        self._set_guards(kind, ga, gb, gc, go, src, elem)
        tape.freeze()             # may move the arrays (shrinks them): bind after
        self._bind()
        self.ops_recorded = -1
        set_partials_once(tape.op, tape.arg_a, tape.arg_b, tape.val, tape.da, tape.db,
                       1 + n_in + n_param, tape.n)
        self.prog.n = tape.n
        self.prog.first = 1 + n_in + n_param
        self.prog.n_in = n_in
        self.prog.n_param = n_param
        self.prog.out = out_slot

    def set_compiled(self, lib, size_t fwd, size_t rev):
        """Run this replay through compiled code: fwd and rev are the addresses of a
        library's forward and reverse functions for exactly this tape (fastad._compile
        generated them from it); lib keeps the library loaded."""
        if self.has_records:
            raise TraceError("a tape with array records has no compiled form")
        if fwd == 0 or rev == 0:
            raise ValueError("set_compiled: null function address")
        with self.lock:
            self.compiled = lib
            self.prog.fwd = <fwd_fn>fwd
            self.prog.rev = <rev_fn>rev

    cdef inline void _bind(self) noexcept:
        """Point the program at the tape's arrays (called under self.lock)."""
        cdef Tape t = self.tape
        self.prog.op = t.op
        self.prog.a = t.arg_a
        self.prog.b = t.arg_b

    cdef _set_guards(self, kind, a, b, c, out, src, elem):
        self.g_kind = np.ascontiguousarray(kind, dtype=np.uint8)
        self.g_a = np.ascontiguousarray(a, dtype=np.int32)
        self.g_b = np.ascontiguousarray(b, dtype=np.int32)
        self.g_c = np.ascontiguousarray(c, dtype=np.float64)
        self.g_out = np.ascontiguousarray(out, dtype=np.float64)
        self.guard_src = np.ascontiguousarray(src, dtype=np.int32)
        self.guard_elem = np.ascontiguousarray(elem, dtype=np.int64)
        cdef Py_ssize_t ng = self.g_kind.shape[0]
        for arr in (self.g_a, self.g_b, self.g_c, self.g_out, self.guard_src,
                    self.guard_elem):
            if arr.shape[0] != ng:
                raise TraceError("fd.trace: inconsistent guard arrays")
        self.prog.ng = ng
        self.prog.gk = <const uint8_t *>cnp.PyArray_DATA(self.g_kind)
        self.prog.ga = <const int32_t *>cnp.PyArray_DATA(self.g_a)
        self.prog.gb = <const int32_t *>cnp.PyArray_DATA(self.g_b)
        self.prog.gc = <const double *>cnp.PyArray_DATA(self.g_c)
        self.prog.go = <const double *>cnp.PyArray_DATA(self.g_out)

    @property
    def n_guards(self):
        """Number of compact (elementwise) guards checked per replay."""
        return self.prog.ng

    @property
    def guard_arrays(self):
        return (self.g_kind, self.g_a, self.g_b, self.g_c, self.g_out,
                self.guard_src, self.guard_elem)

    @property
    def nbytes(self):
        return self.tape.nbytes + self.prog.ng * (1 + 4 + 4 + 8 + 8 + 4 + 8)

    # -- single calls, on the tape's own arrays ----------------------------------

    def run(self, x, prm, bint want_grad):
        """Replay at x (a float when n_in == 1, else n_in float64 values in a 1-D
        contiguous array) and prm (n_param values, the same way).

        Returns (failed_guard, value, grad): failed_guard is -1 when every guard
        held, else the index of the first compact guard that failed (value and grad
        are then None).  value is a float (scalar output) or an ndarray copy of the
        output block; grad an ndarray of n_in values when want_grad.
        """
        cdef double x1
        cdef const double *xp
        cdef const double *pp
        cdef const double[::1] xv
        cdef const double[::1] pv
        cdef Py_ssize_t nx, npr
        # a plain float64 vector is read in place: a typed memoryview costs ~100 ns
        # per argument, a tenth of a small trace's whole call
        if type(x) is float:
            x1 = x
            xp = &x1
            nx = 1
        elif _plain_vector(x):
            nx = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
            xp = <const double *>cnp.PyArray_DATA(<cnp.ndarray>x) if nx else NULL
        else:
            xv = x
            nx = xv.shape[0]
            xp = &xv[0] if nx else NULL
        if _plain_vector(prm):
            npr = cnp.PyArray_DIM(<cnp.ndarray>prm, 0)
            pp = <const double *>cnp.PyArray_DATA(<cnp.ndarray>prm) if npr else NULL
        else:
            pv = prm
            npr = pv.shape[0]
            pp = &pv[0] if npr else NULL
        if nx != self.n_in or npr != self.n_param:
            raise ValueError("replay: expected %d inputs and %d parameters, got %d and %d"
                             % (self.n_in, self.n_param, nx, npr))
        if want_grad and self.out_size != 1 and self.out_slot >= 0:
            raise TypeError("the traced function returns an array of %d values; the "
                            "gradient needs a scalar output" % self.out_size)
        cdef Tape t = self.tape
        cdef Py_ssize_t g
        cdef double *adj = NULL
        cdef double *gp = NULL
        cdef cnp.npy_intp dims[1]
        grad = None
        if want_grad:
            dims[0] = self.n_in
            grad = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
            gp = <double *>cnp.PyArray_DATA(grad)
        with self.lock:
            self._bind()
            if want_grad:
                adj = t.acquire_adjoints(t.n)
            try:
                if self.has_records:
                    g = self._run_with_records(xp, pp, adj, gp)
                else:
                    g = self._run_plain(xp, pp, adj, gp)
                if g >= 0:
                    return g, None, None
                return -1, self._read_value(), grad
            finally:
                if adj != NULL:
                    t.release_adjoints(adj)

    def run_then(self, double[::1] x, double[::1] prm, fn):
        """Replay at (x, prm) and, if every guard held, call fn(tape) while the
        tape's arrays are still current (no other call can replay in between).
        Returns (failed_guard, value, fn's result or None)."""
        if x.shape[0] != self.n_in or prm.shape[0] != self.n_param:
            raise ValueError("replay: expected %d inputs and %d parameters, got %d and %d"
                             % (self.n_in, self.n_param, x.shape[0], prm.shape[0]))
        cdef Py_ssize_t g
        with self.lock:
            self._bind()
            if self.has_records:
                g = self._run_with_records(&x[0] if self.n_in else NULL,
                                           &prm[0] if self.n_param else NULL, NULL, NULL)
            else:
                g = self._run_plain(&x[0] if self.n_in else NULL,
                                    &prm[0] if self.n_param else NULL, NULL, NULL)
            if g >= 0:
                return g, None, None
            return -1, self._read_value(), fn(self.tape)

    cdef Py_ssize_t _run_plain(self, const double *x, const double *prm, double *adj,
                               double *gp) except -2:
        cdef Tape t = self.tape
        cdef Py_ssize_t g
        if t.n < NOGIL_SLOTS:
            return run_row(&self.prog, x, prm, t.val, t.da, t.db, adj, gp)
        t.sweeping += 1
        try:
            with nogil:
                g = run_row(&self.prog, x, prm, t.val, t.da, t.db, adj, gp)
        finally:
            t.sweeping -= 1
        return g

    cdef Py_ssize_t _run_with_records(self, const double *x, const double *prm,
                                      double *adj, double *gp) except -2:
        """Replay with array records in between: C stretches, then rec.forward()."""
        cdef Tape t = self.tape
        cdef Py_ssize_t lo = self.prog.first, base, g, top
        if self.n_in:   # x is NULL for an empty input (memcpy from NULL is undefined)
            memcpy(t.val + 1, x, self.n_in * sizeof(double))
        if self.n_param:
            memcpy(t.val + 1 + self.n_in, prm, self.n_param * sizeof(double))
        valview = np.asarray(<double[:t.n]>t.val)
        for rec in t.records:
            base = rec.base
            if base > lo:
                forward_scalar(t.op, t.arg_a, t.arg_b, t.val, t.da, t.db, lo, base)
            rec.forward(valview)
            lo = max(lo, base + <Py_ssize_t>rec.size)
        forward_scalar(t.op, t.arg_a, t.arg_b, t.val, t.da, t.db, lo, t.n)
        g = check_guards(&self.prog, t.val)
        if g >= 0 or gp == NULL:
            return g
        if self.out_slot >= 0:
            top = max(self.out_slot, self.n_in)
            memset(adj, 0, (top + 1) * sizeof(double))
            adj[self.out_slot] = 1.0
            t.reverse(adj, t.n, self.out_slot, 1)
            memcpy(gp, adj + 1, self.n_in * sizeof(double))
        else:
            memset(gp, 0, self.n_in * sizeof(double))
        return -1

    cdef object _read_value(self):
        cdef Tape t = self.tape
        if self.out_slot < 0:
            return None
        if self.out_size == 1:
            return t.val[self.out_slot]
        return np.array(<double[:self.out_size]>(t.val + self.out_slot))

    def replay(self, double[::1] x, double[::1] prm):
        """Forward replay only (values and local partials current); -1 or a guard."""
        return self.run(x, prm, False)[0]

    def slot_values(self, cnp.ndarray slots):
        """Current values of the given slots (float64 array, same shape)."""
        cdef Tape t = self.tape
        idx = np.asarray(slots, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= t.n):
            raise IndexError("slot out of range")
        return np.asarray(<double[:t.n]>t.val)[idx].copy()

    # -- batches: one buffer set per thread, whole rows without the GIL ----------

    def batch(self, double[:, ::1] X, double[::1] prm, bint want_grad, int threads):
        """Replay every row of X (m, n_in).  Returns (values, grads, status):
        status[i] is -1 or the compact guard that failed at row i (its value and
        gradient rows are then NaN)."""
        cdef Py_ssize_t m = X.shape[0], i
        if X.shape[1] != self.n_in or prm.shape[0] != self.n_param:
            raise ValueError("batch: expected rows of %d inputs and %d parameters"
                             % (self.n_in, self.n_param))
        if want_grad and self.out_size != 1 and self.out_slot >= 0:
            raise TypeError("the traced function returns an array of %d values; the "
                            "gradient needs a scalar output" % self.out_size)
        cdef object shape = (<object>m,)
        if self.out_size != 1:
            shape = (<object>m, <object>self.out_size)
        values = np.full(shape, np.nan)
        grads = np.full((m, self.n_in), np.nan) if want_grad else None
        status = np.full(m, -1, dtype=np.int64)
        if m == 0:
            return values, grads, status
        if self.has_records:
            # records' forward/backward are Python: run rows one by one, in order
            for i in range(m):
                PyErr_CheckSignals()      # Ctrl-C between rows
                g, v, gr = self.run(X[i], prm, want_grad)
                status[i] = g
                if g < 0:
                    values[i] = v
                    if want_grad:
                        grads[i] = gr
            return values, grads, status
        threads = max(1, min(threads, m))
        bounds = [m * k // threads for k in range(threads + 1)]
        workers = []
        errors = []
        cdef _Stop stop = _Stop()
        self._bind()       # the frozen tape's pointers: the value run() also writes
        try:
            for k in range(1, threads):
                th = threading.Thread(target=self._chunk_guarded,
                                      args=(X, prm, values, grads, status,
                                            bounds[k], bounds[k + 1], stop, errors))
                th.start()
                workers.append(th)
            # this thread's share checks for signals between blocks; join() is
            # interruptible too, so Ctrl-C lands here whichever part is running
            self._chunk(X, prm, values, grads, status, bounds[0], bounds[1], stop)
            for th in workers:
                th.join()
        except BaseException:
            stop.stop = True
            for th in workers:
                th.join()
            raise
        if errors:
            raise errors[0]
        return values, grads, status

    def _chunk_guarded(self, X, prm, values, grads, status, lo, hi, _Stop stop, errors):
        try:
            self._chunk(X, prm, values, grads, status, lo, hi, stop)
        except BaseException as e:   # reported to the calling thread
            stop.stop = True
            errors.append(e)

    def _chunk(self, double[:, ::1] X, double[::1] prm, values, grads,
               long long[::1] status, Py_ssize_t lo, Py_ssize_t hi, _Stop stop):
        """Rows lo .. hi-1 on this thread's own buffers, BLOCK_SLOTS of work at a
        time without the GIL; between blocks, quit when stop is set or on a signal."""
        cdef Tape t = self.tape
        cdef Py_ssize_t n = t.n, i, g, osz = self.out_size, out = self.out_slot
        cdef Py_ssize_t i0, i1, step = max(1, BLOCK_SLOTS // max(n, 1))
        cdef double *val = NULL
        cdef double *da = NULL
        cdef double *db = NULL
        cdef double *adj = NULL
        cdef double[::1] vflat = values.reshape(-1)
        cdef double *vp = &vflat[0]
        cdef double *gp = NULL
        cdef double *gi
        cdef const double *pp = &prm[0] if self.n_param else NULL
        cdef Py_ssize_t n_in = self.n_in
        if grads is not None:
            gp = <double *>cnp.PyArray_DATA(grads)
        try:
            _alloc(<void **>&val, n, sizeof(double))
            _alloc(<void **>&da, n, sizeof(double))
            _alloc(<void **>&db, n, sizeof(double))
            _alloc(<void **>&adj, n, sizeof(double))
            # constants live in val (FAD_CONST leaves) and db (constant operands);
            # copied under the lock, so never half-way through another call's replay
            with self.lock:
                memcpy(val, t.val, n * sizeof(double))
                memcpy(db, t.db, n * sizeof(double))
                memcpy(da, t.da, n * sizeof(double))
            t.sweeping += 1
            try:
                i0 = lo
                while i0 < hi:
                    i1 = min(hi, i0 + step)
                    with nogil:
                        for i in range(i0, i1):
                            gi = gp + i * n_in if gp != NULL else NULL
                            g = run_row(&self.prog, &X[i, 0] if n_in else NULL, pp,
                                        val, da, db, adj, gi)
                            status[i] = g
                            if g >= 0:
                                continue
                            if out >= 0:
                                memcpy(vp + i * osz, val + out, osz * sizeof(double))
                    i0 = i1
                    if stop.stop:
                        break
                    PyErr_CheckSignals()    # raises KeyboardInterrupt (main thread)
            finally:
                t.sweeping -= 1
        finally:
            PyMem_Free(val)
            PyMem_Free(da)
            PyMem_Free(db)
            PyMem_Free(adj)


def compact_guards(Tape tape, list guards):
    """The tape's guard tuples as flat arrays (kind, a, b, c, outcome, src, elem).

    A guard tuple is (kind, slot_a, slot_b_or_-1, const, outcome, where); array
    comparisons record the slots, constants and outcomes as arrays (one compact
    guard per element).  Unknown kinds are kept as "the value must not change",
    the safe reading of any escape we do not know more about.
    """
    kinds, sa, sb, sc, so, src, elem = [], [], [], [], [], [], []
    cdef Py_ssize_t idx
    for idx in range(len(guards)):
        g = guards[idx]
        kind, a, b, c, outcome = g[0], g[1], g[2], g[3], g[4]
        code = GUARD_CODES.get(kind, -1)
        if type(a) is int:
            if code < 0:
                code = GK_SAME
                outcome = tape.val[a]
            kinds.append(code)
            sa.append(a)
            sb.append(b if type(b) is int else -1)
            sc.append(float(c))
            so.append(float(outcome))
            src.append(idx)
            elem.append(0)
            continue
        # an array guard: broadcast its parts to one shape, one entry per element
        aa, bb, cc, oo = np.broadcast_arrays(
            np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64),
            np.asarray(c, dtype=np.float64), np.asarray(outcome, dtype=np.float64))
        m = aa.size
        if code < 0:
            code = GK_SAME
            oo = np.asarray(tape._slot_values())[aa]
        kinds.extend([code] * m)
        sa.extend(aa.ravel().tolist())
        sb.extend(bb.ravel().tolist())
        sc.extend(cc.ravel().tolist())
        so.extend(oo.ravel().tolist())
        src.extend([idx] * m)
        elem.extend(range(m))
    return (np.array(kinds, dtype=np.uint8), np.array(sa, dtype=np.int32),
            np.array(sb, dtype=np.int32), np.array(sc, dtype=np.float64),
            np.array(so, dtype=np.float64), np.array(src, dtype=np.int32),
            np.array(elem, dtype=np.int64))


# ----------------------------------------------------------------------------------
# Recording helpers and tape (de)serialisation

def param_leaf(Tape t, value):
    """A FAD_PARAM leaf Var holding a float, or a block of them for an array."""
    cdef double x
    if type(value) is float:
        x = value
        return new_var(t, t.push(FAD_PARAM, 0, 0, x, 0.0, 0.0), x)
    arr = as_float_array(value, "parameter")
    if arr.ndim == 0:
        x = arr[()]
        return new_var(t, t.push(FAD_PARAM, 0, 0, x, 0.0, 0.0), x)
    return leaf_block(t, arr, FAD_PARAM)


def var_slot(Var v):
    """The tape slot of a scalar Var (the first slot of an array Var's block)."""
    return v.slot


def tape_copy(Tape src):
    """A new Tape holding exactly src's slots, guards and records (right-sized).

    fd.trace records on the thread's warm scratch tape (no growth by doubling while
    f runs) and keeps this copy, which costs one memcpy per array.
    """
    cdef Tape t = Tape()
    cdef Py_ssize_t n = src.n
    t.reserve(n - t.n)
    memcpy(t.op, src.op, n * sizeof(uint8_t))
    memcpy(t.arg_a, src.arg_a, n * sizeof(int32_t))
    memcpy(t.arg_b, src.arg_b, n * sizeof(int32_t))
    memcpy(t.val, src.val, n * sizeof(double))
    memcpy(t.da, src.da, n * sizeof(double))
    memcpy(t.db, src.db, n * sizeof(double))
    t.n = n
    t.records = list(src.records)
    t.guards = list(src.guards)
    return t


def tape_arrays(Tape t):
    """(op, a, b, val, db) copies of the tape's slots: what a file stores."""
    n = t.n
    return (np.array(<uint8_t[:n]>t.op), np.array(<int32_t[:n]>t.arg_a),
            np.array(<int32_t[:n]>t.arg_b), np.array(<double[:n]>t.val),
            np.array(<double[:n]>t.db))


def tape_from_arrays(op, a, b, val, db, records, Py_ssize_t n_leaves):
    """A Tape holding these slots, after checking that replaying it cannot read or
    write outside its arrays.  Raises TraceError naming the first bad slot.

    Checked: every op code exists; slot 0 is the sentinel; slots 1..n_leaves are
    input/parameter leaves and no other slot is; every argument slot is below its
    own slot (the tape is in topological order); FAD_BLOCK slots are exactly the
    blocks of the records, which are sorted, in range and do not overlap.
    """
    cdef cnp.ndarray[cnp.uint8_t, ndim=1, mode="c"] o = np.ascontiguousarray(op, dtype=np.uint8)
    cdef cnp.ndarray[cnp.int32_t, ndim=1, mode="c"] aa = np.ascontiguousarray(a, dtype=np.int32)
    cdef cnp.ndarray[cnp.int32_t, ndim=1, mode="c"] bb = np.ascontiguousarray(b, dtype=np.int32)
    cdef cnp.ndarray[cnp.float64_t, ndim=1, mode="c"] vv = np.ascontiguousarray(val, dtype=np.float64)
    cdef cnp.ndarray[cnp.float64_t, ndim=1, mode="c"] dd = np.ascontiguousarray(db, dtype=np.float64)
    cdef Py_ssize_t n = o.shape[0], i, k
    if n < 1 or aa.shape[0] != n or bb.shape[0] != n or vv.shape[0] != n or dd.shape[0] != n:
        raise TraceError("trace data: slot arrays of different lengths")
    if n_leaves < 0 or n_leaves >= n:
        raise TraceError("trace data: %d leaves do not fit %d slots" % (n_leaves, n))
    # the blocks that records own
    in_block = np.zeros(n, dtype=bool)
    prev_end = 1 + n_leaves
    for rec in records:
        base, size = rec.base, rec.size
        if type(base) is not int or type(size) is not int or base < prev_end \
                or size < 0 or base + size > n:
            raise TraceError("trace data: array record %r out of place" % (rec,))
        in_block[base:base + size] = True
        prev_end = base + size
    cdef int kind, code
    for i in range(n):
        code = o[i]
        if code >= FAD_NUM_SCALAR_OPS:
            raise TraceError("trace data: slot %d has unknown op code %d" % (i, code))
        kind = fad_op_kind[code]
        if i == 0:
            if code != FAD_CONST or aa[0] != 0 or bb[0] != 0:
                raise TraceError("trace data: slot 0 is not the sentinel")
            continue
        if i <= n_leaves:
            if code != FAD_VAR and code != FAD_PARAM:
                raise TraceError("trace data: slot %d should be an input leaf" % i)
        elif code == FAD_VAR or code == FAD_PARAM:
            raise TraceError("trace data: slot %d is a leaf after the inputs" % i)
        if (code == FAD_BLOCK) != bool(in_block[i]):
            raise TraceError("trace data: slot %d does not match the array records" % i)
        if kind == FAD_KIND_LEAF:
            if aa[i] != 0 or bb[i] != 0:
                raise TraceError("trace data: leaf slot %d has arguments" % i)
        else:
            if aa[i] < 0 or aa[i] >= i:
                raise TraceError("trace data: slot %d reads slot %d" % (i, aa[i]))
            if kind == FAD_KIND_BINARY:
                if bb[i] < 0 or bb[i] >= i:
                    raise TraceError("trace data: slot %d reads slot %d" % (i, bb[i]))
            elif bb[i] != 0:
                raise TraceError("trace data: slot %d has a stray argument" % i)
    cdef Tape t = Tape()
    t.reserve(n - t.n)
    memcpy(t.op, &o[0], n * sizeof(uint8_t))
    memcpy(t.arg_a, &aa[0], n * sizeof(int32_t))
    memcpy(t.arg_b, &bb[0], n * sizeof(int32_t))
    memcpy(t.val, &vv[0], n * sizeof(double))
    memcpy(t.db, &dd[0], n * sizeof(double))
    memset(t.da, 0, n * sizeof(double))
    t.n = n
    t.records = list(records)
    return t


def check_guard_arrays(Py_ssize_t n, kind, a, b, src, Py_ssize_t n_guards_src):
    """TraceError unless every compact guard reads slots inside the tape."""
    kind = np.asarray(kind)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    if kind.size == 0:
        return
    if kind.max() > GK_INT:
        raise TraceError("trace data: unknown guard kind")
    if a.min() < 1 or a.max() >= n or b.min() < -1 or b.max() >= n:
        raise TraceError("trace data: a guard reads a slot outside the tape")
    if src.min() < 0 or src.max() >= n_guards_src:
        raise TraceError("trace data: a guard refers to an unknown source line")
