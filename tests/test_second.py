"""Second order on the tape: fd.hessian, fd.hvp and the sweeps of fastad._second.

Every primitive's second derivative is checked against a closed form written here,
independently of the op table (SECOND below must have a row for every op of
fastad._tape.OP_INFO), through fd.hvp / fd.hessian of the 1-D (or 2-D) function,
and through the constant-operand forms x op c and c op x.  Hessians of composite
functions are checked for symmetry and against finite differences of gradients.
"""
import math

import numpy as np
import pytest

import fastad as fd
from fastad import _second, _tape
from _record_paths import elementwise_records  # noqa: F401,E402  (fixture)

# sizes from RECORD_MIN_SIZE up test every op's record, elementwise ones too
pytestmark = pytest.mark.usefixtures("elementwise_records")

OP_INFO = _tape.OP_INFO
LN2, LN10 = math.log(2.0), math.log(10.0)


def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


# unary: name -> f''(a)
UNARY_SECOND = {
    "positive": lambda a: 0.0,
    "negative": lambda a: 0.0,
    "sin": lambda a: -math.sin(a),
    "cos": lambda a: -math.cos(a),
    "tan": lambda a: 2.0 * math.tan(a) / math.cos(a) ** 2,
    "arcsin": lambda a: a / (1.0 - a * a) ** 1.5,
    "arccos": lambda a: -a / (1.0 - a * a) ** 1.5,
    "arctan": lambda a: -2.0 * a / (1.0 + a * a) ** 2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": lambda a: -2.0 * math.tanh(a) / math.cosh(a) ** 2,
    "arcsinh": lambda a: -a / (a * a + 1.0) ** 1.5,
    "arccosh": lambda a: -a / (a * a - 1.0) ** 1.5,
    "arctanh": lambda a: 2.0 * a / (1.0 - a * a) ** 2,
    "exp": math.exp,
    "exp2": lambda a: 2.0 ** a * LN2 * LN2,
    "expm1": math.exp,
    "log": lambda a: -1.0 / (a * a),
    "log2": lambda a: -1.0 / (a * a * LN2),
    "log10": lambda a: -1.0 / (a * a * LN10),
    "log1p": lambda a: -1.0 / (1.0 + a) ** 2,
    "sqrt": lambda a: -0.25 * a ** -1.5,
    "cbrt": lambda a: -2.0 / 9.0 * a ** (-5.0 / 3.0),
    "square": lambda a: 2.0,
    "abs": lambda a: 0.0,
    "sign": lambda a: 0.0,
    "floor": lambda a: 0.0,
    "ceil": lambda a: 0.0,
    "erf": lambda a: -4.0 * a / math.sqrt(math.pi) * math.exp(-a * a),
    "erfc": lambda a: 4.0 * a / math.sqrt(math.pi) * math.exp(-a * a),
    "sigmoid": lambda a: _sig(a) * (1 - _sig(a)) * (1 - 2 * _sig(a)),
    "relu": lambda a: 0.0,
    "softplus": lambda a: _sig(a) * (1 - _sig(a)),
}


def _r2(a, b):
    return a * a + b * b


# the special-function rows (fd.special), by the identities of DLMF (5.15, 7.2, 10.29)
# with SciPy's functions for the values
def _special_second():
    import scipy.special as sp
    sq2pi = math.sqrt(2 * math.pi)

    def erfinv2(a):
        y = sp.erfinv(a)
        d = math.sqrt(math.pi) / 2 * math.exp(y * y)
        return 2 * y * d * d

    def erfcx2(a):
        f = sp.erfcx(a)
        return 2 * f + 2 * a * (2 * a * f - 2 / math.sqrt(math.pi))

    def log_ndtr2(a):
        r = math.exp(-a * a / 2) / sq2pi / sp.ndtr(a)
        return -a * r - r * r

    def ndtri2(a):
        y = sp.ndtri(a)
        d = sq2pi * math.exp(y * y / 2)
        return y * d * d

    def i1_2(a):
        return sp.i1(a) - sp.i0(a) / a + 2 * sp.i1(a) / (a * a)

    def i0e2(a):
        s = math.copysign(1.0, a)
        return math.exp(-abs(a)) * (2 * sp.i0(a) - sp.i1(a) / a - 2 * s * sp.i1(a))

    def i1e2(a):
        s = math.copysign(1.0, a)
        d1 = sp.i0(a) - sp.i1(a) / a
        return math.exp(-abs(a)) * (i1_2(a) - 2 * s * d1 + sp.i1(a))

    unary = {
        "gammaln": lambda a: sp.polygamma(1, a),
        "digamma": lambda a: sp.polygamma(2, a),
        "gamma": lambda a: sp.gamma(a) * (sp.digamma(a) ** 2 + sp.polygamma(1, a)),
        "gammasgn": lambda a: 0.0,
        "erfinv": erfinv2, "erfcx": erfcx2,
        "ndtr": lambda a: -a * math.exp(-a * a / 2) / sq2pi,
        "log_ndtr": log_ndtr2, "ndtri": ndtri2,
        "logit": lambda a: (2 * a - 1) / (a * a * (1 - a) ** 2),
        "entr": lambda a: -1.0 / a,
        "i0": lambda a: sp.i0(a) - sp.i1(a) / a, "i1": i1_2, "i0e": i0e2, "i1e": i1e2,
    }
    binary = {
        # polygamma(n, x): n a constant integer, so only d2/dx2
        "polygamma": lambda n, x: (0.0, 0.0, sp.polygamma(round(n) + 2, x)),
        "xlogy": lambda a, b: (0.0, 1.0 / b, -a / (b * b)),
        "xlog1py": lambda a, b: (0.0, 1.0 / (1.0 + b), -a / (1.0 + b) ** 2),
    }
    return unary, binary


_SU, _SB = _special_second()
UNARY_SECOND.update(_SU)


def _row_fn(name):
    """The row's function: fd's, else the raw op-table function (the special rows'
    public forms are fd.special's, which check their arguments first)."""
    return getattr(fd, name, None) or getattr(_tape, name)


# binary: name -> (f_aa, f_ab, f_bb)
BINARY_SECOND = {
    "add": lambda a, b: (0.0, 0.0, 0.0),
    "subtract": lambda a, b: (0.0, 0.0, 0.0),
    "multiply": lambda a, b: (0.0, 1.0, 0.0),
    "divide": lambda a, b: (0.0, -1.0 / b ** 2, 2.0 * a / b ** 3),
    "power": lambda a, b: (b * (b - 1) * a ** (b - 2), a ** (b - 1) * (1 + b * math.log(a)),
                           a ** b * math.log(a) ** 2),
    "arctan2": lambda a, b: (-2 * a * b / _r2(a, b) ** 2, (a * a - b * b) / _r2(a, b) ** 2,
                             2 * a * b / _r2(a, b) ** 2),
    "hypot": lambda a, b: (b * b / _r2(a, b) ** 1.5, -a * b / _r2(a, b) ** 1.5,
                           a * a / _r2(a, b) ** 1.5),
    "maximum": lambda a, b: (0.0, 0.0, 0.0),
    "minimum": lambda a, b: (0.0, 0.0, 0.0),
    "mod": lambda a, b: (0.0, 0.0, 0.0),
    "floor_divide": lambda a, b: (0.0, 0.0, 0.0),
}
BINARY_SECOND.update(_SB)

UNARY = [row for row in OP_INFO if row[2] == 1]
BINARY = [row for row in OP_INFO if row[2] == 2]


def _points(lo, hi, n, seed):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(lo, hi, n)
    # stay off the kinks of abs/sign/relu/floor/... (second derivative 0 either side)
    return [float(p) for p in pts if abs(p - round(p)) > 1e-3]


def test_every_op_has_a_closed_form():
    names = {row[1] for row in OP_INFO}
    assert names == set(UNARY_SECOND) | set(BINARY_SECOND)


@pytest.mark.parametrize("row", UNARY, ids=[r[1] for r in UNARY])
def test_unary_second_derivative(row):
    code, name, _, ((lo, hi),) = row
    f = _row_fn(name) if name not in ("positive", "negative") else (
        (lambda x: +x) if name == "positive" else (lambda x: -x))
    for a in _points(lo, hi, 7, code):
        want = UNARY_SECOND[name](a)
        assert fd.hvp(f)(a, 1.0) == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert fd.hvp(f)(a, 2.5) == pytest.approx(2.5 * want, rel=1e-12, abs=1e-12)
        assert fd.hessian(f)(a) == pytest.approx(want, rel=1e-12, abs=1e-12)
        # elementwise on an array: a diagonal Hessian
        x = np.array([a, a])
        H = fd.hessian(lambda v: fd.sum(f(v)))(x)
        np.testing.assert_allclose(H, np.diag([want, want]), rtol=1e-12, atol=1e-12)


_BINARY_FN = {"add": lambda x, y: x + y, "subtract": lambda x, y: x - y,
              "multiply": lambda x, y: x * y, "divide": lambda x, y: x / y,
              "mod": lambda x, y: x % y, "floor_divide": lambda x, y: x // y}


@pytest.mark.parametrize("row", BINARY, ids=[r[1] for r in BINARY])
def test_binary_second_derivatives(row):
    code, name, _, ((alo, ahi), (blo, bhi)) = row
    f = _BINARY_FN.get(name) or _row_fn(name)
    ops = [f] if name not in _BINARY_FN else [f, getattr(_tape, name)]
    for a, b in zip(_points(alo, ahi, 9, code), _points(blo, bhi, 9, code + 100)):
        if name in ("maximum", "minimum") and abs(a - b) < 1e-3:
            continue
        faa, fab, fbb = BINARY_SECOND[name](a, b)
        want = np.array([[faa, fab], [fab, fbb]])
        for op in ops:
            H = fd.hessian(lambda v: op(v[0], v[1]))(np.array([a, b]))
            np.testing.assert_allclose(H, want, rtol=1e-11, atol=1e-12)
            # the constant-operand forms: x op c (C1) and c op x (C0)
            assert fd.hvp(lambda x: op(x, b))(a, 1.0) == pytest.approx(faa, rel=1e-11,
                                                                         abs=1e-12)
            assert fd.hvp(lambda x: op(a, x))(b, 1.0) == pytest.approx(fbb, rel=1e-11,
                                                                         abs=1e-12)


def test_square_via_pow_matches():
    assert fd.hessian(lambda x: x ** 2 * x)(1.5) == pytest.approx(9.0)
    assert fd.hessian(lambda x: 3.0 ** x)(0.7) == pytest.approx(3.0 ** 0.7 * math.log(3) ** 2)


# ---------------------------------------------------------------------------------
# composite functions

A = np.random.default_rng(0).normal(size=(6, 4))


def _logsumexp_quad(x):
    z = fd.matmul(A, x)
    return fd.logsumexp(z) + 0.5 * fd.sum(x * x)


def _rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def _mixed(x):
    return fd.prod(fd.tanh(x) + 2.0) * fd.sqrt(1.0 + fd.sum(x ** 2)) + fd.arctan2(x[0], x[1]) \
        + fd.hypot(x[1], x[2]) / (1.5 + fd.sin(x[3]))


FUNCS = {"logsumexp_quad": _logsumexp_quad, "rosenbrock": _rosenbrock, "mixed": _mixed}


def _fd_hessian(f, x, h=1e-5):
    g = fd.grad(f)
    n = x.size
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        H[:, j] = (g(x + e) - g(x - e)) / (2 * h)
    return H


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_hessian_symmetric_and_matches_finite_differences(name):
    f = FUNCS[name]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.uniform(-1.0, 1.0, 4)
        H = fd.hessian(f)(x)
        assert H.shape == (4, 4)
        np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(H, _fd_hessian(f, x), rtol=1e-6, atol=1e-6)
        v = rng.normal(size=4)
        np.testing.assert_allclose(fd.hvp(f)(x, v), H @ v, rtol=1e-12, atol=1e-12)


def test_rosenbrock_closed_form_hessian():
    x = np.array([0.3, -0.4, 1.2, 0.8, -1.1])
    n = x.size
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        H[i + 1, i + 1] += 200
        H[i, i + 1] += -400 * x[i]
        H[i + 1, i] += -400 * x[i]
    np.testing.assert_allclose(fd.hessian(_rosenbrock)(x), H, rtol=1e-12, atol=1e-12)


def test_hessian_blocks_agree():
    """Several directions per pass, one per pass, and one hvp per column agree."""
    x = np.linspace(-0.8, 0.9, 7)
    with fd.Tape() as t:
        xv = t.variable(x)
        y = _mixed(xv[:4]) + fd.sum(fd.sin(xv) * fd.exp(xv[::-1]))
    ins, out = _second.var_slots(xv), int(_second.var_slots(y)[0])
    g1, H1 = _second.hessian_sweep(t, ins, out)
    g3, H3 = _second.hessian_sweep(t, ins, out, block=3)
    g7, H7 = _second.hessian_sweep(t, ins, out, block=1)
    cols = np.stack([_second.hvp_sweep(t, ins, out, e)[1][0] for e in np.eye(7)], axis=1)
    np.testing.assert_array_equal(H1, H3)
    np.testing.assert_array_equal(H1, H7)
    np.testing.assert_allclose(H1, cols, rtol=0, atol=0)
    np.testing.assert_array_equal(g1, t.gradient(y, xv))
    _, hv = _second.hvp_sweep(t, ins, out, np.eye(7)[:2])
    np.testing.assert_array_equal(hv, H1[:, :2].T)


def test_hessian_shapes():
    assert isinstance(fd.hessian(lambda x: x ** 3)(2.0), float)
    H = fd.hessian(lambda m: fd.sum(m ** 3))(np.ones((2, 3)))
    assert H.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(H.reshape(6, 6), 6.0 * np.eye(6))
    hv = fd.hvp(lambda m: fd.sum(m ** 3))(np.ones((2, 3)), np.full((2, 3), 2.0))
    assert hv.shape == (2, 3)
    np.testing.assert_allclose(hv, 12.0)
    # a list of numbers is an array
    np.testing.assert_allclose(fd.hessian(lambda v: v[0] * v[1])([1.0, 2.0]),
                               [[0.0, 1.0], [1.0, 0.0]])


def test_constant_and_linear_functions():
    assert fd.hessian(lambda x: 3.0)(1.0) == 0.0
    np.testing.assert_array_equal(fd.hessian(lambda x: 2.0 * fd.sum(x))(np.ones(3)),
                                  np.zeros((3, 3)))
    np.testing.assert_array_equal(fd.hvp(lambda x: 7.0)(np.ones(2), np.ones(2)), 0.0)


def test_extra_arguments_and_argnums():
    f = lambda x, c: c * fd.sum(x ** 3)
    np.testing.assert_allclose(fd.hessian(f)(np.ones(2), 2.0), 12.0 * np.eye(2))
    assert fd.hessian(f, argnums=1)(np.ones(2), 2.0) == 0.0
    # v comes last, after all of f's arguments (API: fd.hvp(f, argnums)(*args, v))
    np.testing.assert_allclose(fd.hvp(f)(np.ones(2), 2.0, np.ones(2)), [12.0, 12.0])
    assert fd.hvp(f, argnums=1)(np.ones(2), 2.0, 1.0) == 0.0


def test_absolute_zero_in_unselected_branch():
    # sqrt'(0) = inf and sqrt''(0) = -inf live in a branch multiplied by zero
    f = lambda x: fd.where(x[0] > 0, fd.sqrt(x[0]), 0.0) + x[1] ** 2 + 0.0 * fd.sqrt(x[0])
    H = fd.hessian(f)(np.array([0.0, 1.0]))
    assert not np.isnan(H).any()
    np.testing.assert_array_equal(H, [[0.0, 0.0], [0.0, 2.0]])


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="hessian: f must be callable"):
        fd.hessian(3)
    with pytest.raises(TypeError, match="hessian: argument 0"):
        fd.hessian(lambda x: x)("abc")
    with pytest.raises(TypeError, match="hessian: argument 0 must be a number or an array"):
        fd.hessian(lambda x: x)({"a": "b"})
    with pytest.raises(ValueError, match="scalar"):
        fd.hessian(lambda x: x * 2.0)(np.ones(2))
    with pytest.raises(ValueError, match="hvp: v must have the shape of x"):
        fd.hvp(lambda x: fd.sum(x))(np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="hvp: v"):
        fd.hvp(lambda x: fd.sum(x))(np.ones(2), "ab")
    with pytest.raises(TypeError, match="complex"):
        fd.hvp(lambda x: x)(1.0, 1j)


# ---------------------------------------------------------------------------------
# the record protocol: an array op that owns a block of FAD_BLOCK slots

class CubeRecord:
    """y = x ** 3 elementwise, as a NumPy-kernel record over a block of slots."""
    name = "cube"

    def __init__(self, base, src, x):
        self.base, self.src, self.size = base, src, x.size
        self._x = x

    def backward(self, adj):
        x = self._x
        adj[self.src:self.src + self.size] += 3 * x ** 2 * adj[self.base:self.base + self.size]

    def tangent(self, val, tan):
        x = val[self.src:self.src + self.size]
        tan[self.base:self.base + self.size] = 3 * x ** 2 * tan[self.src:self.src + self.size]

    def hvp(self, val, tan, adj, adj_dot):
        x = val[self.src:self.src + self.size]
        g = adj[self.base:self.base + self.size]
        gd = adj_dot[self.base:self.base + self.size]
        t = tan[self.src:self.src + self.size]
        adj_dot[self.src:self.src + self.size] += 3 * x ** 2 * gd + 6 * x * t * g


def _record_cube(tape, xv):
    base = _second._test_push_block(tape, xv.value ** 3)
    tape.records.append(CubeRecord(base, int(_second.var_slots(xv)[0]),
                                   np.array(xv.value).reshape(-1)))
    return _second._test_new_array_var(tape, base, xv.shape)


class _NoForward:
    name = "opaque"

    def __init__(self, base, src, size):
        self.base, self.src, self.size = base, src, size

    def backward(self, adj):
        adj[self.src:self.src + self.size] += adj[self.base:self.base + self.size]


def test_records_in_tangent_and_second_order_sweeps():
    x = np.array([0.4, -0.7, 1.1])

    def scalar_version(v):
        return fd.sum(fd.sin(v ** 3) * v) + v[0] * (v ** 3)[2]

    with fd.Tape() as t:
        xv = t.variable(x)
        c = _record_cube(t, xv)
        y = fd.sum(fd.sin(c) * xv) + xv[0] * c[2]
        y2 = fd.sin(c) * xv
    ins, out = _second.var_slots(xv), int(_second.var_slots(y)[0])
    g, H = _second.hessian_sweep(t, ins, out, block=2)
    np.testing.assert_allclose(g, fd.grad(scalar_version)(x), rtol=1e-13)
    np.testing.assert_allclose(H, fd.hessian(scalar_version)(x), rtol=1e-12, atol=1e-13)
    J = _second.jacobian_forward(t, ins, _second.var_slots(y2))
    Jr = _second.reverse_sweep(t, _second.var_slots(y2), ins, np.eye(3))
    np.testing.assert_allclose(J, Jr, rtol=1e-13)
    np.testing.assert_allclose(J, fd.jacobian(lambda v: fd.sin(v ** 3) * v)(x), rtol=1e-13)


def test_record_without_forward_rule_is_a_clear_error():
    with fd.Tape() as t:
        xv = t.variable(np.ones(2))
        base = _second._test_push_block(t, xv.value)
        t.records.append(_NoForward(base, int(_second.var_slots(xv)[0]), 2))
        y = fd.sum(fd.sin(_second._test_new_array_var(t, base, (2,))))
    ins, out = _second.var_slots(xv), int(_second.var_slots(y)[0])
    with pytest.raises(TypeError, match="'opaque'.*tangent"):
        _second.hvp_sweep(t, ins, out, np.ones(2))
    with pytest.raises(TypeError, match="'opaque'"):
        _second.tangent_sweep(t, ins, [out], np.ones(2))
    # reverse mode still works
    np.testing.assert_allclose(t.gradient(y, xv), np.cos(1.0))


def test_long_sweeps_release_the_gil_and_agree():
    # long enough that the C loops run without the GIL
    x = np.linspace(0.1, 1.0, 30000)
    f = lambda v: fd.sum(fd.sin(v) * fd.exp(0.1 * v))
    v = np.cos(np.arange(x.size))
    hv = fd.hvp(f)(x, v)
    want = (-np.sin(x) * np.exp(0.1 * x) + 0.2 * np.cos(x) * np.exp(0.1 * x)
            + 0.01 * np.sin(x) * np.exp(0.1 * x)) * v
    np.testing.assert_allclose(hv, want, rtol=1e-12, atol=1e-14)


def test_sweep_entry_points_validate_slots():
    with fd.Tape() as t:
        xv = t.variable(np.ones(2))
        y = fd.sum(xv * xv)
    with pytest.raises(ValueError, match="slot out of range"):
        _second.hvp_sweep(t, [1, 2], 10 ** 6, np.ones(2))
    with pytest.raises(ValueError, match=r"directions must have shape \(k, 2\)"):
        _second.tangent_sweep(t, [1, 2], [3], np.ones(3))


def test_record_curvature_ignores_a_constant_operands_partials():
    # x ** 3 on a large array (one elementwise record): pow's partial in the
    # constant exponent is r log(x), NaN for x < 0, and its tangent is zero; the
    # Hessian is 6x on the diagonal, not NaN (it was: 0 * NaN)
    from fastad import _arrays
    n = max(64, _arrays.RECORD_MIN_SIZE)
    x = -np.linspace(1.0, 2.0, n)
    H = fd.hessian(lambda v: fd.sum(v ** 3))(x)
    np.testing.assert_allclose(H, np.diag(6.0 * x), rtol=1e-14)
    v = np.cos(np.arange(n))
    np.testing.assert_allclose(fd.hvp(lambda v: fd.sum(v ** 3))(x, v), 6.0 * x * v,
                               rtol=1e-14)
    # the constant on the other side: 2 ** x, curvature ln(2)^2 2^x
    np.testing.assert_allclose(fd.hvp(lambda v: fd.sum(2.0 ** v))(x, v),
                               np.log(2.0) ** 2 * 2.0 ** x * v, rtol=1e-13)


# (shape of a, shape of b): a broadcast operand (a scalar, a one-element array, a
# trailing row, a column) sums the curvature over the elements it is broadcast to,
# once -- it was summed size-fold (fd.hessian of x[0] * x[1:] came out 24x too large
# at 24 elements, found by autograd's own test suite run through tools/outside_suite.py)
_LAYOUTS = [((), (6, 5)), ((6, 5), ()), ((1,), (30,)), ((5,), (6, 5)), ((6, 1), (6, 5)),
            ((6, 5), (6, 5)), ((1, 5), (6, 1))]


# the smooth ones: differences across the kinks of maximum, mod, ... say nothing
_SMOOTH_BINARY = [r for r in BINARY
                  if r[1] not in ("maximum", "minimum", "mod", "floor_divide")]


@pytest.mark.parametrize("layout", _LAYOUTS, ids=[str(l) for l in _LAYOUTS])
@pytest.mark.parametrize("row", _SMOOTH_BINARY, ids=[r[1] for r in _SMOOTH_BINARY])
def test_record_hessian_with_broadcast_operands(row, layout):
    from fastad import _arrays
    code, name, _, ((alo, ahi), (blo, bhi)) = row
    sa, sb = layout
    na, nb = int(np.prod(sa)), int(np.prod(sb))
    out = np.broadcast_shapes(sa, sb)
    assert int(np.prod(out)) >= _arrays.RECORD_MIN_SIZE      # one record, not slots
    rng = np.random.default_rng(code)
    u = rng.normal(size=out)
    op = _BINARY_FN.get(name) or _row_fn(name)

    def f(x):
        a = fd.reshape(x[:na], sa) if sa else x[0]
        b = fd.reshape(x[na:], sb) if sb else x[na]
        return fd.sum(op(a, b) * u)
    x0 = np.concatenate([rng.uniform(alo, ahi, na), rng.uniform(blo, bhi, nb)])
    H = fd.hessian(f)(x0)
    g, e = fd.grad(f), 1e-5
    num = np.array([(g(x0 + e * d) - g(x0 - e * d)) / (2 * e) for d in np.eye(x0.size)])
    np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-6 * np.abs(num).max())
    v = rng.normal(size=x0.size)
    np.testing.assert_allclose(fd.hvp(f)(x0, v), H @ v, rtol=1e-12, atol=1e-12)
