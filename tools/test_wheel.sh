#!/usr/bin/env bash
# The wheel works where nothing can be compiled or downloaded.
#
#   bash tools/test_wheel.sh                 # build, check, install, run the suite
#   bash tools/test_wheel.sh -k trace        # extra arguments go to pytest
#   PYTHON=python3.12 bash tools/test_wheel.sh
#   FASTAD_WHEEL_KEEP=1 ...                  # keep the work directory (its path is printed)
#   FASTAD_WHEEL_FROM=DIR ...                # DIR/fastad-*.tar.gz and *.whl from a kept
#                                            # run's dist/: every check, without the build
#
# 1. `python -m build` in a build venv: an sdist, then a wheel built from that sdist
#    (so a file missing from the sdist breaks the build here, not for a user).
# 2. Contents: the sdist has the op table (csrc/), tools/gen_ops.py, the .pyx/.pxd
#    sources and the build files, and no generated C; the wheel has the five compiled
#    extensions, _tape.pxd and every .pyi stub and py.typed marker of the checkout,
#    and no sources.
# 3. A wheelhouse: the test extra's dependencies as wheels (the only network step).
# 4. A fresh venv, then, with no network (a new network namespace when `unshare -n`
#    works, and pip --no-index with no configuration in any case), no C compiler on
#    PATH (PATH is the venv's bin/ alone; CC and CXX are /bin/false), and no Cython: install the wheel and the test extra from the
#    wheelhouse, then run the test suite against the installed package from a copy of
#    the project without fastad/ (tools/run_installed_tests.py).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d /tmp/fastad-wheel.XXXXXX)"
if [ -n "${FASTAD_WHEEL_KEEP:-}" ]; then
    echo "test_wheel: work directory $WORK (kept)" >&2
else
    trap 'rm -rf "$WORK"' EXIT
fi
say() { echo "test_wheel: $*" >&2; }
fail() { echo "test_wheel: FAIL: $*" >&2; exit 1; }
start=$(date +%s)

# -- 1. build -----------------------------------------------------------------------
"$PY" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/python" -m pip install -q build
if [ -n "${FASTAD_WHEEL_FROM:-}" ]; then
    # a dist/ directory from an earlier run (FASTAD_WHEEL_KEEP): the checks again,
    # without the build
    say "using the sdist and wheel in $FASTAD_WHEEL_FROM (no build)"
    cp -r "$FASTAD_WHEEL_FROM" "$WORK/dist"
else
    say "building the sdist and the wheel with $("$PY" --version)"
    # from a clean export of the sources: the checkout's in-place .so, generated C
    # and build/ must not leak into the sdist
    mkdir "$WORK/src"
    tar -C "$SRC" -cf - --exclude=.git --exclude=./build --exclude=./dist --exclude='*.so' \
        --exclude='fastad/*.c' --exclude=fastad/_ops.pxi --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache \
        --exclude=./docs/_build . | tar -C "$WORK/src" -xf -
    "$WORK/build-venv/bin/python" -m build --outdir "$WORK/dist" "$WORK/src" \
        > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "python -m build"; }
fi
sdist=$(ls "$WORK"/dist/fastad-*.tar.gz)
wheel=$(ls "$WORK"/dist/fastad-*.whl)
say "$(basename "$sdist") and $(basename "$wheel") after $(( $(date +%s) - start )) s"

# -- 2. contents --------------------------------------------------------------------
tar -tzf "$sdist" | sed 's|^[^/]*/||' | sort > "$WORK/sdist.txt"
unzip -Z1 "$wheel" | sort > "$WORK/wheel.txt"
need_sdist="pyproject.toml setup.py README.md CHANGELOG.md tools/gen_ops.py fastad/_tape.pxd"
for f in $need_sdist; do
    grep -qx "$f" "$WORK/sdist.txt" || fail "sdist lacks $f"
done
for f in $(cd "$SRC" && git ls-files 'csrc/*' 'fastad/*.pyx' 'fastad/*.py'); do
    grep -qx "$f" "$WORK/sdist.txt" || fail "sdist lacks $f"
done
if grep -E '^fastad/.*\.(c|so|html)$|^fastad/_ops\.pxi$' "$WORK/sdist.txt"; then
    fail "sdist holds generated or compiled files (above)"
fi
for m in _tape _dual _second _replay _arrays; do
    grep -qE "^fastad/$m\.[^/]*\.(so|pyd)$" "$WORK/wheel.txt" || fail "wheel lacks the $m extension"
done
for f in fastad/_tape.pxd fastad/_version.py \
         $(cd "$SRC" && git ls-files 'fastad/*.pyi' 'fastad/py.typed'); do
    grep -qx "$f" "$WORK/wheel.txt" || fail "wheel lacks $f"
done
if grep -E '\.(pyx|c|h)$' "$WORK/wheel.txt"; then
    fail "wheel holds sources (above)"
fi
say "sdist: $(wc -l < "$WORK/sdist.txt") files, wheel: $(wc -l < "$WORK/wheel.txt") files (lists in $WORK)"

# -- 3. wheelhouse (network) --------------------------------------------------------
say "collecting the test dependencies into a wheelhouse"
"$WORK/build-venv/bin/python" -m pip wheel -q --wheel-dir "$WORK/wheelhouse" "$wheel[test]" \
    > "$WORK/wheelhouse.log" 2>&1 || { tail -20 "$WORK/wheelhouse.log" >&2; fail "pip wheel"; }

# -- 4. offline, compiler-less install and test run ---------------------------------
"$PY" -m venv "$WORK/venv"
# PATH is the venv's bin/ alone: python, pip and the test extra's scripts, no
# compiler (symlinks to the venv's python elsewhere would not do: the interpreter
# resolves them to the base installation, outside the venv)
offline=()
if unshare -n true 2> /dev/null; then
    # a new network namespace's loopback starts down; the Dask tests' LocalCluster
    # talks over 127.0.0.1, so bring lo (and only lo) up inside it
    ipcmd="$(command -v ip || true)"
    if [ -n "$ipcmd" ]; then
        offline=(unshare -n /bin/sh -c "\"$ipcmd\" link set lo up && exec \"\$@\"" sh)
    else
        offline=(unshare -n)
    fi
    say "no network: a new network namespace (unshare -n, loopback only), pip --no-index"
else
    say "no network: pip --no-index with no configuration (unshare -n is not permitted here)"
fi
# nothing from pip's configuration (extra indexes, find-links) or a compiler
isolated() (  # from an empty directory: python -c puts the current one on sys.path
    cd "$WORK/home" && exec ${offline[@]+"${offline[@]}"} /usr/bin/env -i HOME="$WORK/home" PATH="$WORK/venv/bin" \
        CC=/bin/false CXX=/bin/false LANG=C.UTF-8 TMPDIR="$WORK/tmp" \
        PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_NO_CACHE_DIR=1 "$@"
)
mkdir "$WORK/home" "$WORK/tmp"
isolated /bin/sh -c 'for c in gcc cc clang c++ g++; do if command -v "$c"; then exit 1; fi; done' \
    || fail "a C compiler is on the test PATH"
isolated pip install -q --no-index --find-links "$WORK/wheelhouse" "fastad[test]" \
    || fail "installing the wheel offline"
if isolated python -c "import Cython" 2> /dev/null; then
    fail "Cython is importable in the test venv"
fi
isolated python -c "import sys; assert sys.prefix != sys.base_prefix" || fail "python on the test PATH is not the venv's"
isolated python -c "import fastad, sys; print('test_wheel: installed fastad', fastad.__version__, 'at', fastad.__file__, file=sys.stderr)"

say "running the test suite against the installed wheel"
set +e
isolated python "$SRC/tools/run_installed_tests.py" "$SRC" "$@"
rc=$?
set -e
say "pytest exit $rc; $(( $(date +%s) - start )) s in all"
exit $rc
