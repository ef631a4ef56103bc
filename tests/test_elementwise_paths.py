"""Elementwise operations at the default threshold: per-element scalar slots up to
fastad._arrays.ELEMENTWISE_RECORD_MIN_SIZE elements, one record from there.

The core records small elementwise ops from a C loop without NumPy's index
arithmetic for the shapes a loop meets (fastad._tape._elementwise_block): an array
Var alone, with a number or a scalar Var on either side, or with a Var of its own
shape.  Its slots must be those of the general slot path bit for bit (the general
path is what a broadcast ndarray constant takes), and both must agree with the
record path to rounding.
"""
import numpy as np
import pytest

import fastad as fd
from fastad import _arrays, _tape
from fastad._tape import OP_INFO

EMIN = _arrays.ELEMENTWISE_RECORD_MIN_SIZE
N = 40                                  # between the two thresholds: scalar slots
RNG = np.random.default_rng(11)


def _fn(name):
    return getattr(_tape, name)


def _sample(dom, n=N):
    lo, hi = dom
    return RNG.uniform(lo, hi, n)


def _slots(build):
    """(tape slot arrays, records) of build(tape) recorded on a fresh tape."""
    with fd.Tape() as t:
        build(t)
    return t._slot_arrays(), t.records


def _assert_same_slots(a, b):
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_the_threshold_chooses_the_path():
    assert _arrays.RECORD_MIN_SIZE <= EMIN
    for n, records in ((EMIN - 1, 0), (EMIN, 1)):
        with fd.Tape() as t:
            fd.sin(t.variable(np.linspace(0.0, 1.0, n)))
        assert len(t.records) == records, n
    # other array operations still record from RECORD_MIN_SIZE up, and so do
    # elementwise ones whose operands broadcast (the core's general slot path
    # costs more than a record there)
    with fd.Tape() as t:
        fd.softmax(t.variable(np.linspace(0.0, 1.0, _arrays.RECORD_MIN_SIZE)))
    assert len(t.records) == 1
    with fd.Tape() as t:
        v = t.variable(np.linspace(0.0, 1.0, N))
        v * np.ones((2, N))                     # broadcast: a record
        v * np.ones(N)                          # same shape: slots
    assert [r.name for r in t.records] == ["multiply"]
    with fd.Tape() as t:
        fd.sin(t.variable(np.ones(_arrays.RECORD_MIN_SIZE - 1)) * np.ones((2, 1)))
    assert not t.records                        # below RECORD_MIN_SIZE: slots


UNARY = [(name, dom[0]) for code, name, arity, dom in OP_INFO if arity == 1]
BINARY = [(name, dom) for code, name, arity, dom in OP_INFO if arity == 2]


CODES = {name: code for code, name, arity, dom in OP_INFO}


@pytest.mark.parametrize("name,dom", UNARY, ids=[u[0] for u in UNARY])
def test_unary_fast_slots_equal_the_general_path(name, dom):
    x = _sample(dom)
    fast, recs = _slots(lambda t: _fn(name)(t.variable(x)))
    assert not recs
    general, _ = _slots(lambda t: _tape._test_elementwise_general(CODES[name],
                                                                   t.variable(x)))
    _assert_same_slots(fast, general)


@pytest.mark.parametrize("name,dom", BINARY, ids=[b[0] for b in BINARY])
def test_binary_fast_slots_equal_the_general_path(name, dom):
    f, code = _fn(name), CODES[name]
    general = _tape._test_elementwise_general
    x, y = _sample(dom[0]), _sample(dom[1])
    c_right, c_left = float(y[3]), float(x[5])
    cases = {
        "Var, Var": lambda t, g: g(t.variable(x), t.variable(y)),
        "Var, number": lambda t, g: g(t.variable(x), c_right),
        "number, Var": lambda t, g: g(c_left, t.variable(y)),
        "Var, scalar Var": lambda t, g: g(t.variable(x), t.variable(c_right)),
        "scalar Var, Var": lambda t, g: g(t.variable(c_left), t.variable(y)),
        "Var, array": lambda t, g: g(t.variable(x), y),
        "array, Var": lambda t, g: g(x, t.variable(y)),
    }
    for label, build in cases.items():
        fast, recs = _slots(lambda t: build(t, f))
        assert not recs, label
        # the general path takes numbers as constant arrays, as broadcasting does
        slow, _ = _slots(lambda t: build(t, lambda a, b: general(
            code, a if type(a) is fd.Var else np.float64(a),
            b if type(b) is fd.Var else np.float64(b))))
        for u, v in zip(fast, slow):
            np.testing.assert_array_equal(u, v, err_msg=label)


@pytest.mark.parametrize("name,dom", BINARY, ids=[b[0] for b in BINARY])
def test_slot_and_record_paths_agree(name, dom, monkeypatch):
    f = _fn(name)
    x, y = _sample(dom[0]), _sample(dom[1])
    w = RNG.normal(size=N)

    def loss(v):
        return fd.sum(f(v[:N], v[N:]) * w) + fd.sum(f(v[:N], float(y[0])) * w)
    v0 = np.concatenate([x, y])
    g_slots = fd.grad(loss)(v0)
    monkeypatch.setattr(_arrays, "ELEMENTWISE_RECORD_MIN_SIZE", 1)
    g_record = fd.grad(loss)(v0)
    np.testing.assert_allclose(g_slots, g_record, rtol=1e-12, atol=1e-14)


def test_debug_nans_names_the_op_on_the_fast_path():
    with fd.debug_nans():
        with fd.Tape() as t:
            x = t.variable(np.linspace(-2.0, -1.0, N))
            with pytest.raises(FloatingPointError, match="log"):
                fd.log(x)


def test_a_stale_or_foreign_var_is_refused_on_the_fast_path():
    with fd.Tape() as t1:
        a = t1.variable(np.ones(N))
    with fd.Tape() as t2:
        b = t2.variable(np.ones(N))
        with pytest.raises(fd.TapeError, match="another tape"):
            a + b
        with pytest.raises(fd.TapeError, match="another tape"):
            b * t1.variable(2.0)
    t1.reset()
    with pytest.raises(fd.TapeError, match="reset"):
        fd.sin(a)
