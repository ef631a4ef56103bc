"""Sphinx extension of fastad's documentation: the checks that make it trustworthy.

- every code block of every page runs (docs/_ext/runblocks.py has the rules); a
  failing block, or an output sample that differs from what its block printed, is
  a warning, and tools/build_docs.sh turns warnings into a failed build;
- every public name (fastad.__all__, fastad.optim.__all__, fastad.nn.__all__) is in
  the API reference, and every documented object has a docstring;
- the pages speak to users: no references to the project's internal planning
  documents (words listed in INTERNAL);
- the examples gallery (gallery.py) and the benchmark tables (benchpage.py).
"""
import os
import re
import sys

from docutils import nodes
from sphinx.util import logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchpage  # noqa: E402
import gallery  # noqa: E402
import runblocks  # noqa: E402

logger = logging.getLogger(__name__)

# Words that belong to the project's internal notes, not to a user's documentation.
INTERNAL = re.compile(r"API\.md|DESIGN\.md|\bshared/|\bbudgets?\b", re.I)


def _is_block(node):
    return isinstance(node, (nodes.literal_block, nodes.doctest_block))


def page_blocks(doctree):
    """The page's code blocks as runblocks.Block, in document order."""
    blocks = []
    for node in doctree.findall(_is_block):
        if node.get("fastad_ran"):          # run by its own directive (the gallery)
            continue
        if isinstance(node, nodes.doctest_block):
            kind = "doctest"
        else:
            kind = runblocks.kind_of(node.get("language"))
            if kind is None:
                continue
        blocks.append(runblocks.Block(kind, node.astext(), node.line or 0, node))
    return blocks


def run_code_blocks(app, doctree):
    # the page's path, as tests/test_guide.py names it: tracebacks say "guide/x.md"
    page = os.path.relpath(app.env.doc2path(app.env.docname), app.env.srcdir)
    blocks = page_blocks(doctree)
    for block in blocks:
        COUNTS[block.kind] = COUNTS.get(block.kind, 0) + 1
    for block, message in runblocks.run_page(blocks, page):
        logger.warning("code block failed: %s", message, location=block.where,
                       type="fastad", subtype="code-block")


COUNTS = {}


def report_counts(app, exception):
    if exception is None:
        logger.info("fastad_docs: ran %d python blocks and %d doctest blocks, "
                    "checked %d output samples", COUNTS.get("python", 0),
                    COUNTS.get("doctest", 0), COUNTS.get("text", 0))


def check_words(app, doctree):
    text = doctree.astext()
    for m in INTERNAL.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        logger.warning("internal reference %r on this page (text line %d): say it "
                       "in the documentation's own words", m.group(0), line,
                       location=app.env.docname, type="fastad", subtype="words")


def public_names():
    import fastad
    import fastad.nn
    import fastad.optim
    names = ["fastad." + n for n in fastad.__all__
             if n not in ("optim", "nn")]
    names += ["fastad.optim." + n for n in fastad.optim.__all__]
    names += ["fastad.nn." + n for n in fastad.nn.__all__]
    return names


def check_api_complete(app, env):
    documented = set(env.get_domain("py").objects)
    for name in public_names():
        if name not in documented:
            logger.warning("public name %s is not in the API reference (docs/api.md)",
                           name, type="fastad", subtype="api")


def check_docstring(app, what, name, obj, options, lines):
    if what in ("module",):
        return
    if not any(line.strip() for line in lines):
        logger.warning("%s %s has no docstring", what, name,
                       type="fastad", subtype="docstring")


def strip_self(app, what, name, obj, options, signature, return_annotation):
    """Cython embeds "(self, ...)" in a method's signature; Python methods show none."""
    if what in ("method", "class") and signature and signature.startswith("(self"):
        signature = "(" + signature[len("(self"):].lstrip(", ")
    return signature, return_annotation


def setup(app):
    app.connect("autodoc-process-signature", strip_self)
    app.connect("doctree-read", run_code_blocks)
    app.connect("doctree-read", check_words)
    app.connect("env-check-consistency", check_api_complete)
    app.connect("build-finished", report_counts)
    app.connect("autodoc-process-docstring", check_docstring)
    benchpage.setup(app)
    gallery.setup(app)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
