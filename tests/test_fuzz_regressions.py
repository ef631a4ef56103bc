"""Findings of tools/fuzz.py (and of the reliability review), one test each.

Every test here failed before its fix.  A finding that the fuzzer reports is
reduced to the smallest program that shows it and kept here, so that it cannot
come back.
"""
import numpy as np
import pytest

import fastad as fd


def _readonly(a):
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


# -- read-only NumPy inputs ("buffer source array is read-only") -----------------
# Arrays handed out by NumPy views (np.broadcast_to, a Var's .value, frombuffer) are
# read-only; fastad's C loops only read them, so they must be accepted.

def test_math_on_readonly_array():
    ro = _readonly([0.0, 1.0, 2.0])
    np.testing.assert_allclose(fd.sin(ro), np.sin(ro))
    np.testing.assert_allclose(fd.hypot(ro, ro), np.hypot(ro, ro))
    bc = np.broadcast_to(1.0, (3,))
    np.testing.assert_allclose(fd.hypot(bc, ro), np.hypot(bc, ro))


def test_variable_from_readonly_array():
    ro = _readonly([[1.0, 2.0], [3.0, 4.0]])
    with fd.Tape() as t:
        x = t.variable(ro)
        y = fd.sum(x * x)
    np.testing.assert_array_equal(t.gradient(y, x), 2 * ro)


def test_grad_at_readonly_array_and_of_readonly_constant():
    ro = _readonly([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(fd.grad(lambda x: fd.sum(x * x))(ro), 2 * ro)
    np.testing.assert_array_equal(fd.grad(lambda x: fd.sum(x * ro))(np.ones(3)), ro)
    bc = np.broadcast_to(2.0, (3,))
    np.testing.assert_array_equal(fd.grad(lambda x: fd.sum(x * bc))(np.ones(3)), bc)


def test_value_of_one_var_fed_back_as_input():
    # x.value is a read-only ndarray: feeding it into a new tape is ordinary use
    with fd.Tape() as t:
        x = t.variable(np.arange(4.0))
    with fd.Tape() as t2:
        x2 = t2.variable(x.value)
        y = fd.sum(fd.exp(x2))
    np.testing.assert_allclose(t2.gradient(y, x2), np.exp(np.arange(4.0)))


@pytest.mark.parametrize("x", [np.array([-1e3, -1e3]), np.array([1e3, 1e3])])
def test_logsumexp_of_array_var_keepdims_path(x):
    # fd.logsumexp reduces with keepdims=True, which once hit a read-only view
    v, g = fd.value_and_grad(fd.logsumexp)(x)
    assert v == pytest.approx(x[0] + np.log(2.0), rel=1e-15)
    np.testing.assert_allclose(g, [0.5, 0.5], rtol=1e-15)
