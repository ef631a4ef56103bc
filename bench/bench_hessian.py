"""Second order: dense Hessians and Hessian-vector products, fastad against peers.

Workloads (issue 4):
  - logsumexp(A @ x) + 0.5 * ||x||^2 with a fixed A of shape 80x50 (seeded), n = 50;
  - the Rosenbrock loop (a Python for-loop over x[i]) with n = 50.
Rows: fastad eager (fd.hessian: record + sweeps), fastad traced (tf.hessian: C
replay + sweeps), the sweeps alone on a recorded tape, and jax.hessian (eager and
jit), torch.autograd.functional.hessian, autograd.hessian and CasADi (the hessian of
an SX expression, called as a compiled Function) where installed.  Every peer's
Hessian is checked against fastad's before it is timed.  A second table gives the
cost of one Hessian-vector product relative to one gradient on the same tape.

    python bench/bench_hessian.py [--quick]
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_of, fmt_time, fmt_ratio, installed_version, markdown_table  # noqa

import fastad as fd  # noqa: E402
from fastad import _second  # noqa: E402

N = 50
A = np.random.default_rng(20240).normal(size=(80, N)) / math.sqrt(N)


def lse_fastad(x):
    return fd.logsumexp(fd.matmul(A, x)) + 0.5 * fd.sum(x * x)


def rosen_fastad(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def _x0():
    return np.linspace(-1.2, 1.1, N)


# ---------------------------------------------------------------------------------
# peers: each returns a zero-argument callable computing the Hessian at x (or None)

def peer_jax(workload, x, jit):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    Aj = jnp.asarray(A)
    if workload == "lse":
        def f(v):
            return jax.nn.logsumexp(Aj @ v) + 0.5 * jnp.dot(v, v)
    else:
        def f(v):
            s = 0.0
            for i in range(v.shape[0] - 1):
                s = s + 100.0 * (v[i + 1] - v[i] ** 2) ** 2 + (1.0 - v[i]) ** 2
            return s
    h = jax.hessian(f)
    if jit:
        h = jax.jit(h)
    xj = jnp.asarray(x)
    return lambda: np.asarray(h(xj).block_until_ready())


def peer_torch(workload, x):
    import torch
    At = torch.tensor(A, dtype=torch.float64)
    if workload == "lse":
        def f(v):
            return torch.logsumexp(At @ v, 0) + 0.5 * v.dot(v)
    else:
        def f(v):
            s = 0.0
            for i in range(v.shape[0] - 1):
                s = s + 100.0 * (v[i + 1] - v[i] ** 2) ** 2 + (1.0 - v[i]) ** 2
            return s
    xt = torch.tensor(x, dtype=torch.float64)
    return lambda: torch.autograd.functional.hessian(f, xt).numpy()


def peer_autograd(workload, x):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    if workload == "lse":
        def f(v):
            return logsumexp(anp.dot(A, v)) + 0.5 * anp.dot(v, v)
    else:
        def f(v):
            s = 0.0
            for i in range(v.shape[0] - 1):
                s = s + 100.0 * (v[i + 1] - v[i] ** 2) ** 2 + (1.0 - v[i]) ** 2
            return s
    h = autograd.hessian(f)
    return lambda: np.asarray(h(x))


def peer_casadi(workload, x):
    import casadi as ca
    v = ca.SX.sym("x", N)
    if workload == "lse":
        z = ca.mtimes(ca.DM(A), v)
        m = float(np.max(A @ x))  # a constant shift, as fd.logsumexp uses
        expr = ca.log(ca.sum1(ca.exp(z - m))) + m + 0.5 * ca.dot(v, v)
    else:
        expr = 0
        for i in range(N - 1):
            expr = expr + 100.0 * (v[i + 1] - v[i] ** 2) ** 2 + (1.0 - v[i]) ** 2
    H, _ = ca.hessian(expr, v)
    fn = ca.Function("h", [v], [H])
    return lambda: np.asarray(fn(x).full())


PEERS = [
    ("jax.hessian (eager)", "jax", lambda w, x: peer_jax(w, x, jit=False)),
    ("jax.jit(jax.hessian)", "jax", lambda w, x: peer_jax(w, x, jit=True)),
    ("torch.autograd.functional.hessian", "torch", peer_torch),
    ("autograd.hessian", "autograd", peer_autograd),
    ("CasADi SX hessian, compiled Function", "casadi", peer_casadi),
]


# ---------------------------------------------------------------------------------

def _recorded(f, x):
    """A tape holding one recording of f at x: (tape, input slots, output slot)."""
    tape = fd.Tape()
    with tape:
        xv = tape.variable(x)
        y = f(xv)
    return tape, xv, y, _second.var_slots(xv), int(_second.var_slots(y)[0])


def run(quick=False):
    reps = 3 if quick else 30
    peer_reps = 1 if quick else 10
    rows, cost_rows, notes = [], [], []
    x = _x0()
    for workload, label, f in (("lse", "logsumexp(A @ x) + 0.5 ||x||^2, A 80x50",
                                lse_fastad),
                               ("rosen", "Rosenbrock loop, n = 50", rosen_fastad)):
        H_ref = fd.hessian(f)(x)
        if not np.allclose(H_ref, H_ref.T, rtol=1e-10, atol=1e-10):
            raise AssertionError("fastad Hessian not symmetric on %s" % workload)
        entries = []
        t_eager, _ = best_of(lambda: fd.hessian(f)(x), reps)
        entries.append(("fastad fd.hessian (record + sweeps)", t_eager))
        tf = None
        if hasattr(fd, "trace"):
            tf = fd.trace(f, x)
            H_tr = tf.hessian(x)
            if not np.allclose(H_tr, H_ref, rtol=1e-12, atol=1e-12):
                raise AssertionError("traced Hessian disagrees on %s" % workload)
            t_tr, _ = best_of(lambda: tf.hessian(x), reps)
            entries.append(("fastad tf.hessian (traced: replay + sweeps)", t_tr))
        else:
            notes.append("fd.trace not available in this build: traced row skipped")
        tape, xv, y, ins, out = _recorded(f, x)
        t_sweep, _ = best_of(lambda: _second.hessian_sweep(tape, ins, out), reps)
        entries.append(("fastad sweeps alone (recorded tape)", t_sweep))
        for name, module, make in PEERS:
            if installed_version(module) is None:
                notes.append("%s: not installed, skipped" % module)
                continue
            try:
                h = make(workload, x)
                H = h()
            except Exception as e:  # a peer that cannot run is reported, not hidden
                notes.append("%s on %s failed: %s" % (name, workload, e))
                continue
            if not np.allclose(H, H_ref, rtol=1e-8, atol=1e-8):
                raise AssertionError("%s disagrees with fastad on %s" % (name, workload))
            t, _ = best_of(h, peer_reps)
            entries.append((name, t))
        best_fastad = min(t for n, t in entries if n.startswith("fastad"))
        for name, t in entries:
            rows.append((label, name, fmt_time(t), fmt_ratio(t / best_fastad)))

        # hvp against gradient on the same recorded tape
        v = np.cos(np.arange(N))
        t_grad, _ = best_of(lambda: tape.gradient(y, xv), reps * 10)
        t_hvp, _ = best_of(lambda: _second.hvp_sweep(tape, ins, out, v), reps * 10)
        cost_rows.append((label, len(tape), fmt_time(t_grad), fmt_time(t_hvp),
                          "%.2f" % (t_hvp / t_grad)))
        if tf is not None:
            t_tg, _ = best_of(lambda: tf.grad(x), reps * 10)
            t_th, _ = best_of(lambda: tf.hvp(x, v), reps * 10)
            cost_rows.append((label + " (traced, replay included)", len(tf),
                              fmt_time(t_tg), fmt_time(t_th), "%.2f" % (t_th / t_tg)))
    versions = ", ".join("%s %s" % (m, installed_version(m) or "missing")
                         for m in ("numpy", "jax", "torch", "autograd", "casadi"))
    out = [
        "### Second order: dense Hessian, n = 50",
        "",
        markdown_table(["workload", "code", "time per Hessian", "vs best fastad"], rows),
        "",
        "Best of k calls (time.perf_counter). Eager rows include running the Python "
        "function (recording, or tracing for eager JAX/torch/autograd); the traced "
        "row replays the recorded tape in C; jax.jit and CasADi call compiled code. "
        "Every peer's Hessian is checked against fastad's before timing. %s." % versions,
        "",
        "### Hessian-vector product vs gradient, same tape",
        "",
        markdown_table(["workload", "ops on tape", "gradient", "hvp",
                        "hvp / gradient"], cost_rows),
        "",
        "gradient: tape.gradient on the recorded tape; hvp: one tangent sweep plus "
        "one second-order reverse sweep (fastad._second.hvp_sweep), the Hessian never "
        "formed. Traced rows: tf.grad(x) vs tf.hvp(x, v), each replaying the tape.",
    ]
    if notes:
        out += [""] + ["- " + n for n in sorted(set(notes))]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
