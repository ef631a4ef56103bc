"""Every outer x inner pair of transformations (issue 13): grad, value_and_grad,
jacobian, hessian, hvp, jvp, vjp and derivative, each applied to a function that
calls each of them.

The reference of a pair is independent of the pair's nesting: central finite
differences (fourth-order stencil) of the inner function evaluated at plain
numbers, which is the inner transformation's own first-level result.  Closed forms
check third and fourth order, and perturbation confusion gets its own tests.
"""
import math

import numpy as np
import pytest

import fastad as fd

X0 = np.array([0.4, -0.7, 1.1])
V = np.array([0.3, 1.0, -0.5])        # a direction in x
C = np.array([1.0, -0.6, 0.8, 0.2, -1.3, 0.5, 0.9, -0.4, 0.7])   # output weights


def f(x):
    """A smooth scalar function of a 3-vector, nonlinear in every coordinate."""
    return fd.sum(fd.sin(x) * x ** 2) + fd.exp(0.3 * x[0] * x[1]) * fd.tanh(x[2])


def F(x):
    """A smooth map R^3 -> R^3."""
    return fd.stack([x[0] * x[1] + fd.sin(x[2]), fd.exp(0.5 * x[0]) * x[2],
                     fd.log(2.0 + x[1] ** 2) * x[0]])


def flat(r):
    return fd.reshape(r, (-1,))


# inner transformations: x -> a vector (the inner result, flattened)
INNER = {
    "grad": lambda x: fd.grad(f)(x),
    "value_and_grad": lambda x: (lambda vg: vg[0] * vg[1])(fd.value_and_grad(f)(x)),
    "jacobian": lambda x: flat(fd.jacobian(F)(x)),
    "hessian": lambda x: flat(fd.hessian(f)(x)),
    "hvp": lambda x: fd.hvp(f)(x, V),
    "jvp": lambda x: (lambda ot: ot[0] * ot[1])(fd.jvp(F, (x,), (V,))),
    "vjp": lambda x: (lambda ov: ov[1](np.array([0.5, -1.0, 2.0]))[0] * fd.sum(ov[0]))(
        fd.vjp(F, x)),
    # d/dt at t = x[1] of a function closing over x (two levels touching x)
    "derivative": lambda x: fd.stack([fd.derivative(
        lambda t: fd.sum(fd.sin(t * x) * x))(x[1]), fd.derivative(
        lambda t: f(x + t * V))(0.0)]),
}


def inner_scalar(name):
    def s(x):
        g = INNER[name](x)
        return fd.sum(g * C[:np.size(g) if type(g) is not fd.Var else g.size])
    return s


def _at_numbers(g, x):
    return np.asarray(g(x), dtype=np.float64)


def fd_jacobian(g, x, h=1e-3):
    """Central differences of g (evaluated on plain numbers) at x: (out, in)."""
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((-_at_numbers(g, x + 2 * e) + 8 * _at_numbers(g, x + e)
                     - 8 * _at_numbers(g, x - e) + _at_numbers(g, x - 2 * e)) / (12 * h))
    return np.stack(cols, axis=-1)


def fd_directional(g, x, v, h=1e-3):
    return (-_at_numbers(g, x + 2 * h * v) + 8 * _at_numbers(g, x + h * v)
            - 8 * _at_numbers(g, x - h * v) + _at_numbers(g, x - 2 * h * v)) / (12 * h)


TOL = dict(rtol=1e-7, atol=1e-7)     # the stencil's error is ~1e-10 here


def _close(got, want):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, **TOL)


@pytest.mark.parametrize("inner", list(INNER))
@pytest.mark.parametrize("outer", ["grad", "value_and_grad", "jacobian", "hessian",
                                   "hvp", "jvp", "vjp", "derivative"])
def test_every_pair_against_finite_differences(outer, inner):
    G = INNER[inner]
    S = inner_scalar(inner)
    x = X0.copy()
    if outer == "grad":
        _close(fd.grad(S)(x), fd_jacobian(S, x))
    elif outer == "value_and_grad":
        value, g = fd.value_and_grad(S)(x)
        assert value == pytest.approx(float(S(x)), rel=1e-14)
        _close(g, fd_jacobian(S, x))
    elif outer == "jacobian":
        _close(fd.jacobian(G)(x), fd_jacobian(G, x))
    elif outer == "hessian":
        # differences of the gradient (the grad row checks that one)
        H = fd.hessian(S)(x)
        _close(H, fd_jacobian(fd.grad(S), x))
        np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    elif outer == "hvp":
        w = np.array([-0.2, 0.7, 1.5])
        _close(fd.hvp(S)(x, w), fd_directional(fd.grad(S), x, w))
    elif outer == "jvp":
        value, tan = fd.jvp(G, (x,), (V,))
        np.testing.assert_allclose(value, _at_numbers(G, x), rtol=1e-14)
        _close(tan, fd_directional(G, x, V))
    elif outer == "vjp":
        value, vjp_fn = fd.vjp(G, x)
        u = np.linspace(-1.0, 1.0, np.size(value))
        _close(vjp_fn(u)[0], u @ fd_jacobian(G, x))
    elif outer == "derivative":
        got = fd.derivative(lambda s: S(x + s * V))(0.0)
        _close(got, fd_directional(S, x, V))
        got = fd.derivative(lambda s: G(x + s * V))(0.0)
        _close(got, fd_directional(G, x, V))


@pytest.mark.parametrize("inner", list(INNER))
def test_inner_results_inside_a_transformation_are_its_vars(inner):
    seen = []

    def S(x):
        g = INNER[inner](x)
        seen.append(type(g))
        return fd.sum(g * g)
    fd.grad(S)(X0)
    assert seen == [fd.Var]
    # and outside any transformation, plain numbers (the first-level path)
    assert not isinstance(INNER[inner](X0), fd.Var)


# ----------------------------------------------------------------------------------
# Third and fourth order, closed forms

def test_derivative_to_the_fourth_order():
    d = fd.derivative
    assert d(d(fd.sin))(0.7) == pytest.approx(-math.sin(0.7), rel=1e-14)
    assert d(d(d(fd.sin)))(0.7) == pytest.approx(-math.cos(0.7), rel=1e-14)
    assert d(d(d(d(lambda t: t ** 5))))(1.3) == pytest.approx(120 * 1.3, rel=1e-14)


def test_jacobian_of_jacobian_of_grad_is_the_third_derivative_tensor():
    # f = x0^2 x1 x2 + x1^3: T[i,j,k] = d3f / dxi dxj dxk
    def g(x):
        return x[0] ** 2 * x[1] * x[2] + x[1] ** 3
    x = np.array([0.5, -1.2, 2.0])
    T = fd.jacobian(fd.jacobian(fd.grad(g)))(x)
    want = np.zeros((3, 3, 3))
    for p in [(0, 0, 1), (0, 1, 0), (1, 0, 0)]:
        want[p] = 2 * x[2]
    for p in [(0, 0, 2), (0, 2, 0), (2, 0, 0)]:
        want[p] = 2 * x[1]
    for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        want[p] = 2 * x[0]
    want[1, 1, 1] = 6.0
    np.testing.assert_allclose(T, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fd.jacobian(fd.hessian(g))(x), want, rtol=1e-13,
                               atol=1e-13)


def test_hessian_of_hessian_element_is_fourth_order():
    # f = x^3 y^2: d2f/dx2 = 6 x y^2, whose Hessian is [[0, 12 y], [12 y, 12 x]]
    def h(v):
        return fd.hessian(lambda w: w[0] ** 3 * w[1] ** 2)(v)[0, 0]
    x, y = 0.8, -1.5
    np.testing.assert_allclose(fd.hessian(h)(np.array([x, y])),
                               [[0.0, 12 * y], [12 * y, 12 * x]], rtol=1e-13)


def test_hvp_of_hvp_and_jvp_of_jvp():
    # f = sum(x^4): H = diag(12 x^2); d/dx (H v . w) = 24 x v w
    x, v, w = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -1.0]), np.array([0.3, 0.1, 1.0])
    q = lambda z: fd.sum(z ** 4)
    got = fd.grad(lambda z: fd.sum(fd.hvp(q)(z, v) * w))(x)
    np.testing.assert_allclose(got, 24 * x * v * w, rtol=1e-14)
    got = fd.hvp(lambda z: fd.sum(fd.hvp(q)(z, v) * w))(x, v)
    np.testing.assert_allclose(got, 24 * v * v * w, rtol=1e-14)
    # jvp of jvp: d/ds d/dt q(x + t v + s w) = v^T H w
    inner = lambda z: fd.jvp(q, (z,), (v,))[1]
    assert fd.jvp(inner, (x,), (w,))[1] == pytest.approx(np.sum(12 * x ** 2 * v * w),
                                                         rel=1e-14)


def test_tangents_and_directions_may_be_outer_vars():
    # d/dx [J(x) x] for F(x) = x^2 elementwise: J x = 2 x^2, derivative 4 x
    x = np.array([0.5, -1.0, 2.0])
    got = fd.jacobian(lambda z: fd.jvp(lambda y: y ** 2, (z,), (z,))[1])(x)
    np.testing.assert_allclose(got, np.diag(4 * x), rtol=1e-14)
    # d/dx [H(x) x] for sum(x^3): H x = 6 x^2, derivative 12 x
    got = fd.jacobian(lambda z: fd.hvp(lambda y: fd.sum(y ** 3))(z, z))(x)
    np.testing.assert_allclose(got, np.diag(12 * x), rtol=1e-14)
    # d/dx [u(x) @ J(x)] with u = x (an outer Var computed before fd.vjp)
    got = fd.jacobian(lambda z: fd.vjp(lambda y: y ** 2, z)[1](z)[0])(x)
    np.testing.assert_allclose(got, np.diag(4 * x), rtol=1e-14)


def test_a_tall_inner_jacobian_by_columns():
    # more outputs than inputs + 1: columns by reverse-over-reverse
    def G(x):
        return fd.stack([x[0] * x[1], fd.sin(x[0]), x[1] ** 3, x[0] + x[1],
                         fd.exp(x[0] * x[1])])
    x = np.array([0.3, -0.8])
    S = lambda z: fd.sum(fd.jacobian(G)(z) ** 2)
    _close(fd.grad(S)(x), fd_jacobian(S, x))
    _close(fd.jacobian(G)(x), fd_jacobian(G, x))


def test_pytree_argnums_inside_a_transformation():
    # a dict argument and a tuple argnums in the nested forms
    def loss(w):
        H = fd.hessian(lambda p: p["a"] ** 2 * p["b"] ** 3)({"a": w, "b": 2.0 * w})
        (ja, jb) = fd.jacobian(lambda a, b: a * b * w, argnums=(0, 1))(w, 3.0)
        return H["a"]["b"] + ja * jb
    # H_ab = 6 a b^2 = 6 w (2w)^2 = 24 w^3; ja = b w = 3 w, jb = a w = w^2 -> 3 w^3
    w = 0.7
    assert fd.grad(loss)(w) == pytest.approx(27 * 3 * w * w, rel=1e-13)


def test_has_aux_inside_a_transformation_keeps_vars():
    def loss(x):
        J, aux = fd.jacobian(lambda y: (y ** 2, y ** 3), has_aux=True)(x)
        assert type(aux) is fd.Var
        out, vjp_fn, aux2 = fd.vjp(lambda y: (y * x, fd.sum(y)), x, has_aux=True)
        return fd.sum(J) + fd.sum(aux) + aux2 + fd.sum(vjp_fn(np.ones(3))[0])
    x = np.array([0.5, -1.0, 2.0])
    # sum(2x) + sum(x^3) + sum(y) + sum(x) (y the vjp's copy of x): 2 + 3x^2 + 1 + 1
    np.testing.assert_allclose(fd.grad(loss)(x), 4 + 3 * x ** 2, rtol=1e-14)


# ----------------------------------------------------------------------------------
# Perturbation confusion (Siskind & Pearlmutter): d/dx [x * d/dy (x + y)] = 1

CONFUSION_INNER = {
    "grad": lambda x: x * fd.grad(lambda y: x + y)(1.0),
    "derivative": lambda x: x * fd.derivative(lambda y: x + y)(1.0),
    "jacobian": lambda x: x * fd.jacobian(lambda y: x + y)(1.0),
    "jvp": lambda x: x * fd.jvp(lambda y: x + y, (1.0,), (1.0,))[1],
    "vjp": lambda x: x * fd.vjp(lambda y: x + y, 1.0)[1](1.0)[0],
    "value_and_grad": lambda x: x * fd.value_and_grad(lambda y: x + y)(1.0)[1],
    # d/dy of x y^2 / 2: x y, second derivative x -> x * x, d/dx = 2x
    "hessian": lambda x: x * fd.hessian(lambda y: x * y * y / 2)(1.0) / x,
    "hvp": lambda x: x * fd.hvp(lambda y: x * y * y / 2)(1.0, 1.0) / x,
}


@pytest.mark.parametrize("inner", list(CONFUSION_INNER))
@pytest.mark.parametrize("outer", ["grad", "derivative", "jacobian", "jvp"])
def test_no_perturbation_confusion(outer, inner):
    h = CONFUSION_INNER[inner]
    x = 1.7
    if outer == "grad":
        got = fd.grad(h)(x)
    elif outer == "derivative":
        got = fd.derivative(h)(x)
    elif outer == "jacobian":
        got = fd.jacobian(h)(x)
    else:
        got = fd.jvp(h, (x,), (1.0,))[1]
    assert got == pytest.approx(1.0, rel=1e-14), (outer, inner)


def test_no_confusion_between_three_derivative_levels():
    # d/dx [ x * d/dy [ y * d/dz (x y z) ] ]: innermost x y, middle 2 x y -> 2x at
    # y = 1, outer d/dx 2 x^2 = 4 x
    d = fd.derivative
    middle = lambda x: d(lambda y: y * d(lambda z: x * y * z)(1.0))(1.0)
    assert d(lambda x: x * middle(x))(2.5) == pytest.approx(10.0, rel=1e-14)
    assert fd.grad(lambda x: x * middle(x))(2.5) == pytest.approx(10.0, rel=1e-14)


def test_derivative_that_retries_on_a_tape_runs_once_after_that():
    calls = []

    def h(x):
        calls.append(type(x).__name__)
        return x * fd.grad(lambda y: x * y * y)(1.0)      # 2 x^2, derivative 4 x
    dh = fd.derivative(h)
    assert dh(1.5) == pytest.approx(6.0, rel=1e-14)
    assert calls == ["Dual", "Var"]                     # tried on a Dual, then a tape
    assert dh(2.0) == pytest.approx(8.0, rel=1e-14)
    assert calls == ["Dual", "Var", "Var"]              # straight to the tape
    assert type(dh(2.0)) is float


def test_derivative_without_inner_transformations_stays_on_duals():
    seen = []
    fd.derivative(lambda x: seen.append(type(x)) or x * x)(2.0)
    assert seen == [fd.Dual]


def test_a_users_except_exception_does_not_swallow_the_retry():
    def h(x):
        try:
            return fd.grad(lambda y: x * y * y)(1.0)        # 2 x
        except Exception:                                    # pragma: no cover
            return 0.0
    assert fd.derivative(h)(1.0) == 2.0


# ----------------------------------------------------------------------------------
# What remains refused

def test_a_cotangent_computed_from_the_inner_output_is_refused():
    def loss(x):
        out, vjp_fn = fd.vjp(lambda y: y ** 2, x)
        return fd.sum(vjp_fn(out)[0])
    with pytest.raises(TypeError, match="cotangent depends on this fd.vjp"):
        fd.grad(loss)(np.array([0.5, 1.0]))


def test_a_cotangent_depending_on_the_level_with_a_zero_derivative_is_refused_too():
    # u = (y - 1)^2 at y = 1: du/dy is 0 here, but not its derivative
    def loss(x):
        out, vjp_fn = fd.vjp(lambda y: y ** 3, x)
        return vjp_fn((out ** (1.0 / 3.0) - 1.0) ** 2)[0]
    with pytest.raises(TypeError, match="cotangent depends"):
        fd.grad(loss)(1.0)
    with fd.debug_nans(), pytest.raises(TypeError, match="cotangent depends"):
        fd.grad(loss)(1.0)


def test_a_hand_made_dual_of_duals_is_refused():
    with pytest.raises(TypeError, match="nested Duals"):
        fd.Dual(fd.Dual(1.0, 1.0), fd.Dual(1.0, 0.0))
    with pytest.raises(TypeError, match=r"fd.derivative\(fd.derivative\(f\)\)"):
        fd.derivative(fd.sin)(fd.Dual(1.0, 1.0))


def test_nested_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="jvp: tangents\\[0\\] has shape"):
        fd.grad(lambda x: fd.sum(fd.jvp(lambda y: y * y, (x,), (np.ones(2),))[1]))(
            np.ones(3))
    with pytest.raises(ValueError, match="hvp: v"):
        fd.grad(lambda x: fd.sum(fd.hvp(lambda y: fd.sum(y ** 3))(x, np.ones(2))))(
            np.ones(3))
    with pytest.raises(ValueError, match="vjp_fn: cotangent has shape"):
        fd.grad(lambda x: fd.sum(fd.vjp(lambda y: y * y, x)[1](np.ones(2))[0]))(
            np.ones(3))


def test_a_dual_evaluation_in_one_thread_does_not_touch_another():
    import threading
    inside, release, results = threading.Event(), threading.Event(), {}

    def slow(x):
        inside.set()
        release.wait(10)
        return x * x

    t = threading.Thread(target=lambda: results.setdefault(
        "d", fd.derivative(slow)(3.0)))
    t.start()
    assert inside.wait(10)
    # the other thread is inside a Dual evaluation; this one's grad is first level
    g = fd.grad(lambda x: x * fd.grad(lambda y: y * y)(x))(2.0)
    release.set()
    t.join(10)
    assert g == 8.0 and type(g) is float        # d/dx [x * 2 x] = 4 x
    assert results["d"] == 6.0


def test_trace_of_a_function_calling_the_forward_modes_replays():
    # x^2 cos(0.3 x) through fd.derivative, and J v of an elementwise map through
    # fd.jvp: the inner levels (fresh leaves mid-tape included) replay in C
    def g(x):
        d = fd.derivative(lambda t: fd.sin(t * x[0]))(0.3)
        return x[0] * d + fd.sum(fd.jvp(lambda y: fd.exp(y) * y, (x,), (x,))[1])
    x0, x1 = np.array([1.2, -0.4]), np.array([2.0, 0.7])
    tf = fd.trace(g, x0)
    v1, g1 = fd.value_and_grad(g)(x1)
    assert tf(x1) == pytest.approx(v1, rel=1e-14)
    np.testing.assert_allclose(tf.grad(x1), g1, rtol=1e-14)
    # closed form: x0^2 cos(0.3 x0) + sum(exp(x)(1 + x) x)
    want = x1[0] ** 2 * math.cos(0.3 * x1[0]) + np.sum(np.exp(x1) * (1 + x1) * x1)
    assert v1 == pytest.approx(want, rel=1e-14)
