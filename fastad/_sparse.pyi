"""Type stubs of the sparse derivatives (API.md section 12)."""
from collections.abc import Callable
from typing import Any, Literal, overload

from numpy.typing import ArrayLike

from fastad._sparse_plan import SparseInfo as SparseInfo

__all__ = ["jacobian_sparsity", "sparse_jacobian", "hessian_sparsity",
           "sparse_hessian", "least_squares"]

# scipy.sparse.csr_array (SciPy ships no type information)
_Sparse = Any
_Result = Any   # scipy.optimize.OptimizeResult

def jacobian_sparsity(f: Callable[..., Any]) -> Callable[[ArrayLike], _Sparse]: ...
def hessian_sparsity(f: Callable[..., Any]) -> Callable[[ArrayLike], _Sparse]: ...
@overload
def sparse_jacobian(
    f: Callable[..., Any], info: Literal[False] = False
) -> Callable[[ArrayLike], _Sparse]: ...
@overload
def sparse_jacobian(
    f: Callable[..., Any], info: Literal[True]
) -> Callable[[ArrayLike], tuple[_Sparse, SparseInfo]]: ...
@overload
def sparse_jacobian(
    f: Callable[..., Any], info: bool
) -> Callable[[ArrayLike], Any]: ...
@overload
def sparse_hessian(
    f: Callable[..., Any], info: Literal[False] = False
) -> Callable[[ArrayLike], _Sparse]: ...
@overload
def sparse_hessian(
    f: Callable[..., Any], info: Literal[True]
) -> Callable[[ArrayLike], tuple[_Sparse, SparseInfo]]: ...
@overload
def sparse_hessian(
    f: Callable[..., Any], info: bool
) -> Callable[[ArrayLike], Any]: ...
def least_squares(
    f: Callable[..., Any], x0: ArrayLike, sparse: bool | None = None, **kw: Any
) -> _Result: ...
