"""Run the test suite against an installed fastad (a wheel), not the source tree.

    python tools/run_installed_tests.py PROJECT_DIR [pytest arguments...]

The tests read files beside them (README.md, docs/, examples/, tools/, the pytest
configuration in pyproject.toml), so they run from a copy of the project made in a
temporary directory without its fastad/ package: `import fastad` there can only find
the installed one.  The script checks that it does, and that the installed fastad has
its compiled extensions, before handing over to pytest; its exit status is pytest's.

tools/test_wheel.sh runs it in a venv with no compiler and no network, and
cibuildwheel's test-command runs it on every wheel (pyproject.toml).  Python only,
so that it runs on Windows too.
"""
import os
import shutil
import subprocess
import sys
import tempfile

# never copied: the package itself (the point), version control, build products
SKIP_TOP = {"fastad", ".git", "build", "dist", "wheelhouse", ".tox", ".venv", "venv"}
SKIP_ANY = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd", "*.egg-info",
                                  ".pytest_cache", ".hypothesis", "_build")


def copy_project(src, dest):
    for name in sorted(os.listdir(src)):
        if name in SKIP_TOP or name.endswith(".egg-info"):
            continue
        path = os.path.join(src, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(dest, name), ignore=SKIP_ANY)
        else:
            shutil.copy2(path, os.path.join(dest, name))


def main(argv):
    if not argv or not os.path.isfile(os.path.join(argv[0], "tests", "test_tape.py")):
        print(__doc__, file=sys.stderr)
        return 2
    project = os.path.abspath(argv[0])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="fastad-installed-tests-") as tmp:
        root = os.path.join(tmp, "project")
        os.mkdir(root)
        copy_project(project, root)
        probe = subprocess.run(
            [sys.executable, "-c",
             "import fastad, fastad._tape, fastad._replay, fastad._second, "
             "fastad._arrays, fastad._dual; print(fastad.__file__)"],
            cwd=root, env=env, capture_output=True, text=True)
        if probe.returncode != 0:
            print("run_installed_tests: no installed fastad with its extensions:\n"
                  + probe.stderr, file=sys.stderr)
            return 2
        where = os.path.realpath(probe.stdout.strip())
        for tree in (project, root):
            if where.startswith(os.path.realpath(tree) + os.sep):
                print("run_installed_tests: fastad imports from %s, inside %s, not an "
                      "installed copy" % (where, tree), file=sys.stderr)
                return 2
        print("run_installed_tests: fastad from %s; tests from %s" % (where, root),
              flush=True)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"] + argv[1:]
        return subprocess.call(cmd, cwd=root, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
