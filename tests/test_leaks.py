"""No leaks: recording and sweeping large functions many times keeps memory flat.

Each test records and differentiates a function of about 10**6 operations in a
loop and reads the resident set size from /proc/self/statm.  After a few warm-up
calls (the per-thread scratch tapes and adjoint buffers reach their final size),
the RSS may not grow by more than LEAK_TOLERANCE_MB: a leak of even one byte per
operation would grow it by ITERS MB.  Reference counts of the inputs and outputs
are compared before and after.

FASTAD_LEAK_ITERS raises the iteration count (RELIABILITY.md reports a run with
100); the default keeps the suite fast.
"""
import gc
import os
import resource
import sys
import weakref

import numpy as np
import pytest

import fastad as fd

ITERS = int(os.environ.get("FASTAD_LEAK_ITERS", "20"))
WARMUP = 3
LEAK_TOLERANCE_MB = 12.0
N_OPS = 10 ** 6
PAGE = resource.getpagesize()

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs Linux /proc to read the RSS")


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2 ** 20


def assert_flat(step, iters=ITERS):
    """Run step() WARMUP times, then `iters` times; the RSS must stay flat."""
    for _ in range(WARMUP):
        step()
    gc.collect()
    base = rss_mb()
    peak = base
    for _ in range(iters):
        step()
        peak = max(peak, rss_mb())
    gc.collect()
    end = rss_mb()
    growth = end - base
    assert growth < LEAK_TOLERANCE_MB, (
        "RSS grew by %.1f MB over %d iterations (base %.1f MB, peak %.1f MB)"
        % (growth, iters, base, peak, ))
    return growth


def test_eager_grad_array_function_memory_flat():
    m = N_OPS // 5
    x = np.linspace(-1.0, 1.0, m)

    def f(v):  # 5 recorded ops per element (+ the sum's chain)
        return fd.sum(fd.sin(v) * v + fd.exp(v) * 0.5)

    g = fd.grad(f)
    ref_x = sys.getrefcount(x)
    first = g(x)
    expect = np.cos(x) * x + np.sin(x) + 0.5 * np.exp(x)
    np.testing.assert_allclose(first, expect, rtol=1e-14, atol=1e-15)

    def step():
        out = g(x)
        # computed outside `assert`: pytest's rewriting would hold a reference
        rc = sys.getrefcount(out)
        assert rc == 2   # only `out` and the call's argument
    assert_flat(step)
    rc = sys.getrefcount(x)
    assert rc == ref_x


def test_eager_grad_scalar_loop_memory_flat():
    steps = N_OPS // 2

    def f(v):
        s = v
        for _ in range(steps):      # 2 ops per iteration
            s = s * 0.9999999 + 1e-7
        return s

    with fd.Tape() as t:            # count what one call records
        f(t.variable(0.3))
        assert len(t) >= N_OPS
    vg = fd.value_and_grad(f)
    x = 0.3

    def step():
        value, grad = vg(x)
        assert grad == pytest.approx(0.9999999 ** steps, rel=1e-12)
        rc = sys.getrefcount(grad)
        assert rc == 2   # a fresh float held by `grad` only
    assert_flat(step, iters=max(ITERS // 2, 5))


def test_fresh_tapes_with_arrays_freed_every_iteration():
    # A new Tape per iteration (no pooling): its ~40 MB of arrays must go when the
    # tape and its Vars are dropped, or the RSS climbs by that much each time.
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((100, 100))
    xs = rng.standard_normal((100, 20))
    ref_w, ref_x = sys.getrefcount(w0), sys.getrefcount(xs)

    def step():
        with fd.Tape() as t:
            w = t.variable(w0)
            h = fd.tanh(fd.matmul(w, xs))        # records the product and tanh
            y = fd.sum(h * h) + fd.sum(fd.sin(w) * w)
            for _ in range(4):
                y = y + fd.sum(fd.exp(h * 0.01) * 0.1)
        assert len(t) > 50000
        gw = t.gradient(y, w)
        assert gw.shape == w0.shape and np.isfinite(gw).all()
        rc = sys.getrefcount(gw)
        assert rc == 2
        tape_ref = weakref.ref(t)
        del t, w, h, y, gw
        return tape_ref

    def step_checked():
        ref = step()
        gc.collect()
        assert ref() is None, "a Tape stayed alive after all its Vars were dropped"
    assert_flat(step_checked)
    rc_w, rc_x = sys.getrefcount(w0), sys.getrefcount(xs)
    assert (rc_w, rc_x) == (ref_w, ref_x)


def test_tape_freed_without_the_cycle_collector():
    # Scalar and elementwise recording must not create reference cycles: a tape
    # holding 40 MB should be freed the moment its last reference goes, not at the
    # next gc pass.
    gc.disable()
    try:
        with fd.Tape() as t:
            x = t.variable(np.ones(1000))
            s = t.variable(2.0)
            y = fd.sum(fd.exp(x) * s) + s * s
            y > 0                   # a guard
        t.gradient(y, [x, s])
        ref = weakref.ref(t)
        del t, x, s, y
        assert ref() is None
    finally:
        gc.enable()


@fd.custom_vjp
def _scaled(y):
    return y * 3.0


_scaled.defvjp(lambda y: (y * 3.0, None), lambda res, g: (g * 3.0,))


@fd.custom_jvp
def _cube(y):
    return y ** 3


_cube.defjvp(lambda p, t: (p[0] ** 3, 3.0 * p[0] ** 2 * t[0]))

# What a tape can hold, one kind of record each.  Vars do not take part in the
# cyclic GC (fastad._tape: the allocation and tracking were ~15% of eager
# recording), so nothing a tape holds may hold one of its Vars: with a cycle
# through a Var the tape would never be freed.
_RECORDED = {
    "matmul": lambda x: fd.sum(fd.tanh(fd.matmul(np.ones((3, 8)), x))),
    "softmax": lambda x: fd.sum(fd.softmax(x) * np.arange(8.0)),
    "logsumexp": lambda x: fd.logsumexp(x * 2.0),
    "indexing": lambda x: fd.sum(x[::2] * x[1::2]) + x[3],
    "custom_vjp": lambda x: fd.sum(_scaled(x) * x),
    "custom_jvp": lambda x: fd.sum(_cube(x)),
    "solve": lambda x: fd.sum(np.linalg.solve(np.eye(8) * 2.0 + np.outer(x, x), x)),
    "nested grad": lambda x: fd.sum(fd.grad(lambda z: fd.sum(fd.sin(z) * z))(x)),
    "create_graph": None,
}


@pytest.mark.parametrize("kind", sorted(_RECORDED))
def test_every_kind_of_record_is_freed_without_the_cycle_collector(kind):
    def record_and_drop():
        with fd.Tape() as t:
            x = t.variable(np.linspace(0.1, 0.8, 8))
            if kind == "create_graph":
                g = t.gradient(fd.sum(fd.exp(x) * x), x, create_graph=True)
                y = fd.sum(g * g)
            else:
                y = _RECORDED[kind](x)
        gx = t.gradient(y, x)
        assert np.isfinite(gx).all() and np.any(gx != 0)
        return weakref.ref(t)       # every Var of t goes with this frame

    gc.disable()
    try:
        ref = record_and_drop()
        assert ref() is None, "the tape stayed alive: a cycle through what it holds"
    finally:
        gc.enable()


def test_many_gradient_calls_on_one_tape_memory_flat():
    # tape.gradient reuses the tape's adjoint buffer; results are fresh arrays
    m = N_OPS // 4
    with fd.Tape() as t:
        x = t.variable(np.linspace(0.1, 1.0, m))
        y = fd.sum(fd.log(x) * x * x)
    ref_x = sys.getrefcount(x)
    expect = np.log(x.value) * 2 * x.value + x.value

    def step():
        g = t.gradient(y, [x, {"again": x}])
        np.testing.assert_allclose(g[0], expect, rtol=1e-13, atol=1e-15)
        rc = sys.getrefcount(g[0])
        assert rc == 2   # held by the list only
    assert_flat(step)
    rc = sys.getrefcount(x)
    assert rc == ref_x


def test_vars_are_released():
    # No Var outlives the computation that made it (the freelist recycles them)
    def live_vars():
        return sum(1 for o in gc.get_objects() if type(o) is fd.Var)
    gc.collect()
    before = live_vars()
    g = fd.grad(lambda v: fd.sum(fd.stack([v[i] * v[i + 1] for i in range(9)])))
    for _ in range(50):
        g(np.arange(10.0))
    gc.collect()
    assert live_vars() == before


def test_traced_replay_memory_flat():
    """fd.trace of a 10^6-operation scalar loop, replayed 100 times: RSS flat and
    the input's and outputs' reference counts restored."""
    n = N_OPS // 9 + 1   # Rosenbrock records 9 operations per term

    def rosen(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
        return s

    x0 = np.linspace(-1.0, 1.0, n)
    tf = fd.trace(rosen, x0)
    assert len(tf) >= N_OPS - 10
    x = x0 + 0.25
    ref_x = sys.getrefcount(x)
    np.testing.assert_array_equal(tf.grad(x), fd.grad(rosen)(x))

    def step():
        out = tf.grad(x)
        rc = sys.getrefcount(out)
        assert rc == 2
    assert_flat(step, iters=max(ITERS, 100))
    rc = sys.getrefcount(x)
    assert rc == ref_x


def test_traced_array_replay_memory_flat():
    """A traced function with array records (matmul, tanh, logsumexp) replayed 100
    times: RSS flat."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 100))

    def f(w):
        return fd.logsumexp(fd.tanh(A @ w)) + fd.sum(w * w)

    w0 = rng.standard_normal(100)
    tf = fd.trace(f, w0)
    w = w0 * 0.5
    np.testing.assert_allclose(tf.grad(w), fd.grad(f)(w), rtol=1e-13, atol=1e-14)

    def step():
        tf.grad(w)
    assert_flat(step, iters=max(ITERS, 100))
