"""Optimal control of a Van der Pol oscillator with IPOPT, derivatives from fastad.

Steer  x1' = (1 - x2^2) x1 - x2 + u,  x2' = x1  from (0, 1) over t in [0, 10]
with |u| <= 1 and x1 >= -0.25, minimising  int x1^2 + x2^2 + u^2 dt.  Direct
transcription with the trapezoidal rule on T intervals gives a sparse nonlinear
program in n = 3 T + 2 variables (x1, x2 at T + 1 points, u on T intervals) with
2 T equality constraints.  IPOPT (through cyipopt, optional) gets:

- the exact constraint Jacobian as a sparse matrix: fd.trace(constraints) then
  tf.sparse_jacobian, whose pattern and coloring are found once (a handful of
  colors: each constraint touches 5 variables), every later call one replay and
  one compressed forward sweep;
- the exact Hessian of the Lagrangian sigma f + lambda . c, traced with sigma and
  lambda as dynamic parameters, from tf.sparse_hessian (star coloring, one
  forward-over-reverse sweep of a few directions).

    python examples/ipopt_optimal_control.py            # T = 3333: n = 10001
    python examples/ipopt_optimal_control.py --T 200

Needs `pip install cyipopt` (built against Ipopt: on Debian/Ubuntu,
`apt-get install coinor-libipopt-dev pkg-config` first).
"""
import argparse
import time

import numpy as np

import fastad as fd

TF = 10.0


class VanDerPol:
    """The transcribed problem for T intervals: bounds, functions, derivatives."""

    def __init__(self, T):
        self.T = T
        self.h = TF / T
        self.n = 3 * T + 2
        self.m = 2 * T

    def split(self, z):
        T = self.T
        return z[:T + 1], z[T + 1:2 * T + 2], z[2 * T + 2:]

    def objective(self, z):
        x1, x2, u = self.split(z)
        run = x1 * x1 + x2 * x2
        # trapezoidal rule for the states, piecewise-constant control
        return self.h * (fd.sum(run) - 0.5 * (run[0] + run[-1]) + fd.sum(u * u))

    def constraints(self, z):
        x1, x2, u = self.split(z)
        f1 = (1.0 - x2 * x2) * x1 - x2
        f2 = x1
        d1 = x1[1:] - x1[:-1] - 0.5 * self.h * (f1[1:] + f1[:-1] + 2.0 * u)
        d2 = x2[1:] - x2[:-1] - 0.5 * self.h * (f2[1:] + f2[:-1])
        return fd.concatenate([d1, d2])

    def lagrangian(self, z, lam, sigma):
        return sigma * self.objective(z) + fd.sum(lam * self.constraints(z))

    def start(self):
        T = self.T
        z = np.zeros(self.n)
        z[T + 1:2 * T + 2] = 1.0          # x2 = 1: the initial state, held
        return z

    def bounds(self):
        T, inf = self.T, 1e20
        lb = np.concatenate([np.full(T + 1, -0.25), np.full(T + 1, -inf), -np.ones(T)])
        ub = np.concatenate([np.full(T + 1, inf), np.full(T + 1, inf), np.ones(T)])
        lb[0] = ub[0] = 0.0               # x1(0) = 0
        lb[T + 1] = ub[T + 1] = 1.0       # x2(0) = 1
        return lb, ub


class FastadNLP:
    """The callbacks cyipopt calls, every derivative exact and sparse."""

    def __init__(self, prob):
        self.prob = prob
        z0 = prob.start()
        self.f = fd.trace(prob.objective, z0)
        self.c = fd.trace(prob.constraints, z0)
        self.L = fd.trace(prob.lagrangian, z0, np.ones(prob.m), 1.0)
        J = self.c.sparse_jacobian(z0)
        self._jac_structure = _coo(J)
        H = self.L.sparse_hessian(z0, np.ones(prob.m), 1.0)
        r, c = _coo(H)
        self._lower = r >= c              # IPOPT wants the lower triangle
        self._hess_structure = (r[self._lower], c[self._lower])

        self.iterations = 0

    def intermediate(self, alg_mod, iter_count, *rest):
        self.iterations = iter_count       # IPOPT's iteration counter
        return True

    def objective(self, z):
        return self.f(z)

    def gradient(self, z):
        return self.f.grad(z)

    def constraints(self, z):
        return self.c(z)

    def jacobianstructure(self):
        return self._jac_structure

    def jacobian(self, z):
        return self.c.sparse_jacobian(z).data

    def hessianstructure(self):
        return self._hess_structure

    def hessian(self, z, lam, sigma):
        return self.L.sparse_hessian(z, np.asarray(lam), float(sigma)).data[self._lower]


def _coo(A):
    """(rows, cols) of a csr_array's stored entries, in the order of A.data."""
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    return rows, A.indices.copy()


def solve(T=3333, print_level=0, tol=1e-8, hessian="exact"):
    """Solve on T intervals; hessian="limited-memory" leaves the Lagrangian
    Hessian to IPOPT's quasi-Newton approximation (for comparison)."""
    try:
        import cyipopt
    except ImportError:
        raise ImportError("this example needs cyipopt: pip install cyipopt (on Debian/"
                          "Ubuntu first: apt-get install coinor-libipopt-dev "
                          "pkg-config)") from None
    prob = VanDerPol(T)
    t0 = time.perf_counter()
    nlp = FastadNLP(prob)
    lb, ub = prob.bounds()
    problem = cyipopt.Problem(n=prob.n, m=prob.m, problem_obj=nlp, lb=lb, ub=ub,
                              cl=np.zeros(prob.m), cu=np.zeros(prob.m))
    problem.add_option("print_level", print_level)
    problem.add_option("tol", tol)
    problem.add_option("sb", "yes")
    problem.add_option("hessian_approximation", hessian)
    z, info = problem.solve(prob.start())
    wall = time.perf_counter() - t0
    return {"z": z, "status": info["status"], "objective": float(info["obj_val"]),
            "iterations": nlp.iterations, "wall": wall, "n": prob.n, "m": prob.m,
            "constraint_violation": float(np.max(np.abs(nlp.c(z)))),
            "jac_colors": nlp.c.sparse_jacobian(z, info=True)[1].colors,
            "hess_colors": nlp.L.sparse_hessian(z, np.ones(prob.m), 1.0,
                                                info=True)[1].colors}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=3333, help="intervals (n = 3 T + 2)")
    args = ap.parse_args(argv)
    r = solve(args.T)
    print("n = %d variables, m = %d constraints: IPOPT status %d after %d iterations, "
          "%.2f s" % (r["n"], r["m"], r["status"], r["iterations"], r["wall"]))
    print("objective %.8f, max constraint violation %.1e; colors: Jacobian %d, "
          "Lagrangian Hessian %d" % (r["objective"], r["constraint_violation"],
                                     r["jac_colors"], r["hess_colors"]))
    return r


if __name__ == "__main__":
    main()
