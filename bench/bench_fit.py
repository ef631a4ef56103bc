"""Fitting benchmarks (issue 6 budget).

1. digits: examples/digits.py trained with its defaults (MLP 64-64-10, Adam,
   20 epochs, batch 32): training wall time and held-out test accuracy.
   Budget: >= 97 % test accuracy in < 20 s on 2 cores.
2. Rosenbrock, n = 1000, L-BFGS-B from x0 = (-1.2, 1, -1.2, 1, ...):
   fd.minimize(f, x0, trace=True) (recorded once, replayed in C, exact gradient)
   against scipy.optimize.minimize(f, x0) with SciPy's finite-difference gradient
   (f vectorised NumPy, '2-point' differences: n + 1 calls of f per gradient).
   Budget: >= 10x faster with the same answer.  The finite-difference run is the
   slow part of this suite (281 s of its 303 s on the shared development machine);
   --quick uses n = 100 (about 2 s).

Run through bench/run.py (`--suite fit`) or alone: python bench/bench_fit.py [--quick]
"""
import importlib.util
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fastad as fd                                  # noqa: E402
from _timing import best_of, fmt_time, fmt_ratio     # noqa: E402


def rosen(x):
    """Works on NumPy arrays (for SciPy's finite differences) and on Vars."""
    return fd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _load_digits_example():
    path = os.path.join(HERE, os.pardir, "examples", "digits.py")
    spec = importlib.util.spec_from_file_location("example_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_digits(quick):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return ["| digits MLP | scikit-learn not installed: skipped | | |"]
    digits = _load_digits_example()
    epochs = 2 if quick else 20
    result = digits.train(epochs=epochs, verbose=False)
    ok = result["test_acc"] >= 0.97 and result["seconds"] < 20.0
    return ["| digits MLP 64-64-10, Adam, %d epochs | %s | %.2f %% test accuracy (%d held out) "
            "| %s |" % (epochs, fmt_time(result["seconds"]), 100 * result["test_acc"],
                        result["n_test"], "met" if ok else ("n/a (quick)" if quick else "MISSED"))]


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                       # comes with scikit-learn; optional here
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def bench_rosenbrock(quick):
    from scipy.optimize import minimize as scipy_minimize
    n = 100 if quick else 1000
    x0 = np.tile([-1.2, 1.0], n // 2)
    # Limits high enough that both runs stop on convergence, not on a budget (SciPy's
    # default maxfun=15000 stops the finite-difference run after 15 gradients).
    options = {"maxiter": 100000, "maxfun": 10 ** 9}
    out = {}

    def ours():
        out["fd"] = fd.minimize(rosen, x0, method="L-BFGS-B", trace=True, options=options)

    def theirs():
        out["fdiff"] = scipy_minimize(rosen, x0, method="L-BFGS-B", options=options)

    # L-BFGS-B's Fortran/C core calls BLAS on n-vectors; on a shared 2-core machine
    # multithreaded BLAS made it 7x slower (n = 1000: 10.4 s against 1.5 s), which
    # would bury both contenders under thread contention.  One BLAS thread for both.
    with _one_blas_thread():
        fd.minimize(rosen, x0, method="L-BFGS-B", options={"maxiter": 2})  # load SciPy
        t_fd, _ = best_of(ours, 1 if quick else 3, warmup=0)
        t_sp, _ = best_of(theirs, 1, warmup=0)
    a, b = out["fd"], out["fdiff"]
    err_a = float(np.max(np.abs(a.x - 1.0)))
    err_b = float(np.max(np.abs(b.x - 1.0)))
    ratio = t_sp / t_fd
    ok = ratio >= 10 and err_a < 1e-3
    rows = [
        "| Rosenbrock n=%d, L-BFGS-B, fd.minimize(trace=True) | %s | f = %.3g, max|x-1| = %.2g, "
        "%d f+grad evals | |" % (n, fmt_time(t_fd), a.fun, err_a, a.nfev),
        "| same, SciPy finite-difference gradient | %s | f = %.3g, max|x-1| = %.2g, "
        "%d f evals | %s faster: %s |" % (fmt_time(t_sp), b.fun, err_b, b.nfev,
                                          fmt_ratio(ratio),
                                          "met" if ok else ("n/a (quick)" if quick
                                                            else "MISSED")),
    ]
    return rows


def run(quick=False):
    lines = ["### fit: training and fd.minimize (issue 6 budgets)", "",
             "| task | wall time | result | budget |", "|---|---|---|---|"]
    lines += bench_digits(quick)
    lines += bench_rosenbrock(quick)
    lines.append("")
    lines.append("Budgets: digits >= 97 %% in < 20 s; fd.minimize(trace=True) >= 10x faster "
                 "than finite differences, same answer. fd.minimize: best of %s runs; digits "
                 "and finite differences: one run. BLAS limited to one thread."
                 % ("1" if quick else "3"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    t0 = time.perf_counter()
    print(run(quick="--quick" in sys.argv))
    print("(took %.1f s)" % (time.perf_counter() - t0))
