"""tf.compile(): a trace's tape as C, built by the system compiler, run from replay.

The generated C has one statement per tape slot, written with functions that the
op table's own X-macro rows expand to (csrc/fastad_ops.h, carried in the package as
fastad._c_headers), so no derivative is written twice.  A slot's statement computes
exactly what fastad._replay's forward_scalar computes there, with the same
expression and operands (constants are read from the tape's db array, never folded
into the code), and the reverse statements are reverse_scalar's, slot by slot, so
compiled results equal replayed ones to the last bit.  The compiler runs with
-ffp-contract=off and without fast-math, so it neither fuses nor reassociates.

The machine code is not a Python extension: the shared library exports
fad_forward(val, da, db) and fad_reverse(da, db, adj); ctypes loads it and hands
their addresses to the Replay (Replay.set_compiled), whose C loops then call them
in place of the interpreter -- guards, batches, threads and errors stay replay's.

Large tapes are split into translation units of CHUNK_SLOTS slots, each compiled on
its own (side by side, one per core) and linked once, so the compiler's time and
memory per unit stay bounded.  Libraries are cached in the user cache directory
($XDG_CACHE_HOME/fastad or ~/.cache/fastad) under the SHA-256 of what determines
them (tape structure, headers, generator version, compiler and flags), beside a
digest of the library's bytes: a cached file whose bytes do not match is rebuilt.
"""
import ctypes
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastad._errors import CompileError
from fastad._replay import FIXED_PARTIAL_OPS, Replay, tape_arrays, tape_copy
from fastad._tape import OP_INFO
from fastad._trace_spec import Path

# Bump when the generated C changes: old cache entries are then never loaded.
GEN_VERSION = 2

# Slots per translation unit (the compiler's memory and time grow faster than
# linearly with a unit's size), and per C function within a unit.
CHUNK_SLOTS = 25_000
FUNC_SLOTS = 200

FLAGS = ["-O1", "-fPIC", "-fno-math-errno", "-ffp-contract=off", "-fno-fast-math",
         "-w"]

_FIXED = frozenset(FIXED_PARTIAL_OPS)
_loaded: dict = {}            # cache key -> (CDLL, fwd address, rev address)
_lock = threading.Lock()

# The prelude: one inline function per op form, expanded from the table's rows.
#   fu_N(a, &d)        unary value and partial        vu_N(a)     value only
#   fb_N(a, b, &da, &db) binary value and partials    vb_N(a, b)  value only
#   f1_N(a, c, &d)     N_C1 (var op c): d/da          f0_N(c, a, &d)  N_C0: d/d(2nd)
_PRELUDE = r"""
#include <math.h>
#include "fastad_ops.h"
#define FAD_GEN_U(N, PY, VAL, D1, D2, LO, HI) \
static inline double fu_##N(double a, double *d) { double r = (VAL); *d = (D1); return r; } \
static inline double vu_##N(double a) { double r = (VAL); return r; }
FAD_UNARY_OPS(FAD_GEN_U)
#define FAD_GEN_B(N, PY, VAL, DA, DB, DAA, DAB, DBB, ALO, AHI, BLO, BHI) \
static inline double fb_##N(double a, double b, double *da, double *db) \
    { double r = (VAL); *da = (DA); *db = (DB); return r; } \
static inline double vb_##N(double a, double b) { double r = (VAL); return r; } \
static inline double f1_##N(double a, double b, double *d) \
    { double r = (VAL); *d = (DA); return r; } \
static inline double f0_##N(double a, double b, double *d) \
    { double r = (VAL); *d = (DB); return r; }
FAD_BINARY_OPS(FAD_GEN_B)
"""


def _headers():
    try:
        from fastad._c_headers import HEADERS
    except ImportError:
        raise CompileError("tf.compile: fastad._c_headers is missing (it is written by "
                           "setup.py when fastad is built); reinstall fastad") from None
    return HEADERS


def _op_forms():
    """op code -> (kind, C name of its row): 'u' unary, 'b' binary, '1' N_C1,
    '0' N_C0, None for leaves.  Parsed from the table's rows in their order (the
    order that numbers the op codes) and checked against OP_INFO's names."""
    text = _headers()["fastad_ops.h"]
    forms = {}
    code = 4                              # after VAR, PARAM, CONST, BLOCK
    for block, step in (("FAD_UNARY_OPS", 1), ("FAD_BINARY_OPS", 3)):
        body = text.split("#define %s(X)" % block, 1)[1].split("\n\n", 1)[0]
        for name, py in re.findall(r'X\((\w+),\s*"(\w+)"', body):
            if step == 1:
                forms[code] = ("u", name, py)
            else:
                forms[code] = ("b", name, py)
                forms[code + 1] = ("1", name, py)
                forms[code + 2] = ("0", name, py)
            code += step
    names = {c: n for c, n, _arity, _dom in OP_INFO}
    for c, (_k, _n, py) in forms.items():
        if c in names and names[c] != py:
            raise CompileError("tf.compile: the op table headers do not match this "
                               "build of fastad (op %d is %r, not %r)" % (c, py, names[c]))
    return {c: (k, n) for c, (k, n, _py) in forms.items()}


def _compiler():
    cc = os.environ.get("CC", "").strip()
    return shlex.split(cc) if cc else ["cc"]


def cache_dir():
    """Where compiled traces are kept: $XDG_CACHE_HOME/fastad or ~/.cache/fastad."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return os.path.join(base, "fastad")


def _key(op, a, b, first, out, cc):
    h = hashlib.sha256()
    h.update(b"fastad-compiled-trace %d\0" % GEN_VERSION)
    for name, text in sorted(_headers().items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    h.update(_PRELUDE.encode() + b"\0")
    h.update(("\0".join(cc + FLAGS)).encode() + b"\0")
    h.update(b"%d %d %d\0" % (op.shape[0], first, out))
    for arr in (op, a, b):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _forward_lines(op, a, b, lo, hi, forms):
    out = []
    for i, o, ai, bi in zip(range(lo, hi), op[lo:hi].tolist(), a[lo:hi].tolist(),
                            b[lo:hi].tolist()):
        form = forms.get(o)
        if form is None:
            continue                                   # a leaf: nothing to compute
        k, n = form
        fixed = o in _FIXED
        if k == "u":
            out.append("v[%d]=vu_%s(v[%d]);" % (i, n, ai) if fixed else
                       "v[%d]=fu_%s(v[%d],&da[%d]);" % (i, n, ai, i))
        elif k == "b":
            out.append("v[%d]=vb_%s(v[%d],v[%d]);" % (i, n, ai, bi) if fixed else
                       "v[%d]=fb_%s(v[%d],v[%d],&da[%d],&db[%d]);" % (i, n, ai, bi, i, i))
        elif k == "1":
            out.append("v[%d]=vb_%s(v[%d],db[%d]);" % (i, n, ai, i) if fixed else
                       "v[%d]=f1_%s(v[%d],db[%d],&da[%d]);" % (i, n, ai, i, i))
        else:
            out.append("v[%d]=vb_%s(db[%d],v[%d]);" % (i, n, i, ai) if fixed else
                       "v[%d]=f0_%s(db[%d],v[%d],&da[%d]);" % (i, n, i, ai, i))
    return out


def _reverse_lines(op, a, b, lo, hi, forms):
    """reverse_scalar's body for slots hi-1 down to lo (leaves add only into the
    sentinel adj[0], which nobody reads: left out)."""
    out = []
    for i in range(hi - 1, lo - 1, -1):
        if forms.get(int(op[i])) is None:
            continue
        ai, bi = int(a[i]), int(b[i])
        if bi != 0:
            out.append("g=adj[%d];if(g!=0.0){adj[%d]+=da[%d]*g;adj[%d]+=db[%d]*g;}"
                       % (i, ai, i, bi, i))
        else:
            out.append("g=adj[%d];if(g!=0.0){adj[%d]+=da[%d]*g;}" % (i, ai, i))
    return out


def _functions(lines, prefix, params, decl=""):
    """Static functions of FUNC_SLOTS statements each; returns (code, names)."""
    code, names = [], []
    for j in range(0, max(len(lines), 1), FUNC_SLOTS):
        name = "%s_%d" % (prefix, j // FUNC_SLOTS)
        names.append(name)
        code.append("static void %s(%s){%s\n%s\n}\n"
                    % (name, params, decl, "\n".join(lines[j:j + FUNC_SLOTS])))
    return "".join(code), names


_FWD_PARAMS = "double *restrict v, double *restrict da, double *restrict db"
_REV_PARAMS = "const double *restrict da, const double *restrict db, double *restrict adj"


def _sources(op, a, b, first, out, key, forms):
    """{file name: C source}: one unit per chunk of slots, and main.c."""
    n = op.shape[0]
    files = {}
    calls_f, calls_r = [], []
    for c, lo in enumerate(range(first, max(n, first + 1), CHUNK_SLOTS)):
        hi = min(n, lo + CHUNK_SLOTS)
        fcode, fnames = _functions(_forward_lines(op, a, b, lo, hi, forms),
                                   "f%d" % c, _FWD_PARAMS)
        rhi = min(hi, out + 1)
        rlines = _reverse_lines(op, a, b, lo, rhi, forms) if rhi > lo else []
        rcode, rnames = _functions(rlines, "r%d" % c, _REV_PARAMS, "double g;")
        files["c%d.c" % c] = (
            _PRELUDE + fcode + rcode
            + "void fad_fwd_%d(%s){%s}\n" % (c, _FWD_PARAMS,
                                             "".join("%s(v,da,db);" % f for f in fnames))
            + "void fad_rev_%d(%s){%s}\n" % (
                c, _REV_PARAMS, "".join("%s(da,db,adj);" % r for r in rnames)))   # descending already
        calls_f.append("fad_fwd_%d(v,da,db);" % c)
        calls_r.append("fad_rev_%d(da,db,adj);" % c)
    protos = "".join("void fad_fwd_%d(%s);\nvoid fad_rev_%d(%s);\n"
                     % (c, _FWD_PARAMS, c, _REV_PARAMS) for c in range(len(calls_f)))
    files["main.c"] = (
        protos + 'const char fad_key[] = "%s";\n' % key
        + "void fad_forward(%s){%s}\n" % (_FWD_PARAMS, "".join(calls_f))
        + "void fad_reverse(%s){%s}\n" % (_REV_PARAMS, "".join(reversed(calls_r))))
    return files


def _run(cmd, what, cwd):
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise CompileError(
            "tf.compile: no working C compiler: tried %r (%s: %s); install a C compiler "
            "(gcc or clang) or set the CC environment variable to one"
            % (" ".join(cmd[:1]), "CC" if os.environ.get("CC", "").strip() else
               "the default 'cc', CC is not set", e.strerror or e)) from None
    if proc.returncode != 0:
        raise CompileError("tf.compile: %s failed (%s, exit status %d):\n%s"
                           % (what, " ".join(cmd), proc.returncode, proc.stderr[-2000:]))


def _build(files, so_path, cc):
    tmp = tempfile.mkdtemp(prefix="fastad-compile-")
    try:
        for name, text in _headers().items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        names = sorted(files)
        jobs = max(1, min(len(names), os.cpu_count() or 1))

        def one(name):
            _run(cc + FLAGS + ["-I.", "-c", name, "-o", name[:-2] + ".o"],
                 "compiling " + name, tmp)

        with ThreadPoolExecutor(jobs) as pool:
            for f in [pool.submit(one, nm) for nm in names]:
                f.result()
        lib = os.path.join(tmp, "trace.so")
        _run(cc + ["-shared", "-o", lib] + [nm[:-2] + ".o" for nm in names] + ["-lm"],
             "linking", tmp)
        with open(lib, "rb") as fh:
            data = fh.read()
        os.makedirs(os.path.dirname(so_path), exist_ok=True)
        _atomic_write(so_path, data)
        _atomic_write(so_path + ".sha256", hashlib.sha256(data).hexdigest().encode())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _atomic_write(path, data):
    tmp = "%s.tmp%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _valid(so_path):
    """True when the cached library's bytes match the digest stored beside it
    (checked before loading: a damaged library is never handed to the loader)."""
    try:
        with open(so_path, "rb") as fh:
            data = fh.read()
        with open(so_path + ".sha256", "rb") as fh:
            want = fh.read().decode("ascii", "replace").strip()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == want


def _open(so_path, key):
    lib = ctypes.CDLL(so_path)
    # fad_key is a char array (its address is the string, not a pointer to it)
    if (ctypes.c_char * len(key)).in_dll(lib, "fad_key").raw != key.encode():
        raise OSError("the library was built for another trace")
    fwd = ctypes.cast(lib.fad_forward, ctypes.c_void_p).value
    rev = ctypes.cast(lib.fad_reverse, ctypes.c_void_p).value
    return lib, fwd, rev


# How the last library() call got its library: "memory", "disk" or "built" (tests
# and benchmarks read it).
last_source = None


def library(op, a, b, first, out):
    """(CDLL, fad_forward address, fad_reverse address) for this tape structure,
    from memory, from the disk cache, or built now."""
    global last_source
    cc = _compiler()
    forms = _op_forms()
    key = _key(op, a, b, first, out, cc)
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            last_source = "memory"
            return hit
        so_path = os.path.join(cache_dir(), key[:40] + ".so")
        got = None
        if os.path.exists(so_path) and _valid(so_path):
            try:
                got = _open(so_path, key)
                last_source = "disk"
            except (OSError, AttributeError, ValueError):
                got = None
        if got is None:
            for p in (so_path, so_path + ".sha256"):
                if os.path.exists(p):
                    os.unlink(p)
            _build(_sources(op, a, b, first, out, key, forms), so_path, cc)
            try:
                got = _open(so_path, key)
            except (OSError, AttributeError, ValueError) as e:
                raise CompileError("tf.compile: the library just built at %s does not "
                                   "load: %s" % (so_path, e)) from None
            last_source = "built"
        _loaded[key] = got
        return got



def compiled_path(path):
    """A new Path running `path`'s tape as compiled code (its own tape copy)."""
    rp = path.rp
    if rp.has_records:
        raise CompileError("tf.compile: this trace holds array operations (tape "
                           "records), which have no compiled form; trace a scalar "
                           "function, or use the trace as it is")
    tape = tape_copy(rp.tape)
    new = Replay(tape, rp.n_in, rp.n_param, rp.out_slot, rp.out_size,
                 guards=rp.guards, compact=rp.guard_arrays)
    new.ops_recorded = rp.ops_recorded
    op, a, b, _val, _db = tape_arrays(tape)
    lib, fwd, rev = library(op, a, b, 1 + rp.n_in + rp.n_param,
                            rp.out_slot if rp.out_slot >= 0 else 0)
    new.set_compiled(lib, fwd, rev)
    p = Path(new, path.out_shape, path.out_const)
    p.point = path.point
    return p
