"""tools/fuzz.py finds a built fastad wherever it is run from: this checkout's when
built, else the installed package (a fresh clone's unbuilt fastad/ used to shadow
it, so every worker died on import and was reported as a crash), else it says that
fastad is not built and exits with status 2."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

import fastad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the fastad this test process imports: this checkout's (built in place or an editable
# install), or an installed wheel when the tests run from a copy without fastad/
# (tools/run_installed_tests.py)
FASTAD_DIR = os.path.dirname(os.path.abspath(fastad.__file__))


def fuzz(script, cwd, pythonpath, seconds=2):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, script, "--seconds", str(seconds), "--chunk",
                           str(seconds), "--seed", "4"], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)
    summary = None
    for line in proc.stdout.splitlines():
        if line.startswith("fuzz summary: "):
            summary = json.loads(line[len("fuzz summary: "):])
    return proc, summary


def fresh_clone(tmp_path):
    """A copy of the sources without any built extension, as `git clone` gives."""
    clone = tmp_path / "clone"
    (clone / "tools").mkdir(parents=True)
    (clone / "fastad").mkdir()
    shutil.copy(os.path.join(ROOT, "tools", "fuzz.py"), clone / "tools" / "fuzz.py")
    for src in glob.glob(os.path.join(FASTAD_DIR, "*.py")) + \
            glob.glob(os.path.join(FASTAD_DIR, "*.pyx")):
        shutil.copy(src, clone / "fastad")
    return clone


def test_fuzz_runs_programs_from_another_directory(tmp_path):
    proc, summary = fuzz(os.path.join(ROOT, "tools", "fuzz.py"), str(tmp_path), None)
    assert summary is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["programs"] > 10 and summary["statements"] > 100
    assert summary["crashes"] == 0 and summary["worker_failures"] == 0, proc.stdout[-3000:]
    assert summary["fastad"] == FASTAD_DIR


def test_fuzz_in_an_unbuilt_clone_uses_the_installed_fastad(tmp_path):
    # the built fastad this test imports plays the installed package (its parent is on
    # PYTHONPATH, as site-packages would be); the clone's own fastad/ has no extension
    # modules
    clone = fresh_clone(tmp_path)
    proc, summary = fuzz(str(clone / "tools" / "fuzz.py"), str(clone),
                         os.path.dirname(FASTAD_DIR))
    assert summary is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["crashes"] == 0 and summary["worker_failures"] == 0, proc.stdout[-3000:]
    assert summary["programs"] > 10
    assert summary["fastad"] == FASTAD_DIR


def test_fuzz_says_when_no_built_fastad_exists(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "import fastad._tape"],
                           capture_output=True, cwd=str(tmp_path),
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if probe.returncode == 0:
        pytest.skip("fastad is installed in this interpreter")
    clone = fresh_clone(tmp_path)
    proc, summary = fuzz(str(clone / "tools" / "fuzz.py"), str(clone), None)
    assert proc.returncode == 2 and summary is None
    assert "cannot import a built fastad" in proc.stderr
    assert "build_ext --inplace" in proc.stderr and "pip install" in proc.stderr
