"""fastad: fast automatic differentiation of Python and NumPy code.

The public surface is exactly API.md; everything else lives in private modules.
"""
from fastad._errors import FastADError, GradientCheckError, TapeError, TraceError
from fastad._tape import Tape, Var
from fastad._tape import (
    # generated from the op table (csrc/fastad_ops.h)
    sin, cos, tan, arcsin, arccos, arctan, arctan2, sinh, cosh, tanh, arcsinh,
    arccosh, arctanh, exp, exp2, expm1, log, log2, log10, log1p, sqrt, cbrt, square,
    sign, hypot, power, maximum, minimum, floor, ceil, erf, erfc, sigmoid, relu,
    softplus,
    # built from scalar slots
    sum, mean, prod, dot, matmul, stack, array, reshape, transpose, concatenate,
)
from fastad._tape import abs as _abs_op
from fastad._math import clip, where, logsumexp
from fastad._array_math import softmax, log_softmax   # also registers array records
from fastad import _numpy_dispatch                      # np.sin(x), np.sum(x), ... on Vars
from fastad._functional import grad, value_and_grad, check_grad, debug_nans
from fastad._functional import release_memory
from fastad._dual import Dual
from fastad._forward import jvp, vjp, jacobian, hessian, hvp, derivative
from fastad import optim, nn
from fastad._minimize import minimize
from fastad._trace import trace, load

abs = _abs_op

# Lists, tuples and object arrays of Duals (forward mode has no array type of its
# own) go to fastad._dual_collections; every other call is unchanged.
from fastad import _dual_collections
for _name in ("sum", "mean", "prod", "where", "stack", "array", "dot", "matmul",
              "reshape", "transpose", "concatenate", "logsumexp", "softmax",
              "log_softmax"):
    globals()[_name] = _dual_collections.dual_aware(globals()[_name],
                                                    getattr(_dual_collections, _name))
del _name

__version__ = "0.1.0"

__all__ = [
    "FastADError", "GradientCheckError", "TapeError", "TraceError", "Tape", "Var",
    "grad", "value_and_grad", "check_grad", "debug_nans", "release_memory",
    "Dual", "jvp", "vjp", "jacobian", "hessian", "hvp", "derivative",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh",
    "tanh", "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sqrt", "cbrt", "square", "abs", "sign", "hypot", "power",
    "maximum", "minimum", "clip", "where", "floor", "ceil", "erf", "erfc", "sigmoid",
    "relu", "softplus", "logsumexp", "sum", "mean", "prod", "dot", "matmul", "stack",
    "array", "reshape", "transpose", "concatenate", "softmax", "log_softmax",
    "optim", "nn", "minimize", "trace", "load",
]
