"""The file format of saved traces (tf.save / fd.load, and pickle): data only.

Version 2.  All integers little-endian; sections follow each other without padding.

    offset  size  field
    0       8     magic  b"FDTRACE\\0"
    8       4     uint32 format version (2)
    12      4     uint32 flags (0; reserved, must be 0)
    16      80    10 x uint64: n_slots, n_guards, n_guard_lines, n_in, n_param,
                  out_slot + 1 (0 when f returned a constant), out_size,
                  meta_len, records_len, n_consts
    96      ...   op      uint8   [n_slots]   op codes (csrc/fastad_ops.h order)
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
                  meta    UTF-8 JSON [meta_len]
                  records UTF-8 JSON [records_len]: a list with one object per
                          array record, in tape order (fastad/_record_codec.py
                          gives the fields); empty for tapes of scalar slots only
                  consts  float64 [n_consts]  the records' constant operands
    end-32  32    BLAKE2b-256 digest of every byte before it

meta is a JSON object with exactly these fields:
    name      str, the traced function's __name__
    x_tree    the structure of x: "*" a leaf, {"list": [tree, ...]}, {"tuple": [...]},
              {"dict": [keys, [tree, ...]]} or {"dict": [keys, [tree, ...], order]};
              keys (str, or {"int": n}) in sorted order, which is the order of the
              leaves; order, when present, the same keys in the caller's order (the
              order a rebuilt dict has).  At most fastad._pytree.HARD_DEPTH levels.
    x_shapes  the shape (a list of ints) of every leaf of x, in leaf order
    p_tree, p_shapes   the same for the dynamic parameters (p_tree is a tuple)
    out_shape the output's shape; out_const null, or the constant output's
              out_size numbers when f returned no Var
    retrace   bool
    guards    [kind, filename, line, is_array] per recorded guard (n_guard_lines)
    ops       [code, name, kind] for every op code the slots use, as in the op
              table that wrote the file: a file from a fastad whose table numbers
              ops differently is refused rather than replayed as other ops

Version 1 had no n_consts field and no consts section, and stored the records as a
pickle.  Unpickling can run any code, so a version-1 file with records is refused
(re-trace and save with this version); a version-1 file of scalar slots only holds
no pickle and still loads.

Reading (fd.load, and pickle.loads, which calls load_bytes): the header first --
magic, version, flags, every count in range, and the sizes it declares adding up to
the file's size -- before anything else is read; then each section is read into its
own buffer, hashed as it is read, and the digest compared; then the content: the
JSON's nesting depth (scanned without recursion) before it is parsed, every
metadata field's type and range, every record field (fastad._record_codec), op
codes known and matching the writer's table, argument slots below their own slot,
record blocks in order and inside the tape, guards inside the tape; finally a
replay at the trace point must satisfy every guard.  Any failure raises
fd.TraceError.  Nothing read from a file is unpickled, imported, called or used as
an attribute name.

What a hostile file can do: describe any computation of the built-in operations
(fd.load replays it once at the trace point, and each call replays it again), so it
can cost CPU time and memory in proportion to what it describes -- the arrays it
declares are allocated only when the file really holds them, the records' inputs
together are capped at MAX_RECORD_INPUTS elements (or 64 per slot), an einsum's
loop nest at fastad._record_codec.EINSUM_MAX_WORK -- and it can give any numbers.
What it cannot do: run code, import modules, read or write memory outside the
trace's own arrays, or crash the interpreter.  The digest detects damage, not
tampering: anyone can write a file with a valid digest.
"""
import hashlib
import json
import os
import stat
import struct

import numpy as np

from fastad import _record_codec, _tape
from fastad._errors import TraceError
from fastad._pytree import HARD_DEPTH, TreeDef, _key_order
from fastad._replay import Replay, check_guard_arrays, tape_arrays, tape_from_arrays
from fastad._trace_spec import ArgSpec, Path

MAGIC = b"FDTRACE\0"
VERSION = 2
PREFIX = struct.Struct("<8sII")                        # magic, version, flags
COUNTS = {1: struct.Struct("<9Q"), 2: struct.Struct("<10Q")}
HEADER = struct.Struct("<8sII10Q")                     # the whole version-2 header
DIGEST_SIZE = 32
# Slot arguments are int32: no tape has more slots (or guards) than this.
MAX_SLOTS = 2**31 - 1
# Input elements all the array records of one file may read together (each holds a
# copy of its inputs during replay): 2 GiB of float64, or 64 per slot if more.
MAX_RECORD_INPUTS = 2**28
RECORD_INPUTS_PER_SLOT = 64
# JSON nesting a valid file can have: three levels per pytree level (a dict is
# {"dict": [keys, [children]]}) plus the few of the metadata object itself.
JSON_MAX_DEPTH = 3 * HARD_DEPTH + 8

_SLOT_FIELDS = (("op", "<u1"), ("a", "<i4"), ("b", "<i4"), ("val", "<f8"), ("db", "<f8"))
_GUARD_FIELDS = (("kind", "<u1"), ("ga", "<i4"), ("gb", "<i4"), ("gc", "<f8"),
                 ("go", "<f8"), ("src", "<i4"), ("elem", "<i8"))
_META_FIELDS = {"name", "x_tree", "x_shapes", "p_tree", "p_shapes", "out_shape",
                "out_const", "retrace", "guards", "ops"}

_V1_RECORDS = ("format version 1 stored its array records as a pickle, which can run "
               "code when read, so this fastad refuses it: trace the function again "
               "and save it with this version (format %d)" % VERSION)


def _digest(data):
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def _op_table():
    """[(name, kind)] by op code: what the codes in a file must mean here."""
    return [(name, kind) for _, name, kind in _tape._test_op_table()]


# Earlier op tables, by the names of their rows in order, for files written by
# earlier fastads: adding rows to the table renumbers the ops after them (a new
# unary row shifts every binary code), so a file's codes are translated by what
# they meant in the table that wrote it.  Table 1 is the table from the first file
# format until the special-function rows (fd.special); format-1 files, which list
# no ops, were all written with it.
_LEAVES = ("var", "param", "const", "block")
_TABLE_1 = (
    ("positive", "negative", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
     "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log",
     "log2", "log10", "log1p", "sqrt", "cbrt", "square", "abs", "sign", "floor", "ceil",
     "erf", "erfc", "sigmoid", "relu", "softplus"),
    ("add", "subtract", "multiply", "divide", "power", "arctan2", "hypot", "maximum",
     "minimum", "mod", "floor_divide"))


def _expand(unary, binary):
    """[(name, kind)] by op code of a table of these rows (fastad_ops.h's enum)."""
    table = [(n, 0) for n in _LEAVES] + [(n, 1) for n in unary]
    for n in binary:
        table += [(n, 3), (n, 2), (n, 2)]
    return table


def _translation(old):
    """A lookup array: op code in table `old` -> the op code of the same op (and
    the same constant form) here, or 255 (unknown) where this table has no such op."""
    def keyed(table):
        seen, keys = {}, []
        for name, kind in table:
            k = seen.get(name, 0)
            seen[name] = k + 1
            keys.append((name, kind, k))   # k: 0 the op, 1 its _C1 form, 2 its _C0
        return keys
    here = {key: code for code, key in enumerate(keyed(_op_table()))}
    lut = np.full(256, 255, dtype=np.uint8)
    for code, key in enumerate(keyed(old)):
        lut[code] = here.get(key, 255)
    return lut


def _renumber(codes, old):
    """`codes` written with table `old`, as this table numbers the same ops."""
    return _translation(old)[codes]


class _Bad(Exception):
    """Malformed content; load turns it into a TraceError naming the file."""


# -- pytree structure as JSON --------------------------------------------------------

def _enc_tree(td, depth=1):
    if td.kind == "leaf":
        return "*"
    if depth > HARD_DEPTH:      # pragma: no cover - tree_flatten already refuses
        raise TraceError("tf.save: the inputs nest more than %d levels" % HARD_DEPTH)
    children = [_enc_tree(c, depth + 1) for c in td.children]
    if td.kind in ("list", "tuple"):
        return {td.kind: children}
    if td.kind == "dict":
        keys = [_enc_key(k) for k in td.meta]
        if td.order is None:
            return {"dict": [keys, children]}
        return {"dict": [keys, children, [_enc_key(k) for k in td.order]]}
    raise TraceError("tf.save: inputs structured as %s cannot be saved (use lists, "
                     "tuples and dicts)" % td.kind)


def _enc_key(k):
    if type(k) is str:
        return k
    if type(k) is int:
        return {"int": k}
    raise TraceError("tf.save: dict keys of type %s cannot be saved (use str or int "
                     "keys)" % type(k).__name__)


def _dec_tree(obj, depth=1):
    if obj == "*":
        return TreeDef("leaf", None, ())
    if depth > HARD_DEPTH:
        raise _Bad("an input structure nests more than %d levels" % HARD_DEPTH)
    if type(obj) is not dict or len(obj) != 1:
        raise _Bad("an input structure node must be \"*\" or a one-key object")
    (kind, body), = obj.items()
    if kind in ("list", "tuple"):
        if type(body) is not list:
            raise _Bad("a %s node must hold a list" % kind)
        return TreeDef(kind, None, tuple(_dec_tree(c, depth + 1) for c in body))
    if kind != "dict":
        raise _Bad("unknown input structure %.40r" % kind)
    if type(body) is not list or len(body) not in (2, 3) or type(body[0]) is not list \
            or type(body[1]) is not list or len(body[0]) != len(body[1]):
        raise _Bad("a dict node must be [keys, children] or [keys, children, order]")
    keys = [_dec_key(k) for k in body[0]]
    if len(set(keys)) != len(keys) or keys != sorted(keys, key=_key_order):
        raise _Bad("a dict node's keys must be distinct and sorted")
    order = None
    if len(body) == 3:
        if type(body[2]) is not list:
            raise _Bad("a dict node's order must be a list")
        order = tuple(_dec_key(k) for k in body[2])
        if len(order) != len(keys) or set(order) != set(keys):
            raise _Bad("a dict node's order must list its keys")
    return TreeDef("dict", keys, tuple(_dec_tree(c, depth + 1) for c in body[1]), order)


def _dec_key(k):
    if type(k) is str:
        return k
    if type(k) is dict and len(k) == 1 and type(k.get("int")) is int:
        return k["int"]
    raise _Bad("a dict key must be a string or {\"int\": n}")


# -- checked JSON fields -------------------------------------------------------------

def _shape(v, what):
    if type(v) is not list or len(v) > _record_codec.MAX_NDIM or \
            not all(type(d) is int and 0 <= d < 2**62 for d in v):
        raise _Bad("%s must be a list of non-negative ints, got %.80r" % (what, v))
    return tuple(v)


def _shapes(v, what):
    if type(v) is not list:
        raise _Bad("%s must be a list of shapes" % what)
    return [_shape(s, "a shape in %s" % what) for s in v]


def _size(shapes):
    """Elements of all the shapes together (Python ints: exact for any dims)."""
    total = 0
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        total += n
    return total


def _number(v):
    return type(v) is float or type(v) is int


# -- scanning JSON for its depth -----------------------------------------------------

_CHUNK = 1 << 20


def _json_depth(raw):
    """The deepest nesting of [ and { outside strings in the JSON text `raw`, in
    linear time without recursion.  json.loads recurses once per level in C: a
    deep enough text overflows the C stack (a segfault) when the recursion limit
    has been raised, so the depth is checked before parsing."""
    n = len(raw)
    depth = best = 0
    in_string = 0         # 1 when the previous chunk ended inside a string
    run = 0               # backslashes ending the previous chunk
    for start in range(0, n, _CHUNK):
        b = np.frombuffer(raw, dtype=np.uint8, count=min(_CHUNK, n - start), offset=start)
        m = b.shape[0]
        idx = np.arange(m)
        not_bs = b != 0x5C
        last = np.maximum.accumulate(np.where(not_bs, idx, -1 - run))
        before = np.empty(m, dtype=np.int64)      # last non-backslash before i
        before[0] = -1 - run
        before[1:] = last[:-1]
        escaped = ((idx - 1 - before) & 1).astype(bool)   # an odd run of backslashes
        quote = (b == 0x22) & ~escaped
        inside = (np.cumsum(quote) + in_string) & 1
        outside = inside == 0
        step = (((b == 0x5B) | (b == 0x7B)) & outside).astype(np.int64) \
            - (((b == 0x5D) | (b == 0x7D)) & outside)
        levels = depth + np.cumsum(step)
        best = max(best, int(levels.max()))
        depth = int(levels[-1])
        in_string = int(inside[-1])
        run = m - 1 - int(last[-1]) if last[-1] >= 0 else run + m
    return best


def _parse_json(buf, what):
    if _json_depth(buf) > JSON_MAX_DEPTH:
        raise _Bad("the %s nest more than %d levels" % (what, JSON_MAX_DEPTH))
    try:
        return json.loads(bytes(buf).decode("utf-8"))
    except (ValueError, RecursionError) as e:    # UnicodeDecodeError is a ValueError
        raise _Bad("the %s are not valid JSON (%s)" % (what, e)) from None


# -- writing -------------------------------------------------------------------------

def dump_bytes(tf):
    """The current path of TracedFunction tf in the format above."""
    path = tf._paths[0]
    rp = path.rp
    xf, pf = path.point
    records, consts, n_consts = [], [], 0
    for rec in rp.tape.records:
        try:
            obj, added = _record_codec.encode(rec, consts, n_consts)
        except _record_codec.Malformed as e:
            raise TraceError("tf.save: %s" % e) from None
        records.append(obj)
        n_consts += added
    # the tape's values must be those of the trace point, not the last call's
    g = rp.replay(xf, pf)
    if g >= 0:   # pragma: no cover - guards hold at the point a path was recorded
        raise TraceError("tf.save: the trace is inconsistent at its own trace point")
    slots = tape_arrays(rp.tape)
    guards = rp.guard_arrays
    table = _op_table()
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
        "ops": [[int(c), table[c][0], table[c][1]] for c in np.unique(slots[0])],
    }
    meta_b = json.dumps(meta, allow_nan=True).encode("utf-8")
    rec_b = json.dumps(records, allow_nan=False).encode("utf-8") if records else b""
    n = slots[0].shape[0]
    header = HEADER.pack(MAGIC, VERSION, 0, n, guards[0].shape[0], len(rp.guards),
                         rp.n_in, rp.n_param, rp.out_slot + 1, rp.out_size,
                         len(meta_b), len(rec_b), n_consts)
    parts = [header]
    parts += [np.ascontiguousarray(arr, dtype=dt).tobytes()
              for arr, (_, dt) in zip(slots, _SLOT_FIELDS)]
    parts += [np.ascontiguousarray(arr, dtype=dt).tobytes()
              for arr, (_, dt) in zip(guards, _GUARD_FIELDS)]
    parts += [np.ascontiguousarray(tf._p_default, dtype="<f8").tobytes(), meta_b, rec_b]
    parts += [np.ascontiguousarray(c, dtype="<f8").tobytes() for c in consts]
    body = b"".join(parts)
    return body + _digest(body)


# -- reading -------------------------------------------------------------------------

class _FileReader:
    """Exactly-sized reads from an open regular file of `size` bytes."""

    def __init__(self, fh, size):
        self.fh = fh
        self.size = size

    def read(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.fh.readinto(view[got:])
            if not k:
                raise _Bad("the file shrank while it was read")
            got += k
        return buf


class _BytesReader:
    """The same reads from bytes in memory (pickle.loads)."""

    def __init__(self, data):
        self.data = data
        self.size = len(data)
        self.off = 0

    def read(self, n):
        buf = bytearray(memoryview(self.data)[self.off:self.off + n])
        self.off += n
        return buf


def _primitive_names(primitives):
    """{name: callable} of fd.load's primitives= (API.md section 5)."""
    if primitives is None:
        return {}
    if not isinstance(primitives, (list, tuple)):
        raise TypeError("fd.load: primitives must be a list of user-defined primitives "
                        "(functions), got %s" % type(primitives).__name__)
    names = {}
    for p in primitives:
        name = getattr(p, "__name__", None)
        if not callable(p) or type(name) is not str:
            raise TypeError("fd.load: primitives must hold functions with a __name__, "
                            "got %s" % type(p).__name__)
        if names.get(name, p) is not p:
            raise ValueError("fd.load: two primitives are named %r" % name)
        names[name] = p
    return names


def read_file(path, primitives=None):
    """The checked contents of the trace file at `path` (fd.load, in fastad._trace,
    makes the TracedFunction): (path, xspec, pspec, params, retrace, name, x0)."""
    names = _primitive_names(primitives)
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise TypeError("fd.load: path must be a str, bytes or os.PathLike, got %s"
                        % type(path).__name__) from None
    source = fspath if isinstance(fspath, str) else os.fsdecode(fspath)
    # non-blocking open: opening a FIFO for reading would otherwise wait for a writer
    # before fstat could tell that it is not a file
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd_ = os.open(fspath, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0)
                  | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd_)
        if not stat.S_ISREG(st.st_mode):
            raise TraceError("fd.load(%s): not a regular file" % source)
        if nonblock:
            os.set_blocking(fd_, True)
        fh = os.fdopen(fd_, "rb", buffering=0)
    except BaseException:
        os.close(fd_)
        raise
    with fh:
        return _load(_FileReader(fh, st.st_size), source, names)


def read_bytes(data, source="pickle", primitives=None):
    """read_file for the bytes dump_bytes wrote (what pickle stores)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TraceError("fd.load(%s): a trace is stored as bytes, got %s"
                         % (source, type(data).__name__))
    return _load(_BytesReader(data), source, _primitive_names(primitives))


def _load(reader, source, primitives):
    try:
        return _read(reader, source, primitives)
    except _Bad as e:
        raise TraceError("fd.load(%s): %s" % (source, e)) from None


def _read(reader, source, primitives):
    if reader.size < PREFIX.size + DIGEST_SIZE:
        raise _Bad("not a fastad trace (too short: %d bytes)" % reader.size)
    hasher = hashlib.blake2b(digest_size=DIGEST_SIZE)
    prefix = reader.read(PREFIX.size)
    hasher.update(prefix)
    magic, version, flags = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise _Bad("not a fastad trace file (bad magic bytes)")
    if version not in COUNTS:
        raise _Bad("trace file format version %d; this fastad reads versions 1 and %d"
                   % (version, VERSION))
    if flags != 0:
        raise _Bad("unknown flags %#x" % flags)
    counts_s = COUNTS[version]
    if reader.size < PREFIX.size + counts_s.size + DIGEST_SIZE:
        raise _Bad("the header is truncated")
    raw = reader.read(counts_s.size)
    hasher.update(raw)
    counts = counts_s.unpack(raw)
    n, ng, n_lines, n_in, n_param, out1, out_size, meta_len, rec_len = counts[:9]
    n_consts = counts[9] if version >= 2 else 0
    if version == 1 and rec_len:
        raise _Bad(_V1_RECORDS)
    if (not 1 + n_in + n_param <= n <= MAX_SLOTS or ng > MAX_SLOTS or n_lines > MAX_SLOTS
            or (out1 and out_size < 1) or out1 > n or (out1 and out1 - 1 + out_size > n)
            or (not out1 and out_size > MAX_SLOTS)):
        raise _Bad("the header's counts are out of range")
    sizes = ([n * np.dtype(dt).itemsize for _, dt in _SLOT_FIELDS]
             + [ng * np.dtype(dt).itemsize for _, dt in _GUARD_FIELDS]
             + [n_param * 8, meta_len, rec_len, n_consts * 8])
    expected = PREFIX.size + counts_s.size + sum(sizes) + DIGEST_SIZE
    if expected != reader.size:
        raise _Bad("the file is truncated or has extra bytes (%d bytes, the header "
                   "describes %d)" % (reader.size, expected))
    # only now read the sections, each exactly as long as the header says
    bufs = []
    for size in sizes:
        buf = reader.read(size)
        hasher.update(buf)
        bufs.append(buf)
    if hasher.digest() != bytes(reader.read(DIGEST_SIZE)):
        raise _Bad("checksum mismatch: the file is corrupted")
    dtypes = [dt for _, dt in _SLOT_FIELDS + _GUARD_FIELDS] + ["<f8"]
    arrays = [np.frombuffer(buf, dtype=dt).astype(np.dtype(dt).newbyteorder("="),
                                                  copy=False)
              for buf, dt in zip(bufs, dtypes)]
    slots, guards, params = arrays[:5], arrays[5:12], arrays[12]
    consts = np.frombuffer(bufs[15], dtype="<f8").astype(np.float64, copy=False)

    meta = _parse_json(bufs[13], "metadata")
    xspec, pspec, out_shape, out_const, line_info, name, retrace = _read_meta(
        meta, version, n_in, n_param, out_size, n_lines)
    slots = list(slots)
    if version >= 2:
        slots[0] = _check_ops(meta["ops"], slots[0])
    else:
        slots[0] = _renumber(slots[0], _expand(*_TABLE_1))
    records = _read_records(bufs[14], n, slots[3], consts, primitives) if rec_len else []

    try:
        tape = tape_from_arrays(*slots, records, n_in + n_param)
        check_guard_arrays(n, guards[0], guards[1], guards[2], guards[5], n_lines)
    except TraceError as e:
        raise _Bad(str(e)) from None
    guard_tuples = [(k, None if arr else 0, -1, 0.0, None, where)
                    for k, where, arr in line_info]
    rp = Replay(tape, n_in, n_param, out1 - 1, out_size, guards=guard_tuples,
                compact=tuple(guards))
    if out1 == 0:
        if out_const is None:
            raise _Bad("the output is neither a slot nor a constant")
        const = np.array(out_const, dtype=np.float64)
        const = float(const[0]) if out_shape == () else const.reshape(out_shape)
    else:
        if out_const is not None:
            raise _Bad("the output is both a slot and a constant")
        const = None
    path = Path(rp, out_shape, const)
    x_at = slots[3][1:1 + n_in].copy()
    p_at = slots[3][1 + n_in:1 + n_in + n_param].copy()
    path.point = (x_at, p_at)
    try:
        failed = rp.replay(x_at, p_at)
    except (ValueError, TypeError, ArithmeticError) as e:
        # a record's kernel refused its saved operands: a user's primitive (from
        # primitives=) giving another output shape than was saved, say
        raise _Bad("replaying at the recorded point failed: %s" % e) from None
    if failed >= 0:
        raise _Bad("the recorded guards do not hold at the recorded point: the file is "
                   "inconsistent")
    return path, xspec, pspec, params, retrace, name, x_at


def _read_meta(meta, version, n_in, n_param, out_size, n_lines):
    """The checked metadata fields, or _Bad naming the first wrong one."""
    want = _META_FIELDS if version >= 2 else _META_FIELDS - {"ops"}
    if type(meta) is not dict or set(meta) != want:
        raise _Bad("the metadata must be an object with the fields %s"
                   % ", ".join(sorted(want)))
    x_tree, p_tree = _dec_tree(meta["x_tree"]), _dec_tree(meta["p_tree"])
    x_shapes = _shapes(meta["x_shapes"], "x_shapes")
    p_shapes = _shapes(meta["p_shapes"], "p_shapes")
    if x_tree.num_leaves != len(x_shapes) or p_tree.num_leaves != len(p_shapes) \
            or p_tree.kind != "tuple":
        raise _Bad("the input structures and their shapes disagree")
    if _size(x_shapes) != n_in or _size(p_shapes) != n_param:
        raise _Bad("the input shapes do not hold the header's %d inputs and %d "
                   "parameters" % (n_in, n_param))
    out_shape = _shape(meta["out_shape"], "out_shape")
    if _size([out_shape]) != out_size:
        raise _Bad("out_shape %s does not hold the header's %d outputs"
                   % (out_shape, out_size))
    out_const = meta["out_const"]
    if out_const is not None and (type(out_const) is not list or len(out_const) != out_size
                                  or not all(_number(v) for v in out_const)):
        raise _Bad("out_const must be null or a list of %d numbers" % out_size)
    guards = meta["guards"]
    if type(guards) is not list or len(guards) != n_lines:
        raise _Bad("guards must be a list of the header's %d guard lines" % n_lines)
    line_info = []
    for g in guards:
        if type(g) is not list or len(g) != 4 or type(g[0]) is not str \
                or type(g[1]) is not str or type(g[2]) is not int or type(g[3]) is not bool:
            raise _Bad("a guard line must be [kind, filename, line, is_array], got %.80r"
                       % (g,))
        line_info.append((g[0], (g[1], g[2]), g[3]))
    if type(meta["name"]) is not str or type(meta["retrace"]) is not bool:
        raise _Bad("name must be a string and retrace true or false")
    return (ArgSpec(x_tree, x_shapes, "x"), ArgSpec(p_tree, p_shapes, "params"),
            out_shape, out_const, line_info, meta["name"], meta["retrace"])


def _check_ops(ops, codes):
    """The slots' op codes, as this fastad's op table numbers them: unchanged when
    every code the slots use means here what it meant in the writer's table;
    renumbered when the writer's was an earlier table (_TABLE_1); _Bad otherwise."""
    table = _op_table()
    old = _expand(*_TABLE_1)
    if type(ops) is list and all(
            type(e) is list and len(e) == 3 and type(e[0]) is int and 0 <= e[0] < len(old)
            and old[e[0]] == (e[1], e[2]) for e in ops) and \
            any(e[0] >= len(table) or table[e[0]] != (e[1], e[2]) for e in ops):
        listed = {e[0] for e in ops}
        if all(c in listed for c in np.unique(codes).tolist()):
            return _renumber(codes, old)
    if type(ops) is not list:
        raise _Bad("ops must be a list")
    listed = {}
    for entry in ops:
        if type(entry) is not list or len(entry) != 3 or type(entry[0]) is not int \
                or type(entry[1]) is not str or type(entry[2]) is not int:
            raise _Bad("an ops entry must be [code, name, kind], got %.80r" % (entry,))
        listed[entry[0]] = (entry[1], entry[2])
    for code in np.unique(codes).tolist():
        if code not in listed:
            raise _Bad("op code %d is used but not listed in ops" % code)
        if code >= len(table) or table[code] != listed[code]:
            raise _Bad("op code %d was %r in the fastad that wrote the file and is %s "
                       "here: trace the function again with this version"
                       % (code, listed[code][0],
                          repr(table[code][0]) if code < len(table) else "unknown"))
    return codes


def _read_records(buf, n, val, consts, primitives):
    objs = _parse_json(buf, "array records")
    if type(objs) is not list:
        raise _Bad("the array records must be a JSON list")
    records = []
    copied = 0
    # the user's primitives (fd.custom_vjp / fd.custom_jvp), by name: nothing else
    # named in a file is ever called
    custom = {name: getattr(f, "primitive", None) for name, f in primitives.items()}
    custom = {name: prim for name, prim in custom.items() if prim is not None}
    for i, obj in enumerate(objs):
        try:
            rec = _record_codec.decode(obj, n, val, consts, custom)
        except _record_codec.UnknownKind as e:
            if e.kind in primitives:
                raise _Bad("array record %d is the user-defined primitive %.60r, which "
                           "has no rules yet (define them with defvjp / defjvp before "
                           "fd.load)" % (i, e.kind)) from None
            if obj.get("kind") == "custom":
                raise _Bad("array record %d is the user-defined primitive %.60r, which "
                           "is not in fd.load(path, primitives=[...])" % (i, e.kind)) \
                    from None
            raise _Bad("array record %d is of kind %.60r, which is not one of fastad's "
                       "array operations; if it is a user-defined primitive, pass it in "
                       "fd.load(path, primitives=[...])" % (i, e.kind)) from None
        except _record_codec.Malformed as e:
            raise _Bad("array record %d: %s" % (i, e)) from None
        records.append(rec)
        copied += sum(_size([sh]) for s, sh in zip(rec.slots, rec.shapes) if s >= 0)
    # Each record keeps a copy of its Var inputs while it replays: a small file whose
    # records all read one large block would need memory far beyond its size.
    limit = max(MAX_RECORD_INPUTS, RECORD_INPUTS_PER_SLOT * n)
    if copied > limit:
        raise _Bad("the array records read %d input elements in all, more than %d (each "
                   "record holds a copy of its inputs while it replays)" % (copied, limit))
    return records
