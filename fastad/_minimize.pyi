"""Type stub of fd.minimize (API.md section 7)."""
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, type_check_only

from fastad import _Float64Array, _Output, _TreeT

_T_co = TypeVar("_T_co", covariant=True)

@type_check_only
class _OptimizeResult(Protocol[_T_co]):
    """scipy.optimize.OptimizeResult as fd.minimize returns it (SciPy ships no
    types): a dict whose keys are also attributes, plus ``params``."""

    x: _Float64Array
    fun: float
    success: bool
    status: int
    message: str
    nit: int
    nfev: int
    @property
    def params(self) -> _T_co: ...   # res.x in the structure of x0
    def __getitem__(self, key: str, /) -> Any: ...
    def __getattr__(self, name: str, /) -> Any: ...   # jac, hess_inv, njev, ...

def minimize(
    f: Callable[..., _Output],
    x0: _TreeT,
    method: str | Callable[..., Any] = "L-BFGS-B",
    trace: bool = False,
    args: tuple[Any, ...] = (),
    **options: Any,
) -> _OptimizeResult[_TreeT]: ...

