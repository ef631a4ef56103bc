"""fd.optim: convergence, the published update equations, state save/resume, errors."""
import math
import pickle

import numpy as np
import pytest

import fastad as fd


# ----- a convex quadratic with a known minimum --------------------------------------

A = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])   # symmetric positive definite
B = np.array([1.0, -2.0, 0.5])
X_STAR = np.linalg.solve(A, B)          # argmin of 0.5 x'Ax - b'x


def quadratic(p):
    x = p["x"]
    return 0.5 * fd.sum(x * fd.matmul(A, x)) - fd.sum(x * B) + (p["c"] - 2.0) ** 2


@pytest.mark.parametrize("make, steps", [
    (lambda: fd.optim.SGD(lr=0.2), 300),
    (lambda: fd.optim.SGD(lr=0.05, momentum=0.9), 400),
    (lambda: fd.optim.SGD(lr=0.05, momentum=0.9, nesterov=True), 400),
    (lambda: fd.optim.Adam(lr=0.05), 2000),
    (lambda: fd.optim.Adam(lr=0.05, weight_decay=0.0, decoupled=True), 2000),
])
def test_converges_to_known_minimum(make, steps):
    opt = make()
    params = {"x": np.zeros(3), "c": 0.0}
    vg = fd.value_and_grad(quadratic)
    for _ in range(steps):
        _, g = vg(params)
        params = opt.step(params, g)
    assert isinstance(params["c"], float)
    np.testing.assert_allclose(params["x"], X_STAR, atol=1e-6)
    assert abs(params["c"] - 2.0) < 1e-6


def test_weight_decay_shifts_minimum_as_l2_penalty():
    # SGD with weight decay wd minimises f + wd/2 |x|^2: for f = 0.5 x'Ax - b'x the
    # minimum moves to (A + wd I)^-1 b.
    wd = 0.5
    opt = fd.optim.SGD(lr=0.1, momentum=0.5, weight_decay=wd)
    x = np.zeros(3)
    for _ in range(500):
        x = opt.step(x, A @ x - B)
    np.testing.assert_allclose(x, np.linalg.solve(A + wd * np.eye(3), B), atol=1e-8)


# ----- the published update equations, written out independently --------------------

def grad_fn(p):
    """Gradient of sum(p^4)/4 + sum(p)  (nonlinear, so the buffers matter)."""
    return p ** 3 + 1.0


P0 = np.array([0.7, -1.3, 2.0])


def reference_sgd(lr, mu, nesterov, wd, steps):
    # Sutskever et al. 2013 / torch.optim.SGD (dampening 0).
    p, buf, out = P0.copy(), None, []
    for _ in range(steps):
        g = grad_fn(p) + wd * p
        if mu:
            buf = g.copy() if buf is None else mu * buf + g
            g = g + mu * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def reference_adam(lr, b1, b2, eps, wd, decoupled, steps):
    # Kingma & Ba 2015, Algorithm 1; weight decay as L2 (Adam) or decoupled (AdamW,
    # Loshchilov & Hutter 2019, with the decay scaled by lr as in torch.optim.AdamW).
    p, m, v, out = P0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, steps + 1):
        g = grad_fn(p)
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("lr, mu, nesterov, wd", [
    (0.05, 0.0, False, 0.0), (0.05, 0.9, False, 0.0), (0.05, 0.9, True, 0.0),
    (0.02, 0.5, False, 0.1), (0.02, 0.7, True, 0.3)])
def test_sgd_matches_equations(lr, mu, nesterov, wd):
    opt = fd.optim.SGD(lr, momentum=mu, nesterov=nesterov, weight_decay=wd)
    p = P0.copy()
    for ref in reference_sgd(lr, mu, nesterov, wd, 8):
        p = opt.step(p, grad_fn(p))
        np.testing.assert_allclose(p, ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("lr, betas, eps, wd, decoupled", [
    (0.01, (0.9, 0.999), 1e-8, 0.0, False), (0.1, (0.5, 0.9), 1e-3, 0.0, False),
    (0.05, (0.9, 0.99), 1e-8, 0.2, False), (0.05, (0.9, 0.99), 1e-8, 0.2, True)])
def test_adam_matches_equations(lr, betas, eps, wd, decoupled):
    opt = fd.optim.Adam(lr=lr, betas=betas, eps=eps, weight_decay=wd, decoupled=decoupled)
    p = P0.copy()
    for ref in reference_adam(lr, betas[0], betas[1], eps, wd, decoupled, 8):
        p = opt.step(p, grad_fn(p))
        np.testing.assert_allclose(p, ref, rtol=1e-13, atol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    # With bias correction, Adam's first step has size lr in every coordinate
    # (up to eps), whatever the gradient's scale.
    opt = fd.optim.Adam(lr=0.1, eps=0.0)
    p = opt.step(np.zeros(3), np.array([1e-6, -5.0, 300.0]))
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1], rtol=1e-12)


# ----- pytrees and purity -----------------------------------------------------------

def test_step_keeps_structure_and_does_not_mutate():
    params = {"w": [np.ones((2, 2)), 3.0], "b": (np.zeros(2),)}
    grads = {"w": [np.full((2, 2), 0.5), 1], "b": (np.array([1, -1]),)}   # ints are fine
    snapshot = pickle.dumps((params, grads))
    for opt in (fd.optim.SGD(0.1, momentum=0.9), fd.optim.Adam(0.1)):
        new = opt.step(params, grads)
        new = opt.step(new, grads)
        assert type(new) is dict and type(new["w"]) is list and type(new["b"]) is tuple
        assert isinstance(new["w"][1], float)
        assert new["w"][0].shape == (2, 2) and new["w"][0].dtype == np.float64
        assert new["w"][0] is not params["w"][0]
    assert pickle.dumps((params, grads)) == snapshot


def test_float_params():
    opt = fd.optim.SGD(0.25)
    x = 1.0
    for _ in range(100):
        x = opt.step(x, 2 * (x - 5.0))
    assert isinstance(x, float) and abs(x - 5.0) < 1e-12


# ----- saving and resuming ----------------------------------------------------------

def _train(opt, params, steps):
    vg = fd.value_and_grad(quadratic)
    for _ in range(steps):
        _, g = vg(params)
        params = opt.step(params, g)
    return params


@pytest.mark.parametrize("make", [
    lambda: fd.optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: fd.optim.Adam(0.05, betas=(0.8, 0.99), weight_decay=0.1, decoupled=True)])
@pytest.mark.parametrize("how", ["pickle", "state_dict"])
def test_resume_bit_for_bit(make, how):
    p0 = {"x": np.array([0.3, -0.2, 0.1]), "c": 0.5}
    straight = _train(make(), p0, 20)

    opt = make()
    half = _train(opt, p0, 10)
    if how == "pickle":
        opt2 = pickle.loads(pickle.dumps(opt))
    else:
        saved = pickle.loads(pickle.dumps(opt.state_dict()))
        opt2 = make()
        opt2.load_state_dict(saved)
    del opt
    resumed = _train(opt2, half, 10)
    assert resumed["c"] == straight["c"]
    assert np.array_equal(resumed["x"], straight["x"])
    assert opt2.t == 20


def test_state_dict_is_a_copy():
    opt = fd.optim.Adam(0.1)
    x = opt.step(np.zeros(2), np.ones(2))
    sd = opt.state_dict()
    sd["buffers"]["m"][:] = 123.0
    assert not np.any(opt.state_dict()["buffers"]["m"] == 123.0)
    assert sd["t"] == 1 and sd["hyper"]["lr"] == 0.1
    assert x.shape == (2,)


def test_load_state_dict_checks():
    sd = fd.optim.Adam(0.1).state_dict()
    with pytest.raises(ValueError, match="Adam"):
        fd.optim.SGD(0.1).load_state_dict(sd)
    with pytest.raises(TypeError):
        fd.optim.SGD(0.1).load_state_dict([1, 2])
    sd["hyper"]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        fd.optim.Adam().load_state_dict(sd)


# ----- argument validation ----------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: fd.optim.SGD(0.0), "lr"),
    (lambda: fd.optim.SGD(-1.0), "lr"),
    (lambda: fd.optim.SGD(math.nan), "lr"),
    (lambda: fd.optim.SGD(0.1, momentum=1.0), "momentum"),
    (lambda: fd.optim.SGD(0.1, momentum=-0.1), "momentum"),
    (lambda: fd.optim.SGD(0.1, nesterov=True), "nesterov"),
    (lambda: fd.optim.SGD(0.1, weight_decay=-1), "weight_decay"),
    (lambda: fd.optim.Adam(lr=0), "lr"),
    (lambda: fd.optim.Adam(betas=(0.9, 1.0)), "betas"),
    (lambda: fd.optim.Adam(betas=(-0.1, 0.9)), "betas"),
    (lambda: fd.optim.Adam(eps=-1e-8), "eps"),
    (lambda: fd.optim.Adam(weight_decay=-0.1), "weight_decay"),
])
def test_bad_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: fd.optim.SGD("0.1"), lambda: fd.optim.SGD(None), lambda: fd.optim.SGD(True),
    lambda: fd.optim.SGD(0.1, nesterov="yes"), lambda: fd.optim.Adam(betas=0.9),
    lambda: fd.optim.Adam(betas=(0.9, 0.99, 0.1)), lambda: fd.optim.Adam(decoupled=1)])
def test_bad_hyperparameter_types_raise_type_error(make):
    with pytest.raises(TypeError):
        make()


def test_mismatched_trees_raise_value_error():
    opt = fd.optim.Adam()
    with pytest.raises(ValueError, match="structure"):
        opt.step({"a": 1.0, "b": 2.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="structure"):
        opt.step([1.0, 2.0], (1.0, 2.0))
    with pytest.raises(ValueError, match="shape"):
        opt.step({"a": np.ones(3)}, {"a": np.ones(2)})
    opt.step({"a": np.ones(3)}, {"a": np.ones(3)})
    with pytest.raises(ValueError, match="changed"):
        opt.step({"a": np.ones(4)}, {"a": np.ones(4)})
    opt.reset()
    opt.step({"a": np.ones(4)}, {"a": np.ones(4)})


def test_bad_leaves_raise_type_error():
    opt = fd.optim.SGD(0.1)
    with pytest.raises(TypeError, match="grads"):
        opt.step([1.0], [None])
    with pytest.raises(TypeError, match="params"):
        opt.step(["a"], [1.0])
    with pytest.raises(TypeError, match="params"):
        opt.step([np.array([1 + 2j])], [np.ones(1)])
