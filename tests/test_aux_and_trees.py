"""has_aux=True (grad, value_and_grad, jacobian, vjp), fd.hessian and fd.hvp over
pytrees and tuple argnums, in JAX's layouts (API.md section 11)."""
import numpy as np
import pytest

import fastad as fd


def _loss(w, x, y):
    pred = x @ w
    return fd.sum((pred - y) ** 2), {"pred": pred, "n": 2, "w0": w[0]}


X = np.array([[1.0, 2.0], [3.0, 4.0]])
Y = np.array([0.0, 1.0])
W = np.array([0.5, -0.5])


def _check_aux(aux):
    # Vars become their values; other leaves pass through untouched
    assert type(aux["pred"]) is np.ndarray
    np.testing.assert_array_equal(aux["pred"], X @ W)
    assert aux["n"] == 2 and type(aux["w0"]) is float and aux["w0"] == 0.5


def test_grad_has_aux():
    g, aux = fd.grad(_loss, has_aux=True)(W, X, Y)
    np.testing.assert_allclose(g, 2 * X.T @ (X @ W - Y))
    _check_aux(aux)
    # the plain call is unchanged
    np.testing.assert_array_equal(fd.grad(lambda *a: _loss(*a)[0])(W, X, Y), g)


def test_value_and_grad_has_aux_and_argnums_tuple():
    (value, aux), (gw, gx) = fd.value_and_grad(_loss, argnums=(0, 1), has_aux=True)(W, X, Y)
    r = X @ W - Y
    assert value == pytest.approx(float(r @ r))
    np.testing.assert_allclose(gw, 2 * X.T @ r)
    np.testing.assert_allclose(gx, 2 * np.outer(r, W))
    _check_aux(aux)


def test_jacobian_has_aux():
    J, aux = fd.jacobian(lambda x: (x ** 2, fd.sum(x)), has_aux=True)(np.array([1.0, 3.0]))
    np.testing.assert_array_equal(J, np.diag([2.0, 6.0]))
    assert aux == 4.0 and type(aux) is float


def test_vjp_has_aux():
    value, vjp_fn, aux = fd.vjp(lambda x: (x * 3.0, ["label", x[1]]), np.array([1.0, 2.0]),
                                has_aux=True)
    np.testing.assert_array_equal(value, [3.0, 6.0])
    np.testing.assert_array_equal(vjp_fn(np.array([1.0, 10.0]))[0], [3.0, 30.0])
    assert aux == ["label", 2.0]


@pytest.mark.parametrize("call", [
    lambda f: fd.grad(f, has_aux=True)(1.0),
    lambda f: fd.value_and_grad(f, has_aux=True)(1.0),
    lambda f: fd.jacobian(f, has_aux=True)(1.0),
    lambda f: fd.vjp(f, 1.0, has_aux=True),
])
def test_has_aux_needs_a_pair(call):
    with pytest.raises(TypeError, match=r"has_aux=True\): f must return a pair"):
        call(lambda x: x * x)
    with pytest.raises(TypeError, match="a tuple of 3 items"):
        call(lambda x: (x, x, x))


def test_has_aux_must_be_a_bool():
    with pytest.raises(TypeError, match="grad: has_aux must be True or False"):
        fd.grad(lambda x: x, has_aux="yes")
    with pytest.raises(TypeError, match="jacobian: has_aux"):
        fd.jacobian(lambda x: x, has_aux=1)


# ----------------------------------------------------------------------------------
# hessian and hvp of pytrees and tuple argnums

def _energy(p, scale):
    return scale * (fd.sum(p["w"] ** 2) * p["b"] + p["b"] ** 3 + fd.sum(fd.sin(p["m"])))


P = {"w": np.array([1.0, 2.0]), "b": 0.5, "m": np.array([[0.1, 0.2], [0.3, 0.4]])}


def test_hessian_of_a_dict_is_a_dict_of_dicts():
    H = fd.hessian(_energy)(P, 2.0)
    # the same Hessian over one flat vector, leaves in sorted key order
    flat = np.concatenate([P["b"] * np.ones(1), P["m"].ravel(), P["w"]])
    dense = fd.hessian(lambda v: _energy({"b": v[0], "m": v[1:5].reshape(2, 2),
                                         "w": v[5:7]}, 2.0))(flat)
    sl = {"b": slice(0, 1), "m": slice(1, 5), "w": slice(5, 7)}
    shapes = {"b": (), "m": (2, 2), "w": (2,)}
    assert list(H) == ["w", "b", "m"]                  # the caller's key order
    for a in P:
        assert list(H[a]) == ["w", "b", "m"]
        for b in P:
            block = dense[sl[a], sl[b]].reshape(shapes[a] + shapes[b])
            got = H[a][b]
            if block.ndim == 0:
                assert type(got) is float and got == float(block)
            else:
                np.testing.assert_array_equal(got, block)
    # closed forms of two blocks
    np.testing.assert_allclose(H["w"]["b"], 2.0 * 2 * P["w"])
    np.testing.assert_allclose(H["m"]["m"].reshape(4, 4),
                               np.diag(-2.0 * np.sin(P["m"].ravel())))


def test_hessian_tuple_argnums_is_a_tuple_of_tuples():
    f = lambda x, y, c: c * x * x * fd.sum(y) + fd.sum(y ** 3)
    y = np.array([1.0, 2.0])
    H = fd.hessian(f, argnums=(0, 1))(3.0, y, 2.0)
    assert type(H) is tuple and len(H) == 2 and all(type(r) is tuple for r in H)
    assert type(H[0][0]) is float and H[0][0] == 2 * 2.0 * 3.0      # 2 c sum(y)
    np.testing.assert_array_equal(H[0][1], [12.0, 12.0])           # 2 c x
    np.testing.assert_array_equal(H[1][0], H[0][1])
    np.testing.assert_array_equal(H[1][1], np.diag(6 * y))
    # argnums=1 alone is the (1, 1) block
    np.testing.assert_array_equal(fd.hessian(f, argnums=1)(3.0, y, 2.0), H[1][1])


def test_hvp_matches_hessian_on_pytrees():
    v = {"w": np.array([1.0, -1.0]), "b": 0.25, "m": np.arange(4.0).reshape(2, 2)}
    hv = fd.hvp(_energy)(P, 2.0, v)
    H = fd.hessian(_energy)(P, 2.0)
    for a in P:
        want = sum(np.tensordot(np.asarray(H[a][b]), np.asarray(v[b]),
                                axes=np.ndim(v[b])) for b in P)
        np.testing.assert_allclose(hv[a], want, rtol=1e-13, atol=1e-13)
    assert type(hv["b"]) is float and list(hv) == ["w", "b", "m"]


def test_hvp_tuple_argnums_and_v_last():
    f = lambda x, c, y: c * x * fd.sum(y ** 2)
    y = np.array([1.0, 2.0])
    hx, hy = fd.hvp(f, argnums=(0, 2))(3.0, 2.0, y, (1.0, np.array([0.0, 1.0])))
    # H = [[0, 2c y], [2c y, 2c x I]]: Hv = (2c y.v_y, 2c y v_x + 2c x v_y)
    assert hx == pytest.approx(2 * 2.0 * 2.0)
    np.testing.assert_allclose(hy, 2 * 2.0 * y * 1.0 + 2 * 2.0 * 3.0 * np.array([0.0, 1.0]))


def test_hvp_v_errors():
    with pytest.raises(ValueError, match="hvp: v must have the structure"):
        fd.hvp(_energy)(P, 2.0, {"w": np.ones(2)})
    with pytest.raises(ValueError, match=r"hvp: v must have the shape of x \(2,\)"):
        fd.hvp(_energy)(P, 2.0, {"w": np.ones(3), "b": 0.0, "m": np.ones((2, 2))})
    with pytest.raises(TypeError, match="hvp: the function takes f's arguments and then v"):
        fd.hvp(lambda x: x * x)(1.0)


def test_list_of_numbers_stays_one_array():
    np.testing.assert_allclose(fd.hessian(lambda v: v[0] * v[1] ** 2)([1.0, 2.0]),
                               [[0.0, 4.0], [4.0, 2.0]])
    np.testing.assert_allclose(fd.hvp(lambda v: v[0] * v[1] ** 2)([1.0, 2.0], [1.0, 0.0]),
                               [0.0, 4.0])


def test_derivative_of_an_array_points_to_jacobian_and_grad_of_sum():
    with pytest.raises(ValueError, match=r"fd\.jacobian.*fd\.grad\(lambda x: fd\.sum"):
        fd.derivative(fd.sin)(np.ones(3))
