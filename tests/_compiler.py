"""Whether this machine has the C compiler tf.compile uses ($CC, else cc).

tools/test_wheel.sh runs the suite with CC=/bin/false and no compiler on PATH on
purpose (a wheel must install and work without one); the tests and documentation
blocks that compile a trace need one, and say so when they skip.
"""
import os
import shlex
import subprocess


def have_cc():
    try:
        cmd = shlex.split(os.environ.get("CC") or "cc") + ["--version"]
        return subprocess.run(cmd, capture_output=True).returncode == 0
    except (OSError, ValueError):
        return False


def compiles(code):
    """Whether a documentation block compiles a trace."""
    return ".compile(" in code
