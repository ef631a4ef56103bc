"""Trace suite: fd.trace replay (value + gradient in C) against its peers.

Workloads (the same Python code as bench_core): the extended Rosenbrock loop at
n = 100, 1000 and 100,000, and the sin/exp/log1p chain.  Per call:

* fastad `tf.grad(x)` of `tf = fd.trace(f, x0)`: replay + guard check + reverse
  sweep, no Python per operation;
* fastad eager `fd.value_and_grad(f)(x)` (records the tape every call);
* `jax.jit(jax.grad(f))` on the same Python loop (compile time reported apart;
  XLA compiles an unrolled 1000-step loop very slowly, so JAX runs at n = 100 and
  the chain is shortened the same way);
* a CasADi `Function` of the gradient built from SX symbols with the same loop,
  called on a CasADi DM (its VM alone) and from/to NumPy arrays (converting a
  NumPy array to a DM costs more than evaluating the gradient at n = 1000).

Every peer's gradient is checked against fastad's before it is timed.  "ops" is
len(tf): the recorded slots, leaves included.  "overhead" is the per-call cost of
tf.grad on a 2-variable Rosenbrock (a handful of ops).  The batch rows give
tf.grad_batch throughput on 1 and 2 threads; the tracing rows compare
fd.trace(f, x0) with one eager value_and_grad (both record f once).
"""
import time

import numpy as np

import fastad as fd
from _timing import best_of, fmt_ratio, fmt_time, installed_version, markdown_table
from bench_core import make_chain, rosenbrock


def _check(name, g, ref):
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    if not np.allclose(g, ref, rtol=1e-9, atol=1e-9):
        raise AssertionError("%s: gradient disagrees with fastad (max diff %.3g)"
                             % (name, np.max(np.abs(g - ref))))


def _reps(seconds_per_call, budget):
    return int(max(3, min(2000, budget / max(seconds_per_call, 1e-7))))


def _time_call(fn, budget):
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    reps = _reps(once, budget)
    if once * reps < 0.05:              # very fast calls: time loops of them
        inner = max(1, int(0.002 / max(once, 1e-8)))

        def loop():
            for _ in range(inner):
                fn()
        best, med = best_of(loop, max(5, reps // inner))
        return best / inner, med / inner
    return best_of(fn, reps)


def jax_peer(f, x):
    """(compile seconds, per-call callable, gradient) or None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except Exception:
        return None
    jax.config.update("jax_enable_x64", True)

    class M:
        sin, exp, log1p = jnp.sin, jnp.exp, jnp.log1p

    gf = jax.jit(jax.grad(lambda v: f(v, M)))
    xj = jnp.asarray(x)
    t0 = time.perf_counter()
    g = np.asarray(gf(xj).block_until_ready())
    compile_s = time.perf_counter() - t0
    return compile_s, (lambda: gf(xj).block_until_ready()), g


def casadi_peer(f, x):
    """(build seconds, per-call callable, gradient) or None without casadi."""
    try:
        import casadi as ca
    except Exception:
        return None

    class M:
        sin, exp = ca.sin, ca.exp

        @staticmethod
        def log1p(v):
            return ca.log1p(v) if hasattr(ca, "log1p") else ca.log(1 + v)

    t0 = time.perf_counter()
    xs = ca.SX.sym("x", len(x))
    y = f([xs[i] for i in range(len(x))], M)
    fun = ca.Function("g", [xs], [ca.gradient(y, xs)])
    build = time.perf_counter() - t0
    xd = ca.DM(x)
    g = np.asarray(fun(xd)).reshape(-1)
    # two ways to call it: on CasADi's own DM (the VM alone), and from a NumPy
    # array to a NumPy array, as fastad's tf.grad(x) is called
    return build, (lambda: fun(xd)), (lambda: np.asarray(fun(x))), g


def _per_op(seconds, ops):
    return "%.1f" % (seconds / ops * 1e9)


def run(quick=False):
    budget = 0.05 if quick else 1.0
    rows, notes = [], []
    rng = np.random.default_rng(0)
    sizes = [100, 1000] if quick else [100, 1000, 100_000]
    chain_steps = 200 if quick else 2000
    chain_jax_steps = 20 if quick else 200
    workloads = [("Rosenbrock n=%d" % n, rosenbrock, rng.uniform(-1, 1, n), n)
                 for n in sizes]
    workloads.append(("chain, %d steps" % chain_steps, make_chain(chain_steps),
                      np.array([0.3, 1e-3]), None))

    for name, f, x, n in workloads:
        fx = lambda v: f(v, fd)   # noqa: E731
        tf = fd.trace(fx, x)
        ops = len(tf)
        ref = np.asarray(fd.grad(fx)(x)).reshape(-1)
        _check("tf.grad", tf.grad(x), ref)
        if not np.array_equal(tf.grad(x), fd.grad(fx)(x)):
            raise AssertionError("replay is not bit-exact with fd.grad")
        t_rep, med = _time_call(lambda: tf.grad(x), budget)
        rows.append([name, "fastad tf.grad (replay)", ops, fmt_time(t_rep),
                     _per_op(t_rep, ops), "-", "1.0x"])
        t_eag, _ = _time_call(lambda: fd.value_and_grad(fx)(x), budget)
        rows.append([name, "fastad eager value_and_grad", ops, fmt_time(t_eag),
                     _per_op(t_eag, ops), "-", fmt_ratio(t_eag / t_rep)])
        # JAX: only where XLA compiles in reasonable time
        jax_ok = (n is not None and n <= 100) or (n is None)
        if jax_ok:
            fj = f if n is not None else make_chain(chain_jax_steps)
            xj = x
            peer = jax_peer(fj, xj)
            if peer is None:
                notes.append("jax not installed: skipped")
            else:
                comp, call, g = peer
                if n is None:
                    tf_j = fd.trace(lambda v: fj(v, fd), xj)
                    _check("jax", g, np.asarray(tf_j.grad(xj)).reshape(-1))
                    t_j, _ = _time_call(call, budget)
                    t_f, _ = _time_call(lambda: tf_j.grad(xj), budget)
                    rows.append(["chain, %d steps" % chain_jax_steps,
                                 "fastad tf.grad (replay)", len(tf_j), fmt_time(t_f),
                                 _per_op(t_f, len(tf_j)), "-", "1.0x"])
                    rows.append(["chain, %d steps" % chain_jax_steps,
                                 "jax.jit(jax.grad) %s" % installed_version("jax"),
                                 len(tf_j), fmt_time(t_j), _per_op(t_j, len(tf_j)),
                                 fmt_time(comp), fmt_ratio(t_j / t_f)])
                else:
                    _check("jax", g, ref)
                    t_j, _ = _time_call(call, budget)
                    rows.append([name, "jax.jit(jax.grad) %s" % installed_version("jax"),
                                 ops, fmt_time(t_j), _per_op(t_j, ops), fmt_time(comp),
                                 fmt_ratio(t_j / t_rep)])
        # CasADi: SX graph built by the same loop (n <= 1000: building 10^5 SX
        # nodes from Python takes minutes)
        if n is None or n <= 1000:
            peer = casadi_peer(f, x)
            if peer is None:
                notes.append("casadi not installed: skipped")
            else:
                build, call_dm, call_np, g = peer
                _check("casadi", g, ref)
                for label, call in (("DM in/out", call_dm), ("NumPy in/out", call_np)):
                    t_c, _ = _time_call(call, budget)
                    rows.append([name, "CasADi %s SX Function, %s"
                                 % (installed_version("casadi"), label),
                                 ops, fmt_time(t_c), _per_op(t_c, ops), fmt_time(build),
                                 fmt_ratio(t_c / t_rep)])

    # per-call overhead: a function of a handful of ops
    x2 = np.array([0.3, 0.4])
    tf2 = fd.trace(lambda v: rosenbrock(v, fd), x2)
    t_small, _ = _time_call(lambda: tf2.grad(x2), budget)
    table = markdown_table(
        ["workload", "engine", "ops", "per call", "ns/op", "compile/build", "vs replay"],
        rows)

    # batches: 1 vs 2 threads
    n_b = 1000
    xb = rng.uniform(-1, 1, (64 if quick else 512, n_b))
    tfb = fd.trace(lambda v: rosenbrock(v, fd), xb[0])
    G1 = tfb.grad_batch(xb[:4], threads=1)
    G2 = tfb.grad_batch(xb[:4], threads=2)
    if not np.array_equal(G1, G2):
        raise AssertionError("grad_batch differs between 1 and 2 threads")
    brow = []
    for th in (1, 2):
        tb, _ = best_of(lambda: tfb.grad_batch(xb, threads=th), 3 if quick else 7)
        brow.append(tb)
    batch_table = markdown_table(
        ["grad_batch, Rosenbrock n=%d, %d rows" % (n_b, xb.shape[0]), "time",
         "rows/s", "speed-up"],
        [["1 thread", fmt_time(brow[0]), "%.0f" % (xb.shape[0] / brow[0]), "1.0x"],
         ["2 threads", fmt_time(brow[1]), "%.0f" % (xb.shape[0] / brow[1]),
          "%.2fx" % (brow[0] / brow[1])]])

    # tracing vs one eager value_and_grad (both run f once on a tape)
    trows = []
    for n in ([1000] if quick else [1000, 100_000]):
        x = rng.uniform(-1, 1, n)
        fx = lambda v: rosenbrock(v, fd)   # noqa: E731
        reps = 3 if (quick or n > 10_000) else 15
        t_e, _ = best_of(lambda: fd.value_and_grad(fx)(x), reps)
        t_t, _ = best_of(lambda: fd.trace(fx, x), reps)
        trows.append(["Rosenbrock n=%d" % n, fmt_time(t_t), fmt_time(t_e),
                      "%.2fx" % (t_t / t_e)])
    trace_table = markdown_table(
        ["tracing", "fd.trace", "one eager value_and_grad", "ratio"], trows)

    out = ["### Trace once, evaluate many (bench/bench_trace.py)", "",
           "Per call: value and gradient at a new x; best of repeated calls (the "
           "median is noisier on a shared machine).", "", table, "",
           "Per-call overhead of tf.grad on a 2-variable Rosenbrock (%d ops): %s."
           % (len(tf2), fmt_time(t_small)), "", batch_table, "", trace_table, ""]
    out.append("JAX runs at n = 100 and on a %d-step chain: XLA compiles the unrolled "
               "Python loop slowly (compile times in the table). CasADi is built "
               "for n <= 1000 only (building 10^5 SX nodes from Python is slow)."
               % chain_jax_steps)
    for note in sorted(set(notes)):
        out.append("- " + note)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import sys
    print(run(quick="--quick" in sys.argv))
