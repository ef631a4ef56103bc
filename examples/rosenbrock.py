"""Five ways down the Rosenbrock valley, all with gradients from fastad.

f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 has its minimum at (1, 1) at the end of a
long, curved, flat-bottomed valley: easy to find, slow to follow.  We start every
method at (-1.2, 1) and count how many evaluations of f and its derivatives each
needs to get within `--tol` of the minimum:

- gradient descent (fd.optim.SGD): the step must stay below 2 / (largest curvature,
  about 1000 here), so it crawls along the valley floor;
- momentum (SGD with momentum 0.9): builds up speed along the valley;
- Adam: per-coordinate step sizes;
- fd.minimize with L-BFGS-B (quasi-Newton, exact gradients) and with Newton-CG
  (exact Hessian-vector products by forward-over-reverse AD): curvature
  information turns thousands of steps into dozens.

    python examples/rosenbrock.py            # writes rosenbrock_paths.png
"""
import argparse
import sys
import time

import numpy as np

import fastad as fd

START = np.array([-1.2, 1.0])
MINIMUM = np.array([1.0, 1.0])


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def run_optimizer(opt, tol, max_steps):
    """Iterate opt.step until within tol of the minimum; return path and counts."""
    vg = fd.value_and_grad(rosenbrock)
    p, path = START.copy(), [START.copy()]
    for step in range(1, max_steps + 1):
        _, g = vg(p)
        p = opt.step(p, g)
        path.append(p)
        if np.linalg.norm(p - MINIMUM) < tol:
            break
    return {"path": np.array(path), "evals": step, "x": p}


def run_minimize(method, tol):
    path = [START.copy()]
    res = fd.minimize(rosenbrock, START, method=method,
                      callback=lambda xk, *rest: path.append(np.array(xk)),
                      options={"xtol": tol * 1e-2} if method == "Newton-CG" else {},
                      tol=None if method == "Newton-CG" else 1e-12)
    evals = "%d f+grad" % res.nfev
    if "nhev" in res:
        evals += ", %d Hessian-vector" % res.nhev
    return {"path": np.array(path), "evals": evals, "x": res.x, "nfev": res.nfev}


def run_all(tol=1e-3, max_steps=50000, verbose=True):
    methods = {
        "gradient descent, lr 1e-3": lambda: run_optimizer(
            fd.optim.SGD(lr=1e-3), tol, max_steps),
        "momentum 0.9, lr 1e-3": lambda: run_optimizer(
            fd.optim.SGD(lr=1e-3, momentum=0.9), tol, max_steps),
        "Adam, lr 0.02": lambda: run_optimizer(
            fd.optim.Adam(lr=0.02), tol, max_steps),
        "fd.minimize L-BFGS-B": lambda: run_minimize("L-BFGS-B", tol),
    }
    if hasattr(fd, "hvp"):      # Newton-CG needs Hessian-vector products
        methods["fd.minimize Newton-CG"] = lambda: run_minimize("Newton-CG", tol)
    for method in ("L-BFGS-B", "Newton-CG"):   # load SciPy's modules outside the timings
        if method != "Newton-CG" or hasattr(fd, "hvp"):
            fd.minimize(rosenbrock, START, method=method, options={"maxiter": 1})
    results = {}
    for name, run in methods.items():
        t0 = time.perf_counter()
        r = run()
        r["seconds"] = time.perf_counter() - t0
        r["error"] = float(np.linalg.norm(r["x"] - MINIMUM))
        results[name] = r
        if verbose:
            print("%-27s %-42s |x - x*| = %.1e   %.3f s"
                  % (name, "%s evaluations" % r["evals"], r["error"], r["seconds"]))
    return results


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs, ys = np.meshgrid(np.linspace(-2.0, 2.0, 300), np.linspace(-1.0, 3.0, 300))
    zs = rosenbrock([xs, ys])         # on plain arrays it is plain NumPy
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=25, cmap="Greys", linewidths=0.7)
    for (name, r), style in zip(results.items(), ["-", "-", "-", "o-", "s-"]):
        p = r["path"]
        ax.plot(p[:, 0], p[:, 1], style, markersize=3, linewidth=1.2,
                label="%s (%s evals)" % (name, r["evals"]))
    ax.plot(*START, "k^", markersize=9, label="start")
    ax.plot(*MINIMUM, "r*", markersize=14, label="minimum (1, 1)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Rosenbrock: optimiser paths (contours of log10 f)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol", type=float, default=1e-3,
                    help="stop when this close to (1, 1)")
    ap.add_argument("--max-steps", type=int, default=50000,
                    help="step limit for the first-order optimisers")
    ap.add_argument("--out", default="rosenbrock_paths.png", help="PNG ('' to skip)")
    a = ap.parse_args(argv)
    results = run_all(a.tol, a.max_steps)
    if a.out:
        try:
            plot(results, a.out)
            print("wrote", a.out)
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
