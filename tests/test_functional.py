"""fd.grad, fd.value_and_grad, fd.check_grad and fd.debug_nans (API.md sections 3, 8)."""
import math
import threading
import warnings

import numpy as np
import pytest

import fastad as fd
from fastad import _tape


def rosen(x):
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
               for i in range(len(x) - 1))


def rosen_grad(x):
    g = np.zeros_like(x)
    for i in range(len(x) - 1):
        g[i] += -400.0 * x[i] * (x[i + 1] - x[i] ** 2) - 2.0 * (1.0 - x[i])
        g[i + 1] += 200.0 * (x[i + 1] - x[i] ** 2)
    return g


# ----------------------------------------------------------------------------------
# grad and value_and_grad

def test_grad_of_a_scalar_function():
    g = fd.grad(lambda x: fd.sin(x) * x)(0.7)
    assert type(g) is float
    assert g == pytest.approx(math.cos(0.7) * 0.7 + math.sin(0.7), rel=1e-15)


def test_value_and_grad_returns_a_float_value():
    v, g = fd.value_and_grad(lambda x: x ** 3)(2.0)
    assert type(v) is float and v == 8.0 and g == 12.0


def test_rosenbrock_loop_over_array_elements():
    x = np.linspace(-1.2, 1.3, 25)
    v, g = fd.value_and_grad(rosen)(x)
    assert v == pytest.approx(rosen(x), rel=1e-14)
    assert isinstance(g, np.ndarray) and g.shape == x.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, rosen_grad(x), rtol=1e-13, atol=1e-12)


def test_array_argument_supports_index_len_iteration_shape():
    seen = {}

    def f(x):
        seen["type"] = type(x)
        seen["shape"] = x.shape
        seen["len"] = len(x)
        seen["item"] = type(x[1])
        total = 0.0
        for v in x:                      # iteration yields scalar Vars
            total = total + v * v
        return total + x[-1] * x[0]

    x = np.array([1.0, 2.0, 3.0])
    g = fd.grad(f)(x)
    assert seen == {"type": fd.Var, "shape": (3,), "len": 3, "item": fd.Var}
    np.testing.assert_array_equal(g, [2.0 + 3.0, 4.0, 6.0 + 1.0])


def test_two_dimensional_array_argument():
    a = np.arange(6.0).reshape(2, 3)
    g = fd.grad(lambda m: m[1, 2] * m[0][1] + fd.sum(m * m))(a)
    want = 2 * a
    want[1, 2] += a[0, 1]
    want[0, 1] += a[1, 2]
    np.testing.assert_array_equal(g, want)
    assert fd.grad(lambda m: len(m) * m[0, 0])(a)[0, 0] == 2.0


@pytest.mark.parametrize("argnums, want", [
    (0, 3.0 * 5.0), (1, 2.0 * 5.0), (2, 6.0), (-1, 6.0), (-3, 15.0), (np.int64(1), 10.0),
    ((0, 2), (15.0, 6.0)), ((2, 0), (6.0, 15.0)), ((-1,), (6.0,)), ((), ()),
])
def test_argnums(argnums, want):
    f = lambda x, y, z: x * y * z
    assert fd.grad(f, argnums=argnums)(2.0, 3.0, 5.0) == want
    v, g = fd.value_and_grad(f, argnums=argnums)(2.0, 3.0, 5.0)
    assert v == 30.0 and g == want


def test_argnums_repeated_gives_the_gradient_twice():
    assert fd.grad(lambda x, y: x * y, argnums=(1, 1))(2.0, 3.0) == (2.0, 2.0)
    assert fd.grad(lambda x, y: x * y, argnums=(0, -2))(2.0, 3.0) == (3.0, 3.0)


@pytest.mark.parametrize("argnums", [2, -3, (0, 2), 100])
def test_argnums_out_of_range(argnums):
    with pytest.raises(ValueError, match="argnums"):
        fd.grad(lambda x, y: x * y, argnums=argnums)(2.0, 3.0)


@pytest.mark.parametrize("argnums", [1.0, "0", [0, 1], True, None, (0, 1.0)])
def test_argnums_of_the_wrong_type(argnums):
    with pytest.raises(TypeError, match="argnums"):
        fd.grad(lambda x, y: x * y, argnums=argnums)(2.0, 3.0)


def test_non_differentiated_arguments_are_passed_through_unchanged():
    seen = []

    def f(x, label, scale):
        seen.append((type(label), type(scale)))
        return x * scale

    assert fd.grad(f)(2.0, "name", np.float64(3.0)) == 3.0
    assert seen == [(str, np.float64)]
    assert fd.grad(lambda x, k=2.0: x * k)(1.0, k=5.0) == 5.0


def test_pytrees_of_floats_and_arrays():
    params = {"w": np.array([1.0, 2.0]), "b": 0.5,
              "layers": [np.ones((2, 2)), (3.0, np.array([4.0]))]}

    def f(p):
        w, b = p["w"], p["b"]
        m, (c, d) = p["layers"]
        return fd.sum(w * w) * b + fd.sum(m) * c + d[0] * c

    g = fd.grad(f)(params)
    assert set(g) == {"w", "b", "layers"}
    np.testing.assert_array_equal(g["w"], [1.0, 2.0])
    assert type(g["b"]) is float and g["b"] == 5.0
    assert type(g["layers"]) is list and type(g["layers"][1]) is tuple
    np.testing.assert_array_equal(g["layers"][0], 3.0 * np.ones((2, 2)))
    assert g["layers"][1][0] == 4.0 + 4.0
    np.testing.assert_array_equal(g["layers"][1][1], [3.0])
    # the input is not modified
    assert params["b"] == 0.5 and type(params["w"]) is np.ndarray


def test_dict_of_arrays_with_several_argnums():
    def loss(p, x, y):
        pred = fd.sum(p["w"] * x) + p["b"]
        return (pred - y) ** 2

    p = {"w": np.array([0.5, -0.5]), "b": 0.1}
    x = np.array([1.0, 2.0])
    gp, gx = fd.grad(loss, argnums=(0, 1))(p, x, 1.0)
    r = 0.5 - 1.0 + 0.1 - 1.0
    np.testing.assert_allclose(gp["w"], 2 * r * x)
    assert gp["b"] == pytest.approx(2 * r)
    np.testing.assert_allclose(gx, 2 * r * p["w"])


def test_list_and_tuple_of_floats():
    g = fd.grad(lambda xs: xs[0] * xs[1] + xs[2])([2.0, 3.0, 4.0])
    assert g == [3.0, 2.0, 1.0]
    g = fd.grad(lambda xs: xs[0] * xs[1])((2.0, 3))
    assert g == (3.0, 2.0) and type(g) is tuple


@pytest.mark.parametrize("arg", [3, True, np.float64(1.5), np.int64(2), np.array(1.5)])
def test_ints_bools_and_numpy_scalars_are_converted(arg):
    g = fd.grad(lambda x: x * x)(arg)
    assert type(g) is float and g == 2.0 * float(arg)


def test_float32_scalars_give_float32_gradients():
    # API.md section 14: the input's floating dtype (tests/test_contract.py has more)
    g = fd.grad(lambda x: x * x)(np.float32(1.5))
    assert type(g) is np.float32 and g == 3.0


@pytest.mark.parametrize("const", [3.0, 3, np.float64(3.0), np.float32(3.0), np.array(3.0),
                                   np.int64(3)])
def test_constant_results_have_zero_gradients(const):
    v, g = fd.value_and_grad(lambda x: const)(2.0)
    assert v == 3.0 and type(v) is float and g == 0.0
    g = fd.grad(lambda p: const)({"a": np.ones(3), "b": 1.0})
    np.testing.assert_array_equal(g["a"], np.zeros(3))
    assert g["b"] == 0.0


def test_result_that_does_not_depend_on_the_argument():
    g = fd.grad(lambda x, y: y * y, argnums=0)(np.ones(2), 3.0)
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_returning_a_numpy_scalar_or_0d_array_of_a_var_value():
    assert fd.value_and_grad(lambda x: np.float64(2.0) + 0.0 * x.value)(1.0) == (2.0, 0.0)


@pytest.mark.parametrize("out", ["1", None, True, np.bool_(False), 1j, {"a": 1.0},
                                 [1.0, "x"]])
def test_non_numeric_results_raise_type_error(out):
    with pytest.raises(TypeError, match="scalar"):
        fd.grad(lambda x: out)(1.0)


@pytest.mark.parametrize("out", [np.ones(2), [1.0], (1.0, 2.0)])
def test_non_scalar_results_raise_value_error(out):
    # a shape error (API.md section 9)
    with pytest.raises(ValueError, match="scalar"):
        fd.grad(lambda x: out)(1.0)


def test_array_var_result_raises_value_error():
    with pytest.raises(ValueError, match="shape"):
        fd.grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        fd.grad(lambda x: x)(np.ones(1))


@pytest.mark.parametrize("bad", ["1.0", None, 1j, np.array([1j]), object(), [1.0, "a"]])
def test_bad_arguments_raise_type_error_naming_the_argument(bad):
    with pytest.raises(TypeError, match="argument 0"):
        fd.grad(lambda x: 1.0)(bad)


def test_f_must_be_callable():
    with pytest.raises(TypeError, match="callable"):
        fd.grad(3.0)
    with pytest.raises(TypeError, match="callable"):
        fd.value_and_grad(None)


def test_an_exception_in_f_leaves_no_active_tape_behind():
    def bad(x):
        raise KeyError("inside f")

    with pytest.raises(KeyError):
        fd.grad(bad)(1.0)
    assert _tape.current_tape() is None
    assert fd.grad(lambda x: x * 4.0)(1.0) == 4.0


def test_vars_leaked_from_a_finished_call_raise_tape_error():
    leaked = []

    def f(x):
        leaked.append(x)
        return x * x

    fd.grad(f)(1.0)
    with pytest.raises(fd.TapeError):
        leaked[0] * 2.0
    # a leaked Var returned by a later call is caught too, never a wrong gradient
    with pytest.raises(fd.TapeError):
        fd.grad(lambda x: leaked[0] * x)(3.0)
    with pytest.raises(fd.TapeError):
        fd.grad(lambda x: leaked[0])(3.0)


def test_nested_grad_calls_use_separate_tapes():
    def inner(y):
        return fd.grad(lambda t: t * t * y)(3.0)   # 6 y, y a float here

    assert fd.grad(lambda x: x * inner(2.0))(1.0) == 12.0
    # a Var of the outer call closed over by the inner call: the calls nest (issue 13,
    # tests/test_nesting.py): d/dx [d/dy (y x)] = 1
    assert fd.grad(lambda x: fd.grad(lambda y: y * x)(2.0))(3.0) == 1.0


def test_repeated_calls_give_identical_results():
    x = np.linspace(0.1, 2.0, 50)
    f = fd.value_and_grad(lambda v: fd.sum(fd.log(v) * v) + rosen(v))
    first = f(x)
    for _ in range(5):
        v, g = f(x)
        assert v == first[0]
        np.testing.assert_array_equal(g, first[1])


def test_metadata_of_the_returned_function():
    def my_loss(x):
        """Docstring."""
        return x

    assert fd.grad(my_loss).__doc__ == "Docstring."
    assert "my_loss" in fd.grad(my_loss).__name__
    assert "my_loss" in fd.value_and_grad(my_loss).__name__


# ----------------------------------------------------------------------------------
# check_grad

def test_check_grad_passes_on_correct_gradients():
    err = fd.check_grad(lambda x: fd.sin(x) * fd.exp(x), 0.3)
    assert 0.0 <= err < 1e-8
    err = fd.check_grad(rosen, np.array([-1.2, 1.0, 0.5]))
    assert err < 1e-6
    err = fd.check_grad(lambda m: fd.sum(m * m * m), np.arange(6.0).reshape(2, 3))
    assert err < 1e-8
    assert fd.check_grad(lambda x: fd.sum(x * x), [1.0, 2.0]) < 1e-8


def _detached(x):
    """x as a plain number: a constant to the tape (check_grad also calls f on floats)."""
    return x.value if type(x) is fd.Var else x


def test_check_grad_raises_on_a_detached_factor():
    # the detached factor is a constant to the tape: recorded gradient x, true one 2x
    with pytest.raises(fd.GradientCheckError, match="relative error") as e:
        fd.check_grad(lambda x: x * _detached(x), 3.0)
    assert issubclass(fd.GradientCheckError, fd.FastADError)
    assert "3" in str(e.value) or "6" in str(e.value)


def test_check_grad_raises_on_a_staircase():
    # floor has derivative 0, but its steps approximate x at the finite-difference scale
    f = lambda x: fd.sum(fd.floor(x * 1e4) / 1e4)
    with pytest.raises(fd.GradientCheckError) as e:
        fd.check_grad(f, np.array([0.1234567, 2.5, -1.7654321]))
    assert "x[" in str(e.value)


def test_check_grad_raises_on_a_monkeypatched_derivative(monkeypatch):
    import fastad._functional as F
    real_grad = F.grad

    def wrong_grad(f, argnums=0):
        g = real_grad(f, argnums)
        return lambda *a: g(*a) * 1.01

    monkeypatch.setattr(F, "grad", wrong_grad)
    with pytest.raises(fd.GradientCheckError):
        fd.check_grad(lambda x: fd.sum(fd.exp(x)), np.array([0.5, 1.5]))
    # within a loose tolerance the same gradient passes
    assert fd.check_grad(lambda x: fd.sum(fd.exp(x)), np.array([0.5, 1.5]), rtol=0.02) < 0.02


def test_check_grad_rtol():
    with pytest.raises(fd.GradientCheckError):
        fd.check_grad(lambda x: x * _detached(x), 3.0, rtol=0.4)
    assert fd.check_grad(lambda x: x * _detached(x), 3.0, rtol=0.6) == pytest.approx(0.5, rel=1e-6)


def test_check_grad_nan_gradient_is_an_error():
    with pytest.raises(fd.GradientCheckError):
        fd.check_grad(lambda x: fd.sqrt(x), -1.0)


@pytest.mark.parametrize("bad", ["1", None, 1j])
def test_check_grad_rejects_bad_points(bad):
    with pytest.raises(TypeError):
        fd.check_grad(lambda x: x, bad)


# ----------------------------------------------------------------------------------
# debug_nans

@pytest.mark.parametrize("f, x, opname", [
    (lambda x: fd.log(x - 2.0), 1.0, "log"),
    (lambda x: fd.sqrt(x), -1.0, "sqrt"),
    (lambda x: x / x, 0.0, "divide"),
    (lambda x: (x - x) * math.inf, 1.0, "multiply"),
    (lambda x: fd.power(x, 0.5), -4.0, "power"),
    (lambda x: 0.5 ** x * fd.arcsin(x), 2.0, "arcsin"),
    (lambda x: fd.sum(fd.log(x)), np.array([1.0, -1.0]), "log"),
    (lambda x: fd.sum(x * np.array([0.0, math.inf])), np.array([1.0, 0.0]), "multiply"),
    (lambda x: fd.sum(x), np.array([math.inf, -math.inf]), "add"),
    (lambda x: fd.mean(x * 2.0), np.array([1.0, math.inf, -math.inf]), "add"),
    (lambda x: fd.prod(x), np.array([math.inf, 0.0]), "multiply"),
    (lambda x: x.sum(), np.array([[math.inf], [-math.inf]]), "add"),
])
def test_debug_nans_raises_naming_the_op(f, x, opname):
    with fd.debug_nans():
        with pytest.raises(FloatingPointError, match=r"\b%s\b" % opname):
            fd.grad(f)(x)
    # outside the block the NaN propagates silently: no exception, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = fd.value_and_grad(f)(x)
    assert math.isnan(v)


def test_debug_nans_ignores_nans_that_came_in():
    with fd.debug_nans():
        v, g = fd.value_and_grad(lambda x: fd.sin(x) + 1.0)(math.nan)
    assert math.isnan(v) and math.isnan(g)


def test_debug_nans_is_restored_after_the_block():
    with pytest.raises(FloatingPointError):
        with fd.debug_nans():
            fd.grad(fd.log)(-1.0)
    assert math.isnan(fd.value_and_grad(fd.log)(-1.0)[0])
    with fd.debug_nans():
        with fd.debug_nans():
            pass
        with pytest.raises(FloatingPointError):   # still on after the inner block
            fd.grad(fd.log)(-1.0)
    assert math.isnan(fd.value_and_grad(fd.log)(-1.0)[0])


def test_debug_nans_on_a_tape():
    with fd.debug_nans():
        with fd.Tape() as tape:
            x = tape.variable(-1.0)
            with pytest.raises(FloatingPointError, match="log"):
                fd.log(x)
            y = fd.log(-x)                  # the tape is still usable
    assert tape.gradient(y, x) == -1.0
