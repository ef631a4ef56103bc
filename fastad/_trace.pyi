"""Type stubs of fd.trace and the TracedFunction it returns (API.md section 5)."""
import os
from collections.abc import Callable
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from fastad import (
    _Float64Array, _FloatArray, _FloatT, _FloatScalarT, _GradTree, _IntArrayLike, _Output,
    _PyTree, _RealArrayLike, _TreeT,
)

__all__ = ["TracedFunction", "trace"]

class TracedFunction:
    """A function recorded by fd.trace (or read by fd.load): call it like f, and
    take its derivatives, without running f again.

    ``x`` has the structure and shapes of the traced ``x0``; ``*params`` are the
    dynamic parameters given to fd.trace (omitted: their trace-time values).
    """

    retrace: bool
    __name__: str
    # built by fd.trace and fd.load only
    def __init__(
        self, f: Callable[..., Any] | None, path: Any, xspec: Any, pspec: Any,
        p_default: Any, retrace: bool, name: str, optimize: bool = False,
    ) -> None: ...
    @property
    def input_slots(self) -> NDArray[np.int64]: ...
    @property
    def output_slots(self) -> NDArray[np.int64]: ...
    def __call__(self, x: _PyTree, *params: _PyTree) -> float | _Float64Array: ...
    @overload
    def value_and_grad(self, x: float, *params: _PyTree) -> tuple[float, float]: ...
    @overload
    def value_and_grad(
        self, x: NDArray[np.integer[Any] | np.bool_], *params: _PyTree
    ) -> tuple[float, _Float64Array]: ...
    @overload
    def value_and_grad(self, x: _TreeT, *params: _PyTree) -> tuple[float, _TreeT]: ...
    @overload
    def grad(self, x: float, *params: _PyTree) -> float: ...
    @overload
    def grad(
        self, x: NDArray[np.integer[Any] | np.bool_], *params: _PyTree
    ) -> _Float64Array: ...
    @overload
    def grad(self, x: _TreeT, *params: _PyTree) -> _TreeT: ...
    def jvp(
        self, x: _PyTree, v: _PyTree, *params: _PyTree
    ) -> tuple[float | _Float64Array, float | _FloatArray]: ...
    @overload
    def jacobian(self, x: float, *params: _PyTree) -> float | _Float64Array: ...
    @overload
    def jacobian(self, x: NDArray[_FloatT], *params: _PyTree) -> NDArray[_FloatT]: ...
    @overload
    def jacobian(self, x: _IntArrayLike, *params: _PyTree) -> _Float64Array: ...
    @overload
    def jacobian(self, x: _PyTree, *params: _PyTree) -> _GradTree: ...
    @overload
    def hvp(self, x: float, v: float, *params: _PyTree) -> float: ...
    @overload
    def hvp(
        self, x: NDArray[np.integer[Any] | np.bool_], v: _PyTree, *params: _PyTree
    ) -> _Float64Array: ...
    @overload
    def hvp(self, x: _TreeT, v: _PyTree, *params: _PyTree) -> _TreeT: ...
    @overload
    def hessian(self, x: float, *params: _PyTree) -> float: ...
    @overload
    def hessian(self, x: _FloatScalarT, *params: _PyTree) -> _FloatScalarT: ...
    @overload
    def hessian(self, x: np.integer[Any] | np.bool_, *params: _PyTree) -> float: ...
    @overload
    def hessian(self, x: NDArray[_FloatT], *params: _PyTree) -> NDArray[_FloatT]: ...
    @overload
    def hessian(self, x: _IntArrayLike, *params: _PyTree) -> _Float64Array: ...
    # sparse derivatives: scipy.sparse.csr_array (untyped), or (matrix, SparseInfo)
    def sparse_jacobian(self, x: _RealArrayLike, *params: _PyTree, info: bool = False) -> Any: ...
    def sparse_hessian(self, x: _RealArrayLike, *params: _PyTree, info: bool = False) -> Any: ...
    # X: one flattened input per row, shape (m, n); gradients in X's floating dtype.
    # client: a dask.distributed.Client (typed Any: Dask is optional); then X may
    # also be a dask.array or a list of rows, and a dask.array X gives a dask.array
    @overload
    def grad_batch(
        self, X: NDArray[_FloatT], *params: _PyTree, threads: int | None = None,
        client: None = None,
    ) -> NDArray[_FloatT]: ...
    @overload
    def grad_batch(
        self, X: _IntArrayLike, *params: _PyTree, threads: int | None = None,
        client: None = None,
    ) -> _Float64Array: ...
    @overload
    def grad_batch(
        self, X: Any, *params: _PyTree, threads: int | None = None, client: Any
    ) -> Any: ...
    @overload
    def value_batch(
        self, X: _RealArrayLike, *params: _PyTree, threads: int | None = None,
        client: None = None,
    ) -> _Float64Array: ...
    @overload
    def value_batch(
        self, X: Any, *params: _PyTree, threads: int | None = None, client: Any
    ) -> Any: ...
    @overload
    def value_and_grad_batch(
        self, X: NDArray[_FloatT], *params: _PyTree, threads: int | None = None
    ) -> tuple[_Float64Array, NDArray[_FloatT]]: ...
    @overload
    def value_and_grad_batch(
        self, X: _IntArrayLike, *params: _PyTree, threads: int | None = None
    ) -> tuple[_Float64Array, _Float64Array]: ...
    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def n_guards(self) -> int: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    def compile(self) -> TracedFunction: ...
    def __reduce__(self) -> tuple[Callable[..., TracedFunction], tuple[Any, ...]]: ...

def trace(
    f: Callable[..., _Output], x0: _PyTree, *params: _PyTree, retrace: bool = False,
    optimize: bool = True,
) -> TracedFunction: ...
