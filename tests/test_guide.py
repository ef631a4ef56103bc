"""The documentation cannot rot: every code block of every page under docs/ runs.

The rules are those of the documentation build (docs/_ext/runblocks.py, shared with
the Sphinx extension so that both check the same thing): ```python blocks run in
order in one namespace per page, and a ```text block is an output sample that
must equal exactly what the python block before it printed.  This test needs no
Sphinx; tools/build_docs.sh also runs the docstrings' examples and the gallery.
"""
import importlib.util
import pathlib
import re

import pytest

from _compiler import compiles, have_cc

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def _runblocks():
    spec = importlib.util.spec_from_file_location("runblocks", DOCS / "_ext" / "runblocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runblocks = _runblocks()


def pages():
    return sorted(p for p in DOCS.rglob("*.md")
                  if "_build" not in p.parts and "design" not in p.parts)


def blocks(path):
    text = path.read_text(encoding="utf-8")
    out = []
    for m in BLOCK.finditer(text):
        kind = runblocks.kind_of(m.group(1))
        if kind is not None:
            out.append(runblocks.Block(kind, m.group(2), text[:m.start()].count("\n") + 1))
    return out


def test_docs_have_code():
    kinds = [b.kind for p in pages() for b in blocks(p)]
    assert kinds.count("python") >= 30
    assert kinds.count("text") >= 3          # output samples checked against the code


def test_tutorial_has_code():
    kinds = [b.kind for b in blocks(DOCS / "tutorial.md")]
    assert kinds.count("python") >= 8


@pytest.mark.parametrize("page", [str(p.relative_to(DOCS)) for p in pages()])
def test_page_blocks_run(page):
    pytest.importorskip("scipy")      # the tutorial and the fitting guide call fd.minimize
    path = DOCS / page
    if any(compiles(b.code) for b in blocks(path)) and not have_cc():
        pytest.skip("the page compiles traces: no working C compiler ($CC or cc)")
    failures = runblocks.run_page(blocks(path), page)
    assert not failures, "\n\n".join("%s:%d: %s" % (page, b.line, msg)
                                     for b, msg in failures)


def test_an_output_sample_is_checked():
    # the rule itself: a wrong sample fails, the right one passes
    code = runblocks.Block("python", "print(1 + 1)\n", 1)
    assert runblocks.run_page([code, runblocks.Block("text", "2\n", 3)], "t") == []
    bad = runblocks.run_page([code, runblocks.Block("text", "3\n", 3)], "t")
    assert len(bad) == 1 and "differs" in bad[0][1]
    raised = runblocks.run_page([runblocks.Block("python", "1 / 0\n", 1)], "t")
    assert len(raised) == 1 and "ZeroDivisionError" in raised[0][1]


def _public_docstrings():
    """(name, docstring) of every public object and of its classes' members:
    the docstrings the API reference shows."""
    import fastad
    from fastad._trace import TracedFunction
    objs = [("fastad." + n, getattr(fastad, n)) for n in fastad.__all__]
    objs += [("fastad.optim." + n, getattr(fastad.optim, n)) for n in fastad.optim.__all__]
    objs += [("fastad.nn." + n, getattr(fastad.nn, n)) for n in fastad.nn.__all__]
    objs.append(("TracedFunction", TracedFunction))
    out = []
    for name, obj in objs:
        out.append((name, obj.__doc__ or ""))
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") or attr in ("__call__", "__len__"):
                    out.append(("%s.%s" % (name, attr), getattr(member, "__doc__", "") or ""))
    return out


def test_docstring_examples_run():
    # the API reference's examples, as the documentation build runs them
    pytest.importorskip("scipy")      # fd.minimize's example
    examples = [(name, doc) for name, doc in _public_docstrings() if ">>>" in doc]
    assert len(examples) >= 15
    for name, doc in examples:
        block = runblocks.Block("doctest", doc, 0)
        failures = runblocks.run_page([block], name)
        assert not failures, "%s: %s" % (name, failures[0][1])
