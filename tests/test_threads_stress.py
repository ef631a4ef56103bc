"""Several threads recording, sweeping and replaying at once give the results of
one thread, bit for bit.

Each thread runs a mix of work for a fixed time (FASTAD_THREAD_SECONDS, default
2 s): eager fd.grad of a scalar Python loop long enough that its sweep releases
the GIL, array-mode fd.grad, tape.gradient on one tape shared by all threads, and
tf.grad / tf(x) on one shared trace.  Every result is compared with ==, not with
a tolerance, against the same computation done beforehand in the main thread.  A
short switch interval makes the interpreter switch threads often.
"""
import os
import sys
import threading
import time

import numpy as np
import pytest

import fastad as fd

SECONDS = float(os.environ.get("FASTAD_THREAD_SECONDS", "2"))
N_THREADS = 3
LOOP = 15000           # 2 ops each: the sweep (30000 slots) runs without the GIL


def scalar_f(x):
    s = x
    for k in range(LOOP):
        s = s * 0.99999 + fd.sin(s) * 1e-5
    return s


def array_f(w):
    h = fd.tanh(fd.matmul(w, np.linspace(-1.0, 1.0, 12).reshape(4, 3)))
    return fd.sum(h * h) + fd.logsumexp(w)


def traced_f(x):
    y = fd.sum(fd.exp(x * 0.1) * fd.sin(x))
    return y + fd.sum(x * x) * 0.5


INPUTS = [0.1, 0.7, -1.3, 2.0]
W_INPUTS = [np.arange(20.0).reshape(5, 4) / 10 + k for k in range(3)]
X_INPUTS = [np.linspace(-2.0, 2.0, 30000) + k for k in range(3)]


@pytest.fixture(scope="module")
def shared():
    # one big tape every thread differentiates, with several targets
    with fd.Tape() as tape:
        x = tape.variable(np.linspace(0.1, 3.0, 25000))
        targets = [fd.sum(fd.log(x) * x), fd.sum(fd.sqrt(x)), fd.sum(fd.exp(-x) * x)]
    tf = fd.trace(traced_f, X_INPUTS[0])
    ref = {
        "scalar": [fd.value_and_grad(scalar_f)(v) for v in INPUTS],
        "array": [fd.grad(array_f)(w) for w in W_INPUTS],
        "tape": [tape.gradient(t, x) for t in targets],
        "trace_grad": [tf.grad(v) for v in X_INPUTS],
        "trace_value": [tf(v) for v in X_INPUTS],
    }
    return tape, x, targets, tf, ref


def work(shared, i):
    """One round of every kind of work; returns a list of mismatch descriptions."""
    tape, x, targets, tf, ref = shared
    bad = []
    k = i % len(INPUTS)
    v, g = fd.value_and_grad(scalar_f)(INPUTS[k])
    if (v, g) != ref["scalar"][k]:
        bad.append("scalar %d: %r != %r" % (k, (v, g), ref["scalar"][k]))
    k = i % len(W_INPUTS)
    if not np.array_equal(fd.grad(array_f)(W_INPUTS[k]), ref["array"][k]):
        bad.append("array %d" % k)
    k = i % len(targets)
    if not np.array_equal(tape.gradient(targets[k], x), ref["tape"][k]):
        bad.append("tape target %d" % k)
    k = i % len(X_INPUTS)
    if not np.array_equal(tf.grad(X_INPUTS[k]), ref["trace_grad"][k]):
        bad.append("trace grad %d" % k)
    if tf(X_INPUTS[k]) != ref["trace_value"][k]:
        bad.append("trace value %d" % k)
    return bad


def test_threads_match_single_thread(shared):
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    errors, rounds = [], [0] * N_THREADS
    deadline = time.monotonic() + SECONDS

    def run(tid):
        i = tid
        try:
            while time.monotonic() < deadline:
                errors.extend("thread %d: %s" % (tid, b) for b in work(shared, i))
                rounds[tid] += 1
                i += 1
        except Exception as e:  # reported below, with the thread that saw it
            errors.append("thread %d raised %s: %s" % (tid, type(e).__name__, e))

    try:
        threads = [threading.Thread(target=run, args=(t,)) for t in range(N_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:10]
    assert all(r >= 1 for r in rounds), rounds


def test_recording_on_a_tape_another_thread_sweeps(shared):
    # Growing or resetting a tape while another thread sweeps it without the GIL is
    # refused with TapeError; recording into spare capacity is allowed.  Either way
    # the sweeping thread's gradient must be exact.
    with fd.Tape() as tape:
        x = tape.variable(np.linspace(0.5, 1.5, 60000))
        y = fd.sum(fd.sin(x) * x)
    expect = tape.gradient(y, x)
    stop = threading.Event()
    errors = []

    def sweeper():
        try:
            while not stop.is_set():
                if not np.array_equal(tape.gradient(y, x), expect):
                    errors.append("gradient changed under concurrent recording")
        except Exception as e:
            errors.append("sweeper raised %s: %s" % (type(e).__name__, e))

    t = threading.Thread(target=sweeper)
    t.start()
    allowed = 0
    try:
        end = time.monotonic() + min(SECONDS, 1.0)
        while time.monotonic() < end:
            try:
                z = fd.sum(x * 2.0)           # may need to grow the tape
                allowed += 1
                assert z.value == pytest.approx(2 * x.value.sum(), rel=1e-12)
            except fd.TapeError:
                pass
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors[:5]
    assert np.array_equal(tape.gradient(y, x), expect)
