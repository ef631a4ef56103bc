"""Every ```python block of README.md runs, each in a fresh interpreter."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastad
from _compiler import compiles, have_cc

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 1


def test_readme_is_a_landing_page():
    text = README.read_text()
    # CI runs exactly the Install section's two commands
    assert '```bash\npip install -e ".[test]"\n```' in text
    assert "```bash\npytest\n```" in text
    # it speaks to users: no internal planning words, and the reference is in docs/
    for word in ("API.md", "DESIGN.md", "budget"):
        assert word.lower() not in text.lower(), word
    assert len(text.splitlines()) < 200
    for page in re.findall(r"\]\(((?:docs/)?[\w/.-]+\.md)\)", text):
        assert (README.parent / page).is_file(), page


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    if compiles(BLOCKS[index]) and not have_cc():
        pytest.skip("the block compiles a trace: no working C compiler ($CC or cc)")
    # the fastad this test process imports (an editable install or the source tree)
    root = str(pathlib.Path(fastad.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=path)
    r = subprocess.run([sys.executable, "-c", BLOCKS[index]], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, "README block %d failed:\n%s\n%s" % (
        index, BLOCKS[index], r.stderr[-2000:])


def test_supported_list_is_generated_from_the_registry():
    # README's summary and docs/supported.md are tools/gen_supported.py's output for
    # the registry as it is: an entry added without regenerating them fails here
    import numpy as np
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("the list holds NumPy 2's names (numpy.trapezoid, not numpy.trapz)")
    pytest.importorskip("scipy", reason="the list names SciPy's ufuncs")
    tool = README.parent / "tools" / "gen_supported.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
