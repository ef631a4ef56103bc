"""Transformations nested inside each other (issue 13, API.md section 11).

Closed forms are written by hand here; fd.hessian / fd.hvp (forward-over-reverse,
an independent second-order path) check the second-order combinations.
"""
import math

import mpmath
import numpy as np
import pytest

import fastad as fd


def rosen(x):
    return fd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def logsumexp(x):
    m = 0.7
    return m + fd.log(fd.sum(fd.exp(x - m)))


# ----------------------------------------------------------------------------------
# tape.gradient(..., create_graph=True)

def test_create_graph_returns_vars_of_the_same_tape_with_the_gradients_value():
    with fd.Tape() as t:
        x = t.variable(np.array([0.3, -1.2, 2.0]))
        w = t.variable(1.5)
        y = fd.sum(fd.sin(x * w) * x ** 2) + fd.exp(w) * fd.tanh(fd.sum(x))
        gx, gw = t.gradient(y, [x, w], create_graph=True)
        assert type(gx) is fd.Var and gx.tape is t and gx.shape == (3,)
        assert type(gw) is fd.Var and gw.tape is t and gw.shape == ()
        px, pw = t.gradient(y, [x, w])
        np.testing.assert_array_equal(gx.value, px)     # same value, to the bit
        assert gw.value == pw
        # differentiated again: the Hessian's rows, against forward-over-reverse
        h_wx = t.gradient(gw, x)

    def f(v):
        return fd.sum(fd.sin(v[:3] * v[3]) * v[:3] ** 2) + fd.exp(v[3]) * fd.tanh(fd.sum(v[:3]))
    H = fd.hessian(f)(np.array([0.3, -1.2, 2.0, 1.5]))
    np.testing.assert_allclose(h_wx, H[3, :3], rtol=1e-13)


def test_create_graph_of_a_dict_of_sources_and_an_unused_one():
    with fd.Tape() as t:
        a, b, c = t.variable(2.0), t.variable(3.0), t.variable(5.0)
        y = a * a * b
        g = t.gradient(y, {"a": a, "b": b, "c": c}, create_graph=True)
        assert [g[k].value for k in "abc"] == [12.0, 4.0, 0.0]
        assert t.gradient(g["a"], [a, b, c]) == [6.0, 4.0, 0.0]
        assert t.gradient(g["c"], a) == 0.0       # the gradient of nothing is a constant


def test_create_graph_rejects_a_non_bool():
    with fd.Tape() as t:
        x = t.variable(1.0)
        with pytest.raises(TypeError, match="create_graph"):
            t.gradient(x * x, x, create_graph=1)


def test_create_graph_through_an_unsupported_record_is_a_clear_error():
    x = np.linspace(-1.0, 1.0, 20)
    with fd.Tape() as t:
        v = t.variable(x)
        y = fd.sum(fd.softmax(v) * x)
        with pytest.raises(TypeError, match="not supported yet"):
            t.gradient(y, v, create_graph=True)
    with pytest.raises(TypeError, match="not supported yet"):
        fd.grad(lambda w: fd.sum(fd.grad(lambda u: fd.sum(fd.softmax(u) * x))(w)))(x)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((3, 4), (4,)), ((4,), (4, 2)),
                                    ((4,), (4,))])
def test_create_graph_through_matmul(shapes):
    rng = np.random.default_rng(3)
    a0, b0 = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    na = a0.size

    def f(v):
        a = fd.reshape(v[:na], shapes[0])
        b = fd.reshape(v[na:], shapes[1])
        # Var @ Var, constant @ Var, Var @ constant
        return fd.sum(fd.tanh(a @ b) ** 2) + fd.sum(fd.sin(a0 @ b)) + fd.sum((a @ b0) ** 3)
    x = np.concatenate([a0.ravel(), b0.ravel()])
    np.testing.assert_allclose(fd.jacobian(fd.grad(f))(x), fd.hessian(f)(x),
                               rtol=1e-12, atol=1e-12)


BIG_MATMULS = [((16, 32), (32, 8)), ((64, 64), (64,)), ((64,), (64, 64))]


@pytest.mark.parametrize("shapes", BIG_MATMULS)
def test_create_graph_through_a_large_matmul_as_array_operations(shapes):
    # from _tape.MATMUL_VECTOR_MIN multiply-adds the sweep records G @ b^T and
    # a^T @ G as matmul records instead of slots: values equal the first-order
    # gradient's to rounding, second derivatives are Hessian-vector products
    from fastad._tape import MATMUL_VECTOR_MIN
    pq = int(np.prod(shapes[0])) * (shapes[1][-1] if len(shapes[1]) == 2 else 1)
    assert pq >= MATMUL_VECTOR_MIN
    rng = np.random.default_rng(4)
    a0, b0 = rng.normal(size=shapes[0]) / 4, rng.normal(size=shapes[1]) / 4
    na = a0.size

    def f(v):
        a = fd.reshape(v[:na], shapes[0])
        b = fd.reshape(v[na:], shapes[1])
        # Var @ Var, constant @ Var, Var @ constant
        return fd.sum(fd.tanh(a @ b) ** 2) + fd.sum(fd.sin(a0 @ b)) + fd.sum((a @ b0) ** 3)
    x = np.concatenate([a0.ravel(), b0.ravel()]) * 1.1
    with fd.Tape() as t:
        v = t.variable(x)
        y = f(v)
        n_records = len(t.records)
        g = t.gradient(y, v, create_graph=True)
        assert len(t.records) > n_records + 3       # the rule recorded matmuls
        np.testing.assert_allclose(g.value, t.gradient(y, v), rtol=1e-13, atol=1e-13)
    u = rng.normal(size=x.size)
    got = fd.grad(lambda z: fd.sum(fd.grad(f)(z) * u))(x)
    np.testing.assert_allclose(got, fd.hvp(f)(x, u), rtol=1e-11, atol=1e-11)


def test_third_derivative_through_a_large_matmul_against_finite_differences():
    # the records the vectorised rule makes are swept by it again at the next level
    rng = np.random.default_rng(8)
    A0, B0 = rng.normal(size=(16, 32)) / 4, rng.normal(size=(32, 8)) / 4

    def f(s):
        return fd.sum(fd.tanh((A0 * s) @ (B0 * (1.0 + s))))
    d2 = fd.grad(fd.grad(f))
    d3 = fd.grad(d2)
    h = 1e-4
    fdiff = (d2(0.7 + h) - d2(0.7 - h)) / (2 * h)
    assert d3(0.7) == pytest.approx(fdiff, rel=1e-6)


def test_gradient_penalty_of_a_wide_mlp_against_its_closed_form():
    # 64 inputs, 256 hidden units: the inner matmul's rule as array operations
    rng = np.random.default_rng(12)
    W1, b1, w2 = rng.normal(size=(256, 64)) / 8, rng.normal(size=256), rng.normal(size=256)
    x = rng.normal(size=64)

    def net(W, xx):
        return fd.sum(fd.tanh(W @ xx + b1) * w2)

    def loss(W):
        gx = fd.grad(lambda xx: net(W, xx))(x)
        return net(W, x) + fd.sum(gx * gx)
    value, grad = fd.value_and_grad(loss)(W1)
    u = W1 @ x + b1
    th = np.tanh(u)
    s = 1 - th ** 2
    gx = W1.T @ (w2 * s)
    assert value == pytest.approx(np.sum(th * w2) + gx @ gx, rel=1e-13)
    # d/dW [sum(tanh(u) w2) + |W^T (w2 s)|^2], u = W x + b1, s = 1 - tanh(u)^2
    c = w2 * s
    want = np.outer(c, x) + 2 * np.outer(c, gx) + np.outer(2 * (W1 @ gx) * w2 * (-2 * th * s), x)
    np.testing.assert_allclose(grad, want, rtol=1e-11, atol=1e-11)


def test_mlp_gradient_penalty_with_matmul_against_finite_differences():
    rng = np.random.default_rng(11)
    W1, b1, w2 = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=6)
    x = rng.normal(size=3)

    def net(W, xx):
        return fd.sum(fd.tanh(W @ xx + b1) * w2)

    def loss(W):
        gx = fd.grad(lambda xx: net(W, xx))(x)
        return net(W, x) + fd.sum(gx * gx)
    assert fd.check_grad(loss, W1) < 1e-8
    # and against the closed form: dnet/dx = W^T (w2 * s), s = 1 - tanh^2
    u = W1 @ x + b1
    s = 1 - np.tanh(u) ** 2
    gx = W1.T @ (w2 * s)
    want = net(W1, x) + gx @ gx
    assert fd.value_and_grad(loss)(W1)[0] == pytest.approx(want, rel=1e-14)


def test_create_graph_through_array_records():
    # arrays of 16 elements and more are records (fastad._arrays): elementwise ops
    # with broadcasting, sum / mean / max, reshape and transpose nest
    def f(v):
        X = fd.reshape(v, (5, 4))
        y = fd.sum(fd.sin(X) * X ** 2 * np.arange(4.0), axis=1)     # a bias-row broadcast
        return fd.mean(fd.tanh(fd.transpose(X)) ** 2) + fd.sum(y * y) + np.max(v) * 0.5
    x = np.linspace(-1.1, 1.3, 20)
    with fd.Tape() as t:
        v = t.variable(x)
        y = f(v)
        assert len(t.records) >= 5
        g = t.gradient(y, v, create_graph=True)
        np.testing.assert_allclose(g.value, t.gradient(y, v), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(fd.jacobian(fd.grad(f))(x), fd.hessian(f)(x),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduce", [
    lambda X: fd.sum(X, axis=0), lambda X: fd.sum(X, axis=1),
    lambda X: fd.sum(X, axis=1, keepdims=True), lambda X: fd.mean(X, axis=0),
    lambda X: np.max(X, axis=1), lambda X: np.min(X, axis=0, keepdims=True)])
def test_create_graph_through_reductions_of_one_shape_at_moving_points(reduce):
    # the sweep keeps the index maps of linear reductions per shape and axes, and
    # recomputes max / min's weights (which element wins, ties shared) per record:
    # each reduction of a (5, 4) array, at points where the maxima move and tie,
    # must give the first-order values and the Hessian every time
    out = np.shape(reduce(np.ones((5, 4))))
    weights = np.arange(1.0, 1.0 + np.prod(out)).reshape(out)

    def f(v):
        X = fd.reshape(v, (5, 4))
        return fd.sum(fd.sin(reduce(X * X)) * weights)
    rng = np.random.default_rng(5)
    for x in (rng.normal(size=20), rng.normal(size=20), np.tile([0.5, -0.5], 10)):
        with fd.Tape() as t:
            v = t.variable(x)
            y = f(v)
            assert len(t.records) >= 2          # the reduction is a record
            g = t.gradient(y, v, create_graph=True)
            np.testing.assert_array_equal(g.value, t.gradient(y, v))
        np.testing.assert_allclose(fd.jacobian(fd.grad(f))(x), fd.hessian(f)(x),
                                   rtol=1e-12, atol=1e-12)


def test_create_graph_through_broadcasts_of_one_operand_shape_into_two_outputs():
    # an operand of shape (4,) broadcast into (5, 4) and (6, 4) records: each
    # record's own index map, also when the shapes recur
    b0 = np.linspace(0.2, 1.1, 4)

    def f(v):
        A, B = fd.reshape(v[:20], (5, 4)), fd.reshape(v[20:], (6, 4))
        b = v[:4] * 1.5
        return fd.sum(fd.tanh(A * b) ** 2) + fd.sum(fd.sin(B + b) * b0) + \
            fd.sum(fd.exp(A * 0.1 - b))
    x = np.linspace(-1.0, 1.2, 44)
    for _ in range(2):
        with fd.Tape() as t:
            v = t.variable(x)
            y = f(v)
            g = t.gradient(y, v, create_graph=True)
            # to rounding, not bitwise: the first-order kernel reduces a broadcast
            # operand's adjoint per record (NumPy), the sweep adds element by
            # element across records; 1 ulp apart here (before the maps were cached too)
            np.testing.assert_allclose(g.value, t.gradient(y, v), rtol=1e-15, atol=0)
        np.testing.assert_allclose(fd.jacobian(fd.grad(f))(x), fd.hessian(f)(x),
                                   rtol=1e-12, atol=1e-12)
        x = x[::-1].copy()


def test_grad_of_grad_through_a_broadcast_record_against_a_closed_form():
    xs = np.linspace(-2.0, 2.0, 32)

    def f(w):
        return fd.sum(fd.tanh(w * xs))              # one record of 32 elements
    w = 0.7
    s2 = 1 / np.cosh(w * xs) ** 2
    want = np.sum(-2 * xs ** 2 * s2 * np.tanh(w * xs))
    assert fd.grad(fd.grad(f))(w) == pytest.approx(want, rel=1e-13)


# ----------------------------------------------------------------------------------
# fd.grad of fd.grad, to any order

def test_grad_of_grad_is_the_second_derivative():
    def f(x):
        return fd.sin(x) * fd.exp(x) + fd.tanh(x * x)
    for a in (-1.3, 0.2, 0.7, 2.5):
        assert fd.grad(fd.grad(f))(a) == pytest.approx(fd.hessian(f)(a), rel=1e-13)
    # the inner gradient is exact first order too
    assert fd.grad(f)(0.7) == fd.value_and_grad(f)(0.7)[1]


def test_third_and_fourth_derivatives_against_closed_forms():
    g = fd.grad
    # x**5: 60 x^2, 120 x
    assert g(g(g(lambda x: x ** 5)))(1.5) == pytest.approx(60 * 1.5 ** 2, rel=1e-14)
    assert g(g(g(g(lambda x: x ** 5))))(1.5) == pytest.approx(120 * 1.5, rel=1e-14)
    # exp(3x): 81 exp(3x);  log(x): -6 / x^4
    assert g(g(g(g(lambda x: fd.exp(3.0 * x)))))(0.4) == pytest.approx(
        81 * math.exp(1.2), rel=1e-13)
    assert g(g(g(g(fd.log))))(1.7) == pytest.approx(-6 / 1.7 ** 4, rel=1e-13)
    # sin(x) * exp(x): the fourth derivative is -4 sin(x) exp(x)
    assert g(g(g(g(lambda x: fd.sin(x) * fd.exp(x)))))(0.9) == pytest.approx(
        -4 * math.sin(0.9) * math.exp(0.9), rel=1e-13)


def test_fourth_derivative_of_a_composition_against_mpmath():
    def f(x):
        return fd.log1p(fd.sigmoid(fd.sin(x) * x)) / fd.cosh(x) + fd.sqrt(x * x + 1.0)

    def f_mp(x):
        return (mpmath.log1p(1 / (1 + mpmath.exp(-mpmath.sin(x) * x))) / mpmath.cosh(x)
                + mpmath.sqrt(x * x + 1))
    g4 = fd.grad(fd.grad(fd.grad(fd.grad(f))))
    with mpmath.workdps(30):
        for a in (-0.8, 0.35, 1.9):
            want = float(mpmath.diff(f_mp, mpmath.mpf(a), 4))
            assert g4(a) == pytest.approx(want, rel=1e-10)


def test_grad_of_grad_of_an_array_function_is_the_hessian_diagonal_sum():
    x = np.array([0.3, -0.4, 1.1, 0.8])
    # d/dx_j of sum_i (d f / d x_i) = sum of the j-th Hessian column
    got = fd.grad(lambda v: fd.sum(fd.grad(rosen)(v)))(x)
    np.testing.assert_allclose(got, fd.hessian(rosen)(x).sum(axis=0), rtol=1e-13)


def test_argnums_tuples_nest():
    def f(a, b):
        return fd.sin(a) * b ** 3

    def ga_plus_gb(a, b):
        ga, gb = fd.grad(f, argnums=(0, 1))(a, b)
        return ga * gb
    a, b = 0.4, 1.3
    # ga = cos(a) b^3, gb = 3 sin(a) b^2, product 3 sin cos b^5
    da, db = fd.grad(ga_plus_gb, argnums=(0, 1))(a, b)
    assert da == pytest.approx(3 * math.cos(2 * a) * b ** 5, rel=1e-13)
    assert db == pytest.approx(15 * math.sin(a) * math.cos(a) * b ** 4, rel=1e-13)


# ----------------------------------------------------------------------------------
# Perturbation confusion (Siskind & Pearlmutter)

def test_no_perturbation_confusion_with_a_closed_over_outer_variable():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1, not 2
    assert fd.grad(lambda x: x * fd.grad(lambda y: x + y)(1.0))(1.0) == 1.0
    # the inner argument a Var of the outer level
    assert fd.grad(lambda x: x * fd.grad(lambda y: x + y)(x))(3.0) == 1.0
    # d/dx [x * d/dy (x y)|y=2] = d/dx [x * x] = 2x
    assert fd.grad(lambda x: x * fd.grad(lambda y: x * y)(2.0))(3.0) == 6.0
    # d/dx [d/dy (x y^2)|y=x] = d/dx [2 x^2] = 4 x
    assert fd.grad(lambda x: fd.grad(lambda y: x * y * y)(x))(1.5) == 6.0


def test_no_confusion_between_three_levels():
    # d/dx [ x * d/dy [ y * d/dz (x y z) ] ] at z=1, y=1:
    # innermost: x y; middle: d/dy [y * x y] = 2 x y -> at y=1: 2x; outer: d/dx [2 x^2] = 4x
    def middle(x):
        return fd.grad(lambda y: y * fd.grad(lambda z: x * y * z)(1.0))(1.0)
    assert fd.grad(lambda x: x * middle(x))(2.5) == 10.0


# ----------------------------------------------------------------------------------
# Other transformations around fd.grad

@pytest.mark.parametrize("f,x", [(rosen, np.linspace(-1.0, 1.5, 8)),
                                 (rosen, np.linspace(-1.0, 1.5, 50)),
                                 (logsumexp, np.array([0.1, -2.0, 1.3, 0.4])),
                                 (logsumexp, np.linspace(-2.0, 1.0, 50))])
def test_jacobian_of_grad_is_the_hessian(f, x):
    np.testing.assert_allclose(fd.jacobian(fd.grad(f))(x), fd.hessian(f)(x),
                               rtol=1e-12, atol=1e-12)


def test_jvp_of_a_function_calling_grad_is_a_hessian_vector_product():
    x = np.array([0.2, 0.9, -0.3])
    v = np.array([1.0, -2.0, 0.5])
    out, tan = fd.jvp(fd.grad(rosen), (x,), (v,))
    np.testing.assert_array_equal(out, fd.grad(rosen)(x))
    np.testing.assert_allclose(tan, fd.hvp(rosen)(x, v), rtol=1e-13)


def test_hessian_of_a_function_calling_grad_is_third_order():
    # f = x^2 y^3 (as v[0], v[1]); h(v) = df/dx = 2 x y^3; Hessian of h:
    # [[0, 6 y^2], [6 y^2, 12 x y]]
    def h(v):
        return fd.grad(lambda w: w[0] ** 2 * w[1] ** 3)(v)[0]
    x, y = 0.7, -1.4
    H = fd.hessian(h)(np.array([x, y]))
    np.testing.assert_allclose(H, [[0.0, 6 * y * y], [6 * y * y, 12 * x * y]], rtol=1e-13)


def test_value_and_grad_inside_grad_maml_step():
    # inner loss (t x1 - y1)^2, one step t' = t - a dL/dt, outer loss (t' x2 - y2)^2
    x1, y1, x2, y2, alpha = 1.5, 0.5, -0.7, 2.0, 0.1

    def inner(t):
        return (t * x1 - y1) ** 2

    def maml_loss(t):
        value, g = fd.value_and_grad(inner)(t)
        assert type(value) is fd.Var and value.value == pytest.approx(inner(t.value))
        t2 = t - alpha * g
        return (t2 * x2 - y2) ** 2
    t = 0.3
    t2 = t - alpha * 2 * x1 * (t * x1 - y1)
    want = 2 * (t2 * x2 - y2) * x2 * (1 - 2 * alpha * x1 * x1)
    assert fd.grad(maml_loss)(t) == pytest.approx(want, rel=1e-14)


def test_gradient_penalty_of_an_elementwise_model():
    # loss(w) = sum tanh(w x) + ||d/dx sum tanh(w x)||^2
    x = np.array([0.3, -0.8, 1.2])

    def loss(w):
        f = lambda xx: fd.sum(fd.tanh(w * xx))
        gx = fd.grad(f)(x)
        return f(x) + fd.sum(gx * gx)
    w = 0.9
    s, th = 1 / np.cosh(w * x), np.tanh(w * x)
    want = np.sum(x * s ** 2) + np.sum(2 * w * s ** 4 - 4 * w * w * x * s ** 4 * th)
    value, got = fd.value_and_grad(loss)(w)
    assert value == pytest.approx(np.sum(th) + np.sum(w * w * s ** 4), rel=1e-14)
    assert got == pytest.approx(want, rel=1e-13)


def test_trace_of_a_function_calling_grad_replays_bit_for_bit():
    def f(x):
        g = fd.grad(lambda v: fd.sum(fd.tanh(v) * v ** 2))(x)
        return fd.sum(g * g)
    x0 = np.array([0.3, -0.6, 0.2])
    tf = fd.trace(f, x0)
    x1 = np.array([0.5, 0.1, -0.4])     # the same branches of tanh' (|v| < 1)
    v1, g1 = fd.value_and_grad(f)(x1)
    assert tf(x1) == v1
    np.testing.assert_array_equal(tf.grad(x1), g1)


def test_trace_of_grad_guards_the_branch_of_a_recorded_partial():
    def f(x):
        return fd.grad(lambda v: fd.sum(fd.tanh(v)))(x)[0]
    tf = fd.trace(f, np.array([0.5]))
    with pytest.raises(fd.TraceError):
        tf(np.array([2.0]))                 # tanh' has another formula for |v| > 1
    rt = fd.trace(f, np.array([0.5]), retrace=True)
    assert rt(np.array([2.0])) == pytest.approx(1 / math.cosh(2.0) ** 2, rel=1e-14)


# ----------------------------------------------------------------------------------
# What does not change, and what is refused

def test_grad_outside_any_transformation_still_returns_floats():
    with fd.Tape():
        assert fd.grad(lambda y: y * y)(3.0) == 6.0
        assert type(fd.grad(lambda y: y * y)(3.0)) is float


def test_a_constant_inner_gradient():
    # the inner function does not depend on its argument: zeros, differentiable
    assert fd.grad(lambda x: x * fd.grad(lambda y: 3.0)(x))(2.0) == 0.0
    assert fd.grad(fd.grad(lambda x: x))(2.0) == 0.0


def test_what_remains_refused_says_what_to_use_instead():
    # a Dual holding Duals (built by hand): nest fd.derivative instead
    with pytest.raises(TypeError, match=r"fd.derivative\(fd.derivative"):
        fd.derivative(fd.sin)(fd.Dual(1.0, 1.0))
    with pytest.raises(TypeError, match="nested Duals"):
        fd.Dual(fd.Dual(1.0, 1.0), 1.0)


def test_trace_of_an_inner_grad_at_a_number_closing_over_the_input():
    # the inner argument is a number (a fresh leaf mid-tape), x is closed over
    f = lambda x: x * fd.grad(lambda y: y * y * x)(2.0)     # = 4 x^2
    tf = fd.trace(f, 1.5)
    assert tf(3.0) == 36.0
    assert tf.grad(3.0) == 24.0 == fd.grad(f)(3.0)
