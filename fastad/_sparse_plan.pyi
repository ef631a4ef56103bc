# Stub of the private plan module: SparseInfo is what the API hands out (info=True);
# the rest is internal (any name is Any, tools/stubtest_allowlist.txt).
from typing import Any

class SparseInfo:
    kind: str
    mode: str
    colors: int
    nnz: int
    shape: tuple[int, int]
    def __init__(self, kind: str, mode: str, colors: int, nnz: int,
                 shape: tuple[int, int]) -> None: ...

def __getattr__(name: str) -> Any: ...
