"""Bayesian logistic regression: MAP, Laplace approximation and Hamiltonian Monte Carlo.

Binary outcomes y_i in {0, 1} with covariates x_i (an intercept and three
covariates), a logistic likelihood and independent normal priors on the weights:

    y_i ~ Bernoulli(expit(x_i . w)),   w_j ~ N(0, 2.5^2)

so the log posterior, up to a constant, is

    log p(w | y) = sum_i log Bernoulli(y_i; expit(z_i)) + sum_j log N(w_j; 0, 2.5^2),
    z = X w.

It is written as a statistician would, with fd.stats and fd.special in SciPy's
signatures: `log_posterior` computes the log-likelihood as
y log expit(z) + (1 - y) log expit(-z) with fd.special.log_expit, which is
fd.stats.bernoulli.logpmf(y, expit(z)) without the rounding of expit(z) to 0 or 1
in the tails (`log_posterior_bernoulli` is that literal form, kept to show they
agree); the prior is fd.stats.norm.logpdf(w, 0, 2.5).  No derivative is derived by
hand for the fit: fastad records the function when w is a Var.

1. the MAP (posterior mode) by fd.minimize with method="trust-exact", which gets
   the exact gradient and the exact Hessian from the tape;
2. the Laplace approximation N(w_MAP, Sigma), Sigma = (-H)^-1 with H = fd.hessian
   of the log posterior at the MAP;
3. Hamiltonian Monte Carlo with the gradient from fd.value_and_grad, the Laplace
   covariance as its inverse mass matrix (so the leapfrog steps see a well-scaled
   problem), seeded; and a table comparing the posterior means and standard
   deviations of the two.

`log_posterior_grad_analytic` and `log_posterior_hessian_analytic` are the textbook
derivatives, X^T (y - p) - w / 2.5^2 and -X^T diag(p (1 - p)) X - I / 2.5^2 with
p = expit(X w), kept to check the tape against and for the SciPy comparison.

    python examples/bayes_logistic.py                  # writes bayes_logistic.png here
    python examples/bayes_logistic.py out/post.png     # or where you say
    python examples/bayes_logistic.py --n 500 --seed 3 --samples 2000
"""
import argparse
import sys
import time

import numpy as np

import fastad as fd

PRIOR_SD = 2.5
NAMES = ("intercept", "x1", "x2", "x3")
W_TRUE = np.array([-0.5, 1.0, -2.0, 0.5])        # the weights the data are drawn with


def make_data(n=200, seed=0, w_true=W_TRUE):
    """n outcomes from the logistic model with weights w_true, seeded.

    X is (n, 4): a column of ones (the intercept) and three standard normal covariates."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, len(w_true) - 1))])
    p = 1.0 / (1.0 + np.exp(-(X @ w_true)))
    y = (rng.random(n) < p).astype(float)
    return X, y


def log_posterior(w, X, y):
    """log p(w | y) up to a constant: the Bernoulli log-likelihood, as log-expits,
    plus the normal log prior.  Works on a Var w (recorded) and on an array."""
    z = X @ w
    loglik = fd.sum(y * fd.special.log_expit(z) + (1.0 - y) * fd.special.log_expit(-z))
    logprior = fd.sum(fd.stats.norm.logpdf(w, 0.0, PRIOR_SD))
    return loglik + logprior


def log_posterior_bernoulli(w, X, y):
    """The same log posterior written literally with fd.stats.bernoulli.logpmf
    (fine here; in the far tails expit(z) rounds to 0 or 1 and it is -inf)."""
    p = fd.special.expit(X @ w)
    return (fd.sum(fd.stats.bernoulli.logpmf(y, p))
            + fd.sum(fd.stats.norm.logpdf(w, 0.0, PRIOR_SD)))


def neg_log_posterior(w, X, y):
    return -log_posterior(w, X, y)


def _expit(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))          # no overflow for large |z|


def log_posterior_grad_analytic(w, X, y):
    """d log p(w | y) / dw = X^T (y - p) - w / s^2, p = expit(X w) (by hand)."""
    return X.T @ (y - _expit(X @ w)) - w / PRIOR_SD ** 2


def log_posterior_hessian_analytic(w, X, y):
    """d^2 log p(w | y) / dw^2 = -X^T diag(p (1 - p)) X - I / s^2 (by hand)."""
    p = _expit(X @ w)
    return -(X.T * (p * (1.0 - p))) @ X - np.eye(len(w)) / PRIOR_SD ** 2


def fit_map(X, y):
    """The posterior mode by fd.minimize: trust-exact, exact gradient and Hessian."""
    return fd.minimize(neg_log_posterior, np.zeros(X.shape[1]), args=(X, y),
                       method="trust-exact", options={"gtol": 1e-9})


def fit_map_scipy(X, y):
    """The same mode by scipy.optimize.minimize (BFGS) with the hand-derived gradient."""
    from scipy.optimize import minimize

    def f(w):
        return (-float(log_posterior(w, X, y)), -log_posterior_grad_analytic(w, X, y))
    return minimize(f, np.zeros(X.shape[1]), jac=True, method="BFGS",
                    options={"gtol": 1e-8})


def laplace(w_map, X, y):
    """The Laplace approximation's covariance: the inverse of minus the Hessian."""
    H = fd.hessian(log_posterior)(w_map, X, y)
    return np.linalg.inv(-H)


def hmc(X, y, w0, cov, n_samples=1000, n_warmup=100, step=0.4, n_leapfrog=4, seed=1):
    """Hamiltonian Monte Carlo (Neal 2011, section 5.3.3) with the inverse mass matrix
    cov (the Laplace covariance): momenta p ~ N(0, cov^-1), kinetic energy
    p^T cov p / 2, n_leapfrog leapfrog steps of a jittered size.  In the
    Laplace-whitened coordinates a trajectory is about step * n_leapfrog = 1.6 ~ pi/2
    long, a quarter turn of the Gaussian's orbit, so successive draws are nearly
    uncorrelated.  Returns (draws, acceptance rate, number of gradient
    evaluations); the warm-up draws are dropped."""
    rng = np.random.default_rng(seed)
    value_and_grad = fd.value_and_grad(log_posterior)
    chol_precision = np.linalg.cholesky(np.linalg.inv(cov))   # p = chol_precision @ N(0, I)
    w = np.array(w0, dtype=float)
    lp, g = value_and_grad(w, X, y)
    draws, accepted, n_grad = [], 0, 1
    for it in range(n_warmup + n_samples):
        p0 = chol_precision @ rng.standard_normal(len(w))
        eps = step * rng.uniform(0.8, 1.2)
        w_new, p, g_new = w, p0 + 0.5 * eps * g, g
        for k in range(n_leapfrog):
            w_new = w_new + eps * (cov @ p)
            lp_new, g_new = value_and_grad(w_new, X, y)
            n_grad += 1
            p = p + (eps if k < n_leapfrog - 1 else 0.5 * eps) * g_new
        # H = -log p(w) + p^T cov p / 2; accept with probability min(1, exp(-dH))
        log_ratio = (lp_new - 0.5 * p @ cov @ p) - (lp - 0.5 * p0 @ cov @ p0)
        if np.log(rng.random()) < log_ratio:
            w, lp, g = w_new, lp_new, g_new
            accepted += it >= n_warmup
        if it >= n_warmup:
            draws.append(w)
    return np.array(draws), accepted / n_samples, n_grad


def table(w_map, cov, draws, w_true=W_TRUE):
    """The comparison: MAP and Laplace sd against the HMC mean and sd."""
    sd = np.sqrt(np.diag(cov))
    lines = ["%-10s %8s %10s %10s %10s %10s" % ("", "true", "MAP", "Laplace sd",
                                                 "HMC mean", "HMC sd")]
    for j, name in enumerate(NAMES[:len(w_map)]):
        lines.append("%-10s %8.3f %10.3f %10.3f %10.3f %10.3f"
                     % (name, w_true[j], w_map[j], sd[j], draws[:, j].mean(),
                        draws[:, j].std(ddof=1)))
    return "\n".join(lines)


def plot(w_map, cov, draws, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d = draws.shape[1]
    fig, axes = plt.subplots(1, d, figsize=(3.2 * d, 3.2))
    for j, ax in enumerate(np.atleast_1d(axes)):
        sd = np.sqrt(cov[j, j])
        ax.hist(draws[:, j], bins=30, density=True, color="C0", alpha=0.5,
                label="HMC draws")
        grid = np.linspace(w_map[j] - 4 * sd, w_map[j] + 4 * sd, 200)
        ax.plot(grid, np.exp(-0.5 * ((grid - w_map[j]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
                color="C1", linewidth=1.5, label="Laplace")
        ax.axvline(W_TRUE[j], color="k", linestyle=":", linewidth=1, label="true")
        ax.set_title(NAMES[j])
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Bayesian logistic regression: marginal posteriors (n = %d draws)"
                 % len(draws), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="bayes_logistic.png",
                    help="PNG to write ('' to skip)")
    ap.add_argument("--n", type=int, default=200, help="number of observations")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--samples", type=int, default=1000, help="HMC draws kept")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    a = ap.parse_args(argv)
    say = (lambda *s: None) if a.quiet else print
    X, y = make_data(a.n, a.seed)
    say("data: n = %d, %d covariates + intercept, %d ones" % (a.n, X.shape[1] - 1, y.sum()))

    import scipy.optimize  # noqa: F401  fd.minimize needs SciPy; imported before timing
    t0 = time.perf_counter()
    res = fit_map(X, y)
    seconds = time.perf_counter() - t0
    w_map = res.x
    grad = fd.grad(log_posterior)(w_map, X, y)
    say("MAP by fd.minimize (trust-exact): %s (%d evaluations, %.3f s)"
        % (res.message, res.nfev, seconds))
    say("  log posterior %.6f;  |gradient| = %.1e" % (-res.fun, np.linalg.norm(grad)))
    result = {"res": res, "w_map": w_map, "grad": grad, "X": X, "y": y}

    ref = fit_map_scipy(X, y)
    say("  scipy.optimize.minimize (BFGS, hand-derived gradient): "
        "max |w - w_scipy| = %.1e" % np.max(np.abs(w_map - ref.x)))
    result["scipy"] = ref

    t0 = time.perf_counter()
    cov = laplace(w_map, X, y)
    say("Laplace covariance from fd.hessian at the MAP (%.3f s)" % (time.perf_counter() - t0))

    t0 = time.perf_counter()
    draws, rate, n_grad = hmc(X, y, w_map, cov, n_samples=a.samples)
    seconds = time.perf_counter() - t0
    lag1 = [np.corrcoef(draws[:-1, j], draws[1:, j])[0, 1] for j in range(draws.shape[1])]
    say("HMC: %d draws after 100 warm-up, acceptance %.2f, %d gradients by "
        "fd.value_and_grad (%.2f s)" % (len(draws), rate, n_grad, seconds))
    say("  lag-1 autocorrelation of the draws: %s" % " ".join("%.2f" % r for r in lag1))
    say()
    say(table(w_map, cov, draws))
    result.update(cov=cov, draws=draws, acceptance=rate)

    if a.out:
        try:
            plot(w_map, cov, draws, a.out)
            say()
            say("wrote", a.out)
        except ImportError:
            say("matplotlib is not installed: no plot (pip install matplotlib)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
