#!/usr/bin/env python
"""Fuzz fastad's public API with random programs, misuse included.

    python tools/fuzz.py --seconds 180            # fuzz for 3 minutes
    python tools/fuzz.py --seconds 60 --seed 7    # reproducible run
    python tools/fuzz.py --replay 7:1234          # print + rerun one program

Each program is a list of Python statements over the public API (fd.*), drawn by
a seeded random generator: tapes, leaves (scalars, arrays, empty arrays, NaN, inf,
1e308, 5e-324), elementwise math, reductions, indexing, matmul, comparisons,
tape.gradient, fd.grad / value_and_grad / jvp / hessian, fd.trace and replay, and
deliberate misuse: wrong argument types, Vars used after reset(), Vars of two
tapes combined, bad shapes, bad indices, debug_nans.  Every statement runs in a
try block; a program passes when

  * the interpreter survives (workers run in subprocesses: a crash is a finding,
    saved with the program that caused it),
  * every exception is a documented type: TypeError, ValueError, IndexError,
    fd.FastADError subclasses, FloatingPointError inside fd.debug_nans() (and
    OverflowError / ZeroDivisionError from plain Python conversions, as for float),
  * and, for the "smooth" programs (well-conditioned compositions of smooth ops),
    the gradient agrees with central finite differences, forward mode agrees with
    reverse mode, and a trace replays the eager gradient bit for bit.

Findings go to stdout (and --out, JSON lines); the summary reports programs and
operations (statements executed) fuzzed.  Fixed findings live on as tests in
tests/test_fuzz_regressions.py.

Which fastad is fuzzed: this checkout's, when its extensions are built (a
development tree after `python setup.py build_ext --inplace`); otherwise the
installed one (`pip install .`), with the checkout kept off the workers' path --
a fresh clone's unbuilt fastad/ would otherwise shadow it.  The summary names the
package fuzzed; with neither, the script says so and exits with status 2.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------
# Program generation (pure Python: no fastad import needed)

UNARY = ["sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
         "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2",
         "log10", "log1p", "sqrt", "cbrt", "square", "abs", "sign", "floor", "ceil",
         "erf", "erfc", "sigmoid", "relu", "softplus"]
BINARY = ["hypot", "power", "maximum", "minimum", "arctan2"]
OPERATORS = ["+", "-", "*", "/", "**", "//", "%"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
REDUCE = ["sum", "mean", "prod", "logsumexp"]
NUMBERS = ["0.0", "-0.0", "1.0", "-2.5", "3", "True", "1e308", "-1e308", "5e-324",
           "1e-300", "float('nan')", "float('inf')", "-float('inf')", "710.0",
           "-745.0", "np.float64(2.0)", "np.int32(3)", "2**70"]
BAD = ["'a'", "None", "1j", "[1, 'x']", "object()", "{'k': 1}", "b'x'",
       "np.array(['s'])", "np.array([1+2j])", "[[1, 2], [3]]"]
ARRAYS = ["np.arange(3.0)", "np.ones((2, 3))", "np.zeros(0)", "np.zeros((0, 3))",
          "np.array([1.0, float('nan'), -float('inf')])", "np.full(4, 1e308)",
          "np.array([5e-324, -5e-324])", "np.linspace(-3, 3, 6).reshape(2, 3)",
          "np.array(2.0)", "np.ones((2, 1, 3))", "np.arange(6).reshape(3, 2)",
          "np.array([True, False, True])", "np.eye(3)"]
INDICES = ["0", "-1", "1", "5", "-7", "slice(None)", "slice(1, None)", "(0, 0)",
           "(slice(None), 0)", "np.array([True, False, True])", "[0, 0, 1]",
           "Ellipsis", "None", "1.5", "(0, 0, 0, 0)"]


class Gen:
    """Builds one program: a list of statements and what each name holds."""

    def __init__(self, rng):
        self.r = rng
        self.lines = []
        self.n = 0
        self.vals = []      # names of values (numbers, arrays, Vars)
        self.tapes = []

    def new(self):
        self.n += 1
        return "v%d" % self.n

    def emit(self, line):
        self.lines.append(line)

    def pick_val(self):
        r = self.r
        if self.vals and r.random() < 0.85:
            return r.choice(self.vals)
        u = r.random()
        if u < 0.45:
            return r.choice(NUMBERS)
        if u < 0.85:
            return r.choice(ARRAYS)
        return r.choice(BAD)

    def step(self):
        r = self.r
        k = r.randrange(100)
        if k < 10 or not self.tapes:
            t = "t%d" % len(self.tapes)
            self.tapes.append(t)
            self.emit("%s = fd.Tape()" % t)
            return
        t = r.choice(self.tapes)
        if k < 25:
            v = self.new()
            src = r.choice(NUMBERS + ARRAYS + ARRAYS) if r.random() < 0.93 else r.choice(BAD)
            self.emit("with %s:\n    %s = %s.variable(%s)" % (t, v, t, src))
            self.vals.append(v)
        elif k < 40:
            v = self.new()
            self.emit("with %s:\n    %s = fd.%s(%s)" % (t, v, r.choice(UNARY), self.pick_val()))
            self.vals.append(v)
        elif k < 55:
            v = self.new()
            self.emit("with %s:\n    %s = %s %s %s" % (t, v, self.pick_val(),
                                                      r.choice(OPERATORS), self.pick_val()))
            self.vals.append(v)
        elif k < 60:
            v = self.new()
            self.emit("with %s:\n    %s = fd.%s(%s, %s)" % (t, v, r.choice(BINARY),
                                                           self.pick_val(), self.pick_val()))
            self.vals.append(v)
        elif k < 66:
            v = self.new()
            axis = r.choice(["", ", axis=0", ", axis=-1", ", axis=1", ", axis=5"])
            self.emit("%s = fd.%s(%s%s)" % (v, r.choice(REDUCE), self.pick_val(), axis))
            self.vals.append(v)
        elif k < 71:
            v = self.new()
            self.emit("%s = %s[%s]" % (v, self.pick_val(), r.choice(INDICES)))
            self.vals.append(v)
        elif k < 74:
            v = self.new()
            op = r.choice(["fd.matmul(%s, %s)", "fd.dot(%s, %s)", "%s @ %s",
                           "fd.stack([%s, %s])", "fd.concatenate([%s, %s])",
                           "fd.where(%s > 0, %s, 0.0)"])
            self.emit("%s = %s" % (v, op % (self.pick_val(), self.pick_val())))
            self.vals.append(v)
        elif k < 77:
            v = self.new()
            op = r.choice(["fd.reshape(%s, (-1,))", "fd.transpose(%s)", "%s.T",
                           "fd.clip(%s, -1.0, 1.0)", "abs(%s)", "-%s",
                           "fd.reshape(%s, (7, -1))", "fd.array([%s, 1.0])"])
            self.emit("%s = %s" % (v, op % self.pick_val()))
            self.vals.append(v)
        elif k < 80:
            self.emit("_ = %s %s %s" % (self.pick_val(), r.choice(COMPARE), self.pick_val()))
        elif k < 83:
            self.emit("_ = %s(%s)" % (r.choice(["float", "int", "bool", "len", "repr",
                                                "hash", "iter"]), self.pick_val()))
        elif k < 90:
            srcs = "[%s]" % ", ".join(self.pick_val() for _ in range(r.randint(0, 3)))
            self.emit("_ = %s.gradient(%s, %s)" % (t, self.pick_val(), srcs))
        elif k < 92:
            self.emit("%s.reset()" % t)
        elif k < 94:
            self.emit("_ = (%s.wengert(), %s.to_dot(), len(%s), %s.nbytes)" % (t, t, t, t))
        elif k < 96:
            self.emit("with fd.debug_nans():\n    with %s:\n        _ = fd.log(%s)"
                      % (t, self.pick_val()))
        else:
            fn = r.choice(["fd.grad(%s)(%s)", "fd.value_and_grad(%s)(%s)",
                           "fd.hessian(%s)(%s)", "fd.jacobian(%s)(%s)",
                           "fd.derivative(%s)(%s)", "fd.trace(%s, %s)(%s)"])
            body = r.choice(["lambda x: fd.sum(fd.sin(x) * x)", "lambda x: x",
                             "lambda x: fd.log(x)", "lambda x: 'str'",
                             "lambda x: fd.sum(x[0] * x)", "lambda x: None",
                             "lambda x: fd.sum(fd.where(x > 0, x, -x))"])
            arg = self.pick_val() if r.random() < 0.3 else r.choice(NUMBERS + ARRAYS + BAD)
            if fn.count("%s") == 3:
                self.emit("_ = %s" % (fn % (body, arg, arg)))
            else:
                self.emit("_ = %s" % (fn % (body, arg)))


def misuse_program(rng, length):
    g = Gen(rng)
    for _ in range(length):
        g.step()
    return g.lines


# Smooth, well-conditioned building blocks: (template, needs) on a value in about
# [-3, 3]; every result stays in about [-3, 3] too, so compositions stay smooth.
SMOOTH_UNARY = ["fd.sin(%s)", "fd.cos(%s)", "fd.tanh(%s)", "fd.arctan(%s)",
                "fd.sigmoid(%s)", "fd.softplus(%s) - 1.0", "fd.log1p(%s * %s)",
                "fd.sqrt(1.0 + %s * %s) - 1.0", "fd.exp(-%s * %s)", "0.5 * %s",
                "fd.erf(%s)", "fd.arcsinh(%s)", "fd.hypot(%s, 1.0) - 1.0",
                "fd.expm1(0.3 * %s)", "fd.cbrt(2.0 + fd.sin(%s))", "%s ** 2 * 0.1",
                "fd.log(2.0 + fd.cos(%s))"]
SMOOTH_BINARY = ["%s + %s", "%s - %s", "%s * %s * 0.3", "%s / (2.5 + fd.sin(%s))",
                 "fd.hypot(%s, %s + 2.0) - 1.0", "fd.arctan2(%s, 3.0 + fd.cos(%s))"]


def smooth_program(rng, size):
    """(source of f(x) for a 1-D array x of length n, n): a smooth scalar function."""
    n = rng.randint(1, 4)
    terms = ["x[%d]" % i for i in range(n)] + ["fd.sum(x * x) * 0.1", "fd.mean(fd.sin(x))"]
    for _ in range(size):
        if rng.random() < 0.5:
            t = rng.choice(SMOOTH_UNARY)
            a = rng.choice(terms)
            terms.append("(" + t.replace("%s", a) + ")")
        else:
            t = rng.choice(SMOOTH_BINARY)
            a, b = rng.choice(terms), rng.choice(terms)
            first, rest = t.split("%s", 1)
            terms.append("(" + first + a + rest.replace("%s", b) + ")")
        if len(terms[-1]) > 400:
            terms.pop()
    body = "fd.tanh(%s) + %s" % (terms[-1], rng.choice(terms))
    return body, n


# ----------------------------------------------------------------------------------
# Running programs (inside a worker process)

def _allowed():
    import fastad as fd
    return (TypeError, ValueError, IndexError, fd.FastADError, FloatingPointError,
            OverflowError, ZeroDivisionError)


def _touches_fastad(line, env):
    """Does the statement call fd.* or use a value that is a fastad object?"""
    import re
    if "fd." in line:
        return True
    for name in re.findall(r"\b[vt]\d+\b", line):
        if type(env.get(name)).__module__.startswith("fastad"):
            return True
    return False


def run_misuse(lines, allowed):
    """Execute statements one by one; return (statements run, unexpected errors)."""
    import numpy as np
    import fastad as fd
    env = {"fd": fd, "np": np}
    bad = []
    for line in lines:
        try:
            exec(line, env)
        except NameError:
            pass  # a name whose assignment raised earlier: a cascade, not a finding
        except allowed as e:
            if isinstance(e, FloatingPointError) and "debug_nans" not in line:
                bad.append((line, "FloatingPointError outside debug_nans: %s" % e))
        except (AttributeError, KeyError, SyntaxError) as e:
            # plain Python on plain values ('a'.T, {'k': 1}[0], a user lambda
            # indexing a dict) is not fastad's business; on a fastad object it is
            if _touches_fastad(line, env) and "lambda" not in line:
                bad.append((line, "%s: %s\n%s" % (type(e).__name__, e,
                                                  traceback.format_exc(limit=4))))
        except Exception as e:  # noqa: BLE001 - classifying is the point
            bad.append((line, "%s: %s\n%s" % (type(e).__name__, e,
                                              traceback.format_exc(limit=4))))
    return len(lines), bad


def run_smooth(body, n, rng):
    """Check fd.grad against finite differences, jvp and a trace replay."""
    import numpy as np
    import fastad as fd
    f = eval("lambda x: " + body, {"fd": fd, "np": np})
    x = np.array([rng.uniform(-2.0, 2.0) for _ in range(n)])
    problems = []
    g = fd.grad(f)(x)
    # central differences, 4th order, step 1e-4 (functions are O(1) and smooth)
    fd_ = np.empty(n)
    for i in range(n):
        h = 1e-4
        vals = []
        for s in (2, 1, -1, -2):
            xx = x.copy()
            xx[i] += s * h
            vals.append(float(fd.value_and_grad(f)(xx)[0]))
        fd_[i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    if not np.all(np.isfinite(g)):
        problems.append("non-finite gradient %r at %r" % (g, x))
    err = np.max(np.abs(g - fd_) / np.maximum(1.0, np.abs(fd_)))
    if err > 1e-6:
        problems.append("grad %r vs finite differences %r (err %.3g) at %r" % (g, fd_, err, x))
    # forward mode against reverse mode
    if hasattr(fd, "jvp"):
        v = np.array([rng.uniform(-1, 1) for _ in range(n)])
        _, jv = fd.jvp(f, (x,), (v,))
        if abs(float(jv) - float(g @ v)) > 1e-10 * max(1.0, abs(float(g @ v))):
            problems.append("jvp %r != grad . v %r" % (jv, g @ v))
    # trace replay against eager, bit for bit, at a new point
    if hasattr(fd, "trace"):
        tf = fd.trace(f, x)
        x2 = x + 0.25
        try:
            tg = tf.grad(x2)
        except fd.TraceError:
            tg = None  # a guard (x[i] > 0 inside where) may legitimately fail
        if tg is not None and not np.array_equal(tg, fd.grad(f)(x2)):
            problems.append("trace grad %r != eager %r at %r" % (tg, fd.grad(f)(x2), x2))
    return problems


def worker(seed, seconds, progress_path):
    import numpy as np  # noqa: F401  (import cost outside the timed loop)
    import fastad  # noqa: F401
    allowed = _allowed()
    stats = {"programs": 0, "statements": 0, "smooth_programs": 0, "findings": []}
    deadline = time.monotonic() + seconds
    idx = 0
    while time.monotonic() < deadline:
        rng = random.Random("%d:%d" % (seed, idx))
        smooth = rng.random() < 0.25
        if smooth:
            body, n = smooth_program(rng, rng.randint(2, 12))
            program = ["# smooth, n=%d" % n, body]
        else:
            program = misuse_program(rng, rng.randint(5, 40))
        # written before running: if the interpreter dies, the driver finds it here
        with open(progress_path, "w") as fh:
            fh.write("%d:%d\n" % (seed, idx) + "\n".join(program))
        try:
            if smooth:
                problems = run_smooth(body, n, rng)
                stats["smooth_programs"] += 1
                stats["statements"] += body.count("(")
                for p in problems:
                    stats["findings"].append({"id": "%d:%d" % (seed, idx), "kind": "smooth",
                                              "program": program, "problem": p})
            else:
                count, bad = run_misuse(program, allowed)
                stats["statements"] += count
                for line, why in bad:
                    stats["findings"].append({"id": "%d:%d" % (seed, idx), "kind": "exception",
                                              "line": line, "problem": why})
        except Exception as e:  # noqa: BLE001
            stats["findings"].append({"id": "%d:%d" % (seed, idx), "kind": "harness",
                                      "program": program,
                                      "problem": "%s: %s" % (type(e).__name__, e)})
        stats["programs"] += 1
        idx += 1
    print(json.dumps(stats))


# ----------------------------------------------------------------------------------
# Driver

def program_for(pid):
    seed, idx = (int(p) for p in pid.split(":"))
    rng = random.Random("%d:%d" % (seed, idx))
    if rng.random() < 0.25:
        body, n = smooth_program(rng, rng.randint(2, 12))
        return ["# smooth, n=%d" % n, body]
    return misuse_program(rng, rng.randint(5, 40))


def _without_root(path_list):
    """PYTHONPATH entries other than this checkout."""
    root = os.path.realpath(ROOT)
    return [p for p in path_list if p and os.path.realpath(p) != root]


def find_fastad():
    """(env, cwd, fastad's path) under which workers import a built fastad, or
    (None, None, why) when none can be imported.

    Workers run as `python tools/fuzz.py --worker`, so their sys.path is tools/,
    PYTHONPATH and site-packages; the probe runs the same way, from a directory
    outside the checkout (python -c would put the current directory first)."""
    outside = tempfile.gettempdir()
    base = _without_root(os.environ.get("PYTHONPATH", "").split(os.pathsep))
    # the package and its extension must come from the same directory: an editable
    # install's finder would otherwise complete an unbuilt checkout's fastad/ with the
    # installed extension modules, and the checkout would pass for built
    probe = [sys.executable, "-c",
             "import os, fastad, fastad._tape as t\n"
             "d = os.path.dirname\n"
             "assert d(t.__file__) == d(fastad.__file__), 'extensions not built here'\n"
             "print(fastad.__file__)"]
    tries = [("this checkout", [ROOT] + base), ("the installed fastad", base)]
    errors = []
    for what, path in tries:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(path)
        if not path:
            del env["PYTHONPATH"]
        proc = subprocess.run(probe, capture_output=True, text=True, env=env,
                              cwd=outside, timeout=300)
        if proc.returncode == 0:
            return env, outside, proc.stdout.strip().splitlines()[-1]
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        errors.append("%s: %s" % (what, last))
    return None, None, "; ".join(errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="total fuzzing budget")
    ap.add_argument("--chunk", type=float, default=30.0,
                    help="seconds per worker subprocess")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="append findings as JSON lines here")
    ap.add_argument("--replay", default=None, help="print the program SEED:INDEX")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--progress", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.seed, args.seconds, args.progress)
        return 0
    if args.replay:
        print("\n".join(program_for(args.replay)))
        return 0
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    env, cwd, fastad_path = find_fastad()
    if env is None:
        print("fuzz.py: cannot import a built fastad (%s).\nBuild this checkout with "
              "`python setup.py build_ext --inplace`, or install fastad with "
              "`pip install .`, then run again." % fastad_path, file=sys.stderr)
        return 2
    print("fuzzing %s" % os.path.dirname(fastad_path))
    sys.stdout.flush()
    # FloatingPointError must come from debug_nans only, never NumPy's own errstate
    totals = {"programs": 0, "statements": 0, "smooth_programs": 0, "crashes": 0,
              "worker_failures": 0, "findings": 0, "workers": 0}
    findings = []
    start = time.monotonic()
    chunk_seed = seed
    progress = "/tmp/fastad_fuzz_progress_%d.txt" % os.getpid()
    while time.monotonic() - start < args.seconds:
        budget = min(args.chunk, args.seconds - (time.monotonic() - start))
        if budget < 1:
            break
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed",
               str(chunk_seed), "--seconds", str(budget), "--progress", progress]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=budget + 300)
        totals["workers"] += 1
        if proc.returncode != 0:
            # killed by a signal (negative status): the interpreter crashed; a
            # positive status is the worker's own failure (a Python traceback)
            crashed = proc.returncode < 0
            totals["crashes" if crashed else "worker_failures"] += 1
            try:
                with open(progress) as fh:
                    last = fh.read()
            except OSError:
                last = "?"
            findings.append({"kind": "crash" if crashed else "worker-failed",
                             "returncode": proc.returncode,
                             "program": last, "stderr": proc.stderr[-3000:]})
        else:
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            for k in ("programs", "statements", "smooth_programs"):
                totals[k] += stats[k]
            findings.extend(stats["findings"])
        chunk_seed += 1
    totals["findings"] = len(findings)
    totals["seconds"] = round(time.monotonic() - start, 1)
    totals["first_seed"] = seed
    totals["fastad"] = os.path.dirname(fastad_path)
    for f in findings:
        print("FINDING", json.dumps(f)[:3000])
    if args.out:
        with open(args.out, "a") as fh:
            for f in findings:
                fh.write(json.dumps(f) + "\n")
    print("fuzz summary: " + json.dumps(totals))
    try:
        os.unlink(progress)
    except OSError:
        pass
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
