"""tf.compile(): a trace's tape as C, built by the system compiler, run from replay.

The generated C computes each tape slot with functions that the op table's own
X-macro rows expand to (csrc/fastad_ops.h, carried in the package as
fastad._c_headers), so no derivative is written twice.  A slot's statement computes
exactly what fastad._replay's forward_scalar computes there, with the same
expression and operands (constants are read from the tape's db array, never folded
into the code), and the reverse statements are reverse_scalar's, slot by slot, so
compiled results equal replayed ones to the last bit.  The compiler runs with
-ffp-contract=off and without fast-math, so it neither fuses nor reassociates.

Runs of a repeated block (a Python loop, traced: fastad._reroll finds them) become
C loops over the repetitions (_Loop), everything else one statement per slot in
functions of FUNC_SLOTS slots.  A loop executes the same statements in the same
order; it only keeps in registers what one statement stored and the next reads
(within a repetition, and from one repetition to the next), so the code stays a
few hundred bytes however long the loop, and the compiler's time with it.

The machine code is not a Python extension: the shared library exports
fad_forward(val, da, db) and fad_reverse(da, db, adj); ctypes loads it and hands
their addresses to the Replay (Replay.set_compiled), whose C loops then call them
in place of the interpreter -- guards, batches, threads and errors stay replay's.
fad_forward leaves val, da and db as forward_scalar does (tangent and Hessian
sweeps read them after a replay); fad_reverse leaves the inputs' adjoints as
reverse_scalar does (run_row reads only those; other slots' adjoints may stay in
registers).

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
from fastad._reroll import find_runs
from fastad._replay import FIXED_PARTIAL_OPS, Replay, tape_arrays, tape_copy
from fastad._tape import OP_INFO
from fastad._trace_spec import Path

# Bump when the generated C changes: old cache entries are then never loaded.
GEN_VERSION = 3

# Slots per translation unit (the compiler's memory and time grow faster than
# linearly with a unit's size), and per C function within a unit.  Tapes of more
# than MIN_SPLIT_SLOTS are split into at least one unit per core, compiled side by
# side: GCC spends ~0.3 ms per straight-line slot (LINE_FLAGS below; 0.6 ms at
# plain -O1), so the units' count sets the wall time.  A loop costs as much as
# its block's slots (K), not K * R.
CHUNK_SLOTS = 25_000
MIN_SPLIT_SLOTS = 2_000
FUNC_SLOTS = 200

# Repeated blocks become loops (fastad._reroll); off, every slot is a statement.
REROLL = True

FLAGS = ["-O1", "-fPIC", "-fno-math-errno", "-ffp-contract=off", "-fno-fast-math",
         "-w"]
# Added for GCC on units of straight-line code: its dead-store, points-to,
# redundancy and dominator passes walk every store of a long block of statements,
# half of its time there (measured: 1.2 s -> 0.6 s for 1,500 slots of mixed ops,
# same run time; loops keep them: without them they ran 20% slower).  None of
# them changes what a floating-point operation computes.
LINE_FLAGS = ["-fno-tree-dse", "-fno-tree-pta", "-fno-tree-fre",
              "-fno-tree-dominator-opts"]

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


def _rows(body):
    """The X(...) rows of an op-table block, each as its list of top-level fields
    (a field may hold commas inside parentheses: fmax(a, b))."""
    rows = []
    i = body.find("X(")
    while i >= 0:
        depth, j, fields, start = 1, i + 2, [], i + 2
        while depth:
            ch = body[j]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            if (ch == "," and depth == 1) or depth == 0:
                fields.append(body[start:j].strip())
                start = j + 1
            j += 1
        rows.append(fields)
        i = body.find("X(", j)
    return rows


def _op_forms():
    """op code -> (kind, C name of its row, unit_a, unit_b): kind 'u' unary, 'b'
    binary, '1' N_C1, '0' N_C0 (None for leaves); unit_a / unit_b say that the
    partial the reverse sweep multiplies into the adjoint of argument a / b is the
    literal 1.0 in the table (then g is added as it is: 1.0 * g is g, bit for bit).
    Parsed from the table's rows in their order (the order that numbers the op
    codes) and checked against OP_INFO's names."""
    text = _headers()["fastad_ops.h"]
    forms = {}
    code = 4                              # after VAR, PARAM, CONST, BLOCK
    for block, step in (("FAD_UNARY_OPS", 1), ("FAD_BINARY_OPS", 3)):
        body = text.split("#define %s(X)" % block, 1)[1].split("\n\n", 1)[0]
        for row in _rows(body):
            name, py = row[0], row[1].strip('"')
            if step == 1:
                forms[code] = ("u", name, py, row[3] == "1.0", False)
            else:
                da, db = row[3] == "1.0", row[4] == "1.0"
                forms[code] = ("b", name, py, da, db)
                forms[code + 1] = ("1", name, py, da, False)
                forms[code + 2] = ("0", name, py, db, False)   # da[i] holds d/db
            code += step
    names = {c: n for c, n, _arity, _dom in OP_INFO}
    for c, form in forms.items():
        if c in names and names[c] != form[2]:
            raise CompileError("tf.compile: the op table headers do not match this "
                               "build of fastad (op %d is %r, not %r)"
                               % (c, form[2], names[c]))
    return {c: (k, n, ua, ub) for c, (k, n, _py, ua, ub) in forms.items()}


def _compiler():
    cc = os.environ.get("CC", "").strip()
    return shlex.split(cc) if cc else ["cc"]


_is_gcc: dict = {}     # compiler command -> whether it is GCC


def _line_flags(cc):
    """LINE_FLAGS when `cc` is GCC (other compilers may not know them), else []."""
    key = tuple(cc)
    if key not in _is_gcc:
        try:
            proc = subprocess.run(cc + ["--version"], capture_output=True, text=True)
            text = proc.stdout + proc.stderr
            _is_gcc[key] = ("Free Software Foundation" in text and "clang" not in text)
        except OSError:
            _is_gcc[key] = False           # compiling will say what is missing
    return LINE_FLAGS if _is_gcc[key] else []


def cache_dir():
    """Where compiled traces are kept: $XDG_CACHE_HOME/fastad or ~/.cache/fastad."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return os.path.join(base, "fastad")


def _key(op, a, b, first, out, cc):
    h = hashlib.sha256()
    h.update(b"fastad-compiled-trace %d %d\0" % (GEN_VERSION, REROLL))
    for name, text in sorted(_headers().items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    h.update(_PRELUDE.encode() + b"\0")
    # LINE_FLAGS as declared: whether they apply follows from cc, and asking cc
    # here would make a cached library unusable without a compiler
    h.update(("\0".join(cc + FLAGS + LINE_FLAGS)).encode() + b"\0")
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
        k, n = form[0], form[1]
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


def _term(part, i, unit):
    """The reverse sweep's contribution part[i] * g, or g when the table's partial
    is the literal 1.0 (1.0 * g is g to the last bit, NaN payloads included)."""
    return "g" if unit else "%s[%s]*g" % (part, i)


def _reverse_lines(op, a, b, lo, hi, forms):
    """reverse_scalar's body for slots hi-1 down to lo (leaves add only into the
    sentinel adj[0], which nobody reads: left out)."""
    out = []
    for i in range(hi - 1, lo - 1, -1):
        form = forms.get(int(op[i]))
        if form is None:
            continue
        ai, bi = int(a[i]), int(b[i])
        line = "g=adj[%d];if(g!=0.0){adj[%d]+=%s;" % (i, ai, _term("da", i, form[2]))
        if bi != 0:
            line += "adj[%d]+=%s;" % (bi, _term("db", i, form[3]))
        out.append(line + "}")
    return out


def _function(name, params, decl, lines):
    # hidden: called from main.c, not exported from the library
    return ("__attribute__((visibility(\"hidden\"))) void %s(%s){%s\n%s\n}\n"
            % (name, params, decl, "\n".join(lines)))


_FWD_PARAMS = "double *restrict v, double *restrict da, double *restrict db"
_REV_PARAMS = "const double *restrict da, const double *restrict db, double *restrict adj"


def _chunk_slots(slots, cores):
    """Slots per unit for a tape of `slots` computed slots on `cores` cores."""
    if slots <= MIN_SPLIT_SLOTS or cores <= 1:
        return CHUNK_SLOTS
    per_core = -(-slots // cores)
    return min(CHUNK_SLOTS, max(MIN_SPLIT_SLOTS // 2, per_core))


class _Loop:
    """One run (B, K, R) of fastad._reroll as a forward and a reverse C loop.

    Inside repetition r (o = B + K*r is its first slot) an argument is a slot of
    the same repetition (stride K, offset before the reader within the block), a
    slot of the previous repetition (stride K, offset -K .. -1), another slot at
    stride K (o + offset), a fixed slot (stride 0), or c + s*r.

    Forward: values of the same and of the previous repetition come from locals
    (t_j, and p_j carried from one repetition to the next), not reloaded from the
    stores just made; every value and partial is still stored, since tangent and
    Hessian sweeps read them after a replay.

    Reverse: adjoints of slots whose readers (within the reverse sweep) are all in
    their own repetition accumulate in locals a_j; those read only from their own
    and the next repetition are carried in a local c_j from repetition to
    repetition, the additions of the next one gathered in n_j (which starts from
    the slot's memory: 0.0, the cleared adj array, except below the run's first
    repetition).  Every adjoint receives the same additions in the same order as
    in reverse_scalar.  One liberty: a_j's first addition is an assignment, not
    0.0 + x -- it differs only for x = -0.0, giving -0.0 for +0.0, and a_j is only
    ever tested against 0.0 and, if nonzero, multiplied, so no result changes."""

    def __init__(self, op, a, b, B, K, R, forms, refs, out):
        self.B, self.K, self.R = B, K, R
        self.ops = op[B:B + K].tolist()
        a0 = a[B:B + K].astype(np.int64)
        b0 = b[B:B + K].astype(np.int64)
        sa = (a[B + K:B + 2 * K].astype(np.int64) - a0).tolist()
        sb = (b[B + K:B + 2 * K].astype(np.int64) - b0).tolist()
        a0, b0 = a0.tolist(), b0.tolist()
        self.forms = [forms.get(o) for o in self.ops]
        # per block slot: [(c, s, partial array, partial is 1.0)], a then b (b == 0
        # is the sentinel, skipped in reverse; fastad._reroll keeps it 0 in every
        # repetition or in none)
        self.args = []
        for j, form in enumerate(self.forms):
            if form is None:
                self.args.append([])
                continue
            args = [(a0[j], sa[j], "da", form[2])]
            if b0[j] != 0:
                args.append((b0[j], sb[j], "db", form[3]))
            self.args.append(args)
        self.bval = (b0, sb)
        # reverse: the repetitions wholly at or below the output slot
        self.R_rev = R_rev = max(0, min(R, (out + 1 - B) // K))
        self.acc, self.carry = set(), set()
        if R_rev:
            inner, cross = [0] * K, [0] * K
            for j in range(K):
                for c, s, _p, _u in self.args[j]:
                    kind, t = self._where(c, s, j)
                    if kind == "t":
                        inner[t] += 1
                    elif kind == "p":
                        cross[t] += 1
            span = refs[B:B + K * R_rev].reshape(R_rev, K)
            j_out = (out - B) % K if B <= out < B + K * R_rev else -1
            top = B + K * (R_rev - 1)
            for j in range(K):
                if self.forms[j] is None or j == j_out:
                    continue
                if inner[j] and not cross[j] and (span[:, j] == inner[j]).all():
                    self.acc.add(j)
                # a carried adjoint is read from memory once (the top repetition's)
                # and written once (the slot before the run): no other argument of
                # the loop may add into either cell meanwhile
                elif (cross[j] and (span[:-1, j] == inner[j] + cross[j]).all()
                      and not self._touched(B - K + j) and not self._touched(top + j)):
                    self.carry.add(j)

    def _touched(self, cell):
        """Whether an argument kept in memory (neither of this repetition nor of
        the previous one) is `cell` in some repetition of the reverse loop."""
        for j in range(self.K):
            for c, s, _p, _u in self.args[j]:
                if self._where(c, s, j)[0] is not None:
                    continue
                if s == 0 and c == cell:
                    return True
                if s != 0 and (cell - c) % s == 0 and 0 <= (cell - c) // s < self.R_rev:
                    return True
        return False

    def _where(self, c, s, j):
        """('t', q): slot q of the same repetition (computed, before j); ('p', q):
        slot q of the previous repetition (computed); (None, None) otherwise."""
        if s == self.K:
            q = c - self.B
            if 0 <= q < j and self.forms[q] is not None:
                return "t", q
            if -self.K <= q < 0 and self.forms[q + self.K] is not None:
                return "p", q + self.K
        return None, None

    def _index(self, c, s):
        if s == self.K:
            return "o%+d" % (c - self.B) if c != self.B else "o"
        if s == 0:
            return "%d" % c
        return "%d%+d*r" % (c, s)

    def forward(self, name):
        body, temps, carried = [], [], set()
        b0, sb = self.bval

        def arg(c, s, j):
            kind, q = self._where(c, s, j)
            if kind == "t":
                return "t%d" % q
            if kind == "p":
                carried.add(q)
                return "p%d" % q
            return "v[%s]" % self._index(c, s)

        for j, form in enumerate(self.forms):
            if form is None:
                continue
            k, n = form[0], form[1]
            fixed = self.ops[j] in _FIXED
            x = arg(self.args[j][0][0], self.args[j][0][1], j)
            me = "o+%d" % j if j else "o"
            if k == "u":
                call = ("vu_%s(%s)" % (n, x) if fixed else
                        "fu_%s(%s,&da[%s])" % (n, x, me))
            elif k == "b":
                y = arg(b0[j], sb[j], j)
                call = ("vb_%s(%s,%s)" % (n, x, y) if fixed else
                        "fb_%s(%s,%s,&da[%s],&db[%s])" % (n, x, y, me, me))
            elif k == "1":
                call = ("vb_%s(%s,db[%s])" % (n, x, me) if fixed else
                        "f1_%s(%s,db[%s],&da[%s])" % (n, x, me, me))
            else:
                call = ("vb_%s(db[%s],%s)" % (n, me, x) if fixed else
                        "f0_%s(db[%s],%s,&da[%s])" % (n, me, x, me))
            temps.append("t%d" % j)
            body.append("t%d=%s;v[%s]=t%d;" % (j, call, me, j))
        pre = "".join("double p%d=v[%d];" % (q, self.B - self.K + q)
                      for q in sorted(carried))
        decl = "double %s;" % ",".join(temps) if temps else ""
        post = "".join("p%d=t%d;" % (q, q) for q in sorted(carried))
        return _function(name, _FWD_PARAMS, pre, [
            "for(long r=0;r<%d;r++){const long o=%d+%d*r;%s"
            % (self.R, self.B, self.K, decl)]
            + body + [post + "}"])

    def reverse(self, name):
        if not self.R_rev:
            return None
        B, K = self.B, self.K
        body, assigned = [], set()
        for j in range(K - 1, -1, -1):
            if self.forms[j] is None:
                continue
            me = "o+%d" % j if j else "o"
            g = "a%d" % j if j in self.acc or j in self.carry else "adj[%s]" % me
            adds = []
            for c, s, part, unit in self.args[j]:
                kind, q = self._where(c, s, j)
                term = _term(part, me, unit)
                if kind == "t" and q in self.acc and q not in assigned:
                    assigned.add(q)
                    adds.append("a%d=%s;" % (q, term))
                elif kind == "t" and (q in self.acc or q in self.carry):
                    adds.append("a%d+=%s;" % (q, term))
                elif kind == "p" and q in self.carry:
                    adds.append("n%d+=%s;" % (q, term))
                else:
                    adds.append("adj[%s]+=%s;" % (self._index(c, s), term))
            body.append("g=%s;if(g!=0.0){%s}" % (g, "".join(adds)))
        top = B + K * (self.R_rev - 1)
        cs = sorted(self.carry)
        pre = "".join("double c%d=adj[%d];" % (j, top + j) for j in cs)
        decl = "".join(",a%d=0.0" % j for j in sorted(self.acc))
        decl += "".join(",a%d=c%d,n%d=adj[o%+d]" % (j, j, j, j - K) for j in cs)
        post = "".join("c%d=n%d;" % (j, j) for j in cs)
        after = "".join("adj[%d]=c%d;" % (B - K + j, j) for j in cs)
        return _function(name, _REV_PARAMS, pre, [
            "for(long r=%d;r>=0;r--){const long o=%d+%d*r;double g%s;"
            % (self.R_rev - 1, B, K, decl)] + body + [post + "}", after])


def _pieces(op, a, b, first, n, out, forms, runs):
    """The tape's slots first .. n-1 as pieces in slot order: straight-line
    stretches of FUNC_SLOTS slots and the loops of `runs`, each (cost in slots, k,
    C of fad_f<k> or None, C of fad_r<k> or None, whether it is a loop).  The
    reverse sweep covers slots up to `out` only."""
    refs = np.zeros(n, dtype=np.int64)
    if out >= first:                       # readers within the reverse sweep
        rng = slice(first, out + 1)
        refs += np.bincount(a[rng], minlength=n)[:n]
        bb = b[rng]
        refs += np.bincount(bb[bb != 0], minlength=n)[:n]
    pieces = []
    pos = first

    def lines(lo, hi):
        for s in range(lo, hi, FUNC_SLOTS):
            e = min(hi, s + FUNC_SLOTS)
            k = len(pieces)
            fwd = _function("fad_f%d" % k, _FWD_PARAMS, "",
                            _forward_lines(op, a, b, s, e, forms))
            rhi = min(e, out + 1)
            rev = (_function("fad_r%d" % k, _REV_PARAMS, "double g;",
                             _reverse_lines(op, a, b, s, rhi, forms)) if rhi > s else None)
            pieces.append((e - s, k, fwd, rev, False))

    for B, K, R in runs:
        lines(pos, B)
        loop = _Loop(op, a, b, B, K, R, forms, refs, out)
        k = len(pieces)
        pieces.append((K, k, loop.forward("fad_f%d" % k), loop.reverse("fad_r%d" % k),
                       True))
        # the reverse sweep of a repetition holding the output slot, below it
        lo_t, hi_t = B + K * loop.R_rev, min(B + K * R, out + 1)
        if hi_t > lo_t:
            k = len(pieces)
            pieces.append((hi_t - lo_t, k, None,
                           _function("fad_r%d" % k, _REV_PARAMS, "double g;",
                                     _reverse_lines(op, a, b, lo_t, hi_t, forms)), False))
        pos = B + K * R
    lines(pos, n)
    return pieces


def _units(pieces, chunk):
    """Pieces grouped into units of about `chunk` slots, in order."""
    units, cur, cost = [], [], 0
    for p in pieces:
        if cur and cost + p[0] > chunk:
            units.append(cur)
            cur, cost = [], 0
        cur.append(p)
        cost += p[0]
    if cur:
        units.append(cur)
    return units


def _sources(op, a, b, first, out, key, forms):
    """{file name: C source}: units of straight-line pieces (c<i>.c) and of loops
    (l<i>.c, compiled with other flags), and main.c calling every piece, forward
    in slot order and reverse in the opposite order."""
    n = op.shape[0]
    runs = find_runs(op, a, b, first, n) if REROLL else []
    # a run of leaves only (constants side by side) has nothing to loop over
    runs = [r for r in runs if any(forms.get(o) for o in op[r[0]:r[0] + r[1]].tolist())]
    pieces = _pieces(op, a, b, first, n, out, forms, runs)
    total = sum(p[0] for p in pieces)
    chunk = _chunk_slots(total, os.cpu_count() or 1)
    files = {}
    for prefix, is_loop in (("c", False), ("l", True)):
        for c, unit in enumerate(_units([p for p in pieces if p[4] == is_loop], chunk)):
            files["%s%d.c" % (prefix, c)] = _PRELUDE + "".join(
                (p[2] or "") + (p[3] or "") for p in unit)
    protos, fcalls, rcalls = [], [], []
    for _cost, k, fwd, rev, _loop in pieces:
        if fwd:
            protos.append("void fad_f%d(%s);" % (k, _FWD_PARAMS))
            fcalls.append("fad_f%d(v,da,db);" % k)
        if rev:
            protos.append("void fad_r%d(%s);" % (k, _REV_PARAMS))
            rcalls.append("fad_r%d(da,db,adj);" % k)
    files["main.c"] = (
        "\n".join(protos) + '\nconst char fad_key[] = "%s";\n' % key
        + "void fad_forward(%s){\n%s\n}\n" % (_FWD_PARAMS, "\n".join(fcalls))
        + "void fad_reverse(%s){\n%s\n}\n" % (_REV_PARAMS, "\n".join(reversed(rcalls))))
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

        line_flags = _line_flags(cc)

        def one(name):
            flags = FLAGS + (line_flags if name.startswith("c") else [])
            _run(cc + flags + ["-I.", "-c", name, "-o", name[:-2] + ".o"],
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
