"""fastad: fast automatic differentiation of Python and NumPy code.

The public names are those of ``__all__`` here and of ``fastad.optim``,
``fastad.nn``, ``fastad.special``, ``fastad.stats`` and ``fastad.linalg``; everything
else lives in private modules.
"""
from fastad._errors import (CompileError, FastADError, GradientCheckError, TapeError,
                            TraceError)
from fastad._tape import Tape, Var
# fd.sin ... fd.concatenate: the public function of every array primitive, as its
# declaration in fastad._prims gives it (importing it fills the registry that NumPy's
# dispatch on Vars and Duals reads too)
from fastad import _prims
from fastad._registry import PUBLIC as _PUBLIC
from fastad._functional import grad, value_and_grad, check_grad, debug_nans
from fastad._functional import release_memory
from fastad._dual import Dual
from fastad._forward import jvp, vjp, jacobian, hessian, hvp, derivative
from fastad import optim, nn, special
from fastad._minimize import minimize
from fastad._trace import trace, load
from fastad._sparse import (jacobian_sparsity, sparse_jacobian, hessian_sparsity,
                            sparse_hessian, least_squares)
from fastad._custom import custom_jvp, custom_vjp
from fastad import stats
from fastad import linalg

globals().update(_PUBLIC)

from fastad._version import __version__

__all__ = [
    "CompileError", "FastADError", "GradientCheckError", "TapeError", "TraceError", "Tape",
    "Var",
    "grad", "value_and_grad", "check_grad", "debug_nans", "release_memory",
    "Dual", "jvp", "vjp", "jacobian", "hessian", "hvp", "derivative",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh",
    "tanh", "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sqrt", "cbrt", "square", "abs", "sign", "hypot", "power",
    "maximum", "minimum", "clip", "where", "floor", "ceil", "erf", "erfc", "sigmoid",
    "relu", "softplus", "logsumexp", "sum", "mean", "prod", "dot", "matmul", "stack",
    "array", "reshape", "transpose", "concatenate", "softmax", "log_softmax",
    "optim", "nn", "special", "stats", "linalg", "minimize", "trace", "load",
    "jacobian_sparsity", "sparse_jacobian", "hessian_sparsity", "sparse_hessian",
    "least_squares",
    "custom_vjp", "custom_jvp",
]
