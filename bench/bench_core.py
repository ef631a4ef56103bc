"""Core suite: record + reverse sweep of scalar Python code, against its peers.

Two workloads, both written as plain Python loops over scalars:

* the extended Rosenbrock function, n = 1000, looping over x[i];
* a chain of 10^5 operations: sin, exp, log1p, a multiply and an add per step,
  s -> s + log1p(exp(sin(s))) * a with a = 1e-3.  Each step moves s by at most
  1.32 a and multiplies the derivative by 1 + a cos(s) sigmoid(sin(s)), within
  1 +- a, so after 20000 steps values stay below x + 27 and every adjoint lies in
  [e^-20, e^20]: finite, and never zero.  (A contracting chain would be a bad
  benchmark: its early adjoints underflow to exact zeros, which the reverse sweep
  skips.)

Each workload runs as: fastad value_and_grad; the same code on plain Python floats
(the cost of the function itself); and micrograd, autograd and PyTorch scalar code
when they are installed.  Every peer's gradient is checked against fastad's before
it is timed, so the table never compares a wrong computation.

"ops" is len(tape) of the fastad recording (leaves included), the same denominator
for every row, so ns/op columns compare like with like.
"""
import math
import sys

import numpy as np

import fastad as fd
import fastad._tape as _tape
from _timing import best_of, fmt_ratio, fmt_time, installed_version, markdown_table


# ----- the workloads: written once, run on floats, Vars and every peer's type -----

def rosenbrock(x, m=math):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def make_chain(steps):
    def chain(p, m=math):
        s, a = p[0], p[1]
        for _ in range(steps):
            s = s + m.log1p(m.exp(m.sin(s))) * a
        return s
    return chain


class _TorchMath:
    """sin/exp/log1p for 0-d tensors, so the chain runs unchanged on torch."""

    def __init__(self, torch):
        self.sin, self.exp, self.log1p = torch.sin, torch.exp, torch.log1p


# ----- one runner per engine: each returns (value, gradient as a flat array) -----

def run_plain(f, x):
    return f(x.tolist()), None  # Python floats, not np.float64


def run_fastad(f, x):
    value, g = fd.value_and_grad(lambda v: f(v, fd))(x)
    return value, g


def run_fastad_list(f, x):
    value, g = fd.value_and_grad(lambda v: f(v, fd))(x.tolist())
    return value, np.asarray(g)


def run_micrograd(f, x):
    from micrograd.engine import Value
    leaves = [Value(float(v)) for v in x]
    y = f(leaves)
    y.backward()
    return y.data, np.array([v.grad for v in leaves])


def run_autograd(f, x):
    import autograd
    import autograd.numpy as anp
    value, g = autograd.value_and_grad(lambda v: f(v, anp))(np.array(x, dtype=float))
    return float(value), g


def run_torch(f, x):
    import torch
    leaves = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True)
              for v in x]
    y = f(leaves, _TorchMath(torch))
    y.backward()
    return y.item(), np.array([v.grad.item() for v in leaves])


# (row label, runner, module it needs: None for fastad itself, else skipped when missing)
ENGINES = [
    ("fastad value_and_grad", run_fastad, None),
    ("fastad value_and_grad, x as a list", run_fastad_list, None),
    ("micrograd", run_micrograd, "micrograd"),
    ("autograd", run_autograd, "autograd"),
    ("torch (0-d tensors)", run_torch, "torch"),
]


def _workloads(quick):
    n = 20 if quick else 1000
    steps = 20 if quick else 20000
    x_rosen = np.linspace(-1.2, 1.2, n)
    x_chain = np.array([0.3, 1e-3])
    # (label, f, x, reps for fastad/plain, reps for peers, peers lacking ops)
    return [
        ("Rosenbrock n=%d" % n, rosenbrock, x_rosen,
         2 if quick else 50, 1 if quick else 5, ()),
        ("chain of %d sin/exp/log1p/mul/add" % (5 * steps), make_chain(steps), x_chain,
         2 if quick else 20, 1 if quick else 3, ("micrograd",)),
    ]


def _fastad_tape_stats(f, x, reps):
    """(ops, sweep seconds, bytes held) on a tape recorded once and swept repeatedly."""
    with fd.Tape() as tape:
        xv = tape.variable(x)
        y = f(xv, fd)
    g = tape.gradient(y, xv)
    # The workloads are built so that no gradient is zero or infinite; check it, so
    # the sweep timed below does the full work a dense gradient needs.
    if not (np.all(np.isfinite(g)) and np.all(g != 0)):
        raise AssertionError("degenerate benchmark gradient: %r" % (g,))
    best, _ = best_of(lambda: tape.gradient(y, xv), reps)
    return len(tape), best, tape.nbytes


def run(quick=False):
    """The core suite's markdown: a timing table and a tape table."""
    rows, tape_rows, notes = [], [], []
    for label, f, x, reps, peer_reps, unsupported in _workloads(quick):
        ops, sweep, held = _fastad_tape_stats(f, x, reps)
        ref_value, ref_grad = run_fastad(f, x)
        plain, plain_med = best_of(lambda: run_plain(f, x), reps)
        rows.append((label, "plain Python floats (no derivative)", fmt_time(plain),
                     "%.1f" % (plain / ops * 1e9), "1.0x", ""))
        fastad_time = None
        for name, runner, module in ENGINES:
            if module is not None and installed_version(module) is None:
                notes.append("%s: not installed, skipped" % module)
                continue
            if module in unsupported:
                notes.append("%s on the chain: skipped, micrograd has no sin/exp/log1p"
                             % module)
                continue
            limit = sys.getrecursionlimit()
            # micrograd sorts its graph recursively; a 1000-term sum is deeper
            # than Python's default limit of 1000 frames.
            sys.setrecursionlimit(max(limit, 50 * ops))
            try:
                value, g = runner(f, x)
                if not (math.isclose(value, ref_value, rel_tol=1e-9, abs_tol=1e-12)
                        and np.allclose(g, ref_grad, rtol=1e-8, atol=1e-10)):
                    raise AssertionError("%s disagrees with fastad on %s" % (name, label))
                r = reps if module is None else peer_reps
                t, _ = best_of(lambda: runner(f, x), r)
            finally:
                sys.setrecursionlimit(limit)
            if fastad_time is None:
                fastad_time = t
            rows.append((label, name, fmt_time(t), "%.1f" % (t / ops * 1e9),
                         fmt_ratio(t / plain), fmt_ratio(t / fastad_time)))
        tape_rows.append((label, ops, "%.2f" % (sweep / ops * 1e9), _tape.SLOT_BYTES,
                          "%.1f" % (held / ops)))
    versions = ", ".join("%s %s" % (m, installed_version(m) or "missing")
                         for m in ("numpy", "micrograd", "autograd", "torch"))
    out = [
        "### Core: record + reverse sweep of scalar Python loops",
        "",
        markdown_table(["workload", "code", "time per call", "ns per op",
                        "vs plain floats", "vs fastad"], rows),
        "",
        "Best of k calls (time.perf_counter); ns per op divides by the fastad tape's "
        "operation count for every row. A value and a full gradient per call, "
        "except plain floats, which is the function alone. Peers' gradients are "
        "checked against fastad's before timing. %s." % versions,
        "",
        markdown_table(["workload", "ops on tape", "reverse sweep alone (ns/op)",
                        "tape storage (bytes/op)", "bytes held/op (incl. slack, adjoints)"],
                       tape_rows),
        "",
        "Reverse sweep alone: `tape.gradient(y, x)` on an already recorded tape "
        "(includes the call's fixed overhead). Tape storage is fastad._tape.SLOT_BYTES "
        "per slot (op code, two argument slots, value, two partials), adjoints "
        "excluded; bytes held is tape.nbytes / len(tape): the capacity grown by "
        "doubling plus the adjoint buffer.",
    ]
    if notes:
        out += [""] + ["- " + n for n in sorted(set(notes))]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
