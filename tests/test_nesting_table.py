"""The recordable partials of the op table (docs/design/nesting.md, 1.1), row by row.

tools/gen_ops.py turns each row's first-partial column into recorded operations, so
that tape.gradient(..., create_graph=True) can be differentiated again.  For every row
of the table and each argument form (binary, x op c, c op x), at points of the row's
test domain, this checks that
- the recorded partial's value equals the row's C partial (fad_eval) exactly, so a
  create_graph gradient has the first-order gradient's value;
- its recorded derivative equals the row's second partial (fad_second);
- third and fourth derivatives of each smooth unary row equal mpmath's, at 30 digits.
"""
import math

import mpmath
import numpy as np
import pytest

import fastad as fd
from fastad import _tape

OP_INFO = _tape.OP_INFO
UNARY = [row for row in OP_INFO if row[2] == 1]
BINARY = [row for row in OP_INFO if row[2] == 2]


def _points(lo, hi, k=5):
    # interior points of the domain, avoiding the exact middle (0 for symmetric
    # domains, where abs/sign/relu have their kink)
    return [lo + (hi - lo) * f for f in np.linspace(0.07, 0.93, k)]


def _same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("code,name", [(r[0], r[1]) for r in UNARY])
def test_unary_row_partials_record_exactly(code, name):
    lo, hi = [r[3] for r in UNARY if r[0] == code][0][0]
    for a in _points(lo, hi):
        _, d1, _, d2, _, _ = _tape._test_eval(code, a, 0.0)
        with fd.Tape() as t:
            x = t.variable(a)
            y = getattr(_tape, name)(x)
            g = t.gradient(y, x, create_graph=True)
            assert type(g) is fd.Var and g.tape is t
            assert _same(g.value, t.gradient(y, x)), (name, a)
            assert _same(g.value, d1), (name, a)
            h = t.gradient(g, x)
        assert h == pytest.approx(d2, rel=1e-12, abs=1e-12), (name, a)


@pytest.mark.parametrize("code,name", [(r[0], r[1]) for r in BINARY])
def test_binary_row_partials_record_exactly(code, name):
    (alo, ahi), (blo, bhi) = [r[3] for r in BINARY if r[0] == code][0]
    fn = getattr(_tape, name)
    for a, b in zip(_points(alo, ahi), np.roll(_points(blo, bhi), 2)):
        _, da, db, daa, dab, dbb = _tape._test_eval(code, a, b)
        with fd.Tape() as t:
            x, y = t.variable(a), t.variable(b)
            r = fn(x, y)
            gx, gy = t.gradient(r, [x, y], create_graph=True)
            assert [gx.value, gy.value] == t.gradient(r, [x, y]), (name, a, b)
            assert _same(gx.value, da) and _same(gy.value, db), (name, a, b)
            hxx, hxy = t.gradient(gx, [x, y])
            hyx, hyy = t.gradient(gy, [x, y])
        for got, want in ((hxx, daa), (hxy, dab), (hyx, dab), (hyy, dbb)):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (name, a, b)
        # the constant forms: x op c and c op x
        for form in ("c1", "c0"):
            with fd.Tape() as t:
                if form == "c1":
                    v = t.variable(a)
                    r = fn(v, b)
                    want1, want2 = da, daa
                else:
                    v = t.variable(b)
                    r = fn(a, v)
                    want1, want2 = db, dbb
                g = t.gradient(r, v, create_graph=True)
                assert _same(g.value, want1), (name, form, a, b)
                h = t.gradient(g, v)
            assert h == pytest.approx(want2, rel=1e-12, abs=1e-12), (name, form, a, b)


# mpmath's versions of the smooth unary rows, for third and fourth derivatives
MP = {
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "arcsin": mpmath.asin,
    "arccos": mpmath.acos, "arctan": mpmath.atan, "sinh": mpmath.sinh,
    "cosh": mpmath.cosh, "tanh": mpmath.tanh, "arcsinh": mpmath.asinh,
    "arccosh": mpmath.acosh, "arctanh": mpmath.atanh, "exp": mpmath.exp,
    "exp2": lambda a: mpmath.mpf(2) ** a, "expm1": mpmath.expm1, "log": mpmath.log,
    "log2": lambda a: mpmath.log(a, 2), "log10": mpmath.log10,
    "log1p": mpmath.log1p, "sqrt": mpmath.sqrt, "cbrt": mpmath.cbrt,
    "square": lambda a: a * a, "erf": mpmath.erf, "erfc": mpmath.erfc,
    "sigmoid": lambda a: 1 / (1 + mpmath.exp(-a)),
    "softplus": lambda a: mpmath.log1p(mpmath.exp(a)),
    # the special-function rows (fd.special)
    "gammaln": mpmath.loggamma, "digamma": mpmath.digamma, "gamma": mpmath.gamma,
    "erfinv": mpmath.erfinv, "erfcx": lambda a: mpmath.exp(a * a) * mpmath.erfc(a),
    "ndtr": lambda a: mpmath.ncdf(a), "log_ndtr": lambda a: mpmath.log(mpmath.ncdf(a)),
    "ndtri": lambda a: mpmath.sqrt(2) * mpmath.erfinv(2 * a - 1),
    "logit": lambda a: mpmath.log(a / (1 - a)), "entr": lambda a: -a * mpmath.log(a),
    "i0": lambda a: mpmath.besseli(0, a), "i1": lambda a: mpmath.besseli(1, a),
    "i0e": lambda a: mpmath.exp(-abs(a)) * mpmath.besseli(0, a),
    "i1e": lambda a: mpmath.exp(-abs(a)) * mpmath.besseli(1, a),
}
PIECEWISE = {"positive", "negative", "abs", "sign", "floor", "ceil", "relu", "gammasgn"}


def test_every_unary_row_is_classified():
    names = {r[1] for r in UNARY}
    assert names == set(MP) | PIECEWISE


def _nth(f, n):
    for _ in range(n):
        f = fd.grad(f)
    return f


@pytest.mark.parametrize("name", sorted(MP))
def test_third_and_fourth_derivatives_of_each_row(name):
    lo, hi = [r[3] for r in UNARY if r[1] == name][0][0]
    fn = getattr(_tape, name)
    # e^-|x| I_n(x) has a kink at 0 (the middle of its domain): points beside it
    pts = _points(lo, hi, 4) if name in ("i0e", "i1e") else _points(lo, hi, 3)
    with mpmath.workdps(30):
        for a in pts:
            for n in (3, 4):
                want = float(mpmath.diff(MP[name], mpmath.mpf(a), n))
                got = _nth(fn, n)(a)
                assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (name, a, n)


@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_piecewise_rows_have_zero_higher_derivatives(name):
    fn = getattr(_tape, name)
    for a in (-1.3, 0.4, 2.6):
        assert _nth(fn, 2)(a) == 0.0
        assert _nth(fn, 3)(a) == 0.0


def test_tanh_branches_of_the_recorded_partial():
    # fad_dtanh switches formula at |a| = 1: both branches differentiate exactly
    for a in (-3.0, -1.0, -0.999, 0.3, 0.999, 1.0, 1.5, 20.0):
        want = float(mpmath.diff(mpmath.tanh, mpmath.mpf(a), 2))
        assert fd.grad(fd.grad(fd.tanh))(a) == pytest.approx(want, rel=1e-12, abs=1e-300)
    # far out the exp form keeps every digit, where 1 - r*r would be 0
    assert fd.grad(fd.tanh)(20.0) > 0.0
    assert fd.grad(fd.grad(fd.tanh))(20.0) < 0.0


def test_pow_mixed_partial_at_zero_exponent():
    # d/dy [d/dx x**y] at y = 0 is 1/x (fad_pow_dxy); the recorded dx keeps it
    with fd.Tape() as t:
        x, y = t.variable(2.0), t.variable(0.0)
        gx = t.gradient(x ** y, x, create_graph=True)
        assert gx.value == 0.0
        assert t.gradient(gx, y) == 0.5
