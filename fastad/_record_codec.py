"""The saved form of array records (trace file format 2): data, never code.

A record of one of the built-in kinds (fastad._arrays) is saved as a JSON object

    {"kind": "elementwise" | "matmul" | "einsum" | "reduce" | "softmax" | "layout",
     "op": the operation's name ("sin", "matmul", "sum", "log_softmax", "reshape", ...),
     "base": first slot of its block, "size": slots in its block,
     "out_shape": [...],
     "inputs": [[slot, shape] for a Var input, [-1, shape, offset] for a constant
                whose float64 elements start at `offset` in the file's constants
                (C order), [-1, shape, offset, "F"] for one stored in Fortran order],
     ...kind-specific attributes: einsum "ins" (subscripts per input) and "out";
        reduce / softmax "axes" (sorted) and "keepdims"; layout "arg" (the new shape,
        or the axes permutation)}

Records of primitives declared with rules (fastad._generic.GenericRecord) are saved
by their entry's `saved` form: its kind and the fields of its params, each with a
codec of _CODECS; a user's primitive (fd.custom_vjp / fd.custom_jvp) as

    {"kind": "custom", "op": its name, ...the common fields}

resolved on reading only in fd.load's primitives= list (its operands are data, its
rules are the function the caller passes).

The kind is looked up in _KINDS, a fixed table of the built-in record kinds; nothing
read from a file is imported,
called or looked up as an attribute.  decode() checks every field before building
the record: types, ranges, each input's slot block inside the tape and before the
record's own block, constants inside the constants section, the op known with the
right number of inputs, and the output shape the one the op gives for those input
shapes.  The record classes' C kernels index without bounds checks, so this is what
keeps a crafted file from reading or writing outside the tape.
"""
import numpy as np

from fastad import _arrays, _generic, _registry
from fastad._tape import OP_INFO

# Dimensions of one saved array (NumPy's own limit is 64).
MAX_NDIM = 32
# An einsum's loop nest (the product of every subscript's length) in a file: the
# one record kind whose work is not bounded by the size of its operands.
EINSUM_MAX_WORK = 2**36

_ELEMENTWISE = {name: (code, arity) for code, name, arity, _ in OP_INFO}
_ELEMENTWISE_NAME = {code: name for code, name, arity, _ in OP_INFO}
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COMMON = ("kind", "op", "base", "size", "out_shape", "inputs")


class Malformed(Exception):
    """A saved record is not valid; the message says which field and why."""


class UnknownKind(Malformed):
    """A saved record names a kind that is not a built-in one."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


# ----------------------------------------------------------------------------------
# Writing

def encode(rec, consts, n_consts):
    """(JSON-able dict of rec, elements appended to `consts`); `n_consts` elements
    are already in the constants section.  Malformed for a record of no built-in
    kind (it has no saved form)."""
    prim = getattr(rec, "prim", None)
    if prim is not None:
        kind = "custom" if prim.kind == "custom" else (prim.saved or (None,))[0]
    else:
        kind = _KIND_OF.get(type(rec))
    if kind is None:
        raise Malformed("the array operation %r (%s) has no saved form"
                        % (getattr(rec, "name", "?"), type(rec).__name__))
    inputs, added = [], 0
    for i, (s, shape) in enumerate(zip(rec.slots, rec.shapes)):
        shape = [int(d) for d in shape]
        if s >= 0:
            inputs.append([int(s), shape])
            continue
        arr = np.asarray(rec.values[i], dtype=np.float64)
        if list(arr.shape) != shape:
            raise Malformed("the constant operand %d of %r has shape %s, recorded as %s"
                            % (i, rec.name, arr.shape, tuple(shape)))
        if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
            inputs.append([-1, shape, n_consts + added, "F"])
            consts.append(arr.ravel(order="F"))
        else:
            inputs.append([-1, shape, n_consts + added])
            consts.append(arr.reshape(-1))
        added += arr.size
    obj = {"kind": kind, "op": rec.name, "base": int(rec.base), "size": int(rec.size),
           "out_shape": [int(d) for d in rec.out_shape], "inputs": inputs}
    if prim is not None and kind != "custom":
        for field, codec in prim.saved[1].items():
            obj[field] = _CODECS[codec][0](rec.p[field])
    elif kind == "elementwise":
        obj["op"] = _ELEMENTWISE_NAME[rec.op]
    elif kind == "einsum":
        obj["ins"] = list(rec.ins)
        obj["out"] = rec.out_sub
    return obj, added


# ----------------------------------------------------------------------------------
# Reading

def decode(obj, n_slots, val, consts, primitives=None):
    """The record saved as `obj`, for a tape of n_slots slots whose values are `val`
    (float64) and the file's constants `consts` (float64); Malformed otherwise.
    `primitives`: {name: Primitive} of the user's primitives the file may name."""
    if type(obj) is not dict:
        raise Malformed("a record must be a JSON object")
    kind = obj.get("kind")
    if type(kind) is not str:
        raise Malformed("a record's kind must be a string")
    entry = _KINDS.get(kind)
    if entry is None:
        raise UnknownKind(kind)
    cls, extra, check = entry
    if set(obj) != set(_COMMON + extra):
        raise Malformed("a %s record has the fields %s, expected %s"
                        % (kind, sorted(obj), sorted(_COMMON + extra)))
    op = obj["op"]
    if type(op) is not str:
        raise Malformed("a record's op must be a string")
    base = _int(obj["base"], 1, n_slots - 1, "base")
    size = _int(obj["size"], 1, n_slots - base, "size")
    out_shape = _shape(obj["out_shape"], "out_shape")
    if _prod(out_shape) != size:
        raise Malformed("out_shape %s does not have size %d" % (out_shape, size))
    raw = obj["inputs"]
    if type(raw) is not list or not raw:
        raise Malformed("inputs must be a non-empty list")
    slots, shapes, values = [], [], []
    for k, inp in enumerate(raw):
        if type(inp) is not list or len(inp) not in (2, 3, 4):
            raise Malformed("input %d must be [slot, shape] or [-1, shape, offset] "
                            "or [-1, shape, offset, \"F\"]" % k)
        shape = _shape(inp[1], "the shape of input %d" % k)
        n = _prod(shape)
        if len(inp) == 2:
            s = _int(inp[0], 1, base - 1, "the slot of input %d" % k)
            if s + n > base:
                raise Malformed("input %d (slots %d..%d) does not end before the "
                                "record's block at %d" % (k, s, s + n - 1, base))
            # a view: the load-time replay replaces it with the record's own copy
            values.append(val[s:s + n].reshape(shape))
        else:
            if type(inp[0]) is not int or inp[0] != -1:
                raise Malformed("the slot of constant input %d must be -1" % k)
            s = -1
            off = _int(inp[2], 0, consts.shape[0], "the offset of constant input %d" % k)
            if off + n > consts.shape[0]:
                raise Malformed("constant input %d runs past the constants section" % k)
            if len(inp) == 4 and inp[3] != "F":
                raise Malformed("constant input %d has an unknown order" % k)
            values.append(consts[off:off + n].reshape(shape, order="F" if len(inp) == 4
                                                          else "C"))
        slots.append(s)
        shapes.append(shape)
    if kind == "custom":
        prim = (primitives or {}).get(op)
        if prim is None:
            raise UnknownKind(op)
        rec = _generic.new_record(prim, {})
    else:
        rec = cls.__new__(cls)
    rec.name = op
    rec.base = base
    rec.size = size
    rec.slots = tuple(slots)
    rec.shapes = tuple(shapes)
    rec.values = values
    rec.out = None          # the load-time replay at the trace point computes it
    expected = check(rec, obj)
    if isinstance(rec, _generic.GenericRecord):
        rec.needs = sum(1 << i for i, s in enumerate(slots) if s >= 0)
    if expected != out_shape:
        raise Malformed("%s of shapes %s gives shape %s, not out_shape %s"
                        % (op, tuple(shapes), expected, out_shape))
    rec.out_shape = out_shape
    return rec


def _int(v, lo, hi, what):
    if type(v) is not int or not lo <= v <= hi:
        raise Malformed("%s must be an int in [%d, %d], got %.60r" % (what, lo, hi, v))
    return v


def _shape(v, what):
    if type(v) is not list or len(v) > MAX_NDIM or \
            not all(type(d) is int and 0 <= d < 2**62 for d in v):
        raise Malformed("%s must be a list of at most %d non-negative ints, got %.80r"
                        % (what, MAX_NDIM, v))
    return tuple(v)


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _single_var_input(rec):
    if len(rec.slots) != 1 or rec.slots[0] < 0:
        raise Malformed("a %s record takes one Var input" % rec.name)
    return rec.shapes[0]


def _axes(v, ndim):
    if type(v) is not list or not all(type(a) is int and 0 <= a < ndim for a in v) \
            or any(a >= b for a, b in zip(v, v[1:])):
        raise Malformed("axes must be increasing ints in [0, %d), got %.80r" % (ndim, v))
    return tuple(v)


def _keepdims(v):
    if type(v) is not bool:
        raise Malformed("keepdims must be true or false, got %.40r" % (v,))
    return v


def _check_elementwise(rec, obj):
    code_arity = _ELEMENTWISE.get(rec.name)
    if code_arity is None:
        raise Malformed("elementwise op %.40r is not in the op table" % rec.name)
    rec.op, rec.arity = code_arity
    if len(rec.slots) != rec.arity:
        raise Malformed("%s takes %d inputs, the record has %d"
                        % (rec.name, rec.arity, len(rec.slots)))
    try:
        return tuple(np.broadcast_shapes(*rec.shapes))
    except ValueError:
        raise Malformed("the shapes %s do not broadcast" % (rec.shapes,)) from None


def _check_matmul(rec, obj):
    if rec.name != "matmul" or len(rec.slots) != 2:
        raise Malformed("a matmul record is op 'matmul' with two inputs")
    a, b = rec.shapes
    if not a or not b:
        raise Malformed("matmul operands must be at least 1-D")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise Malformed("matmul shapes %s and %s are not aligned" % (a, b))
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise Malformed("matmul shapes %s and %s do not broadcast" % (a, b)) from None
    # NumPy drops the axis it added to a 1-D operand
    rows = (a2[-2],) if len(a) > 1 else ()
    cols = (b2[-1],) if len(b) > 1 else ()
    return batch + rows + cols


def _check_einsum(rec, obj):
    ins, out = obj["ins"], obj["out"]
    if rec.name != "einsum" or type(ins) is not list or len(ins) != len(rec.slots) \
            or not all(type(s) is str for s in ins) or type(out) is not str:
        raise Malformed("an einsum record has one subscript string per input and one "
                        "for the output")
    sizes = {}
    for k, (sub, shape, slot) in enumerate(zip(ins, rec.shapes, rec.slots)):
        if len(sub) != len(shape) or not set(sub) <= _LETTERS:
            raise Malformed("einsum subscripts %.40r do not fit input %d of shape %s"
                            % (sub, k, shape))
        if slot >= 0 and len(set(sub)) != len(sub):
            raise Malformed("einsum subscripts %.40r repeat a letter on a Var" % sub)
        for c, d in zip(sub, shape):
            if sizes.setdefault(c, d) != d:
                raise Malformed("einsum subscript %r has lengths %d and %d"
                                % (c, sizes[c], d))
    if len(set(out)) != len(out) or not set(out) <= set(sizes):
        raise Malformed("einsum output subscripts %.40r are not distinct input letters"
                        % out)
    if _prod(sizes.values()) > EINSUM_MAX_WORK:
        raise Malformed("the einsum loop nest has more than %d iterations"
                        % EINSUM_MAX_WORK)
    rec.ins = tuple(ins)
    rec.out_sub = out
    return tuple(sizes[c] for c in out)


def _check_saved(kind, ops):
    """The check of a kind saved by registry entries (`saved` = (kind, fields)):
    one of `ops`, one Var input, each field through its codec, the params
    accepted by the entry's shape rule (which gives the output shape)."""
    def check(rec, obj):
        if rec.name not in ops:
            raise Malformed("%s op %.40r is not one of %s" % (kind, rec.name, ", ".join(ops)))
        prim = _registry.REGISTRY[rec.name]
        shape = _single_var_input(rec)
        p = {field: _CODECS[codec][1](obj[field], field, len(shape))
             for field, codec in prim.saved[1].items()}
        rec.prim, rec.p, rec.res = prim, p, None
        try:
            return tuple(prim.shape(rec.shapes, p))
        except ValueError as e:
            raise Malformed(str(e)) from None
    return check


def _check_custom(rec, obj):
    # the user's primitive has no shape rule: its output shape is what its function
    # gives, checked by the load-time replay at the trace point
    return tuple(obj["out_shape"])


# the saved forms of params: codec name -> (encode, decode(json, field, ndim))
_CODECS = {
    "axes": (lambda v: [int(a) for a in v], lambda v, f, ndim: _axes(v, ndim)),
    "bool": (bool, lambda v, f, ndim: _keepdims(v) if f == "keepdims" else _bool(v, f)),
    "shape": (lambda v: [int(a) for a in v], lambda v, f, ndim: _shape(v, f)),
}


def _bool(v, what):
    if type(v) is not bool:
        raise Malformed("%s must be true or false, got %.40r" % (what, v))
    return v


# kind -> (record class, its fields beyond the common ones, the check that sets its
# attributes and returns the output shape the op gives)
_KINDS = {
    "elementwise": (_arrays.ElementwiseRecord, (), _check_elementwise),
    "matmul": (_arrays.MatmulRecord, (), _check_matmul),
    "einsum": (_arrays.EinsumRecord, ("ins", "out"), _check_einsum),
    "reduce": (_generic.GenericRecord, ("axes", "keepdims"),
               _check_saved("reduce", ("sum", "mean", "max", "min"))),
    "softmax": (_generic.GenericRecord, ("axes", "keepdims"),
                _check_saved("softmax", ("softmax", "log_softmax", "logsumexp"))),
    "layout": (_generic.GenericRecord, ("arg",),
               _check_saved("layout", ("reshape", "transpose"))),
    "custom": (_generic.GenericRecord, (), _check_custom),
}
_KIND_OF = {cls: kind for kind, (cls, _, _) in _KINDS.items()
            if cls is not _generic.GenericRecord}
