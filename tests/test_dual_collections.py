"""fd's collection functions on lists/object arrays of Duals agree with reverse mode."""
import numpy as np
import pytest

import fastad as fd

X = np.array([0.3, -1.2, 0.7, 2.0])
V = np.array([1.0, -0.5, 0.25, 2.0])

# scalar-valued functions of a 1-D input, written once for Duals and Vars alike
CASES = {
    "sum": lambda x: fd.sum(x),
    "mean": lambda x: fd.mean(x),
    "prod": lambda x: fd.prod(x),
    "logsumexp": lambda x: fd.logsumexp(x),
    "dot": lambda x: fd.dot(x, [1.0, 2.0, -1.0, 0.5]),
    "matmul": lambda x: fd.sum(fd.matmul(fd.reshape(x, (2, 2)), np.array([1.0, -2.0]))),
    "transpose": lambda x: fd.dot(fd.reshape(fd.transpose(fd.reshape(x, (2, 2))), (4,)),
                                  [1.0, 2.0, 3.0, 4.0]),
    "concatenate": lambda x: fd.sum(fd.concatenate([x, x]) * np.arange(8.0)),
    "stack": lambda x: fd.sum(fd.stack([fd.array(x), 2.0 * fd.array(x)], axis=1) ** 2),
    "softmax": lambda x: fd.dot(fd.softmax(x), [1.0, 2.0, 3.0, 4.0]),
    "log_softmax": lambda x: fd.dot(fd.log_softmax(x), [1.0, 0.0, -1.0, 2.0]),
    "where": lambda x: fd.sum(fd.where(np.array([True, False, True, False]), x,
                                         3.0 * fd.array(x))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_dual_collection_matches_reverse_mode(name):
    f = CASES[name]
    duals = [fd.Dual(float(a), float(b)) for a, b in zip(X, V)]
    out = f(duals)
    assert type(out) is fd.Dual
    value, g = fd.value_and_grad(f)(X)
    assert out.value == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert out.tangent == pytest.approx(float(g @ V), rel=1e-10, abs=1e-12)


def test_scalar_where_and_array_of_duals():
    d, e = fd.Dual(0.5, 1.0), fd.Dual(1.5, 2.0)
    assert fd.where(True, d, e) is d and fd.where(False, d, e) is e
    for c in (3.0, 3, np.float64(3.0), np.array(3.0)):
        assert fd.where(True, d, c) is d and fd.where(False, c, d) is d
        assert fd.where(np.True_, d, c) is d and fd.where(np.array(False), c, d) is d
        # the constant branch is still a Dual: same type on both paths
        for out in (fd.where(False, d, c), fd.where(True, c, d)):
            assert type(out) is fd.Dual and out.value == 3.0 and out.tangent == 0.0
    v = fd.Dual(0.5, [1.0, 2.0, 3.0])
    out = fd.where(False, v, 2.0)
    assert type(out) is fd.Dual and out.tangent.tolist() == [0.0, 0.0, 0.0]
    assert fd.derivative(lambda x: fd.where(x > 1.0, x * x, 0.0))(2.0) == 4.0
    assert fd.derivative(lambda x: fd.where(x > 1.0, x * x, 0.0))(0.5) == 0.0
    assert fd.jvp(lambda x: fd.where(False, 0.0, x * 3.0), (2.0,), (1.0,)) == (6.0, 3.0)
    arr = fd.array([d, e])
    assert arr.dtype == object and arr.shape == (2,) and arr[1] is e


def test_code_without_duals_is_unchanged():
    assert fd.sum([1.0, 2.0]) == 3.0
    assert isinstance(fd.stack([1.0, 2.0]), np.ndarray)
