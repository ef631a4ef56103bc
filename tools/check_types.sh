#!/usr/bin/env bash
# Check fastad's type stubs (fastad/*.pyi) three ways:
#
#   1. `mypy --strict` passes on the stubs and on tests/typed_example.py, a program
#      using the whole public API (for the running Python, and for the oldest
#      supported one that mypy can target: the stubs serve every version);
#   2. `mypy --strict` fails on tests/typed_misuse.py with exactly the errors its
#      `# E: code` markers name, one per marked line and none elsewhere (so the
#      stubs are not Any where it matters);
#   3. `python -m mypy.stubtest fastad` agrees with the runtime, apart from the
#      entries of tools/stubtest_allowlist.txt (each says why).
#
#   bash tools/check_types.sh        # from anywhere; PYTHON=python3.12 for another
#
# It checks the checkout's fastad, which must be built (pip install -e ., or
# python setup.py build_ext --inplace).  mypy comes from the `typing` extra
# (pip install -e ".[typing]"); when it is missing this script installs it with
# pip, for local use.  About a minute.  Exit status 0 when all three hold.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python}"

if ! "$PY" -c "import fastad" 2> /dev/null; then
    echo "check_types: cannot import fastad from $(pwd) with $PY; build it first" \
         "(pip install -e . or python setup.py build_ext --inplace)" >&2
    exit 2
fi
if ! "$PY" -c "import mypy" 2> /dev/null; then
    echo "check_types: mypy is not installed; installing it" >&2
    "$PY" -m pip install --quiet "mypy>=1.18"
fi

# mypy's cache goes to a temporary directory, not into the checkout (stubtest
# takes the directory from a config file only)
# the oldest Python the package supports that this mypy can check against (mypy
# 2.x no longer targets 3.9)
oldest=3.9
"$PY" -m mypy --python-version "$oldest" -c pass > /dev/null 2>&1 || oldest=3.10

cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
export MYPY_CACHE_DIR="$cache"
printf '[mypy]\ncache_dir = %s\n' "$cache/stubtest" > "$cache/stubtest.ini"
mypy=("$PY" -m mypy --strict --no-color-output --no-error-summary)
status=0

echo "== mypy --strict: the stubs and tests/typed_example.py ($("$PY" -m mypy --version))"
for target in "" "$oldest"; do
    if ! "${mypy[@]}" ${target:+--python-version "$target"} fastad/*.pyi \
            tests/typed_example.py; then
        echo "check_types: FAILED: mypy --strict ${target:+--python-version $target }on" \
             "the stubs and the typed example" >&2
        status=1
    fi
done

echo "== mypy --strict: tests/typed_misuse.py must fail where its markers say"
out="$cache/misuse.txt"
if "${mypy[@]}" tests/typed_misuse.py > "$out" 2>&1; then
    echo "check_types: FAILED: mypy accepted tests/typed_misuse.py" >&2
    status=1
fi
if ! "$PY" - tests/typed_misuse.py "$out" <<'EOF'
import re
import sys

path, report = sys.argv[1], sys.argv[2]
marker = re.compile(r"#\s*E:\s*([\w|-]+)\s*$")
expected = {}
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    m = marker.search(line)
    if m:
        expected[n] = set(m.group(1).split("|"))
got = {}
other = []
for line in open(report, encoding="utf-8"):
    m = re.match(r"(.+?):(\d+): error: .*\[([\w-]+)\]$", line.rstrip())
    if m and m.group(1).endswith("typed_misuse.py"):
        got.setdefault(int(m.group(2)), set()).add(m.group(3))
    elif ": error:" in line:
        other.append(line.rstrip())     # an error elsewhere (in a stub): a failure
problems = []
for n, codes in sorted(expected.items()):
    if not codes & got.get(n, set()):
        problems.append("line %d: expected an error [%s], got %s"
                        % (n, "|".join(sorted(codes)),
                           sorted(got[n]) if n in got else "none"))
for n, codes in sorted(got.items()):
    if n not in expected:
        problems.append("line %d: unexpected error(s) %s" % (n, sorted(codes)))
problems += ["error outside the file: " + o for o in other]
if problems or not expected:
    print("\n".join(problems or ["no markers found in " + path]), file=sys.stderr)
    sys.exit(1)
print("%s: all %d marked misuses rejected, nothing else" % (path, len(expected)))
EOF
then
    echo "check_types: FAILED: tests/typed_misuse.py; mypy said:" >&2
    cat "$out" >&2
    status=1
fi

echo "== stubtest: the stubs against the runtime"
if ! "$PY" -m mypy.stubtest fastad --allowlist tools/stubtest_allowlist.txt \
        --mypy-config-file "$cache/stubtest.ini"; then
    echo "check_types: FAILED: stubtest" >&2
    status=1
fi

[ "$status" = 0 ] && echo "== check_types: all passed"
exit "$status"
