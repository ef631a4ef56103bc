"""Optimized traces (fd.trace(..., optimize=True), the default): fastad/_optimize.pyx
and the fixed partials of fastad/_replay.pyx."""
import pickle

import numpy as np
import pytest

import fastad as fd
from fastad._optimize import optimize
from fastad._replay import FIXED_PARTIAL_OPS, compact_guards
from fastad._tape import OP_INFO, _test_eval

from _op_table_program import N_INPUTS, op_fn, points, program, x0


@pytest.fixture(scope="module")
def table_traces():
    return (fd.trace(program, x0(), 0.7, optimize=False), fd.trace(program, x0(), 0.7))


def test_the_table_program_shrinks(table_traces):
    plain, opt = table_traces
    assert not plain._tape.records
    # every op: one merged duplicate, one dead op, one folded constant op
    assert len(opt) < len(plain) - 2 * len(OP_INFO)
    assert "(%d recorded, optimized)" % len(plain) in repr(opt)
    assert "recorded" not in repr(plain)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_optimized_agrees_with_plain_replay_on_the_whole_table(table_traces, seed):
    plain, opt = table_traces
    for x in points(seed, 4):
        for p in (0.7, -1.3):
            v0, g0 = plain.value_and_grad(x, p)
            v1, g1 = opt.value_and_grad(x, p)
            g0, g1 = np.array(g0), np.array(g1)
            assert len(g1) == N_INPUTS
            np.testing.assert_allclose(v1, v0, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(g1, g0, rtol=1e-12, atol=1e-12)
            # and plain replay is fd.grad to the last bit
            assert np.array_equal(g0, np.array(fd.grad(program)(x, p)))


def test_optimized_grad_batch_matches_its_single_calls(table_traces):
    _, opt = table_traces
    X = np.array(points(7, 5))
    G = opt.grad_batch(X, 0.25, threads=2)
    for row, g in zip(X, G):
        assert np.array_equal(g, np.array(opt.grad(tuple(row), 0.25)))


def test_each_op_with_a_merged_duplicate_agrees_to_rounding():
    # one small trace per op of the table: f = op(x...) + op(x...) (merged to one)
    for _code, name, arity, dom in OP_INFO:
        fn = op_fn(name)
        if arity == 1:
            f = lambda x, fn=fn: fn(x) * 2.0 + fn(x)         # noqa: E731
            x = 0.5 * (dom[0][0] + dom[0][1]) + 0.1
            tf0, tf1 = fd.trace(f, x, optimize=False), fd.trace(f, x)
            # (+x records nothing: it is x)
            assert len(tf1) < len(tf0) or name == "positive", name
            for t in np.linspace(dom[0][0], dom[0][1], 5):
                np.testing.assert_allclose(tf1.grad(float(t)), tf0.grad(float(t)),
                                           rtol=1e-13, atol=1e-14, err_msg=name)
                assert tf1(float(t)) == tf0(float(t)) or np.isnan(tf0(float(t)))
        else:
            f = lambda x, fn=fn: fn(x[0], x[1]) * 2.0 + fn(x[0], x[1])   # noqa: E731
            x = (0.5 * (dom[0][0] + dom[0][1]), 0.5 * (dom[1][0] + dom[1][1]))
            tf0, tf1 = fd.trace(f, x, optimize=False), fd.trace(f, x)
            assert len(tf1) < len(tf0), name
            rng = np.random.default_rng(5)
            for _ in range(5):
                t = (float(rng.uniform(*dom[0])), float(rng.uniform(*dom[1])))
                np.testing.assert_allclose(tf1.grad(t), tf0.grad(t), rtol=1e-13,
                                           atol=1e-14, err_msg=name)


def test_fixed_partial_ops_really_do_not_depend_on_the_values():
    # replay leaves da/db of these ops as set once: check that at many points
    doms = {code: dom for code, _name, _arity, dom in OP_INFO}
    rng = np.random.default_rng(11)
    for op in FIXED_PARTIAL_OPS:
        base = op if op in doms else (op - 1 if op - 1 in doms else op - 2)
        dom = doms[base]
        const = 0.5 * (dom[-1][0] + dom[-1][1]) + 0.1    # the op's constant (C1/C0)
        ref = None
        for _ in range(20):
            x = float(rng.uniform(*dom[0]))
            y = float(rng.uniform(*dom[-1])) if op == base else const
            r, dx, dy = _test_eval(op, x, y)[:3]
            if ref is None:
                ref = (dx, dy)
            assert (dx, dy) == ref, op


def test_constant_subgraphs_fold_and_parameters_do_not():
    def f(x, p):
        c = fd.stack([x, 2.0])[1]            # a constant leaf
        k = fd.exp(c) * fd.sin(c) + c        # depends on nothing: folds
        return k * x + p * p * x             # p * p must stay: p is dynamic
    tf0, tf1 = fd.trace(f, 0.3, 1.5, optimize=False), fd.trace(f, 0.3, 1.5)
    assert len(tf1) <= len(tf0) - 3
    for p in (1.5, -0.25, 3.0):
        assert tf1(0.7, p) == tf0(0.7, p)
        np.testing.assert_allclose(tf1.grad(0.7, p), tf0.grad(0.7, p), rtol=1e-15)
        assert tf1.grad(0.7, p) == pytest.approx(np.exp(2.0) * np.sin(2.0) + 2.0 + p * p)


def test_guard_operands_stay_live_and_guards_keep_their_meaning():
    def f(x):
        y = fd.sin(x)                        # read only by the guard
        if y > 0.5:
            return x * 2.0
        return x * 3.0
    tf = fd.trace(f, 1.0)
    assert tf.grad(1.2) == 2.0
    with pytest.raises(fd.TraceError, match="guard failed"):
        tf.grad(0.1)
    rt = fd.trace(f, 1.0, retrace=True)
    assert rt.grad(0.1) == 3.0 and rt.grad(1.2) == 2.0
    assert "recorded, optimized" in repr(rt)


def test_save_load_and_pickle_of_an_optimized_trace(tmp_path, table_traces):
    _, opt = table_traces
    x = points(9, 1)[0]
    p = tmp_path / "opt.fdtrace"
    opt.save(p)
    for t in (fd.load(p), pickle.loads(pickle.dumps(opt))):
        assert len(t) == len(opt)
        assert np.array_equal(np.array(t.grad(x, 0.3)), np.array(opt.grad(x, 0.3)))
        assert t(x, 0.3) == opt(x, 0.3)
    assert repr(pickle.loads(pickle.dumps(opt))) == repr(opt)


def test_hessian_and_jvp_run_on_an_optimized_tape():
    f = lambda x: fd.sin(x[0]) * x[1] + fd.sin(x[0]) * x[1] + x[0] * x[0]  # noqa: E731
    x = np.array([0.3, 0.8])
    tf0, tf1 = fd.trace(f, x, optimize=False), fd.trace(f, x)
    np.testing.assert_allclose(tf1.hessian(x), tf0.hessian(x), rtol=1e-14)
    np.testing.assert_allclose(tf1.jvp(x, np.ones(2))[1], tf0.jvp(x, np.ones(2))[1],
                               rtol=1e-14)


def test_tapes_with_array_records_are_left_as_recorded():
    f = lambda x: fd.sum(fd.tanh(fd.matmul(np.ones((3, 3)), x)))   # noqa: E731
    tf = fd.trace(f, np.ones(3))
    assert tf._tape.records and "optimized" not in repr(tf)
    tape = tf._tape
    assert optimize(tape, 3, 0, 4, 1, compact_guards(tape, [])) is None


def test_optimize_argument_is_checked():
    with pytest.raises(TypeError, match="optimize"):
        fd.trace(lambda x: x * 2.0, 1.0, optimize="yes")


def test_a_long_tape_optimizes():
    # a 2 * 10**5-op chain with a duplicate at every step: half of it merges
    def f(x):
        v = x
        for _ in range(50_000):
            v = fd.sin(v) * 0.5 + fd.sin(v) * 0.25
        return v
    tf0, tf1 = fd.trace(f, 0.3, optimize=False), fd.trace(f, 0.3)
    assert len(tf1) < 0.85 * len(tf0)
    np.testing.assert_allclose(tf1.grad(0.4), tf0.grad(0.4), rtol=1e-10)
