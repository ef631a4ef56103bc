"""Values that leave the tape (API.md section 14).

float(v) of a Var would hand Python a number with no derivative: math.sin(x),
float(x) * x, np.float64(x), complex(x) and `a[0] = x` into a float array all used
to give a gradient with the escaped part silently missing.  Each must now raise a
TypeError naming the fix, through every entry point.  int(), bool(), comparisons
and indexing by a Var stay: their derivative is exactly zero, and under fd.trace
they are guards.
"""
import cmath
import math

import numpy as np
import pytest

import fastad as fd


def _setitem(x):
    a = np.zeros(3)
    a[0] = x
    return fd.sum(a * x)


def _setitem_f32(x):
    a = np.zeros(3, dtype=np.float32)
    a[1] = x
    return fd.sum(a * x)


def _slice_setitem(x):
    a = np.zeros(3)
    a[0:2] = x
    return fd.sum(a * x)


# (name, f, x0): each f lets a Var escape as a number somewhere
ESCAPES = [
    ("math.sin*math.exp", lambda x: math.sin(x) * math.exp(-x), 0.7),
    ("math.exp", lambda x: math.exp(x), 0.7),
    ("float(x)*x", lambda x: float(x) * x, 0.7),
    ("np.float64(x)", lambda x: np.float64(x) * x, 0.7),
    ("complex(x)", lambda x: complex(x).real * x, 0.7),
    ("cmath.exp", lambda x: cmath.exp(x).real, 0.7),
    ("a[0] = x", _setitem, 0.7),
    ("a[1] = x, float32", _setitem_f32, 0.7),
    ("a[0:2] = x", _slice_setitem, 0.7),
    ("math.floor", lambda x: x * math.floor(x), 0.7),
    ("'%f' % x", lambda x: x * len("%f" % x), 0.7),
    # size-1 array Vars the same
    ("size-1 math.sin", lambda x: math.sin(x), np.array([0.7])),
    ("size-1 float", lambda x: float(x) * fd.sum(x), np.array([0.7])),
    ("size-1 element float", lambda x: float(x[0]) * fd.sum(x), np.array([0.7, 0.2])),
    ("size-1 np.float64", lambda x: np.float64(x) * fd.sum(x), np.array([0.7])),
    ("size-1 a[0] = x", _setitem, np.array([0.7])),
    ("size-1 complex", lambda x: complex(x).real * fd.sum(x), np.array([[0.7]])),
]
IDS = [e[0] for e in ESCAPES]


def _check_message(err):
    msg = str(err)
    assert "fd.sin" in msg and ".value" in msg, msg        # the fix, both ways


@pytest.mark.parametrize("name, f, x0", ESCAPES, ids=IDS)
@pytest.mark.parametrize("entry", ["grad", "value_and_grad", "hessian", "trace", "tape"])
def test_escape_raises_type_error_naming_the_fix(name, f, x0, entry):
    def run():
        if entry == "grad":
            return fd.grad(f)(x0)
        if entry == "value_and_grad":
            return fd.value_and_grad(f)(x0)
        if entry == "hessian":
            return fd.hessian(f)(x0)
        if entry == "trace":
            return fd.trace(f, x0)
        with fd.Tape() as tape:
            x = tape.variable(x0)
            return tape.gradient(f(x), x)

    with pytest.raises(TypeError) as info:
        run()
    _check_message(info.value)


def test_float_message_is_the_documented_one():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        w = tape.variable(np.ones(3))
    for conv in (float, complex):
        with pytest.raises(TypeError, match=r"%s\(\) of a fastad Var would drop its "
                           r"derivative; use fd.sin / np.sin instead of math.sin, or "
                           r"v.value to read the number" % conv.__name__):
            conv(x)
    with pytest.raises(TypeError, match="drop its derivative"):
        float(w)                       # not "only size-1 arrays": the same reason
    assert x.value == 0.5 and math.sin(x.value) == math.sin(0.5)   # .value is the way


def test_escapes_record_nothing():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        n = len(tape)
        for conv in (float, complex, math.sin):
            with pytest.raises(TypeError):
                conv(x)
    assert len(tape) == n and tape.guards == []


def test_stale_var_escape_is_still_a_type_error():
    tape = fd.Tape()
    with tape:
        x = tape.variable(0.5)
    tape.reset()
    with pytest.raises(TypeError, match="drop its derivative"):
        float(x)


def test_dual_escapes_share_the_message():
    d = fd.Dual(0.7, 1.0)
    for conv in (float, complex, math.sin, cmath.sin):
        with pytest.raises(TypeError, match="of a fastad Dual would drop its tangent") as info:
            conv(d)
        _check_message(info.value)
    with pytest.raises(TypeError) as info:
        fd.derivative(lambda x: math.sin(x))(0.7)
    _check_message(info.value)
    with pytest.raises(TypeError) as info:
        fd.jvp(lambda x: np.zeros(2).__setitem__(0, x), (0.7,), (1.0,))
    _check_message(info.value)


def test_minimize_does_not_report_success_on_an_escape():
    pytest.importorskip("scipy")
    f = lambda x: math.sin(x) * math.exp(-x) + x * x      # noqa: E731
    for kw in ({}, {"trace": True}, {"method": "Newton-CG"}, {"method": "Nelder-Mead"}):
        with pytest.raises(TypeError) as info:
            fd.minimize(f, 0.7, **kw)
        _check_message(info.value)


# -- what stays: exact zero derivative, guards under trace -----------------------

def _int(x):
    return x * int(x)


def _bool(x):
    return x * 2.0 if x - 1.0 else x * 3.0


def _compare(x):
    return x * x if x > 1.0 else -x


def _index(x):
    return x * [10.0, 20.0, 30.0, 40.0][fd.floor(x)]


def _size1_bool(x):
    return fd.sum(x) * (2.0 if x - 1.0 else 3.0)


# (f, x0, gradient at x0, a point where the recorded guard flips)
STAYS = [
    (_int, 2.5, 2.0, 3.5),
    (_bool, 2.5, 2.0, 1.0),
    (_compare, 2.5, 5.0, 0.5),
    (_index, 2.5, 30.0, 3.5),
    (_size1_bool, np.array([2.5]), np.array([2.0]), np.array([1.0])),
]


@pytest.mark.parametrize("f, x0, g0, x1", STAYS, ids=[s[0].__name__ for s in STAYS])
def test_int_bool_compare_index_stay_and_are_guards(f, x0, g0, x1):
    np.testing.assert_array_equal(fd.grad(f)(x0), g0)     # the escape's part is 0
    tf = fd.trace(f, x0)
    assert tf.n_guards >= 1
    np.testing.assert_array_equal(tf.grad(x0), g0)
    with pytest.raises(fd.TraceError, match="guard"):
        tf.grad(x1)
    np.testing.assert_array_equal(fd.trace(f, x0, retrace=True).grad(x1), fd.grad(f)(x1))


def test_array_var_protocols_survive_without_the_sequence_slot():
    # Var's sq_item slot is cleared so NumPy reports a[0] = x as our TypeError;
    # indexing, iteration, reversed() and unpacking go through the other protocols
    with fd.Tape() as tape:
        w = tape.variable(np.arange(4.0))
        assert w[-1].value == 3.0 and w[1:3].value.tolist() == [1.0, 2.0]
        assert [v.value for v in w] == [0.0, 1.0, 2.0, 3.0]
        assert [v.value for v in reversed(w)] == [3.0, 2.0, 1.0, 0.0]
        a, b, c, d = w
        y = a + 2.0 * b + 3.0 * c + 4.0 * d
        obj = np.empty(2, dtype=object)
        obj[0] = w[1]                   # an object array holds the Var itself
        assert obj[0] is not None and type(obj[0]) is fd.Var
    np.testing.assert_array_equal(tape.gradient(y, w), [1.0, 2.0, 3.0, 4.0])
    with fd.Tape() as tape:
        x = tape.variable(1.0)
    with pytest.raises(TypeError, match="scalar"):
        reversed(x)
