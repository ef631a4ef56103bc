"""Compile suite (issue 16): optimized replay, compiled traces and the eager path.

Workload: the extended Rosenbrock loop of bench_core (scalar Python code).  Rows:

* value + gradient per call, in ns per recorded operation (ops = len() of the
  unoptimized trace, the same count for every row), interleaved round by round:
  fastad replay (optimize=False), optimized replay (the default), the compiled
  trace (tf.compile()), CasADi's SX VM called on a DM, and CasADi's own generated
  C (Function.generate, built with the same compiler and -O1) called on a DM;
* compile time of a 10^4-operation trace (cold cache, then from the disk cache)
  and of CasADi's generated C for the same loop; of a 10^4-operation trace with no
  repeated blocks (straight-line C), and of a 10^6-operation loop;
* the optimizer on a 10^6-operation tape (trace time with and without it);
* eager fd.value_and_grad against evaluating f on plain floats.
"""
import math
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

import fastad as fd
from fastad import _compile
from _timing import best_of, fmt_ratio, fmt_time, markdown_table
from bench_core import rosenbrock


def _ns(seconds, ops):
    return "%.2f" % (seconds / ops * 1e9)


def _casadi(n, x, workdir):
    """(vm call, generated-C call, C build seconds, gradient) or None."""
    try:
        import casadi as ca
    except Exception:
        return None
    xs = ca.SX.sym("x", n)
    y = rosenbrock([xs[i] for i in range(n)], ca)
    fun = ca.Function("rb", [xs], [y, ca.gradient(y, xs)])
    xd = ca.DM(x)
    vm = lambda: fun(xd)                                    # noqa: E731
    cfile = os.path.join(workdir, "rb%d.c" % n)
    so = os.path.join(workdir, "rb%d.so" % n)
    fun.generate("rb%d.c" % n)
    shutil.move("rb%d.c" % n, cfile)
    t0 = time.perf_counter()
    subprocess.check_call(["cc", "-O1", "-fPIC", "-shared", "-ffp-contract=off",
                           cfile, "-o", so, "-lm"])
    build = time.perf_counter() - t0
    ext = ca.external("rb", so)
    gen = lambda: ext(xd)                                   # noqa: E731
    g = np.asarray(fun(xd)[1]).reshape(-1)
    return vm, gen, build, g


def _timed_compile(tf, source):
    """Seconds one tf.compile() takes; checks where its library came from."""
    t0 = time.perf_counter()
    tf.compile()
    took = time.perf_counter() - t0
    assert _compile.last_source == source, (_compile.last_source, source)
    return took


def _mix(ops):
    """f(x) of about 3 * ops operations drawn at random (seeded): no loop to find."""
    rng = np.random.default_rng(1)
    steps = [(int(rng.integers(5)), int(rng.integers(50))) for _ in range(ops)]

    def f(x):
        s = x[0]
        for kind, j in steps:
            y = x[j]
            if kind == 0:
                s = s * y
            elif kind == 1:
                s = fd.sin(s) + y
            elif kind == 2:
                s = s - fd.exp(y * 0.1)
            elif kind == 3:
                s = fd.tanh(s * y)
            else:
                s = s + y * y
        return s
    return f


def _interleaved(fns, rounds, reps):
    """{name: [best seconds per call of each round]} timing every fn in turn."""
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            out[k].append(best_of(fn, reps)[0])
    return out


def run(quick=False):
    rounds, reps = (3, 20) if quick else (7, 200)
    load0 = os.getloadavg()[0]
    rows = []
    notes = []
    work = tempfile.mkdtemp(prefix="fastad-bench-compile-")
    old_cache = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = work          # cold cache: every build is timed
    try:
        rng = np.random.default_rng(0)
        for n in (100, 1000):
            x = rng.uniform(-1, 1, n)
            f = lambda v: rosenbrock(v, fd)                  # noqa: E731
            plain = fd.trace(f, x, optimize=False)
            opt = fd.trace(f, x)
            ops = len(plain)
            ctf = opt.compile()
            ref = plain.grad(x)
            assert np.array_equal(ctf.grad(x), opt.grad(x))
            assert np.allclose(opt.grad(x), ref, rtol=1e-12)
            fns = {"fastad replay (optimize=False)": lambda: plain.value_and_grad(x),
                   "fastad optimized replay": lambda: opt.value_and_grad(x),
                   "fastad compiled": lambda: ctf.value_and_grad(x)}
            cas = _casadi(n, x, work)
            if cas is not None:
                vm, gen, cbuild, cg = cas
                assert np.allclose(cg, ref, rtol=1e-9)
                fns["CasADi SX VM on DM"] = vm
                fns["CasADi generated C on DM"] = gen
            times = _interleaved(fns, rounds, reps)
            base = float(np.median(times["fastad optimized replay"]))
            for k, ts in times.items():
                med = float(np.median(ts))
                rows.append(["Rosenbrock n=%d value+grad" % n, k, ops, _ns(med, ops),
                             "%s..%s" % (_ns(min(ts), ops), _ns(max(ts), ops)),
                             fmt_ratio(med / base)])
            if cas is not None:
                notes.append("CasADi generated C for n=%d built in %s (cc -O1)"
                             % (n, fmt_time(cbuild)))

        # compile time of a 10^4-op trace: cold (a fresh cache each time), then
        # from the disk cache
        x = rng.uniform(-1, 1, 1112)
        tf = fd.trace(lambda v: rosenbrock(v, fd), x)
        colds = []
        for k in range(1 if quick else 5):
            os.environ["XDG_CACHE_HOME"] = os.path.join(work, "cold%d" % k)
            _compile._loaded.clear()
            colds.append(_timed_compile(tf, "built"))
        _compile._loaded.clear()
        warm = _timed_compile(tf, "disk")
        notes.append("tf.compile() of a %d-op trace (the loop above): %s cold (generate "
                     "C + cc + link; median of %d, %s..%s), %s from the disk cache"
                     % (len(tf), fmt_time(float(np.median(colds))), len(colds),
                        fmt_time(min(colds)), fmt_time(max(colds)), fmt_time(warm)))
        cas = _casadi(1112, x, work)
        if cas is not None:
            notes.append("CasADi generated C of the same loop (value + gradient): "
                         "built in %s" % fmt_time(cas[2]))
        # a trace without repeated blocks: every operation is a C statement
        xm = rng.uniform(-1, 1, 50)
        tm = fd.trace(_mix(300 if quick else 6900), xm)
        cold = _timed_compile(tm, "built")
        cm = tm.compile()
        assert np.array_equal(cm.grad(xm), tm.grad(xm))
        times = _interleaved({"replay": lambda: tm.value_and_grad(xm),
                              "compiled": lambda: cm.value_and_grad(xm)}, rounds, reps)
        notes.append("tf.compile() of a %d-op trace without repeated blocks (a seeded "
                     "random mix of sin, exp, tanh, *, +, -): %s cold; value+grad %s ns/op "
                     "compiled vs %s ns/op replayed (medians of round bests)"
                     % (len(tm), fmt_time(cold), _ns(float(np.median(times["compiled"])),
                                                    len(tm)),
                        _ns(float(np.median(times["replay"])), len(tm))))
        # a 10^6-op loop
        xb = rng.uniform(-1, 1, 11_112 if quick else 111_112)
        tb = fd.trace(lambda v: rosenbrock(v, fd), xb)
        cold = _timed_compile(tb, "built")
        cb = tb.compile()
        assert np.array_equal(cb.grad(xb), tb.grad(xb))
        tcall = _interleaved({"replay": lambda: tb.value_and_grad(xb),
                              "compiled": lambda: cb.value_and_grad(xb)}, rounds,
                             max(3, reps // 20))
        notes.append("tf.compile() of a %d-op trace (the loop, n = %d): %s cold; "
                     "value+grad %s ns/op compiled vs %s ns/op replayed"
                     % (len(tb), len(xb), fmt_time(cold),
                        _ns(float(np.median(tcall["compiled"])), len(tb)),
                        _ns(float(np.median(tcall["replay"])), len(tb))))

        # the optimizer on a long tape
        steps = 50_000 if quick else 250_000
        def chain(v):
            for _ in range(steps):
                v = fd.sin(v) * 0.5 + v * 0.25
            return v
        t0 = time.perf_counter()
        t_plain = fd.trace(chain, 0.3, optimize=False)
        a = time.perf_counter() - t0
        t0 = time.perf_counter()
        t_opt = fd.trace(chain, 0.3)
        b = time.perf_counter() - t0
        notes.append("optimizer on a %d-op tape: fd.trace takes %s with it, %s without "
                     "(so about %s optimizing); %d ops kept"
                     % (len(t_plain), fmt_time(b), fmt_time(a), fmt_time(max(b - a, 0.0)),
                        len(t_opt)))

        # eager value_and_grad vs plain floats
        for n in (100, 1000):
            x = rng.uniform(-1, 1, n)
            xl = [float(v) for v in x]
            vg = fd.value_and_grad(lambda v: rosenbrock(v, fd))
            times = _interleaved({"floats": lambda: rosenbrock(xl, math),
                                  "eager": lambda: vg(x)}, rounds, max(5, reps // 10))
            fl, ea = float(np.median(times["floats"])), float(np.median(times["eager"]))
            rows.append(["Rosenbrock n=%d" % n, "eager fd.value_and_grad / plain floats",
                         "", fmt_time(ea), fmt_time(fl) + " (floats)", fmt_ratio(ea / fl)])
    finally:
        if old_cache is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old_cache
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    table = markdown_table(["workload", "engine", "ops", "ns/op (median)",
                            "spread (round bests)", "vs optimized replay"], rows)
    return ("### Optimized and compiled traces, eager path (issue 16)\n\n" + table
            + "\n\n" + "\n".join("- " + s for s in notes)
            + "\n- load average (1 min) at the start and the end of the run: %.1f, %.1f "
            "(2 cores, shared)\n" % (load0, load))
