"""Stable formulations keep finite, accurate gradients at extreme arguments.

References are computed with mpmath at 50 digits and rounded once to float64.  A
result matches when it is within a few ulps (RTOL) of the reference, or when both
are below the smallest normal double (where only absolute accuracy is possible).
"""
import mpmath as mp
import numpy as np
import pytest

import fastad as fd

mp.mp.dps = 50
RTOL = 8e-16 * 4          # a few ulps
TINY = 2.2250738585072014e-308

EXTREME = [-1e3, -745.0, -710.0, -100.0, -40.0, -20.0, -1.0, -1e-8, -1e-300, -5e-324,
           0.0, 5e-324, 1e-300, 1e-8, 1.0, 20.0, 40.0, 100.0, 709.0, 710.0, 1e3]


DBL_MAX = 1.7976931348623157e308


def close(got, ref):
    if abs(ref) > DBL_MAX:          # the true value overflows double: inf expected
        return got == (np.inf if ref > 0 else -np.inf)
    ref = float(ref)
    if np.isnan(got) or np.isnan(ref):
        return False
    if got == ref:
        return True
    if abs(ref) < TINY:
        return abs(got - ref) < 4 * 5e-324 or abs(got - ref) < TINY * 1e-3
    return abs(got - ref) <= RTOL * abs(ref)


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


UNARY = {
    # name: (value, derivative), as mpmath functions
    "softplus": (lambda x: mp.log1p(mp.exp(x)), _sigmoid),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * _sigmoid(-x)),
    "log1p": (mp.log1p, lambda x: 1 / (1 + x)),
    "expm1": (mp.expm1, mp.exp),
    "tanh": (mp.tanh, lambda x: 1 / mp.cosh(x) ** 2),
}


# log1p is defined for x > -1 only; its domain edge has its own test
CASES = [(name, x) for name in sorted(UNARY) for x in EXTREME
         if not (name == "log1p" and x <= -1)]


@pytest.mark.parametrize("name,x", CASES)
def test_unary_value_and_gradient_at_extremes(name, x):
    f, df = UNARY[name]
    value, grad = fd.value_and_grad(getattr(fd, name))(x)
    if abs(df(mp.mpf(x))) <= DBL_MAX:
        assert np.isfinite(grad), (name, x, grad)
    assert close(value, f(mp.mpf(x))), (name, x, value, float(f(mp.mpf(x))))
    assert close(grad, df(mp.mpf(x))), (name, x, grad, float(df(mp.mpf(x))))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_array_var_matches_scalar(name):
    # the elementwise C loop reads the same table row as the scalar path
    xs = np.array(EXTREME[2:-2])
    if name == "log1p":
        xs = xs[xs > -1]
    g = fd.grad(lambda v: fd.sum(getattr(fd, name)(v)))(xs)
    for k, x in enumerate(xs):
        assert g[k] == fd.grad(getattr(fd, name))(float(x))


def test_log1p_domain_edges():
    assert fd.value_and_grad(fd.log1p)(-1.0) == (-np.inf, np.inf)
    v, g = fd.value_and_grad(fd.log1p)(-1.5)     # NumPy's convention: nan, no error
    assert np.isnan(v)


HYPOT_POINTS = [(1e-300, 1e-300), (1e300, 1e300), (1e-200, 0.0), (3e-320, 4e-320),
                (1e200, 1e-200), (-1e3, 1e3), (3.0, -4.0), (1e308, 1e308),
                (5e-324, 5e-324), (-1e-300, 2e-300)]


@pytest.mark.parametrize("a,b", HYPOT_POINTS)
def test_hypot_gradient_no_overflow_or_underflow(a, b):
    value, (ga, gb) = fd.value_and_grad(fd.hypot, argnums=(0, 1))(a, b)
    ma, mb = mp.mpf(a), mp.mpf(b)
    r = mp.sqrt(ma * ma + mb * mb)
    assert close(value, r)
    assert close(ga, ma / r) and close(gb, mb / r), (a, b, ga, gb)


def test_hypot_at_origin_is_a_subgradient_not_nan():
    assert fd.grad(fd.hypot, argnums=(0, 1))(0.0, 0.0) == (0.0, 0.0)


LSE_POINTS = [
    [-1e3, -1e3], [1e3, 1e3], [1e3, -1e3], [-1e300, 0.0], [1e-300, -1e-300],
    [710.0, 0.0], [-745.0, 0.0, 745.0], [1e3, 1e3 - 1e-10, 999.0], [-710.0, -709.0],
]


def _lse_ref(x):
    xs = [mp.mpf(v) for v in x]
    m = max(xs)
    s = mp.fsum(mp.exp(v - m) for v in xs)
    return m + mp.log(s), [mp.exp(v - m) / s for v in xs]


@pytest.mark.parametrize("x", LSE_POINTS)
def test_logsumexp_value_and_gradient(x):
    value, g = fd.value_and_grad(fd.logsumexp)(np.array(x))
    ref, gref = _lse_ref(x)
    assert np.all(np.isfinite(g))
    assert abs(value - float(ref)) <= 4 * 2.2e-16 * max(1.0, abs(float(ref)))
    for k in range(len(x)):
        assert abs(g[k] - float(gref[k])) <= 4 * 2.2e-16, (x, g, [float(v) for v in gref])


@pytest.mark.parametrize("x", LSE_POINTS)
def test_log_softmax_gradient(x):
    # d/dx_j of log_softmax(x)[0] = [j == 0] - softmax(x)_j
    arr = np.array(x)
    out = fd.grad(lambda v: fd.log_softmax(v)[0])(arr)
    _, sm = _lse_ref(x)
    expect = [(1.0 if j == 0 else 0.0) - float(sm[j]) for j in range(len(x))]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expect, rtol=0, atol=4 * 2.2e-16)
    vals = fd.log_softmax(arr)
    ref_lse, _ = _lse_ref(x)
    for j in range(len(x)):
        assert abs(vals[j] - float(mp.mpf(x[j]) - ref_lse)) <= 4 * 2.2e-16 * max(
            1.0, abs(float(mp.mpf(x[j]) - ref_lse)))


@pytest.mark.parametrize("a,b", HYPOT_POINTS[:-2] + [(1e-120, 3e-120), (2e150, -1e150)])
def test_hypot_second_partials(a, b):
    ma, mb = mp.mpf(a), mp.mpf(b)
    r = mp.sqrt(ma * ma + mb * mb)
    h = fd.hessian(lambda v: fd.hypot(v[0], v[1]))(np.array([a, b]))
    ref = [[mb * mb / r ** 3, -ma * mb / r ** 3], [-ma * mb / r ** 3, ma * ma / r ** 3]]
    for i in range(2):
        for j in range(2):
            assert np.isfinite(h[i, j]) or abs(ref[i][j]) > DBL_MAX, (a, b, h)
            if abs(ref[i][j]) > TINY and abs(ref[i][j]) < DBL_MAX / 16:
                assert abs(h[i, j] - float(ref[i][j])) <= 1e-14 * abs(ref[i][j]), (a, b, h)


def test_second_derivatives_stay_finite_at_extremes():
    # fd.hessian reads the second-partial column of the same rows
    for name in ("tanh", "sigmoid", "softplus", "expm1"):
        for x in (-1e3, -40.0, 40.0, 700.0):
            h = fd.hessian(getattr(fd, name))(x)
            assert np.isfinite(h), (name, x, h)


# Near |a| = 1 the partials of arcsin, arccos and arctanh divide by 1 - a^2; written
# as 1 - a*a it cancels after a*a is rounded (5e-8 relative error at 1 - 1e-9).
# The rows compute (1 - a) * (1 + a), which is accurate to an ulp or two.
NEAR_ONE = [1.0 - 1e-4, 1.0 - 1e-6, 1.0 - 1e-9, 1.0 - 1e-12, 1.0 - 2.0 ** -40,
            1.0 - 1e-15, float(np.nextafter(1.0, 0.0)), 0.5, 0.999]
NEAR_ONE = NEAR_ONE + [-a for a in NEAR_ONE]
ABOVE_ONE = [1.0 + 1e-4, 1.0 + 1e-6, 1.0 + 1e-9, 1.0 + 1e-12, 1.0 + 2.0 ** -40,
             1.0 + 1e-15, float(np.nextafter(1.0, 2.0)), 1.5, 1.001]

NEAR_ONE_ROWS = {
    # name: (first derivative, second derivative), as mpmath functions
    "arcsin": (lambda a: 1 / mp.sqrt(1 - a * a), lambda a: a / (1 - a * a) ** 1.5),
    "arccos": (lambda a: -1 / mp.sqrt(1 - a * a), lambda a: -a / (1 - a * a) ** 1.5),
    "arctanh": (lambda a: 1 / (1 - a * a), lambda a: 2 * a / (1 - a * a) ** 2),
    # arccosh: a > 1 (its second partial had a*a - 1)
    "arccosh": (lambda a: 1 / mp.sqrt(a * a - 1), lambda a: -a / (a * a - 1) ** 1.5),
}


NEAR_ONE_CASES = [(name, a) for name in sorted(NEAR_ONE_ROWS)
                  for a in (ABOVE_ONE if name == "arccosh" else NEAR_ONE)]


@pytest.mark.parametrize("name,a", NEAR_ONE_CASES)
def test_inverse_trig_partials_near_one(name, a):
    d1, d2 = NEAR_ONE_ROWS[name]
    fn = getattr(fd, name)
    ref1, ref2 = d1(mp.mpf(a)), d2(mp.mpf(a))
    got = {
        "grad": fd.grad(fn)(a),
        "derivative (Dual)": fd.derivative(fn)(a),
        "array record": fd.grad(lambda v: fd.sum(fn(v)))(np.array([a, a]))[1],
        "trace replay": fd.trace(fn, 0.0 if name != "arccosh" else 3.0).grad(a),
    }
    for how, g in got.items():
        assert close(g, ref1), (name, a, how, g, float(ref1))
    h = fd.hessian(fn)(a)
    assert close(h, ref2), (name, a, "hessian", h, float(ref2))


# log1p(exp(a)) is recorded as softplus(a): exp(800) overflows to inf and log1p's
# partial 1/(1 + inf) = 0 used to drop the gradient (true value sigmoid(800) = 1)
# in every mode.
def _log1p_exp(x):
    return fd.log1p(fd.exp(x))


def _np_log1p_exp(x):
    return np.log1p(np.exp(x))


@pytest.mark.parametrize("x", EXTREME)
@pytest.mark.parametrize("f", [_log1p_exp, _np_log1p_exp])
def test_log1p_of_exp_is_softplus(f, x):
    value, grad = fd.value_and_grad(f)(x)
    ref, dref = UNARY["softplus"][0](mp.mpf(x)), _sigmoid(mp.mpf(x))
    assert close(value, ref), (x, value, float(ref))
    assert close(grad, dref), (x, grad, float(dref))
    assert close(fd.derivative(f)(x), dref)                       # forward mode (Dual)
    tf = fd.trace(f, 0.5)
    assert tf.value_and_grad(x) == (value, grad)                  # replay, bit for bit


def test_log1p_of_exp_at_800_in_every_mode():
    f = _log1p_exp
    assert fd.value_and_grad(f)(800.0) == (800.0, 1.0)
    assert fd.derivative(f)(800.0) == 1.0
    assert fd.jvp(f, (800.0,), (2.0,)) == (800.0, 2.0)
    d = fd.log1p(fd.exp(fd.Dual(800.0, [1.0, -3.0])))
    assert d.value == 800.0 and d.tangent.tolist() == [1.0, -3.0]
    duals = fd.log1p(fd.exp(np.array([fd.Dual(800.0, 1.0), fd.Dual(0.0, 1.0)])))
    assert [e.tangent for e in duals] == [1.0, 0.5]
    tf = fd.trace(f, 1.0)
    assert tf(800.0) == 800.0 and tf.grad(800.0) == 1.0 and tf.jvp(800.0, 1.0) == (800.0, 1.0)
    # second order: softplus'' = sigmoid' (0.25 at 0, underflows to 0 at 800)
    assert fd.hessian(f)(0.0) == 0.25 and tf.hessian(0.0) == 0.25
    assert fd.hessian(f)(800.0) == 0.0 and np.isfinite(fd.hvp(f)(800.0, 1.0))
    assert fd.hvp(f)(0.0, 2.0) == 0.5


@pytest.mark.parametrize("n", [3, 40])       # scalar slots, and one array record
def test_log1p_of_exp_on_arrays(n):
    x = np.full(n, 800.0)
    x[0] = 0.0
    ones = np.ones(n)
    ones[0] = 0.5
    f = lambda v: fd.sum(fd.log1p(fd.exp(v)))                      # noqa: E731
    value, g = fd.value_and_grad(f)(x)
    assert value == 800.0 * (n - 1) + float(mp.log(2)) and g.tolist() == ones.tolist()
    assert fd.trace(f, np.zeros(n)).grad(x).tolist() == ones.tolist()
    # an element of exp's output: exp(v)[k] is exp(v[k]), scalar slot or record block
    g = fd.grad(lambda v: fd.log1p(fd.exp(v)[n - 1]) + fd.log1p(fd.exp(v)[0]))(x)
    assert g[n - 1] == 1.0 and g[0] == 0.5 and not g[1:n - 1].any()
    np.testing.assert_allclose(np.diag(fd.hessian(f)(np.zeros(n))), 0.25, rtol=1e-15)


def test_log1p_of_exp_keeps_the_exp_and_other_log1p():
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        y = fd.exp(x)
        z = fd.log1p(y) + y              # exp's value is still used as itself
        w = fd.log1p(x)                  # log1p of anything else is log1p
    assert "softplus" in tape.wengert() and "log1p" in tape.wengert()
    assert tape.gradient(z, x) == pytest.approx(float(_sigmoid(mp.mpf(1)) + mp.e), rel=1e-15)
    assert tape.gradient(w, x) == 0.5
    tape.reset()
    with pytest.raises(fd.TapeError, match="reset"):
        fd.log1p(y)                      # a stale exp output: an error, not a peephole
