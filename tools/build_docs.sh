#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, as CI does.
#
#   bash tools/build_docs.sh            # needs the docs extra: pip install -e ".[docs]"
#
# Every warning is an error (-W), and the whole build runs before failing
# (--keep-going) so that one run reports every problem.  The fastad extension in
# docs/_ext turns these into warnings: a code block that raises, an output sample
# that differs from what its block printed, a docstring example that fails, an
# example script that fails or draws nothing, a public name missing from the API
# reference.  -E rebuilds from scratch, so every block and example runs each time.
# Exit status: 0 when the site built cleanly, non-zero otherwise.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python}"

if ! "$PYTHON" -c "import sphinx, myst_parser" 2> /dev/null; then
    echo "build_docs.sh: Sphinx and MyST-Parser are missing: pip install -e \".[docs]\"" >&2
    exit 2
fi
# the fastad being documented: the installed one, or this checkout when built in place
"$PYTHON" -c "import fastad" || {
    echo "build_docs.sh: fastad does not import: install it (pip install -e .) first" >&2
    exit 2
}

rm -rf docs/_build
start=$(date +%s)
"$PYTHON" -m sphinx -W --keep-going -E -b html -d docs/_build/doctrees docs docs/_build/html
echo "build_docs.sh: docs/_build/html built in $(( $(date +%s) - start )) s, no warnings"
