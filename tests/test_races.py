"""Crashes and races through public objects (issue 10): a traced function's tape
cannot be grown under its replay, a reset cannot land in the middle of a sweep,
Ctrl-C stops a long grad_batch, the scratch tape of fd.grad gives its memory back,
and tape generations do not wrap.

Anything that could crash the interpreter runs in a child process (the pattern of
tests/test_hostile.py): the parent asserts the child exited normally.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastad as fd
from fastad import _tape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(body, timeout=300):
    """Run `body` in a fresh interpreter; return its stdout.  It must exit 0 and
    reach its last line (a negative return code means it died by a signal)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent(body) + '\nprint("CHILD-DONE")\n'
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode >= 0, "child killed by signal %d:\n%s" % (
        -proc.returncode, proc.stderr[-3000:])
    assert proc.returncode == 0, "child failed:\n%s" % proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("CHILD-DONE"), proc.stdout[-2000:]
    return proc.stdout


# ----------------------------------------------------------------------------------
# Generations are 64-bit: 2**32 resets do not bring a stale Var back to life

def test_generation_does_not_wrap_at_2_to_the_32():
    tape = fd.Tape()
    with tape:
        x = tape.variable(1.5)          # generation 1
    # as if 2**32 - 1 resets had happened: the next reset makes the generation
    # 2**32 + 1, which a 32-bit counter would see as 1 again
    _tape._test_set_generation(tape, 2**32)
    tape.reset()
    assert tape.generation == 2**32 + 1
    with pytest.raises(fd.TapeError, match="reset"):
        with tape:
            x * 2.0
    with pytest.raises(fd.TapeError, match="reset"):
        tape.gradient(x, x)
    with tape:                          # the tape itself keeps working
        y = tape.variable(2.0)
        z = y * y
    assert tape.gradient(z, y) == 4.0


def test_generation_counts_past_2_to_the_32_in_array_records():
    tape = fd.Tape()
    _tape._test_set_generation(tape, 2**33 + 5)
    with tape:
        w = tape.variable(np.linspace(0.1, 1.0, 40))     # array records
        y = fd.sum(fd.tanh(w) * w)
    np.testing.assert_array_equal(tape.gradient(y, w), fd.grad(
        lambda v: fd.sum(fd.tanh(v) * v))(np.linspace(0.1, 1.0, 40)))
    tape.reset()
    with pytest.raises(fd.TapeError):
        tape.gradient(y, w)
