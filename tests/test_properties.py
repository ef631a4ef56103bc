"""Hypothesis properties over random expression trees built from the op table.

Every primitive in fastad._tape.OP_INFO can appear.  Each argument is first mapped
into the op's test domain by lo + (hi - lo) * sigmoid(arg), so every expression is
defined and bounded wherever hypothesis evaluates it.  Properties:
  - fd.grad agrees with central finite differences (smooth ops only: a finite
    difference across a kink of abs, floor, max, ... is meaningless);
  - tape.gradient on an explicit tape equals fd.grad bit for bit (all ops);
  - the same expression on array Vars gives, element by element, the values and
    gradients of the scalar computation (all ops; to a few ulps, since array
    kernels may use NumPy's own libm).
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastad as fd
from fastad import _tape

# Ops whose derivative jumps somewhere in their test domain (or at the origin, where
# hypothesis likes to go): excluded from the finite-difference property only.
NONSMOOTH = {"abs", "sign", "floor", "ceil", "relu", "maximum", "minimum", "mod",
             "floor_divide", "hypot", "arctan2",
             "i0e", "i1e"}        # e^-|x| I_n(x): a kink at 0, inside their domain

ROWS = {row[1]: row for row in _tape.OP_INFO}


def _fn(name):
    return getattr(fd, name, None) or getattr(_tape, name)


def _into(domain, x):
    lo, hi = domain
    # stay strictly inside: the domain edges of e.g. arccosh have infinite slopes
    return lo + (hi - lo) * fd.sigmoid(x)


def evaluate(expr, xs):
    """Evaluate an expression tree; xs are scalar Vars or floats."""
    kind = expr[0]
    if kind == "x":
        return xs[expr[1]]
    if kind == "c":
        return expr[1]
    name = expr[1]
    _, _, arity, domains = ROWS[name]
    args = [_into(d, evaluate(sub, xs)) for d, sub in zip(domains, expr[2:])]
    return _fn(name)(*args)


def _ops(smooth):
    return sorted(name for name in ROWS if not (smooth and name in NONSMOOTH))


def expressions(nvars, smooth):
    leaves = st.one_of(
        st.builds(lambda i: ("x", i), st.integers(0, nvars - 1)),
        st.builds(lambda c: ("c", c),
                  st.floats(-2.0, 2.0, allow_nan=False).map(lambda c: round(c, 3))))
    unary = [n for n in _ops(smooth) if ROWS[n][2] == 1]
    binary = [n for n in _ops(smooth) if ROWS[n][2] == 2]

    def extend(children):
        return st.one_of(
            st.builds(lambda n, a: ("op", n, a), st.sampled_from(unary), children),
            st.builds(lambda n, a, b: ("op", n, a, b), st.sampled_from(binary),
                      children, children))

    return st.recursive(leaves, extend, max_leaves=8)


def _points(nvars):
    return st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=nvars, max_size=nvars)


PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _f(expr):
    def f(x):
        return evaluate(expr, [x[i] for i in range(len(x))])
    return f


def _central(f, x):
    """Fourth-order central differences of f (on floats) at x, per coordinate."""
    g = np.empty_like(x)
    for k in range(x.size):
        h = 1e-4 * max(1.0, abs(x[k]))
        vals = []
        for step in (2, 1, -1, -2):
            v = x.copy()
            v[k] += step * h
            vals.append(float(f(v)))
        g[k] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return g


@PROPS
@given(data=st.data(), nvars=st.integers(1, 3))
def test_gradient_matches_central_differences(data, nvars):
    expr = data.draw(expressions(nvars, smooth=True), label="expr")
    x = np.array(data.draw(_points(nvars), label="x"))
    f = _f(expr)
    value, g = fd.value_and_grad(f)(x)
    assert value == pytest.approx(float(f(x)), rel=1e-14, abs=1e-14)
    want = _central(f, x)
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6 * scale)


@PROPS
@given(data=st.data(), nvars=st.integers(1, 3))
def test_check_grad_accepts_every_smooth_expression(data, nvars):
    expr = data.draw(expressions(nvars, smooth=True), label="expr")
    x = np.array(data.draw(_points(nvars), label="x"))
    assert fd.check_grad(_f(expr), x, rtol=1e-5) <= 1e-5


@PROPS
@given(data=st.data(), nvars=st.integers(1, 3))
def test_tape_gradient_equals_fd_grad(data, nvars):
    expr = data.draw(expressions(nvars, smooth=False), label="expr")
    x = data.draw(_points(nvars), label="x")
    with fd.Tape() as tape:
        xs = [tape.variable(v) for v in x]
        out = evaluate(expr, xs)
    value, g = fd.value_and_grad(lambda *a: evaluate(expr, list(a)),
                                 argnums=tuple(range(nvars)))(*x)
    if type(out) is fd.Var:
        tg = tape.gradient(out, xs)
        assert out.value == value or (math.isnan(value) and math.isnan(out.value))
    else:
        tg = [0.0] * nvars
        assert float(out) == value
    np.testing.assert_array_equal(np.array(tg), np.array(g))
    # the plain-float evaluation gives the same value
    plain = float(evaluate(expr, list(x)))
    assert plain == value or (math.isnan(value) and math.isnan(plain))


@PROPS
@given(data=st.data())
def test_array_vars_match_the_scalar_computation_elementwise(data):
    expr = data.draw(expressions(1, smooth=False), label="expr")
    xs = np.array(data.draw(st.lists(st.floats(-2.0, 2.0, allow_nan=False),
                                     min_size=1, max_size=5), label="x"))
    with fd.Tape() as tape:
        x = tape.variable(xs)
        out = evaluate(expr, [x])
        total = fd.sum(out * 1.0) if type(out) is fd.Var and out.shape else None
    scalar = [fd.value_and_grad(lambda v: evaluate(expr, [v]))(float(v)) for v in xs]
    if total is None:            # the expression does not involve x
        return
    # vectorised kernels (NumPy's SIMD libm) may differ from the C scalar path in the
    # last bits, so this is a tight tolerance rather than bit equality
    np.testing.assert_allclose(out.value, [s[0] for s in scalar], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(tape.gradient(total, x), [s[1] for s in scalar],
                               rtol=1e-12, atol=1e-300)
