"""docs/guide.md cannot rot: every ```python block runs, in order, in one namespace.

```text blocks are output samples and are compared with what the preceding block
printed when that block called print(tape.wengert()) (exact text).
"""
import contextlib
import io
import pathlib
import re

import pytest

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def blocks():
    return [(m.group(1), m.group(2), GUIDE.read_text()[:m.start()].count("\n") + 1)
            for m in BLOCK.finditer(GUIDE.read_text())]


def test_guide_has_code():
    kinds = [k for k, _, _ in blocks()]
    assert kinds.count("python") >= 8


def test_guide_blocks_run():
    pytest.importorskip("scipy")      # section 4 calls fd.minimize
    namespace = {"__name__": "guide"}
    printed = ""
    for kind, code, line in blocks():
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, "%s:%d" % (GUIDE.name, line), "exec"), namespace)
            printed = out.getvalue()
        elif kind == "text":
            # an output sample must be exactly what the block before it printed
            assert code.strip() == printed.strip(), "guide.md:%d: output differs" % line
