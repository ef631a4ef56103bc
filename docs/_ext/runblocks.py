"""Run the code blocks of one documentation page, so that no page can rot.

Used by the Sphinx extension fastad_docs (on each page's doctree) and by
tests/test_guide.py (on the Markdown sources, without Sphinx), so both check the
same rules:

- every ``python`` block runs, in page order, in one namespace per page (a page
  reads as one session: a later block may use what an earlier one defined);
- a ``text`` block is an output sample: it must equal, exactly (surrounding blank
  lines aside), what the python block just before it printed;
- a doctest block (``>>>`` lines, as in docstrings) runs as a doctest in the page's
  namespace, which starts with ``np`` and ``fd`` imported (the API reference says so).

Blocks run with a temporary directory as the working directory (examples write
files such as a saved trace) and matplotlib's non-interactive backend.
"""
import contextlib
import doctest
import io
import os
import tempfile
import traceback

PYTHON = ("python", "python3", "py")
OUTPUT = ("text",)
DOCTEST = "doctest"


class Block:
    """One code block: kind is "python", "text" or "doctest"; line is 1-based."""

    def __init__(self, kind, code, line, where=None):
        self.kind, self.code, self.line, self.where = kind, code, line, where


def kind_of(language):
    language = (language or "").lower()
    if language in PYTHON:
        return "python"
    if language in OUTPUT:
        return "text"
    return None


def _doctest_failures(block, namespace, name):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, name, name, block.line)
    out = io.StringIO()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    runner.run(test, out=out.write, clear_globs=False)
    return runner.failures, out.getvalue()


def run_page(blocks, name):
    """Run `blocks` (a list of Block) of page `name`; return a list of
    (block, message) for every failure, empty when the page is sound."""
    failures = []
    namespace = {"__name__": "__docs__"}
    doctest_ns = None
    printed = None
    old_cwd = os.getcwd()
    old_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    with tempfile.TemporaryDirectory(prefix="fastad-docs-") as tmp:
        os.chdir(tmp)
        try:
            for block in blocks:
                if block.kind == "python":
                    out = io.StringIO()
                    try:
                        # padded so that tracebacks (and a trace's guards) name the
                        # page's own line numbers: block.line is the opening fence's
                        code = compile("\n" * block.line + block.code, name, "exec")
                        with contextlib.redirect_stdout(out):
                            exec(code, namespace)
                    except (Exception, SystemExit) as e:  # a failing block fails the page
                        failures.append((block, "python block raised:\n%s" % "".join(
                            traceback.format_exception(type(e), e, e.__traceback__))))
                        printed = None
                        continue
                    printed = out.getvalue()
                elif block.kind == "text":
                    if printed is None:
                        failures.append((block, "text block (an output sample) does not "
                                                "follow a python block that ran"))
                    elif block.code.strip() != printed.strip():
                        failures.append((block, "output sample differs from what the "
                                                "block before it printed:\n%s" % printed))
                    printed = None
                elif block.kind == "doctest":
                    if doctest_ns is None:
                        doctest_ns = {"__name__": "__docs__"}
                        exec("import numpy as np\nimport fastad as fd", doctest_ns)
                    n_failed, report = _doctest_failures(block, doctest_ns, name)
                    if n_failed:
                        failures.append((block, "doctest failed:\n%s" % report))
                    printed = None
        finally:
            os.chdir(old_cwd)
            if old_backend is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = old_backend
    return failures
