"""Every scalar primitive of the op table against closed forms and finite differences.

The tests walk fastad._tape.OP_INFO, which tools/gen_ops.py generates from the op
table in csrc/fastad_ops.h, so a new primitive is tested the moment it is added:
its row must also get an entry in EXPECT below (value and first partials written
independently of the C code, from NumPy/SciPy and textbook formulas), or
test_every_op_has_expectations fails.

Checked per op: the value against NumPy/SciPy; the first partials against the
closed forms and against central finite differences of the value; the second
partials (fad_second, through _test_eval) against finite differences of the first
partials; the constant-operand forms NAME_C1 (var op c) and NAME_C0 (c op var),
both through _test_eval and recorded on a tape through the public functions and
operators; and the special points of API.md section 6.
"""
import math
import operator

import numpy as np
import pytest
import scipy.special as sp

import fastad as fd
from fastad import _tape

OP_INFO = _tape.OP_INFO
KIND_LEAF, KIND_UNARY, KIND_CONST, KIND_BINARY = 0, 1, 2, 3


def _nearest_int_dist(v):
    return abs(v - round(v))


def _sec(a):
    return 1.0 / math.cos(a) ** 2


# name -> (value(a[, b]), partials(a[, b]) -> d/da or (d/da, d/db), distance to the
# nearest non-smooth point or None).  Finite differences are taken only at sample
# points farther than KINK_MARGIN from a non-smooth point.
UNARY_EXPECT = {
    "positive": (np.positive, lambda a: 1.0, None),
    "negative": (np.negative, lambda a: -1.0, None),
    "sin": (np.sin, np.cos, None),
    "cos": (np.cos, lambda a: -np.sin(a), None),
    "tan": (np.tan, _sec, None),
    "arcsin": (np.arcsin, lambda a: 1.0 / math.sqrt(1.0 - a * a), None),
    "arccos": (np.arccos, lambda a: -1.0 / math.sqrt(1.0 - a * a), None),
    "arctan": (np.arctan, lambda a: 1.0 / (1.0 + a * a), None),
    "sinh": (np.sinh, np.cosh, None),
    "cosh": (np.cosh, np.sinh, None),
    "tanh": (np.tanh, lambda a: 1.0 / math.cosh(a) ** 2, None),
    "arcsinh": (np.arcsinh, lambda a: 1.0 / math.sqrt(a * a + 1.0), None),
    "arccosh": (np.arccosh, lambda a: 1.0 / math.sqrt(a * a - 1.0), None),
    "arctanh": (np.arctanh, lambda a: 1.0 / (1.0 - a * a), None),
    "exp": (np.exp, np.exp, None),
    "exp2": (np.exp2, lambda a: math.log(2.0) * 2.0 ** a, None),
    "expm1": (np.expm1, np.exp, None),
    "log": (np.log, lambda a: 1.0 / a, None),
    "log2": (np.log2, lambda a: 1.0 / (a * math.log(2.0)), None),
    "log10": (np.log10, lambda a: 1.0 / (a * math.log(10.0)), None),
    "log1p": (np.log1p, lambda a: 1.0 / (1.0 + a), None),
    "sqrt": (np.sqrt, lambda a: 0.5 / math.sqrt(a), None),
    "cbrt": (np.cbrt, lambda a: (1.0 / 3.0) * a ** (-2.0 / 3.0), None),
    "square": (np.square, lambda a: 2.0 * a, None),
    "abs": (np.abs, np.sign, abs),
    "sign": (np.sign, lambda a: 0.0, abs),
    "floor": (np.floor, lambda a: 0.0, _nearest_int_dist),
    "ceil": (np.ceil, lambda a: 0.0, _nearest_int_dist),
    "erf": (sp.erf, lambda a: 2.0 / math.sqrt(math.pi) * math.exp(-a * a), None),
    "erfc": (sp.erfc, lambda a: -2.0 / math.sqrt(math.pi) * math.exp(-a * a), None),
    "sigmoid": (sp.expit, lambda a: sp.expit(a) * (1.0 - sp.expit(a)), None),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: float(a > 0), abs),
    "softplus": (lambda a: np.logaddexp(0.0, a), sp.expit, None),
    # the special-function rows (fd.special)
    "gammaln": (sp.gammaln, sp.digamma, None),
    "digamma": (sp.digamma, lambda a: sp.polygamma(1, a), None),
    "gamma": (sp.gamma, lambda a: sp.gamma(a) * sp.digamma(a), None),
    "gammasgn": (sp.gammasgn, lambda a: 0.0, None),
    "erfinv": (sp.erfinv, lambda a: math.sqrt(math.pi) / 2 * math.exp(sp.erfinv(a) ** 2), None),
    "erfcx": (sp.erfcx, lambda a: 2 * a * sp.erfcx(a) - 2 / math.sqrt(math.pi), None),
    "ndtr": (sp.ndtr, lambda a: math.exp(-a * a / 2) / math.sqrt(2 * math.pi), None),
    "log_ndtr": (sp.log_ndtr,
                 lambda a: math.exp(-a * a / 2) / math.sqrt(2 * math.pi) / sp.ndtr(a), None),
    "ndtri": (sp.ndtri, lambda a: math.sqrt(2 * math.pi) * math.exp(sp.ndtri(a) ** 2 / 2), None),
    "logit": (sp.logit, lambda a: 1.0 / (a * (1.0 - a)), None),
    "entr": (sp.entr, lambda a: -1.0 - math.log(a), None),
    # I0(+-inf) = inf, I1(+-inf) = +-inf (SciPy gives nan)
    "i0": (lambda a: np.where(np.isinf(a), np.inf, sp.i0(a)), sp.i1, None),
    "i0e": (sp.i0e, lambda a: sp.i1e(a) - np.sign(a) * sp.i0e(a), abs),
    "i1": (lambda a: np.where(np.isinf(a), a, sp.i1(a)), lambda a: sp.i0(a) - sp.i1(a) / a, None),
    "i1e": (sp.i1e, lambda a: sp.i0e(a) - sp.i1e(a) / a - np.sign(a) * sp.i1e(a), None),
}


def _atan2_kink(a, b):
    # atan2 jumps by 2*pi across the negative b axis and is singular at the origin
    return min(math.hypot(a, b), abs(a) if b < 0 else math.inf)


def _mod_kink(a, b):
    return abs(b) * _nearest_int_dist(a / b)


BINARY_EXPECT = {
    "add": (np.add, lambda a, b: (1.0, 1.0), None),
    "subtract": (np.subtract, lambda a, b: (1.0, -1.0), None),
    "multiply": (np.multiply, lambda a, b: (b, a), None),
    "divide": (np.divide, lambda a, b: (1.0 / b, -a / (b * b)), None),
    "power": (np.power, lambda a, b: (b * a ** (b - 1.0), a ** b * math.log(a)), None),
    "arctan2": (np.arctan2,
                lambda a, b: (b / (a * a + b * b), -a / (a * a + b * b)), _atan2_kink),
    "hypot": (np.hypot,
              lambda a, b: (a / math.hypot(a, b), b / math.hypot(a, b)),
              lambda a, b: math.hypot(a, b)),
    "maximum": (np.maximum, lambda a, b: (float(a > b), float(b > a)),
                lambda a, b: abs(a - b)),
    "minimum": (np.minimum, lambda a, b: (float(a < b), float(b < a)),
                lambda a, b: abs(a - b)),
    "mod": (np.mod, lambda a, b: (1.0, -math.floor(a / b)), _mod_kink),
    "floor_divide": (np.floor_divide, lambda a, b: (0.0, 0.0), _mod_kink),
    "polygamma": (lambda a, b: sp.polygamma(np.round(a), b),
                  lambda a, b: (0.0, sp.polygamma(np.round(a) + 1, b)),
                  lambda a, b: abs(abs(a - round(a)) - 0.5)),
    "xlogy": (sp.xlogy, lambda a, b: (math.log(b), a / b), None),
    "xlog1py": (sp.xlog1py, lambda a, b: (math.log1p(b), a / (1 + b)), None),
}

# Python operators that record the same ops as the public functions.
OPERATORS = {
    "add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
    "divide": operator.truediv, "power": operator.pow, "mod": operator.mod,
    "floor_divide": operator.floordiv,
}
UNARY_OPERATORS = {"negative": operator.neg, "abs": abs}

UNARY_ROWS = [r for r in OP_INFO if r[2] == 1]
BINARY_ROWS = [r for r in OP_INFO if r[2] == 2]
N_SAMPLES = 12
KINK_MARGIN = 1e-2
H = 1e-4          # finite-difference step (relative to max(1, |x|))


def _ids(rows):
    return [r[1] for r in rows]


def _close(got, want, rtol):
    """|got - want| <= rtol * max(1, |want|), with inf/nan matched exactly."""
    got, want = float(got), float(want)
    if math.isnan(want) or math.isinf(want):
        return got == want or (math.isnan(got) and math.isnan(want))
    return abs(got - want) <= rtol * max(1.0, abs(want))


def _diff(fn, x):
    """Fourth-order central difference of fn at x (truncation error ~ h**4)."""
    h = H * max(1.0, abs(x))
    return (-fn(x + 2 * h) + 8 * fn(x + h) - 8 * fn(x - h) + fn(x - 2 * h)) / (12 * h)


def _samples(domains, kink, seed):
    """N_SAMPLES points from the row's test domain, away from non-smooth points."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < N_SAMPLES:
        p = tuple(float(rng.uniform(lo, hi)) for lo, hi in domains)
        if kink is None or kink(*p) > KINK_MARGIN:
            out.append(p)
    return out


def _ev(code, x, y=0.0):
    return _tape._test_eval(code, x, y)


# ----------------------------------------------------------------------------------
# The table itself

def test_op_info_matches_the_c_table_in_order():
    """Every non-leaf op code of the C table has exactly one OP_INFO row, in order:
    a unary row is one code, a binary row its code and the C1, C0 codes after it."""
    table = _tape._test_op_table()
    assert [c for c, _, _ in table] == list(range(len(table)))
    nonleaf = [(c, name, kind) for c, name, kind in table if kind != KIND_LEAF]
    expected = []
    for code, name, arity, domains in OP_INFO:
        assert len(domains) == arity
        if arity == 1:
            expected.append((code, name, KIND_UNARY))
        else:
            assert arity == 2
            expected += [(code, name, KIND_BINARY), (code + 1, name, KIND_CONST),
                         (code + 2, name, KIND_CONST)]
    assert nonleaf == expected
    assert len({r[1] for r in OP_INFO}) == len(OP_INFO)        # names unique
    leaves = [name for _, name, kind in table if kind == KIND_LEAF]
    assert leaves == ["var", "param", "const", "block"]


def test_every_op_has_expectations():
    names = [r[1] for r in OP_INFO]
    assert sorted(r[1] for r in UNARY_ROWS) == sorted(UNARY_EXPECT)
    assert sorted(r[1] for r in BINARY_ROWS) == sorted(BINARY_EXPECT)
    for name in names:
        assert callable(getattr(fd, name, None) or getattr(_tape, name)), name


def test_unknown_op_code_gives_nan_not_a_crash():
    n = len(_tape._test_op_table())
    for code in (n, n + 1, 255):
        r = _ev(code, 1.0, 2.0)
        assert math.isnan(r[0]) and r[1:] == (0.0, 0.0, 0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------------
# Unary primitives

@pytest.mark.parametrize("row", UNARY_ROWS, ids=_ids(UNARY_ROWS))
def test_unary_value_and_first_derivative(row):
    code, name, _, ((lo, hi),) = row
    value, deriv, kink = UNARY_EXPECT[name]
    for (a,) in _samples([(lo, hi)], kink, code):
        r, dx, dy, dxx, dxy, dyy = _ev(code, a)
        assert _close(r, value(a), 1e-13), (name, a, r)
        assert _close(dx, deriv(a), 1e-12), (name, a, dx)
        assert dy == 0.0 and dxy == 0.0 and dyy == 0.0
        fdiff = _diff(lambda t: _ev(code, t)[0], a)
        assert _close(dx, fdiff, 1e-7), (name, a, dx, fdiff)


@pytest.mark.parametrize("row", UNARY_ROWS, ids=_ids(UNARY_ROWS))
def test_unary_second_derivative(row):
    code, name, _, ((lo, hi),) = row
    _, _, kink = UNARY_EXPECT[name]
    for (a,) in _samples([(lo, hi)], kink, 1000 + code):
        dxx = _ev(code, a)[3]
        fdiff = _diff(lambda t: _ev(code, t)[1], a)
        assert _close(dxx, fdiff, 1e-6), (name, a, dxx, fdiff)


@pytest.mark.parametrize("row", UNARY_ROWS, ids=_ids(UNARY_ROWS))
def test_unary_public_function_and_tape(row):
    """fd.<name> on floats, arrays and Vars; the recorded op and its gradient."""
    code, name, _, ((lo, hi),) = row
    fn = getattr(fd, name, None) or getattr(_tape, name)
    value, deriv, kink = UNARY_EXPECT[name]
    pts = [p[0] for p in _samples([(lo, hi)], kink, 2000 + code)]
    for a in pts:
        out = fn(a)
        assert type(out) is float and _close(out, value(a), 1e-13)
    arr = np.array(pts).reshape(3, 4)
    out = fn(arr)
    assert isinstance(out, np.ndarray) and out.shape == (3, 4)
    np.testing.assert_allclose(out, value(arr), rtol=1e-13, atol=1e-13)
    ops = [fn] + ([UNARY_OPERATORS[name]] if name in UNARY_OPERATORS else [])
    for op in ops:
        for a in pts[:4]:
            with fd.Tape() as tape:
                x = tape.variable(a)
                y = op(x)
            assert type(y) is fd.Var and _close(y.value, value(a), 1e-13)
            assert _tape._test_slot(y) == len(tape)
            assert tape._slot_arrays()[0][len(tape)] == code
            assert _close(tape.gradient(y, x), deriv(a), 1e-12)
        # elementwise on an array Var: one op per element
        with fd.Tape() as tape:
            x = tape.variable(arr)
            y = op(x)
            s = fd.sum(y)
        assert y.shape == (3, 4)
        np.testing.assert_allclose(y.value, value(arr), rtol=1e-13, atol=1e-13)
        want = np.vectorize(deriv)(arr)
        np.testing.assert_allclose(tape.gradient(s, x), want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------
# Binary primitives and their constant-operand forms

@pytest.mark.parametrize("row", BINARY_ROWS, ids=_ids(BINARY_ROWS))
def test_binary_value_and_first_partials(row):
    code, name, _, doms = row
    value, partials, kink = BINARY_EXPECT[name]
    for a, b in _samples(doms, kink, code):
        r, dx, dy, _, _, _ = _ev(code, a, b)
        wa, wb = partials(a, b)
        assert _close(r, value(a, b), 1e-13), (name, a, b, r)
        assert _close(dx, wa, 1e-12), (name, a, b, dx, wa)
        assert _close(dy, wb, 1e-12), (name, a, b, dy, wb)
        fa = _diff(lambda t: _ev(code, t, b)[0], a)
        fb = _diff(lambda t: _ev(code, a, t)[0], b)
        assert _close(dx, fa, 1e-7), (name, a, b, dx, fa)
        assert _close(dy, fb, 1e-7), (name, a, b, dy, fb)


@pytest.mark.parametrize("row", BINARY_ROWS, ids=_ids(BINARY_ROWS))
def test_binary_second_partials(row):
    code, name, _, doms = row
    _, _, kink = BINARY_EXPECT[name]
    for a, b in _samples(doms, kink, 1000 + code):
        _, _, _, dxx, dxy, dyy = _ev(code, a, b)
        assert _close(dxx, _diff(lambda t: _ev(code, t, b)[1], a), 1e-6), (name, a, b)
        assert _close(dxy, _diff(lambda t: _ev(code, a, t)[1], b), 1e-6), (name, a, b)
        assert _close(dxy, _diff(lambda t: _ev(code, t, b)[2], a), 1e-6), (name, a, b)
        assert _close(dyy, _diff(lambda t: _ev(code, a, t)[2], b), 1e-6), (name, a, b)


@pytest.mark.parametrize("row", BINARY_ROWS, ids=_ids(BINARY_ROWS))
def test_constant_operand_forms_in_the_table(row):
    """NAME_C1 (var op c) and NAME_C0 (c op var): variable in x, constant in y,
    *dy echoes the constant (it is stored in the tape's db field)."""
    code, name, _, doms = row
    _, _, kink = BINARY_EXPECT[name]
    for a, b in _samples(doms, kink, 3000 + code):
        r, da, db, daa, dab, dbb = _ev(code, a, b)
        r1, d1, c1, dd1, z1, z2 = _ev(code + 1, a, b)     # a variable, b constant
        assert (r1, d1, c1, dd1, z1, z2) == (r, da, b, daa, 0.0, 0.0)
        r0, d0, c0, dd0, z1, z2 = _ev(code + 2, b, a)     # b variable, a constant
        assert (r0, d0, c0, dd0, z1, z2) == (r, db, a, dbb, 0.0, 0.0)


@pytest.mark.parametrize("row", BINARY_ROWS, ids=_ids(BINARY_ROWS))
def test_binary_recorded_through_vars(row):
    """Var op Var, Var op float (C1) and float op Var (C0), through fd.<name> and the
    Python operator, recorded on a tape and differentiated by tape.gradient."""
    code, name, _, doms = row
    fn = getattr(fd, name, None) or getattr(_tape, name)
    value, partials, kink = BINARY_EXPECT[name]
    funcs = [fn] + ([OPERATORS[name]] if name in OPERATORS else [])
    for a, b in _samples(doms, kink, 4000 + code)[:4]:
        assert _close(fn(a, b), value(a, b), 1e-13)
        wa, wb = partials(a, b)
        for f in funcs:
            with fd.Tape() as tape:
                x = tape.variable(a)
                y = tape.variable(b)
                both = f(x, y)
                c1 = f(x, b)
                c0 = f(a, y)
            ops = tape._slot_arrays()[0]
            if not (f is operator.pow and b == 2):
                assert ops[_tape._test_slot(both)] == code
                assert ops[_tape._test_slot(c1)] == code + 1
            assert ops[_tape._test_slot(c0)] == code + 2
            for v in (both, c1, c0):
                assert _close(v.value, value(a, b), 1e-13), (name, f, a, b)
            gx, gy = tape.gradient(both, [x, y])
            assert _close(gx, wa, 1e-12) and _close(gy, wb, 1e-12), (name, a, b)
            assert tape.gradient(c1, [x, y]) == [pytest.approx(wa, rel=1e-12), 0.0]
            assert tape.gradient(c0, [x, y]) == [0.0, pytest.approx(wb, rel=1e-12)]
            # an int and a bool constant are converted to float
            with fd.Tape() as tape:
                x = tape.variable(a)
                yi = f(x, 2)
                yb = f(x, True)
            assert _close(yi.value, value(a, 2.0), 1e-13)
            assert _close(yb.value, value(a, 1.0), 1e-13)
            assert _close(tape.gradient(yi, x), partials(a, 2.0)[0], 1e-12)
            assert _close(tape.gradient(yb, x), partials(a, 1.0)[0], 1e-12)


@pytest.mark.parametrize("row", BINARY_ROWS, ids=_ids(BINARY_ROWS))
def test_binary_broadcasting_over_arrays(row):
    code, name, _, doms = row
    fn = getattr(fd, name, None) or getattr(_tape, name)
    value, partials, kink = BINARY_EXPECT[name]
    pts = _samples(doms, kink, 5000 + code)[:6]
    a = np.array([p[0] for p in pts]).reshape(2, 3)
    b = np.array([p[1] for p in pts[:3]])           # broadcast along axis 0
    np.testing.assert_allclose(fn(a, b), value(a, b), rtol=1e-13, atol=1e-13)
    with fd.Tape() as tape:
        x = tape.variable(a)
        y = tape.variable(b)
        s = fd.sum(fn(x, y))
    gx, gy = tape.gradient(s, [x, y])
    pa = np.vectorize(lambda u, v: partials(u, v)[0])(a, b)
    pb = np.vectorize(lambda u, v: partials(u, v)[1])(a, b)
    np.testing.assert_allclose(gx, pa, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gy, pb.sum(axis=0), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------
# Special points (API.md section 6)

def _grad_at(fn, *args, argnum=0):
    return fd.grad(fn, argnums=argnum)(*args)


def test_abs_and_relu_have_zero_derivative_at_zero():
    assert _grad_at(fd.abs, 0.0) == 0.0
    assert _grad_at(abs, 0.0) == 0.0
    assert _grad_at(fd.relu, 0.0) == 0.0
    assert _grad_at(fd.abs, -0.0) == 0.0
    assert _grad_at(fd.relu, 1e-300) == 1.0
    assert _grad_at(fd.relu, -1e-300) == 0.0
    assert _grad_at(fd.sign, 0.0) == 0.0


@pytest.mark.parametrize("fn", [fd.maximum, fd.minimum])
def test_maximum_minimum_split_the_gradient_evenly_on_ties(fn):
    g = fd.grad(fn, argnums=(0, 1))(1.5, 1.5)
    assert g == (0.5, 0.5)
    # the same variable on both sides: the halves add up to 1
    assert _grad_at(lambda x: fn(x, x), 2.0) == 1.0
    # a tie with a constant: half of the gradient reaches the variable
    assert _grad_at(lambda x: fn(x, 1.5), 1.5) == 0.5
    assert _grad_at(lambda x: fn(1.5, x), 1.5) == 0.5
    assert fn(1.5, 1.5) == 1.5


def test_sqrt_derivative_at_zero_is_inf():
    assert _grad_at(fd.sqrt, 0.0) == math.inf
    assert _ev(_code("sqrt"), 0.0)[1] == math.inf


def test_domain_errors_follow_numpy_without_exceptions():
    assert math.isnan(fd.log(-1.0))
    assert fd.log(0.0) == -math.inf
    assert math.isnan(fd.sqrt(-1.0))
    assert math.isnan(fd.arcsin(2.0))
    assert math.isnan(fd.arccosh(0.5))
    assert fd.arctanh(1.0) == math.inf
    assert fd.log1p(-1.0) == -math.inf
    out = fd.log(np.array([-1.0, 0.0, 1.0]))
    assert math.isnan(out[0]) and out[1] == -math.inf and out[2] == 0.0
    with fd.Tape() as tape:
        x = tape.variable(-1.0)
        z = tape.variable(0.0)
        lx = fd.log(x)
        lz = fd.log(z)
    assert math.isnan(lx.value) and lz.value == -math.inf
    assert tape.gradient(lx, x) == -1.0
    assert tape.gradient(lz, z) == math.inf
    assert _grad_at(fd.log, 0.0) == math.inf


def _code(name):
    return next(r[0] for r in OP_INFO if r[1] == name)


def test_derivatives_at_domain_edges():
    """Where the derivative is infinite, it is inf with the right sign, not NaN."""
    cases = [
        ("arcsin", 1.0, math.pi / 2, math.inf), ("arcsin", -1.0, -math.pi / 2, math.inf),
        ("arccos", 1.0, 0.0, -math.inf), ("arccos", -1.0, math.pi, -math.inf),
        ("arccosh", 1.0, 0.0, math.inf), ("arctanh", 1.0, math.inf, math.inf),
        ("arctanh", -1.0, -math.inf, math.inf), ("log1p", -1.0, -math.inf, math.inf),
        ("sqrt", 0.0, 0.0, math.inf), ("cbrt", 0.0, 0.0, math.inf),
        ("log", 0.0, -math.inf, math.inf), ("log2", 0.0, -math.inf, math.inf),
        ("log10", 0.0, -math.inf, math.inf),
    ]
    for name, x, val, d in cases:
        r, dx = _ev(_code(name), x)[:2]
        assert _close(r, val, 1e-15) and dx == d, (name, x, r, dx)


def test_saturating_functions_keep_their_derivative_finite_and_exact():
    # sigmoid'(x) = sigmoid(x) sigmoid(-x) must not round to 0 early, or go NaN
    r, dx = _ev(_code("sigmoid"), 40.0)[:2]
    assert r == 1.0 and _close(dx, math.exp(-40.0), 1e-12)
    r, dx = _ev(_code("sigmoid"), -800.0)[:2]
    assert r == 0.0 and dx == 0.0
    r, dx = _ev(_code("softplus"), 800.0)[:2]
    assert r == 800.0 and dx == 1.0
    r, dx = _ev(_code("softplus"), -800.0)[:2]
    assert r == 0.0 and dx == 0.0
    assert _ev(_code("erfc"), 30.0)[:2] == (0.0, -0.0)
    assert _ev(_code("tanh"), 400.0)[:2] == (1.0, 0.0)


def test_power_edge_cases():
    power = _code("power")
    # x ** 0 is the constant 1, even at x = 0: value 1, derivative 0 in x
    assert _ev(power, 0.0, 0.0)[:2] == (1.0, 0.0)
    assert _grad_at(lambda x: x ** 0, 0.0) == 0.0
    assert _grad_at(lambda x: x ** 0.0, 0.0) == 0.0
    assert _grad_at(lambda x: fd.power(x, 0.0), 0.0) == 0.0
    # 0 ** y for y > 0: value 0, d/dy 0 (the x**y log x limit), d/dx as the formula
    r, dx, dy = _ev(power, 0.0, 2.5)[:3]
    assert (r, dx, dy) == (0.0, 0.0, 0.0)
    assert _grad_at(lambda y: 0.0 ** y, 2.5) == 0.0
    assert _grad_at(lambda y: fd.power(0.0, y), 2.5) == 0.0
    assert _ev(power, 0.0, 1.0)[:3] == (0.0, 1.0, 0.0)
    assert _ev(power, 0.0, 0.5)[1] == math.inf
    assert _grad_at(lambda x: x ** 3, 0.0) == 0.0
    assert _grad_at(lambda x: x ** 2, 0.0) == 0.0
    assert _grad_at(lambda x: x ** 1, 0.0) == 1.0
    # 0 ** negative: inf like NumPy, no exception
    assert _ev(power, 0.0, -1.0)[0] == math.inf
    assert fd.power(0.0, -1.0) == math.inf
    # negative base with an integer exponent: real, differentiable in x
    r, dx = _ev(power, -2.0, 3.0)[:2]
    assert (r, dx) == (-8.0, 12.0)
    assert _grad_at(lambda x: x ** 3.0, -2.0) == 12.0
    # negative base, fractional exponent: NaN like NumPy
    assert math.isnan(fd.power(-2.0, 0.5))
    # x ** 2 is recorded as square with the same value and derivative
    assert _grad_at(lambda x: x ** 2, -3.0) == -6.0
    assert _grad_at(lambda x: x ** 2.0, -3.0) == -6.0


def test_hypot_at_origin_has_zero_subgradient():
    assert fd.grad(fd.hypot, argnums=(0, 1))(0.0, 0.0) == (0.0, 0.0)


def test_mod_and_floor_divide_follow_python_signs():
    for a, b in [(5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (-5.5, -2.0), (6.0, 3.0), (-0.0, 2.0)]:
        assert _tape.mod(a, b) == a % b == np.mod(a, b)
        assert _tape.floor_divide(a, b) == a // b
        with fd.Tape() as tape:
            x = tape.variable(a)
            m = x % b
            q = x // b
        assert m.value == a % b and q.value == a // b
        assert tape.gradient(m, x) == 1.0 and tape.gradient(q, x) == 0.0
    assert math.isnan(_tape.mod(1.0, 0.0)) and _tape.floor_divide(1.0, 0.0) == math.inf


def test_nan_inputs_give_numpys_value():
    """NaN in: the value NumPy gives (NaN, except e.g. 1 ** nan == 1), no exception."""
    for code, name, arity, doms in OP_INFO:
        if arity == 1:
            cases = [(math.nan,), (math.inf,), (-math.inf,)]
            value = UNARY_EXPECT[name][0]
        else:
            cases = [(math.nan, 1.0), (1.0, math.nan), (math.nan, 0.0), (0.0, math.nan),
                     (math.nan, math.nan)]
            value = BINARY_EXPECT[name][0]
        for args in cases:
            with np.errstate(all="ignore"):
                want = float(value(*args))
            if name in ("gamma", "gammasgn") and args == (-math.inf,):
                # undefined (the sign alternates towards -inf): NaN, as SciPy >= 1.15
                # gives; SciPy 1.13 gave -inf and 1.0
                want = math.nan
            got = _ev(code, *args)[0] if arity == 2 else _ev(code, args[0])[0]
            assert _close(got, want, 0.0), (name, args, got, want)
