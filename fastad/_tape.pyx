# The tape, the Var node type, recording, and the reverse sweep.
#
# Everything a scalar operation costs is in this file: Var's operator methods check
# their operands' types with `type(x) is ...` (much cheaper than isinstance on the
# hot path), read the op table in csrc/fastad_ops.h through fad_eval(), and append
# one slot to the tape's arrays.  Array Vars are blocks of consecutive scalar slots,
# so elementwise array code records scalar ops from a C loop and every sweep
# (reverse, replay, tangent, second order) handles arrays with no extra machinery.
# Ops that are not elementwise (matmul, ...) append a "record": a block of FAD_BLOCK
# slots whose values a NumPy kernel wrote and whose adjoint a NumPy kernel spreads.
# The record classes (fastad._arrays), Duals and NumPy's dispatch live above this
# module; it reaches them through the registry of array primitives
# (fastad._registry: data, below the core), never through globals set from above.
cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.object cimport PyObject, PyTypeObject
from libc.string cimport memset, memcpy
from libc.math cimport isnan, NAN
from libc.stdint cimport uint8_t, int32_t, uint64_t, INT32_MAX

import sys
import threading
from array import array as _pyarray
import numpy as np
cimport numpy as cnp

from fastad._core cimport *
from fastad._errors import TapeError
from fastad import _registry
from fastad._pytree import tree_flatten, tree_unflatten

cnp.import_array()

include "_ops.pxi"

cdef extern from *:
    """
    /* Memory given back by a tape (free, or realloc down) often stays in the C
       heap: glibc keeps freed blocks below its dynamic mmap threshold (up to 32 MB)
       in the heap, which is only trimmed from the top.  malloc_trim returns every
       free page to the system; elsewhere this is a no-op. */
    #if defined(__GLIBC__)
    #include <malloc.h>
    static void fad_trim_heap(void) { malloc_trim(0); }
    #else
    static void fad_trim_heap(void) { }
    #endif
    """
    void fad_trim_heap() nogil


cdef extern from "Python.h":
    # just the field of PyTypeObject needed to hide Var.__new__ (see below Var)
    ctypedef struct _TypeWithDict "PyTypeObject":
        PyObject *tp_dict
    void _type_modified "PyType_Modified"(PyTypeObject *t)
    # declared without an exception clause: the callers test PyErr_Occurred()
    # themselves, to turn an overflow into fastad's own error
    double _long_as_double "PyLong_AsDouble"(object o)
    Py_ssize_t _long_as_ssize_t "PyLong_AsSsize_t"(object o)
    PyObject *_err_occurred "PyErr_Occurred"()
    void _err_clear "PyErr_Clear"()

# Bytes of tape storage per scalar slot (op, two argument slots, value, two
# partials); the adjoint buffer is extra.  bench/ reports it.
SLOT_BYTES = sizeof(uint8_t) + 2 * sizeof(int32_t) + 3 * sizeof(double)

# Sweeps longer than this release the GIL; shorter ones finish faster than the
# release/re-acquire costs.
cdef Py_ssize_t NOGIL_THRESHOLD = 20000

# The messages of the two ways a tape refuses to change under its readers.
_FROZEN = ("this tape belongs to a traced function (fd.trace) and is read-only: "
           "recording on it or resetting it would break the trace; record on a new "
           "fd.Tape()")
_SWEEPING = ("cannot %s this tape while a gradient sweep is reading it (in another "
             "thread, or in an array operation's backward); wait for the sweep to "
             "finish or use another tape")

# Scratch tapes (the per-thread pool behind fd.grad, fastad._functional) keep their
# memory between calls, but not a peak's: a call that used under 1/8 of a capacity
# above SCRATCH_KEEP_SLOTS (~11 MB of slots) shrinks the tape to 4x its use.  Small
# tapes are never touched, so the common small call does no allocator work.
cdef Py_ssize_t SCRATCH_KEEP_SLOTS = 1 << 18

# Set by fd.debug_nans(): every recorded op checks for a fresh NaN.
cdef bint _debug_nans = False

def _set_debug_nans(bint on):
    global _debug_nans
    cdef bint old = _debug_nans
    _debug_nans = on
    return old


def _debug_nans_enabled():
    """Whether fd.debug_nans() is active (array records check their outputs)."""
    return _debug_nans


cdef bint debug_nans_on() noexcept:
    """_debug_nans_enabled() for the Cython modules above (no Python call)."""
    return _debug_nans


# ----------------------------------------------------------------------------------
# The active-tape stack, one per thread.

_local = threading.local()


def _tape_stack():
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def current_tape():
    """The innermost tape active in this thread, or None."""
    stack = _tape_stack()
    return stack[len(stack) - 1] if stack else None


# ----------------------------------------------------------------------------------
# Memory

cdef int _grow(void **p, Py_ssize_t count, size_t itemsize) except -1:
    """Resize *p to count items; assign the new pointer only on success."""
    if count > <Py_ssize_t>(<size_t>-1 // 2 // itemsize):
        raise MemoryError("fastad: tape too large")
    cdef void *q = PyMem_Realloc(p[0], <size_t>count * itemsize)
    if q == NULL:
        raise MemoryError("fastad: cannot grow the tape to %d slots" % count)
    p[0] = q
    return 0


cdef void sweep_scalar(const int32_t *a, const int32_t *b, const double *da,
                       const double *db, double *adj,
                       Py_ssize_t hi, Py_ssize_t lo) noexcept nogil:
    """adj[a[i]] += da[i]*adj[i]; adj[b[i]] += db[i]*adj[i] for i = hi down to lo.

    A zero adjoint is skipped: it saves work on slots the target does not reach, and
    it keeps 0 * inf from turning into NaN on a branch that was never taken (CppAD's
    absolute-zero rule), e.g. sqrt'(0) = inf in a term multiplied by zero.
    """
    cdef Py_ssize_t i
    cdef double g
    for i in range(hi, lo - 1, -1):
        g = adj[i]
        if g != 0.0:
            adj[a[i]] += da[i] * g
            adj[b[i]] += db[i] * g


def _trim_heap():
    """Return the C heap's free pages to the system (glibc; else nothing): after a
    big tape was freed or shrunk, and by fd.release_memory()."""
    with nogil:
        fad_trim_heap()


# ----------------------------------------------------------------------------------
# The tape

cdef class Tape:
    """A recording of operations on Vars, swept backwards for gradients.

    ``with fd.Tape() as tape:`` makes it the active tape of this thread;
    ``tape.variable(x)`` creates a leaf, and every operation on Vars of this tape is
    recorded on it, one slot per operation (op code, argument slots, value, local
    partial derivatives) in C memory.  ``tape.gradient(target, sources)`` may be
    called any number of times; ``tape.reset()`` empties it (Vars created before
    become invalid) and keeps its memory.

    Tapes nest: a Var belongs to the innermost active tape when it was created.
    Each thread has its own stack of active tapes.  Combining Vars of two live
    tapes, or using a Var after its tape was reset, raises
    :class:`fastad.TapeError`.

    Examples
    --------
    >>> with fd.Tape() as tape:
    ...     x = tape.variable(3.0)
    ...     y = x * x + 1.0
    >>> tape.gradient(y, x), len(tape)
    (6.0, 3)
    """

    def __cinit__(self):
        self.n = 0
        self.cap = 0
        self.op = NULL
        self.arg_a = NULL
        self.arg_b = NULL
        self.val = NULL
        self.da = NULL
        self.db = NULL
        self.adj = NULL
        self.adj_cap = 0
        self.adj_busy = False
        self.sweeping = 0
        self.frozen = False
        self.generation = 1
        self.records = []
        self.guards = []
        self.spans = None
        self.dtypes = {}
        self.reserve(256)
        self.push(FAD_CONST, 0, 0, 0.0, 0.0, 0.0)   # the sentinel slot 0

    def __dealloc__(self):
        PyMem_Free(self.op)
        PyMem_Free(self.arg_a)
        PyMem_Free(self.arg_b)
        PyMem_Free(self.val)
        PyMem_Free(self.da)
        PyMem_Free(self.db)
        PyMem_Free(self.adj)

    cdef int reserve(self, Py_ssize_t extra) except -1:
        """Make room for `extra` more slots (doubling), before a batch of pushes."""
        cdef Py_ssize_t need = self.n + extra
        if need <= self.cap:
            return 0
        # A frozen tape has cap == n, so every push lands here and is refused; a
        # sweep in progress holds pointers into the arrays that a realloc would free.
        if self.frozen:
            raise TapeError(_FROZEN)
        if self.sweeping:
            raise TapeError(_SWEEPING % "grow (record more on)")
        if need > INT32_MAX:
            raise MemoryError("fastad: a tape holds at most 2**31 - 1 operations")
        cdef Py_ssize_t new_cap = max(self.cap * 2, need, 256)
        if new_cap > INT32_MAX:
            new_cap = INT32_MAX
        # Each array is grown on its own and assigned only on success, so a failed
        # growth leaves the tape valid at its old capacity.
        _grow(<void **>&self.op, new_cap, sizeof(uint8_t))
        _grow(<void **>&self.arg_a, new_cap, sizeof(int32_t))
        _grow(<void **>&self.arg_b, new_cap, sizeof(int32_t))
        _grow(<void **>&self.val, new_cap, sizeof(double))
        _grow(<void **>&self.da, new_cap, sizeof(double))
        _grow(<void **>&self.db, new_cap, sizeof(double))
        self.cap = new_cap
        return 0

    cdef int freeze(self) except -1:
        """Make the tape read-only for good: a replay (fastad._replay) keeps
        pointers into its arrays and its slot layout.  The arrays shrink to the
        slots in use, so cap == n and any push goes through reserve(), which
        refuses; reset() and __enter__ refuse too."""
        if self.frozen:
            return 0
        if self.sweeping:
            raise TapeError(_SWEEPING % "freeze")
        self.shrink_to(self.n)
        self.frozen = True
        return 0

    cdef void shrink_to(self, Py_ssize_t slots) noexcept:
        """Give back the capacity above `slots` (>= n).  A realloc that fails
        leaves that array at its old, larger size: still valid for cap slots."""
        if slots < self.n:
            slots = self.n
        if slots >= self.cap or self.sweeping:
            return
        cdef void *q
        q = PyMem_Realloc(self.op, <size_t>slots * sizeof(uint8_t))
        if q != NULL:
            self.op = <uint8_t *>q
        q = PyMem_Realloc(self.arg_a, <size_t>slots * sizeof(int32_t))
        if q != NULL:
            self.arg_a = <int32_t *>q
        q = PyMem_Realloc(self.arg_b, <size_t>slots * sizeof(int32_t))
        if q != NULL:
            self.arg_b = <int32_t *>q
        q = PyMem_Realloc(self.val, <size_t>slots * sizeof(double))
        if q != NULL:
            self.val = <double *>q
        q = PyMem_Realloc(self.da, <size_t>slots * sizeof(double))
        if q != NULL:
            self.da = <double *>q
        q = PyMem_Realloc(self.db, <size_t>slots * sizeof(double))
        if q != NULL:
            self.db = <double *>q
        self.cap = slots

    cdef inline Py_ssize_t push(self, uint8_t op, int32_t a, int32_t b,
                                double v, double pa, double pb) except -1:
        cdef Py_ssize_t i = self.n
        if i == self.cap:
            self.reserve(1)
        self.op[i] = op
        self.arg_a[i] = a
        self.arg_b[i] = b
        self.val[i] = v
        self.da[i] = pa
        self.db[i] = pb
        self.n = i + 1
        return i

    cdef int check_var(self, Var v) except -1:
        if v.tape is not self:
            raise TapeError(
                "this Var belongs to another tape; Vars of two different tapes "
                "cannot be combined (create both on one tape)")
        if v.gen != self.generation:
            raise TapeError(
                "this Var was recorded before its tape was reset; it cannot be used "
                "any more (record it again after reset())")
        return 0

    cdef double *acquire_adjoints(self, Py_ssize_t size) except NULL:
        """The tape's adjoint buffer, or a fresh one if another sweep holds it."""
        cdef double *buf
        if not self.adj_busy:
            if size > self.adj_cap:
                _grow(<void **>&self.adj, size, sizeof(double))
                self.adj_cap = size
            self.adj_busy = True
            return self.adj
        buf = <double *>PyMem_Malloc(<size_t>max(size, 1) * sizeof(double))
        if buf == NULL:
            raise MemoryError("fastad: no memory for an adjoint buffer")
        return buf

    cdef void release_adjoints(self, double *buf) noexcept:
        if buf == self.adj:
            self.adj_busy = False
        else:
            PyMem_Free(buf)

    cdef int reverse(self, double *adj, Py_ssize_t adj_len, Py_ssize_t hi,
                     Py_ssize_t lo) except -1:
        """Propagate adjoints from slot hi down to slot lo (inclusive); adj holds
        adj_len doubles (every slot up to the end of the record containing hi).

        The scalar stretches run in C (without the GIL when long); an array record
        in between hands its block's adjoint to its NumPy kernel.  The whole sweep
        holds self.sweeping: records' kernels run Python, where another thread (or
        the kernel itself) could otherwise reset the tape or grow it under us.
        """
        cdef Py_ssize_t k, base, end
        cdef object adjview = None
        self.sweeping += 1
        try:
            records = self.records
            k = len(records) - 1
            while hi >= lo:
                # the highest record that starts at or below hi
                while k >= 0 and (<object>records[k]).base > hi:
                    k -= 1
                if k >= 0:
                    rec = records[k]
                    base = rec.base
                    end = base + rec.size
                else:
                    base = end = 0
                if end <= lo or k < 0:
                    self._sweep_range(adj, hi, lo)
                    return 0
                if hi >= end:
                    self._sweep_range(adj, hi, end)
                if adjview is None:
                    adjview = np.asarray(<double[:adj_len]>adj)
                rec.backward(adjview)
                hi = base - 1
                k -= 1
            return 0
        finally:
            self.sweeping -= 1

    cdef void _sweep_range(self, double *adj, Py_ssize_t hi, Py_ssize_t lo) noexcept:
        # reverse() holds self.sweeping, so the arrays stay put without the GIL
        if hi - lo < NOGIL_THRESHOLD:
            sweep_scalar(self.arg_a, self.arg_b, self.da, self.db, adj, hi, lo)
            return
        with nogil:
            sweep_scalar(self.arg_a, self.arg_b, self.da, self.db, adj, hi, lo)

    # -- the Python API ------------------------------------------------------------

    def __enter__(self):
        if self.frozen:
            raise TapeError(_FROZEN)
        _tape_stack().append(self)
        return self

    def __exit__(self, *exc):
        stack = _tape_stack()
        if stack and stack[len(stack) - 1] is self:
            stack.pop()
        elif self in stack:
            stack.remove(self)
        return False

    def variable(self, value):
        """A new leaf Var holding ``value``: a number (a scalar Var) or an array of
        numbers (an array Var of its shape).

        Integers and booleans are converted to float64; a complex number, a
        string, ``None`` or another object raises ``TypeError``.  A gradient with
        respect to this leaf comes back in ``value``'s floating dtype.
        """
        cdef double x
        t = type(value)
        if t is float:
            x = value
            return new_var(self, self.push(FAD_VAR, 0, 0, x, 0.0, 0.0), x)
        if t is int or t is bool:
            x = int_to_double(value, "tape.variable: value")
            return new_var(self, self.push(FAD_VAR, 0, 0, x, 0.0, 0.0), x)
        arr = as_float_array(value, "tape.variable: value")
        if arr.ndim == 0:
            x = arr[()]
            v = new_var(self, self.push(FAD_VAR, 0, 0, x, 0.0, 0.0), x)
        else:
            v = leaf_block(self, arr, FAD_VAR)
        _remember_dtype(self, v, value)
        return v

    def reset(self):
        """Forget every recorded operation, keep the memory; old Vars become invalid.

        Raises TapeError on the tape of a traced function, and while a gradient
        sweep is reading the tape (another thread's tape.gradient).
        """
        if self.frozen:
            raise TapeError(_FROZEN)
        if self.sweeping:
            raise TapeError(_SWEEPING % "reset")
        self.generation += 1
        self.n = 1
        self.records = []
        self.guards = []
        self.spans = None
        if self.dtypes:
            self.dtypes = {}

    def _recycle(self):
        """reset() for a scratch tape going back to its pool: also gives back the
        memory of a past peak when this call used far less (SCRATCH_KEEP_SLOTS)."""
        cdef Py_ssize_t used = self.n
        cdef bint freed = False
        self.reset()
        if self.cap > SCRATCH_KEEP_SLOTS and used * 8 < self.cap:
            self.shrink_to(max(4 * used, 4096))
            freed = True
        if self.adj_cap > SCRATCH_KEEP_SLOTS and used * 8 < self.adj_cap \
                and not self.adj_busy:
            PyMem_Free(self.adj)      # acquire_adjoints grows it again on demand
            self.adj = NULL
            self.adj_cap = 0
            freed = True
        if freed:
            _trim_heap()

    def __len__(self):
        """Number of recorded operations (the sentinel slot is not counted)."""
        return self.n - 1

    @property
    def nbytes(self):
        """Bytes of memory held by the tape's arrays (their capacity, which grows by
        doubling), the adjoint buffer included."""
        return self.cap * SLOT_BYTES + self.adj_cap * sizeof(double)

    def gradient(self, target, sources, create_graph=False):
        """The gradient of the scalar Var ``target`` with respect to ``sources``.

        One reverse sweep over the tape, in C (without the GIL for long tapes).
        With ``create_graph=True`` the sweep is itself recorded on this tape
        (PyTorch's convention): the gradient comes back as Vars of this tape,
        which can be differentiated again, to any order.

        Parameters
        ----------
        target : Var
            A scalar Var recorded on this tape.
        sources : Var or pytree of Vars
            A Var, or any nested list, tuple or dict of Vars of this tape.

        Returns
        -------
        float, ndarray or pytree
            The structure of ``sources``: a float for each scalar source and an
            ndarray of the source's shape for each array source.  Sources the
            target does not depend on get zeros, never ``None``.

        Raises
        ------
        TypeError
            ``target`` or a source is not a Var.
        ValueError
            ``target`` is not a scalar.
        fastad.TapeError
            A Var is of another tape, or of this tape before a ``reset()``.
        """
        if type(target) is not Var:
            raise TypeError("tape.gradient: target must be a Var, got %s"
                            % type(target).__name__)
        if create_graph is not False:
            if create_graph is not True:
                raise TypeError("tape.gradient: create_graph must be True or False, "
                                "got %r" % (create_graph,))
            return graph_gradient(self, <Var>target, sources, "tape.gradient")
        # Held from before the Vars are checked until the adjoints are read: a
        # reset() in between (another thread) would make the checks stale.
        self.sweeping += 1
        try:
            return self._gradient(<Var>target, sources)
        finally:
            self.sweeping -= 1

    cdef object _gradient(self, Var tv, sources):
        self.check_var(tv)
        if tv.shape_ is not None:
            raise ValueError("tape.gradient: target must be a scalar Var, got shape %s "
                             "(reduce it first, e.g. fd.sum(y))" % (tv.shape_,))
        if type(sources) is Var:
            # one Var, what fd.grad passes: no pytree walk (a few hundred ns a call)
            leaves, treedef = [sources], None
        else:
            leaves, treedef = tree_flatten(sources)
        cdef Var s
        cdef Py_ssize_t lo = tv.slot, size
        for leaf in leaves:
            if type(leaf) is not Var:
                raise TypeError("tape.gradient: sources must be Vars, got %s"
                                % type(leaf).__name__)
            s = <Var>leaf
            self.check_var(s)
            if s.slot < lo:
                lo = s.slot
        # Leaves have no arguments: sweeping the run of leaves at the bottom of the
        # range (an array source is one long run) only adds zeros into the sentinel,
        # serially, ~10 ns a slot.  Start above it.  (FAD_BLOCK slots are not
        # skipped: they belong to records.)
        while lo < tv.slot and self.op[lo] <= FAD_CONST:   # FAD_VAR, FAD_PARAM, FAD_CONST
            lo += 1
        # a target inside an array record's block (y = (A @ x)[0]): that record's
        # backward reads its whole block's adjoints, so cover them (zeroed)
        cdef Py_ssize_t top = tv.slot + 1
        if self.records:
            for rec in reversed(self.records):
                if rec.base <= tv.slot:
                    top = max(top, rec.base + rec.size)
                    break
        cdef double *adj = self.acquire_adjoints(top)
        results = []
        try:
            memset(adj, 0, top * sizeof(double))
            adj[tv.slot] = 1.0
            self.reverse(adj, top, tv.slot, lo)
            for leaf in leaves:
                results.append(_read_adjoint(adj, <Var>leaf, tv.slot))
        finally:
            self.release_adjoints(adj)
        if self.dtypes:
            results = [as_source_dtype(r, source_dtype(<Var>leaf))
                       for r, leaf in zip(results, leaves)]
        if treedef is None:
            return results[0]
        return tree_unflatten(treedef, results)

    def _slot_values(self):
        """A copy of every slot's value (for tests and tools)."""
        return np.array(<double[:self.n]>self.val)

    def _slot_arrays(self):
        """Copies of (op, a, b, val, da, db) over all slots (for tests and tools)."""
        n = self.n
        return (np.array(<uint8_t[:n]>self.op), np.array(<int32_t[:n]>self.arg_a),
                np.array(<int32_t[:n]>self.arg_b), np.array(<double[:n]>self.val),
                np.array(<double[:n]>self.da), np.array(<double[:n]>self.db))

    def wengert(self):
        """The recorded trace as a Wengert list, one line per operation.

        An array operation recorded as scalar slots (a small array's sum, softmax,
        ...) gets a line `# name: vFIRST..vLAST` above its slots, indented by how
        deeply it is nested in other such operations; an array record is one line.
        """
        lines = []
        cdef Py_ssize_t i
        cdef int op, kind
        rec_at = {r.base: r for r in self.records}
        opening = _span_openings(self)
        open_ends = []          # ends of the spans around slot i, innermost last
        i = 1
        while i < self.n:
            while open_ends and open_ends[len(open_ends) - 1] <= i:
                open_ends.pop()
            if opening:
                for end, name in opening.get(i, ()):
                    lines.append("#%s %s: v%d..v%d" % ("  " * len(open_ends), name, i,
                                                      end - 1))
                    open_ends.append(end)
            if i in rec_at:
                r = rec_at[i]
                lines.append("v%-5d = %s  [%d values, array op]" % (i, r.name, r.size))
                i += r.size
                continue
            op = self.op[i]
            kind = fad_op_kind[op] if op < FAD_NUM_SCALAR_OPS else FAD_KIND_LEAF
            name = fad_op_name[op].decode() if op < FAD_NUM_SCALAR_OPS else "?"
            if kind == FAD_KIND_LEAF:
                args = name
            elif kind == FAD_KIND_UNARY:
                args = "%s(v%d)" % (name, self.arg_a[i])
            elif kind == FAD_KIND_BINARY:
                args = "%s(v%d, v%d)" % (name, self.arg_a[i], self.arg_b[i])
            elif _is_c0(op):
                args = "%s(%r, v%d)" % (name, self.db[i], self.arg_a[i])
            else:
                args = "%s(v%d, %r)" % (name, self.arg_a[i], self.db[i])
            lines.append("v%-5d = %-32s -> %.17g" % (i, args, self.val[i]))
            i += 1
        return "\n".join(lines)

    def to_dot(self):
        """Graphviz DOT text of the recorded computational graph: one node per
        operation (labelled with its op and value), one edge per argument.
        Render it with ``dot -Tsvg``."""
        out = ["digraph fastad {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        cdef Py_ssize_t i
        cdef int op, kind
        for i in range(1, self.n):
            op = self.op[i]
            if op >= FAD_NUM_SCALAR_OPS:
                continue
            kind = fad_op_kind[op]
            name = fad_op_name[op].decode()
            if kind == FAD_KIND_CONST:
                const = self.db[i]
                label = ("%s(%.6g, .)" % (name, const)) if _is_c0(op) else (
                    "%s(., %.6g)" % (name, const))
            else:
                label = name
            out.append('  v%d [label="v%d = %s\\n%.6g"];' % (i, i, label, self.val[i]))
            if kind != FAD_KIND_LEAF:
                out.append("  v%d -> v%d;" % (self.arg_a[i], i))
            if kind == FAD_KIND_BINARY:
                out.append("  v%d -> v%d;" % (self.arg_b[i], i))
        for r in self.records:
            out.append('  r%d [label="%s [%d]", shape=ellipse];' % (r.base, r.name, r.size))
        out.append("}")
        return "\n".join(out)

    def __str__(self):
        return self.wengert()

    def __repr__(self):
        return "<fastad.Tape: %d operations, %d guards, %d bytes>" % (
            self.n - 1, len(self.guards), self.nbytes)


# ----------------------------------------------------------------------------------
# Spans: the names of array operations recorded as scalar slots.  A small array's
# sum or softmax is a run of adds, exps and divides on the tape; wengert() names
# the run.  One span costs three int64s on its tape (first slot, end, name code),
# appended once per array operation: nothing per slot, nothing for scalar ops.

_span_names = []        # code -> name
_span_codes = {}        # name -> code


cdef int mark_span(Tape t, Py_ssize_t start, str name) except -1:
    """Name the slots [start, t.n) that one array operation just recorded."""
    if t.n <= start:
        return 0
    code = _span_codes.get(name)
    if code is None:
        code = _span_codes[name] = len(_span_names)
        _span_names.append(name)
    if t.spans is None:
        t.spans = _pyarray("q")
    t.spans.extend((start, t.n, code))
    return 0


cdef inline Py_ssize_t _next_slot(Var v):
    return v.tape.n


def span_start(x):
    """A token for span_end: where the next slot of Var x's tape goes (None when x
    is not a Var, so nothing is recorded)."""
    if type(x) is Var:
        return ((<Var>x).tape, (<Var>x).tape.n)
    return None


def span_end(token, str name):
    """Name the slots recorded since span_start(token) after operation `name`."""
    if token is not None:
        mark_span(<Tape>token[0], token[1], name)


cdef dict _span_openings(Tape t):
    """{first slot: [(end, name), ...] outermost first} of t's spans."""
    out = {}
    sp = t.spans
    if sp is None:
        return out
    cdef Py_ssize_t k
    for k in range(0, len(sp), 3):
        out.setdefault(sp[k], []).append((sp[k + 1], _span_names[sp[k + 2]]))
    for v in out.values():
        v.sort(key=_minus_end)
    return out


def _minus_end(entry):
    return -entry[0]


cdef inline bint _is_c0(int op):
    # the C0 form of a binary op follows its C1 form in the enum
    return fad_op_kind[op] == FAD_KIND_CONST and fad_op_kind[op - 1] == FAD_KIND_CONST


cdef object _read_adjoint(double *adj, Var s, Py_ssize_t hi):
    """The gradient of one source: a float, or an array of its block's adjoints."""
    cdef Py_ssize_t size, k
    if s.shape_ is None:
        return adj[s.slot] if s.slot <= hi else 0.0
    size = s.aval.size
    out = np.zeros(size, dtype=np.float64)
    cdef double[::1] o = out
    for k in range(size):
        if s.slot + k <= hi:
            o[k] = adj[s.slot + k]
    return out.reshape(s.shape_)


# ----------------------------------------------------------------------------------
# The create-graph sweep (docs/design/nesting.md, 1.2): the reverse sweep recorded
# on the tape itself, so that its result can be differentiated again.
#
# A PV is a value of a recorded partial: a slot of the tape (s >= 0, c its value)
# or a constant (s == -1, value c).  pv_un / pv_bin fold constants through fad_eval
# and push slots otherwise, so each value rounds exactly like the op table's C
# partial it stands for.  The recordable partials themselves are generated from the
# table's rows (tools/gen_ops.py -> _partials.pxi).

ctypedef struct PV:
    int32_t s
    double c


cdef inline PV pv_c(double c) noexcept:
    cdef PV out
    out.s = -1
    out.c = c
    return out


cdef inline double pv_v(Tape t, PV x) noexcept:
    return x.c if x.s < 0 else t.val[x.s]


cdef PV pv_un(Tape t, int op, PV x) except *:
    cdef double dx, dy, r
    cdef PV out
    if x.s < 0:
        out.s = -1
        out.c = fad_eval(op, x.c, 0.0, &dx, &dy)
        return out
    r = fad_eval(op, t.val[x.s], 0.0, &dx, &dy)
    if _debug_nans:
        _check_nan(op, r, t.val[x.s], 0.0)
    out.s = <int32_t>t.push(op, x.s, 0, r, dx, 0.0)
    out.c = r
    return out


cdef PV pv_bin(Tape t, int op, PV x, PV y) except *:
    """op(x, y) for a binary row's code op: its C1 form when y is a constant, its C0
    form when x is, the binary op for two slots (as binary_op records)."""
    cdef double dx, dy, r, vx, vy
    cdef PV out
    if x.s < 0 and y.s < 0:
        out.s = -1
        out.c = fad_eval(op, x.c, y.c, &dx, &dy)
        return out
    if y.s < 0:
        vx = t.val[x.s]
        r = fad_eval(op + 1, vx, y.c, &dx, &dy)
        if _debug_nans:
            _check_nan(op, r, vx, y.c)
        out.s = <int32_t>t.push(op + 1, x.s, 0, r, dx, y.c)
    elif x.s < 0:
        vy = t.val[y.s]
        r = fad_eval(op + 2, vy, x.c, &dx, &dy)
        if _debug_nans:
            _check_nan(op, r, x.c, vy)
        out.s = <int32_t>t.push(op + 2, y.s, 0, r, dx, x.c)
    else:
        vx = t.val[x.s]
        vy = t.val[y.s]
        r = fad_eval(op, vx, vy, &dx, &dy)
        if _debug_nans:
            _check_nan(op, r, vx, vy)
        out.s = <int32_t>t.push(op, x.s, y.s, r, dx, dy)
    out.c = r
    return out


_CMP_KIND = ("<", "<=", "==", "!=", ">", ">=")
_CMP_MIRROR = (4, 5, 2, 3, 0, 1)


cdef int pv_cmp(Tape t, PV x, int code, PV y, str helper) except -1:
    """Whether `x <code> y` holds (1 or 0), for a branch of a recordable partial;
    a comparison involving a slot is recorded as a guard, so a replay (fd.trace)
    at a point on the other side of the branch records afresh."""
    cdef double vx = pv_v(t, x), vy = pv_v(t, y)
    cdef bint out = _compare_values(vx, vy, code)
    if x.s < 0 and y.s < 0:
        return out
    if x.s < 0:                      # guards compare a slot with a slot or constant
        x, y = y, x
        code = _CMP_MIRROR[code]
    where = _PARTIAL_WHERE.get(helper)
    if where is None:
        # one description per helper, not one formatted per element (a tanh record
        # of n elements records 2n guards)
        where = _PARTIAL_WHERE[helper] = (
            "<the recorded partial %s (create_graph)>" % helper, 0)
    t.guards.append((_CMP_KIND[code], x.s, y.s if y.s >= 0 else -1,
                     y.c if y.s < 0 else 0.0, out, where))
    return out


cdef dict _PARTIAL_WHERE = {}


ctypedef PV (*partial_fn)(Tape, PV, PV, PV) except *

include "_partials.pxi"


cdef inline PV pv_s(Tape t, int32_t s) noexcept:
    cdef PV out
    out.s = s
    out.c = t.val[s]
    return out


cdef int _accumulate(Tape t, int32_t *A, Py_ssize_t lo, int32_t s, PV p,
                     int32_t g) except -1:
    """A[s] += p * g, recorded (A holds slots, -1 for a structural zero)."""
    cdef PV contrib, gv
    if s < lo:
        return 0                     # below the mark: another level's slot
    if p.s < 0:
        if p.c == 0.0:
            return 0
        if p.c == 1.0:
            contrib.s = g
        elif p.c == -1.0:
            contrib = pv_un(t, FAD_NEG, pv_s(t, g))
        else:
            contrib = pv_bin(t, FAD_MUL, pv_s(t, g), p)
    else:
        contrib = pv_bin(t, FAD_MUL, p, pv_s(t, g))
    if A[s - lo] < 0:
        A[s - lo] = contrib.s
    else:
        A[s - lo] = pv_bin(t, FAD_ADD, pv_s(t, A[s - lo]), pv_s(t, contrib.s)).s
    return 0


cdef object _record_at(Tape t, Py_ssize_t slot):
    for rec in reversed(t.records):
        if rec.base <= slot:
            return rec
    raise TapeError("fastad: a block slot without its array record")


cdef Py_ssize_t _graph_record(Tape t, int32_t *A, Py_ssize_t lo, object rec,
                              str fname) except -1:
    """The create-graph sweep through one array record: elementwise records use
    the op table's recordable partials element by element; sum / mean / max / min
    and reshape / transpose are linear maps with index structure.  Other records
    are a TypeError naming them (their NumPy rules are not recordable yet).
    Returns the slot the sweep continues below (the record's base)."""
    # which rule applies is read off what the record is (an op-table row, a declared
    # primitive, the matmul of fastad._arrays), never its class name
    elementwise = getattr(rec, "op", -1) >= 0
    cdef Py_ssize_t base = rec.base, size = rec.size, k, m, e
    cdef double count
    cdef int32_t g, s0
    cdef int op, kind, nin
    cdef int mode[2]
    cdef Py_ssize_t first[2]
    cdef const long long[::1] i0 = None, i1 = None, dst
    cdef const double[::1] c0 = None, c1 = None, weights = None
    cdef partial_fn pf
    cdef PV pa, pb, pr
    mode[0] = mode[1] = 0
    first[0] = first[1] = -1
    if base <= lo:
        raise TypeError("%s: create_graph from inside the output of the array "
                        "operation %r is not supported yet" % (fname, rec.name))
    out_shape = tuple(rec.out_shape)
    if elementwise:
        op = rec.op
        kind = fad_op_kind[op]
        if kind not in (FAD_KIND_UNARY, FAD_KIND_BINARY):
            raise TypeError("%s: create_graph through the array operation %r is not "
                            "supported yet" % (fname, rec.name))
        nin = 2 if kind == FAD_KIND_BINARY else 1
        # per operand: its first slot (-1: a constant, read from cv), and where
        # element k of the output reads it: k itself, 0 (a scalar), or iv[k]
        for j in range(nin):
            slot_j = rec.slots[j]
            shp = tuple(rec.shapes[j])
            if slot_j < 0:
                cv = np.ascontiguousarray(np.broadcast_to(
                    np.asarray(rec.values[j], dtype=np.float64), out_shape)).ravel()
                if j == 0:
                    c0 = cv
                else:
                    c1 = cv
                mode[j] = 3
            elif shp == out_shape:
                mode[j] = 0
            elif _count_of(shp) == 1:
                mode[j] = 1
            else:
                iv = _broadcast_map(shp, out_shape)
                if j == 0:
                    i0 = iv
                else:
                    i1 = iv
                mode[j] = 2
            first[j] = slot_j
        for k in range(size - 1, -1, -1):
            g = A[base + k - lo]
            if g < 0:
                continue
            pr = pv_s(t, <int32_t>(base + k))
            pa = _elem(t, mode[0], first[0], k, i0, c0)
            pb = _elem(t, mode[1], first[1], k, i1, c1) if nin == 2 else pv_c(0.0)
            if pa.s >= 0:
                pf = _PD_A[op]
                _accumulate(t, A, lo, pa.s, pf(t, pa, pb, pr), g)
            if nin == 2 and pb.s >= 0:
                pf = _PD_B[op]
                _accumulate(t, A, lo, pb.s, pf(t, pa, pb, pr), g)
        return base
    prim = getattr(rec, "prim", None)      # a record driven by its primitive's rules
    if prim is not None and prim.kind in ("linear", "piecewise_linear") and \
            len(rec.slots) == 1 and prim.sparsity in ("by_index", "reduce"):
        s0 = rec.slots[0]
        in_shape = tuple(rec.shapes[0])
        m = _count_of(in_shape)
        if s0 < 0:
            return base
        if prim.sparsity == "by_index":
            # a layout (reshape, transpose): output element k is input element
            # src[k], read off the primitive's own forward run on element numbers
            src = np.asarray(prim.forward([np.arange(m, dtype=np.int64).reshape(in_shape)],
                                          rec.p)[0])
            dst = np.ascontiguousarray(src, dtype=np.int64).ravel()
            for k in range(size - 1, -1, -1):
                g = A[base + k - lo]
                if g >= 0:
                    _accumulate(t, A, lo, <int32_t>(s0 + dst[k]), pv_c(1.0), g)
            return base
        # a reduction (sum, mean, max, min) over p["axes"]: input element e feeds
        # output element dst[e] with the weight the primitive's own VJP gives it
        # (1 for sum, the argmax mask for max and min); mean divides by the count,
        # as its first-order rule does, so both give the same bits
        axes = tuple(rec.p["axes"])
        by_count = prim.name == "mean"
        # a linear reduction's map does not depend on the values: cached per shape
        # (NumPy index arithmetic and a VJP call cost ~10 us a record, the sweep of
        # a 16-element sum ~0.2 us)
        linear = prim.kind == "linear"
        key = (prim.name, in_shape, axes, out_shape)
        cached = _REDUCE_MAPS.get(key) if linear else None
        if cached is None:
            cached = _reduce_map(prim, rec, in_shape, axes, out_shape, by_count)
            if linear:
                _remember(_REDUCE_MAPS, key, cached)
        dst = cached[0]
        w = cached[1]
        if w is not None:
            weights = w
        count = float(m // size) if size else 1.0
        for e in range(m):
            g = A[base + dst[e] - lo]
            if g < 0:
                continue
            if by_count:
                _add_adjoint(t, A, lo, <int32_t>(s0 + e), pv_bin(
                    t, FAD_DIV, pv_s(t, g), pv_c(count)).s)
            elif weights is None or weights[e] == 1.0:
                _accumulate(t, A, lo, <int32_t>(s0 + e), pv_c(1.0), g)
            elif weights[e] != 0.0:
                _accumulate(t, A, lo, <int32_t>(s0 + e), pv_c(weights[e]), g)
        return base
    if rec.name == "matmul" and len(rec.shapes[0]) <= 2 and len(rec.shapes[1]) <= 2:
        return _graph_matmul(t, A, lo, rec)
    raise TypeError(
        "%s: create_graph (and fd.grad of fd.grad) through the array operation %r is "
        "not supported yet; scalar code, elementwise array operations, sums, means, "
        "reshapes, transposes and 1-D/2-D matmul nest to any order" % (fname, rec.name))


# Index maps of the create-graph sweep through records, which depend only on shapes
# (and, for a linear reduction, its axes): built once per shape with NumPy, then
# looked up.  Bounded: a program with ever new shapes rebuilds, never grows them.
cdef dict _BROADCAST_MAPS = {}
cdef dict _REDUCE_MAPS = {}
cdef Py_ssize_t _MAPS_KEEP = 256


cdef _remember(dict cache, key, value):
    if len(cache) >= _MAPS_KEEP:
        cache.clear()
    cache[key] = value


cdef object _broadcast_map(tuple shp, tuple out_shape):
    """Which element of an operand of shape shp output element k reads (C order)."""
    key = (shp, out_shape)
    iv = _BROADCAST_MAPS.get(key)
    if iv is None:
        iv = np.ascontiguousarray(np.broadcast_to(
            np.arange(_count_of(shp), dtype=np.int64).reshape(shp), out_shape)).ravel()
        iv.setflags(write=False)
        _remember(_BROADCAST_MAPS, key, iv)
    return iv


cdef tuple _reduce_map(object prim, object rec, tuple in_shape, tuple axes,
                       tuple out_shape, bint by_count):
    """(dst, weights) of a reduction record: input element e adds into output
    element dst[e] times weights[e] (None: every weight is 1)."""
    keep = [1 if a in axes else n for a, n in enumerate(in_shape)]
    size = _count_of(out_shape)
    dst = np.ascontiguousarray(np.broadcast_to(
        np.arange(size, dtype=np.int64).reshape(keep), in_shape)).ravel()
    dst.setflags(write=False)
    if by_count:
        return dst, None
    ones = np.ones((1,) + out_shape)
    w = prim.vjp(rec.values, rec.out, rec.res, ones, rec.p, 1)[0]
    weights = np.ascontiguousarray(np.broadcast_to(w, (1,) + in_shape),
                                   dtype=np.float64).ravel()
    if bool(np.all(weights == 1.0)):
        return dst, None
    weights.setflags(write=False)
    return dst, weights


cdef Py_ssize_t _graph_matmul(Tape t, int32_t *A, Py_ssize_t lo, object rec) except -1:
    """C = a @ b (1-D or 2-D operands): C[i, j] = sum_k a[i, k] b[k, j], bilinear, so
    d/da[i, k] = b[k, j] and d/db[k, j] = a[i, k], slots or constants."""
    sa_shape, sb_shape = tuple(rec.shapes[0]), tuple(rec.shapes[1])
    cdef Py_ssize_t p = sa_shape[0] if len(sa_shape) == 2 else 1
    cdef Py_ssize_t q = sa_shape[len(sa_shape) - 1]
    cdef Py_ssize_t r = sb_shape[1] if len(sb_shape) == 2 else 1
    cdef Py_ssize_t sa = rec.slots[0], sb = rec.slots[1], base = rec.base
    cdef Py_ssize_t i, j, k
    cdef int32_t g
    if p * q * r >= MATMUL_VECTOR_MIN and len(sa_shape) + len(sb_shape) >= 3:
        return _graph_matmul_vector(t, A, lo, rec, p, q, r)
    # a constant operand's values are its partials; a Var operand's are its slots
    cdef const double[::1] av = None, bv = None
    cdef PV pa, pb
    if sa < 0:
        av = np.ascontiguousarray(rec.values[0], dtype=np.float64).ravel()
    if sb < 0:
        bv = np.ascontiguousarray(rec.values[1], dtype=np.float64).ravel()
    for i in range(p - 1, -1, -1):
        for j in range(r - 1, -1, -1):
            g = A[base + i * r + j - lo]
            if g < 0:
                continue
            for k in range(q):
                pa = pv_s(t, <int32_t>(sa + i * q + k)) if sa >= 0 else pv_c(av[i * q + k])
                pb = pv_s(t, <int32_t>(sb + k * r + j)) if sb >= 0 else pv_c(bv[k * r + j])
                if sa >= 0:
                    _accumulate(t, A, lo, pa.s, pb, g)
                if sb >= 0:
                    _accumulate(t, A, lo, pb.s, pa, g)
    return base


# From this many multiply-adds a matmul record's create-graph rule is recorded as
# array operations (one matmul record per operand) rather than ~2 slots per
# multiply-add: a record costs ~5-10 us of Python to record and to sweep, a slot
# ~10 ns, so below this the slots are cheaper (the 8-16-1 MLP's 128 products:
# ~2.5 us of slots against ~20 us of records).
MATMUL_VECTOR_MIN = 4096


cdef Py_ssize_t _graph_matmul_vector(Tape t, int32_t *A, Py_ssize_t lo, object rec,
                                     Py_ssize_t p, Py_ssize_t q, Py_ssize_t r) except -1:
    """C = a @ b swept as array operations: with G the output block's adjoints (a
    block of COPY slots), a's adjoint gains G @ b^T and b's a^T @ G (outer
    products for a 1-D operand), each a matmul record whose own rules nest
    again.  Values equal the first-order VJP's to rounding (BLAS may order the
    sums differently for a transposed copy than for a transposed view)."""
    cdef Py_ssize_t sa = rec.slots[0], sb = rec.slots[1], base = rec.base
    sa_shape, sb_shape = tuple(rec.shapes[0]), tuple(rec.shapes[1])
    cdef Py_ssize_t na = _count_of(sa_shape), nb = _count_of(sb_shape), k
    out_shape = tuple(rec.out_shape)
    # the output block's adjoints as one array Var (CONST 0 where structurally zero)
    cdef Py_ssize_t size = rec.size
    cdef int32_t g
    t.reserve(size)
    cdef Py_ssize_t gbase = t.n
    for k in range(size):
        g = A[base + k - lo]
        if g >= 0:
            t.push(FAD_COPY, g, 0, t.val[g], 1.0, 0.0)
        else:
            t.push(FAD_CONST, 0, 0, 0.0, 0.0, 0.0)
    G = new_array_var(t, gbase, np.array(<double[:size]>(t.val + gbase)).reshape(out_shape))
    a = new_array_var(t, sa, rec.values[0]) if sa >= 0 else \
        np.asarray(rec.values[0], dtype=np.float64)
    b = new_array_var(t, sb, rec.values[1]) if sb >= 0 else \
        np.asarray(rec.values[1], dtype=np.float64)
    if sa >= 0 and sa + na > lo:
        if len(sb_shape) == 1:                       # (p, q) @ (q,): G[:, None] b[None]
            ga = _mm(_reshaped(G, (p, 1)), _reshaped(b, (1, q)))
        elif len(sa_shape) == 1:                     # (q,) @ (q, r): b @ G
            ga = _mm(b, G)
        else:
            ga = _mm(G, _transposed(b))
        _add_block(t, A, lo, sa, na, <Var>ga)
    if sb >= 0 and sb + nb > lo:
        if len(sa_shape) == 1:                       # (q,) @ (q, r): a[:, None] G[None]
            gb = _mm(_reshaped(a, (q, 1)), _reshaped(G, (1, r)))
        elif len(sb_shape) == 1:                     # (p, q) @ (q,): G @ a
            gb = _mm(G, a)
        else:
            gb = _mm(_transposed(a), G)
        _add_block(t, A, lo, sb, nb, <Var>gb)
    return base


# the registry's own operations (as Var's methods reach them: fastad/_registry.py
# imports nothing, so the core depends on no layer above it)
cdef object _mm(object x, object y):
    return _registry.METHODS["__matmul__"](x, y)


cdef object _reshaped(object x, tuple shape):
    return _registry.METHODS["reshape"](x, shape) if type(x) is Var else x.reshape(shape)


cdef object _transposed(object x):
    return _registry.METHODS["transpose"](x, None) if type(x) is Var else x.T


cdef int _add_block(Tape t, int32_t *A, Py_ssize_t lo, Py_ssize_t first, Py_ssize_t n,
                    Var contrib) except -1:
    """A[first + e] += element e of array Var contrib (a contiguous block)."""
    cdef Py_ssize_t e
    for e in range(n):
        _add_adjoint(t, A, lo, <int32_t>(first + e), <int32_t>(contrib.slot + e))
    return 0


cdef inline PV _elem(Tape t, int mode, Py_ssize_t first, Py_ssize_t k,
                     const long long[::1] iv, const double[::1] cv) noexcept:
    """Element k (of the output) of a record's operand, by _graph_record's mode."""
    if mode == 0:
        return pv_s(t, <int32_t>(first + k))
    if mode == 1:
        return pv_s(t, <int32_t>first)
    if mode == 2:
        return pv_s(t, <int32_t>(first + iv[k]))
    return pv_c(cv[k])


cdef Py_ssize_t _count_of(tuple shape):
    cdef Py_ssize_t n = 1
    for d in shape:
        n *= <Py_ssize_t>d
    return n


cdef int _add_adjoint(Tape t, int32_t *A, Py_ssize_t lo, int32_t s,
                      int32_t contrib) except -1:
    if s < lo:
        return 0
    if A[s - lo] < 0:
        A[s - lo] = contrib
    else:
        A[s - lo] = pv_bin(t, FAD_ADD, pv_s(t, A[s - lo]), pv_s(t, contrib)).s
    return 0


cdef object graph_gradient(Tape t, Var tv, sources, str fname):
    """tape.gradient(tv, sources, create_graph=True): the gradient as Vars of t.

    The sweep runs from the target down to just above the lowest source (the mark
    of a nested level); contributions to slots below it are dropped.  Adjoints are
    slots (A), accumulated in the first-order sweep's order, so their values equal
    tape.gradient's.
    """
    t.check_var(tv)
    if tv.shape_ is not None:
        raise ValueError("%s: target must be a scalar Var, got shape %s "
                         "(reduce it first, e.g. fd.sum(y))" % (fname, tv.shape_))
    if type(sources) is list and _all_vars(<list>sources):
        # what fastad._nest passes (one Var per argument): no pytree walk
        leaves, treedef = sources, None
    else:
        leaves, treedef = tree_flatten(sources)
    cdef Var s
    cdef Py_ssize_t lo = tv.slot, top = tv.slot, i, k, m
    for leaf in leaves:
        if type(leaf) is not Var:
            raise TypeError("%s: sources must be Vars, got %s"
                            % (fname, type(leaf).__name__))
        s = <Var>leaf
        t.check_var(s)
        if s.slot < lo:
            lo = s.slot
    cdef int32_t *A = <int32_t *>PyMem_Malloc((top - lo + 1) * sizeof(int32_t))
    if A == NULL:
        raise MemoryError("fastad: no memory for a create_graph sweep")
    cdef int32_t g, sa
    cdef int op, kind
    cdef partial_fn pf
    cdef PV pa, pb, pr
    results = []
    try:
        for i in range(top - lo + 1):
            A[i] = -1
        A[top - lo] = <int32_t>t.push(FAD_CONST, 0, 0, 1.0, 0.0, 0.0)
        i = top + 1
        while i > lo + 1:
            i -= 1
            g = A[i - lo]
            if g < 0:
                continue             # structurally zero (never skipped by value: a
                                     # zero adjoint can have a non-zero derivative)
            op = t.op[i]
            kind = fad_op_kind[op] if op < FAD_NUM_SCALAR_OPS else FAD_KIND_LEAF
            if kind == FAD_KIND_LEAF:
                if op == FAD_BLOCK:
                    # the whole record at once, then on below its block
                    i = _graph_record(t, A, lo, _record_at(t, i), fname)
                continue
            sa = t.arg_a[i]
            pr = pv_s(t, <int32_t>i)
            if kind == FAD_KIND_UNARY:
                pf = _PD_A[op]
                pa = pf(t, pv_s(t, sa), pv_c(0.0), pr)
                _accumulate(t, A, lo, sa, pa, g)
            elif kind == FAD_KIND_BINARY:
                pf = _PD_A[op]
                pa = pf(t, pv_s(t, sa), pv_s(t, t.arg_b[i]), pr)
                pf = _PD_B[op]
                pb = pf(t, pv_s(t, sa), pv_s(t, t.arg_b[i]), pr)
                _accumulate(t, A, lo, sa, pa, g)
                _accumulate(t, A, lo, t.arg_b[i], pb, g)
            else:                    # x op c (C1) or c op x (C0): c is in db
                pf = _PD_A[op]
                if _is_c0(op):
                    pa = pf(t, pv_c(t.db[i]), pv_s(t, sa), pr)
                else:
                    pa = pf(t, pv_s(t, sa), pv_c(t.db[i]), pr)
                _accumulate(t, A, lo, sa, pa, g)
        for leaf in leaves:
            s = <Var>leaf
            if s.shape_ is None:
                results.append(_graph_adjoint(t, A, lo, top, s.slot))
            else:
                results.append(_graph_adjoint_block(t, A, lo, top, s))
    finally:
        PyMem_Free(A)
    if treedef is None:
        return results
    return tree_unflatten(treedef, results)


cdef bint _all_vars(list xs):
    for x in xs:
        if type(x) is not Var:
            return False
    return True


cdef Var _graph_adjoint_block(Tape t, int32_t *A, Py_ssize_t lo, Py_ssize_t top,
                              Var s):
    """The adjoint of array source s as a new block: COPY of each element's
    adjoint slot, a CONST 0 where it is structurally zero (as copy_block)."""
    cdef Py_ssize_t m = s.aval.size, k, slot
    cdef int32_t a
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    for k in range(m):
        slot = s.slot + k
        a = A[slot - lo] if lo <= slot <= top else -1
        if a >= 0:
            t.push(FAD_COPY, a, 0, t.val[a], 1.0, 0.0)
        else:
            t.push(FAD_CONST, 0, 0, 0.0, 0.0, 0.0)
    value = np.array(<double[:m]>(t.val + base)) if m else np.zeros(0)
    return new_array_var(t, base, value.reshape(s.shape_))


cdef Var _graph_adjoint(Tape t, int32_t *A, Py_ssize_t lo, Py_ssize_t top,
                        Py_ssize_t slot):
    cdef int32_t a = A[slot - lo] if lo <= slot <= top else -1
    if a < 0:
        return new_var(t, t.push(FAD_CONST, 0, 0, 0.0, 0.0, 0.0), 0.0)
    return new_var(t, a, t.val[a])


def _graph_gradient(Tape t, Var target, sources, str fname):
    """graph_gradient for the functional API's nested levels (fastad._nest)."""
    return graph_gradient(t, target, sources, fname)


def fresh_copy(Var v):
    """A new slot (a block for an array) copying v: the mark of a nested level,
    whose gradient is taken with respect to it alone."""
    cdef Tape t = v.tape
    t.check_var(v)
    if v.shape_ is None:
        return record1(FAD_COPY, v)
    # a COPY of each element, pushed directly (copy_block's NumPy index arrays
    # cost more than the copies for the small arrays nested levels mostly see)
    cdef Py_ssize_t m = v.aval.size, k, src
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    for k in range(m):
        src = v.slot + k
        t.push(FAD_COPY, <int32_t>src, 0, t.val[src], 1.0, 0.0)
    value = np.array(<double[:m]>(t.val + base)) if m else np.zeros(0)
    return new_array_var(t, base, value.reshape(v.shape_))


# ----------------------------------------------------------------------------------
# Var

cdef Var new_var(Tape t, Py_ssize_t slot, double v):
    cdef Var r = Var.__new__(Var)
    r.tape = t
    r.slot = slot
    r.gen = t.generation
    r.v = v
    return r


cdef Var new_array_var(Tape t, Py_ssize_t base, object value):
    cdef Var r = Var.__new__(Var)
    r.tape = t
    r.slot = base
    r.gen = t.generation
    # C order, like the block of slots it names: an array record reads this at
    # recording and the slots (C order) at replay, and NumPy's reductions round
    # differently over a Fortran-ordered array (fd.grad vs tf.grad, 1 ulp)
    value = np.array(value, dtype=np.float64, order="C")
    value.setflags(write=False)
    r.aval = value
    r.shape_ = value.shape
    r.v = NAN
    return r


cdef double int_to_double(object y, str argname) except? -1.0:
    """A Python int (or bool) as a double; ValueError naming `argname` when it is
    beyond float64's range (Python's own float() would raise a bare OverflowError)."""
    cdef double d = _long_as_double(y)
    if d == -1.0 and _err_occurred() != NULL:
        _err_clear()
        raise ValueError("%s: the int %s is too large for float64 (at most about "
                         "1.8e308); pass a float, or scale it down"
                         % (argname, _int_summary(y)))
    return d


cdef str _int_summary(object y):
    """A short name for a huge int (str() of one is slow, and refused past 4300
    digits)."""
    digits = int(y.bit_length() * 0.30103) + 1
    return "%s1e%d (an int of about %d digits)" % ("-" if y < 0 else "", digits - 1,
                                                    digits)


cdef object as_float_array(object value, str argname):
    """`value` as a float64 ndarray; TypeError naming `argname` and what it got
    (with its dtype for an array), ValueError for an int beyond float64's range."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError("%s must be a number or an array of numbers, got %s"
                        % (argname, type(value).__name__))
    try:
        arr = np.asarray(value)
    except Exception:
        raise TypeError("%s must be a number or an array of numbers, got %s"
                        % (argname, type(value).__name__))
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if kind == "c":
        raise TypeError("%s must be real: complex input (%s) is not supported"
                        % (argname, type(value).__name__))
    if kind == "O" and not isinstance(value, np.ndarray):
        # NumPy keeps Python ints beyond int64 as objects: 2**64 is a fine float64
        # and 10**400 is a value error, not a type error
        out = _python_numbers(arr, argname)
        if out is not None:
            return out
    raise TypeError("%s must be a number or an array of numbers, got %s of dtype %s"
                    % (argname, type(value).__name__, arr.dtype))


cdef object _python_numbers(object arr, str argname):
    """An object array holding only Python ints, floats and bools as float64
    (ValueError for an int beyond float64's range); None if it holds anything else."""
    flat = arr.reshape(-1)
    out = np.empty(flat.shape[0], dtype=np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t k
    for k in range(flat.shape[0]):
        e = flat[k]
        t = type(e)
        if t is float:
            o[k] = e
        elif t is int or t is bool:
            o[k] = int_to_double(e, argname)
        else:
            return None
    return out.reshape(arr.shape)


def float_array(value, argname):
    """as_float_array for fastad's Python modules: `value` as a float64 ndarray, or
    TypeError / ValueError naming `argname`."""
    return as_float_array(value, argname)


# ----------------------------------------------------------------------------------
# The dtype derivatives come back in (API.md section 14): arithmetic is float64,
# but a gradient with respect to float32 data is float32 (float16, longdouble
# likewise); integer and bool data give float64.

cdef object _F64 = np.dtype(np.float64)


cpdef object grad_dtype(object value):
    """The floating dtype of `value` (an ndarray or NumPy scalar) when it is not
    float64, else None (float64 or Python float results)."""
    dt = getattr(value, "dtype", None)
    if type(dt) is not np.dtype and not isinstance(dt, np.dtype):
        return None
    if dt.kind != "f" or dt == _F64:
        return None
    return dt


cpdef object as_source_dtype(object g, object dt):
    """A derivative (float or float64 ndarray) in dtype `dt` (None: unchanged);
    a scalar becomes a NumPy scalar of that dtype."""
    if dt is None:
        return g
    if type(g) is float:
        return dt.type(g)
    arr = np.asarray(g)
    return dt.type(arr) if arr.ndim == 0 else arr.astype(dt)


cdef _remember_dtype(Tape t, Var v, object value):
    """Note the non-float64 floating dtype of a leaf's source data on its tape."""
    dt = grad_dtype(value)
    if dt is not None:
        t.dtypes[v.slot] = (dt, v.shape)


def source_dtype(Var v):
    """The dtype the gradient with respect to leaf `v` comes back in, or None."""
    entry = v.tape.dtypes.get(v.slot) if v.tape.dtypes else None
    if entry is None or entry[1] != v.shape or v.gen != v.tape.generation:
        return None
    return entry[0]


def leaf_variable(Tape t, value, str argname):
    """t.variable(value) for the functional API: a bad value is a TypeError (or a
    ValueError for an int beyond float64) naming `argname`."""
    tv = type(value)
    if tv is float:
        return t.variable(value)
    if tv is int or tv is bool:
        return t.variable(int_to_double(value, argname))
    arr = as_float_array(value, argname)
    v = t.variable(arr)
    _remember_dtype(t, v, value)
    return v


cdef Var leaf_block(Tape t, object arr, uint8_t op):
    """An array Var of fresh leaves (op FAD_VAR or FAD_PARAM) holding `arr`."""
    cdef const double[::1] flat = np.ascontiguousarray(arr, dtype=np.float64).ravel()
    cdef Py_ssize_t m = flat.shape[0], k
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    # block writes instead of m push() calls: a weight matrix of 8192 leaves took
    # ~20 us one push at a time
    memset(t.op + base, op, m * sizeof(uint8_t))
    memset(t.arg_a + base, 0, m * sizeof(int32_t))
    memset(t.arg_b + base, 0, m * sizeof(int32_t))
    memset(t.da + base, 0, m * sizeof(double))
    memset(t.db + base, 0, m * sizeof(double))
    if m:
        memcpy(t.val + base, &flat[0], m * sizeof(double))
    t.n = base + m
    return new_array_var(t, base, arr)


# The one message for a Var that would leave the tape as a plain number.
_FLOAT_ESCAPE = ("%s() of a fastad Var would drop its derivative; use fd.sin / np.sin "
                 "instead of math.sin, or v.value to read the number")


@cython.final
@cython.freelist(256)
@cython.no_gc
@cython.auto_pickle(False)   # its generated __setstate__ could set tape to None
cdef class Var:
    """A value recorded on a tape: a scalar or an array of any shape.

    Arithmetic, comparisons and the functions of fastad work on it as on a float or
    an ndarray; the tape records every operation so gradients can be taken.  Vars
    are created by :meth:`Tape.variable` and by the functional API (``fd.grad``
    and friends pass Vars to ``f``), never directly, and they are immutable.

    - Arithmetic ``+ - * / ** // %``, unary ``-``, ``+``, ``abs()``, and ``@`` for
      arrays, with numbers and NumPy arrays on either side (broadcasting as NumPy).
    - Comparisons compare values and return a ``bool`` (a boolean ndarray for
      arrays), so ``if`` and ``while`` work; ``int(v)``, ``bool(v)`` and indexing
      by a Var work too (derivative zero; guards under ``fd.trace``).
    - ``float(v)``, ``complex(v)`` and ``math.*`` functions raise ``TypeError``:
      the number would carry no derivative.  Read it with :attr:`value`.
    - Indexing (integers, slices, ``None``, integer arrays, boolean masks) and
      iteration give Vars; NumPy's functions dispatch to fastad.

    Examples
    --------
    >>> with fd.Tape() as tape:
    ...     w = tape.variable(np.array([1.0, 2.0, 3.0]))
    ...     y = (w[1:] * 2.0).sum()
    >>> w.shape, y, tape.gradient(y, w)
    ((3,), Var(10.0), array([0., 2., 2.]))
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("Var cannot be created directly; use tape.variable(x), or "
                        "fd.grad(f) which passes Vars to f")

    # Vars are immutable: a copy is the Var itself (as for floats)
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("a Var cannot be pickled: it lives on a tape; pickle .value")

    @property
    def value(self):
        """The value: a float for a scalar Var, a read-only ndarray for an array."""
        if self.shape_ is None:
            return self.v
        return self.aval

    @property
    def shape(self):
        """The shape, a tuple: ``()`` for a scalar Var."""
        return () if self.shape_ is None else self.shape_

    @property
    def ndim(self):
        """The number of dimensions: 0 for a scalar Var."""
        return 0 if self.shape_ is None else len(self.shape_)

    @property
    def size(self):
        """The number of elements: 1 for a scalar Var."""
        return 1 if self.shape_ is None else self.aval.size

    @property
    def T(self):
        """The transpose (axes reversed), recorded: ``fd.transpose(x)``."""
        return _registry.METHODS["T"](self)

    def __len__(self):
        if self.shape_ is None:
            raise TypeError("len() of a scalar Var")
        return self.shape_[0]

    def __iter__(self):
        if self.shape_ is None:
            raise TypeError("iteration over a scalar Var")
        return (self[i] for i in range(self.shape_[0]))

    def __reversed__(self):
        # reversed() no longer finds the sq_item slot (cleared below the class)
        if self.shape_ is None:
            raise TypeError("reversed() of a scalar Var")
        return (self[i] for i in range(self.shape_[0] - 1, -1, -1))

    def __getitem__(self, key):
        # fast path for x[i] on a 1-D array: the element's own slot, nothing recorded
        cdef Py_ssize_t i, n
        cdef tuple shape            # shape_ is a tuple for an array: C-level len, [0]
        if type(key) is int and self.shape_ is not None and self.gen == self.tape.generation:
            shape = <tuple>self.shape_
            if len(shape) != 1:
                return _registry.METHODS["__getitem__"](self, key)
            i = _long_as_ssize_t(key)
            if i == -1 and _err_occurred() != NULL:
                _err_clear()          # beyond Py_ssize_t: getitem's IndexError
                return _registry.METHODS["__getitem__"](self, key)
            n = <Py_ssize_t>shape[0]
            if 0 <= i < n:
                return new_var(self.tape, self.slot + i, self.tape.val[self.slot + i])
        return _registry.METHODS["__getitem__"](self, key)

    def __setitem__(self, key, value):
        raise TypeError("Vars are immutable: x[i] = v is not supported; build a new "
                        "array with fd.stack([...]), fd.where(mask, new, x) or "
                        "fd.concatenate([...])")

    def __delitem__(self, key):
        raise TypeError("Vars are immutable: del x[i] is not supported; build a new "
                        "array with fd.concatenate([...]) of the parts to keep")

    def __repr__(self):
        if self.shape_ is None:
            return "Var(%r)" % self.v
        return "Var(%s)" % np.array2string(self.aval, separator=", ", threshold=20)

    def __hash__(self):
        return id(self)

    # -- escapes into Python ------------------------------------------------------
    # float() would hand Python a number with no derivative: math.sin(x), float(x) * x,
    # np.float64(x) and a[0] = x into a float array all go through it and would give
    # a gradient with that part silently missing.  It raises instead (API.md 14), as
    # Dual.__float__ does; .value reads the number deliberately.  int(), bool(),
    # comparisons and indexing stay: their derivative is exactly zero, and under
    # fd.trace they are recorded as guards.

    def __float__(self):
        raise TypeError(_FLOAT_ESCAPE % "float")

    def __complex__(self):
        raise TypeError(_FLOAT_ESCAPE % "complex")

    def __int__(self):
        if self.shape_ is not None:
            raise TypeError("only scalar Vars can be converted to int")
        _guard(self, "int", None, self.v)
        return int(self.v)

    def __index__(self):
        # the range test comes first: casting NaN, inf or |v| >= 2**63 to long long
        # is undefined behaviour in C
        if self.shape_ is not None or not (-9.2e18 < self.v < 9.2e18) or \
                self.v != <double>(<long long>self.v):
            raise TypeError("only integer-valued scalar Vars can be used as an index")
        _guard(self, "index", None, self.v)
        return int(self.v)

    def __bool__(self):
        if self.shape_ is not None:
            if self.aval.size != 1:
                raise ValueError("the truth value of an array Var with more than one "
                                 "element is ambiguous; use fd.where or .value.any()")
            truth = bool(self.aval.reshape(-1)[0])
            _guard(self, "!=", 0.0, truth)       # the block's one slot
            return truth
        cdef bint out = self.v != 0.0
        _guard(self, "!=", 0.0, out)
        return out

    # -- arithmetic ------------------------------------------------------------------

    def __add__(self, other):
        return binary_op(FAD_ADD, self, other)

    def __radd__(self, other):
        return binary_op(FAD_ADD, other, self)

    def __sub__(self, other):
        return binary_op(FAD_SUB, self, other)

    def __rsub__(self, other):
        return binary_op(FAD_SUB, other, self)

    def __mul__(self, other):
        return binary_op(FAD_MUL, self, other)

    def __rmul__(self, other):
        return binary_op(FAD_MUL, other, self)

    def __truediv__(self, other):
        return binary_op(FAD_DIV, self, other)

    def __rtruediv__(self, other):
        return binary_op(FAD_DIV, other, self)

    def __floordiv__(self, other):
        return binary_op(FAD_FLOORDIV, self, other)

    def __rfloordiv__(self, other):
        return binary_op(FAD_FLOORDIV, other, self)

    def __mod__(self, other):
        return binary_op(FAD_MOD, self, other)

    def __rmod__(self, other):
        return binary_op(FAD_MOD, other, self)

    def __pow__(self, other, mod):
        if mod is not None:
            raise TypeError("pow() with a modulus is not supported for Vars")
        # x ** 2 is by far the most common power: record it as square (exact, cheaper)
        if (type(other) is int or type(other) is float) and other == 2:
            return unary_op(FAD_SQUARE, self)
        return binary_op(FAD_POW, self, other)

    def __rpow__(self, other, mod):
        if mod is not None:
            raise TypeError("pow() with a modulus is not supported for Vars")
        return binary_op(FAD_POW, other, self)

    # Operators and methods that are array primitives other than elementwise ones
    # call the implementation the registry holds for them (fastad._prims declares
    # it); the elementwise operators above record their op-table row directly.
    def __matmul__(self, other):
        return _registry.METHODS["__matmul__"](self, other)

    def __rmatmul__(self, other):
        return _registry.METHODS["__rmatmul__"](other, self)

    def __neg__(self):
        return unary_op(FAD_NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return unary_op(FAD_ABS, self)

    # -- comparisons: plain values out, a guard recorded -------------------------

    def __richcmp__(self, other, int opcode):
        return compare(self, other, opcode)

    # -- NumPy interoperation -----------------------------------------------------

    __array_priority__ = 1000

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _registry.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _registry.array_function(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        # (a Cython method has no frame of its own: frame 0 is the caller)
        raise TypeError(_detach_message(sys._getframe(0)))

    # -- methods mirroring ndarray -------------------------------------------------

    def sum(self, axis=None, keepdims=False):
        """``fd.sum(x, axis, keepdims)``, as ``ndarray.sum``."""
        return _registry.METHODS["sum"](self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """``fd.mean(x, axis, keepdims)``, as ``ndarray.mean``."""
        return _registry.METHODS["mean"](self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        """``fd.reshape(x, shape)``; the shape may be given as separate ints, as in
        ``ndarray.reshape``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _registry.METHODS["reshape"](self, shape)

    def transpose(self, *axes):
        """``fd.transpose(x, axes)``; the axes may be given as separate ints, as in
        ``ndarray.transpose``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _registry.METHODS["transpose"](self, axes or None)

    def dot(self, other):
        """``fd.dot(x, other)``, as ``ndarray.dot``."""
        return _registry.METHODS["dot"](self, other)

    # The ndarray methods NumPy users reach for: each is the NumPy function of the
    # same name, which dispatches to the registry entry (one route, NumPy's
    # signature and errors), so a method never has rules of its own.

    def max(self, axis=None, keepdims=False):
        """``np.max(x, axis, keepdims=keepdims)``, as ``ndarray.max``."""
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        """``np.min(x, axis, keepdims=keepdims)``, as ``ndarray.min``."""
        return np.min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        """``np.prod(x, axis, keepdims=keepdims)``, as ``ndarray.prod``."""
        return np.prod(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None):
        """``np.argmax(x, axis)``: integers (guards under ``fd.trace``)."""
        return np.argmax(self, axis=axis)

    def argmin(self, axis=None):
        """``np.argmin(x, axis)``: integers (guards under ``fd.trace``)."""
        return np.argmin(self, axis=axis)

    def var(self, axis=None, ddof=0, keepdims=False):
        """``np.var(x, axis, ddof=ddof, keepdims=keepdims)``, as ``ndarray.var``."""
        return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        """``np.std(x, axis, ddof=ddof, keepdims=keepdims)``, as ``ndarray.std``."""
        return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def cumsum(self, axis=None):
        """``np.cumsum(x, axis)``, as ``ndarray.cumsum``."""
        return np.cumsum(self, axis=axis)

    def ravel(self):
        """``np.ravel(x)``, as ``ndarray.ravel``."""
        return np.ravel(self)

    def flatten(self):
        """``np.ravel(x)`` (a Var is immutable: no copy to make), as
        ``ndarray.flatten``."""
        return np.ravel(self)

    def squeeze(self, axis=None):
        """``np.squeeze(x, axis)``, as ``ndarray.squeeze``."""
        return np.squeeze(self, axis=axis)

    def clip(self, min=None, max=None):
        """``np.clip(x, min, max)``, as ``ndarray.clip``."""
        return np.clip(self, min, max)

    def copy(self):
        """The Var itself: Vars are immutable, so a copy would be the same value on
        the same tape."""
        return self

    def round(self, decimals=0):
        """``np.round(x, decimals)``, as ``ndarray.round``: derivative zero."""
        return np.round(self, decimals)

    def __round__(self, ndigits=None):
        # round(v) is an int, as round(float) is (a guard under fd.trace, like
        # int(v)); round(v, n) stays a Var of derivative zero
        if ndigits is not None:
            return np.round(self, ndigits)
        if self.shape_ is not None:
            raise TypeError("round() of an array Var: use np.round(x) (a Var) or "
                            "x.round()")
        # int() of the rounded Var: its guard (under fd.trace) holds exactly while
        # the rounding gives the same integer
        return int(np.round(self))

    @property
    def dtype(self):
        """``numpy.float64``: every Var holds float64 values."""
        return np.dtype(np.float64)

    def astype(self, dtype, copy=True):
        """The Var itself for float64 (a Var is float64 already); another dtype
        would drop the derivative (ints) or change its precision, so it raises
        TypeError."""
        if np.dtype(dtype) != np.float64:
            raise TypeError("Var.astype(%s): Vars hold float64 values; another dtype "
                            "would detach the result from the tape (use .value for "
                            "the numbers alone)" % np.dtype(dtype))
        return self


def _var_new(*args, **kwargs):
    raise TypeError("Var cannot be created directly; use tape.variable(x), or "
                    "fd.grad(f) which passes Vars to f")


# Var.__new__(Var) from Python would make a Var with no tape (tape is None), and
# every operation on it would dereference None in C: a segfault.  The Python-visible
# __new__ is replaced by one that raises; fastad's own code (and sibling Cython
# modules) call the type's C slot tp_new directly, which is unaffected.
(<dict>(<object>(<_TypeWithDict *>Var).tp_dict))["__new__"] = staticmethod(_var_new)
_type_modified(<PyTypeObject *>Var)


cdef extern from "Python.h":
    # just the field of PyTypeObject that makes a type a "sequence" to the C API
    ctypedef struct _SequenceSlots "PySequenceMethods":
        void *sq_item
    ctypedef struct _TypeWithSequence "PyTypeObject":
        _SequenceSlots *tp_as_sequence

# Cython fills the sq_item slot for every __getitem__, which makes PySequence_Check
# true for Var.  NumPy's `a[0] = x` (a float array) calls float(x) and, when that
# raises for an object that passes PySequence_Check, replaces our TypeError with
# "ValueError: setting an array element with a sequence."  Indexing goes through
# mp_subscript and iteration through __iter__, so the slot is not needed: clear it
# and a[0] = x raises the TypeError of Var.__float__ that names the fix.
if (<_TypeWithSequence *>Var).tp_as_sequence is not NULL:
    (<_TypeWithSequence *>Var).tp_as_sequence.sq_item = NULL
    _type_modified(<PyTypeObject *>Var)


# ----------------------------------------------------------------------------------
# Guards

_COMPARE_NAMES = {0: "<", 1: "<=", 2: "==", 3: "!=", 4: ">", 5: ">="}


# SciPy's functions that fastad has in fd.linalg / fd.special / fd.stats: SciPy
# converts its arguments with numpy.asarray, so those calls end in Var.__array__;
# the error names the function to call instead
_SCIPY_HOMES = (("scipy.linalg", "fd.linalg"), ("scipy.special", "fd.special"),
                ("scipy.stats", "fd.stats"))


def _scipy_internal(module):
    """SciPy's own machinery (scipy._lib, scipy._external: argument conversion,
    array-API wrappers), not a function users call."""
    parts = module.split(".")
    return parts[0] == "scipy" and len(parts) > 1 and parts[1].startswith("_")


def _scipy_caller(frame):
    """(module, function name) of the SciPy function whose argument conversion
    reached Var.__array__, or None: NumPy's conversion frames and SciPy's own
    wrappers (scipy._lib, scipy._external: their closures hold the wrapped
    function) are skipped."""
    for _ in range(12):
        if frame is None:
            return None
        module = frame.f_globals.get("__name__", "")
        if _scipy_internal(module):
            for v in frame.f_locals.values():
                m = getattr(v, "__module__", None) or ""
                if callable(v) and m.startswith("scipy.") and not _scipy_internal(m):
                    return m, getattr(v, "__name__", "")
        elif module.startswith("scipy."):
            name = frame.f_code.co_name
            dist = getattr(frame.f_locals.get("self"), "name", None)
            # a scipy.stats distribution's method: norm.logpdf
            return module, ("%s.%s" % (dist, name) if type(dist) is str else name)
        elif not module.startswith(("numpy", "fastad")):
            # (fastad's own frames: Cython may give a method one of its own)
            return None
        frame = frame.f_back
    return None


def _detach_message(frame):
    caller = _scipy_caller(frame)
    if caller is not None:
        module, name = caller
        for home, ours in _SCIPY_HOMES:
            if module == home or module.startswith(home + "."):
                # fastad's module of SciPy's names, if imported (it is, by fastad)
                mod = sys.modules.get("fastad." + ours[3:])
                target = mod
                for part in name.split("."):
                    target = getattr(target, part, None)
                if target is not None:
                    fix = "call %s.%s instead (%s has SciPy's names and signatures)" % (
                        ours, name, ours)
                else:
                    fix = ("fastad has no %s.%s (%s has: %s)"
                           % (ours, name, ours, ", ".join(getattr(mod, "__all__", ()))))
                return ("%s.%s on a Var: SciPy converts its arguments to plain arrays, "
                        "which would silently detach them from the tape; %s"
                        % (home, name, fix))
    return ("a Var cannot be converted to a plain NumPy array: that would silently "
            "detach it from the tape. To build an array of Vars, as np.array([dx, dy]) "
            "or np.stack would, use fd.stack([dx, dy]) or fd.array([...]); elsewhere "
            "use fastad's functions (fd.sin, fd.sum, ...) or NumPy functions fastad "
            "supports; use .value for the numbers alone")


cdef _guard(Var x, str kind, object other, object outcome):
    """Record that Python looked at x's value (compared it, or took it out)."""
    # A stale Var's slot means something else after reset(): a guard on it would
    # corrupt the guards of whatever is recorded now, so it is an error like any use.
    x.tape.check_var(x)
    frame = sys._getframe(0)
    # skip fastad's own Python frames so the guard names the user's line
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastad"):
        frame = frame.f_back
    where = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("?", 0)
    if type(other) is Var:
        b_slot, const = (<Var>other).slot, 0.0
    else:
        b_slot, const = -1, (0.0 if other is None else float(other))
    x.tape.guards.append((kind, x.slot, b_slot, const, outcome, where))


cdef object compare(object x, object y, int opcode):
    cdef Var vx, vy
    cdef double a, b
    if type(x) is Var and (<Var>x).shape_ is None:
        vx = <Var>x
        vx.tape.check_var(vx)
        a = vx.v
        if type(y) is Var:
            vy = <Var>y
            vx.tape.check_var(vy)
            if vy.shape_ is not None:
                return _guard_elementwise(vx, vy, opcode,
                                          _compare_values(a, vy.aval, opcode))
            b = vy.v
        else:
            try:
                yv = _as_operand(y, "other")
            except TypeError:
                # x == None, x != "a": unequal, as for a float (Python's fallback to
                # identity); ordering comparisons with non-numbers stay TypeError
                if opcode == 2 or opcode == 3:
                    return NotImplemented
                raise
            if type(yv) is not float:
                return _guard_elementwise(vx, yv, opcode,
                                          _compare_values(a, yv, opcode))
            b = yv
        out = _compare_values(a, b, opcode)
        _guard(vx, _COMPARE_NAMES[opcode], y, out)
        return out
    # array Var: elementwise comparison of values.  The mask usually feeds
    # fd.where or indexing, so a replay (fd.trace) must know if any element flips:
    # the comparison is recorded as one guard with an outcome per element.
    (<Var>x).tape.check_var(<Var>x)
    xv = (<Var>x).aval
    yv = y.value if type(y) is Var else y
    return _guard_elementwise(<Var>x, y, opcode, _compare_values(xv, yv, opcode))


cdef object _caller_line():
    """(filename, lineno) of the innermost frame outside fastad."""
    frame = sys._getframe(0)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastad"):
        frame = frame.f_back
    return (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("?", 0)


cdef object _guard_elementwise(Var x, object y, int opcode, object out):
    """Record an elementwise comparison of x with y as one array guard.

    The guard tuple has the usual fields, each an array broadcast to the outcome's
    shape: x's slots, y's slots (-1 where y is a constant), y's constants, and the
    boolean outcomes.  Returns `out`.
    """
    shape = np.shape(out)
    sa = slot_index(x) if x.shape_ is not None else np.int64(x.slot)
    if type(y) is Var:
        x.tape.check_var(<Var>y)
        sb = slot_index(<Var>y) if (<Var>y).shape_ is not None else np.int64((<Var>y).slot)
        c = np.float64(0.0)
    else:
        sb = np.int64(-1)
        try:
            c = as_float_array(y, "other")
        except TypeError:
            return out      # x == None and the like: no number, nothing to guard
    x.tape.guards.append((
        _COMPARE_NAMES[opcode],
        np.array(np.broadcast_to(sa, shape), dtype=np.int64),
        np.array(np.broadcast_to(sb, shape), dtype=np.int64),
        np.array(np.broadcast_to(c, shape), dtype=np.float64),
        np.array(out, dtype=bool),
        _caller_line()))
    return out


def finite_guard(Var x):
    """Whether each element of x is finite (a bool ndarray of x's shape), recorded
    as the guards `x < inf` and `x > -inf` that those two comparisons would record,
    at a fraction of their cost (one frame walk, shared index arrays).  The
    softmax family's on-tape shift depends on it."""
    x.tape.check_var(x)
    v = x.aval if x.shape_ is not None else np.float64(x.v)
    below = np.asarray(v < np.inf)
    above = np.asarray(v > -np.inf)
    shape = below.shape
    slots = slot_index(x) if x.shape_ is not None else np.full(shape, x.slot, np.int64)
    none = np.full(shape, -1, dtype=np.int64)
    line = _caller_line()
    x.tape.guards.append(("<", slots, none, np.full(shape, np.inf), below, line))
    x.tape.guards.append((">", slots, none, np.full(shape, -np.inf), above, line))
    return below & above


cdef object _compare_values(a, b, int opcode):
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


# ----------------------------------------------------------------------------------
# Recording scalar ops

cdef inline int _check_nan(int op, double r, double x, double y) except -1:
    if isnan(r) and not isnan(x) and not isnan(y):
        raise FloatingPointError(
            "fd.debug_nans: %s produced NaN from non-NaN inputs (%r, %r)"
            % (fad_op_name[op].decode(), x, y))
    return 0


cdef Var record1(int op, Var x):
    """Record op(x) for a scalar Var x."""
    cdef Tape t = x.tape
    cdef double dx, dy, r
    if x.gen != t.generation:
        t.check_var(x)
    r = fad_eval(op, x.v, 0.0, &dx, &dy)
    if _debug_nans:
        _check_nan(op, r, x.v, 0.0)
    return new_var(t, t.push(op, <int32_t>x.slot, 0, r, dx, 0.0), r)


cdef Var record2(int op, Var x, Var y):
    """Record op(x, y) for scalar Vars x and y of one tape."""
    cdef Tape t = x.tape
    cdef double dx, dy, r
    if y.tape is not t or x.gen != t.generation or y.gen != t.generation:
        t.check_var(x)
        t.check_var(y)
    r = fad_eval(op, x.v, y.v, &dx, &dy)
    if _debug_nans:
        _check_nan(op, r, x.v, y.v)
    return new_var(t, t.push(op, <int32_t>x.slot, <int32_t>y.slot, r, dx, dy), r)


cdef Var record2c(int op, Var x, double c):
    """Record a constant-operand op (NAME_C1 or NAME_C0) of scalar Var x and c."""
    cdef Tape t = x.tape
    cdef double dx, dy, r
    if x.gen != t.generation:
        t.check_var(x)
    r = fad_eval(op, x.v, c, &dx, &dy)
    if _debug_nans:
        _check_nan(op, r, x.v, c)
    return new_var(t, t.push(op, <int32_t>x.slot, 0, r, dx, c), r)


cdef object _as_operand(object y, str argname):
    """A non-Var operand as a float or a float64 ndarray; TypeError otherwise."""
    t = type(y)
    if t is float:
        return y
    if t is int or t is bool:
        return int_to_double(y, argname)
    if isinstance(y, float):          # numpy.float64 and other float subclasses
        return float(y)
    arr = as_float_array(y, argname)
    if arr.ndim == 0:
        return float(arr)
    return arr


cdef object unary_op(int op, Var x):
    if op == FAD_LOG1P:
        src = _exp_argument(x)
        if src is not None:
            # log1p(exp(a)) is recorded as softplus(a): exp(a) overflows to inf for
            # a > 709, and then log1p's partial 1/(1 + inf) = 0 drops the gradient
            # (true value 1).  Recording the composite keeps the value and every
            # derivative (replay, tangents, second order) finite and exact.
            x = <Var>src
            op = FAD_SOFTPLUS
    if x.shape_ is None:
        return record1(op, x)
    return elementwise(op, x, None)


cdef object _exp_argument(Var x):
    """The Var `a` when x is exp(a) as recorded (a scalar slot, a block of scalar
    slots, or the block of an elementwise exp record), else None."""
    cdef Tape t = x.tape
    t.check_var(x)                   # a stale Var's slots mean something else now
    cdef Py_ssize_t s = x.slot, m = 1 if x.shape_ is None else x.aval.size, k, a0
    if m == 0:
        return None
    if t.op[s] == FAD_EXP:
        a0 = t.arg_a[s]
        for k in range(1, m):
            if t.op[s + k] != FAD_EXP or t.arg_a[s + k] != a0 + k:
                return None
    elif t.op[s] == FAD_BLOCK:
        # records are appended in slot order: the one holding s is the last with
        # base <= s (usually the very last record: log1p right after exp)
        for rec in reversed(t.records):
            if rec.base <= s:
                break
        else:
            return None
        # an elementwise record (the only kind with an op code) of exp
        if not (getattr(rec, "op", -1) == FAD_EXP
                and rec.slots[0] >= 0 and s + m <= rec.base + rec.size):
            return None
        a0 = rec.slots[0] + (s - rec.base)     # unary: input laid out as the output
    else:
        return None
    if x.shape_ is None:
        return new_var(t, a0, t.val[a0])
    return new_array_var(t, a0, np.array(<double[:m]>(t.val + a0)).reshape(x.shape_))


cdef object binary_op(int op, object x, object y):
    """op(x, y) where at least one of x, y is a Var (called by Var's operators)."""
    # fast paths: the scalar cases every Python loop hits
    if type(x) is Var and (<Var>x).shape_ is None:
        if type(y) is Var and (<Var>y).shape_ is None:
            return record2(op, <Var>x, <Var>y)
        if type(y) is float:
            return record2c(op + 1, <Var>x, <double>y)
        if type(y) is int:
            return record2c(op + 1, <Var>x, int_to_double(y, "the other operand"))
    elif type(y) is Var and (<Var>y).shape_ is None:
        if type(x) is float:
            return record2c(op + 2, <Var>y, <double>x)
        if type(x) is int:
            return record2c(op + 2, <Var>y, int_to_double(x, "the other operand"))
    return _apply2(op, x, y)


# ----------------------------------------------------------------------------------
# Dispatch of math functions over float / ndarray / Var / Dual

cdef object _plain1(int op, object x):
    cdef double dx, dy
    if type(x) is float or isinstance(x, float):
        return fad_eval(op, <double>x, 0.0, &dx, &dy)
    if type(x) is int or type(x) is bool:
        return fad_eval(op, int_to_double(x, "x"), 0.0, &dx, &dy)
    arr = as_float_array(x, "x")
    out = np.empty(arr.shape, dtype=np.float64)
    cdef const double[::1] src = np.ascontiguousarray(arr).ravel()  # const: inputs may be read-only
    cdef double[::1] dst = out.reshape(-1)
    cdef Py_ssize_t k
    for k in range(src.shape[0]):
        dst[k] = fad_eval(op, src[k], 0.0, &dx, &dy)
    if arr.ndim == 0:
        return float(out)
    return out


cdef object _plain2(int op, object x, object y):
    cdef double dx, dy
    xs = _as_operand(x, "x")
    ys = _as_operand(y, "y")
    if type(xs) is float and type(ys) is float:
        return fad_eval(op, <double>xs, <double>ys, &dx, &dy)
    bx, by = np.broadcast_arrays(np.asarray(xs, dtype=np.float64),
                                 np.asarray(ys, dtype=np.float64))
    out = np.empty(bx.shape, dtype=np.float64)
    cdef const double[::1] a = np.ascontiguousarray(bx).ravel()  # const: inputs may be read-only
    cdef const double[::1] b = np.ascontiguousarray(by).ravel()
    cdef double[::1] dst = out.reshape(-1)
    cdef Py_ssize_t k
    for k in range(a.shape[0]):
        dst[k] = fad_eval(op, a[k], b[k], &dx, &dy)
    return out


cdef inline bint _bound_elsewhere(object x):
    """x is of a class that binds primitives itself (a Dual: __fastad_level__, see
    fastad._registry) or an object array (of Duals, or of Vars and numbers mapped
    one by one): the registry routes it."""
    t = type(x)
    if t is float or t is int:
        return False
    if t is np.ndarray:
        return x.dtype.kind == "O"
    return _registry.level_of(t) != 0


def _apply1(int op, x):
    """Apply unary op `op` to a float, an array, a Var or a Dual."""
    if type(x) is Var:
        return unary_op(op, <Var>x)
    if _bound_elsewhere(x):
        return _registry.bind_elementwise(op, (x,))
    return _plain1(op, x)


def _apply2(int op, x, y):
    """Apply binary op `op` to floats, arrays, Vars or Duals (with broadcasting)."""
    tx, ty = type(x), type(y)
    if tx is Var or ty is Var:
        if (tx is Var and (<Var>x).shape_ is None and ty is Var
                and (<Var>y).shape_ is None):
            return record2(op, <Var>x, <Var>y)
        if tx is Var and (<Var>x).shape_ is None and ty is not Var:
            yv = _as_operand(y, "y")
            if type(yv) is float:
                return record2c(op + 1, <Var>x, <double>yv)
            return elementwise(op, x, yv)
        if ty is Var and (<Var>y).shape_ is None and tx is not Var:
            xv = _as_operand(x, "x")
            if type(xv) is float:
                return record2c(op + 2, <Var>y, <double>xv)
            return elementwise(op, xv, y)
        if tx is not Var:
            x = _as_operand(x, "x")
        if ty is not Var:
            y = _as_operand(y, "y")
        return elementwise(op, x, y)
    if _bound_elsewhere(x) or _bound_elsewhere(y):
        return _registry.bind_elementwise(op, (x, y))
    return _plain2(op, x, y)


# ----------------------------------------------------------------------------------
# Arrays as blocks of scalar slots

cdef object _record_form(dict table, object key):
    """The record form the array primitive `key` (an op code in BY_OP, a name in
    REGISTRY) was declared with, or None; it returns NotImplemented for arrays the
    core keeps as scalar slots.  The record classes sit above the core, which finds
    them through the registry."""
    prim = table.get(key)
    return None if prim is None else prim.record


cdef object slot_index(Var x):
    """The tape slot of every element of array Var x, as an int64 array of x's shape."""
    return np.arange(x.slot, x.slot + x.aval.size, dtype=np.int64).reshape(x.shape_)


cdef object elementwise(int op, object x, object y):
    """op applied elementwise with broadcasting; x, y are Vars or float/ndarray.

    Records one scalar op per output element from a C loop: the result is an array
    Var whose block holds those slots.  y is None for a unary op.  Large arrays go to
    the op's record form instead (one record with NumPy kernels, fastad._arrays).
    """
    form = _record_form(_registry.BY_OP, op)
    if form is not None:
        rec = form(op, x, y)
        if rec is not NotImplemented:
            return rec
    fast = _elementwise_block(op, x, y)
    if fast is not None:
        return fast
    return _elementwise_general(op, x, y)


cdef object _elementwise_general(int op, object x, object y):
    """elementwise()'s scalar slots for any operands: NumPy computes each output
    element's operand slots (or constants) by broadcasting, a C loop records."""
    cdef Tape t = None
    cdef Var vx, vy
    cdef bint x_var = type(x) is Var, y_var = type(y) is Var
    if x_var:
        vx = <Var>x
        t = vx.tape
        t.check_var(vx)
    if y_var:
        vy = <Var>y
        if t is None:
            t = vy.tape
        t.check_var(vy)
    # slot indices of Var operands, values of constant operands
    xi = (slot_index(vx) if vx.shape_ is not None else np.int64(vx.slot)) if x_var \
        else np.asarray(x, dtype=np.float64)
    if y is None:
        yi = np.float64(0.0)
    elif y_var:
        yi = slot_index(vy) if vy.shape_ is not None else np.int64(vy.slot)
    else:
        yi = np.asarray(y, dtype=np.float64)
    bx, by = np.broadcast_arrays(xi, yi)
    shape = bx.shape
    cdef Py_ssize_t m = bx.size, k
    cdef int code
    if y is None:
        code = op
    elif x_var and y_var:
        code = op
    elif x_var:
        code = op + 1
    else:
        code = op + 2
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    cdef double r, dx, dy, c
    cdef int32_t sa, sb
    cdef const long long[::1] ia, ib   # const: operands may be read-only views
    cdef const double[::1] ca
    kind = fad_op_kind[code]
    if kind == FAD_KIND_BINARY:
        ia = np.ascontiguousarray(bx, dtype=np.int64).ravel()
        ib = np.ascontiguousarray(by, dtype=np.int64).ravel()
        for k in range(m):
            sa = <int32_t>ia[k]
            sb = <int32_t>ib[k]
            r = fad_eval(code, t.val[sa], t.val[sb], &dx, &dy)
            t.push(code, sa, sb, r, dx, dy)
    else:
        # one Var operand (index array) and one constant operand (value array)
        if x_var:
            ia = np.ascontiguousarray(bx, dtype=np.int64).ravel()
            ca = np.ascontiguousarray(by, dtype=np.float64).ravel()
        else:
            ia = np.ascontiguousarray(by, dtype=np.int64).ravel()
            ca = np.ascontiguousarray(bx, dtype=np.float64).ravel()
        for k in range(m):
            sa = <int32_t>ia[k]
            c = ca[k]
            r = fad_eval(code, t.val[sa], c, &dx, &dy)
            t.push(code, sa, 0, r, dx, (c if kind == FAD_KIND_CONST else 0.0))
    value = np.array(<double[:m]>(t.val + base)) if m else np.zeros(0)
    if _debug_nans and m:
        _check_block_nan(code, t, base, m)
    return new_array_var(t, base, value.reshape(shape))


# How _elementwise_block reads its operands (_block_form): the array Var on the
# left (x) or on the right (y), the other operand none, a number, a Var (scalar or
# of the array's shape) or a float64 ndarray of the array's shape.
cdef enum:
    _NO_BLOCK = 0
    _LEFT_ALONE = 1
    _LEFT_NUMBER = 2
    _LEFT_VAR = 3
    _LEFT_ARRAY = 4
    _RIGHT_NUMBER = 5
    _RIGHT_VAR = 6
    _RIGHT_ARRAY = 7


cdef inline bint _same_shape_floats(object a, tuple shape):
    return (type(a) is np.ndarray and (<cnp.ndarray>a).dtype is _F64
            and a.shape == shape)


cdef int _block_form(object x, object y):
    """Which of _elementwise_block's shapes op(x, y) has, or _NO_BLOCK."""
    tx, ty = type(x), type(y)
    if tx is Var and (<Var>x).shape_ is not None:
        if y is None:
            return _LEFT_ALONE
        if ty is float or ty is int:
            return _LEFT_NUMBER
        if ty is Var and ((<Var>y).shape_ is None or (<Var>y).shape_ == (<Var>x).shape_):
            return _LEFT_VAR
        if _same_shape_floats(y, (<Var>x).shape_):
            return _LEFT_ARRAY
        return _NO_BLOCK
    if ty is Var and (<Var>y).shape_ is not None:
        if tx is float or tx is int:
            return _RIGHT_NUMBER
        if tx is Var and (<Var>x).shape_ is None:
            return _RIGHT_VAR
        if _same_shape_floats(x, (<Var>y).shape_):
            return _RIGHT_ARRAY
    return _NO_BLOCK


def fits_slot_block(x, y=None):
    """Whether op(x, y) takes the core's block loop below (the record forms keep
    such small operations as scalar slots: fastad._arrays.elementwise)."""
    return _block_form(x, y) != _NO_BLOCK


cdef object _elementwise_block(int op, object x, object y):
    """elementwise() without NumPy's index arithmetic for the shapes a loop over a
    small array meets (_block_form): an array Var with nothing, a number, a scalar
    Var, a Var of its own shape or a float64 array of its own shape, on either
    side.  None for anything else (broadcasting: the general path).  Its slots are
    those of the general path, one by one: the same values, bit for bit."""
    cdef int form = _block_form(x, y)
    if form == _NO_BLOCK:
        return None
    cdef bint arr_left = form <= _LEFT_ARRAY
    cdef Var arr = <Var>(x if arr_left else y)
    cdef object o = y if arr_left else x
    cdef Var other = None
    cdef double c = 0.0
    cdef const double *cs = NULL          # per-element constants (an ndarray)
    cdef int code = op
    if form == _LEFT_NUMBER or form == _LEFT_ARRAY:
        code = op + 1
    elif form == _RIGHT_NUMBER or form == _RIGHT_ARRAY:
        code = op + 2
    if form == _LEFT_NUMBER or form == _RIGHT_NUMBER:
        c = <double>o if type(o) is float else int_to_double(o, "the other operand")
    elif form == _LEFT_ARRAY or form == _RIGHT_ARRAY:
        o = np.ascontiguousarray(o)
        cs = <const double *>cnp.PyArray_DATA(<cnp.ndarray>o)
    elif form == _LEFT_VAR or form == _RIGHT_VAR:
        other = <Var>o
    cdef Tape t = arr.tape
    t.check_var(arr)
    if other is not None:
        t.check_var(other)
    cdef Py_ssize_t m = arr.aval.size, k, base
    cdef int32_t sa, sb
    cdef bint other_block = other is not None and other.shape_ is not None
    cdef double r, dx, dy
    kind = fad_op_kind[code]
    t.reserve(m)
    base = t.n
    for k in range(m):
        if other is None:
            if cs != NULL:
                c = cs[k]
            sa = <int32_t>(arr.slot + k)
            r = fad_eval(code, t.val[sa], c, &dx, &dy)
            t.push(code, sa, 0, r, dx, (c if kind == FAD_KIND_CONST else 0.0))
            continue
        sb = <int32_t>(other.slot + k if other_block else other.slot)
        sa = <int32_t>(arr.slot + k)
        if not arr_left:
            sa, sb = sb, sa
        r = fad_eval(code, t.val[sa], t.val[sb], &dx, &dy)
        t.push(code, sa, sb, r, dx, dy)
    if _debug_nans and m:
        _check_block_nan(code, t, base, m)
    value = np.empty(arr.shape_, dtype=np.float64)
    if m:
        memcpy(cnp.PyArray_DATA(<cnp.ndarray>value), t.val + base, m * sizeof(double))
    return _adopt_array_var(t, base, value, arr.shape_)


cdef Var _adopt_array_var(Tape t, Py_ssize_t base, object value, tuple shape):
    """new_array_var for a fresh C-ordered float64 array of `shape` that nothing
    else references: it is frozen and kept as it is (new_array_var copies)."""
    cdef Var r = Var.__new__(Var)
    r.tape = t
    r.slot = base
    r.gen = t.generation
    cnp.PyArray_CLEARFLAGS(<cnp.ndarray>value, cnp.NPY_ARRAY_WRITEABLE)
    r.aval = value
    r.shape_ = shape
    r.v = NAN
    return r


cdef int _check_block_nan(int op, Tape t, Py_ssize_t base, Py_ssize_t m) except -1:
    cdef Py_ssize_t k
    cdef int kind = fad_op_kind[op]
    cdef double x, y
    for k in range(base, base + m):
        x = t.val[t.arg_a[k]]
        y = t.val[t.arg_b[k]] if kind == FAD_KIND_BINARY else t.db[k]
        _check_nan(op, t.val[k], x, 0.0 if kind == FAD_KIND_UNARY else y)
    return 0


cdef Var gather(Var x, object flat_index):
    """A new array Var copying the elements of x at `flat_index` (its shape)."""
    return copy_block(x.tape, x.slot + np.asarray(flat_index, dtype=np.int64), 0.0)


def getitem(Var x, key):
    """x[key]: a scalar Var for one element, else an array Var (a copy).

    NumPy's indexing rules and errors (IndexError for an index out of range or
    too many indices), applied to the array of x's slot numbers.  An index too
    large for NumPy's integers is out of range too (IndexError, not OverflowError).
    """
    x.tape.check_var(x)
    cdef Py_ssize_t i, n
    if x.shape_ is None:
        # x[()] and x[...] are x, as for NumPy scalars; any other index is a
        # TypeError, as for a float
        if (type(key) is tuple and len(key) == 0) or key is Ellipsis:
            return x
        raise TypeError("a scalar Var cannot be indexed (x[%r])" % (key,))
    if type(key) is int and len(x.shape_) == 1:
        size = x.shape_[0]
        if not -size <= key < size:      # Python ints compared: no overflow
            raise IndexError("index %d is out of bounds for axis 0 with size %d"
                             % (key, size))
        n = size
        i = key
        if i < 0:
            i += n
        return new_var(x.tape, x.slot + i, x.aval[i])
    if type(key) is Var:
        key = _var_index(<Var>key)
    elif type(key) is tuple:
        key = tuple(_var_index(<Var>k) if type(k) is Var else k for k in key)
    numbers = np.arange(x.aval.size, dtype=np.int64)
    try:
        flat = numbers.reshape(x.shape_)[key]
    except OverflowError:
        raise IndexError("an index in %r is out of bounds for an array Var of shape %s"
                         % (key, x.shape_)) from None
    if flat.ndim == 0:
        i = int(flat)
        return new_var(x.tape, x.slot + i, x.aval.reshape(-1)[i])
    cdef Py_ssize_t start = x.tape.n
    if flat.size and flat.base is numbers and flat.flags.c_contiguous:
        # a C-contiguous view of the C-ordered element numbers themselves (a basic
        # slice such as x[1:], x[2:5], rows of a matrix; not an advanced index,
        # whose result may be a view of a temporary) is one run of consecutive
        # slots: copied by a C loop, with no index array
        out = _copy_run(x.tape, x.slot + <Py_ssize_t>flat.flat[0], flat.shape)
    else:
        out = gather(x, flat)
    mark_span(x.tape, start, "getitem")
    return out


cdef Var _copy_run(Tape t, Py_ssize_t first, tuple shape):
    """An array Var of `shape` copying the consecutive slots first, first + 1, ...
    (the slots copy_block would push for that run)."""
    cdef Py_ssize_t m = 1, k, base
    for d in shape:
        m *= <Py_ssize_t>d
    t.reserve(m)
    base = t.n
    for k in range(m):
        t.push(FAD_COPY, <int32_t>(first + k), 0, t.val[first + k], 1.0, 0.0)
    value = np.empty(shape, dtype=np.float64)
    memcpy(cnp.PyArray_DATA(<cnp.ndarray>value), t.val + base, m * sizeof(double))
    return _adopt_array_var(t, base, value, shape)


cdef object _var_index(Var k):
    """A Var used as an index: its integer value, recorded as a guard."""
    if k.shape_ is not None:
        raise TypeError("an array Var cannot be used as an index; index with a "
                        "scalar Var (recorded as a guard), or with integers")
    return k.__index__()


cdef Tape common_tape(tuple operands):
    """The tape of the Var operands (checked: live, one tape), or None."""
    cdef Tape t = None
    cdef Var v
    for x in operands:
        if type(x) is Var:
            v = <Var>x
            if t is None:
                t = v.tape
            t.check_var(v)
    return t


def stack(items, axis=0):
    """Join a sequence of scalars, Vars and arrays of one shape along a new
    ``axis``, like ``numpy.stack``: an array Var when any item is a Var, an
    ndarray otherwise.  The way to build an array from scalar Vars."""
    items = list(items)
    if not items:
        raise ValueError("stack: need at least one item")
    cdef Tape t = common_tape(tuple(items))
    if t is None:
        return np.stack([as_float_array(it, "items") for it in items], axis=axis)
    parts = [it if type(it) is Var else _as_operand(it, "items") for it in items]
    shapes = {(() if type(p) is not Var else (<Var>p).shape) if type(p) is not np.ndarray
              else p.shape for p in parts}
    if len(shapes) != 1:
        raise ValueError("stack: all items must have the same shape, got %s"
                         % sorted(shapes))
    # build, per output element, either a source slot (copy) or a constant
    cdef Py_ssize_t k, m
    srcs = []
    for p in parts:
        if type(p) is Var:
            if (<Var>p).shape_ is None:
                srcs.append(np.array((<Var>p).slot, dtype=np.int64))
            else:
                srcs.append(slot_index(<Var>p))
        else:
            srcs.append(-1 - np.zeros(np.shape(p), dtype=np.int64))
    # (<Var>p).shape, not np.shape(p): NumPy dispatches np.shape on a Var to
    # __array_function__, which may not be registered
    consts = [np.zeros((<Var>p).shape) if type(p) is Var else np.asarray(p, dtype=np.float64)
              for p in parts]
    slots = np.stack(srcs, axis=axis)
    cvals = np.stack(consts, axis=axis)
    cdef Py_ssize_t start = t.n
    out = copy_block(t, slots, cvals)
    mark_span(t, start, "stack")
    return out


cdef Var copy_block(Tape t, object slots, object consts):
    """An array Var of shape slots.shape: element k copies slot slots[k], or is the
    constant consts[k] where slots[k] < 0."""
    cdef long long[::1] s = np.ascontiguousarray(slots, dtype=np.int64).ravel()
    cdef const double[::1] c = np.ascontiguousarray(  # const: broadcast views are read-only
        np.broadcast_to(consts, np.shape(slots)), dtype=np.float64).ravel()
    cdef Py_ssize_t m = s.shape[0], k
    t.reserve(m)
    cdef Py_ssize_t base = t.n
    for k in range(m):
        if s[k] >= 0:
            t.push(FAD_COPY, <int32_t>s[k], 0, t.val[s[k]], 1.0, 0.0)
        else:
            t.push(FAD_CONST, 0, 0, c[k], 0.0, 0.0)
    value = np.array(<double[:m]>(t.val + base)) if m else np.zeros(0)
    return new_array_var(t, base, value.reshape(np.shape(slots)))


def where(cond, x, y):
    """Elementwise ``x`` where ``cond`` else ``y``, like ``numpy.where``.

    ``cond`` is a bool or a boolean array (for example ``x > 0``; under
    ``fd.trace`` such a comparison is a guard, element by element).  The gradient
    flows only into the selected operand, so the other one cannot bring a
    ``0 * inf`` NaN in.
    """
    if type(cond) is Var:
        # a mask taken from values: recorded as the guard `cond != 0` (per element)
        cond = compare(cond, 0.0, 3)
    c = np.asarray(cond)
    if type(x) is not Var and type(y) is not Var:
        out = np.where(c, as_float_array(x, "x"), as_float_array(y, "y"))
        return float(out) if out.ndim == 0 else out
    if c.ndim == 0 and np.ndim(x.value if type(x) is Var else x) == 0 and \
            np.ndim(y.value if type(y) is Var else y) == 0:
        picked = x if c else y
        return picked if type(picked) is Var else float(picked)
    cdef Tape t = (<Var>x).tape if type(x) is Var else (<Var>y).tape
    parts = []
    for p, name in ((x, "x"), (y, "y")):
        if type(p) is Var:
            t.check_var(<Var>p)
            if (<Var>p).shape_ is None:
                parts.append((np.array((<Var>p).slot, dtype=np.int64), np.zeros(())))
            else:
                parts.append((slot_index(<Var>p), np.zeros((<Var>p).shape_)))
        else:
            v = as_float_array(p, name)
            parts.append((np.full(v.shape, -1, dtype=np.int64), v))
    c, sx, sy, cx, cy = np.broadcast_arrays(c.astype(bool), parts[0][0], parts[1][0],
                                            parts[0][1], parts[1][1])
    cdef Py_ssize_t start = t.n
    out = copy_block(t, np.where(c, sx, sy), np.where(c, cx, cy))
    mark_span(t, start, "where")
    return out


def array(obj):
    """An array Var from (nested) lists of scalar Vars and numbers, like
    ``numpy.array``; an ndarray when there is no Var in it."""
    if type(obj) is Var:
        return obj
    if isinstance(obj, (list, tuple)):
        if any(isinstance(o, (list, tuple)) or (type(o) is Var and (<Var>o).shape_ is not None)
               for o in obj):
            return stack([array(o) for o in obj])
        return stack(obj)
    return as_float_array(obj, "obj")


# ----------------------------------------------------------------------------------
# Reductions and shape ops built from scalar slots

cdef object _chain_reduce(Tape t, int op, object slots2d, object shape):
    """Reduce each row of slots2d (int64, shape (m, k)) with binary op `op`."""
    cdef long long[:, ::1] s = np.ascontiguousarray(slots2d, dtype=np.int64)
    cdef Py_ssize_t m = s.shape[0], k = s.shape[1], i, j
    cdef double r, dx, dy
    cdef int32_t acc
    out_slots = np.empty(m, dtype=np.int64)
    cdef long long[::1] o = out_slots
    t.reserve(m * max(k, 1))
    for i in range(m):
        if k == 0:
            r = 0.0 if op == FAD_ADD else 1.0
            o[i] = t.push(FAD_CONST, 0, 0, r, 0.0, 0.0)
            continue
        acc = <int32_t>s[i, 0]
        for j in range(1, k):
            r = fad_eval(op, t.val[acc], t.val[s[i, j]], &dx, &dy)
            if _debug_nans:      # sum([inf, -inf]), prod([inf, 0]) make a NaN here
                _check_nan(op, r, t.val[acc], t.val[s[i, j]])
            acc = <int32_t>t.push(op, acc, <int32_t>s[i, j], r, dx, dy)
        o[i] = acc
    return out_slots


cpdef tuple normalize_axes(object axis, int ndim, str fname):
    """`axis` (None, an int or a tuple/list of ints) as a sorted tuple of distinct
    axes in range(ndim), as NumPy reads it; TypeError or ValueError naming fname.
    Every reduction (scalar slots and array records alike) checks with this."""
    if axis is None:
        return tuple(range(ndim))
    seq = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in seq:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError("%s: axis must be an int, a tuple of ints or None, got %r"
                            % (fname, axis))
        if not -ndim <= a < ndim:
            raise ValueError("%s: axis %d is out of bounds for an array of dimension "
                             "%d" % (fname, a, ndim))
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError("%s: repeated axis in %r" % (fname, axis))
    return tuple(sorted(out))


def _reduce(int op, Var x, axis, keepdims, str fname=None):
    cdef Tape t = x.tape
    t.check_var(x)
    if x.shape_ is None:
        return x
    if fname is None:
        fname = "sum" if op == FAD_ADD else "prod" if op == FAD_MUL else \
            fad_op_name[op].decode()
    form = _record_form(_registry.REGISTRY, "sum") if op == FAD_ADD else None
    if form is not None:
        # large sums: one record with NumPy's (pairwise) sum instead of k slots each
        out = form(x, axis, keepdims)
        if out is not NotImplemented:
            return out
    idx = slot_index(x)
    nd = idx.ndim
    axes = normalize_axes(axis, nd, fname)
    cdef Py_ssize_t start = t.n
    keep = [a for a in range(nd) if a not in axes]
    moved = np.transpose(idx, keep + list(axes))
    out_shape = tuple(idx.shape[a] for a in keep)
    rows = moved.reshape(int(np.prod(out_shape, dtype=np.int64)), -1) if moved.size \
        else np.zeros((int(np.prod(out_shape, dtype=np.int64)), 0), dtype=np.int64)
    out_slots = _chain_reduce(t, op, rows, out_shape)
    if keepdims:
        out_shape = tuple(1 if a in axes else idx.shape[a] for a in range(nd))
    if len(out_shape) == 0:
        s = int(out_slots[0])
        out = new_var(t, s, t.val[s])
    else:
        out = copy_block(t, out_slots.reshape(out_shape), 0.0)
    mark_span(t, start, fname)
    return out


def sum(x, axis=None, keepdims=False):
    """Sum of the elements over ``axis`` (default all), like ``numpy.sum``."""
    if type(x) is Var:
        return _reduce(FAD_ADD, <Var>x, axis, keepdims)
    if isinstance(x, (list, tuple)) and any(type(e) is Var for e in x):
        return sum(stack(x), axis=axis, keepdims=keepdims)
    out = np.sum(as_float_array(x, "x"), axis=axis, keepdims=keepdims)
    return float(out) if np.ndim(out) == 0 else out


def prod(x, axis=None, keepdims=False):
    """Product of the elements over ``axis`` (default all), like ``numpy.prod``."""
    if type(x) is Var:
        return _reduce(FAD_MUL, <Var>x, axis, keepdims)
    if isinstance(x, (list, tuple)) and any(type(e) is Var for e in x):
        return prod(stack(x), axis=axis, keepdims=keepdims)
    out = np.prod(as_float_array(x, "x"), axis=axis, keepdims=keepdims)
    return float(out) if np.ndim(out) == 0 else out


def mean(x, axis=None, keepdims=False):
    """Mean of the elements over ``axis`` (default all), like ``numpy.mean``."""
    if type(x) is Var or (isinstance(x, (list, tuple)) and any(type(e) is Var for e in x)):
        if type(x) is not Var:
            x = stack(x)
        if (<Var>x).shape_ is None:
            return x
        form = _record_form(_registry.REGISTRY, "mean")
        if form is not None:
            out = form(x, axis, keepdims)
            if out is not NotImplemented:
                return out
        shape = (<Var>x).shape_
        count = 1
        for a in normalize_axes(axis, len(shape), "mean"):
            count *= shape[a]
        start = _next_slot(<Var>x)
        out = _reduce(FAD_ADD, <Var>x, axis, keepdims) / float(count)
        mark_span((<Var>x).tape, start, "mean")
        return out
    out = np.mean(as_float_array(x, "x"), axis=axis, keepdims=keepdims)
    return float(out) if np.ndim(out) == 0 else out


def reshape(x, shape):
    """``x`` with a new ``shape``, like ``numpy.reshape`` (-1 allowed)."""
    if type(x) is Var:
        vx = <Var>x
        vx.tape.check_var(vx)
        form = _record_form(_registry.REGISTRY, "reshape")
        if form is not None:
            out = form(vx, shape)
            if out is not NotImplemented:
                return out
        idx = np.arange(vx.size, dtype=np.int64).reshape(vx.shape).reshape(shape)
        if vx.shape_ is None and idx.ndim == 0:
            return x
        if idx.ndim == 0:
            return vx[(0,) * vx.ndim]
        start = _next_slot(<Var>x)
        out = gather(<Var>x, idx)
        mark_span((<Var>x).tape, start, "reshape")
        return out
    return np.reshape(as_float_array(x, "x"), shape)


def transpose(x, axes=None):
    """Permute the axes (reverse them by default), like ``numpy.transpose``."""
    if type(x) is Var:
        vx = <Var>x
        if vx.shape_ is None:
            return x
        form = _record_form(_registry.REGISTRY, "transpose")
        if form is not None:
            vx.tape.check_var(vx)
            out = form(vx, axes)
            if out is not NotImplemented:
                return out
        idx = np.arange(vx.size, dtype=np.int64).reshape(vx.shape_).transpose(axes)
        start = _next_slot(<Var>x)
        out = gather(<Var>x, idx)
        mark_span((<Var>x).tape, start, "transpose")
        return out
    return np.transpose(as_float_array(x, "x"), axes)


def concatenate(arrays, axis=0):
    """Join arrays along an existing ``axis``, like ``numpy.concatenate``."""
    arrays = list(arrays)
    if not any(type(a) is Var for a in arrays):
        return np.concatenate([as_float_array(a, "arrays") for a in arrays], axis=axis)
    cdef Tape t = None
    slots, consts = [], []
    for a in arrays:
        if type(a) is Var:
            va = <Var>a
            if t is None:
                t = va.tape
            t.check_var(va)
            if va.shape_ is None:
                raise ValueError("concatenate: zero-dimensional Vars cannot be "
                                 "concatenated")
            slots.append(slot_index(va))
            consts.append(np.zeros(va.shape_))
        else:
            c = as_float_array(a, "arrays")
            slots.append(np.full(c.shape, -1, dtype=np.int64))
            consts.append(c)
    cdef Py_ssize_t start = t.n
    out = copy_block(t, np.concatenate(slots, axis=axis),
                     np.concatenate(consts, axis=axis))
    mark_span(t, start, "concatenate")
    return out


# ----------------------------------------------------------------------------------
# Helpers for tests of the internals (never part of the public API)

def _test_elementwise_general(int op, x, y=None):
    """elementwise() through its general slot path, never the block fast path nor
    a record (tests compare the two slot paths)."""
    return _elementwise_general(op, x, y)


def _test_op_table():
    """(code, name, kind) for every scalar op code, in enum order."""
    return [(i, fad_op_name[i].decode(), fad_op_kind[i]) for i in range(FAD_NUM_SCALAR_OPS)]


def _test_eval(int op, double x, double y):
    """fad_eval and fad_second at (x, y): (value, dx, dy, dxx, dxy, dyy)."""
    cdef double dx, dy, dxx, dxy, dyy
    r = fad_eval(op, x, y, &dx, &dy)
    fad_second(op, x, y, r, &dxx, &dxy, &dyy)
    return r, dx, dy, dxx, dxy, dyy


def _test_slot(Var v):
    return v.slot


def _test_set_generation(Tape t, uint64_t generation):
    """Set t's generation counter (to test behaviour after ~2**32 resets)."""
    t.generation = generation
