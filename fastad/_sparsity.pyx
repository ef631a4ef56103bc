# Sparsity kernels: dependency bit sets over a tape's scalar slots, and which ops of
# the op table have nonzero second partials (for Hessian patterns).
#
# A pattern pass gives every slot a row of W 64-bit words: bit j says "this slot
# depends on input j (of the current chunk of 64*W inputs)".  The scalar slots are
# swept here in C by the op table's arity (fad_op_kind); array records
# (tape.records) fill their output rows between the scalar stretches, by their
# primitive's sparsity rule, in NumPy (fastad._sparse_plan).  Costs one pass over
# the tape per chunk of inputs: O(slots * inputs / 64) word operations.
from libc.stdint cimport uint8_t, int32_t, uint64_t
from libc.math cimport isnan

import numpy as np

from fastad._core cimport (fad_op_kind, fad_eval, fad_second, FAD_NUM_SCALAR_OPS,
                           FAD_KIND_LEAF, FAD_KIND_UNARY, FAD_KIND_CONST,
                           FAD_KIND_BINARY)

NUM_SCALAR_OPS = FAD_NUM_SCALAR_OPS


def propagate(const uint8_t[::1] op, const int32_t[::1] a, const int32_t[::1] b,
              uint64_t[:, ::1] bits, Py_ssize_t lo, Py_ssize_t hi):
    """bits[i] = bits[a[i]] (| bits[b[i]] for binary ops) for slots lo <= i < hi.

    Leaves (inputs, parameters, constants, array records' output slots) keep the
    rows they were given.  ValueError for an op code outside the op table (a
    pattern must never be silently short)."""
    cdef Py_ssize_t i, w, W = bits.shape[1]
    cdef int o, kind
    cdef int32_t ai, bi
    if lo < 0 or hi > op.shape[0] or hi > bits.shape[0] or op.shape[0] > a.shape[0] \
            or op.shape[0] > b.shape[0]:
        raise ValueError("propagate: slot range out of bounds")
    with nogil:
        for i in range(lo, hi):
            o = op[i]
            if o >= FAD_NUM_SCALAR_OPS:
                with gil:
                    raise ValueError("sparsity: unknown op code %d at slot %d" % (o, i))
            kind = fad_op_kind[o]
            if kind == FAD_KIND_LEAF:
                continue
            ai = a[i]
            if kind == FAD_KIND_BINARY:
                bi = b[i]
                for w in range(W):
                    bits[i, w] = bits[ai, w] | bits[bi, w]
            else:
                for w in range(W):
                    bits[i, w] = bits[ai, w]
    return None


def live_slots(const uint8_t[::1] op, const int32_t[::1] a, const int32_t[::1] b,
               uint8_t[::1] live, Py_ssize_t lo, Py_ssize_t hi):
    """Mark the arguments of live scalar slots live, from slot hi - 1 down to lo
    (the caller marks the outputs, and a live record's operands, beforehand)."""
    cdef Py_ssize_t i
    cdef int kind
    with nogil:
        i = hi - 1
        while i >= lo:
            if live[i] and op[i] < FAD_NUM_SCALAR_OPS:
                kind = fad_op_kind[op[i]]
                if kind != FAD_KIND_LEAF:
                    live[a[i]] = 1
                    if kind == FAD_KIND_BINARY:
                        live[b[i]] = 1
            i -= 1
    return None


def second_nonzero(op_info):
    """(FAD_NUM_SCALAR_OPS, 3) bool: which of d2/da2, d2/dadb, d2/db2 of each op
    code is nonzero somewhere, read from the op table itself (fad_second) at
    points spread over each row's test domain (OP_INFO).  A NaN counts as
    nonzero (conservative).  For the constant forms (NAME_C1, NAME_C0) the only
    argument is `a`, so only column 0 is used."""
    out = np.zeros((FAD_NUM_SCALAR_OPS, 3), dtype=bool)
    cdef double x, y, r, dx, dy, dxx, dxy, dyy
    cdef int code, c
    fracs = (0.137, 0.391, 0.618, 0.853)
    for row in op_info:
        code, arity, dom = row[0], row[2], row[3]
        alo, ahi = dom[0]
        blo, bhi = dom[1] if arity == 2 else dom[0]
        forms = [(code, 0)] if arity == 1 else [(code, 0), (code + 1, 1), (code + 2, 2)]
        for c, form in forms:
            for fa in fracs:
                for fb in fracs:
                    if form == 2:        # c op var: the variable is the 2nd argument
                        x = blo + fb * (bhi - blo)
                        y = alo + fa * (ahi - alo)
                    else:
                        x = alo + fa * (ahi - alo)
                        y = blo + fb * (bhi - blo)
                    r = fad_eval(c, x, y, &dx, &dy)
                    fad_second(c, x, y, r, &dxx, &dxy, &dyy)
                    if dxx != 0.0 or isnan(dxx):
                        out[c, 0] = True
                    if arity == 2 and form == 0:
                        if dxy != 0.0 or isnan(dxy):
                            out[c, 1] = True
                        if dyy != 0.0 or isnan(dyy):
                            out[c, 2] = True
    return out


def op_kinds():
    """fad_op_kind as an int8 array (the op table's arity of every op code)."""
    out = np.empty(FAD_NUM_SCALAR_OPS, dtype=np.int8)
    cdef int i
    for i in range(FAD_NUM_SCALAR_OPS):
        out[i] = fad_op_kind[i]
    return out


KIND_LEAF = FAD_KIND_LEAF
KIND_UNARY = FAD_KIND_UNARY
KIND_CONST = FAD_KIND_CONST
KIND_BINARY = FAD_KIND_BINARY
