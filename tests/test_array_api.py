"""The array-API front ends (fastad._prims_array): signatures, errors, integer
results with guards, second derivatives (the registry rows test values and VJPs)."""
import numpy as np
import pytest

import fastad as fd


def test_unsupported_function_is_named_with_its_module():
    with fd.Tape() as t:
        v = t.variable(np.ones((3, 3)))
        with pytest.raises(TypeError, match=r"numpy\.linalg\.eig\b"):
            np.linalg.eig(v)


def test_argmax_is_an_integer_and_records_guards():
    with fd.Tape() as t:
        v = t.variable(np.array([0.1, 0.7, 0.3]))
        before = len(t.guards)
        i = np.argmax(v)
        assert i == 1 and isinstance(i, (int, np.integer))
        assert len(t.guards) > before
        assert np.array_equal(np.argsort(v), [0, 2, 1])


def _hessian_by_differences(f, x, h=1e-5):
    g = fd.grad(f)
    cols = [(g(x + h * e) - g(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    return np.array(cols)


@pytest.mark.parametrize("f", [
    lambda x: np.var(x), lambda x: np.std(x, ddof=1),
    lambda x: np.sum(np.cumsum(x) ** 3), lambda x: np.sum(np.diff(x) ** 2 * np.flip(x)[1:])])
def test_second_derivatives_against_differences(f):
    x = np.array([0.3, -0.2, 0.9, 0.5])
    np.testing.assert_allclose(fd.hessian(f)(x), _hessian_by_differences(f, x),
                               rtol=1e-5, atol=1e-6)


def test_the_guide_lists_every_front_end():
    import pathlib
    import re

    from fastad._registry import REGISTRY
    text = (pathlib.Path(__file__).parent.parent / "docs/guide/arrays.md").read_text()
    block = text.split("<!-- array-api-list -->")[1].split("<!-- /array-api-list -->")[0]
    listed = set(re.findall(r"`numpy\.(\w+)`", block))
    assert listed == {n for n, p in REGISTRY.items() if p.impl.__module__ in
                      ("fastad._prims_array", "fastad._prims_numpy_misc")}


def test_cumsum_is_one_linear_record_of_any_length():
    # 10^5 elements: an n x n matmul form would need 80 GB; the primitive's rules
    # are cumulative sums (the transpose reversed), O(n)
    x = np.linspace(0.0, 1.0, 100_000)
    v, g = fd.value_and_grad(lambda v: fd.sum(np.cumsum(v) ** 2))(x)
    c = np.cumsum(x)
    assert v == pytest.approx(np.sum(c ** 2), rel=1e-12)
    np.testing.assert_allclose(g, np.cumsum((2.0 * c)[::-1])[::-1], rtol=1e-12)
    t = fd.Tape()
    y = t.variable(np.arange(12.0).reshape(3, 4))
    assert len(t.records) == 0 and np.cumsum(y, axis=1).shape == (3, 4)
    assert len(t.records) == 1
    with pytest.raises(ValueError, match="numpy.cumsum: axis 2 is out of bounds"):
        np.cumsum(y, axis=2)


VAR_METHODS = {
    "max": lambda v: v.max(axis=1), "min": lambda v: v.min(),
    "prod": lambda v: v.prod(axis=0), "var": lambda v: v.var(axis=1, ddof=1),
    "std": lambda v: v.std(), "cumsum": lambda v: v.cumsum(axis=1),
    "ravel": lambda v: v.ravel(), "flatten": lambda v: v.flatten(),
    "squeeze": lambda v: v[None].squeeze(axis=0), "clip": lambda v: v.clip(0.0, 2.5),
    "copy": lambda v: v.copy(), "astype": lambda v: v.astype(np.float64),
}


@pytest.mark.parametrize("name", sorted(VAR_METHODS))
def test_var_methods_as_ndarray_methods(name):
    f = VAR_METHODS[name]
    x0 = np.array([[1.0, 3.0, 2.0], [0.5, -1.0, 4.0]])
    v = fd.Tape().variable(x0)
    np.testing.assert_allclose(f(v).value, f(x0), rtol=1e-15)
    g = fd.grad(lambda z: fd.sum(f(z) * np.cos(np.arange(f(x0).size)).reshape(
        np.shape(f(x0)))))(x0)
    w = np.cos(np.arange(f(x0).size)).reshape(np.shape(f(x0)))
    num = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        d = np.zeros_like(x0)
        d[i] = 1e-6
        num[i] = (np.sum(f(x0 + d) * w) - np.sum(f(x0 - d) * w)) / 2e-6
    np.testing.assert_allclose(g, num, atol=1e-7)


def test_var_integer_methods_dtype_and_astype():
    x0 = np.array([[1.0, 3.0, 2.0], [0.5, -1.0, 4.0]])
    v = fd.Tape().variable(x0)
    assert v.argmax() == 5 and list(v.argmin(axis=0)) == [1, 1, 0]
    assert v.dtype == np.float64
    with pytest.raises(TypeError, match=r"Var\.astype\(int64\)"):
        v.astype(np.int64)


def test_a_trace_through_argmax_and_argsort_retraces_where_the_index_changes():
    x0, x1 = np.array([1.0, 3.0, 2.0]), np.array([5.0, 3.0, 2.0])
    f = lambda v: v[int(np.argmax(v))] * 2.0            # noqa: E731
    with pytest.raises(fd.TraceError, match="guard failed"):
        fd.trace(f, x0)(x1)
    tf = fd.trace(f, x0, retrace=True)
    assert tf(x1) == 10.0 and list(tf.grad(x1)) == [2.0, 0.0, 0.0]
    g = lambda v: fd.sum(v[np.argsort(v)] * np.arange(3.0))   # noqa: E731
    tg = fd.trace(g, x0, retrace=True)
    for x in (x1, -x1, x0):
        v, gr = fd.value_and_grad(g)(x)
        assert tg(x) == v and np.array_equal(tg.grad(x), gr)


# ----------------------------------------------------------------------------------
# cumprod, rounding, fmod / fmax / fmin, nanmax / nanmin, real / imag

import sys  # noqa: E402
import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _numdiff import num_grad  # noqa: E402


def _check_grad_and_hessian(f, x, atol=1e-7):
    np.testing.assert_allclose(fd.grad(f)(x), num_grad(f, x), rtol=1e-6, atol=atol)
    flat = lambda z: f(z.reshape(x.shape))          # noqa: E731
    np.testing.assert_allclose(fd.hessian(flat)(x.ravel()),
                               _hessian_by_differences(flat, x.ravel()),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_cumprod_is_right_with_zeros_in_the_input(axis):
    x = np.array([[0.5, 0.0, 2.0, 0.0, -1.5], [1.2, -0.3, 0.0, 0.7, 2.0]])
    w = np.cos(np.arange(10.0))

    def f(v):
        return fd.sum(fd.reshape(np.cumprod(v, axis=axis), (-1,)) * w)
    _check_grad_and_hessian(f, x)
    # forward mode along a direction equals the reverse-mode gradient's projection
    t = np.sin(np.arange(10.0)).reshape(2, 5)
    _, jv = fd.jvp(f, (x,), (t,))
    assert jv == pytest.approx(np.sum(fd.grad(f)(x) * t), rel=1e-12)


def test_cumprod_is_one_record_and_replays():
    t = fd.Tape()
    y = t.variable(np.arange(12.0).reshape(3, 4))
    assert len(t.records) == 0 and np.cumprod(y, axis=1).shape == (3, 4)
    assert len(t.records) == 1
    with pytest.raises(ValueError, match=r"numpy\.cumprod: axis 2 is out of bounds"):
        np.cumprod(y, axis=2)
    f = lambda v: fd.sum(np.cumprod(v) ** 2)               # noqa: E731
    tf = fd.trace(f, np.array([1.0, 2.0, 0.5]))
    for z in (np.array([0.3, 0.0, -2.0]), np.array([1.5, -1.0, 2.0])):
        v, g = fd.value_and_grad(f)(z)
        assert tf(z) == v and np.array_equal(tf.grad(z), g)


@pytest.mark.parametrize("fn", [np.rint, np.trunc, lambda v: np.round(v, 1),
                                lambda v: np.around(v, -1), lambda v: np.round(v)])
def test_rounding_has_zero_derivatives_and_numpys_values(fn):
    x0 = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.26, -3.7, 14.0, 15.0])
    with fd.Tape() as t:
        v = t.variable(x0)
        np.testing.assert_array_equal(fn(v).value, fn(x0))
    f = lambda v: fd.sum(fn(v) * v)                     # noqa: E731
    np.testing.assert_array_equal(fd.grad(f)(x0), fn(x0))
    np.testing.assert_array_equal(fd.hessian(lambda v: fd.sum(fn(v) * v * v))(x0),
                                  np.diag(2 * fn(x0)))
    _, jv = fd.jvp(lambda v: fn(v), (x0,), (np.ones_like(x0),))
    np.testing.assert_array_equal(jv, np.zeros_like(x0))
    tf = fd.trace(f, x0)
    z = x0 * 1.37 - 0.2
    assert tf(z) == f(z) and np.array_equal(tf.grad(z), fn(z))


def test_round_refuses_a_non_integer_decimals_by_its_numpy_name():
    v = fd.Tape().variable(np.ones(2))
    with pytest.raises(TypeError, match=r"numpy\.round_?: decimals"):
        np.round(v, 1.5)


def test_fmod_values_signs_and_derivatives():
    a = np.array([5.3, -5.3, 5.3, -5.3, 0.7, 7.0])
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 2.5])
    with fd.Tape() as t:
        np.testing.assert_array_equal(np.fmod(t.variable(a), t.variable(b)).value,
                                      np.fmod(a, b))
    ga, gb = fd.grad(lambda x, y: fd.sum(np.fmod(x, y)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.ones(6))
    np.testing.assert_allclose(gb, -np.trunc(a / b))


@pytest.mark.parametrize("fn", [np.fmax, np.fmin])
def test_fmax_fmin_nan_semantics(fn):
    a = np.array([np.nan, 1.0, np.nan, -2.0])
    b = np.array([3.0, np.nan, np.nan, 0.5])
    with fd.Tape() as t:
        va, vb = t.variable(a), t.variable(b)
        np.testing.assert_array_equal(fn(va, vb).value, fn(a, b))
        np.testing.assert_array_equal(fn(va, 0.0).value, fn(a, 0.0))
    ga, gb = fd.grad(lambda x, y: fd.sum(fd.where(np.isnan(fn(a, b)), 0.0, fn(x, y))),
                     argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, [0.0, 1.0, 0.0, 0.0 if fn is np.fmax else 1.0])
    np.testing.assert_array_equal(gb, [1.0, 0.0, 0.0, 1.0 if fn is np.fmax else 0.0])


@pytest.mark.parametrize("fn", [np.nanmax, np.nanmin])
def test_nanmax_nanmin_skip_nans(fn):
    x = np.array([[np.nan, 1.0, 3.0], [2.0, np.nan, -1.0]])
    with fd.Tape() as t:
        v = t.variable(x)
        np.testing.assert_array_equal(fn(v).value, fn(x))
        np.testing.assert_array_equal(fn(v, axis=1).value, fn(x, axis=1))
        np.testing.assert_array_equal(fn(v, axis=0, keepdims=True).value,
                                      fn(x, axis=0, keepdims=True))
        with pytest.warns(RuntimeWarning, match="All-NaN"):
            assert np.isnan(fn(t.variable(np.array([np.nan, np.nan]))).value)
    g = fd.grad(lambda v: fn(v))(x)
    want = np.zeros_like(x)
    want[np.unravel_index(np.nanargmax(x) if fn is np.nanmax else np.nanargmin(x),
                          x.shape)] = 1.0
    np.testing.assert_array_equal(g, want)


def test_real_imag_conj_of_real_vars():
    x0 = np.array([1.0, -2.0, 0.5])
    with fd.Tape() as t:
        v = t.variable(x0)
        assert np.real(v) is v and np.conj(v).value.tolist() == x0.tolist()
        assert np.array_equal(np.imag(v), np.zeros(3)) and type(np.imag(v)) is np.ndarray
    assert np.array_equal(fd.grad(lambda v: fd.sum(np.real(v) * np.conj(v)))(x0), 2 * x0)


# ----------------------------------------------------------------------------------
# median / quantile / percentile, interp

@pytest.mark.parametrize("f", [
    lambda v: fd.sum(np.median(v, axis=0) ** 3),
    lambda v: np.median(v) ** 2 * fd.sum(v),
    lambda v: fd.sum(np.quantile(v, [0.1, 0.5, 0.83], axis=1) ** 2),
    lambda v: np.percentile(v, 37.0, method="hazen") * np.sum(v ** 2),
    lambda v: fd.sum(np.interp(fd.sin(v[0]), [-1.0, 0.0, 0.3, 1.0], v[1] ** 2))])
def test_order_statistics_and_interp_second_derivatives(f):
    x = np.array([[0.31, -0.52, 0.87, 0.05], [0.64, -0.2, 0.47, 1.1]])
    _check_grad_and_hessian(f, x)


def test_order_statistics_nans_and_errors():
    x = np.array([[1.0, np.nan, 3.0], [2.0, 0.5, -1.0]])
    v = fd.Tape().variable(x)
    for fn in (lambda a: np.median(a, axis=1), lambda a: np.quantile(a, [0.2, 0.7], axis=1)):
        np.testing.assert_array_equal(fn(v).value, fn(x))
    with pytest.raises(ValueError, match=r"numpy\.quantile: method 'bogus'"):
        np.quantile(v, 0.5, method="bogus")
    with pytest.raises(ValueError, match=r"numpy\.percentile: quantiles must be in"):
        np.percentile(v, 120.0)
    with pytest.raises(TypeError, match=r"numpy\.quantile: q must be a constant"):
        np.quantile(v, v[0, 0])
    with pytest.raises(TypeError, match=r"numpy\.interp: xp must be a constant"):
        np.interp(0.5, v[1], v[1])


def test_a_trace_through_median_and_interp_retraces_where_the_selection_changes():
    f = lambda v: np.median(v) * np.interp(v[0], [0.0, 1.0, 2.0], v[1:4])   # noqa: E731
    x0 = np.array([0.5, 1.0, 3.0, 2.0, 0.2])
    tf = fd.trace(f, x0, retrace=True)
    for z in (x0 * 1.1, np.array([1.5, 0.1, 4.0, -2.0, 3.0]), np.array([-0.5, 2.0, 1.0, 3.0, 0.0]),
              np.array([2.5, 2.0, 1.0, 3.0, 0.0])):
        v, g = fd.value_and_grad(f)(z)
        assert tf(z) == v and np.array_equal(tf.grad(z), g)
    with pytest.raises(fd.TraceError, match="guard failed"):
        fd.trace(f, x0)(np.array([1.5, 1.0, 3.0, 2.0, 0.2]))


# ----------------------------------------------------------------------------------
# convolve / correlate, pad, split / array_split

@pytest.mark.parametrize("fn", [np.convolve, np.correlate])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_correlate_every_size_and_mode(fn, mode):
    rng = np.random.default_rng(5)
    for n, m in [(6, 4), (4, 6), (5, 5), (3, 1), (1, 3), (7, 2), (2, 7), (4, 5)]:
        a, b = rng.normal(size=n), rng.normal(size=m)
        with fd.Tape() as t:
            va, vb = t.variable(a), t.variable(b)
            for x, y in ((va, vb), (a, vb), (va, b)):
                np.testing.assert_allclose(fn(x, y, mode).value, fn(a, b, mode),
                                           rtol=1e-12, atol=1e-14)
        w = rng.normal(size=fn(a, b, mode).shape)
        ga, gb = fd.grad(lambda x, y: fd.sum(fn(x, y, mode) * w), argnums=(0, 1))(a, b)
        np.testing.assert_allclose(ga, num_grad(lambda x: np.sum(fn(x, b, mode) * w), a),
                                   atol=1e-8)
        np.testing.assert_allclose(gb, num_grad(lambda y: np.sum(fn(a, y, mode) * w), b),
                                   atol=1e-8)


def test_convolve_hessian_and_errors():
    x = np.array([0.3, -0.7, 1.1, 0.4, 0.9])
    _check_grad_and_hessian(lambda v: fd.sum(np.convolve(v[:3], v[2:], "same") ** 2), x)
    v = fd.Tape().variable(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"numpy\.convolve: the operands must be 1-D"):
        np.convolve(v, np.ones(2))
    with pytest.raises(ValueError, match=r"numpy\.correlate: mode must be"):
        np.correlate(v[0], np.ones(2), "middle")


def test_pad_modes_and_errors():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    with fd.Tape() as t:
        v = t.variable(x)
        for kw in ({}, {"mode": "edge"}, {"mode": "reflect"}, {"mode": "symmetric"},
                   {"mode": "wrap"}, {"constant_values": (-1.0, 2.0)}):
            np.testing.assert_array_equal(np.pad(v, ((1, 2), (2, 1)), **kw).value,
                                          np.pad(x, ((1, 2), (2, 1)), **kw))
        with pytest.raises(ValueError, match=r"numpy\.pad: mode 'mean' is not supported"):
            np.pad(v, 1, mode="mean")
        with pytest.raises(ValueError, match=r"numpy\.pad: reflect_type='odd'"):
            np.pad(v, 1, mode="reflect", reflect_type="odd")
        with pytest.raises(TypeError, match=r"numpy\.pad: constant_values must be constants"):
            np.pad(v, 1, constant_values=v[0, 0])
    # edge padding: the edge elements' gradients count every copy
    g = fd.grad(lambda z: fd.sum(np.pad(z, 2, mode="edge")))(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(g, [3.0, 1.0, 3.0])
    _check_grad_and_hessian(lambda z: fd.sum(np.pad(z, (1, 2), mode="reflect") ** 3
                                             * np.arange(7.0)), np.array([0.2, -0.5, 0.9, 0.4]))


@pytest.mark.parametrize("fn,arg,axis", [(np.split, 2, 0), (np.split, [1, 4], 1),
                                         (np.array_split, 4, 1), (np.array_split, [2], 0)])
def test_split_returns_a_list_of_vars(fn, arg, axis):
    x = np.arange(24.0).reshape(4, 6) / 7.0
    with fd.Tape() as t:
        parts = fn(t.variable(x), arg, axis=axis)
    want = fn(x, arg, axis=axis)
    assert type(parts) is list and len(parts) == len(want)
    for p, w in zip(parts, want):
        assert type(p) is fd.Var
        np.testing.assert_array_equal(p.value, w)
    f = lambda z: sum(fd.sum(p ** 2) * (k + 1) for k, p in enumerate(fn(z, arg, axis=axis)))  # noqa: E731,E501
    _check_grad_and_hessian(f, x)
    assert [np.shape(p) for p in fn(x, arg, axis=axis)] == [w.shape for w in want]


def test_split_keeps_numpys_errors():
    v = fd.Tape().variable(np.ones(7))
    with pytest.raises(ValueError, match="equal division"):
        np.split(v, 3)
    assert [p.shape for p in np.array_split(v, 3)] == [(3,), (2,), (2,)]


# ----------------------------------------------------------------------------------
# einsum: '...', repeated indices, the sublist form

EINSUM_CASES = [
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...i,...i", [(2, 3), (3,)]),
    ("ii->", [(3, 3)]), ("ii->i", [(3, 3)]), ("iij->j", [(3, 3, 2)]), ("ii", [(4, 4)]),
    ("ij,jj->i", [(2, 3), (3, 3)]), ("i...,i...->...", [(3, 1, 2), (3, 4, 1)]),
    ("bii,bj->bij", [(2, 3, 3), (2, 4)]), ("...", [(2, 3)]), ("iji->j", [(3, 2, 3)])]


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_ellipsis_and_diagonals_values_and_derivatives(spec, shapes):
    rng = np.random.default_rng(11)
    ops = [rng.uniform(-1, 1, s) for s in shapes]
    with fd.Tape() as t:
        got = np.einsum(spec, *[t.variable(o) for o in ops])
    np.testing.assert_allclose(got.value, np.einsum(spec, *ops), rtol=1e-13, atol=1e-15)
    sizes = [o.size for o in ops]
    w = rng.uniform(-1, 1, np.shape(np.einsum(spec, *ops)))

    def f(z):
        parts, k = [], 0
        for o, n in zip(ops, sizes):
            parts.append(fd.reshape(z[k:k + n], o.shape) if type(z) is fd.Var
                         else z[k:k + n].reshape(o.shape))
            k += n
        # squared, so the Hessian has curvature beyond the multilinear cross terms
        return fd.sum(np.einsum(spec, *parts) ** 2 * w)
    _check_grad_and_hessian(f, np.concatenate([o.ravel() for o in ops]))


def test_einsum_sublist_form_and_trace_replay():
    rng = np.random.default_rng(12)
    a, b = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (4, 2))
    with fd.Tape() as t:
        va, vb = t.variable(a), t.variable(b)
        for args in ((va, [0, 1], vb, [1, 2], [0, 2]), (va, [0, 1], vb, [1, 2]),
                     (va, [Ellipsis, 1], b, [1, 2], [Ellipsis, 2]), (va, [0, 0 + 1], [1])):
            plain = [x.value if type(x) is fd.Var else x for x in args]
            np.testing.assert_allclose(np.einsum(*args).value, np.einsum(*plain), rtol=1e-13)
        sq = t.variable(rng.uniform(-1, 1, (3, 3)))
        np.testing.assert_allclose(np.einsum(sq, [0, 0]).value, np.trace(sq.value))
        with pytest.raises(ValueError, match=r"numpy\.einsum: a subscript in sublist form"):
            np.einsum(va, [0, "x"])
    f = lambda v: fd.sum(np.einsum("...ii->...i", fd.reshape(v, (2, 3, 3))) ** 2)  # noqa: E731
    x0 = rng.uniform(-1, 1, 18)
    tf = fd.trace(f, x0)
    z = rng.uniform(-1, 1, 18)
    assert tf(z) == f(z) and np.array_equal(tf.grad(z), fd.grad(f)(z))


# ----------------------------------------------------------------------------------
# nonzero, flatnonzero, argwhere, searchsorted: integers, with guards

def test_nonzero_family_are_integers_with_guards():
    x0 = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    with fd.Tape() as t:
        v = t.variable(x0)
        before = len(t.guards)
        nz = np.nonzero(v)
        assert len(t.guards) > before
        assert all(np.array_equal(a, b) for a, b in zip(nz, np.nonzero(x0)))
        assert np.array_equal(np.flatnonzero(v), np.flatnonzero(x0))
        assert np.array_equal(np.argwhere(v), np.argwhere(x0))
    f = lambda v: fd.sum(v[np.nonzero(v)] ** 2)          # noqa: E731
    with pytest.raises(fd.TraceError, match="guard failed"):
        fd.trace(f, x0)(np.ones((2, 3)))
    tf = fd.trace(f, x0, retrace=True)
    z = np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    assert tf(z) == 10.0 and np.array_equal(tf.grad(z), 2 * z)


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_on_vars_and_its_guards(side):
    xp = np.array([0.0, 1.0, 1.0, 2.5])
    v0 = np.array([-1.0, 1.0, 0.5, 3.0, 2.5])
    with fd.Tape() as t:
        a, v = t.variable(xp), t.variable(v0)
        for args in ((a, v), (xp, v), (a, v0), (a, 1.0)):
            want = np.searchsorted(xp, v0 if np.ndim(args[1]) else 1.0, side=side)
            assert np.array_equal(np.searchsorted(*args, side=side), want)
        perm = np.array([3, 1, 0, 2])
        assert np.array_equal(np.searchsorted(t.variable(xp[perm]), v, side, np.argsort(perm)),
                              np.searchsorted(xp, v0, side))
    f = lambda v: v[int(np.searchsorted(xp, v[0], side))] * 3.0   # noqa: E731
    x0 = np.array([0.5, 7.0, 8.0, 9.0, 10.0])
    with pytest.raises(fd.TraceError, match="guard failed"):
        fd.trace(f, x0)(np.array([2.0, 7.0, 8.0, 9.0, 10.0]))
    tf = fd.trace(f, x0, retrace=True)
    for z in (np.array([2.0, 7.0, 8.0, 9.0, 10.0]), np.array([1.0, 7.0, 8.0, 9.0, 10.0])):
        assert tf(z) == f(z) and np.array_equal(tf.grad(z), fd.grad(f)(z))


def test_var_round_method_and_python_round():
    x = np.array([0.4, 1.6, -2.5])
    # x.round() is np.round on the Var: NumPy's values, derivative zero
    g = fd.grad(lambda v: fd.sum(v.round() * v))(x)
    np.testing.assert_array_equal(g, np.round(x))
    np.testing.assert_array_equal(fd.grad(lambda v: fd.sum(v.round(1)))(x), 0.0)
    with fd.Tape() as t:
        v = t.variable(2.5)
        assert round(v) == 2 and type(round(v)) is int      # as round(2.5)
        r = round(v, 1)
        assert type(r) is fd.Var and r.value == 2.5
        with pytest.raises(TypeError, match="np.round"):
            round(t.variable(x))

    # under fd.trace, round(v) is an int whose guard holds while the rounding does
    def f(v):
        return v[1] * round(v[0] * 3)
    tf = fd.trace(f, x)
    assert tf(np.array([0.45, 2.0, 0.0])) == f(np.array([0.45, 2.0, 0.0]))
    with pytest.raises(fd.TraceError, match="guard"):
        tf(np.array([0.6, 1.6, 0.0]))


# ----------------------------------------------------------------------------------
# The everyday odds and ends (fastad._prims_numpy_misc)

@pytest.mark.parametrize("fn,shape,arg", [(np.vsplit, (4, 3), 2), (np.hsplit, (3, 4), 2),
                                          (np.dsplit, (2, 2, 4), np.array([1, 3])),
                                          (np.hsplit, (6,), 3)])
def test_vsplit_hsplit_dsplit_are_lists_of_vars(fn, shape, arg):
    x = np.random.default_rng(0).normal(size=shape)
    w = [np.random.default_rng(i).normal(size=p.shape) for i, p in enumerate(fn(x, arg))]

    def f(v):
        return sum(fd.sum(p * wi) for p, wi in zip(fn(v, arg), w))
    with fd.Tape() as t:
        parts = fn(t.variable(x), arg)
        assert all(type(p) is fd.Var for p in parts)
        for p, q in zip(parts, fn(x, arg)):
            np.testing.assert_array_equal(p.value, q)
    want = np.concatenate([wi.reshape(-1) for wi in w])
    got = fd.grad(f)(x)
    # each element's weight is the one of the piece it went to
    np.testing.assert_allclose(np.sort(got.ravel()), np.sort(want), rtol=0, atol=0)


def test_linspace_between_var_endpoints():
    a, b = 0.5, 2.0
    got = fd.jacobian(lambda e: np.linspace(e[0], e[1], 5))(np.array([a, b]))
    t = np.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(got, np.stack([1 - t, t], axis=1), rtol=1e-15, atol=1e-15)
    with fd.Tape() as tp:
        s, e = tp.variable(a), tp.variable(b)
        v = np.linspace(s, e, 7)
        np.testing.assert_allclose(v.value, np.linspace(a, b, 7), rtol=1e-15)
        assert v.value[-1] == b               # the last sample is stop itself
        out, step = np.linspace(s, e, 4, retstep=True)
        assert step.value == pytest.approx(0.5)
        m = np.linspace(s, e, 3, endpoint=False, axis=0)
        np.testing.assert_allclose(m.value, np.linspace(a, b, 3, endpoint=False))
    with pytest.raises(TypeError, match="dtype"):
        with fd.Tape() as tp:
            np.linspace(tp.variable(a), 1.0, 3, dtype=np.int64)


def test_nan_to_num_passes_finite_elements_and_guards_the_rest():
    x = np.array([0.5, np.nan, np.inf, -np.inf, -2.0])
    g = fd.grad(lambda v: fd.sum(np.nan_to_num(v, nan=1.0, posinf=9.0) * 3.0))(x)
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 0.0, 3.0])
    with fd.Tape() as t:
        np.testing.assert_array_equal(np.nan_to_num(t.variable(x), neginf=-5.0).value,
                                      np.nan_to_num(x, neginf=-5.0))
    tf = fd.trace(lambda v: fd.sum(np.nan_to_num(v)), x)
    assert tf(x) == np.sum(np.nan_to_num(x))
    with pytest.raises(fd.TraceError, match="guard"):
        tf(np.array([0.5, 1.0, np.inf, -np.inf, -2.0]))     # a NaN became finite


@pytest.mark.parametrize("args,kw", [((), {}), ((0.5,), {}), ((), {"edge_order": 2}),
                                     ((np.array([0.0, 0.4, 1.5, 2.0, 3.1, 3.2]),), {})])
def test_gradient_is_numpys_linear_map(args, kw):
    x = np.random.default_rng(1).normal(size=6)
    with fd.Tape() as t:
        np.testing.assert_allclose(np.gradient(t.variable(x), *args, **kw).value,
                                   np.gradient(x, *args, **kw), rtol=1e-13, atol=1e-14)
    J = fd.jacobian(lambda v: np.gradient(v, *args, **kw))(x)
    np.testing.assert_allclose(J, np.gradient(np.eye(6), *args, axis=0, **kw),
                               rtol=1e-13, atol=1e-14)
    X = np.random.default_rng(2).normal(size=(4, 5))
    with fd.Tape() as t:
        gx, gy = np.gradient(t.variable(X))
        wx, wy = np.gradient(X)
        np.testing.assert_allclose(gx.value, wx, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(gy.value, wy, rtol=1e-13, atol=1e-14)
    with pytest.raises(TypeError, match="spacing"):
        with fd.Tape() as t:
            np.gradient(t.variable(x), t.variable(0.5))


def test_select_flows_into_the_chosen_choice():
    x = np.array([-1.0, 0.5, 2.0])

    def f(v):
        return fd.sum(np.select([v < 0, v > 1], [v * 2.0, v ** 2], default=v * 10.0))
    np.testing.assert_allclose(fd.grad(f)(x), [2.0, 10.0, 4.0])
    assert f(x) == np.sum(np.select([x < 0, x > 1], [x * 2.0, x ** 2], x * 10.0))


def test_flips_rotations_degrees():
    x = np.random.default_rng(3).normal(size=(3, 4))
    for fn in (np.flipud, np.fliplr, np.rot90, lambda a: np.rot90(a, -1),
               lambda a: np.rollaxis(a, 1), np.degrees, np.radians, np.rad2deg,
               np.deg2rad, np.real_if_close, lambda a: np.append(a, a[:1], axis=0)):
        with fd.Tape() as t:
            np.testing.assert_allclose(fn(t.variable(x)).value, fn(x), rtol=1e-15)
        w = np.random.default_rng(4).normal(size=np.shape(fn(x)))
        J = fd.grad(lambda v: fd.sum(fn(v) * w))(x)
        np.testing.assert_allclose(J, num_grad(lambda v: np.sum(fn(v) * w), x),
                                   rtol=1e-6, atol=1e-8)
