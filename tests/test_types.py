"""The type stubs (fastad/*.pyi) against the runtime and against mypy.

tests/typed_example.py states what mypy must infer and checks at run time that the
runtime returns it; it runs here on every Python the suite runs on.  The static
half -- mypy --strict on it, the misuse file that mypy must reject, stubtest --
is tools/check_types.sh, run here when mypy is installed (the `typing` extra).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

import fastad as fd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "tests", "typed_example.py")
MISUSE = os.path.join(ROOT, "tests", "typed_misuse.py")


def _read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _load_example():
    spec = importlib.util.spec_from_file_location("typed_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_typed_example_runs_and_its_results_hold(capsys):
    # every assert in it compares what the stubs claim with what came back
    _load_example().main()
    assert "all checks passed" in capsys.readouterr().out


def test_typed_example_uses_every_public_name():
    # "the whole public API": a name added to fastad.__all__ needs a typed use
    # there, or mypy never checks its stub against real code
    source = _read(EXAMPLE)
    missing = [name for name in fd.__all__
               if not re.search(r"\bfd\.%s\b" % re.escape(name), source)]
    assert not missing, "tests/typed_example.py does not use fd.%s" % ", fd.".join(missing)


def test_stubs_ship_with_the_package():
    here = os.path.dirname(fd.__file__)
    for name in ("py.typed", "__init__.pyi", "_trace.pyi", "optim.pyi", "nn.pyi"):
        assert os.path.exists(os.path.join(here, name)), name


def test_misuse_file_marks_its_errors():
    # the markers are what tools/check_types.sh compares mypy's report with
    lines = _read(MISUSE).splitlines()
    marked = [line for line in lines if re.search(r"#\s*E:\s*[\w|-]+\s*$", line)]
    assert len(marked) >= 30


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e \".[typing]\")")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_check_types_script():
    # mypy --strict on the example (passes) and the misuse file (fails exactly
    # where marked), and stubtest against this runtime
    proc = subprocess.run(["bash", os.path.join(ROOT, "tools", "check_types.sh")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "check_types: all passed" in proc.stdout
