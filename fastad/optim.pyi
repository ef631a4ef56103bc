"""Type stubs of fd.optim (API.md section 7).

`params` and `grads` are pytrees of floats and arrays of one structure; `step`
returns new parameters of that structure (float leaves stay floats, arrays come
back as float64 arrays) and never writes into the ones it was given.
"""
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from fastad import _PyTree

__all__ = ["Optimizer", "SGD", "Adam"]

_TreeT = TypeVar("_TreeT", bound=_PyTree)

class Optimizer:
    t: int   # steps taken
    def __init__(self) -> None: ...
    def step(self, params: _TreeT, grads: _PyTree) -> _TreeT: ...
    def reset(self) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

class SGD(Optimizer):
    # hyperparameters are plain attributes: change lr between steps to decay it
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None: ...

class Adam(Optimizer):
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    decoupled: bool
    def __init__(
        self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08, weight_decay: float = 0.0, decoupled: bool = False,
    ) -> None: ...
