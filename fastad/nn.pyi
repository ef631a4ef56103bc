"""Type stubs of fd.nn (API.md section 7): a Var in gives a Var (to differentiate),
plain arrays give a float (to evaluate)."""
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from fastad import Var, _Real, _RealArrayLike

__all__ = ["cross_entropy", "mse"]

# integer class labels, shape (n,) for logits (n, k), one int for logits (k,)
_Labels = int | np.integer[Any] | NDArray[np.integer[Any] | np.floating[Any]] | list[int]

@overload
def cross_entropy(logits: Var, labels: _Labels) -> Var: ...
@overload
def cross_entropy(logits: _RealArrayLike, labels: _Labels) -> float: ...
@overload
def mse(pred: Var, target: Var | _Real | _RealArrayLike) -> Var: ...
@overload
def mse(pred: _Real | _RealArrayLike, target: Var) -> Var: ...
@overload
def mse(pred: _Real | _RealArrayLike, target: _Real | _RealArrayLike) -> float: ...
