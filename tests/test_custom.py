"""fd.custom_vjp and fd.custom_jvp (API.md section 10) in every transformation.

Each case of CASES declares one function twice -- through custom_vjp and through
custom_jvp -- with rules written in fastad/NumPy operations, and gives its closed
forms: the value, the Jacobian, and the Hessian of sum(W * f(x)).  Every
transformation is checked against those closed forms for both declarations.
"""
import numpy as np
import pytest

import fastad as fd
from fastad import _registry

RNG = np.random.default_rng(11)
X = RNG.uniform(-1.0, 1.0, 5)
V = RNG.uniform(-1.0, 1.0, 5)
C = RNG.uniform(0.5, 1.5, 5)


# ----------------------------------------------------------------------------------
# The cases: (declare(kind) -> f of one array, value, jacobian, hessian of sum(w * f))

def _lse_closed(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def _lse_jac(x):
    p = np.exp(x - _lse_closed(x))
    return p


def _lse_hess(x, w):
    p = _lse_jac(x)
    return w * (np.diag(p) - np.outer(p, p))


def declare_lse(kind):
    """logsumexp, the built-in re-declared by the user (the registry is its own
    first user)."""
    if kind == "vjp":
        @fd.custom_vjp
        def lse(x):
            m = np.max(x)
            return m + np.log(np.sum(np.exp(x - m)))

        def fwd(x):
            y = lse(x)
            return y, (x, y)

        def bwd(res, g):
            x, y = res
            return (g * np.exp(x - y),)
        lse.defvjp(fwd, bwd)
        return lse

    @fd.custom_jvp
    def lse(x):
        m = np.max(x)
        return m + np.log(np.sum(np.exp(x - m)))

    @lse.defjvp
    def lse_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y = lse(x)
        return y, fd.sum(np.exp(x - y) * t)
    return lse


def declare_scaled_sin(kind):
    """c * sin(x), elementwise, with a constant second argument c."""
    if kind == "vjp":
        @fd.custom_vjp
        def f(x, c):
            return c * np.sin(x)
        f.defvjp(lambda x, c: (c * np.sin(x), (x, c)),
                 lambda res, g: (g * res[1] * np.cos(res[0]), None))
    else:
        @fd.custom_jvp
        def f(x, c):
            return c * np.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            x, c = primals
            tx, _ = tangents
            return f(x, c), c * np.cos(x) * tx

    def g(x):
        return f(x, C)
    return g


CASES = {
    "logsumexp": (declare_lse, _lse_closed, lambda x: _lse_jac(x)[None, :],
                  lambda x, w: _lse_hess(x, w[0])),
    "c * sin(x)": (declare_scaled_sin, lambda x: C * np.sin(x),
                   lambda x: np.diag(C * np.cos(x)),
                   lambda x, w: np.diag(-w * C * np.sin(x))),
}
KINDS = ("vjp", "jvp")
GRID = [(case, kind) for case in CASES for kind in KINDS]


def _setup(case, kind):
    declare, value, jac, hess = CASES[case]
    f = declare(kind)
    w = RNG.uniform(0.5, 1.5, np.shape(value(X)) or (1,))
    out_shape = np.shape(value(X))

    def loss(x):
        return fd.sum(f(x) * w.reshape(out_shape))
    return f, value, jac, hess, w, loss


@pytest.mark.parametrize("case,kind", GRID)
def test_plain_values_run_the_function(case, kind):
    f, value, *_ = _setup(case, kind)
    np.testing.assert_allclose(f(X), value(X), rtol=1e-14)


@pytest.mark.parametrize("case,kind", GRID)
def test_grad_and_value_and_grad(case, kind):
    f, value, jac, _, w, loss = _setup(case, kind)
    expected = w @ jac(X).reshape(w.size, X.size)
    np.testing.assert_allclose(fd.grad(loss)(X), expected, rtol=1e-12, atol=1e-15)
    v, g = fd.value_and_grad(loss)(X)
    np.testing.assert_allclose(v, np.sum(w * np.reshape(value(X), -1)), rtol=1e-13)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case,kind", GRID)
def test_vjp(case, kind):
    f, value, jac, *_ = _setup(case, kind)
    out, vjp_fn = fd.vjp(f, X)
    u = RNG.uniform(-1, 1, np.shape(value(X)))
    (g,) = vjp_fn(u)
    np.testing.assert_allclose(out, value(X), rtol=1e-14)
    np.testing.assert_allclose(g, np.reshape(u, -1) @ jac(X).reshape(-1, X.size),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case,kind", GRID)
def test_jacobian_forward_and_reverse_shapes(case, kind):
    f, value, jac, *_ = _setup(case, kind)
    # c * sin(x) has as many outputs as inputs (forward mode is chosen);
    # logsumexp one output (reverse mode)
    J = fd.jacobian(f)(X)
    np.testing.assert_allclose(np.reshape(J, jac(X).shape), jac(X), rtol=1e-12,
                               atol=1e-15)
    # forward mode forced by more outputs than inputs: f of x[:2]
    def more_outputs(z):
        y = fd.reshape(f(fd.concatenate([z, X[2:]])), (-1,))
        return fd.concatenate([y, y, y])
    J2 = fd.jacobian(more_outputs)(X[:2])
    ref = jac(X)[:, :2]
    np.testing.assert_allclose(J2, np.concatenate([ref, ref, ref]), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", CASES)
def test_jvp_of_custom_jvp(case):
    f, value, jac, *_ = _setup(case, "jvp")
    out, t = fd.jvp(f, (X,), (V,))
    np.testing.assert_allclose(out, value(X), rtol=1e-14)
    np.testing.assert_allclose(np.reshape(t, -1), jac(X) @ V, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", CASES)
def test_jvp_of_custom_vjp_names_the_missing_rule(case):
    f, *_ = _setup(case, "vjp")
    with pytest.raises(TypeError, match="JVP rule"):
        fd.jvp(f, (X,), (V,))


@pytest.mark.parametrize("case,kind", GRID)
def test_hessian_and_hvp(case, kind):
    f, value, jac, hess, w, loss = _setup(case, kind)
    H = hess(X, w)
    np.testing.assert_allclose(fd.hessian(loss)(X), H, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(fd.hvp(loss)(X, V), H @ V, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("case,kind", GRID)
def test_trace_replays_at_new_points(case, kind):
    f, value, jac, hess, w, loss = _setup(case, kind)
    tf = fd.trace(loss, X)
    for x in (X, X * 0.5 + 0.1, -X):
        assert tf(x) == fd.value_and_grad(loss)(x)[0]
        np.testing.assert_array_equal(tf.grad(x), fd.grad(loss)(x))
        np.testing.assert_allclose(tf.grad(x), w @ jac(x).reshape(w.size, x.size),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(tf.hessian(x), hess(x, w), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("case,kind", GRID)
def test_save_and_load_by_name(case, kind, tmp_path):
    f, value, jac, _, w, loss = _setup(case, kind)
    tf = fd.trace(loss, X)
    path = str(tmp_path / "t.fad")
    tf.save(path)
    prim = getattr(f, "primitive", None) or _primitive_of(tf)
    with pytest.raises(fd.TraceError, match=prim.name):
        fd.load(path)
    loaded = fd.load(path, primitives=[prim.impl])
    for x in (X, X * 0.3):
        assert loaded(x) == tf(x)
        np.testing.assert_array_equal(loaded.grad(x), tf.grad(x))


def _primitive_of(tf):
    return next(r.prim for r in tf._tape.records if getattr(r, "prim", None) is not None
                and r.prim.kind == "custom")


# ----------------------------------------------------------------------------------
# Replay calls only the primitive's function and rules

def test_replay_runs_only_the_primitive_never_the_rest():
    calls = {"fwd": 0, "bwd": 0, "rest": 0}

    @fd.custom_vjp
    def sq(x):
        return x * x

    def fwd(x):
        calls["fwd"] += 1
        return x * x, x

    def bwd(x, g):
        calls["bwd"] += 1
        return (2.0 * x * g,)
    sq.defvjp(fwd, bwd)

    def f(x):
        calls["rest"] += 1
        return fd.sum(fd.sin(sq(x)))
    tf = fd.trace(f, X)
    assert calls == {"fwd": 1, "bwd": 0, "rest": 1}
    x = X * 1.5
    assert tf(x) == np.sum(np.sin(x * x))
    np.testing.assert_allclose(tf.grad(x), np.cos(x * x) * 2 * x, rtol=1e-13)
    assert calls["rest"] == 1 and calls["fwd"] == 3 and calls["bwd"] == 1


def test_scalar_arguments_and_two_var_arguments():
    @fd.custom_vjp
    def mul(a, b):
        return a * b
    mul.defvjp(lambda a, b: (a * b, (a, b)), lambda r, g: (g * r[1], g * r[0]))
    ga, gb = fd.grad(lambda a, b: mul(a, b) * 3.0, argnums=(0, 1))(2.0, 5.0)
    assert (ga, gb) == (15.0, 6.0)
    H = fd.hessian(lambda z: mul(z[0], z[1]))(np.array([2.0, 5.0]))
    np.testing.assert_allclose(H, [[0.0, 1.0], [1.0, 0.0]], atol=1e-15)


def test_duals_and_derivative_through_custom_jvp():
    @fd.custom_jvp
    def s(x):
        return np.sin(x)

    @s.defjvp
    def s_jvp(p, t):
        return s(p[0]), np.cos(p[0]) * t[0]
    assert fd.derivative(s)(0.5) == np.cos(0.5)
    d = s(fd.Dual(0.5, 2.0))
    assert (d.value, d.tangent) == (np.sin(0.5), 2.0 * np.cos(0.5))
    assert fd.hessian(s)(0.5) == pytest.approx(-np.sin(0.5), rel=1e-15)


def test_builtin_logsumexp_redeclared_matches_the_builtin(tmp_path):
    x = RNG.uniform(-3, 3, 40)                     # a record of the built-in (>= 16)
    for kind in KINDS:
        lse = declare_lse(kind)
        assert lse(x) == pytest.approx(fd.logsumexp(x), rel=1e-15)
        np.testing.assert_allclose(fd.grad(lse)(x), fd.grad(fd.logsumexp)(x),
                                   rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(fd.hessian(lse)(x), fd.hessian(fd.logsumexp)(x),
                                   rtol=1e-11, atol=1e-15)
        tf, ref = fd.trace(lse, x), fd.trace(fd.logsumexp, x)
        tf.save(str(tmp_path / "c.fad"))
        ref.save(str(tmp_path / "b.fad"))
        loaded = fd.load(str(tmp_path / "c.fad"), primitives=[lse])
        builtin = fd.load(str(tmp_path / "b.fad"))
        for z in (x, x[::-1] * 0.5):
            assert loaded(z) == pytest.approx(builtin(z), rel=1e-15)
            np.testing.assert_allclose(loaded.grad(z), builtin.grad(z), rtol=1e-13,
                                       atol=1e-16)


# ----------------------------------------------------------------------------------
# Errors

def _identity_vjp(fwd, bwd, name="ident"):
    f = fd.custom_vjp(lambda x: x, name=name)
    f.defvjp(fwd, bwd)
    return f


ERRORS = {
    "no rule (custom_vjp)": (lambda: fd.custom_vjp(lambda x: x * 2.0), TypeError,
                             "VJP rule"),
    "no rule (custom_jvp)": (lambda: fd.custom_jvp(lambda x: x * 2.0), TypeError,
                             "JVP rule"),
    "too many cotangents": (lambda: _identity_vjp(lambda x: (x, None),
                                                  lambda r, g: (g, g)),
                            ValueError, "ident: bwd returned 2 cotangents"),
    "cotangent of the wrong shape": (lambda: _identity_vjp(
        lambda x: (x, None), lambda r, g: (np.ones(2),)), ValueError,
        "ident: bwd returned cotangent 0 of shape"),
    "fwd not a pair": (lambda: _identity_vjp(lambda x: x, lambda r, g: (g,)), TypeError,
                       "ident: fwd must return"),
    "fwd returns a tuple output": (lambda: _identity_vjp(
        lambda x: ((x, x), None), lambda r, g: (g,)), TypeError, "ident: fwd must return"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_name_the_primitive_and_rule(case):
    make, exc, match = ERRORS[case]
    f = make()
    with pytest.raises(exc, match=match):
        fd.grad(lambda x: fd.sum(f(x)))(X)


def test_jvp_rule_errors():
    @fd.custom_jvp
    def f(x):
        return x * 2.0

    @f.defjvp
    def f_jvp(p, t):
        return p[0] * 2.0, fd.sum(t[0])           # tangent_out of the wrong shape
    with pytest.raises(ValueError, match="f: the JVP rule's tangent_out has shape"):
        fd.grad(lambda x: fd.sum(f(x)))(X)
    g = fd.custom_jvp(lambda x: x)
    g.defjvp(lambda p, t: t)                      # not (out, tangent_out)
    with pytest.raises(TypeError, match="must return \\(out, tangent_out\\)"):
        fd.jvp(g, (X,), (V,))


def test_derivative_of_custom_vjp_names_the_missing_rule():
    f = _identity_vjp(lambda x: (x, None), lambda r, g: (g,))
    with pytest.raises(TypeError, match="ident is a custom_vjp.*JVP rule"):
        fd.derivative(f)(1.0)


def test_rules_must_be_callable():
    f = fd.custom_vjp(lambda x: x)
    with pytest.raises(TypeError, match="bwd must be callable"):
        f.defvjp(lambda x: (x, None), 3)
    with pytest.raises(TypeError, match="fun must be callable"):
        fd.custom_jvp(5)


def test_load_refuses_a_name_that_is_not_passed(tmp_path):
    f = _identity_vjp(lambda x: (x * 1.0, None), lambda r, g: (g,), name="mine")
    other = _identity_vjp(lambda x: (x * 1.0, None), lambda r, g: (g,), name="other")
    tf = fd.trace(lambda x: fd.sum(f(x)), X)
    tf.save(str(tmp_path / "t.fad"))
    with pytest.raises(fd.TraceError, match="'mine'.*primitives="):
        fd.load(str(tmp_path / "t.fad"), primitives=[other])


def test_custom_primitives_never_enter_the_registry():
    before = dict(_registry.REGISTRY)
    f = declare_lse("vjp")
    fd.grad(f)(X)
    assert _registry.REGISTRY == before and f.primitive.name not in _registry.REGISTRY
    with pytest.raises(ValueError, match="not added to the registry"):
        _registry.declare(f.primitive)


def test_traced_forward_mode_of_custom_vjp_names_the_missing_rule():
    f, *_ = _setup("c * sin(x)", "vjp")
    tf = fd.trace(f, X)
    for call in (lambda: tf.jvp(X, V), lambda: tf.jacobian(X)):
        with pytest.raises(TypeError, match="JVP rule"):
            call()
    g, value, jac, *_ = _setup("c * sin(x)", "jvp")
    tg = fd.trace(g, X)
    np.testing.assert_allclose(tg.jvp(X, V)[1], jac(X) @ V, rtol=1e-13)
    np.testing.assert_allclose(tg.jacobian(X), jac(X), rtol=1e-13, atol=1e-15)


def test_a_primitive_of_the_same_name_and_another_shape_is_a_trace_error(tmp_path):
    f = fd.custom_vjp(lambda x: x * 2.0, name="dbl")
    f.defvjp(lambda x: (x * 2.0, None), lambda r, g: (2.0 * g,))
    tf = fd.trace(lambda x: fd.sum(f(x)), X)
    tf.save(str(tmp_path / "t.fad"))
    g = fd.custom_vjp(lambda x: np.sum(x), name="dbl")
    g.defvjp(lambda x: (np.sum(x), None), lambda r, gg: (gg * np.ones(5),))
    with pytest.raises(fd.TraceError, match="dbl: the output has shape \\(\\), recorded "
                                            "with shape \\(5,\\)"):
        fd.load(str(tmp_path / "t.fad"), primitives=[g])
    # and at a replay: the function changed the shape it gives
    calls = {"n": 0}

    def fwd(x):
        calls["n"] += 1
        return (x * 2.0 if calls["n"] == 1 else x[:2] * 2.0), None
    h = fd.custom_vjp(lambda x: x * 2.0, name="flaky")
    h.defvjp(fwd, lambda r, gg: (2.0 * gg,))
    th = fd.trace(lambda x: fd.sum(h(x)), X)
    with pytest.raises(ValueError, match="flaky: the output has shape \\(2,\\)"):
        th(X)


def test_a_jvp_rule_that_cannot_take_vars_says_why():
    f = fd.custom_jvp(lambda x: x * 2.0, name="opaque")
    f.defjvp(lambda p, t: (p[0] * 2.0, 2.0 * np.asarray(t[0], dtype=float)))
    assert fd.derivative(f)(1.5) == 2.0          # Duals pass plain tangents: fine
    with pytest.raises(TypeError, match="opaque: the JVP rule runs with the tangents "
                                        "as Vars"):
        fd.grad(lambda x: fd.sum(f(x)))(X)


def test_a_var_closed_over_into_the_residuals_is_a_type_error():
    # the closed-over x's derivative would be lost, and the record holding it
    # would tie the tape to itself (Vars are outside the cyclic GC)
    def f(x):
        @fd.custom_vjp
        def g(y):
            return y * 2.0
        g.defvjp(lambda y: (g(y), x), lambda res, ct: (ct * 2.0,))
        return fd.sum(g(x))
    with pytest.raises(TypeError, match="custom primitive g: fwd's residuals hold a Var"):
        fd.grad(f)(np.ones(3))
