"""MLP suite: value and gradient of a 64-128-10 network (tanh, softmax
cross-entropy, a dict of weights) on batches of 32 and 512.

Data: scikit-learn's bundled digits (8x8 images, 64 features) when scikit-learn is
installed, random data of the same shape otherwise (the table says which).  Every
engine computes the same float64 loss and its gradient with respect to the four
weight arrays; gradients are checked against the hand-written NumPy backprop (the
floor: no framework at all) before anything is timed.

BLAS runs single-threaded for every engine (threadpoolctl for NumPy's OpenBLAS,
torch.set_num_threads(1)): on a small shared machine, multithreaded BLAS on these
sizes mostly measures contention.  JAX uses XLA's own CPU runtime as configured.

    python bench/bench_mlp.py [--quick]
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import fastad as fd  # noqa: E402
from _timing import best_of, fmt_time, fmt_ratio, installed_version, markdown_table  # noqa: E402

N_IN, N_HIDDEN, N_OUT = 64, 128, 10


def load_data(batch):
    """(X, one-hot Y, source name) for the first `batch` samples."""
    try:
        from sklearn.datasets import load_digits
        digits = load_digits()
        X = digits.data[:batch] / 16.0
        labels = digits.target[:batch]
        source = "scikit-learn digits"
    except ImportError:
        rng = np.random.default_rng(0)
        X = rng.uniform(0, 1, size=(batch, N_IN))
        labels = rng.integers(0, N_OUT, size=batch)
        source = "random data (scikit-learn not installed)"
    return np.ascontiguousarray(X, dtype=np.float64), np.eye(N_OUT)[labels], source


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(size=(N_IN, N_HIDDEN)) / np.sqrt(N_IN),
            "b1": np.zeros(N_HIDDEN),
            "W2": rng.normal(size=(N_HIDDEN, N_OUT)) / np.sqrt(N_HIDDEN),
            "b2": np.zeros(N_OUT)}


# ----------------------------------------------------------------------------------
# The engines: each returns (loss as float, dict of gradient arrays)

def numpy_backprop(p, X, Y):
    """Hand-written forward and backward pass: the floor."""
    B = X.shape[0]
    h = np.tanh(X @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.sum(np.log(s) + m) - np.sum(z * Y)) / B
    dz = (e / s - Y) / B
    dh = (dz @ p["W2"].T) * (1.0 - h * h)
    return float(loss), {"W1": X.T @ dh, "b1": dh.sum(axis=0),
                         "W2": h.T @ dz, "b2": dz.sum(axis=0)}


def fastad_loss(p, X, Y):
    h = fd.tanh(X @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    return -fd.sum(fd.log_softmax(z) * Y) / X.shape[0]


_fastad_vg = fd.value_and_grad(fastad_loss)


def run_fastad(p, X, Y):
    return _fastad_vg(p, X, Y)


def make_torch():
    import torch

    def run(p, X, Y):
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        h = torch.tanh(tX @ tp["W1"] + tp["b1"])
        z = h @ tp["W2"] + tp["b2"]
        loss = -(torch.log_softmax(z, dim=1) * tY).sum() / X.shape[0]
        grads = torch.autograd.grad(loss, list(tp.values()))
        return loss.item(), {k: g.numpy() for k, g in zip(tp, grads)}
    return run


def _jax_loss(jnp, jax):
    def loss(p, X, Y):
        h = jnp.tanh(X @ p["W1"] + p["b1"])
        z = h @ p["W2"] + p["b2"]
        return -jnp.sum(jax.nn.log_softmax(z, axis=1) * Y) / X.shape[0]
    return loss


def make_jax(jit):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    vg = jax.value_and_grad(_jax_loss(jnp, jax))
    if jit:
        vg = jax.jit(vg)

    def run(p, X, Y):
        value, g = vg(p, X, Y)
        return float(value), {k: np.asarray(v) for k, v in g.items()}
    return run


def make_autograd():
    import autograd
    import autograd.numpy as anp

    def loss(p, X, Y):
        h = anp.tanh(anp.dot(X, p["W1"]) + p["b1"])
        z = anp.dot(h, p["W2"]) + p["b2"]
        m = anp.max(z, axis=1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True)) + m
        return -anp.sum((z - lse) * Y) / X.shape[0]
    vg = autograd.value_and_grad(loss)

    def run(p, X, Y):
        value, g = vg(p, X, Y)
        return float(value), g
    return run


# (label, factory returning a runner, module needed or None)
ENGINES = [
    ("hand-written NumPy backprop (floor)", lambda: numpy_backprop, None),
    ("fastad value_and_grad", lambda: run_fastad, None),
    ("torch eager", make_torch, "torch"),
    ("jax eager", lambda: make_jax(False), "jax"),
    ("jax.jit", lambda: make_jax(True), "jax"),
    ("autograd", make_autograd, "autograd"),
]


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        import contextlib
        return contextlib.nullcontext()


def run(quick=False):
    """The MLP suite's markdown table."""
    batches = (32, 512)
    reps = {32: 20 if quick else 2000, 512: 3 if quick else 200}
    rows, notes, budget = [], [], []
    p = init_params()
    torch_threads = None
    if installed_version("torch"):
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        with _single_threaded_blas():
            for batch in batches:
                X, Y, source = load_data(batch)
                ref_value, ref_grad = numpy_backprop(p, X, Y)
                times = {}
                for label, factory, module in ENGINES:
                    if module is not None and installed_version(module) is None:
                        notes.append("%s: not installed, skipped" % module)
                        continue
                    runner = factory()
                    value, g = runner(p, X, Y)
                    ok = abs(value - ref_value) <= 1e-10 * abs(ref_value) and all(
                        np.allclose(g[k], ref_grad[k], rtol=1e-8, atol=1e-12) for k in p)
                    if not ok:
                        raise AssertionError("%s disagrees with the NumPy backprop at "
                                             "batch %d" % (label, batch))
                    r = reps[batch] if module is None else max(1, reps[batch] // 4)
                    best, median = best_of(lambda: runner(p, X, Y), r)
                    times[label] = best
                    rows.append((batch, label, fmt_time(best), fmt_time(median)))
                floor = times["hand-written NumPy backprop (floor)"]
                mine = times["fastad value_and_grad"]
                rows[-len(times):] = [row + (fmt_ratio(times[row[1]] / floor),
                                             fmt_ratio(times[row[1]] / mine))
                                      for row in rows[-len(times):]]
                if batch == 32 and "torch eager" in times:
                    budget.append("batch 32: fastad %s vs torch eager %s (budget: faster), "
                                  "vs autograd %s (budget: 3x faster)" % (
                                      fmt_time(mine), fmt_time(times["torch eager"]),
                                      fmt_time(times.get("autograd", float("nan")))))
                if batch == 512:
                    budget.append("batch 512: fastad / NumPy floor = %.2f (budget: 1.3)"
                                  % (mine / floor))
    finally:
        if torch_threads is not None:
            import torch
            torch.set_num_threads(torch_threads)
    versions = ", ".join("%s %s" % (m, installed_version(m) or "missing")
                         for m in ("numpy", "torch", "jax", "autograd"))
    out = [
        "### MLP 64-128-10: value and gradient (tanh, softmax cross-entropy, dict of "
        "weights)",
        "",
        markdown_table(["batch", "engine", "best", "median", "vs NumPy floor",
                        "vs fastad"], rows),
        "",
        "Data: %s. float64 everywhere, BLAS single-threaded. One call = the loss and "
        "its gradient with respect to W1, b1, W2, b2 from the given NumPy arrays "
        "(conversions to and from each framework's tensors included). Gradients are "
        "checked against the NumPy backprop before timing. %s." % (source, versions),
        "",
    ] + ["- " + b for b in budget]
    if notes:
        out += [""] + ["- " + n for n in sorted(set(notes))]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
