"""Sphinx configuration of fastad's documentation (built by tools/build_docs.sh)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

import fastad  # noqa: E402  (the fastad being documented: the checkout's when built)

project = "fastad"
author = "the fastad developers"
copyright = "the fastad developers"
release = fastad.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "fastad_docs",          # docs/_ext: code blocks run, API completeness, gallery
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# docs/design holds the developers' design notes, not user documentation
exclude_patterns = ["_build", "design", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 3
# keep "--option" and quotes in code-like text as typed (no en dashes)
smartquotes = False

autodoc_member_order = "bysource"
autodoc_typehints = "none"          # signatures come from the code; no stubs needed
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = "fastad %s" % release
html_theme_options = {
    "description": "Fast automatic differentiation for Python",
    "fixed_sidebar": True,
}
html_static_path = []
