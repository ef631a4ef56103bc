"""Run a snippet in a child interpreter and assert it ended normally: the pattern of
the tests whose subject could crash the interpreter (a crash must fail the test, not
end the test run)."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(body, timeout=300, prelude=""):
    """Run prelude + body in a fresh interpreter; return its stdout.  Fails unless
    the child exits with status 0 (a negative return code means it died by a
    signal) after reaching its last line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = prelude + textwrap.dedent(body) + '\nprint("CHILD-DONE")\n'
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode >= 0, "child killed by signal %d:\n%s" % (
        -proc.returncode, proc.stderr[-3000:])
    assert proc.returncode == 0, "child failed:\n%s" % proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("CHILD-DONE"), proc.stdout[-2000:]
    return proc.stdout
