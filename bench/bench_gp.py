"""GP suite: value and gradient of a Gaussian-process negative log marginal
likelihood with respect to its 3 hyperparameters (issue 12's budget).

The function is examples/gp.py's: a squared-exponential kernel with log
lengthscale, log signal variance and log noise variance on 1-D inputs,

    K = s_f^2 exp(-D2 / (2 l^2)) + s_n^2 I,   L = cholesky(K),   z = solve(L, y),
    NLML = z.z / 2 + sum(log diag L) + n/2 log(2 pi),

at n = 200 and n = 1000 points (n = 30 with --quick).  Contenders:

  - fastad: fd.value_and_grad of that code, eager (recorded every call);
  - fastad (solve + slogdet): the same NLML written as solve(K, y) and slogdet(K),
    no budget, shown because it takes other derivative rules (see the note);
  - fastad, custom_vjp triangular rules: no budget, a reference for the profile:
    cholesky and the solve with L as fd.custom_vjp primitives whose rules are
    JAX's (a general product and two triangular solves,
    scipy.linalg.solve_triangular), where the built-in rule is one blocked
    triangular product and one sygst;
  - hand NumPy/SciPy: the baseline; scipy.linalg.cho_factor, K^-1 once by cho_solve
    with the identity, then 1/2 tr((K^-1 - a a^T) dK/dtheta_j) for each j;
  - autograd, jax.jit (float64, jax_enable_x64) and torch (float64, eager): the same
    code as fastad's in their own array modules (cholesky, then a general solve with
    the factor, as written above).

Every contender's value and gradient are checked against the hand-written baseline
before anything is timed; timing is bench_arrays' interleaved rounds (every round
times every contender once, starting from a different one), medians and IQR,
ratios of medians.  Threads as in bench_arrays: BLAS one thread, torch one thread,
XLA one thread (when this module is imported before jax).

    python bench/bench_gp.py [--quick]
    python bench/bench_gp.py --profile [--quick]    # the timing split (see profile)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

# bench_arrays sets the thread environment before it imports NumPy: import it first
import bench_arrays as ba  # noqa: E402

import numpy as np  # noqa: E402

import fastad as fd  # noqa: E402
from _timing import fmt_time, installed_version, markdown_table  # noqa: E402

FASTAD = "fastad"
FASTAD_SLOGDET = "fastad (solve + slogdet)"
FASTAD_TRI = "fastad, custom_vjp triangular rules"
HAND = "hand NumPy/SciPy"
THETA = np.array([0.1, -0.2, np.log(0.1)])      # log l, log s_f^2, log s_n^2
LOG_2PI = np.log(2.0 * np.pi)


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-5.0, 5.0, n))
    y = np.sin(x) + 0.3 * np.cos(2.5 * x) + 0.2 * rng.standard_normal(n)
    return x, y


# ----------------------------------------------------------------------------------
# The NLML, once per array module (xp: numpy on fastad Vars, autograd.numpy,
# jax.numpy, torch), the same operations in the same order

def nlml_cholesky(theta, x, y):
    n = x.shape[0]
    D2 = (x[:, None] - x[None, :]) ** 2
    K = np.exp(theta[1]) * np.exp(-0.5 * D2 / np.exp(2.0 * theta[0])) \
        + np.exp(theta[2]) * np.eye(n)
    L = np.linalg.cholesky(K)
    z = np.linalg.solve(L, y)
    return 0.5 * np.dot(z, z) + np.sum(np.log(np.diagonal(L))) + 0.5 * n * LOG_2PI


def nlml_slogdet(theta, x, y):
    n = x.shape[0]
    D2 = (x[:, None] - x[None, :]) ** 2
    K = np.exp(theta[1]) * np.exp(-0.5 * D2 / np.exp(2.0 * theta[0])) \
        + np.exp(theta[2]) * np.eye(n)
    return 0.5 * np.dot(y, np.linalg.solve(K, y)) + 0.5 * np.linalg.slogdet(K)[1] \
        + 0.5 * n * LOG_2PI



def make_triangular_rules():
    """cholesky and a lower-triangular solve as fd.custom_vjp primitives whose
    rules are JAX's with scipy.linalg.solve_triangular (L^T G, then two
    triangular solves: 4 n^3 flops for the cholesky's cotangent): the rule
    fastad's built-in one replaced.  A reference for the profile, not a budget
    row."""
    from scipy.linalg import solve_triangular

    @fd.custom_vjp
    def cholesky(K):
        return np.linalg.cholesky(K)

    def cholesky_fwd(K):
        L = np.linalg.cholesky(K)
        return L, L

    def cholesky_bwd(L, G):
        P = np.tril(L.T @ G)
        P[np.diag_indices_from(P)] *= 0.5                   # phi(L^T G)
        Y = solve_triangular(L, P, lower=True, trans="T")   # L^-T P
        S = solve_triangular(L, Y.T, lower=True, trans="T").T   # L^-T P L^-1
        return (0.5 * (S + S.T),)
    cholesky.defvjp(cholesky_fwd, cholesky_bwd)

    @fd.custom_vjp
    def solve_lower(L, b):
        return solve_triangular(L, b, lower=True)

    def solve_lower_fwd(L, b):
        z = solve_triangular(L, b, lower=True)
        return z, (L, z)

    def solve_lower_bwd(res, g):
        L, z = res
        bbar = solve_triangular(L, g, lower=True, trans="T")
        return -np.tril(np.outer(bbar, z)), bbar
    solve_lower.defvjp(solve_lower_fwd, solve_lower_bwd)

    def nlml(theta, x, y):
        n = x.shape[0]
        D2 = (x[:, None] - x[None, :]) ** 2
        K = np.exp(theta[1]) * np.exp(-0.5 * D2 / np.exp(2.0 * theta[0])) \
            + np.exp(theta[2]) * np.eye(n)
        L = cholesky(K)
        z = solve_lower(L, y)
        return 0.5 * np.dot(z, z) + np.sum(np.log(np.diagonal(L))) + 0.5 * n * LOG_2PI
    return nlml

def hand(theta, x, y):
    """(value, gradient) by hand: one Cholesky factorisation, K^-1 by cho_solve."""
    from scipy.linalg import cho_factor, cho_solve
    n = x.shape[0]
    D2 = (x[:, None] - x[None, :]) ** 2
    inv_l2 = np.exp(-2.0 * theta[0])
    E = np.exp(theta[1]) * np.exp(-0.5 * D2 * inv_l2)
    noise_var = np.exp(theta[2])
    K = E + noise_var * np.eye(n)
    c = cho_factor(K, lower=True)
    Kinv = cho_solve(c, np.eye(n))
    a = Kinv @ y
    W = Kinv - np.outer(a, a)
    value = 0.5 * (y @ a) + np.sum(np.log(np.diag(c[0]))) + 0.5 * n * LOG_2PI
    EW = E * W
    grad = np.array([0.5 * inv_l2 * np.sum(EW * D2), 0.5 * np.sum(EW),
                     0.5 * noise_var * np.trace(W)])
    return float(value), grad


def make_autograd(x, y):
    import autograd
    import autograd.numpy as anp

    def f(theta):
        n = x.shape[0]
        D2 = (x[:, None] - x[None, :]) ** 2
        K = anp.exp(theta[1]) * anp.exp(-0.5 * D2 / anp.exp(2.0 * theta[0])) \
            + anp.exp(theta[2]) * anp.eye(n)
        L = anp.linalg.cholesky(K)
        z = anp.linalg.solve(L, y)
        # autograd's diagonal vjp supports only axis1=-1, axis2=-2 (the same diagonal)
        logdiag = anp.log(anp.diagonal(L, 0, -1, -2))
        return 0.5 * anp.dot(z, z) + anp.sum(logdiag) + 0.5 * n * LOG_2PI
    vg = autograd.value_and_grad(f)
    return lambda: vg(THETA)


def make_jax(x, y):
    jax, jnp = ba._jax()

    def f(theta, x, y):
        n = x.shape[0]
        D2 = (x[:, None] - x[None, :]) ** 2
        K = jnp.exp(theta[1]) * jnp.exp(-0.5 * D2 / jnp.exp(2.0 * theta[0])) \
            + jnp.exp(theta[2]) * jnp.eye(n)
        L = jnp.linalg.cholesky(K)
        z = jnp.linalg.solve(L, y)
        return 0.5 * jnp.dot(z, z) + jnp.sum(jnp.log(jnp.diagonal(L))) + 0.5 * n * LOG_2PI
    vg = jax.jit(jax.value_and_grad(f))
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    return lambda: ba._jnp_out(vg(jnp.asarray(THETA), xj, yj))


def make_torch(x, y):
    import torch
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def vg():
        theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
        n = xt.shape[0]
        D2 = (xt[:, None] - xt[None, :]) ** 2
        K = torch.exp(theta[1]) * torch.exp(-0.5 * D2 / torch.exp(2.0 * theta[0])) \
            + torch.exp(theta[2]) * torch.eye(n, dtype=torch.float64)
        L = torch.linalg.cholesky(K)
        z = torch.linalg.solve(L, yt)
        loss = 0.5 * torch.dot(z, z) + torch.sum(torch.log(torch.diagonal(L))) \
            + 0.5 * n * LOG_2PI
        (g,) = torch.autograd.grad(loss, theta)
        return float(loss.detach()), g.numpy()
    return vg


# ----------------------------------------------------------------------------------

def workload(n):
    x, y = make_data(n)
    vg_fd = fd.value_and_grad(nlml_cholesky)
    vg_slogdet = fd.value_and_grad(nlml_slogdet)

    def make_tri():
        vg_tri = fd.value_and_grad(make_triangular_rules())
        return lambda: vg_tri(THETA, x, y)
    return x, y, [(FASTAD, None, lambda: lambda: vg_fd(THETA, x, y)),
                  (FASTAD_SLOGDET, None, lambda: lambda: vg_slogdet(THETA, x, y)),
                  (FASTAD_TRI, "scipy", make_tri),
                  (HAND, "scipy", lambda: lambda: hand(THETA, x, y)),
                  ("autograd", "autograd", lambda: make_autograd(x, y)),
                  ("jax.jit", "jax", lambda: make_jax(x, y)),
                  ("torch", "torch", lambda: make_torch(x, y))]


BUDGET = "<= 1.5x hand, faster than autograd, <= 2x jax.jit"


def summarise(st, missing):
    t = st[FASTAD].median
    conds, measured = [], []
    for label, limit, text in ((HAND, 1.5, "hand"), ("autograd", 1.0, "autograd"),
                               ("jax.jit", 2.0, "jax.jit")):
        if label in st:
            r = t / st[label].median
            conds.append((r <= limit if limit != 1.0 else r < 1.0, ""))
            measured.append("%s %s" % (ba._x(r), text))
        else:
            conds.append((None, "%s missing" % text))
    peers = ba._ratio_cells(st, missing, FASTAD,
                            [HAND, "autograd", "jax.jit", "torch", FASTAD_SLOGDET,
                             FASTAD_TRI])
    return st[FASTAD].cell(), peers, ", ".join(measured) or "-", ba._verdict(conds)


def run(quick=False):
    """The GP suite's markdown."""
    sizes = [30] if quick else [200, 1000]
    peers = {m for m in ("jax", "torch", "autograd", "scipy") if ba.have(m)}
    if "jax" in peers:
        ba._jax()
    load_start = os.getloadavg()
    threads, undo = ba.limit_threads(peers)
    summary_rows, detail_rows = [], []
    rounds_used = []
    try:
        for n in sizes:
            rounds, sample = (3, 0.0005) if quick else ((40, 0.02) if n <= 200 else (21, 0.0))
            rounds_used.append("n=%d: %d rounds, samples of %s" % (
                n, rounds, "one call" if sample == 0.0 else "about " + fmt_time(sample)))
            x, y, contenders = workload(n)
            if "scipy" not in peers:
                summary_rows.append(("GP NLML value+grad, n=%d" % n, "-",
                                     "scipy missing: no baseline, nothing timed", BUDGET,
                                     "-", "unchecked (scipy missing)"))
                continue
            ref = hand(THETA, x, y)
            available, missing = [], {}
            for label, module, factory in contenders:
                if module is not None and module not in peers:
                    missing[label] = "missing (%s not installed)" % module
                    continue
                fn = factory()
                ba.check("%s on GP NLML n=%d" % (label, n), fn(), ref, rtol=1e-8, atol=1e-10)
                available.append((label, fn))
            st = ba.interleaved(available, rounds, sample)
            fast, peer_cell, measured, verdict = summarise(st, missing)
            on_minimums = summarise(ba._minimums(st), missing)[3]
            if on_minimums != verdict:
                verdict += " on medians, %s on minimums (noisy)" % on_minimums
            name = "GP NLML value+grad (3 hyperparameters), n=%d" % n
            summary_rows.append((name, fast, peer_cell, BUDGET, measured, verdict))
            base = st[FASTAD]
            hand_st = st[HAND]
            for label, _ in available:
                s = st[label]
                detail_rows.append((name, label, s.cell(),
                                    "%s-%s" % (fmt_time(s.lo), fmt_time(s.hi)), s.n,
                                    ba._x(base.median / s.median), ba._x(base.lo / s.lo),
                                    ba._x(s.median / hand_st.median)))
            for label, why in missing.items():
                detail_rows.append((name, label, why, "", "", "", "", ""))
    finally:
        undo()
    load_end = os.getloadavg()
    versions = ", ".join("%s %s" % (m, installed_version(m) or "missing")
                         for m in ("numpy", "scipy", "jax", "torch", "autograd"))
    out = [
        "### GP: issue 12's budget (%s; %s%s)" % (
            threads, ba._load_line(load_start, load_end),
            "; --quick: smoke sizes, verdicts meaningless" if quick else ""),
        "",
        markdown_table(["workload", "fastad median (IQR)", "peers: median (fastad / peer)",
                        "budget", "measured", "verdict"], summary_rows),
        "",
        "The NLML of examples/gp.py (squared-exponential kernel, theta = log l, log s_f^2, "
        "log s_n^2 = %s, synthetic 1-D data, seed 0); every contender's value and gradient "
        "were checked against the hand-written one (np.allclose, rtol 1e-8) before timing. "
        "Interleaved rounds (%s); ratios are of medians. Results leave every framework as "
        "NumPy (jax: block_until_ready + np.asarray; torch: .numpy()); torch records a "
        "fresh graph per call, as fastad does. %s." % (
            np.array2string(THETA, precision=3), "; ".join(rounds_used), versions),
        "",
        "#### Every contender",
        "",
        markdown_table(["workload", "contender", "median (IQR)", "min-max", "rounds",
                        "fastad / this (medians)", "fastad / this (minimums)",
                        "this / hand (medians)"], detail_rows),
        "",
        "- hand NumPy/SciPy: cho_factor, K^-1 = cho_solve(I), a = K^-1 y, then "
        "dNLML/dtheta_j = 1/2 sum((K^-1 - a a^T) * dK_j) (one O(n^3) factorisation, one "
        "O(n^3) inverse).",
        "- fastad, autograd, jax.jit, torch: the same code (cholesky, then a general "
        "solve with the factor); fastad (solve + slogdet) writes the NLML as "
        "solve(K, y) and slogdet(K) instead, so its reverse sweep takes solve's and "
        "slogdet's rules rather than cholesky's: each record finds K exactly "
        "symmetric and factors it by Cholesky; solve's cotangent is a potrs with "
        "that factor, slogdet's K^-1 a potri of its own factor (two n^3/3 "
        "factorisations and a 2n^3/3 inverse in all).",
        "- fastad's cholesky rule (the fastad row): the lower triangle of L^T G by "
        "64-column blocks (n^3/3 flops) and one LAPACK sygst for L^-T Q L^-1 (n^3), "
        "4n^3/3 in all; the forward Cholesky n^3/3: 5n^3/3 for the value and "
        "gradient's linear algebra, against the hand gradient's 7n^3/3 "
        "(cho_factor n^3/3, cho_solve with the identity 2n^3).",
        "- fastad, custom_vjp triangular rules: a reference for the profile, no "
        "budget: the same NLML with cholesky and the solve with L replaced by "
        "fd.custom_vjp primitives whose rules are JAX's with "
        "scipy.linalg.solve_triangular (L^T G as a general product, 2n^3 flops, then "
        "two triangular solves with n right-hand sides, 2n^3): the rule fastad's "
        "cholesky had before.",
    ]
    return "\n".join(out) + "\n"


def profile(sizes=(200, 1000)):
    """The timing split of fastad's value+grad (--profile): per call, the time in
    the linear-algebra rules (cProfile's cumulative time of each rule) and the
    rest (recording and sweeping the kernel's elementwise records), and the page
    faults per call (fresh n x n temporaries), fastad against the hand gradient.
    Not interleaved, no verdict: where the time goes, not how it compares."""
    import cProfile
    import pstats
    import time
    try:
        import resource

        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except ImportError:          # not on Unix
        def faults():
            return 0
    rules = ("_chol_forward", "_chol_vjp", "_solve_forward", "_solve_vjp")
    load_start = os.getloadavg()
    threads, undo = ba.limit_threads({"scipy"})
    rows = []
    try:
        for n in sizes:
            x, y = make_data(n)
            vg = fd.value_and_grad(nlml_cholesky)
            calls = 100 if n <= 200 else 10
            per = {}
            for label, fn in ((FASTAD, lambda: vg(THETA, x, y)),
                              (HAND, lambda: hand(THETA, x, y))):
                fn()
                f0, t0 = faults(), time.perf_counter()
                for _ in range(calls):
                    fn()
                per[label] = ((time.perf_counter() - t0) / calls,
                              (faults() - f0) / calls)
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(calls):
                vg(THETA, x, y)
            prof.disable()
            st = pstats.Stats(prof).stats
            cum = {r: 0.0 for r in rules}
            total = 0.0
            for (path, _, func), (_, _, _, ct, _) in st.items():
                if path.endswith("_prims_linalg.py") and func in cum:
                    cum[func] += ct / calls
                if func == "value_and_grad_f":
                    total += ct / calls
            linalg = sum(cum.values())
            rows.append(("n=%d" % n, fmt_time(per[FASTAD][0]), fmt_time(per[HAND][0]),
                         "%.2fx" % (per[FASTAD][0] / per[HAND][0]),
                         ", ".join("%s %s" % (r.lstrip("_"), fmt_time(c))
                                   for r, c in cum.items()),
                         "%s (%.0f%%)" % (fmt_time(total - linalg),
                                          100.0 * (total - linalg) / total),
                         "%.0f / %.0f" % (per[FASTAD][1], per[HAND][1])))
    finally:
        undo()
    return "\n".join([
        "### GP: where fastad's value+grad spends its time (%s; %s)" % (
            threads, ba._load_line(load_start, os.getloadavg())),
        "",
        markdown_table(["size", "fastad per call", "hand per call", "fastad / hand",
                        "linear-algebra rules (cProfile, per call)",
                        "the rest (recording, elementwise records, sweeps)",
                        "page faults per call (fastad / hand)"], rows),
        "",
        "cProfile's clock (its overhead included) for the split; the per-call times "
        "and page faults without the profiler, one run each (not interleaved).",
    ]) + "\n"


if __name__ == "__main__":
    if "--profile" in sys.argv:
        print(profile((30,) if "--quick" in sys.argv else (200, 1000)))
        sys.exit(0)
    print(run(quick="--quick" in sys.argv))
