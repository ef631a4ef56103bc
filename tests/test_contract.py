"""The contract of API.md sections 1, 3, 5, 9 and 14 where issue 10 found fastad
deviating: error classes and messages, indexing, wengert() names, bit-exact replay
of the softmax family, and the dtype gradients come back in.
"""
import numpy as np
import pytest

import fastad as fd

X3 = np.array([0.5, -1.0, 2.0])


def _vector(x):
    return x * 2.0


# ----------------------------------------------------------------------------------
# 1. shape errors are ValueError naming what came back and what to use instead

@pytest.mark.parametrize("call", [
    lambda: fd.grad(_vector)(X3),
    lambda: fd.value_and_grad(_vector)(X3),
    lambda: fd.hessian(_vector)(X3),
    lambda: fd.hvp(_vector)(X3, X3),
    lambda: fd.grad(lambda x: np.ones(3))(X3),
    lambda: fd.grad(lambda x: [x[0], x[1]])(X3),
    lambda: fd.check_grad(_vector, X3),
], ids=["grad", "value_and_grad", "hessian", "hvp", "ndarray", "list", "check_grad"])
def test_non_scalar_output_is_a_value_error_naming_shape_and_fix(call):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert "scalar" in msg and "fd.jacobian" in msg and "fd.sum" in msg
    assert "(3,)" in msg or "2 items" in msg


@pytest.mark.parametrize("method", ["grad", "value_and_grad", "hessian", "hvp",
                                    "grad_batch"])
def test_traced_non_scalar_output_is_a_value_error(method):
    tf = fd.trace(_vector, X3)
    args = {"hvp": (X3, X3), "grad_batch": (np.ones((2, 3)),)}.get(method, (X3,))
    with pytest.raises(ValueError, match=r"tf\.%s: .*shape \(3,\).*tf\.jacobian"
                       % method):
        getattr(tf, method)(*args)


def test_grad_names_itself_not_value_and_grad():
    with pytest.raises(ValueError, match="^grad: "):
        fd.grad(_vector)(X3)
    with pytest.raises(TypeError, match="^grad: argument 0"):
        fd.grad(_vector)("abc")


@pytest.mark.parametrize("x", [np.ones(2), [1.0, 2.0], np.ones((1, 1))])
def test_derivative_of_an_array_is_a_value_error(x):
    with pytest.raises(ValueError, match=r"derivative: x must be a scalar.*shape.*"
                                         r"fd\.jacobian"):
        fd.derivative(fd.sin)(x)
    assert fd.derivative(fd.sin)(np.array(0.0)) == 1.0     # 0-d is a scalar


def test_jacobian_of_a_ragged_list_is_a_value_error():
    with pytest.raises(ValueError, match="jacobian"):
        fd.jacobian(lambda x: [x[0], [x[1], x[0]]])(X3)


# ----------------------------------------------------------------------------------
# 2. a Python int beyond float64 is a ValueError naming the argument

BIG = 10 ** 400


@pytest.mark.parametrize("call, where", [
    (lambda: fd.grad(lambda x: x * x)(BIG), "grad: argument 0"),
    (lambda: fd.grad(lambda x: x[0] * x[1])([1.0, BIG]), "grad: argument 0"),
    (lambda: fd.jacobian(lambda x: x)(-BIG), "jacobian: argument 0"),
    (lambda: fd.hessian(lambda x: x * x)(BIG), "hessian: x"),
    (lambda: fd.hvp(lambda x: x * x)(1.0, BIG), "hvp: v"),
    (lambda: fd.jvp(lambda x: x * x, (1.0,), (BIG,)), "jvp: tangents[0]"),
    (lambda: fd.derivative(lambda x: x * x)(BIG), "derivative: x"),
    (lambda: fd.trace(lambda x: x * x, BIG), "fd.trace: x0"),
    (lambda: fd.trace(lambda x, p: x * p, 1.0, BIG), "fd.trace: params"),
    (lambda: fd.trace(lambda x: x * x, 1.0)(BIG), "traced f: x"),
    (lambda: fd.trace(lambda x: x * x, 1.0).grad(BIG), "tf.grad: x"),
    (lambda: fd.trace(lambda x, p: x * p, 1.0, 2.0).grad(1.0, BIG), "tf.grad: params"),
    (lambda: fd.Tape().variable(BIG), "tape.variable: value"),
    (lambda: fd.grad(lambda x: x * BIG)(1.0), "operand"),
    (lambda: fd.grad(lambda x: BIG * x)(1.0), "operand"),
    (lambda: fd.grad(lambda x: x ** BIG)(1.0), "operand"),
    (lambda: fd.grad(lambda x: x - (-BIG))(1.0), "operand"),
    (lambda: fd.grad(lambda x: fd.sum(x + BIG))(X3), "y"),
    (lambda: fd.grad(lambda x: fd.sum(x * [1, BIG, 1]))(X3), "y"),
    (lambda: fd.grad(lambda x: x * (x < BIG))(1.0), "other"),
    (lambda: fd.grad(lambda x: fd.maximum(x, BIG))(1.0), "y"),
    (lambda: fd.sin(BIG), "x"),
    (lambda: fd.Dual(BIG, 1.0), "Dual: value"),
    (lambda: fd.Dual(1.0, BIG), "Dual: tangent"),
    (lambda: fd.Dual(1.0, 1.0) * BIG, "y"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_int_too_large_for_float64_is_a_value_error(call, where):
    with pytest.raises(ValueError, match="too large for float64") as e:
        call()
    assert where in str(e.value)
    assert "about 401 digits" in str(e.value)
    assert not isinstance(e.value, OverflowError)


def test_ints_beyond_int64_but_within_float64_still_work():
    # NumPy holds 2**64 as an object: it is still a number, not a type error
    assert fd.grad(lambda x: x * 2 ** 64)(1.0) == 2.0 ** 64
    g = fd.grad(lambda x: fd.sum(x * [1, 2 ** 64, 1]))(X3)
    np.testing.assert_array_equal(g, [1.0, 2.0 ** 64, 1.0])
    assert fd.grad(lambda x: x[0] * x[1])([2 ** 70, 1]) == [1.0, 2.0 ** 70]
    assert fd.trace(lambda x: x * x, 2 ** 64).grad(1.0) == 2.0
    with pytest.raises(ValueError, match="too large"):
        fd.sin(-(10 ** 5000))          # str() of this int would itself be refused


# ----------------------------------------------------------------------------------
# 3. non-numeric inputs are a TypeError naming the argument and its dtype

NON_NUMERIC = [np.array(["a", "b"]), np.array([1, "x"], dtype=object),
               np.array([1.0, 2.0], dtype=object), np.array([b"x"]),
               np.array(["2020-01-01"], dtype="datetime64[D]"),
               np.array([1], dtype="timedelta64[s]")]


@pytest.mark.parametrize("arr", NON_NUMERIC, ids=lambda a: str(a.dtype))
@pytest.mark.parametrize("call, where", [
    (lambda a: fd.trace(lambda x: fd.sum(x), a), "fd.trace: x0"),
    (lambda a: fd.trace(lambda x, p: x, 1.0, a), "fd.trace: params"),
    (lambda a: fd.trace(lambda x: fd.sum(x), np.ones(2)).grad(a), "tf.grad: x"),
    (lambda a: fd.grad(lambda x: fd.sum(x))(a), "grad: argument 0"),
    (lambda a: fd.value_and_grad(lambda x: fd.sum(x))({"k": a}), "value_and_grad: "
                                                                 "argument 0"),
    (lambda a: fd.jacobian(lambda x: x)(a), "jacobian: argument 0"),
    (lambda a: fd.hessian(lambda x: fd.sum(x))(a), "hessian: x"),
    (lambda a: fd.hvp(lambda x: fd.sum(x))(np.ones(2), a), "hvp: v"),
    (lambda a: fd.jvp(lambda x: x, (np.ones(2),), (a,)), "jvp: tangents[0]"),
    (lambda a: fd.Tape().variable(a), "tape.variable: value"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_non_numeric_arrays_name_argument_and_dtype(arr, call, where):
    with pytest.raises(TypeError) as e:
        call(arr)
    assert where in str(e.value) and str(arr.dtype) in str(e.value)
