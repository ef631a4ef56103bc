"""Compiled traces (tf.compile(), fastad/_compile.py): bit-identical to replay on the
whole op table, guards, parameters, the disk cache, and CompileError.

Compiling runs the C compiler (seconds on a loaded machine), so the compiled traces
are built once per module and shared, in a cache directory of the module's own."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastad as fd
from fastad import _compile

from _compiler import have_cc
from _op_table_program import N_INPUTS, points, program, x0

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


needs_cc = pytest.mark.skipif(not have_cc(), reason="no working C compiler ($CC or cc)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("xdg")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(d)
    yield d / "fastad"
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def table(cache):
    opt = fd.trace(program, x0(), 0.7)
    plain = fd.trace(program, x0(), 0.7, optimize=False)
    return opt, opt.compile(), plain, plain.compile()


def same(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    keep = ~np.isnan(a)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert a[keep].tobytes() == b[keep].tobytes()


@needs_cc
def test_compiled_is_bit_identical_to_replay_on_the_whole_table(table):
    opt, copt, plain, cplain = table
    assert "compiled" in repr(copt) and "compiled" not in repr(opt)
    for x in points(21, 6):
        for p in (0.7, -2.5):
            for tf, ctf in ((opt, copt), (plain, cplain)):
                v, g = tf.value_and_grad(x, p)
                cv, cg = ctf.value_and_grad(x, p)
                same(cv, v)
                same(np.array(cg), np.array(g))
                same(ctf(x, p), tf(x, p))
                same(np.array(ctf.grad(x, p)), np.array(g))
            # the unoptimized compiled trace is fd.grad to the last bit
            same(np.array(cplain.grad(x, p)), np.array(fd.grad(program)(x, p)))


@needs_cc
def test_compiled_grad_batch_is_bit_identical(table):
    opt, copt, _, _ = table
    X = np.array(points(22, 7))
    for threads in (1, 2):
        same(copt.grad_batch(X, 1.25, threads=threads), opt.grad_batch(X, 1.25, threads=1))
    same(copt.value_batch(X), opt.value_batch(X))
    assert copt.grad_batch(X).shape == (7, N_INPUTS)


def _branchy(x, p):
    s = fd.sin(x[0]) * p + x[1] * x[1]
    if s > 0.0:
        return fd.exp(s) + x[0]
    return fd.log1p(s * s) - x[1]


@pytest.fixture(scope="module")
def guarded(cache):
    tf = fd.trace(_branchy, np.array([0.5, 0.2]), 1.0)
    return tf, tf.compile()


@needs_cc
def test_guards_are_checked_as_in_replay(guarded):
    tf, ctf = guarded
    x = np.array([0.4, 0.1])
    same(ctf.grad(x, 2.0), tf.grad(x, 2.0))          # a dynamic parameter
    bad = np.array([-1.0, 0.0])
    with pytest.raises(fd.TraceError) as e1:
        tf.grad(bad)
    with pytest.raises(fd.TraceError) as e2:
        ctf.grad(bad)
    assert str(e1.value).replace("tf.grad", "") == str(e2.value).replace("tf.grad", "")
    with pytest.raises(fd.TraceError, match="row 1"):
        ctf.grad_batch(np.stack([x, bad]))


@needs_cc
def test_a_second_compile_loads_the_cached_library(guarded, cache):
    tf, ctf = guarded
    tf.compile()
    assert _compile.last_source == "memory"
    _compile._loaded.clear()                  # as a new process would be
    again = tf.compile()
    assert _compile.last_source == "disk"
    libs = [f for f in os.listdir(cache) if f.endswith(".so")]
    assert libs
    x = np.array([0.3, 0.6])
    same(again.grad(x), tf.grad(x))


_CORRUPT_CHILD = """
import os, sys
import fastad as fd
from fastad import _compile
cache = _compile.cache_dir()
tf = fd.trace(lambda x: fd.tanh(x) * fd.cos(x) + x * 0.125, 0.4)
if sys.argv[1] == "damage":
    # a library damaged on disk (by another process: this one never loaded it)
    for name in os.listdir(cache):
        if name.endswith(".so"):
            path = os.path.join(cache, name)
            with open(path, "r+b") as fh:
                fh.seek(os.path.getsize(path) // 2)
                fh.write(b"\\xcc" * 64)
ctf = tf.compile()
assert ctf.grad(0.9) == tf.grad(0.9) and ctf(0.9) == tf(0.9)
print("SOURCE", _compile.last_source)
"""


@needs_cc
def test_a_corrupted_cache_file_is_rejected_and_rebuilt(tmp_path):
    # in child processes: a library damaged while loaded would crash this one
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = []
    for step in ("first", "again", "damage"):
        proc = subprocess.run([sys.executable, "-c", _CORRUPT_CHILD, step], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(proc.stdout.split()[-1])
    assert out == ["built", "disk", "built"]


@needs_cc
def test_compiled_pickles_as_a_plain_trace(guarded):
    tf, ctf = guarded
    x = np.array([0.4, 0.1])
    back = pickle.loads(pickle.dumps(ctf))
    assert "compiled" not in repr(back)
    same(back.grad(x), tf.grad(x))


def test_traces_with_array_records_raise_compile_error(cache):
    tf = fd.trace(lambda x: fd.sum(fd.tanh(fd.matmul(np.ones((2, 2)), x))), np.ones(2))
    with pytest.raises(fd.CompileError, match="array operations"):
        tf.compile()


def test_no_compiler_raises_compile_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env["PATH"] = ""
    env["XDG_CACHE_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = ROOT + os.pathsep + os.path.join(ROOT, "tests")
    code = (
        "import fastad as fd\n"
        "tf = fd.trace(lambda x: fd.sin(x) * x, 0.5)\n"
        "try:\n"
        "    tf.compile()\n"
        "except fd.CompileError as e:\n"
        "    assert isinstance(e, fd.FastADError)\n"
        "    print('COMPILE-ERROR', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "COMPILE-ERROR" in proc.stdout
    assert "'cc'" in proc.stdout and "CC" in proc.stdout
