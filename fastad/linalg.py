"""fd.linalg: scipy.linalg's functions on Vars, with SciPy's signatures.

SciPy's own functions convert their arguments with numpy.asarray (there is no
dispatch protocol for them, unlike NumPy's functions and SciPy's ufuncs), so on
Vars call these instead -- as jax.scipy.linalg and autograd.scipy.linalg do.  On
plain arrays they call SciPy.  numpy.linalg's functions need no such module: they
dispatch on Vars by themselves.

    solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False)
    cho_factor(a, lower=False) -> (c, lower)
    cho_solve((c, lower), b)
"""
from fastad._prims_scipy_linalg import cho_factor, cho_solve, solve_triangular

__all__ = ["solve_triangular", "cho_factor", "cho_solve"]
