# Declarations of the tape and its node type, for Cython modules that cimport them
# (the replay and second-order sweeps).
from libc.stdint cimport uint8_t, int32_t, uint64_t

# (The op table's C declarations are in fastad/_core.pxd.)


cdef class Tape:
    # The recorded trace, a struct of arrays with one slot per operation.  Slot 0 is
    # a sentinel leaf: unused argument fields point at it, so the reverse sweep needs
    # no branch for unary ops (their `b` adjoint lands in adj[0], which nobody reads).
    cdef uint8_t *op          # op code (fastad_ops.h)
    cdef int32_t *arg_a       # first argument slot (0 when none)
    cdef int32_t *arg_b       # second argument slot (0 when none or constant)
    cdef double *val          # value of the slot
    cdef double *da           # d val / d val[arg_a]
    cdef double *db           # d val / d val[arg_b], or the constant of a _C0/_C1 op
    cdef Py_ssize_t n         # slots in use (>= 1: the sentinel)
    cdef Py_ssize_t cap       # slots allocated

    cdef double *adj          # adjoint buffer, reused between gradient calls
    cdef Py_ssize_t adj_cap   # doubles allocated in adj
    cdef bint adj_busy        # adj is in use by a sweep (another thread's)
    cdef int sweeping         # sweeps reading the tape now: no reset or realloc
    cdef bint frozen          # owned by a replay (fd.trace): never grown or reset

    # bumped by reset(); Vars compare theirs.  64 bits: a 32-bit counter wrapped
    # after 2**32 resets and let a stale Var through.
    cdef readonly uint64_t generation
    cdef public list records  # array ops: objects with base, size, backward()
    cdef public list guards   # comparisons and escapes of values into Python
    cdef public object spans  # None, or array('q') of (first, end, name code):
                              # array ops recorded as scalar slots (wengert)
    cdef public dict dtypes   # leaf slot -> (dtype, shape) of a non-float64 source
    cdef object __weakref__

    cdef int reserve(self, Py_ssize_t extra) except -1
    cdef int freeze(self) except -1
    cdef void shrink_to(self, Py_ssize_t slots) noexcept
    cdef Py_ssize_t push(self, uint8_t op, int32_t a, int32_t b,
                         double v, double pa, double pb) except -1
    cdef int check_var(self, Var v) except -1
    cdef object _gradient(self, Var tv, sources)
    cdef double *acquire_adjoints(self, Py_ssize_t size) except NULL
    cdef void release_adjoints(self, double *buf) noexcept
    cdef int reverse(self, double *adj, Py_ssize_t adj_len, Py_ssize_t hi,
                     Py_ssize_t lo) except -1
    cdef void _sweep_range(self, double *adj, Py_ssize_t hi, Py_ssize_t lo) noexcept


cdef class Var:
    cdef readonly Tape tape
    cdef Py_ssize_t slot      # scalar: its slot; array: the first slot of its block
    cdef uint64_t gen         # tape generation at creation
    cdef double v             # scalar value (cached: valid even after a reset)
    cdef object shape_        # None for a scalar, else the array's shape tuple
    cdef object aval          # array value (read-only ndarray), None for a scalar


cdef Var new_var(Tape t, Py_ssize_t slot, double v)
cdef bint debug_nans_on() noexcept
cdef Var new_array_var(Tape t, Py_ssize_t base, object value)
cdef void sweep_scalar(const int32_t *a, const int32_t *b, const double *da,
                       const double *db, double *adj,
                       Py_ssize_t hi, Py_ssize_t lo) noexcept nogil
cdef object as_float_array(object value, str argname)
cdef double int_to_double(object y, str argname) except? -1.0
cdef object slot_index(Var x)
cpdef tuple normalize_axes(object axis, int ndim, str fname)
cdef object elementwise(int op, object x, object y)
cdef Var copy_block(Tape t, object slots, object consts)
cdef Tape common_tape(tuple operands)
cdef Var leaf_block(Tape t, object arr, uint8_t op)
cdef Var record1(int op, Var x)
cdef Var record2(int op, Var x, Var y)
cdef Var record2c(int op, Var x, double c)
