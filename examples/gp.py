"""Gaussian-process regression: hyperparameters fitted by their marginal likelihood.

Noisy observations y_i = f(x_i) + e_i of an unknown smooth function f, with a
Gaussian-process prior on f and Gaussian noise:

    f ~ GP(0, k),   k(x, x') = s_f^2 exp(-(x - x')^2 / (2 l^2)),   e_i ~ N(0, s_n^2)

so y ~ N(0, K) with K = k(X, X) + s_n^2 I.  The three hyperparameters are fitted in
logarithms, theta = (log l, log s_f^2, log s_n^2), which keeps them positive and the
problem well scaled, by minimising the negative log marginal likelihood

    NLML(theta) = 1/2 y^T K^-1 y + 1/2 log det K + n/2 log(2 pi),

written as a statistician would (Rasmussen and Williams, Algorithm 2.1): the
Cholesky factor K = L L^T, alpha-like solves with L, and log det K =
2 sum(log diag L).  The function is plain NumPy code (np.exp, np.linalg.cholesky,
np.linalg.solve); fastad records it when theta is a Var, so fd.minimize gets the
exact gradient with no derivation by hand.  `nlml_grad_analytic` is the derivation
by hand, 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_j), kept to check the tape against
and for the SciPy comparison.

After the fit, the posterior mean and a 2-sigma band of f at new points are
plotted with the data:

    python examples/gp.py                 # writes gp.png in the current directory
    python examples/gp.py out/fit.png     # or where you say
    python examples/gp.py --n 100 --seed 3

Prints the fitted hyperparameters, the NLML, the gradient there (about zero), and,
when SciPy is installed, the same fit by scipy.optimize.minimize with the
hand-derived gradient.
"""
import argparse
import sys
import time

import numpy as np

import fastad as fd

NAMES = ("lengthscale l", "signal variance s_f^2", "noise variance s_n^2")
THETA0 = np.array([0.0, 0.0, np.log(0.1)])      # l = 1, s_f^2 = 1, s_n^2 = 0.1


def make_data(n=40, seed=0, noise=0.2):
    """n noisy samples of a smooth function on [-5, 5], seeded."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-5.0, 5.0, n))
    y = np.sin(x) + 0.3 * np.cos(2.5 * x) + noise * rng.standard_normal(n)
    return x, y


def sq_dists(a, b):
    """Squared distances (a_i - b_j)^2: data only, never differentiated."""
    return (a[:, None] - b[None, :]) ** 2


def kernel(theta, a, b):
    """The squared-exponential kernel matrix k(a, b) (no noise term)."""
    lengthscale2, signal_var = np.exp(2.0 * theta[0]), np.exp(theta[1])
    return signal_var * np.exp(-0.5 * sq_dists(a, b) / lengthscale2)


def nlml(theta, x, y):
    """Negative log marginal likelihood of y under the GP with hyperparameters theta.

    Works on a Var theta (recorded, for gradients) and on a plain array (a float)."""
    n = len(x)
    K = kernel(theta, x, x) + np.exp(theta[2]) * np.eye(n)
    L = np.linalg.cholesky(K)                 # K = L L^T
    z = np.linalg.solve(L, y)                 # z = L^-1 y, so y^T K^-1 y = z^T z
    return (0.5 * np.dot(z, z) + np.sum(np.log(np.diagonal(L)))
            + 0.5 * n * np.log(2.0 * np.pi))


def nlml_grad_analytic(theta, x, y):
    """(NLML, its gradient) by hand: dNLML/dtheta_j = 1/2 tr((K^-1 - a a^T) dK_j),
    a = K^-1 y (the standard formula, Rasmussen and Williams eq. 5.9)."""
    n = len(x)
    D2 = sq_dists(x, x)
    E = np.exp(theta[1]) * np.exp(-0.5 * D2 / np.exp(2.0 * theta[0]))
    noise_var = np.exp(theta[2])
    K = E + noise_var * np.eye(n)
    L = np.linalg.cholesky(K)
    Linv = np.linalg.inv(L)
    Kinv = Linv.T @ Linv
    a = Kinv @ y
    W = Kinv - np.outer(a, a)
    dK = (E * D2 / np.exp(2.0 * theta[0]),    # dK / dlog l
          E)                                  # dK / dlog s_f^2
    grad = [0.5 * np.sum(W * d) for d in dK]  # tr(W dK) for symmetric W, dK
    grad.append(0.5 * noise_var * np.trace(W))  # dK / dlog s_n^2 = s_n^2 I
    value = 0.5 * y @ a + np.sum(np.log(np.diag(L))) + 0.5 * n * np.log(2.0 * np.pi)
    return float(value), np.array(grad)


def fit(x, y, theta0=THETA0):
    """fd.minimize (L-BFGS-B with the exact gradient from the tape)."""
    return fd.minimize(nlml, np.asarray(theta0, dtype=float), args=(x, y), tol=1e-12)


def fit_scipy(x, y, theta0=THETA0):
    """The same fit by scipy.optimize.minimize with the hand-derived gradient."""
    from scipy.optimize import minimize
    return minimize(nlml_grad_analytic, np.asarray(theta0, dtype=float), args=(x, y),
                    jac=True, method="L-BFGS-B", tol=1e-12)


def predict(theta, x, y, xs):
    """Posterior mean and variance of f at xs (plain NumPy)."""
    K = kernel(theta, x, x) + np.exp(theta[2]) * np.eye(len(x))
    L = np.linalg.cholesky(K)
    Ks = kernel(theta, x, xs)                       # (n, m)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
    V = np.linalg.solve(L, Ks)
    mean = Ks.T @ alpha
    var = np.exp(theta[1]) - np.sum(V * V, axis=0)  # k(x*, x*) = s_f^2
    return mean, np.maximum(var, 0.0)


def describe(theta):
    """The hyperparameters themselves (not their logs)."""
    values = (np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2]))
    return ", ".join("%s = %.4f" % nv for nv in zip(NAMES, values))


def plot(theta, x, y, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = np.linspace(x.min() - 1.0, x.max() + 1.0, 400)
    mean, var = predict(theta, x, y, xs)
    sd = np.sqrt(var)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(xs, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.25,
                    label="posterior mean +- 2 sd")
    ax.plot(xs, mean, color="C0", linewidth=1.5, label="posterior mean")
    ax.plot(x, y, "k.", markersize=6, label="data (n = %d)" % len(x))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("GP regression, fitted l = %.3g, s_f^2 = %.3g, s_n^2 = %.3g"
                 % tuple(np.exp(theta)))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="gp.png", help="PNG to write ('' to skip)")
    ap.add_argument("--n", type=int, default=40, help="number of data points")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    a = ap.parse_args(argv)
    say = (lambda *s: None) if a.quiet else print
    x, y = make_data(a.n, a.seed)

    t0 = time.perf_counter()
    res = fit(x, y)
    seconds = time.perf_counter() - t0
    value, grad = fd.value_and_grad(nlml)(res.x, x, y)
    say("fd.minimize: %s (%d evaluations, %.3f s)" % (res.message, res.nfev, seconds))
    say("  fitted     %s" % describe(res.x))
    say("  NLML       %.6f" % value)
    say("  gradient   %s  (|g| = %.1e)" % (np.array2string(grad, precision=2), np.linalg.norm(grad)))
    result = {"res": res, "theta": res.x, "nlml": value, "grad": grad, "x": x, "y": y}

    try:
        ref = fit_scipy(x, y)
    except ImportError:
        say("SciPy is not installed: no comparison")
    else:
        say("scipy.optimize.minimize with the hand-derived gradient: %d evaluations"
            % ref.nfev)
        say("  fitted     %s" % describe(ref.x))
        say("  NLML       %.6f;  max |theta - theta_scipy| = %.1e"
            % (ref.fun, np.max(np.abs(res.x - ref.x))))
        result["scipy"] = ref

    if a.out:
        try:
            plot(res.x, x, y, a.out)
            say("wrote", a.out)
        except ImportError:
            say("matplotlib is not installed: no plot (pip install matplotlib)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
