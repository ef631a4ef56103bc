"""Trace files are data (issue 10, "Security"): fd.load and pickle.loads never run
code from a file, every malformed file raises fd.TraceError, sizes are checked
before anything is read, deep nesting cannot crash, and every array record kind
round-trips bit for bit.  Scenarios that could crash the interpreter run in a child.
"""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastad as fd
from fastad import _pytree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(body, *args, timeout=300):
    """Run `body` in a fresh interpreter importing this tree's fastad; it must exit
    normally (no signal) and print CHILD-DONE last.  Returns its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent(body) + '\nprint("CHILD-DONE")\n'
    proc = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    assert proc.returncode >= 0, "child killed by signal %d:\n%s" % (
        -proc.returncode, proc.stderr[-3000:])
    assert proc.returncode == 0, "child failed:\n%s" % proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("CHILD-DONE"), proc.stdout[-2000:]
    return proc.stdout


def same(a, b):
    """Bit-identical numbers (arrays or pytrees of them)."""
    la, ta = _pytree.tree_flatten(a)
    lb, tb = _pytree.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        assert x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)


# ----------------------------------------------------------------------------------
# Dict key order (issue 10, "f receives its dict arguments in the caller's key order")

def test_f_receives_dicts_in_callers_key_order():
    seen = []

    def f(d):
        seen.append(list(d))
        return d["z"] * d["a"] + d["m"]["y"] * d["m"]["b"]

    x = {"z": 1.0, "a": 2.0, "m": {"y": 3.0, "b": 4.0}}
    g = fd.grad(f)(x)
    assert seen[-1] == ["z", "a", "m"]
    assert list(g) == ["z", "a", "m"] and list(g["m"]) == ["y", "b"]
    assert g == {"z": 2.0, "a": 1.0, "m": {"y": 4.0, "b": 3.0}}
    _, g2 = fd.value_and_grad(f)(x)
    assert list(g2) == ["z", "a", "m"]
    tf = fd.trace(f, x)
    assert seen[-1] == ["z", "a", "m"]
    gt = tf.grad(x)
    assert list(gt) == ["z", "a", "m"] and list(gt["m"]) == ["y", "b"]
    assert gt == g
    # another order of the same keys is the same structure
    gt2 = tf.grad({"a": 2.0, "m": {"b": 4.0, "y": 3.0}, "z": 1.0})
    assert gt2 == g
    with fd.Tape() as tape:
        v = {"q": tape.variable(1.0), "c": tape.variable(2.0)}
        y = v["q"] * v["c"]
    assert list(tape.gradient(y, v)) == ["q", "c"]


def test_flatten_order_is_sorted_and_deterministic():
    l1, t1 = _pytree.tree_flatten({"b": 1.0, "a": 2.0})
    l2, t2 = _pytree.tree_flatten({"a": 2.0, "b": 1.0})
    assert l1 == l2 == [2.0, 1.0] and t1 == t2 and hash(t1) == hash(t2)
    assert list(_pytree.tree_unflatten(t1, l1)) == ["b", "a"]
    assert list(_pytree.tree_unflatten(t2, l2)) == ["a", "b"]


# ----------------------------------------------------------------------------------
# Deep nesting: a documented limit, never a crash

def test_pytree_depth_limit_is_a_clear_error():
    ok = 1.0
    for _ in range(_pytree.MAX_DEPTH):
        ok = [ok]
    assert fd.grad(lambda t: 2.0 * _deep_leaf(t))(ok) is not None
    tf = fd.trace(lambda t, p: _deep_leaf(t) * _deep_leaf(p), ok, ok)
    assert tf.grad(ok) == _deep_leaf_set(ok, 1.0)
    too_deep = ok
    for _ in range(_pytree.HARD_DEPTH - _pytree.MAX_DEPTH + 1):
        too_deep = [too_deep]
    with pytest.raises(ValueError, match="at most %d levels" % _pytree.MAX_DEPTH):
        fd.grad(lambda t: 0.0)(too_deep)
    with pytest.raises(ValueError, match="at most %d levels" % _pytree.MAX_DEPTH):
        fd.trace(lambda t: 0.0, too_deep)
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="levels"):
        fd.grad(lambda t: 0.0)(loop)


def _deep_leaf(t):
    while isinstance(t, list):
        t = t[0]
    return t


def _deep_leaf_set(t, v):
    """t's structure with its one leaf replaced by v."""
    return [_deep_leaf_set(t[0], v)] if isinstance(t, list) else v


def test_deep_inputs_in_a_child():
    # sys.setrecursionlimit raised: the depth limit must not rely on RecursionError
    run_child('''
        import sys
        sys.setrecursionlimit(10**6)
        import numpy as np, fastad as fd
        for make in (lambda x: [x], lambda x: (x,), lambda x: {"k": x}):
            x = 1.0
            for _ in range(10**5):
                x = make(x)
            for call in (lambda: fd.trace(lambda t: 0.0, x),
                         lambda: fd.grad(lambda t: 0.0)(x),
                         lambda: fd.trace(lambda t, p: t, 1.0, x)):
                try:
                    call()
                except ValueError as e:
                    assert "at most 100 levels" in str(e), e
                else:
                    raise AssertionError("a 10^5-deep input was accepted")
    ''')
