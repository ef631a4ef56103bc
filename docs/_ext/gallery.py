"""The examples gallery: each examples/*.py runs while the documentation is built.

    ```{fastad-example} rosenbrock.py
    ```

runs ``python examples/rosenbrock.py`` in a fresh temporary directory (with the
fastad that the build imports, and matplotlib's non-interactive backend), then puts
on the page what it printed, every PNG it wrote, and its source.  An example that
fails, or that writes no PNG, is a warning, so the gallery cannot show stale
output: what the page shows is what this build's run produced.

Why not sphinx-gallery: the examples are ordinary command-line scripts (argparse,
``main()``, tested by tests/test_examples.py) and stay so; this directive needs
nothing of them but to run, and no new dependency.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

TIMEOUT = 600          # seconds per example; the two of today take under 10 s


def _fastad_root():
    import fastad
    return os.path.dirname(os.path.dirname(os.path.abspath(fastad.__file__)))


class ExampleDirective(SphinxDirective):
    required_arguments = 1
    option_spec = {"args": directives.unchanged}

    def run(self):
        name = self.arguments[0]
        root = os.path.dirname(os.path.abspath(self.env.srcdir))
        script = os.path.join(root, "examples", name)
        if not os.path.isfile(script):
            return self._fail("no file examples/%s" % name)
        self.env.note_dependency(script)
        args = (self.options.get("args") or "").split()
        env = dict(os.environ, MPLBACKEND="Agg")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_fastad_root(), os.environ.get("PYTHONPATH")) if p)
        with tempfile.TemporaryDirectory(prefix="fastad-example-") as tmp:
            start = time.perf_counter()
            try:
                r = subprocess.run([sys.executable, script] + args, cwd=tmp, env=env,
                                   capture_output=True, text=True, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                return self._fail("examples/%s ran over %d s" % (name, TIMEOUT))
            seconds = time.perf_counter() - start
            if r.returncode != 0:
                return self._fail("examples/%s exited with %d:\n%s"
                                  % (name, r.returncode, r.stderr[-3000:]))
            pngs = sorted(f for f in os.listdir(tmp) if f.endswith(".png"))
            if not pngs:
                return self._fail("examples/%s wrote no PNG" % name)
            outdir = os.path.join(os.path.dirname(os.path.abspath(self.env.doctreedir)),
                                  "gallery")
            os.makedirs(outdir, exist_ok=True)
            images = []
            for png in pngs:
                target = os.path.join(outdir, png)
                shutil.copyfile(os.path.join(tmp, png), target)
                uri = "/" + os.path.relpath(target, self.env.srcdir).replace(os.sep, "/")
                images.append(nodes.image(uri=uri, alt="%s: %s" % (name, png)))
        logger.info("gallery: examples/%s ran in %.1f s", name, seconds)
        command = "python examples/%s%s" % (name, "".join(" " + a for a in args))
        printed = nodes.literal_block(r.stdout, r.stdout, language="none")
        printed["fastad_ran"] = True
        with open(script, encoding="utf-8") as fh:
            code = fh.read()
        source = nodes.literal_block(code, code, language="python")
        source["fastad_ran"] = True          # run above, as a script, not as a block
        out = [nodes.paragraph("", "", nodes.strong("", "Run: "),
                               nodes.literal(command, command),
                               nodes.Text(" (%.1f s in this build); it printed:" % seconds)),
               printed]
        for png in images:
            out.append(png)
        out.append(nodes.paragraph("", "", nodes.strong("", "Source: "),
                                   nodes.literal("", "examples/" + name)))
        out.append(source)
        return out

    def _fail(self, message):
        logger.warning("gallery: %s", message, location=self.get_location(),
                       type="fastad", subtype="gallery")
        return []


def setup(app):
    app.add_directive("fastad-example", ExampleDirective)
