"""Trace files are data (issue 10, "Security"): fd.load and pickle.loads never run
code from a file, every malformed file raises fd.TraceError, sizes are checked
before anything is read, deep nesting cannot crash, and every array record kind
round-trips bit for bit.  Scenarios that could crash the interpreter run in a child.
"""
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastad as fd
from fastad import _pytree
from fastad import _trace_file as tfile
from fastad._trace import load_bytes
from _record_paths import elementwise_records  # noqa: F401,E402  (fixture)

# sizes from RECORD_MIN_SIZE up test every op's record, elementwise ones too
pytestmark = pytest.mark.usefixtures("elementwise_records")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(body, *args, timeout=300):
    """Run `body` in a fresh interpreter importing this tree's fastad; it must exit
    normally (no signal) and print CHILD-DONE last.  Returns its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent(body) + '\nprint("CHILD-DONE")\n'
    proc = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    assert proc.returncode >= 0, "child killed by signal %d:\n%s" % (
        -proc.returncode, proc.stderr[-3000:])
    assert proc.returncode == 0, "child failed:\n%s" % proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("CHILD-DONE"), proc.stdout[-2000:]
    return proc.stdout


def same(a, b):
    """Bit-identical numbers (arrays or pytrees of them)."""
    la, ta = _pytree.tree_flatten(a)
    lb, tb = _pytree.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        assert x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)


# ----------------------------------------------------------------------------------
# Dict key order (issue 10, "f receives its dict arguments in the caller's key order")

def test_f_receives_dicts_in_callers_key_order():
    seen = []

    def f(d):
        seen.append(list(d))
        return d["z"] * d["a"] + d["m"]["y"] * d["m"]["b"]

    x = {"z": 1.0, "a": 2.0, "m": {"y": 3.0, "b": 4.0}}
    g = fd.grad(f)(x)
    assert seen[-1] == ["z", "a", "m"]
    assert list(g) == ["z", "a", "m"] and list(g["m"]) == ["y", "b"]
    assert g == {"z": 2.0, "a": 1.0, "m": {"y": 4.0, "b": 3.0}}
    _, g2 = fd.value_and_grad(f)(x)
    assert list(g2) == ["z", "a", "m"]
    tf = fd.trace(f, x)
    assert seen[-1] == ["z", "a", "m"]
    gt = tf.grad(x)
    assert list(gt) == ["z", "a", "m"] and list(gt["m"]) == ["y", "b"]
    assert gt == g
    # another order of the same keys is the same structure
    gt2 = tf.grad({"a": 2.0, "m": {"b": 4.0, "y": 3.0}, "z": 1.0})
    assert gt2 == g
    with fd.Tape() as tape:
        v = {"q": tape.variable(1.0), "c": tape.variable(2.0)}
        y = v["q"] * v["c"]
    assert list(tape.gradient(y, v)) == ["q", "c"]


def test_dict_order_survives_save_and_pickle(tmp_path):
    def f(d):
        return d["z"] * d["a"]

    tf = fd.trace(f, {"z": 1.0, "a": 2.0})
    tf.save(tmp_path / "d.fdtrace")
    for t in (fd.load(tmp_path / "d.fdtrace"), pickle.loads(pickle.dumps(tf))):
        g = t.grad({"z": 1.0, "a": 2.0})
        assert list(g) == ["z", "a"] and g == {"z": 2.0, "a": 1.0}


def test_flatten_order_is_sorted_and_deterministic():
    l1, t1 = _pytree.tree_flatten({"b": 1.0, "a": 2.0})
    l2, t2 = _pytree.tree_flatten({"a": 2.0, "b": 1.0})
    assert l1 == l2 == [2.0, 1.0] and t1 == t2 and hash(t1) == hash(t2)
    assert list(_pytree.tree_unflatten(t1, l1)) == ["b", "a"]
    assert list(_pytree.tree_unflatten(t2, l2)) == ["a", "b"]


# ----------------------------------------------------------------------------------
# Deep nesting: a documented limit, never a crash

def test_pytree_depth_limit_is_a_clear_error():
    ok = 1.0
    for _ in range(_pytree.MAX_DEPTH):
        ok = [ok]
    assert fd.grad(lambda t: 2.0 * _deep_leaf(t))(ok) is not None
    tf = fd.trace(lambda t, p: _deep_leaf(t) * _deep_leaf(p), ok, ok)
    assert tf.grad(ok) == _deep_leaf_set(ok, 1.0)
    too_deep = ok
    for _ in range(_pytree.HARD_DEPTH - _pytree.MAX_DEPTH + 1):
        too_deep = [too_deep]
    with pytest.raises(ValueError, match="at most %d levels" % _pytree.MAX_DEPTH):
        fd.grad(lambda t: 0.0)(too_deep)
    with pytest.raises(ValueError, match="at most %d levels" % _pytree.MAX_DEPTH):
        fd.trace(lambda t: 0.0, too_deep)
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="levels"):
        fd.grad(lambda t: 0.0)(loop)


def _deep_leaf(t):
    while isinstance(t, list):
        t = t[0]
    return t


def _deep_leaf_set(t, v):
    """t's structure with its one leaf replaced by v."""
    return [_deep_leaf_set(t[0], v)] if isinstance(t, list) else v


def test_deep_inputs_in_a_child():
    # sys.setrecursionlimit raised: the depth limit must not rely on RecursionError
    run_child('''
        import sys
        sys.setrecursionlimit(10**6)
        import numpy as np, fastad as fd
        for make in (lambda x: [x], lambda x: (x,), lambda x: {"k": x}):
            x = 1.0
            for _ in range(10**5):
                x = make(x)
            for call in (lambda: fd.trace(lambda t: 0.0, x),
                         lambda: fd.grad(lambda t: 0.0)(x),
                         lambda: fd.trace(lambda t, p: t, 1.0, x)):
                try:
                    call()
                except ValueError as e:
                    assert "at most 100 levels" in str(e), e
                else:
                    raise AssertionError("a 10^5-deep input was accepted")
    ''')


# ----------------------------------------------------------------------------------
# Taking files apart and putting them back together (digest recomputed)

SECTIONS = ("op", "a", "b", "val", "db", "kind", "ga", "gb", "gc", "go", "src", "elem",
            "params", "meta", "records", "consts")
ITEM = dict(op=1, a=4, b=4, val=8, db=8, kind=1, ga=4, gb=4, gc=8, go=8, src=4, elem=8,
            params=8, meta=1, records=1, consts=8)


def split(data):
    """(counts dict, sections dict) of a version-2 file."""
    magic, version, flags = tfile.PREFIX.unpack_from(data, 0)
    assert (magic, version, flags) == (tfile.MAGIC, 2, 0)
    c = tfile.COUNTS[2].unpack_from(data, tfile.PREFIX.size)
    counts = dict(zip(("n", "ng", "n_lines", "n_in", "n_param", "out1", "out_size",
                       "meta_len", "rec_len", "n_consts"), c))
    length = dict(op=counts["n"], a=counts["n"], b=counts["n"], val=counts["n"],
                  db=counts["n"], params=counts["n_param"], meta=counts["meta_len"],
                  records=counts["rec_len"], consts=counts["n_consts"])
    for k in ("kind", "ga", "gb", "gc", "go", "src", "elem"):
        length[k] = counts["ng"]
    off = tfile.HEADER.size
    sections = {}
    for k in SECTIONS:
        sections[k] = data[off:off + length[k] * ITEM[k]]
        off += length[k] * ITEM[k]
    assert off == len(data) - tfile.DIGEST_SIZE
    return counts, sections


def _flip_last(data):
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def join(counts, sections, version=2, flags=0, fix_counts=True, digest=True):
    """A file of these sections; counts follow the sections' lengths unless told."""
    counts = dict(counts)
    if fix_counts:
        counts["meta_len"] = len(sections["meta"])
        counts["rec_len"] = len(sections["records"])
        counts["n_consts"] = len(sections["consts"]) // 8
    keys = ("n", "ng", "n_lines", "n_in", "n_param", "out1", "out_size", "meta_len",
            "rec_len") + (("n_consts",) if version != 1 else ())
    fmt = tfile.COUNTS.get(version, tfile.COUNTS[2])
    body = tfile.PREFIX.pack(tfile.MAGIC, version, flags) + fmt.pack(
        *[counts[k] for k in keys])
    body += b"".join(sections[k] for k in SECTIONS
                     if version != 1 or k != "consts")
    return body + (tfile._digest(body) if digest else b"")


def loads(blob, tmp_path=None):
    """fd.load of the bytes through a file (tmp_path given) or load_bytes."""
    if tmp_path is None:
        return load_bytes(blob)
    p = tmp_path / "t.fdtrace"
    p.write_bytes(blob)
    return fd.load(p)


def rosen_g(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
    return s if s > -1.0 else s * 2.0


def scalar_trace():
    return fd.trace(rosen_g, np.linspace(-1, 1, 5))


def array_trace():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(20, 20))
    return fd.trace(lambda x, p: fd.sum(fd.tanh(W @ x) * p) + fd.logsumexp(x),
                    rng.normal(size=20), np.ones(20))


# ----------------------------------------------------------------------------------
# The "runs code on load" attack

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, ("with open(%r, 'w') as fh: fh.write('pwned')" % self.marker,))


def test_version1_pickled_records_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps([_Evil(str(marker))], protocol=4)
    pickle.loads(pickle.dumps(_Evil(str(tmp_path / "control"))))
    assert (tmp_path / "control").exists()          # the payload does run when unpickled
    counts, sections = split(tfile.dump_bytes(scalar_trace()))
    sections = dict(sections, records=payload)
    blob = join(counts, sections, version=1)         # a valid v1 file, digest and all
    for load in (lambda: loads(blob, tmp_path), lambda: loads(blob)):
        with pytest.raises(fd.TraceError, match="format version 1 stored its array "
                                                "records as a pickle, which can run code"):
            load()
        assert not marker.exists()
    # pickle.loads of a trace takes the same path
    evil_trace = _reduce_to_load_bytes(blob)
    with pytest.raises(fd.TraceError, match="pickle, which can run code"):
        pickle.loads(evil_trace)
    assert not marker.exists()
    # the same pickle as version 2 records is just malformed JSON
    blob2 = join(counts, sections)
    with pytest.raises(fd.TraceError, match="not valid JSON"):
        loads(blob2, tmp_path)
    assert not marker.exists()


def _reduce_to_load_bytes(blob):
    class T:
        def __reduce__(self):
            return (load_bytes, (blob,))
    return pickle.dumps(T())


def _as_table_1(op_section):
    """Op codes of this table as table 1 (every format-1 file's) numbered them."""
    here_to_old = np.full(256, 255, dtype=np.uint8)
    for old_code, here_code in enumerate(tfile._translation(tfile._expand(
            *tfile._TABLE_1))[:len(tfile._expand(*tfile._TABLE_1))]):
        here_to_old[here_code] = old_code
    codes = np.frombuffer(op_section, dtype=np.uint8)
    assert (here_to_old[codes] != 255).all()
    return here_to_old[codes].tobytes()


def test_version1_scalar_files_still_load(tmp_path):
    # a format-1 file lists no ops: its codes are table 1's, renumbered on load
    # (the special-function rows shifted every binary code after them)
    tf = scalar_trace()
    counts, sections = split(tfile.dump_bytes(tf))
    sections = edit_json(sections, "meta", lambda m: {k: v for k, v in m.items()
                                                      if k != "ops"})
    sections["op"] = _as_table_1(sections["op"])
    assert sections["op"] != split(tfile.dump_bytes(tf))[1]["op"]    # really renumbered
    t1 = loads(join(counts, sections, version=1), tmp_path)
    x = np.array([0.3, -0.2, 0.5, 1.1, 0.9])
    same(t1.grad(x), tf.grad(x))
    same(t1(x), tf(x))


def test_a_pickled_trace_is_data_only():
    tf = array_trace()
    blob = pickle.dumps(tf)
    # the pickle names exactly one callable, fastad's data-only reader
    names = {a for op, a, _ in __import__("pickletools").genops(blob)
             if op.name in ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE", "BINUNICODE")
             and isinstance(a, str) and not a.startswith("FDTRACE")}
    assert names <= {"fastad._trace", "load_bytes"}, names
    same(pickle.loads(blob).grad(np.ones(20)), tf.grad(np.ones(20)))


# ----------------------------------------------------------------------------------
# Malformed files: every one a TraceError

class _NestedJSON:
    """`depth` levels of JSON lists: json.dumps cannot write them (it recurses), so
    edit_json splices the text in."""

    def __init__(self, depth):
        self.depth = depth


def edit_json(sections, key, fn):
    """sections with the JSON section `key` replaced by fn(its value); bytes from fn
    are used as they are, a _NestedJSON becomes that many levels of brackets."""
    out = dict(sections)
    obj = fn(json.loads(sections[key].decode()))
    if isinstance(obj, bytes):
        out[key] = obj
        return out
    holes = []

    def default(o):
        if isinstance(o, _NestedJSON):
            holes.append(o.depth)
            return "@@NESTED@@"
        raise TypeError(o)
    text = json.dumps(obj, default=default)
    for d in holes:
        text = text.replace('"@@NESTED@@"', "[" * d + "]" * d, 1)
    out[key] = text.encode()
    return out


def _nested_tree(depth):
    t = "*"
    for _ in range(depth):
        t = {"list": [t]}
    return t


def _counts(**kw):
    return lambda counts, sections: join(dict(counts, **kw), sections, fix_counts=False)


def _meta(fn):
    return lambda counts, sections: join(counts, edit_json(sections, "meta", fn))


def _records(fn):
    return lambda counts, sections: join(counts, edit_json(sections, "records", fn))


def _set(key, value):
    def fn(obj):
        obj[key] = value
        return obj
    return fn


def _rec(kind, key, value):
    """Set field `key` of the first record of `kind` (value(record) if callable;
    KeyError deletes the field)."""
    def fn(recs):
        r = recs[[x["kind"] for x in recs].index(kind)]
        if value is KeyError:
            del r[key]
        else:
            r[key] = value(r) if callable(value) else value
        return recs
    return fn


def _guards(fn):
    return _meta(lambda m: _set("guards", [fn(g) for g in m["guards"]])(m))


HEADER_CASES = {
    "huge n_slots": (_counts(n=2**60), "counts are out of range"),
    "n_slots 2**64-1": (_counts(n=2**64 - 1), "counts are out of range"),
    "no slots": (_counts(n=0), "counts are out of range"),
    "huge n_guards": (_counts(ng=2**62), "counts are out of range"),
    "huge meta_len": (_counts(meta_len=2**63), "truncated or has extra bytes"),
    "huge records_len": (_counts(rec_len=2**40), "truncated or has extra bytes"),
    "huge n_consts": (_counts(n_consts=2**61), "truncated or has extra bytes"),
    "n_in past the tape": (_counts(n_in=10**6), "counts are out of range"),
    "out slot past the tape": (_counts(out1=10**6), "counts are out of range"),
    "zero outputs": (_counts(out_size=0), "counts are out of range"),
    "out block past the tape": (_counts(out_size=10**6), "counts are out of range"),
    "version 3": (lambda c, s: join(c, s, version=3), "format version 3"),
    "version 0": (lambda c, s: join(c, s, version=0), "format version 0"),
    "flags": (lambda c, s: join(c, s, flags=1), "flags"),
    # the last digest byte flipped (set to 0 it stayed valid whenever it was 0: 1 run
    # in 256, the digest covering the metadata's source paths, which change per copy)
    "bad digest": (lambda c, s: _flip_last(join(c, s)), "checksum"),
    "no digest": (lambda c, s: join(c, s, digest=False), "truncated"),
    "extra byte": (lambda c, s: join(c, s) + b"\0", "truncated or has extra bytes"),
    "only the prefix": (lambda c, s: join(c, s)[:16] + bytes(32), "header is truncated"),
}

META_CASES = {
    "out_shape [2**70]": (_meta(_set("out_shape", [2**70])), "out_shape"),
    "out_shape of floats": (_meta(_set("out_shape", [1.0])), "out_shape"),
    "out_shape a string": (_meta(_set("out_shape", "()")), "out_shape"),
    "out_shape of size 2": (_meta(_set("out_shape", [2])), "out_shape"),
    "x_shapes [[2**40, 2**40]]": (_meta(_set("x_shapes", [[2**40, 2**40]])),
                                  "input shapes"),
    "x_shapes overflowing int64": (_meta(_set("x_shapes", [[2**32, 2**32, 5]])),
                                   "input shapes"),
    "x_shapes negative": (_meta(_set("x_shapes", [[-5]])), "x_shapes"),
    "x_shapes of bools": (_meta(_set("x_shapes", [[True] * 5])), "x_shapes"),
    "x_shapes 100-D": (_meta(_set("x_shapes", [[1] * 100])), "x_shapes"),
    "x_shapes not a list": (_meta(_set("x_shapes", 5)), "x_shapes"),
    "x_tree a number": (_meta(_set("x_tree", 5)), "structure"),
    "x_tree unknown kind": (_meta(_set("x_tree", {"set": ["*"]})), "structure"),
    "x_tree two keys": (_meta(_set("x_tree", {"list": [], "tuple": []})), "structure"),
    "x_tree list of a number": (_meta(_set("x_tree", {"list": 5})), "list"),
    "x_tree 150 deep": (_meta(_set("x_tree", _nested_tree(150))), "nests more than"),
    "dict keys unsorted": (_meta(_set("x_tree", {"dict": [["b", "a"], ["*", "*"]]})),
                           "sorted"),
    "dict keys repeated": (_meta(_set("x_tree", {"dict": [["a", "a"], ["*", "*"]]})),
                           "distinct"),
    "dict keys of floats": (_meta(_set("x_tree", {"dict": [[1.5], ["*"]]})), "key"),
    "dict order not its keys": (_meta(_set("x_tree", {"dict": [["a"], ["*"], ["b"]]})),
                                "order"),
    "dict with a child short": (_meta(_set("x_tree", {"dict": [["a", "b"], ["*"]]})),
                                "dict node"),
    "p_tree a list": (_meta(_set("p_tree", {"list": []})), "structures"),
    "name a number": (_meta(_set("name", 5)), "name"),
    "retrace a string": (_meta(_set("retrace", "yes")), "retrace"),
    "guards not a list": (_meta(_set("guards", {})), "guards"),
    "guard line short": (_guards(lambda g: g[:3]), "guard line"),
    "guard line number a float": (_guards(lambda g: [g[0], g[1], 1.5, g[3]]),
                                  "guard line"),
    "guard is_array a number": (_guards(lambda g: [g[0], g[1], g[2], 0]), "guard line"),
    "out_const of strings": (_meta(_set("out_const", ["1.5"])), "out_const"),
    "out_const for a slot output": (_meta(_set("out_const", [1.5])), "both"),
    "ops missing": (_meta(lambda m: {k: v for k, v in m.items() if k != "ops"}), "fields"),
    "extra field": (_meta(_set("code", "import os")), "fields"),
    "ops renamed": (_meta(lambda m: _set("ops", [[c, n + "_old", k]
                                                 for c, n, k in m["ops"]])(m)),
                    "trace the function again"),
    "ops entry bad": (_meta(_set("ops", [["sin"]])), "ops entry"),
    "ops incomplete": (_meta(_set("ops", [])), "not listed"),
    "meta a list": (_meta(lambda m: [m]), "object"),
    "meta not UTF-8": (_meta(lambda m: b"\xff\xfe" + json.dumps(m).encode()), "JSON"),
    "meta not JSON": (_meta(lambda m: b"{'name': 1}"), "JSON"),
    "meta empty": (_meta(lambda m: b""), "JSON"),
    "meta huge int": (_meta(lambda m: json.dumps(m).replace(
        '"retrace": false', '"retrace": ' + "9" * 5000).encode()), "JSON"),
    "meta deeply nested": (_meta(_set("name", _NestedJSON(10**5))), "nest"),
    "meta nested in a string": (_meta(_set("name", "[" * 10**5)), "no error"),
}

RECORD_CASES = {
    "unknown kind": (_records(_rec("matmul", "kind", "os.system")), "primitives=[...]"),
    "kind not a string": (_records(_rec("matmul", "kind", 5)), "kind"),
    "missing field": (_records(_rec("matmul", "base", KeyError)), "fields"),
    "extra field": (_records(_rec("matmul", "code", "x")), "fields"),
    "base 0": (_records(_rec("matmul", "base", 0)), "base"),
    "base past the tape": (_records(_rec("matmul", "base", 10**9)), "base"),
    "base a float": (_records(_rec("matmul", "base", 30.0)), "base"),
    "size 0": (_records(_rec("matmul", "size", 0)), "size"),
    "size past the tape": (_records(_rec("matmul", "size", 10**9)), "size"),
    "out_shape wrong size": (_records(_rec("matmul", "out_shape", [7])), "size"),
    "out_shape [2**70]": (_records(_rec("matmul", "out_shape", [2**70])), "out_shape"),
    "inputs empty": (_records(_rec("matmul", "inputs", [])), "inputs"),
    "input after the block": (
        _records(_rec("matmul", "inputs", lambda r: [r["inputs"][0],
                                                     [r["base"] + 1, [20]]])), "input 1"),
    "input running into the block": (
        _records(_rec("matmul", "inputs", lambda r: [r["inputs"][0],
                                                     [r["base"] - 3, [20]]])), "before"),
    "input slot negative": (
        _records(_rec("matmul", "inputs", lambda r: [r["inputs"][0], [-7, [20]]])),
        "input 1"),
    "input slot 0": (
        _records(_rec("matmul", "inputs", lambda r: [r["inputs"][0], [0, [20]]])),
        "input 1"),
    "constant past the constants": (
        _records(_rec("matmul", "inputs", lambda r: [[-1, [20, 20], 10**6],
                                                     r["inputs"][1]])), "constant"),
    "constant bigger than the constants": (
        _records(_rec("matmul", "inputs", lambda r: [[-1, [600, 20], 0],
                                                     r["inputs"][1]])), "constant"),
    "constant of unknown order": (
        _records(_rec("matmul", "inputs", lambda r: [[-1, [20, 20], 0, "K"],
                                                     r["inputs"][1]])), "order"),
    "constant slot -1.0": (
        _records(_rec("matmul", "inputs", lambda r: [[-1.0, [6, 20], 0],
                                                     r["inputs"][1]])), "-1"),
    "matmul misaligned": (
        _records(_rec("matmul", "inputs", lambda r: [[-1, [20, 6], 0],
                                                     r["inputs"][1]])), "aligned"),
    "matmul op renamed": (_records(_rec("matmul", "op", "einsum")), "matmul"),
    "elementwise op unknown": (_records(_rec("elementwise", "op", "system")), "op table"),
    "elementwise arity wrong": (_records(_rec("elementwise", "op", "add")), "inputs"),
    "elementwise out_shape wrong": (_records(_rec("elementwise", "out_shape", [2, 3])),
                                    "shape"),
    "softmax axes out of range": (_records(_rec("softmax", "axes", [3])), "axes"),
    "softmax axes repeated": (_records(_rec("softmax", "axes", [0, 0])), "axes"),
    "softmax keepdims a number": (_records(_rec("softmax", "keepdims", 1)), "keepdims"),
    "softmax op unknown": (_records(_rec("softmax", "op", "softmin")), "softmin"),
    "softmax of a constant": (_records(_rec("softmax", "inputs", [[-1, [20], 0]])),
                              "Var input"),
    "records not a list": (_records(lambda r: {"0": r[0]}), "list"),
    "record not an object": (_records(lambda r: [5]), "object"),
    "records deeply nested": (_records(lambda r: _NestedJSON(10**5)), "nest"),
    "records out of order": (_records(lambda r: r[::-1]), "out of place"),
    "a record dropped": (_records(lambda r: r[1:]), "array records"),
}

ALL_CASES = {**{"header: " + k: ("scalar",) + v for k, v in HEADER_CASES.items()},
             **{"meta: " + k: ("scalar",) + v for k, v in META_CASES.items()},
             **{"records: " + k: ("array",) + v for k, v in RECORD_CASES.items()}}


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_malformed_file_is_a_trace_error(case, tmp_path):
    which, mutate, match = ALL_CASES[case]
    tf = scalar_trace() if which == "scalar" else array_trace()
    counts, sections = split(tfile.dump_bytes(tf))
    blob = mutate(counts, sections)
    if match == "no error":          # a valid file after all: it must behave
        for via in (tmp_path, None):
            t = loads(blob, via)
            same(t.grad(np.ones(5)), tf.grad(np.ones(5)))
        return
    for via in (tmp_path, None):
        with pytest.raises(fd.TraceError) as info:
            loads(blob, via)
        assert match in str(info.value), (case, str(info.value))


# ----------------------------------------------------------------------------------
# Sizes are checked before reading

def test_dev_zero_fifos_and_directories_are_trace_errors(tmp_path):
    # in a child with a timeout: opening a FIFO used to wait for a writer
    fifo = tmp_path / "fifo"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
    run_child('''
        import os, sys
        import fastad as fd
        for p in sys.argv[1:]:
            if not os.path.exists(p):
                continue
            try:
                fd.load(p)
            except fd.TraceError as e:
                assert "not a regular file" in str(e), e
            else:
                raise AssertionError(p)
    ''', "/dev/zero", "/dev/null", fifo, tmp_path, timeout=60)


def _peak_while(fn):
    import tracemalloc
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_sparse_3gib_files_are_refused_before_reading(tmp_path):
    good = tfile.dump_bytes(scalar_trace())
    counts, sections = split(good)
    cases = {
        "zeros": b"",                                   # no magic
        "a real header": good[:tfile.HEADER.size],      # sizes do not add up
        # a header that declares 3 GiB of metadata, in a file of 3 GiB
        "declared 3 GiB": join(dict(counts, meta_len=3 << 30), sections,
                               fix_counts=False)[:tfile.HEADER.size],
    }
    for name, head in cases.items():
        p = tmp_path / ("big-%s" % name.replace(" ", "-"))
        with open(p, "wb") as fh:
            fh.write(head)
            fh.truncate(3 << 30)                        # sparse: no disk used
        err = []

        def attempt():
            try:
                fd.load(p)
            except fd.TraceError as e:
                err.append(e)
        peak = _peak_while(attempt)
        assert err, name
        assert peak < 1 << 20, (name, peak)             # nothing of the 3 GiB read
        os.unlink(p)


def test_pickle_path_checks_sizes_before_allocating():
    good = tfile.dump_bytes(scalar_trace())
    counts, sections = split(good)
    blob = join(dict(counts, n=2**31 - 1, rec_len=2**62), sections, fix_counts=False)
    err = []

    def attempt():
        try:
            pickle.loads(_reduce_to_load_bytes(blob))
        except fd.TraceError as e:
            err.append(e)
    assert _peak_while(attempt) < 1 << 20 and err


def test_deep_json_in_a_child_with_a_raised_recursion_limit(tmp_path):
    # json.loads segfaults at this depth once the recursion limit is raised; the
    # depth scan refuses the file first
    good = tfile.dump_bytes(scalar_trace())
    counts, sections = split(good)
    paths = []
    for i, (key, fn) in enumerate([
            ("meta", _set("x_tree", _NestedJSON(10**6))),
            ("meta", _set("name", _NestedJSON(10**6))),
            ("meta", lambda m: b"[" * 10**6)]):
        p = tmp_path / ("deep%d.fdtrace" % i)
        p.write_bytes(join(counts, edit_json(sections, key, fn)))
        paths.append(str(p))
    arr = split(tfile.dump_bytes(array_trace()))
    p = tmp_path / "deep-records.fdtrace"
    p.write_bytes(join(arr[0], edit_json(arr[1], "records", lambda r: b"{" * 10**6)))
    paths.append(str(p))
    run_child('''
        import sys
        sys.setrecursionlimit(10**7)
        import fastad as fd
        for p in sys.argv[1:]:
            try:
                fd.load(p)
            except fd.TraceError as e:
                assert "nest" in str(e), e
            else:
                raise AssertionError("loaded " + p)
    ''', *paths)


def test_json_depth_scan():
    depth = tfile._json_depth
    assert depth(b"") == 0 and depth(b"5") == 0
    assert depth(b'[[1], {"a": [2]}]') == 3
    assert depth(b'["[[[[", "\\\\", "\\"[[["]') == 1     # brackets inside strings
    assert depth(b'["\\\\\\"[[["]') == 1
    for obj in (META_OBJ, {"a": [[["]]]\\\"["]]]}, [[[[[]]]]]):
        text = json.dumps(obj).encode()
        assert depth(text) == _true_depth(obj)
    # across chunk boundaries: strings, escapes and brackets split anywhere
    big = json.dumps([["x" * (tfile._CHUNK - 3) + '\\"[', [[["\\\\"]]]]]).encode()
    assert depth(big) == _true_depth(json.loads(big))


META_OBJ = {"name": "f[", "x_tree": {"dict": [["a"], [{"list": ["*"]}]]}, "g": [["<", "x", 1]]}


def _true_depth(obj):
    if isinstance(obj, (list, dict)):
        kids = obj.values() if isinstance(obj, dict) else obj
        return 1 + max([_true_depth(k) for k in kids] or [0])
    return 0


# ----------------------------------------------------------------------------------
# primitives=

def test_primitives_keyword(tmp_path):
    tf = array_trace()
    p = tmp_path / "a.fdtrace"
    tf.save(p)
    same(fd.load(p, primitives=[]).grad(np.ones(20)), tf.grad(np.ones(20)))
    same(fd.load(p, primitives=[np.sin, rosen_g]).grad(np.ones(20)), tf.grad(np.ones(20)))
    with pytest.raises(TypeError, match="primitives"):
        fd.load(p, primitives="sin")
    with pytest.raises(TypeError, match="primitives"):
        fd.load(p, primitives=[5])
    with pytest.raises(TypeError, match="path"):
        fd.load(5)
    counts, sections = split(tfile.dump_bytes(tf))
    blob = join(counts, edit_json(sections, "records", _rec("matmul", "kind", "my_op")))
    with pytest.raises(fd.TraceError, match="'my_op'.*primitives=") as info:
        loads(blob, tmp_path)
    assert "record 0" in str(info.value) or "record" in str(info.value)

    def my_op(x):
        return x
    with pytest.raises(fd.TraceError, match="user-defined primitive 'my_op'"):
        load_bytes(blob, primitives=[my_op])


# ----------------------------------------------------------------------------------
# Round trips: every record kind, bit for bit

_R = np.random.default_rng(7)
_C = _R.normal(size=(4, 5))
_CT = _C.T                                  # a Fortran-ordered constant
_V = _R.normal(size=20)

KIND_FUNCS = {
    "elementwise unary": (lambda x: fd.sum(fd.sin(x) + fd.exp(x) + fd.tanh(x)), "sin"),
    "elementwise with constants": (lambda x: fd.sum(x * _V + 3.0 / (2.0 + x * x)),
                                   "multiply"),
    "elementwise Var and scalar Var": (lambda x: fd.sum(fd.power(fd.exp(x), x[0] * 0.1)),
                                       "power"),
    "matmul": (lambda x: fd.sum(fd.sin(fd.reshape(x, (4, 5)) @ _CT)), "matmul"),
    "matmul vector": (lambda x: fd.sin(_C.reshape(-1) @ x), "matmul"),
    "einsum F-ordered constant": (
        lambda x: fd.sum(fd.sin(np.einsum("ij,jk->ik", fd.reshape(x, (4, 5)), _CT))),
        "einsum"),
    "einsum outer": (lambda x: fd.sum(fd.cos(np.outer(x, _V))), "einsum"),
    "sum mean max min": (lambda x: fd.sum(x * x) + fd.mean(fd.sin(x)) + np.max(x) - np.min(x),
                         "max"),
    "sum over an axis keepdims": (
        lambda x: fd.sum(fd.sin(fd.sum(fd.reshape(x * x, (4, 5)), axis=1, keepdims=True)
                                * np.ones((4, 5)))), "sum"),
    "softmax": (lambda x: fd.sum(fd.softmax(x) * _V), "softmax"),
    "log_softmax over an axis": (
        lambda x: fd.sum(fd.log_softmax(fd.reshape(x, (4, 5)), axis=0) * _C), "log_softmax"),
    "logsumexp": (lambda x: fd.logsumexp(x), "logsumexp"),
    "reshape transpose": (lambda x: fd.sum(fd.sin(fd.transpose(fd.reshape(x, (4, 5)))) * _CT),
                          "transpose"),
}


def _check_round_trip(tf, x, tmp_path, hvp=True):
    p = tmp_path / "rt.fdtrace"
    tf.save(p)
    X = np.stack([x, x * 0.5, x + 0.25])
    for t in (fd.load(p), pickle.loads(pickle.dumps(tf)),
              pickle.loads(pickle.dumps(fd.load(p)))):
        assert len(t) == len(tf) and repr(t) == repr(tf)
        same(t(x), tf(x))
        same(t.grad(x), tf.grad(x))
        same(t.value_and_grad(x), tf.value_and_grad(x))
        same(t.grad_batch(X), tf.grad_batch(X))
        same(t.jvp(x, np.ones_like(x)), tf.jvp(x, np.ones_like(x)))
        if hvp:
            same(t.hvp(x, np.ones_like(x)), tf.hvp(x, np.ones_like(x)))


@pytest.mark.parametrize("case", sorted(KIND_FUNCS))
def test_every_record_kind_round_trips_bit_for_bit(case, tmp_path):
    f, op = KIND_FUNCS[case]
    x0, x = _R.normal(size=20), _R.normal(size=20)
    tf = fd.trace(f, x0)
    assert op in {r.name for r in tf._tape.records}, [r.name for r in tf._tape.records]
    _check_round_trip(tf, x, tmp_path)
    same(tf.grad(x), fd.grad(f)(x))


def test_every_record_kind_is_covered():
    from fastad import _record_codec
    kinds = set()
    for f, _ in KIND_FUNCS.values():
        kinds |= {type(r) for r in fd.trace(f, _V)._tape.records}
    assert kinds == {cls for cls, _, _ in _record_codec._KINDS.values()}


def test_round_trip_with_guards_params_and_dicts(tmp_path):
    def f(d, scale, shift):
        r = fd.sum(fd.tanh(d["w"] @ d["x"]) * scale) + shift[0]
        return r if d["b"] > 0 else -r
    x0 = {"x": _R.normal(size=20), "w": _R.normal(size=(20, 20)), "b": 0.5}
    tf = fd.trace(f, x0, np.ones(20), np.array([1.0, 2.0]))
    assert tf.n_guards and tf._tape.records
    p = tmp_path / "g.fdtrace"
    tf.save(p)
    for t in (fd.load(p), pickle.loads(pickle.dumps(tf))):
        x = {"w": x0["w"] * 0.5, "x": x0["x"] + 1, "b": 0.25}
        g = t.grad(x, np.full(20, 0.5), np.array([3.0, 4.0]))
        same(g, tf.grad(x, np.full(20, 0.5), np.array([3.0, 4.0])))
        assert list(g) == ["x", "w", "b"]
        with pytest.raises(fd.TraceError, match="guard"):
            t.grad(dict(x, b=-1.0))


def test_round_trip_at_the_depth_limit(tmp_path):
    x0 = 0.5
    for _ in range(_pytree.MAX_DEPTH):
        x0 = [x0]
    tf = fd.trace(lambda t: fd.sin(_deep_leaf(t)), x0)
    _check_round_trip_tree(tf, x0, tmp_path)


def _check_round_trip_tree(tf, x, tmp_path):
    p = tmp_path / "t.fdtrace"
    tf.save(p)
    for t in (fd.load(p), pickle.loads(pickle.dumps(tf))):
        same(t.grad(x), tf.grad(x))


# ----------------------------------------------------------------------------------
# The trace-file fuzzer (tools/fuzz_trace.py), briefly; CI runs it for a minute

def test_trace_file_fuzzer_runs_clean(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fuzz_trace.py"),
                           "--seconds", "5", "--seed", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "0 findings" in summary, proc.stdout[-4000:]
    tried = int(summary.split(" files")[0].rsplit(" ", 1)[1])
    assert tried >= 50, summary
    assert not os.listdir(tmp_path)


def test_records_reading_one_block_many_times_are_refused():
    # 3000 sums over one 10^5-element input: a 4 MB file whose replay would hold
    # 2.4 GB of copies.  Built from a one-record trace by repeating its record.
    m, reps = 10**5, 3000
    tf = fd.trace(lambda x: fd.sum(x), np.ones(m))
    counts, sections = split(tfile.dump_bytes(tf))
    (rec,) = json.loads(sections["records"])
    assert rec["kind"] == "reduce" and rec["base"] == m + 1 and counts["n"] == m + 2
    recs = [dict(rec, base=m + 1 + k) for k in range(reps)]
    n = m + 1 + reps
    new = dict(sections)
    for key, value in (("op", 3), ("a", 0), ("b", 0), ("val", 0.0), ("db", 0.0)):
        dt = {"op": "<u1", "a": "<i4", "b": "<i4"}.get(key, "<f8")
        arr = np.frombuffer(sections[key], dtype=dt)
        new[key] = np.concatenate([arr, np.full(reps - 1, value, dtype=dt)]).tobytes()
    new["records"] = json.dumps(recs).encode()
    blob = join(dict(counts, n=n, out1=n), new)
    with pytest.raises(fd.TraceError, match="input elements in all"):
        load_bytes(blob)
    # the same file with few enough repeats loads and replays
    few = 5
    small = dict(new, records=json.dumps(recs[:few]).encode())
    for key in ("op", "a", "b", "val", "db"):
        itemsize = {"op": 1, "a": 4, "b": 4}.get(key, 8)
        small[key] = new[key][:(m + 1 + few) * itemsize]
    t = load_bytes(join(dict(counts, n=m + 1 + few, out1=m + 1 + few), small))
    assert t(np.full(m, 2.0)) == 2.0 * m
