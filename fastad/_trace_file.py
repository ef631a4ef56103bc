"""The file format of saved traces (tf.save / fd.load, and pickle).

Version 1.  All integers little-endian; sections follow each other without padding.

    offset  size  field
    0       8     magic  b"FDTRACE\\0"
    8       4     uint32 format version (1)
    12      4     uint32 flags (0; reserved, must be 0)
    16      72    9 x uint64: n_slots, n_guards, n_guard_lines, n_in, n_param,
                  out_slot + 1 (0 when f returned a constant), out_size,
                  meta_len, records_len
    88      ...   op      uint8   [n_slots]   op codes (csrc/fastad_ops.h order)
                  arg_a   int32   [n_slots]
                  arg_b   int32   [n_slots]
                  val     float64 [n_slots]   values at the trace point (leaves,
                                              constants)
                  db      float64 [n_slots]   constants of constant-operand ops
                  g_kind  uint8   [n_guards]  0..5 comparison (< <= == != > >=),
                                              6 value must not change, 7 int()
                  g_a     int32   [n_guards]  slot compared / taken out
                  g_b     int32   [n_guards]  other slot, or -1 for a constant
                  g_c     float64 [n_guards]  the constant
                  g_out   float64 [n_guards]  outcome at trace time (0/1 or value)
                  g_line  int32   [n_guards]  index into meta["guards"]
                  g_elem  int64   [n_guards]  element of an array comparison
                  params  float64 [n_param]   default dynamic parameters
                  meta    UTF-8 JSON [meta_len]: name, input/parameter structure
                          and shapes, output shape (and constant output), and
                          [kind, filename, line, is_array] per recorded guard
                  records pickle [records_len]: the tape's array-op records
                          (absent for tapes of scalar slots only)
    end-32  32    BLAKE2b-256 digest of every byte before it

Loading checks, in order: length of the header, magic, version, flags, that the
sizes add up to the file's length, the digest, and then the content itself (every
op code known, every argument slot below its own slot, guards inside the tape,
shapes consistent) before a replay at the trace point must satisfy every guard.
Any failure raises fd.TraceError.  The records section is unpickled, so only load
files with array records from sources you trust; scalar-only files never unpickle.
"""
import hashlib
import json
import pickle
import struct

import numpy as np

from fastad._errors import TraceError
from fastad._pytree import TreeDef
from fastad._replay import Replay, check_guard_arrays, tape_arrays, tape_from_arrays

MAGIC = b"FDTRACE\0"
VERSION = 1
HEADER = struct.Struct("<8sII9Q")
DIGEST_SIZE = 32

_SLOT_FIELDS = (("op", "<u1"), ("a", "<i4"), ("b", "<i4"), ("val", "<f8"), ("db", "<f8"))
_GUARD_FIELDS = (("kind", "<u1"), ("ga", "<i4"), ("gb", "<i4"), ("gc", "<f8"),
                 ("go", "<f8"), ("src", "<i4"), ("elem", "<i8"))


def _digest(data):
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


# -- pytree structure as JSON --------------------------------------------------------

def _enc_tree(td):
    if td.kind == "leaf":
        return "*"
    children = [_enc_tree(c) for c in td.children]
    if td.kind in ("list", "tuple"):
        return {td.kind: children}
    if td.kind == "dict":
        keys = []
        for k in td.meta:
            if type(k) is str:
                keys.append(k)
            elif type(k) is int:
                keys.append({"int": k})
            else:
                raise TraceError("tf.save: dict keys of type %s cannot be saved "
                                 "(use str or int keys)" % type(k).__name__)
        return {"dict": [keys, children]}
    raise TraceError("tf.save: inputs structured as %s cannot be saved (use lists, "
                     "tuples and dicts)" % td.kind)


def _dec_tree(obj):
    if obj == "*":
        return TreeDef("leaf", None, ())
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("bad tree")
    (kind, body), = obj.items()
    if kind in ("list", "tuple"):
        return TreeDef(kind, None, tuple(_dec_tree(c) for c in body))
    if kind == "dict":
        keys, children = body
        keys = [k["int"] if isinstance(k, dict) else k for k in keys]
        if len(keys) != len(children) or not all(type(k) in (str, int) for k in keys):
            raise ValueError("bad dict")
        return TreeDef("dict", keys, tuple(_dec_tree(c) for c in children))
    raise ValueError("bad tree kind")


def _shapes(obj):
    """A list of shapes (lists of non-negative ints) from JSON, or ValueError."""
    if not isinstance(obj, list):
        raise ValueError("shapes must be a list")
    out = []
    for s in obj:
        if not isinstance(s, list) or not all(type(d) is int and 0 <= d < 2**40 for d in s):
            raise ValueError("bad shape %r" % (s,))
        out.append(tuple(s))
    return out


# -- writing -------------------------------------------------------------------------

def dump_bytes(tf):
    """The current path of TracedFunction tf in the format above."""
    path = tf._paths[0]
    rp = path.rp
    xf, pf = path.point
    with_records = bool(rp.tape.records)
    records = b""
    if with_records:
        try:
            records = pickle.dumps(list(rp.tape.records), protocol=4)
        except Exception as e:
            raise TraceError("tf.save: this trace holds array operations (%s) whose "
                             "records cannot be pickled: %s" % (
                                 ", ".join(sorted({getattr(r, "name", "?")
                                                   for r in rp.tape.records})), e)) from None
    # the tape's values must be those of the trace point, not the last call's
    g = rp.replay(xf, pf)
    if g >= 0:   # pragma: no cover - guards hold at the point a path was recorded
        raise TraceError("tf.save: the trace is inconsistent at its own trace point")
    slots = tape_arrays(rp.tape)
    guards = rp.guard_arrays
    meta = {
        "name": tf.__name__,
        "x_tree": _enc_tree(tf._xspec.treedef), "x_shapes": [list(s) for s in tf._xspec.shapes],
        "p_tree": _enc_tree(tf._pspec.treedef), "p_shapes": [list(s) for s in tf._pspec.shapes],
        "out_shape": list(path.out_shape),
        "out_const": (None if path.out_const is None else
                      np.asarray(path.out_const, dtype=np.float64).reshape(-1).tolist()),
        "retrace": tf.retrace,
        "guards": [[str(gd[0]), str(gd[5][0]), int(gd[5][1]), type(gd[1]) is not int]
                   for gd in rp.guards],
    }
    meta_b = json.dumps(meta, allow_nan=True).encode("utf-8")
    n = slots[0].shape[0]
    header = HEADER.pack(MAGIC, VERSION, 0, n, guards[0].shape[0], len(rp.guards),
                         rp.n_in, rp.n_param, rp.out_slot + 1, rp.out_size,
                         len(meta_b), len(records))
    parts = [header]
    parts += [np.ascontiguousarray(arr, dtype=dt).tobytes()
              for arr, (_, dt) in zip(slots, _SLOT_FIELDS)]
    parts += [np.ascontiguousarray(arr, dtype=dt).tobytes()
              for arr, (_, dt) in zip(guards, _GUARD_FIELDS)]
    parts += [np.ascontiguousarray(tf._p_default, dtype="<f8").tobytes(), meta_b, records]
    body = b"".join(parts)
    return body + _digest(body)


# -- reading -------------------------------------------------------------------------

def load(path):
    """Load a trace written by tf.save(path); fd.TraceError if the file is not one,
    or is truncated, corrupted or of another format version."""
    with open(path, "rb") as fh:
        data = fh.read()
    return load_bytes(data, source=str(path))


def load_bytes(data, source="pickle"):
    from fastad._trace import ArgSpec, Path, TracedFunction
    data = bytes(data)
    if len(data) < HEADER.size + DIGEST_SIZE:
        raise TraceError("fd.load(%s): not a fastad trace (too short: %d bytes)"
                         % (source, len(data)))
    magic, version, flags, n, ng, n_lines, n_in, n_param, out1, out_size, meta_len, \
        rec_len = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise TraceError("fd.load(%s): not a fastad trace file (bad magic bytes)" % source)
    if version != VERSION:
        raise TraceError("fd.load(%s): trace file format version %d; this fastad reads "
                         "version %d" % (source, version, VERSION))
    if flags != 0:
        raise TraceError("fd.load(%s): unknown flags %#x" % (source, flags))
    sizes = ([n * np.dtype(dt).itemsize for _, dt in _SLOT_FIELDS]
             + [ng * np.dtype(dt).itemsize for _, dt in _GUARD_FIELDS]
             + [n_param * 8, meta_len, rec_len])
    expected = HEADER.size + sum(sizes) + DIGEST_SIZE
    if expected != len(data):
        raise TraceError("fd.load(%s): the file is truncated or has extra bytes "
                         "(%d bytes, the header describes %d)" % (source, len(data), expected))
    body = memoryview(data)[:-DIGEST_SIZE]
    if _digest(body) != data[-DIGEST_SIZE:]:
        raise TraceError("fd.load(%s): checksum mismatch: the file is corrupted" % source)
    # sections
    off = HEADER.size
    sections = []
    for size, (_, dt) in zip(sizes, _SLOT_FIELDS + _GUARD_FIELDS + (("p", "<f8"),)):
        sections.append(np.frombuffer(data, dtype=dt, count=size // np.dtype(dt).itemsize,
                                      offset=off).astype(np.dtype(dt).newbyteorder("=")))
        off += size
    slots, guards, params = sections[:5], sections[5:12], sections[12]
    meta_b = data[off:off + meta_len]
    rec_b = data[off + meta_len:off + meta_len + rec_len]
    try:
        meta = json.loads(meta_b.decode("utf-8"))
        x_tree, p_tree = _dec_tree(meta["x_tree"]), _dec_tree(meta["p_tree"])
        x_shapes, p_shapes = _shapes(meta["x_shapes"]), _shapes(meta["p_shapes"])
        if x_tree.num_leaves != len(x_shapes) or p_tree.num_leaves != len(p_shapes) \
                or p_tree.kind != "tuple":
            raise ValueError("structure and shapes disagree")
        xspec = ArgSpec(x_tree, x_shapes, "x")
        pspec = ArgSpec(p_tree, p_shapes, "params")
        out_shape = tuple(int(d) for d in meta["out_shape"])
        line_info = [(str(k), (str(f), int(ln)), bool(arr)) for k, f, ln, arr in meta["guards"]]
        name = str(meta["name"])
        retrace = bool(meta["retrace"])
        out_const = meta["out_const"]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            OverflowError, UnicodeDecodeError) as e:
        raise TraceError("fd.load(%s): malformed metadata (%s: %s)"
                         % (source, type(e).__name__, e)) from None
    if (xspec.size != n_in or pspec.size != n_param
            or xspec.treedef.num_leaves != len(xspec.shapes)
            or pspec.treedef.num_leaves != len(pspec.shapes)
            or len(line_info) != n_lines
            or int(np.prod(out_shape, dtype=np.int64)) != (out_size if out_shape else 1)
            or out_size < 1 or out1 > n or (out1 and out1 - 1 + out_size > n)
            or any(d < 0 for s in xspec.shapes + pspec.shapes for d in s)):
        raise TraceError("fd.load(%s): inconsistent sizes in the header and metadata"
                         % source)
    records = []
    if rec_len:
        try:
            records = pickle.loads(rec_b)
        except Exception as e:
            raise TraceError("fd.load(%s): cannot read the array records (%s)"
                             % (source, e)) from None
        if not isinstance(records, list):
            raise TraceError("fd.load(%s): malformed array records" % source)
    tape = tape_from_arrays(*slots, records, n_in + n_param)
    check_guard_arrays(n, guards[0], guards[1], guards[2], guards[5], n_lines)
    guard_tuples = [(k, None if arr else 0, -1, 0.0, None, where)
                    for k, where, arr in line_info]
    rp = Replay(tape, n_in, n_param, out1 - 1, out_size, guards=guard_tuples,
                compact=tuple(guards))
    if out1 == 0:
        if not isinstance(out_const, list) or len(out_const) != out_size:
            raise TraceError("fd.load(%s): malformed constant output" % source)
        const = np.array(out_const, dtype=np.float64)
        const = float(const[0]) if out_shape == () else const.reshape(out_shape)
    else:
        const = None
    path = Path(rp, out_shape, const)
    x_at = slots[3][1:1 + n_in].copy()
    p_at = slots[3][1 + n_in:1 + n_in + n_param].copy()
    path.point = (x_at, p_at)
    if rp.replay(x_at, p_at) >= 0:
        raise TraceError("fd.load(%s): the recorded guards do not hold at the recorded "
                         "point: the file is inconsistent" % source)
    tf = TracedFunction(None, path, xspec, pspec, params, retrace, name)
    tf._x0 = x_at
    return tf
