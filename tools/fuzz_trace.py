#!/usr/bin/env python
"""Fuzz fastad's trace-file reader (fd.load, and pickle.loads of a trace).

    python tools/fuzz_trace.py --seconds 60              # one minute
    python tools/fuzz_trace.py --seconds 600 --seed 7    # reproducible
    python tools/fuzz_trace.py --replay failures/3-41.fdtrace

Seeds are real traces written by tf.save: scalar slots only; guards (comparisons,
int()); every kind of array record (elementwise with constants, matmul with a
transposed constant, einsum, sum/mean/max/min, softmax/log_softmax/logsumexp,
reshape/transpose); dict inputs and dynamic parameters; a constant output; an
array output.  Each candidate is one seed with one to three mutations:

  * truncation anywhere (digest left as it is, or recomputed);
  * bit flips in the body with the digest recomputed;
  * header counts set to boundary values (0, n +- 1, 2**31, 2**63, 2**64 - 1, ...);
  * a section group grown or shrunk with the header kept consistent;
  * op codes, argument slots, guard kinds / slots / source lines / elements set to
    boundary values, values (val, db, params, consts) to NaN, inf, 1e308, 5e-324;
  * JSON edits of the metadata and of the array records: a node replaced by a
    boundary value, deleted, duplicated, wrapped or nested 10^5 deep, a key added;
  * record edits that keep a record plausible, so that it gets past the reader's
    checks and runs the kernels on layouts no recording produced: elementwise
    inputs re-shaped to other broadcasting patterns (scalars, trailing blocks,
    ones), another op of the same arity, other axes / keepdims, another reshape or
    permutation, an input moved to other slots or turned into a constant;
  * the records of another seed spliced in.

A worker subprocess loads candidates one after another, alternately through
fd.load(path) and pickle.loads, and calls every trace that loads at its own trace
point and near it: tf(x), tf.grad / value_and_grad / hvp / grad_batch (scalar
output) or tf.jacobian / jvp, repr, and a save / load round trip that must load
again.  An outcome passes when the load raises fd.TraceError, or the trace loads
and each call returns or raises an fd.FastADError.  Anything else fails: another
exception (its traceback is printed), the worker killed by a signal, or a hang
(--timeout seconds for one candidate).  A failing candidate is saved under --out,
so `python tools/fuzz_trace.py --replay FILE` (or fd.load(FILE)) reproduces it; a
crash is re-run alone in a fresh worker to tell it from damage an earlier
candidate did.  Exit status 1 when anything failed.

Parent and worker import the fastad that Python finds from tools/ (the installed
package, not the source tree next to it); set PYTHONPATH to the repository root to
fuzz a tree built in place (python setup.py build_ext --inplace).
"""
import argparse
import copy
import json
import os
import pickle
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

# -- the version-2 layout (fastad/_trace_file.py), kept here so that the fuzzer can
#    take apart and rebuild files without trusting the reader it tests -------------

MAGIC = b"FDTRACE\0"
PREFIX = struct.Struct("<8sII")
COUNTS = struct.Struct("<10Q")
COUNT_NAMES = ("n", "ng", "n_lines", "n_in", "n_param", "out1", "out_size", "meta_len",
               "rec_len", "n_consts")
SECTIONS = (("op", "<u1", "n"), ("a", "<i4", "n"), ("b", "<i4", "n"), ("val", "<f8", "n"),
            ("db", "<f8", "n"), ("kind", "<u1", "ng"), ("ga", "<i4", "ng"),
            ("gb", "<i4", "ng"), ("gc", "<f8", "ng"), ("go", "<f8", "ng"),
            ("src", "<i4", "ng"), ("elem", "<i8", "ng"), ("params", "<f8", "n_param"),
            ("meta", "u1", "meta_len"), ("records", "u1", "rec_len"),
            ("consts", "<f8", "n_consts"))
DIGEST_SIZE = 32


def digest(body):
    import hashlib
    return hashlib.blake2b(body, digest_size=DIGEST_SIZE).digest()


def split(blob):
    """(counts dict, {section: bytes}) of a well-formed version-2 file."""
    counts = dict(zip(COUNT_NAMES, COUNTS.unpack_from(blob, PREFIX.size)))
    off = PREFIX.size + COUNTS.size
    sections = {}
    for name, dt, count in SECTIONS:
        size = counts[count] * np.dtype(dt).itemsize
        sections[name] = blob[off:off + size]
        off += size
    return counts, sections


def join(counts, sections, fix=True, version=2, flags=0):
    """A file with a correct digest; `fix` recomputes the counts from the sections."""
    counts = dict(counts)
    if fix:
        for name, dt, count in SECTIONS:
            counts[count] = len(sections[name]) // np.dtype(dt).itemsize
    body = PREFIX.pack(MAGIC, version, flags) + COUNTS.pack(
        *[counts[k] & (2**64 - 1) for k in COUNT_NAMES])
    body += b"".join(sections[name] for name, _, _ in SECTIONS)
    return body + digest(body)


# -- seeds ---------------------------------------------------------------------------

def seed_traces():
    """[(name, bytes)] of real traces, one per feature the reader has to handle."""
    import fastad as fd
    from fastad._trace_file import dump_bytes
    rng = np.random.default_rng(0)
    C = rng.normal(size=(4, 5))
    V = rng.normal(size=20)

    def rosen(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
        return s

    def guarded(x):
        y = fd.sin(x[0]) * x[1]
        if x[0] > x[1]:
            y = y + fd.exp(x[2])
        k = int(x[3] * 3)
        return y * (k + 1) + fd.sum(x[x > 0.1] * 2.0) if y < 10 else -y

    def records(x, p):
        X = fd.reshape(x, (4, 5))
        a = fd.sin(X) * C + p
        b = a @ fd.transpose(X)
        e = np.einsum("ij,jk->ik", X, C.T)
        s = fd.softmax(fd.reshape(b, (16,)))
        lg = fd.log_softmax(fd.reshape(e, (16,)))
        return (fd.sum(s * lg) + fd.mean(x * x) + np.max(x) - np.min(x)
                + fd.logsumexp(x) + fd.sum(fd.exp(fd.transpose(X)) / 3.0))

    def tree(d, scale):
        r = fd.sum(fd.tanh(d["w"] @ d["x"]) * scale) + d["b"] * d["b"]
        return r if d["b"] > 0 else -r

    seeds = [
        ("scalar", fd.trace(rosen, np.linspace(-1, 1, 6))),
        ("guards", fd.trace(guarded, np.array([0.9, 0.1, 0.3, 0.5, 0.2]))),
        ("records", fd.trace(records, rng.normal(size=20), np.ones((4, 5)))),
        ("dicts", fd.trace(tree, {"x": V, "w": rng.normal(size=(20, 20)), "b": 0.5},
                           np.ones(20))),
        ("constant", fd.trace(lambda x: 2.5, 1.0)),
        ("array-out", fd.trace(lambda x: fd.sin(x) * x[0] + C.reshape(-1)[:4], np.ones(4))),
        ("big-array-out", fd.trace(lambda x: fd.tanh(x * V), V)),
    ]
    return [(name, dump_bytes(tf)) for name, tf in seeds]


# -- mutations -----------------------------------------------------------------------

INTS = [0, 1, -1, 2, 3, 7, 255, 256, 2**31 - 1, 2**31, -2**31, 2**32, 2**62, 2**63 - 1,
        2**63, 2**64 - 1, 2**70, -2**70]
FLOATS = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e308, -1e308, 5e-324,
          1.5, -2.5]
JSON_VALUES = INTS + FLOATS + ["", "*", "x", "sin", "add", "matmul", "einsum", "sum",
                               "max", "softmax", "reshape", "transpose", "elementwise",
                               "reduce", "layout", "F", "ij,jk", "i", True, False, None,
                               [], {}, [0], [-1], [1, 2], [-1, [2], 0], [1, [20]],
                               {"list": ["*"]}, {"tuple": []}, {"dict": [[], []]},
                               {"int": 1}, [[0]]]


class Nested:
    """A JSON node of `depth` levels of lists (json.dumps would recurse)."""

    def __init__(self, depth):
        self.depth = depth


def dump_json(obj):
    holes = []

    def default(o):
        if isinstance(o, Nested):
            holes.append(o.depth)
            return "@@NESTED@@"
        raise TypeError(type(o).__name__)
    text = json.dumps(obj, default=default)
    for d in holes:
        text = text.replace('"@@NESTED@@"', "[" * d + "]" * d, 1)
    return text.encode()


# Nodes deeper than this are not edit targets: the walk recurses (a generator per
# level), and wrapping edits can nest a node hundreds of levels down; a bound keeps
# the walk far from Python's recursion limit without an unbounded explicit stack
JSON_EDIT_DEPTH = 64


def json_paths(obj, path=()):
    yield path
    if len(path) >= JSON_EDIT_DEPTH:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from json_paths(v, path + (i,))


def json_edit(r, obj):
    """obj with one random edit at a random node."""
    paths = list(json_paths(obj))
    path = r.choice(paths)
    if not path:
        return r.choice([[obj], Nested(10**5), {"x": obj}, r.choice(JSON_VALUES)])
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    node = parent[key]
    how = r.randrange(8)
    if how == 0 and isinstance(node, int) and not isinstance(node, bool):
        parent[key] = node + r.choice([-2, -1, 1, 2, 16, -16])
    elif how == 1:
        del parent[key]
    elif how == 2 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(node))     # a copy: no shared node to edit twice
    elif how == 3:
        parent[key] = [node]
    elif how == 4:
        parent[key] = Nested(r.choice([150, 400, 10**5]))
    elif how == 5 and isinstance(parent, dict):
        parent[r.choice(["code", "kind", "op", "x", "order"])] = r.choice(JSON_VALUES)
    elif how == 6 and isinstance(node, list) and len(node) > 1:
        i, j = r.sample(range(len(node)), 2)
        node[i], node[j] = node[j], node[i]
    else:
        parent[key] = r.choice(JSON_VALUES)
    return obj


def element_value(r, dt, i, n):
    if dt == "<u1":
        return r.choice([0, 1, 2, 3, 4, 36, 37, 38, 69, 70, 71, 127, 255, r.randrange(256)])
    if dt in ("<i4", "<i8"):
        bits = 32 if dt == "<i4" else 64
        v = r.choice([-1, 0, 1, i, i - 1, i + 1, n, n - 1, n + 1, 2**31 - 1, -2**31,
                      r.randrange(-3, n + 3)])
        return max(-2**(bits - 1), min(2**(bits - 1) - 1, v))
    return r.choice(FLOATS + [r.gauss(0, 10)])


def mutate(r, counts, sections, seeds):
    """One mutation of (counts, sections) in place; returns a short description, or
    ("blob", bytes) for mutations that are only expressible on the final bytes."""
    kind = r.choice(["count", "count", "resize", "element", "element", "element",
                     "meta", "meta", "records", "records", "splice", "semantic",
                     "semantic", "semantic"])
    if kind == "count":
        name = r.choice(COUNT_NAMES)
        v = r.choice(INTS + [counts[name] + d for d in (-2, -1, 1, 2)])
        counts[name] = v
        return "count %s=%d" % (name, v), False
    if kind == "resize":
        group = r.choice(["n", "ng", "n_param", "n_consts"])
        delta = r.choice([-2, -1, 1, 2, 5])
        for name, dt, count in SECTIONS:
            if count != group:
                continue
            size = np.dtype(dt).itemsize
            data = sections[name]
            if delta < 0:
                sections[name] = data[:max(0, len(data) + delta * size)]
            else:
                extra = np.array([element_value(r, dt, 0, len(sections["op"]))
                                  for _ in range(delta)], dtype=dt)
                sections[name] = data + extra.tobytes()
        if group == "ng" and r.random() < 0.5:
            counts["n_lines"] = max(0, counts["n_lines"] + delta)
        return "resize %s by %d" % (group, delta), True
    if kind == "element":
        cands = [(nm, dt) for nm, dt, _ in SECTIONS if nm not in ("meta", "records")
                 and sections[nm]]
        if not cands:
            return "nothing", True
        name, dt = r.choice(cands)
        arr = np.frombuffer(sections[name], dtype=dt).copy()
        for _ in range(r.choice([1, 1, 2, 3])):
            i = r.randrange(arr.shape[0])
            arr[i] = element_value(r, dt, i, len(sections["op"]))
        sections[name] = arr.tobytes()
        return "element %s" % name, True
    if kind in ("meta", "records"):
        key = kind
        if not sections[key]:
            return "nothing", True
        try:
            obj = json.loads(sections[key])
        except (ValueError, RecursionError):     # an earlier mutation broke it
            return "nothing", True
        try:
            for _ in range(r.choice([1, 1, 2])):
                obj = json_edit(r, obj)
            sections[key] = dump_json(obj)
        except (ValueError, RecursionError):
            # the edits made the object contain itself, or copying / dumping a
            # deeply wrapped node went past the recursion limit
            return "nothing", True
        return "json %s" % key, r.random() < 0.9
    if kind == "semantic":
        if not sections["records"]:
            return "nothing", True
        try:
            recs = json.loads(sections["records"])
            what = record_edit(r, recs, len(sections["consts"]) // 8)
        except (ValueError, RecursionError, LookupError, TypeError, AttributeError):
            return "nothing", True        # an earlier mutation left no records to edit
        sections["records"] = dump_json(recs)
        return "record %s" % what, True
    # splice the records (and constants) of another seed
    _, other = r.choice(seeds)
    oc, osec = split(other)
    sections["records"], sections["consts"] = osec["records"], osec["consts"]
    return "splice", True


# Record edits re-shape blocks of at most this many elements: a record's "size" is
# read from the JSON, which an earlier edit of the same candidate may have set to
# 2**63, and finding the divisors of that would never end (CI's fuzzer step once
# hung here, in the parent, where no per-candidate timeout reaches)
MAX_RESHAPE_SIZE = 1 << 16


def divisors(n):
    """The divisors of n greater than 1, by trial division up to sqrt(n)."""
    small = [d for d in range(2, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small] + ([n] if n > 1 else [])))


def factorizations(r, size):
    """A random shape with `size` (<= MAX_RESHAPE_SIZE) elements (ones sprinkled in)."""
    dims, left = [], size
    while left > 1 and len(dims) < 4:
        d = r.choice(divisors(left))
        dims.append(d)
        left //= d
    if left > 1:
        dims.append(left)
    for _ in range(r.choice([0, 0, 1, 2])):
        dims.insert(r.randrange(len(dims) + 1), 1)
    r.shuffle(dims)
    return dims


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def record_edit(r, recs, n_consts):
    """Change one record into another *valid-looking* one (same block): other
    broadcasting layouts, ops, axes, input slots.  These get past the reader's
    checks and exercise the record kernels on shapes no recording produced."""
    from fastad._tape import OP_INFO
    rec = r.choice(recs)
    kind, size, base = rec["kind"], rec["size"], rec["base"]
    if not all(type(v) is int and 0 <= v <= MAX_RESHAPE_SIZE
               for v in [size] + [_prod(i[1]) for i in rec["inputs"]]):
        return "nothing (sizes past what a re-shape tries)"

    def var_input(shape):
        n = _prod(shape)
        return [r.randrange(1, max(2, base - n + 1)), shape] if base - n >= 1 else None

    if kind == "elementwise":
        arity = len(rec["inputs"])
        if r.random() < 0.3:
            rec["op"] = r.choice([nm for _, nm, a, _ in OP_INFO if a == arity])
            return "elementwise op %s" % rec["op"]
        out = factorizations(r, size)
        ins = []
        for _ in range(arity):
            how = r.randrange(4)
            if how == 0:
                shape = list(out)
            elif how == 1:
                shape = out[r.randrange(len(out) + 1):] if out else []
            elif how == 2:
                shape = [d if r.random() < 0.5 else 1 for d in out]
            else:
                shape = []
            if r.random() < 0.5 and n_consts >= _prod(shape):
                ins.append([-1, shape, r.randrange(n_consts - _prod(shape) + 1)])
            else:
                inp = var_input(shape)
                ins.append(inp if inp is not None else [-1, [], 0])
        rec["inputs"], rec["out_shape"] = ins, out
        return "elementwise layouts %s -> %s" % ([i[1] for i in ins], out)
    if kind in ("reduce", "softmax"):
        shape = rec["inputs"][0][1]
        if r.random() < 0.5:
            shape = factorizations(r, _prod(shape))
            inp = var_input(shape)
            if inp is None:
                return "nothing"
            rec["inputs"] = [inp]
        nd = len(shape)
        axes = sorted(r.sample(range(nd), r.randrange(nd + 1))) if nd else []
        rec["axes"], rec["keepdims"] = axes, r.random() < 0.5
        reduced = (kind == "reduce" or rec["op"] == "logsumexp")
        if reduced:
            out = [1 if i in axes else d for i, d in enumerate(shape)] if rec["keepdims"] \
                else [d for i, d in enumerate(shape) if i not in axes]
        else:
            out = list(shape)
        rec["out_shape"] = out        # size may now differ from the block: refused
        return "%s axes %s of %s" % (rec["op"], axes, shape)
    if kind == "layout":
        shape = rec["inputs"][0][1]
        if rec["op"] == "reshape":
            rec["arg"] = rec["out_shape"] = factorizations(r, _prod(shape))
        else:
            perm = list(range(len(shape)))
            r.shuffle(perm)
            rec["arg"], rec["out_shape"] = perm, [shape[p] for p in perm]
        return "layout %s" % rec["arg"]
    # matmul / einsum: move a Var input elsewhere, or turn it into a constant
    k = r.randrange(len(rec["inputs"]))
    shape = rec["inputs"][k][1]
    if r.random() < 0.5 and n_consts >= _prod(shape):
        rec["inputs"][k] = [-1, shape, r.randrange(n_consts - _prod(shape) + 1)] + (
            ["F"] if r.random() < 0.3 else [])
    else:
        inp = var_input(shape)
        if inp is not None:
            rec["inputs"][k] = inp
    return "%s input %d moved" % (kind, k)


def candidate(r, seeds):
    """(description, bytes) of one mutated seed."""
    name, blob = r.choice(seeds)
    if r.random() < 0.12:
        k = r.randrange(len(blob))
        if r.random() < 0.5:
            return "%s: truncate to %d" % (name, k), blob[:k]
        body = blob[:max(0, k - DIGEST_SIZE)]
        return "%s: truncate to %d, digest recomputed" % (name, k), body + digest(body)
    if r.random() < 0.12:
        b = bytearray(blob[:-DIGEST_SIZE])
        for _ in range(r.choice([1, 2, 4])):
            pos = r.randrange(len(b))
            b[pos] ^= 1 << r.randrange(8)
        return "%s: bit flips, digest recomputed" % name, bytes(b) + digest(bytes(b))
    counts, sections = split(blob)
    done, fix = [], True
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        what, fix_counts = mutate(r, counts, sections, seeds)
        done.append(what)
        fix = fix and fix_counts
    return "%s: %s" % (name, "; ".join(done)), join(counts, sections, fix=fix)


class GeneratorStuck(Exception):
    pass


def bounded_candidate(r, seeds, limit=20):
    """candidate(r, seeds), or SystemExit naming the tool's own bug when making one
    takes longer than `limit` seconds: the worker's timeout does not cover the
    parent, and a mutation that loops must end the run, not hang it."""
    def stuck(signum, frame):
        raise GeneratorStuck()
    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(limit)
    try:
        return candidate(r, seeds)
    except GeneratorStuck:
        raise SystemExit("fuzz_trace: making one candidate took over %d s (a bug in "
                         "the fuzzer's mutations, not in fastad):\n%s"
                         % (limit, traceback.format_exc())) from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# -- the worker: load and use one candidate -------------------------------------------

def probe(path, via):
    """'rejected', 'loaded' or a failure text, for the file at `path`."""
    import fastad as fd
    with open(path, "rb") as fh:
        blob = fh.read()
    try:
        if via == "pickle":
            t = pickle.loads(pickle.dumps(_Reduce(blob)))
        else:
            t = fd.load(path)
    except fd.TraceError:
        return "rejected"
    except Exception:
        return "load raised:\n" + traceback.format_exc()
    failures = []

    def call(what, fn):
        try:
            return fn()
        except fd.FastADError:
            return None
        except Exception:
            failures.append("%s raised:\n%s" % (what, traceback.format_exc()))
            return None

    path0 = t._paths[0]
    flat = path0.point[0].copy()
    points = [flat, flat * 0.5 + 0.25]
    for k, xf in enumerate(points):
        x = call("unflatten", lambda: t._xspec.unflatten(xf))
        if x is None and failures:
            break
        call("tf(x)", lambda: t(x))
        if path0.out_shape == ():
            call("tf.grad", lambda: t.grad(x))
            call("tf.value_and_grad", lambda: t.value_and_grad(x))
            call("tf.hvp", lambda: t.hvp(x, x))
            call("tf.grad_batch", lambda: t.grad_batch(np.stack([xf, xf])))
        else:
            call("tf.jacobian", lambda: t.jacobian(x))
            call("tf.jvp", lambda: t.jvp(x, x))
    call("repr", lambda: (repr(t), len(t), t.nbytes))
    again = call("dump", lambda: pickle.dumps(t))
    if again is not None:
        try:
            pickle.loads(again)
        except Exception:
            failures.append("a loaded trace, saved again, does not load:\n"
                            + traceback.format_exc())
    return "loaded" if not failures else "\n".join(failures)


class _Reduce:
    """Pickles as fastad's own reduction of a trace: load_bytes(blob)."""

    def __init__(self, blob):
        self.blob = blob

    def __reduce__(self):
        from fastad._trace import load_bytes
        return (load_bytes, (self.blob,))


def worker_main():
    import warnings
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = open(os.devnull, "w")           # stray prints stay off the protocol
    out.write("@@READY\n")
    for line in sys.stdin:
        path, via = line.split()
        res = probe(path, via)
        out.write("@@R " + json.dumps(res) + "\n")


# -- the parent ----------------------------------------------------------------------

class Worker:
    def __init__(self):
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, bufsize=0)
        self.buf = b""
        line = self._line(120)
        if line != "@@READY":
            raise SystemExit("fuzz_trace: the worker did not start: %r\n%s"
                             % (line, self.stderr()))

    def _line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return "@@HANG"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return "@@EOF"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def run(self, path, via, timeout):
        try:
            self.proc.stdin.write(("%s %s\n" % (path, via)).encode())
        except BrokenPipeError:
            return "died", self.died()
        line = self._line(timeout)
        if line == "@@HANG":
            self.kill()
            return "hang", "no answer within %g s" % timeout
        if line == "@@EOF":
            return "died", self.died()
        res = json.loads(line[4:])
        if res in ("rejected", "loaded"):
            return res, None
        return "failed", res

    def died(self):
        rc = self.proc.wait()
        err = self.stderr()
        if rc < 0:
            return "killed by signal %d (%s)\n%s" % (-rc, signal.Signals(-rc).name,
                                                    err[-3000:])
        return "exited with status %d\n%s" % (rc, err[-3000:])

    def stderr(self):
        try:
            return self.proc.stderr.read().decode(errors="replace")
        except Exception:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def fuzz(seconds, seed, out_dir, timeout, verbose):
    r = random.Random(seed)
    seeds = seed_traces()
    work = tempfile.mkdtemp(prefix="fuzz_trace-")
    worker = Worker()
    counts = {"rejected": 0, "loaded": 0}
    findings = []
    tried = 0
    start = time.monotonic()
    try:
        # sanity: every seed loads both ways
        for name, blob in seeds:
            p = os.path.join(work, "seed.fdtrace")
            with open(p, "wb") as fh:
                fh.write(blob)
            for via in ("file", "pickle"):
                outcome, text = worker.run(p, via, timeout)
                if outcome != "loaded":
                    findings.append(report(out_dir, "seed %s via %s" % (name, via), blob,
                                           outcome, text, seed, tried))
        while time.monotonic() - start < seconds:
            what, blob = bounded_candidate(r, seeds)
            via = "pickle" if tried % 2 else "file"
            p = os.path.join(work, "cand.fdtrace")
            with open(p, "wb") as fh:
                fh.write(blob)
            outcome, text = worker.run(p, via, timeout)
            tried += 1
            if outcome in counts:
                counts[outcome] += 1
                if verbose:
                    print("%6d %-8s %s" % (tried, outcome, what))
                continue
            if outcome == "died":
                # alone in a fresh worker: is it this file, or an earlier one's damage?
                worker = Worker()
                again, text2 = worker.run(p, via, timeout)
                if again in ("rejected", "loaded"):
                    text += "\n(not reproduced alone in a fresh worker: %s)" % again
                else:
                    text = text2 or text
                    worker = Worker() if again in ("died", "hang") else worker
            elif outcome == "hang":
                worker = Worker()
            findings.append(report(out_dir, what + " via " + via, blob, outcome, text,
                                   seed, tried))
    finally:
        worker.close()
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - start
    print("fuzz_trace: seed %d, %d files in %.0f s (%.0f/s): %d rejected with "
          "TraceError, %d loaded and behaved, %d findings"
          % (seed, tried, elapsed, tried / max(elapsed, 1e-9), counts["rejected"],
             counts["loaded"], len(findings)))
    return findings


def report(out_dir, what, blob, outcome, text, seed, index):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "%d-%d.fdtrace" % (seed, index))
    with open(path, "wb") as fh:
        fh.write(blob)
    print("FINDING (%s) %s\n  %s\n  reproduce: python tools/fuzz_trace.py --replay %s"
          % (outcome, what, (text or "").replace("\n", "\n  "), path))
    return path


def replay(path, timeout):
    worker = Worker()
    bad = False
    try:
        for via in ("file", "pickle"):
            outcome, text = worker.run(os.path.abspath(path), via, timeout)
            print("%s via %s: %s%s" % (path, via, outcome, "\n" + text if text else ""))
            bad = bad or outcome not in ("rejected", "loaded")
            if outcome in ("died", "hang"):
                worker = Worker()
    finally:
        worker.close()
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: "
                    "from the clock, printed)")
    ap.add_argument("--out", default="fuzz_trace-findings",
                    help="directory for the files of findings")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds one candidate may take before it counts as a hang")
    ap.add_argument("--replay", metavar="FILE", help="load one saved file and report")
    ap.add_argument("--verbose", action="store_true", help="print every candidate")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    if args.replay:
        return replay(args.replay, args.timeout)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    findings = fuzz(args.seconds, seed, args.out, args.timeout, args.verbose)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
