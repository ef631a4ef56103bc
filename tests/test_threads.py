"""Threads: each has its own active-tape stack; recording on separate tapes at once,
fd.grad from several threads, and gradients of one shared finished tape from several
threads all give exactly the single-threaded numbers."""
import threading

import numpy as np
import pytest

import fastad as fd
from fastad import _tape

N_THREADS = 4


def rosen(x):
    total = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] * x[i]) ** 2 + (1.0 - x[i]) ** 2
    return total


def chain(x, n):
    """A scalar chain long enough that its reverse sweep releases the GIL."""
    v = x
    for _ in range(n):
        v = fd.sin(v) * 0.9 + 0.1
    return v


def run_threads(target, args_list):
    """Run target(*args) in one thread each; re-raise the first failure."""
    results = [None] * len(args_list)
    errors = []

    def wrap(k, args):
        try:
            results[k] = target(*args)
        except BaseException as e:     # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(k, a)) for k, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def test_each_thread_has_its_own_active_tape_stack():
    barrier = threading.Barrier(N_THREADS)

    def body(k):
        assert _tape.current_tape() is None      # the main thread's stack is not shared
        with fd.Tape() as outer:
            with fd.Tape() as inner:
                barrier.wait()                    # every thread inside its two tapes
                assert _tape.current_tape() is inner
                x = inner.variable(float(k))
                y = x * x
                barrier.wait()
                assert _tape.current_tape() is inner
            assert _tape.current_tape() is outer
        assert _tape.current_tape() is None
        return inner.gradient(y, x), len(inner), len(outer)

    with fd.Tape() as main_tape:
        results = run_threads(body, [(k,) for k in range(N_THREADS)])
        assert _tape.current_tape() is main_tape
    assert results == [(2.0 * k, 2, 0) for k in range(N_THREADS)]


def test_recording_on_separate_tapes_at_once_matches_single_threaded():
    inputs = [np.linspace(-1.0 - k, 1.0 + k, 300) for k in range(N_THREADS)]
    n_chain = 30000                  # > the sweep's GIL-release threshold

    def work(x0, seed, barrier):
        out = []
        for rep in range(3):
            if barrier is not None:
                barrier.wait()           # start recording together
            with fd.Tape() as tape:
                x = tape.variable(x0)
                y = rosen(x)
                c = chain(x[0] * 0.1 + seed, n_chain)
            out.append((y.value, tape.gradient(y, x), c.value, tape.gradient(c, x),
                        len(tape), tape.wengert()[-200:]))
        return out

    single = [work(x0, k, None) for k, x0 in enumerate(inputs)]
    barrier = threading.Barrier(N_THREADS)
    threaded = run_threads(work, [(x0, k, barrier) for k, x0 in enumerate(inputs)])
    for s_runs, t_runs in zip(single, threaded):
        for s, t in zip(s_runs, t_runs):
            assert s[0] == t[0] and s[2] == t[2] and s[4] == t[4] and s[5] == t[5]
            np.testing.assert_array_equal(s[1], t[1])
            np.testing.assert_array_equal(s[3], t[3])


def test_fd_grad_from_several_threads_matches_single_threaded():
    inputs = [np.linspace(-2.0, 2.0, 200) * (k + 1) for k in range(N_THREADS)]
    vg = fd.value_and_grad(rosen)
    single = [vg(x) for x in inputs]

    def work(x, barrier):
        barrier.wait()
        return [vg(x) for _ in range(5)]

    barrier = threading.Barrier(N_THREADS)
    threaded = run_threads(work, [(x, barrier) for x in inputs])
    for (sv, sg), runs in zip(single, threaded):
        for v, g in runs:
            assert v == sv
            np.testing.assert_array_equal(g, sg)


def test_nested_fd_grad_in_threads():
    def inner_value(y):
        return fd.grad(lambda t: fd.sin(t) * y)(0.5)

    def work(k):
        return [fd.grad(lambda x: x * inner_value(float(k)))(2.0) for _ in range(20)]

    want = [[float(k) * np.cos(0.5)] * 20 for k in range(N_THREADS)]
    got = run_threads(work, [(k,) for k in range(N_THREADS)])
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_gradients_of_one_shared_tape_from_several_threads():
    """A finished tape swept by several threads at once: each sweep gets its own
    adjoint buffer when the tape's own is busy; all answers agree."""
    with fd.Tape() as tape:
        x = tape.variable(np.linspace(0.1, 1.0, 50))
        targets = [chain(x[k] * 0.5, 25000) for k in range(N_THREADS)]
    single = [tape.gradient(t, x) for t in targets]
    barrier = threading.Barrier(N_THREADS)

    def work(k):
        barrier.wait()
        return [tape.gradient(targets[k], x) for _ in range(4)]

    got = run_threads(work, [(k,) for k in range(N_THREADS)])
    for k in range(N_THREADS):
        for g in got[k]:
            np.testing.assert_array_equal(g, single[k])


def test_recording_on_a_tape_another_thread_is_sweeping_is_safe():
    """Growing a tape while another thread's sweep reads it would free its arrays:
    it raises TapeError instead; recording within capacity is fine."""
    with fd.Tape() as tape:
        x = tape.variable(0.3)
        y = chain(x, 200000)
    want = tape.gradient(y, x)
    stop = threading.Event()
    outcomes = []

    def sweeper():
        while not stop.is_set():
            assert tape.gradient(y, x) == want

    def recorder():
        for _ in range(200):
            try:
                with tape:
                    z = x
                    for _ in range(5000):
                        z = z * 1.0
                outcomes.append("ok")
            except fd.TapeError as e:
                assert "sweep" in str(e)
                outcomes.append("refused")

    sweep_thread = threading.Thread(target=sweeper)
    sweep_thread.start()
    try:
        run_threads(recorder, [()])
    finally:
        stop.set()
        sweep_thread.join(timeout=300)
    assert len(outcomes) == 200
    assert tape.gradient(y, x) == want
