#!/usr/bin/env bash
# Valgrind memcheck over the core tests, against the normal (non-sanitized) build.
#
#   tools/valgrind_check.sh                      # core tests
#   tools/valgrind_check.sh tests/test_x.py -k y # chosen tests
#
# PYTHONMALLOC=malloc sends CPython's small objects through malloc so memcheck
# sees them; CPython's own deliberate "errors" (its address-space probing and
# interned objects alive at exit) are suppressed by valgrind-python.supp below and
# by --show-leak-kinds=none.  The verdict is the number of errors whose stack
# passes through a fastad extension module: it must be 0.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The real interpreter binary: a pyenv shim or wrapper script would be what valgrind
# runs, and without --trace-children the Python under test would run unchecked.
PY="$("${PYTHON:-python}" -c 'import sys; print(sys.executable)')"
LOG="${FASTAD_VALGRIND_LOG:-/tmp/fastad_valgrind.log}"
SUPP="$SRC/tools/valgrind-python.supp"
if [ "$#" -eq 0 ]; then
    set -- tests/test_primitives.py tests/test_fuzz_regressions.py tests/test_leaks.py::test_vars_are_released
fi
cd "$SRC"
export PYTHONMALLOC=malloc PYTHONPATH="$SRC"
start=$(date +%s)
set +e
valgrind --tool=memcheck --error-exitcode=0 --track-origins=no \
    --suppressions="$SUPP" --leak-check=no --num-callers=30 --log-file="$LOG" \
    "$PY" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
errors=$(grep -c "^==[0-9]*== \(Invalid\|Conditional\|Use of uninit\|Syscall param\|Mismatched\|Source and dest\)" "$LOG" || true)
ours=$(awk '/^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and dest)/{inerr=1; hit=0; next}
            inerr && /fastad\/_[a-z_]+\.(c|pyx)|fastad_[a-z]+\.h|_tape\.cpython|_arrays\.cpython|_replay\.cpython|_second\.cpython|_dual\.cpython/{hit=1}
            inerr && /^==[0-9]+== $/{if (hit) n++; inerr=0}
            END{print n+0}' "$LOG")
echo "valgrind_check: pytest exit $rc, $errors memcheck errors in total, $ours in fastad, $(( $(date +%s) - start )) s (log: $LOG)" >&2
[ "$rc" -eq 0 ] && [ "$ours" -eq 0 ]
