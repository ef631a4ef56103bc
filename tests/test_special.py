"""fd.special (API.md section 13): values against SciPy and mpmath, tails included;
first derivatives against closed forms and central differences; second derivatives
(fd.hessian, fd.hvp) against differences of gradients; scalars, arrays, Duals,
trace replay; SciPy's ufuncs on Vars; bad input.

Table-driven: each row of CASES is one function with its grid."""
import json
import math

import numpy as np
import pytest

import fastad as fd
from fastad import _trace_file as tfile
from fastad._trace import load_bytes

S = fd.special
sp = pytest.importorskip("scipy.special")
mp = pytest.importorskip("mpmath")


def _grid(lo, hi, n=41):
    return np.linspace(lo, hi, n)


# name -> (fd function of one array argument, scipy reference, grid, value rtol)
ONE = {
    "gammaln": (S.gammaln, sp.gammaln,
                np.r_[_grid(0.01, 60, 61), [1e-300, 1e-8, 1.0, 2.0, 1e5, 1e10], _grid(-7.7, -0.3, 12)],
                1e-13),
    "digamma": (S.digamma, sp.digamma,
                np.r_[_grid(0.01, 60, 61), _grid(1.3, 1.6, 31), [1e-300, 1e5, 1e10],
                      _grid(-7.7, -0.3, 12)], 1e-13),
    "psi": (S.psi, sp.psi, _grid(0.1, 10), 1e-13),
    "gamma": (S.gamma, sp.gamma, np.r_[_grid(0.05, 170, 61), _grid(-7.7, -0.3, 12)], 1e-13),
    "gammasgn": (S.gammasgn, sp.gammasgn, np.r_[_grid(-7.7, 5.3, 14)], 0.0),
    "erfinv": (S.erfinv, sp.erfinv,
               np.r_[_grid(-0.999, 0.999, 61), 1 - 10.0 ** -np.arange(1, 16),
                     -1 + 10.0 ** -np.arange(1, 16), [1e-300, 1e-12, 0.0]], 1e-14),
    "erfcinv": (S.erfcinv, sp.erfcinv,
                np.r_[_grid(0.001, 1.999, 61), 10.0 ** -np.arange(1, 300, 13)], 1e-14),
    "erfcx": (S.erfcx, sp.erfcx, np.r_[_grid(-26, 9, 61), _grid(9, 100, 21), [1e5]], 1e-13),
    "ndtr": (S.ndtr, sp.ndtr, _grid(-8, 8, 61), 1e-14),
    "log_ndtr": (S.log_ndtr, sp.log_ndtr, np.r_[_grid(-8, 5, 61), [-40.0, -1e3, -1e5]], 1e-13),
    "ndtri": (S.ndtri, sp.ndtri,
              np.r_[_grid(0.001, 0.999, 61), 10.0 ** -np.arange(1, 300, 13),
                    1 - 10.0 ** -np.arange(1, 16), [0.5, 0.5 + 1e-12]], 1e-14),
    "expit": (S.expit, sp.expit, _grid(-40, 40), 1e-15),
    "logit": (S.logit, sp.logit, np.r_[_grid(0.001, 0.999), [1e-300, 1 - 1e-16]], 1e-14),
    "log_expit": (S.log_expit, sp.log_expit, np.r_[_grid(-40, 40), [-800.0, 800.0]], 1e-14),
    "entr": (S.entr, sp.entr, np.r_[_grid(0.0, 10), [1e-300]], 1e-14),
    "i0": (S.i0, sp.i0, np.r_[_grid(-700, 700, 61), _grid(-25, 25, 51)], 1e-14),
    "i0e": (S.i0e, sp.i0e, np.r_[_grid(-900, 900, 61), _grid(-25, 25, 51), [1e6]], 1e-14),
    "i1": (S.i1, sp.i1, np.r_[_grid(-700, 700, 61), _grid(-25, 25, 51)], 1e-14),
    "i1e": (S.i1e, sp.i1e, np.r_[_grid(-900, 900, 61), _grid(-25, 25, 51), [1e6]], 1e-14),
}

# first derivatives in closed form (from scipy), on a smooth interior grid
D1 = {
    "gammaln": (lambda x: sp.digamma(x), _grid(0.2, 20, 9)),
    "digamma": (lambda x: sp.polygamma(1, x), np.r_[_grid(0.2, 20, 9), [-2.5]]),
    "gamma": (lambda x: sp.gamma(x) * sp.digamma(x), _grid(0.2, 6, 9)),
    "erfinv": (lambda y: math.sqrt(math.pi) / 2 * np.exp(sp.erfinv(y) ** 2), _grid(-0.99, 0.99, 9)),
    "erfcinv": (lambda y: -math.sqrt(math.pi) / 2 * np.exp(sp.erfcinv(y) ** 2), _grid(0.01, 1.99, 9)),
    "ndtr": (lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi), _grid(-6, 6, 9)),
    "log_ndtr": (lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi) / sp.ndtr(x), _grid(-20, 6, 9)),
    "ndtri": (lambda p: math.sqrt(2 * math.pi) * np.exp(sp.ndtri(p) ** 2 / 2), _grid(0.01, 0.99, 9)),
    "expit": (lambda x: sp.expit(x) * sp.expit(-x), _grid(-8, 8, 9)),
    "logit": (lambda x: 1 / (x * (1 - x)), _grid(0.05, 0.95, 9)),
    "log_expit": (lambda x: sp.expit(-x), _grid(-8, 8, 9)),
    "entr": (lambda x: -1 - np.log(x), _grid(0.1, 5, 9)),
    "i0": (lambda x: sp.i1(x), _grid(-30, 30, 9)),
    "i1": (lambda x: sp.i0(x) - sp.i1(x) / x, _grid(-30, 30, 8)),
    "i0e": (lambda x: sp.i1e(x) - np.sign(x) * sp.i0e(x), _grid(-30, 30, 8)),
    "i1e": (lambda x: sp.i0e(x) - sp.i1e(x) / x - np.sign(x) * sp.i1e(x), _grid(-30, 30, 8)),
}


def _rel(got, want):
    got, want = np.asarray(got, float), np.asarray(want, float)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(same, 0.0, np.abs(got - want) / np.maximum(np.abs(want), 1e-300))
    return np.nan_to_num(err, nan=np.inf)


@pytest.mark.parametrize("name", sorted(ONE))
def test_values_against_scipy(name):
    f, ref, xs, rtol = ONE[name]
    got = f(xs)
    assert type(got) is np.ndarray and got.shape == xs.shape
    err = _rel(got, ref(xs))
    assert err.max() <= rtol, (name, xs[err.argmax()], err.max())
    # floats give floats, equal to the array path
    for x in xs[::7]:
        v = f(float(x))
        assert type(v) is float
        assert v == got[list(xs).index(x)] or (math.isnan(v) and math.isnan(got[list(xs).index(x)]))


# tails where SciPy is less accurate than fastad: against mpmath at 60 digits
MP_TAILS = {
    "ndtr": (S.ndtr, lambda x: mp.ncdf(x), [-37.0, -30.5, -20.1, -12.3, -5.5, 5.5, 8.2]),
    "log_ndtr": (S.log_ndtr, lambda x: mp.log(mp.ncdf(x)),
                 [-40.0, -37.5, -20.1, -12.3, -1.5, 3.0, 5.5, 9.0, 13.0]),
    "ndtri": (S.ndtri, lambda p: -mp.sqrt(2) * mp.erfinv(1 - 2 * mp.mpf(p)),
              [1e-300, 1e-100, 1e-20, 1e-5, 0.5 - 1e-13, 1 - 1e-10, 1 - 2 ** -52]),
    "erfinv": (S.erfinv, lambda y: mp.erfinv(mp.mpf(y)),
               [1e-300, 1e-10, 0.3, 0.5, 1 - 1e-15, -(1 - 2 ** -53), 0.9999]),
    "erfcx": (S.erfcx, lambda x: mp.exp(mp.mpf(x) ** 2) * mp.erfc(x), [-20.0, -3.0, 0.3, 9.9, 10.1, 30.0, 1e4]),
    "digamma": (S.digamma, mp.digamma, [1.4616321449683622, 1.46163214, 1.4, 1.6, 1e-200]),
    "i0e": (S.i0e, lambda x: mp.besseli(0, x) * mp.exp(-abs(mp.mpf(x))), [19.9, 20.1, 50.0, 1e8]),
}


@pytest.mark.parametrize("name", sorted(MP_TAILS))
def test_tails_against_mpmath(name):
    f, truth, xs = MP_TAILS[name]
    with mp.workdps(400):
        for x in xs:
            want = float(truth(mp.mpf(x)))
            got = f(x)
            assert abs(got - want) <= 2e-15 * abs(want) + 1e-300, (name, x, got, want)


def test_tail_values():
    assert S.log_ndtr(-40.0) == pytest.approx(-804.6084420137538, rel=1e-15)
    assert S.xlogy(0.0, 0.0) == 0.0 and S.xlogy(0.0, -1.0) == 0.0
    assert math.isnan(S.xlogy(0.0, math.nan))
    assert S.xlog1py(0.0, -1.0) == 0.0
    assert S.ndtri(0.0) == -math.inf and S.ndtri(1.0) == math.inf
    assert math.isnan(S.ndtri(1.5)) and math.isnan(S.erfinv(-1.5))
    assert S.erfinv(1.0) == math.inf and S.erfinv(-1.0) == -math.inf
    assert S.entr(0.0) == 0.0 and S.entr(-1.0) == -math.inf
    assert S.digamma(0.0) == -math.inf and math.isnan(S.digamma(-2.0))
    assert S.ndtri(5e-324) == pytest.approx(sp.ndtri(5e-324), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_polygamma_values(n):
    xs = np.r_[_grid(0.05, 40, 41), _grid(-7.7, -0.3, 9)]
    got = S.polygamma(n, xs)
    assert _rel(got, sp.polygamma(n, xs)).max() <= 1e-13
    assert S.polygamma(0, 2.5) == S.digamma(2.5)
    # n broadcast as an integer array
    np.testing.assert_allclose(S.polygamma(np.array([1, 2]), 2.5), sp.polygamma([1, 2], 2.5),
                               rtol=1e-14)


def test_binary_values():
    x = np.array([0.0, -0.0, 1.5, -2.0, 3.0, 0.0, 0.0])
    y = np.array([0.5, 0.0, 2.0, 3.0, 0.0, -1.0, 7.0])
    np.testing.assert_array_equal(S.xlogy(x, y), sp.xlogy(x, y))
    y1 = np.array([0.5, -1.0, 2.0, 3.0, -0.5, -2.0, 7.0])
    np.testing.assert_allclose(S.xlog1py(x, y1), sp.xlog1py(x, y1), rtol=1e-15)
    a, b = _grid(0.1, 30, 13), _grid(0.2, 25, 13)[::-1]
    assert _rel(S.betaln(a, b), sp.betaln(a, b)).max() < 1e-13
    assert _rel(S.beta(a, b), sp.beta(a, b)).max() < 1e-13
    a, b = np.array([-0.5, -1.5, 2.5, -2.5]), np.array([2.0, 0.7, -0.3, 1.2])
    assert _rel(S.beta(a, b), sp.beta(a, b)).max() < 1e-13
    assert _rel(S.betaln(a, b), sp.betaln(a, b)).max() < 1e-13


def _diff(f, x, h=1e-5):
    h = h * max(1.0, abs(x))
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


@pytest.mark.parametrize("name", sorted(D1))
def test_first_derivative(name):
    f = ONE[name][0]
    d1, xs = D1[name]
    g = fd.grad(lambda v: fd.sum(f(v)))(xs)
    np.testing.assert_allclose(g, d1(xs), rtol=1e-12)
    for x in xs[::3]:
        assert fd.grad(f)(float(x)) == pytest.approx(float(d1(x)), rel=1e-12)
        assert fd.derivative(f)(float(x)) == pytest.approx(float(d1(x)), rel=1e-12)
        assert _diff(f, float(x)) == pytest.approx(float(d1(x)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", sorted(D1))
def test_second_derivative(name):
    f = ONE[name][0]
    _, xs = D1[name]
    g = fd.grad(f)
    for x in xs[::2]:
        x = float(x)
        want = _diff(g, x)
        assert fd.hessian(f)(x) == pytest.approx(want, rel=1e-6, abs=1e-8), (name, x)
        assert fd.hvp(f)(x, 1.0) == pytest.approx(want, rel=1e-6, abs=1e-8)
    H = fd.hessian(lambda v: fd.sum(f(v)))(xs[:4])
    np.testing.assert_allclose(np.diag(H), [fd.hessian(f)(float(x)) for x in xs[:4]],
                               rtol=1e-13)


def test_tail_derivatives():
    # log_ndtr far left: d/dx ~ -x, d2/dx2 ~ -1, both finite
    g = fd.grad(S.log_ndtr)(-40.0)
    assert g == pytest.approx(40.02496883, rel=1e-9)
    h = fd.hessian(S.log_ndtr)(-40.0)
    with mp.workdps(60):
        f = lambda t: mp.log(mp.ncdf(t))
        assert h == pytest.approx(float(mp.diff(f, -40, 2)), rel=1e-12)
        assert fd.hessian(S.log_ndtr)(-1e4) == pytest.approx(
            float(mp.diff(f, -1e4, 2)), rel=1e-12)
    # xlogy at x = 0: value 0, gradient finite (JAX's convention)
    gx, gy = fd.grad(lambda x, y: S.xlogy(x, y), argnums=(0, 1))(0.0, 2.0)
    assert (gx, gy) == (math.log(2.0), 0.0)
    gx, gy = fd.grad(lambda x, y: S.xlog1py(x, y), argnums=(0, 1))(0.0, -0.5)
    assert (gx, gy) == (math.log1p(-0.5), 0.0)
    assert fd.grad(lambda y: S.xlogy(0.0, y))(0.0) == 0.0
    H = fd.hessian(lambda v: S.xlogy(v[0], v[1]))(np.array([1.5, 2.0]))
    np.testing.assert_allclose(H, [[0.0, 0.5], [0.5, -1.5 / 4]], rtol=1e-15)
    # ndtri near 0 and 1
    for p in (1e-300, 1e-20, 1 - 1e-12):
        want = math.sqrt(2 * math.pi) * math.exp(sp.ndtri(p) ** 2 / 2)
        assert fd.grad(S.ndtri)(p) == pytest.approx(want, rel=1e-12)
    # polygamma in x, to third order
    assert fd.grad(fd.grad(fd.grad(lambda x: S.polygamma(1, x))))(2.5) == pytest.approx(
        sp.polygamma(4, 2.5), rel=1e-12)


def test_binary_derivatives():
    for f, ref_grad in ((S.betaln, lambda a, b: (sp.digamma(a) - sp.digamma(a + b),
                                                 sp.digamma(b) - sp.digamma(a + b))),
                        (S.beta, lambda a, b: (sp.beta(a, b) * (sp.digamma(a) - sp.digamma(a + b)),
                                               sp.beta(a, b) * (sp.digamma(b) - sp.digamma(a + b))))):
        for a, b in ((0.5, 2.5), (3.0, 1.2), (10.0, 7.5)):
            got = fd.grad(f, argnums=(0, 1))(a, b)
            np.testing.assert_allclose(got, ref_grad(a, b), rtol=1e-12)
    g = fd.grad(lambda v: S.xlog1py(v[0], v[1]))(np.array([1.5, 0.5]))
    np.testing.assert_allclose(g, [math.log1p(0.5), 1.5 / 1.5], rtol=1e-15)


def test_reductions_have_scipys_signatures():
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.5]])
    for f, ref in ((S.logsumexp, sp.logsumexp), (S.softmax, sp.softmax),
                   (S.log_softmax, sp.log_softmax)):
        np.testing.assert_allclose(f(x), ref(x), rtol=1e-14)
        for ax in (0, 1, -1):
            np.testing.assert_allclose(f(x, axis=ax), ref(x, axis=ax), rtol=1e-14)
    np.testing.assert_allclose(S.logsumexp(x, axis=1, keepdims=True),
                               sp.logsumexp(x, axis=1, keepdims=True), rtol=1e-14)
    g = fd.grad(S.logsumexp)(x)
    np.testing.assert_allclose(g, sp.softmax(x), rtol=1e-14)
    g = fd.grad(lambda v: S.softmax(v)[0, 1])(x)
    s = sp.softmax(x)
    want = -s[0, 1] * s
    want[0, 1] += s[0, 1]
    np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-16)
    # b=: the weights (test_logsumexp_weights_b); ones are no weights at all
    np.testing.assert_allclose(S.logsumexp(x, b=np.ones(np.shape(x))), S.logsumexp(x),
                               rtol=1e-15)
    with pytest.raises(TypeError, match="return_sign"):
        S.logsumexp(x, return_sign=True)


def test_polygamma_refuses_bad_n():
    with pytest.raises(ValueError, match=r"polygamma: n must be a non-negative integer.*1\.5"):
        S.polygamma(1.5, 2.0)
    with pytest.raises(ValueError, match="n must be"):
        S.polygamma(-1, 2.0)
    with pytest.raises(ValueError, match="n must be"):
        S.polygamma(np.array([1, 2.5]), 2.0)
    with pytest.raises(TypeError, match="n must be a constant integer"):
        fd.grad(lambda n: S.polygamma(n, 2.0))(1.0)
    with pytest.raises(TypeError, match="n must be"):
        S.polygamma("1", 2.0)


ALL_UNARY = sorted(set(ONE) - {"psi"})
POINT = {"erfinv": 0.3, "erfcinv": 0.6, "ndtri": 0.3, "logit": 0.3, "entr": 0.7,
         "gammasgn": 1.5}


@pytest.mark.parametrize("name", ALL_UNARY)
def test_every_path_agrees(name):
    f = ONE[name][0]
    x0 = POINT.get(name, 1.3)
    xs = x0 + np.array([0.0, 0.05, -0.1, 0.12])
    v, g = fd.value_and_grad(lambda v: fd.sum(f(v)))(xs)
    np.testing.assert_allclose(v, np.sum(f(xs)), rtol=1e-14)
    # scalar Vars one by one, a list of them (object arrays), and a large array record
    np.testing.assert_allclose([fd.grad(f)(float(x)) for x in xs], g, rtol=1e-14)
    np.testing.assert_allclose(
        fd.grad(lambda v: fd.sum(fd.stack([f(e) for e in v])))(xs), g, rtol=1e-14)
    big = np.resize(xs, 300)
    gb = fd.grad(lambda v: fd.sum(f(v)))(big)
    np.testing.assert_allclose(gb, np.resize(g, 300), rtol=1e-14)
    # forward mode
    np.testing.assert_allclose(fd.jvp(lambda v: f(v), (xs,), (np.ones(4),))[1], g, rtol=1e-14)
    d = f(fd.Dual(x0, 1.0))
    assert d.value == pytest.approx(f(x0), rel=1e-15)
    # trace replay (C) at a new point equals eager
    tf = fd.trace(lambda v: fd.sum(f(v) * np.arange(1.0, 5.0)), xs)
    x1 = xs + 0.01
    ev, eg = fd.value_and_grad(lambda v: fd.sum(f(v) * np.arange(1.0, 5.0)))(x1)
    assert tf(x1) == pytest.approx(ev, rel=1e-14)
    np.testing.assert_allclose(tf.grad(x1), eg, rtol=1e-14)
    # and the trace survives a save/load round trip
    tf2 = load_bytes(tfile.dump_bytes(tf))
    assert tf2(x1) == pytest.approx(ev, rel=1e-14)


def test_binary_paths_agree():
    def f(v):
        return (S.xlogy(v[0], v[1]) + S.xlog1py(v[1], v[0]) + S.polygamma(2, v[0])
                + S.betaln(v[0], v[1]) + S.beta(v[1], v[0]))
    x = np.array([1.3, 0.7])
    tf = fd.trace(f, x)
    x1 = np.array([1.1, 0.9])
    assert tf(x1) == pytest.approx(f(x1), rel=1e-14)
    np.testing.assert_allclose(tf.grad(x1), fd.grad(f)(x1), rtol=1e-13)
    np.testing.assert_allclose(fd.hessian(f)(x1), fd.jacobian(fd.grad(f))(x1), rtol=1e-10)


def test_scipy_ufuncs_dispatch_on_vars():
    x = np.array([0.3, 0.6, 0.9])
    pairs = [(sp.gammaln, S.gammaln), (sp.digamma, S.digamma), (sp.psi, S.digamma),
             (sp.gamma, S.gamma), (sp.erfinv, S.erfinv), (sp.erfcinv, S.erfcinv),
             (sp.ndtr, S.ndtr), (sp.log_ndtr, S.log_ndtr), (sp.ndtri, S.ndtri),
             (sp.expit, S.expit), (sp.logit, S.logit), (sp.log_expit, S.log_expit),
             (sp.entr, S.entr), (sp.i0, S.i0), (sp.i0e, S.i0e), (sp.i1, S.i1),
             (sp.i1e, S.i1e), (sp.erfcx, S.erfcx), (sp.gammasgn, S.gammasgn)]
    for ref, f in pairs:
        g = fd.grad(lambda v: fd.sum(ref(v)))(x)           # an array Var
        np.testing.assert_allclose(g, fd.grad(lambda v: fd.sum(f(v)))(x), rtol=1e-15,
                                   err_msg=ref.__name__)
        gs = fd.grad(lambda v: ref(v))(0.6)                # a scalar Var
        assert gs == fd.grad(f)(0.6), ref.__name__
    for ref, f in ((sp.xlogy, S.xlogy), (sp.xlog1py, S.xlog1py), (sp.betaln, S.betaln),
                   (sp.beta, S.beta)):
        g = fd.grad(lambda v: ref(v[0], v[1]), )(np.array([1.5, 0.5]))
        np.testing.assert_allclose(g, fd.grad(lambda v: f(v[0], v[1]))(np.array([1.5, 0.5])),
                                   rtol=1e-15)


def test_scipy_is_not_imported_by_fastad():
    import subprocess
    import sys
    code = ("import sys, fastad as fd; fd.special.gammaln(2.0); "
            "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if 'scipy' in m)")
    subprocess.check_call([sys.executable, "-c", code])


def test_old_trace_files_are_renumbered():
    """A file written before the special-function rows (op table 1: binary codes 37
    and up) loads with its ops translated, never misread as the new rows."""
    def f(v):
        return fd.sum(fd.sin(v) * v + v / 3.0 - 2.0 ** v)
    x = np.array([0.5, 1.5])
    blob = tfile.dump_bytes(fd.trace(f, x))
    magic, version, flags = tfile.PREFIX.unpack_from(blob, 0)
    counts = list(tfile.HEADER.unpack_from(blob, 0)[3:])
    n = counts[0]
    off = tfile.HEADER.size
    codes = np.frombuffer(blob, dtype=np.uint8, count=n, offset=off).copy()
    here = tfile._op_table()
    old = tfile._expand(*tfile._TABLE_1)
    back = {(nm, k, i): c for c, (nm, k, i) in enumerate(_keyed(old))}
    to_old = np.array([back.get(key, 255) for key in _keyed(here)], dtype=np.uint8)
    assert (codes >= 37).any()   # binary ops present, which the new rows renumbered
    old_codes = to_old[codes]
    assert not np.array_equal(old_codes, codes)
    # rewrite the op section and the meta's ops table as table 1 numbered them
    meta_len = counts[7]
    sizes = [n, 4 * n, 4 * n, 8 * n, 8 * n]
    g = counts[1]
    sizes += [g, 4 * g, 4 * g, 8 * g, 8 * g, 4 * g, 8 * g, 8 * counts[4]]
    meta_off = off + sum(sizes)
    meta = json.loads(blob[meta_off:meta_off + meta_len])
    meta["ops"] = [[int(to_old[c]), nm, k] for c, nm, k in meta["ops"]]
    new_meta = json.dumps(meta).encode()
    counts[7] = len(new_meta)
    body = (tfile.HEADER.pack(magic, version, flags, *counts)[:tfile.HEADER.size]
            + old_codes.tobytes() + blob[off + n:meta_off] + new_meta
            + blob[meta_off + meta_len:-tfile.DIGEST_SIZE])
    forged = body + tfile._digest(body)
    tf = load_bytes(forged)
    x1 = np.array([0.7, 1.1])
    assert tf(x1) == pytest.approx(f(x1), rel=1e-15)
    # a file whose table is neither is refused with a TraceError naming the op
    meta["ops"] = [[int(c), "gammaln" if i == 0 else nm, k]
                   for i, (c, nm, k) in enumerate(meta["ops"])]
    new_meta = json.dumps(meta).encode()
    counts[7] = len(new_meta)
    body = (tfile.HEADER.pack(magic, version, flags, *counts)[:tfile.HEADER.size]
            + old_codes.tobytes() + blob[off + n:meta_off] + new_meta
            + blob[meta_off + meta_len:-tfile.DIGEST_SIZE])
    with pytest.raises(fd.TraceError, match="trace the function again"):
        load_bytes(body + tfile._digest(body))


def _keyed(table):
    seen, keys = {}, []
    for name, kind in table:
        k = seen.get(name, 0)
        seen[name] = k + 1
        keys.append((name, kind, k))
    return keys


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_weights_b(axis, keepdims):
    sp = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 4)), rng.uniform(0.1, 2.0, size=(4,))
    want = sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
    np.testing.assert_allclose(fd.special.logsumexp(a, axis=axis, b=b, keepdims=keepdims),
                               want, rtol=1e-14)
    with fd.Tape() as t:
        got = fd.special.logsumexp(t.variable(a), axis=axis, b=b, keepdims=keepdims)
        assert np.shape(got.value) == np.shape(want)
        np.testing.assert_allclose(got.value, want, rtol=1e-14)
    # differentiable in a and in b: d/db_j = exp(a_j) / sum(b exp(a)) summed over a's
    # rows for the broadcast b
    B = np.broadcast_to(b, a.shape).copy()
    ga, gb = fd.grad(lambda x, w: fd.sum(fd.special.logsumexp(x, axis=axis, b=w)),
                     argnums=(0, 1))(a, B)
    s = np.sum(B * np.exp(a), axis=axis, keepdims=True)
    np.testing.assert_allclose(ga, B * np.exp(a) / s, rtol=1e-12)
    np.testing.assert_allclose(gb, np.exp(a) / s, rtol=1e-12)
    with pytest.raises(TypeError, match="return_sign"):
        fd.special.logsumexp(a, b=b, return_sign=True)
