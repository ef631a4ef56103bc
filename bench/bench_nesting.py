"""Nested transformations (issue 13): the budget lines, fastad beside its peers.

  1. fd.jacobian(fd.grad(f)) against fd.hessian(f): the Rosenbrock loop n=50, and an
     elementwise logsumexp n=50 (m + log(sum(exp(x - m))); the issue's logsumexp of
     A @ x needs create_graph through the matmul record, not supported yet);
  2. fd.grad(fd.grad(f)) against fd.grad(f) for a scalar function recorded as ~10^4
     operations (a loop of sin/mul/add on one scalar);
  3. a gradient-penalty loss, value and gradient of L(w) + ||dL/dx||^2, against one
     value_and_grad of L, for a small tanh MLP written with `@` and again with
     elementwise products and sums, and torch's create_graph=True version (with @);
     again for a 64-256-1 MLP with @.

Ratios come from interleaved rounds (A, B, A, B, ...): the median of each and the
spread (min-max of the per-round ratios), because the machine is shared.  Peers'
results are checked against fastad's before timing.

    python bench/bench_nesting.py [--quick]
"""
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import fmt_time, installed_version, machine_line, markdown_table  # noqa

import fastad as fd  # noqa: E402


def interleaved(fns, rounds, inner=1):
    """Median seconds per call of each fn, timing them in alternation, and the
    per-round times (for the spread of ratios)."""
    for fn in fns:
        fn()
    per = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            per[k].append((time.perf_counter() - t0) / inner)
    meds = [float(np.median(p)) for p in per]
    return meds, per


def ratio_cell(per, k, base):
    r = np.array(per[k]) / np.array(per[base])
    return "%.2fx (%.2f-%.2f)" % (np.median(r), r.min(), r.max())


# ----------------------------------------------------------------------------------
# 1. jacobian of grad vs hessian

def rosen_loop(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def lse(x):
    return 0.5 + fd.log(fd.sum(fd.exp(x - 0.5)))


def table_jacobian_of_grad(quick):
    n = 50
    x = np.linspace(-1.2, 1.1, n)
    rows = []
    for name, f in (("Rosenbrock loop n=50", rosen_loop), ("elementwise logsumexp n=50", lse)):
        jg, h = fd.jacobian(fd.grad(f)), fd.hessian(f)
        np.testing.assert_allclose(jg(x), h(x), rtol=1e-10, atol=1e-10)
        fns = [lambda: h(x), lambda: jg(x)]
        labels = ["fastad hessian(f)", "fastad jacobian(grad(f))"]
        jax_fn = _jax_jacobian_of_grad(f is lse, x, jg(x))
        if jax_fn is not None:
            fns.append(jax_fn)
            labels.append("jax jit(jacfwd(grad(f)))")
        meds, per = interleaved(fns, 5 if quick else 15)
        for k, label in enumerate(labels):
            rows.append([name, label, fmt_time(meds[k]), ratio_cell(per, k, 0)])
    return markdown_table(["workload", "code", "median time", "vs fastad hessian (spread)"],
                          rows)


def _jax_jacobian_of_grad(is_lse, x, want):
    try:
        import jax
        import jax.numpy as jnp
    except Exception:
        return None
    jax.config.update("jax_enable_x64", True)
    if is_lse:
        def f(v):
            return 0.5 + jnp.log(jnp.sum(jnp.exp(v - 0.5)))
    else:
        def f(v):
            return jnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)
    h = jax.jit(jax.jacfwd(jax.grad(f)))
    xj = jnp.asarray(x)
    np.testing.assert_allclose(np.asarray(h(xj)), want, rtol=1e-9, atol=1e-9)
    return lambda: h(xj).block_until_ready()


# ----------------------------------------------------------------------------------
# 2. grad of grad of a 10^4-op scalar function

def chain(x, m):
    s = x
    for _ in range(m):
        s = fd.sin(s) * 0.9 + x * 0.1      # 4 ops an iteration
    return s


def table_grad_of_grad(quick):
    m = 2500
    f = lambda x: chain(x, m)
    with fd.Tape() as t:
        v = t.variable(0.3)
        f(v)
        n_ops = len(t)
    g, gg = fd.grad(f), fd.grad(fd.grad(f))
    fns = [lambda: g(0.3), lambda: gg(0.3)]
    labels = ["fastad grad(f)", "fastad grad(grad(f))"]
    want = gg(0.3)
    torch_fns = _torch_grad_of_grad(m, want)
    if torch_fns is not None:
        fns += torch_fns
        labels += ["torch grad (0-d tensors)", "torch grad(grad) create_graph"]
    meds, per = interleaved(fns, 3 if quick else 9)
    rows = [["scalar chain, %d ops" % n_ops, label, fmt_time(meds[k]),
             ratio_cell(per, k, 0)] for k, label in enumerate(labels)]
    return markdown_table(["workload", "code", "median time", "vs fastad grad (spread)"],
                          rows)


def _torch_grad_of_grad(m, want):
    try:
        import torch
    except Exception:
        return None

    def f(x):
        s = x
        for _ in range(m):
            s = torch.sin(s) * 0.9 + x * 0.1
        return s

    def one():
        x = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        (gx,) = torch.autograd.grad(f(x), x)
        return gx

    def two():
        x = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        (gx,) = torch.autograd.grad(f(x), x, create_graph=True)
        (hx,) = torch.autograd.grad(gx, x)
        return hx
    assert abs(float(two()) - want) <= 1e-9 * max(1.0, abs(want))
    return [one, two]


# ----------------------------------------------------------------------------------
# 3. gradient penalty of a small MLP

def mlp_params(rng, n_in, n_hidden):
    return {"W1": rng.normal(size=(n_hidden, n_in)) / math.sqrt(n_in),
            "b1": np.zeros(n_hidden),
            "w2": rng.normal(size=n_hidden) / math.sqrt(n_hidden)}


def mlp(p, x):
    # elementwise products and axis sums: scalar slots, no matmul record
    h = fd.tanh(fd.sum(p["W1"] * x, axis=1) + p["b1"])
    return fd.sum(h * p["w2"])


def mlp_matmul(p, x):
    h = fd.tanh(p["W1"] @ x + p["b1"])
    return fd.sum(h * p["w2"])


def penalty_loss(p, x, net=mlp):
    out = net(p, x)
    gx = fd.grad(lambda xx: net(p, xx))(x)
    return out + fd.sum(gx * gx)


def table_gradient_penalty(quick):
    rows = []
    for net, label in ((mlp_matmul, "W1 @ x"), (mlp, "sum(W1 * x, axis=1)")):
        rows += _penalty_rows(quick, net, label)
    # wider: the inner matmul's create-graph rule as array operations (from 4096
    # multiply-adds), where the 8-16-1 net sweeps its 128 products as slots
    rows += _penalty_rows(quick, mlp_matmul, "W1 @ x", 64, 256)
    return markdown_table(["workload", "code", "median time",
                           "vs fastad value_and_grad (spread)"], rows)


def _penalty_rows(quick, net, label, n_in=8, n_hidden=16):
    rng = np.random.default_rng(7)
    p = mlp_params(rng, n_in, n_hidden)
    x = rng.normal(size=n_in)
    vg = fd.value_and_grad(lambda q: net(q, x))
    vgp = fd.value_and_grad(lambda q: penalty_loss(q, x, net))
    fns = [lambda: vg(p), lambda: vgp(p)]
    labels = ["fastad value_and_grad(L)", "fastad value_and_grad(L + ||dL/dx||^2)"]
    torch_fns = _torch_penalty(p, x, vgp(p))
    if torch_fns is not None:
        fns += torch_fns
        labels += ["torch L backward", "torch penalty, create_graph=True"]
    # 10 calls a turn: single calls of ~100 us alternating with torch (whose BLAS
    # threads wake and sleep) scattered the per-round ratios from 0.07 to 25
    meds, per = interleaved(fns, 5 if quick else 21, inner=10)
    name = "tanh MLP %d-%d-1, %s" % (n_in, n_hidden, label)
    rows = [[name, lab, fmt_time(meds[k]), ratio_cell(per, k, 0)]
            for k, lab in enumerate(labels)]
    if torch_fns is not None:
        rows.append([name, "fastad penalty vs torch penalty", "", ratio_cell(per, 1, 3)])
    return rows


def _torch_penalty(p, x, want):
    try:
        import torch
    except Exception:
        return None
    tp = {k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()}
    tx = torch.tensor(x, dtype=torch.float64)

    def net(q, xx):
        return (torch.tanh(q["W1"] @ xx + q["b1"]) * q["w2"]).sum()

    def one():
        q = {k: v.clone().requires_grad_(True) for k, v in tp.items()}
        out = net(q, tx)
        out.backward()
        return out

    def two():
        q = {k: v.clone().requires_grad_(True) for k, v in tp.items()}
        xx = tx.clone().requires_grad_(True)
        out = net(q, xx)
        (gx,) = torch.autograd.grad(out, xx, create_graph=True)
        loss = out + (gx * gx).sum()
        loss.backward()
        return loss, q
    loss, q = two()
    assert abs(float(loss.detach()) - want[0]) <= 1e-10
    np.testing.assert_allclose(q["W1"].grad.numpy(), want[1]["W1"], rtol=1e-9, atol=1e-12)
    return [one, two]


def run(quick=False):
    load = os.getloadavg()
    out = ["Measured %s; load average %.2f %.2f %.2f at the start." % ((machine_line(),) + load),
           "", "### jacobian(grad f) vs hessian f", "", table_jacobian_of_grad(quick),
           "", "### grad(grad f) vs grad f", "", table_grad_of_grad(quick),
           "", "### Gradient penalty", "", table_gradient_penalty(quick), "",
           "Peers: torch %s, jax %s." % (installed_version("torch"), installed_version("jax")),
           "Load average at the end: %.2f %.2f %.2f." % os.getloadavg()]
    return "\n".join(out)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))
