#!/usr/bin/env bash
# Build a copy of fastad with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the test suite against it.
#
# The copy lives in its own directory (default /tmp/fastad_asan), never in the
# working tree: the in-place .so files there are the ones everybody else imports.
#
#   tools/asan_check.sh                  # whole suite
#   tools/asan_check.sh tests/test_x.py  # chosen tests (any pytest arguments)
#   FASTAD_ASAN_DIR=/tmp/other tools/asan_check.sh
#
# Exit status: pytest's (non-zero on a test failure or on any sanitizer report,
# since halt_on_error makes the interpreter abort).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FASTAD_ASAN_DIR:-/tmp/fastad_asan}"
PY="${PYTHON:-python}"
CC_BIN="${CC:-gcc}"

LIBASAN="$("$CC_BIN" -print-file-name=libasan.so)"
LIBUBSAN="$("$CC_BIN" -print-file-name=libubsan.so)"
if [ ! -e "$LIBASAN" ] || [ ! -e "$LIBUBSAN" ]; then
    echo "asan_check: $CC_BIN has no libasan.so/libubsan.so" >&2
    exit 2
fi

echo "asan_check: copying $SRC -> $DEST" >&2
mkdir -p "$DEST"
# Sources only: generated C and shared objects are rebuilt with sanitizer flags.
rm -rf "$DEST/fastad" "$DEST/tests" "$DEST/csrc"
tar -C "$SRC" -cf - \
    --exclude=.git --exclude=./build --exclude='*.so' --exclude='fastad/*.c' \
    --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache . \
    | tar -C "$DEST" -xf -

echo "asan_check: building with FASTAD_SANITIZE=1" >&2
( cd "$DEST" && FASTAD_SANITIZE=1 CC="$CC_BIN" "$PY" setup.py build_ext --inplace \
    > "$DEST/asan_build.log" 2>&1 ) || { tail -40 "$DEST/asan_build.log" >&2; exit 2; }

# The extension must really be instrumented, or a clean run would mean nothing.
for so in "$DEST"/fastad/*.so; do
    # (grep without -q: with pipefail, -q's early exit would SIGPIPE nm)
    if ! nm -D "$so" 2>/dev/null | grep '__asan_' > /dev/null; then
        echo "asan_check: $so is not built with ASan" >&2
        exit 2
    fi
done

# detect_leaks=0: CPython keeps its interned objects alive at exit by design, so
# LeakSanitizer would report thousands of "leaks" that are not ours; the leak tests
# (tests/test_leaks.py) measure memory directly instead.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1${ASAN_EXTRA:+:$ASAN_EXTRA}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1:log_path=$DEST/sanitizer_report"
# reports also go to files: pytest captures stderr, and an abort loses the capture
export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$DEST/sanitizer_report"
rm -f "$DEST"/sanitizer_report.*
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
# PyMem_* then goes straight to malloc, so ASan sees every tape array.
export PYTHONMALLOC=malloc
export PYTHONPATH="$DEST"
export FASTAD_SANITIZED=1   # tests that cannot run under ASan (RLIMIT_AS) read this

cd "$DEST"
if [ "$#" -eq 0 ]; then
    # test_leaks.py measures the RSS, which ASan's quarantine (256 MB of freed
    # memory kept on purpose, to catch use-after-free) makes grow by design; it
    # runs against the normal build.
    set -- tests --ignore=tests/test_leaks.py
fi
echo "asan_check: running pytest $* under ASan+UBSan" >&2
start=$(date +%s)
set +e
"$PY" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
echo "asan_check: pytest exit $rc after $(( $(date +%s) - start )) s" >&2
if ls "$DEST"/sanitizer_report.* > /dev/null 2>&1; then
    echo "asan_check: sanitizer output:" >&2
    cat "$DEST"/sanitizer_report.* >&2
    # WARNINGs about failed allocations are what test_alloc_failure provokes;
    # errors are "ERROR: AddressSanitizer" and UBSan's "runtime error"
    if cat "$DEST"/sanitizer_report.* | grep -E 'ERROR: AddressSanitizer|runtime error' > /dev/null; then
        [ "$rc" -ne 0 ] || rc=1
    fi
fi
exit $rc
