"""Sparse Jacobians and Hessians (issue 14's budget), side by side with CasADi.

    python bench/bench_sparse.py            # full sizes; writes bench/results/sparse.md
    python bench/bench_sparse.py --quick    # a smoke run (numbers meaningless)

Workloads:
- tridiagonal residual r_i = x_{i-1} - 2 x_i + x_{i+1} + 0.01 exp(x_i), n = 10^4:
  tf.sparse_jacobian per call against one gradient of sum(r) (tf.grad), against
  CasADi's sparse `jacobian` Function (NumPy in, scipy.sparse out) and, for scale,
  dense jax.jit(jax.jacfwd) (at n = 2000: the dense 10^4 x 10^4 is 800 MB);
- 2-D Poisson residual on 100 x 100 (5 nonzeros per row) with a u^3 term: colors
  and time per call against CasADi;
- Broyden banded objective sum f_i^2, n = 10^4: the Hessian's colors and time
  per call (tf.sparse_hessian) against CasADi's `hessian`;
- the IPOPT example (examples/ipopt_optimal_control.py): iterations and wall time
  with fastad's exact sparse derivatives, against IPOPT's own limited-memory
  (quasi-Newton) Hessian with the same exact Jacobian.

Timings: calls of the contenders interleaved, `reps` rounds, median and spread
(min..max) of each; the machine is shared, so the load average is printed.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import fastad as fd  # noqa: E402
from _timing import fmt_time, machine_line  # noqa: E402


def interleaved(fns, reps):
    """{name: sorted seconds} of fns (name -> callable), called in turn."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: sorted(v) for k, v in times.items()}


def med(ts):
    return ts[len(ts) // 2]


def spread(ts):
    return "%s (%s..%s)" % (fmt_time(med(ts)), fmt_time(ts[0]), fmt_time(ts[-1]))


# ----------------------------------------------------------------------------------
# The workloads, in fastad and in CasADi

def tridiagonal(x):
    xp = fd.concatenate([np.zeros(1), x, np.zeros(1)])
    return xp[:-2] - 2.0 * x + xp[2:] + 0.01 * fd.exp(x)


def poisson(x, k):
    u = fd.reshape(x, (k, k))
    pr = fd.concatenate([np.zeros((1, k)), u, np.zeros((1, k))], axis=0)
    pc = fd.concatenate([np.zeros((k, 1)), u, np.zeros((k, 1))], axis=1)
    r = 4.0 * u - pr[:-2] - pr[2:] - pc[:, :-2] - pc[:, 2:] + u ** 3
    return fd.reshape(r, (-1,))


def broyden(x):
    n = x.size
    r = x * (2.0 + 5.0 * x * x) + 1.0
    q = x * (1.0 + x)
    for d in range(1, 6):
        r = r - fd.concatenate([np.zeros(d), q[:n - d]])
    r = r - fd.concatenate([q[1:], np.zeros(1)])
    return fd.sum(r * r)


def casadi_functions(n, k):
    import casadi as ca
    x = ca.SX.sym("x", n)
    xp = ca.vertcat(0, x, 0)
    tri = xp[0:n] - 2 * x + xp[2:n + 2] + 0.01 * ca.exp(x)
    out = {"tri": ca.Function("J", [x], [ca.jacobian(tri, x)])}
    y = ca.SX.sym("y", k * k)
    U = ca.reshape(y, k, k)      # column-major; the pattern is the same Laplacian
    Z = ca.SX.zeros(1, k)
    pr = ca.vertcat(Z, U, Z)
    pc = ca.horzcat(Z.T, U, Z.T)
    R = 4 * U - pr[0:k, :] - pr[2:k + 2, :] - pc[:, 0:k] - pc[:, 2:k + 2] + U ** 3
    r = ca.reshape(R, k * k, 1)
    out["poisson"] = ca.Function("J", [y], [ca.jacobian(r, y)])
    z = ca.SX.sym("z", n)
    q = z * (1 + z)
    rr = z * (2 + 5 * z * z) + 1
    for d in range(1, 6):
        rr = rr - ca.vertcat(ca.SX.zeros(d), q[0:n - d])
    rr = rr - ca.vertcat(q[1:n], ca.SX.zeros(1))
    H, _ = ca.hessian(ca.sumsqr(rr), z)
    out["broyden"] = ca.Function("H", [z], [H])
    return out


def casadi_call(F):
    return lambda x: F(x).sparse()     # NumPy in, scipy.sparse out


# ----------------------------------------------------------------------------------

def run(quick=False):
    n = 400 if quick else 10_000
    k = 20 if quick else 100
    reps = 3 if quick else 15
    rng = np.random.default_rng(0)
    lines = ["Measured %s." % machine_line(), "",
             "Load average at start: %.1f %.1f %.1f (a shared machine: medians and "
             "spreads of interleaved calls)." % os.getloadavg(), ""]
    try:
        cas = casadi_functions(n, k)
    except ImportError:
        cas = None

    # -- tridiagonal
    x = rng.uniform(0.5, 1.5, n)
    t0 = time.perf_counter()
    tf = fd.trace(tridiagonal, x)
    J, info = tf.sparse_jacobian(x, info=True)
    first = time.perf_counter() - t0
    tg = fd.trace(lambda v: fd.sum(tridiagonal(v)), x)
    fns = {"fastad tf.sparse_jacobian": lambda: tf.sparse_jacobian(x),
           "fastad tf.grad of sum(r)": lambda: tg.grad(x)}
    if cas is not None:
        Fc = casadi_call(cas["tri"])
        assert abs(Fc(x) - J).max() < 1e-12
        fns["CasADi jacobian Function"] = lambda: Fc(x)
    T = interleaved(fns, reps)
    grad = med(T["fastad tf.grad of sum(r)"])
    lines += ["### Tridiagonal residual, n = %d" % n, "",
              "colors %d (%s), nnz %d; trace + pattern + coloring + first call %s"
              % (info.colors, info.mode, info.nnz, fmt_time(first)), "",
              "| | median (min..max) | / one gradient: medians, minima |",
              "|---|---|---|"]
    gmin = T["fastad tf.grad of sum(r)"][0]
    for name, ts in T.items():
        lines.append("| %s | %s | %.1fx, %.1fx |" % (name, spread(ts), med(ts) / grad,
                                                     ts[0] / gmin))
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        nj = min(n, 2000)

        def jtri(v):
            vp = jnp.concatenate([jnp.zeros(1), v, jnp.zeros(1)])
            return vp[:-2] - 2.0 * v + vp[2:] + 0.01 * jnp.exp(v)
        jf = jax.jit(jax.jacfwd(jtri))
        xj = jnp.asarray(x[:nj])
        jf(xj).block_until_ready()
        tfj = fd.trace(tridiagonal, x[:nj])
        Tj = interleaved({"jax": lambda: jf(xj).block_until_ready(),
                          "fastad": lambda: tfj.sparse_jacobian(x[:nj])}, reps)
        lines.append("| (scale) jax.jit(jacfwd) dense, n = %d | %s | fastad sparse at "
                     "that n: %s |" % (nj, spread(Tj["jax"]), spread(Tj["fastad"])))
    except ImportError:
        lines.append("| jax: not installed | | |")
    lines.append("")

    # -- Poisson
    y = rng.uniform(0.5, 1.5, k * k)
    t0 = time.perf_counter()
    tp = fd.trace(lambda v: poisson(v, k), y)
    Jp, ip = tp.sparse_jacobian(y, info=True)
    first = time.perf_counter() - t0
    fns = {"fastad tf.sparse_jacobian": lambda: tp.sparse_jacobian(y)}
    if cas is not None:
        Fp = casadi_call(cas["poisson"])
        fns["CasADi jacobian Function"] = lambda: Fp(y)
    T = interleaved(fns, reps)
    maxrow = int(np.diff(Jp.indptr).max())
    lines += ["### 2-D Poisson (+u^3), %d x %d: Jacobian %d x %d" % (k, k, k * k, k * k),
              "", "colors %d (%s; max nonzeros per row %d, budget <= %d); "
              "first call (trace, pattern, coloring) %s" % (ip.colors, ip.mode, maxrow,
                                                            2 * maxrow, fmt_time(first)),
              "", "| | median (min..max) |", "|---|---|"]
    for name, ts in T.items():
        lines.append("| %s | %s |" % (name, spread(ts)))
    lines.append("")

    # -- Broyden banded Hessian
    z = rng.uniform(-1.0, 1.0, n)
    t0 = time.perf_counter()
    th = fd.trace(broyden, z)
    H, ih = th.sparse_hessian(z, info=True)
    first = time.perf_counter() - t0
    tgb = fd.trace(broyden, z)
    fns = {"fastad tf.sparse_hessian": lambda: th.sparse_hessian(z),
           "fastad tf.grad": lambda: tgb.grad(z)}
    if cas is not None:
        Fh = casadi_call(cas["broyden"])
        assert abs(Fh(z) - H).max() < 1e-8 * abs(H).max()
        fns["CasADi hessian Function"] = lambda: Fh(z)
    T = interleaved(fns, reps)
    maxrow = int(np.diff(H.indptr).max())
    lines += ["### Broyden banded objective, n = %d: Hessian" % n, "",
              "colors %d (star coloring; max nonzeros per row %d, budget <= %d); "
              "first call %s" % (ih.colors, maxrow, 2 * maxrow, fmt_time(first)), "",
              "| | median (min..max) |", "|---|---|"]
    for name, ts in T.items():
        lines.append("| %s | %s |" % (name, spread(ts)))
    lines.append("")

    # -- IPOPT
    try:
        import ipopt_optimal_control as ex
        import cyipopt  # noqa: F401
        Tn = 300 if quick else 3333
        r = ex.solve(Tn)
        lines += ["### IPOPT: Van der Pol optimal control (examples/ipopt_optimal_"
                  "control.py)", "",
                  "| derivatives | n | iterations | wall (setup + solve) | status |",
                  "|---|---|---|---|---|",
                  "| fastad exact sparse Jacobian + Lagrangian Hessian (colors %d, %d) "
                  "| %d | %d | %s | %d |" % (r["jac_colors"], r["hess_colors"], r["n"],
                                             r["iterations"], fmt_time(r["wall"]),
                                             r["status"])]
        rl = ex.solve(Tn, hessian="limited-memory")
        lines.append("| fastad exact sparse Jacobian, IPOPT's limited-memory Hessian | "
                     "%d | %d | %s | %d |" % (rl["n"], rl["iterations"],
                                              fmt_time(rl["wall"]), rl["status"]))
        lines.append("")
        lines.append("objective %.8f (exact Hessian), %.8f (limited-memory)"
                     % (r["objective"], rl["objective"]))
    except ImportError:
        lines.append("IPOPT: cyipopt not installed")
    lines += ["", "Load average at end: %.1f %.1f %.1f." % os.getloadavg(), ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    text = run(args.quick)
    print(text)
    if not args.quick:
        with open(os.path.join(HERE, "results", "sparse.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
