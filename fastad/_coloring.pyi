# A placeholder: fastad._coloring is a compiled Cython module, which mypy cannot read,
# and the private Python modules that import it are analysed by stubtest.  Its
# public classes are typed where the API exposes them (fastad/__init__.pyi); the
# rest is private, so any name here is Any (tools/stubtest_allowlist.txt).
from typing import Any

def __getattr__(name: str) -> Any: ...
