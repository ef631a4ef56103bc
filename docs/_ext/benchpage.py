"""The benchmarks page shows bench/results/*.md as the benchmark runs wrote them.

A page asks for one results file with a block of its own::

    ```{bench-results} core.md
    ```

which is replaced, before the page is parsed, by the file's text: its first
heading becomes a section of the page (level 2, the file's other headings follow
it), with the file's "Measured <date>, <machine>" line right under it.  Two
presentational changes are made, and nothing else:

- the results files call the targets of the project's planning notes "budgets";
  the documentation says "targets";
- a norm written |x| or ||x|| inside a table cell has its bars escaped, which
  Markdown would otherwise read as column separators.

A table row whose number of cells differs from its header's is reported, so that a
results file the page would render wrongly fails the build instead.
"""
import os
import re

from sphinx.util import logging

logger = logging.getLogger(__name__)

BLOCK = re.compile(r"^```\{bench-results\}[ \t]+(\S+)[ \t]*\n```[ \t]*$", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
NORM = re.compile(r"(\|{1,2})([A-Za-z])\1(?=\^)")
WORDS = [(re.compile(r"issue \d+'s budget", re.I), "targets"),
         (re.compile(r" \(the issue's '[^']*'\)"), ""),
         (re.compile(r"\bbudgets\b"), "targets"),
         (re.compile(r"\bbudget\b"), "target"),
         (re.compile(r"\bBudget\b"), "Target")]


def _cells(row):
    # split at bars that are not escaped
    return [c for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def render(text, filename, warn):
    """The Markdown that stands in for one results file."""
    for pattern, replacement in WORDS:
        text = pattern.sub(replacement, text)
    lines = text.splitlines()
    first = next((i for i, l in enumerate(lines) if HEADING.match(l)), None)
    if first is None:
        warn("%s has no heading" % filename)
        return text
    levels = [len(HEADING.match(l).group(1)) for l in lines if HEADING.match(l)]
    shift = 2 - min(levels)
    preamble = [l for l in lines[:first] if l.strip()]
    out = []
    for i, line in enumerate(lines[first:]):
        m = HEADING.match(line)
        if m:
            line = "#" * (len(m.group(1)) + shift) + " " + m.group(2)
            out.append(line)
            if i == 0:
                out += [""] + preamble + ["(`bench/results/%s`)" % filename]
            continue
        if line.startswith("|"):
            line = NORM.sub(lambda m: "\\|" * len(m.group(1)) + m.group(2)
                            + "\\|" * len(m.group(1)), line)
        out.append(line)
    # every table row has its header's number of cells
    header = None
    for line in out:
        if line.startswith("|"):
            n = len(_cells(line))
            if header is None:
                header = n
            elif n != header:
                warn("%s: a table row has %d cells, its header %d: %s"
                     % (filename, n, header, line[:80]))
        else:
            header = None
    return "\n".join(out) + "\n"


def source_read(app, docname, source):
    root = os.path.dirname(os.path.abspath(app.srcdir))
    results = os.path.join(root, "bench", "results")

    def warn(message):
        logger.warning("bench-results: %s", message, location=docname,
                       type="fastad", subtype="bench")

    def replace(m):
        name = m.group(1)
        path = os.path.join(results, name)
        if not os.path.isfile(path):
            warn("no file bench/results/%s" % name)
            return ""
        with open(path, encoding="utf-8") as fh:
            return render(fh.read(), name, warn)

    source[0] = BLOCK.sub(replace, source[0])


def setup(app):
    app.connect("source-read", source_read)
