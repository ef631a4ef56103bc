"""fd.nn losses: values and gradients against closed forms, stability, errors."""
import numpy as np
import pytest

import fastad as fd


def ref_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(6, 4))
LABELS = np.array([0, 3, 1, 1, 2, 0])


def test_cross_entropy_value_on_arrays_is_float():
    out = fd.nn.cross_entropy(LOGITS, LABELS)
    assert isinstance(out, float)
    ref = -np.mean(ref_log_softmax(LOGITS)[np.arange(6), LABELS])
    assert out == pytest.approx(ref, rel=1e-14)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    # d/dz mean_i(-log softmax(z_i)[y_i]) = (softmax(z) - onehot(y)) / n
    value, g = fd.value_and_grad(lambda z: fd.nn.cross_entropy(z, LABELS))(LOGITS)
    p = np.exp(ref_log_softmax(LOGITS))
    np.testing.assert_allclose(g, (p - np.eye(4)[LABELS]) / 6, atol=1e-15)
    assert value == pytest.approx(fd.nn.cross_entropy(LOGITS, LABELS), rel=1e-14)


def test_cross_entropy_single_sample_and_batch_of_one():
    z = np.array([0.5, -1.0, 2.0])
    one = fd.nn.cross_entropy(z, 2)
    assert one == pytest.approx(-ref_log_softmax(z)[2], rel=1e-14)
    g1 = fd.grad(lambda z: fd.nn.cross_entropy(z, 2))(z)
    g2 = fd.grad(lambda z: fd.nn.cross_entropy(z, [2]))(z[None, :])
    np.testing.assert_allclose(g1, g2[0], rtol=1e-15)
    np.testing.assert_allclose(g1, np.exp(ref_log_softmax(z)) - [0, 0, 1], atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    value, g = fd.value_and_grad(lambda z: fd.nn.cross_entropy(z, [2, 1]))(z)
    assert value == pytest.approx(1e4, rel=1e-12)    # (2e4 + 0) / 2
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-12)


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match="labels"):
        fd.nn.cross_entropy(LOGITS, LABELS[:5])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fd.nn.cross_entropy(LOGITS, LABELS + 1)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fd.nn.cross_entropy(LOGITS, LABELS - 1)
    with pytest.raises(TypeError, match="integers"):
        fd.nn.cross_entropy(LOGITS, LABELS + 0.5)
    with pytest.raises(ValueError, match="logits"):
        fd.nn.cross_entropy(np.zeros((2, 3, 4)), [0, 1])
    with pytest.raises(TypeError, match="logits"):
        fd.nn.cross_entropy("abc", [0])


def test_mse_value_and_gradient():
    pred = RNG.normal(size=(5, 2))
    target = RNG.normal(size=(5, 2))
    assert fd.nn.mse(pred, target) == pytest.approx(np.mean((pred - target) ** 2), rel=1e-14)
    g = fd.grad(lambda p: fd.nn.mse(p, target))(pred)
    np.testing.assert_allclose(g, 2 * (pred - target) / pred.size, rtol=1e-14)
    assert fd.grad(lambda p: fd.nn.mse(p, 1.0))(3.0) == pytest.approx(4.0)


def test_mse_refuses_to_broadcast():
    with pytest.raises(ValueError, match="shape"):
        fd.nn.mse(np.zeros((3, 1)), np.zeros(3))


def test_training_a_softmax_classifier_with_adam():
    # Linearly separable 3-class blobs: a softmax regression fitted by Adam on the
    # cross-entropy must classify all training points.
    rng = np.random.default_rng(1)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = np.repeat(np.arange(3), 20)
    X = centers[y] + 0.5 * rng.normal(size=(60, 2))
    params = {"W": np.zeros((2, 3)), "b": np.zeros(3)}

    def loss(p):
        return fd.nn.cross_entropy(fd.matmul(X, p["W"]) + p["b"], y)

    opt = fd.optim.Adam(lr=0.1)
    vg = fd.value_and_grad(loss)
    first, _ = vg(params)
    for _ in range(100):
        value, g = vg(params)
        params = opt.step(params, g)
    assert value < 0.05 * first
    pred = np.argmax(X @ params["W"] + params["b"], axis=1)
    assert np.all(pred == y)
