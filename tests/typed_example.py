"""A typed program using the whole public API of fastad.

`mypy --strict` must pass on it (tools/check_types.sh), and it runs and checks its
own results (tests/test_types.py), so the two halves of each claim meet:
`assert_type(value, T)` is what mypy must infer from the stubs, and the `isinstance`
checks beside it are what the runtime returns.  Written for Python 3.9 and up.
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Union

import numpy as np
from numpy.typing import NDArray

import fastad as fd

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value, typ):
        """typing.assert_type, which Python 3.9 and 3.10 do not have: at run time
        it returns its argument."""
        return value

Array = NDArray[np.float64]
Params = Dict[str, Array]
# what a gradient with respect to a Var is: a float for a scalar, an array for an
# array, in the source's floating dtype
Grad = Union[float, np.floating[Any], NDArray[np.floating[Any]]]



def f64(x: Array) -> Array:
    """x, which mypy must take for a float64 array and which is one at run time.
    (Array types are checked by assignment, not assert_type: NumPy's stubs put
    shapes in the type, differently from one NumPy version to the next.)"""
    assert isinstance(x, np.ndarray) and x.dtype == np.float64, repr(x)
    return x


def vec(*values: float) -> Array:
    return np.array(values, dtype=np.float64)


# ----------------------------------------------------------------------------------
# Functions written once, for plain numbers and for Vars

def rosenbrock(x: fd.Var) -> fd.Var:
    """The Rosenbrock function of a 1-D array Var, as a Python loop."""
    s = x[0] * 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def mse_loss(w: fd.Var, X: Array, y: Array) -> fd.Var:
    """Mean squared error of a linear model (w differentiated, X and y data)."""
    return fd.mean((X @ w - y) ** 2)


def softmax_loss(params: Dict[str, fd.Var], X: Array, labels: NDArray[np.int64]) -> fd.Var:
    """Cross-entropy of a linear classifier whose parameters are a dict (a pytree)."""
    logits = X @ params["W"] + params["b"]
    return fd.nn.cross_entropy(logits, labels)


# ----------------------------------------------------------------------------------
# 1-2. Vars on a tape

def tape_basics() -> None:
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        w = tape.variable(np.ones(3))
        y = fd.sin(x) * fd.sum(w * x) + 3.0
        z = 2.0 * x - np.float64(1.0) / (x + 1)      # numbers on either side
        m = w @ np.arange(3.0) + abs(-x) ** 2           # @, abs(), ** with a Var
        u = np.sin(w)                                    # a NumPy ufunc on a Var
        if x > 0.25:                                     # comparisons give bools
            z = z + fd.sqrt(x)
    assert_type(tape, fd.Tape)
    assert_type(y, fd.Var)
    assert_type(m, fd.Var)
    assert_type(u, Any)
    assert isinstance(u, fd.Var) and u.shape == (3,)
    assert_type(y.value, "float | NDArray[np.float64]")
    assert isinstance(y.value, float) and isinstance(w.value, np.ndarray)
    assert_type(w.shape, "tuple[int, ...]")
    assert w.shape == (3,) and w.ndim == 1 and w.size == 3 and len(w) == 3
    assert [e.value for e in w] == [1.0, 1.0, 1.0]

    gx = tape.gradient(y, x)
    assert_type(gx, Grad)
    assert isinstance(gx, float)
    gs = tape.gradient(y, [x, w])
    assert_type(gs, "list[Grad]")
    assert isinstance(gs[1], np.ndarray) and gs[1].shape == (3,)
    gd = tape.gradient(z, {"x": x, "w": w})
    assert_type(gd, "dict[str, Grad]")
    assert np.all(gd["w"] == 0.0)                     # z does not depend on w

    assert len(tape) > 0 and tape.nbytes > 0
    assert "sin" in tape.wengert() and tape.to_dot().startswith("digraph")
    tape.reset()
    try:
        x + 1.0
    except fd.TapeError:
        pass
    else:
        raise AssertionError("a Var of a reset tape was accepted")


# ----------------------------------------------------------------------------------
# 3. The functional API: the other parameters of f pass through (ParamSpec)

def functional() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    w0 = np.zeros(3)

    g = f64(fd.grad(mse_loss)(w0, X, y))
    value, g2 = fd.value_and_grad(mse_loss)(w0, X, y)
    assert_type(value, float)
    assert isinstance(value, float) and np.array_equal(g, g2)

    # float32 in, float32 out (API.md 14)
    w32: NDArray[np.float32] = w0.astype(np.float32)
    g32: NDArray[np.float32] = fd.grad(mse_loss)(w32, X, y)
    assert g32.dtype == np.float32

    # a scalar input gives a float gradient
    def cube(t: fd.Var) -> fd.Var:
        return t * t * t
    d = fd.grad(cube)(2.0)
    assert_type(d, float)
    assert d == 12.0

    # several arguments
    both = fd.grad(lambda a, b: a * b, argnums=(0, 1))(3.0, 4.0)
    assert_type(both, "tuple[Any, ...]")
    assert both == (4.0, 3.0)

    # Jacobians, Hessians and products
    def f_vec(v: fd.Var) -> fd.Var:
        return fd.stack([v[0] * v[1], fd.sin(v[2])])
    J = f64(fd.jacobian(f_vec)(vec(1.0, 2.0, 3.0)))
    assert J.shape == (2, 3)

    H = f64(fd.hessian(rosenbrock)(vec(1.0, 1.0)))
    assert H.shape == (2, 2) and abs(H[0, 0] - 802.0) < 1e-9
    Hv = f64(fd.hvp(rosenbrock)(vec(1.0, 1.0), vec(1.0, 0.0)))
    assert np.allclose(Hv, H[:, 0])

    out, tangent = fd.jvp(f_vec, (vec(1.0, 2.0, 3.0),), (vec(1.0, 0.0, 0.0),))
    assert_type(out, "float | NDArray[np.float64]")
    assert isinstance(out, np.ndarray) and np.allclose(tangent, J[:, 0])
    out2, vjp_fn = fd.vjp(f_vec, vec(1.0, 2.0, 3.0))
    (cot,) = vjp_fn(vec(1.0, 0.0))
    assert isinstance(cot, np.ndarray) and np.allclose(cot, J[0])

    # forward mode: fd.derivative hands f a Dual
    def poly(t: fd.Dual) -> fd.Dual:
        return 3.0 * t ** 2 + fd.sin(t)
    dp = fd.derivative(poly)(0.0)
    assert_type(dp, float)
    assert dp == 1.0

    err = fd.check_grad(rosenbrock, vec(0.3, -0.2, 0.8))
    assert_type(err, float)
    assert err < 1e-6


# ----------------------------------------------------------------------------------
# 4. Dual numbers

def dual_numbers() -> None:
    x = fd.Dual(0.5, 1.0)
    y = fd.exp(x) * x - 1 / x
    assert_type(y, fd.Dual)
    assert math.isclose(y.value, math.exp(0.5) * 0.5 - 2.0)
    assert_type(y.tangent, "float | NDArray[np.float64]")
    # vector forward mode: one pass, two directions
    a = fd.Dual(2.0, np.array([1.0, 0.0]))
    b = fd.Dual(3.0, np.array([0.0, 1.0]))
    p = fd.hypot(a, b)
    assert_type(p, fd.Dual)
    assert isinstance(p.tangent, np.ndarray) and p.tangent.shape == (2,)
    total = fd.sum([a, b, 1.0])
    assert_type(total, fd.Dual)
    assert total.value == 6.0


# ----------------------------------------------------------------------------------
# 6. Math on plain numbers returns plain numbers

def plain_math() -> None:
    s = fd.sigmoid(0.0)
    assert_type(s, float)
    assert s == 0.5
    e = f64(fd.exp(np.zeros(3)))
    assert np.all(e == 1.0)
    assert_type(fd.maximum(1.0, 2.0), float)
    assert_type(fd.sum(np.ones(4)), float)
    assert fd.sum(np.ones(4)) == 4.0
    f64(fd.softmax(np.zeros(4)))
    assert_type(fd.logsumexp([0.0, 0.0]), float)
    assert math.isclose(fd.logsumexp([0.0, 0.0]), math.log(2.0))
    assert_type(fd.where(True, 1.0, 2.0), float)
    assert_type(fd.clip(5.0, 0.0, 1.0), float)
    assert fd.clip(5.0, 0.0, 1.0) == 1.0
    assert_type(fd.dot(vec(1.0, 2.0), vec(3.0, 4.0)), "float | NDArray[np.float64]")
    assert fd.prod([2.0, 3.0]) == 6.0
    f64(fd.array([[1.0, 2.0], [3.0, 4.0]]))
    f64(fd.concatenate([np.ones(2), np.zeros(3)]))
    M = fd.matmul(np.eye(2), np.ones((2, 2)))        # a float for two vectors
    assert isinstance(M, np.ndarray) and f64(M).shape == (2, 2)
    r = f64(fd.reshape(np.arange(6.0), (2, 3)))
    assert f64(fd.transpose(r)).shape == (3, 2)

    # every elementwise function: floats give floats, Vars give Vars
    t = 0.5
    floats: list[float] = [
        fd.sin(t), fd.cos(t), fd.tan(t), fd.arcsin(t), fd.arccos(t), fd.arctan(t),
        fd.sinh(t), fd.cosh(t), fd.tanh(t), fd.arcsinh(t), fd.arccosh(1 + t),
        fd.arctanh(t), fd.exp(t), fd.exp2(t), fd.expm1(t), fd.log(t), fd.log2(t),
        fd.log10(t), fd.log1p(t), fd.sqrt(t), fd.cbrt(t), fd.square(t), fd.abs(t),
        fd.sign(t), fd.floor(t), fd.ceil(t), fd.erf(t), fd.erfc(t), fd.sigmoid(t),
        fd.relu(t), fd.softplus(t), fd.arctan2(t, 1.0), fd.hypot(t, 1.0),
        fd.power(t, 2.0), fd.maximum(t, 1.0), fd.minimum(t, 1.0),
    ]
    assert all(type(f) is float for f in floats)
    with fd.Tape() as tape:
        v = tape.variable(t)
        w = tape.variable(vec(0.25, 0.75))
        on_vars: list[fd.Var] = [
            fd.sin(v), fd.cos(w), fd.tan(v), fd.arcsin(w), fd.arccos(v), fd.arctan(w),
            fd.sinh(v), fd.cosh(w), fd.tanh(v), fd.arcsinh(w), fd.arccosh(v + 1),
            fd.arctanh(w), fd.exp(v), fd.exp2(w), fd.expm1(v), fd.log(w), fd.log2(v),
            fd.log10(w), fd.log1p(v), fd.sqrt(w), fd.cbrt(v), fd.square(w), fd.abs(v),
            fd.sign(w), fd.floor(v), fd.ceil(w), fd.erf(v), fd.erfc(w), fd.sigmoid(v),
            fd.relu(w), fd.softplus(v), fd.arctan2(w, v), fd.hypot(1.0, w),
            fd.power(w, 2.0), fd.maximum(v, w), fd.minimum(0.5, w),
            fd.prod(w), fd.dot(w, w), fd.matmul(w, w), fd.array([v, 1.0]),
            fd.concatenate([w, np.ones(1)]), fd.reshape(w, (2, 1)), fd.transpose(w),
            fd.logsumexp(w), fd.softmax(w), fd.where(w > 0.5, w, 0.0), fd.clip(w, 0.3, 0.6),
        ]
    assert all(isinstance(e, fd.Var) for e in on_vars)


# ----------------------------------------------------------------------------------
# 7. Fitting: a classifier trained with Adam, a model fitted with L-BFGS-B

def training() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    labels = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    params: Params = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    opt = fd.optim.Adam(lr=0.1)
    vg = fd.value_and_grad(softmax_loss)
    first = last = 0.0
    for step in range(60):
        loss, g = vg(params, X, labels)
        assert_type(g, Params)
        params = opt.step(params, g)
        assert_type(params, Params)
        first = loss if step == 0 else first
        last = loss
    assert last < 0.5 * first, (first, last)
    state = opt.state_dict()
    resumed = fd.optim.Adam()
    resumed.load_state_dict(state)
    assert resumed.t == opt.t == 60

    sgd = fd.optim.SGD(lr=0.05, momentum=0.9, nesterov=True)
    f64(sgd.step(np.ones(3), np.ones(3)))

    W, b = params["W"], params["b"]
    logits = f64(fd.log_softmax(X @ W + b))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    assert accuracy > 0.9, accuracy
    assert_type(fd.nn.mse(np.ones(3), np.zeros(3)), float)
    # fd.stats: SciPy's signatures, differentiable in every argument
    d_loc = fd.grad(lambda m: fd.stats.norm.logpdf(1.0, loc=m, scale=2.0))(0.0)
    assert abs(d_loc - 0.25) < 1e-15, d_loc
    # fd.linalg: scipy.linalg's names on Vars
    d_tri = fd.grad(lambda b: fd.sum(fd.linalg.solve_triangular(
        np.array([[2.0, 0.0], [1.0, 4.0]]), b, lower=True)))(np.ones(2))
    assert abs(float(d_tri[0]) - 0.375) < 1e-15 and abs(float(d_tri[1]) - 0.25) < 1e-15
    # fd.special: scipy.special's names; gammaln' is digamma
    d_lg = fd.grad(fd.special.gammaln)(2.0)
    assert abs(d_lg - float(fd.special.digamma(2.0))) < 1e-15, d_lg

    try:
        res = fd.minimize(rosenbrock, vec(-1.0, 1.5), method="L-BFGS-B")
    except ImportError:            # SciPy is optional
        return
    assert res.success and np.allclose(f64(res.params), 1.0, atol=1e-4)


# ----------------------------------------------------------------------------------
# 5. Trace once, evaluate many

def traced() -> None:
    x0 = vec(0.5, -0.3, 0.8)
    tf = fd.trace(rosenbrock, x0)
    v = tf(x0)
    assert_type(v, "float | NDArray[np.float64]")
    assert v == rosenbrock_value(x0)
    g = f64(tf.grad(x0))
    assert np.array_equal(g, fd.grad(rosenbrock)(x0))      # bit for bit
    val, g2 = tf.value_and_grad(x0)
    assert_type(val, float)
    assert np.array_equal(g, g2)
    assert np.allclose(f64(tf.hessian(x0)), fd.hessian(rosenbrock)(x0))
    assert f64(tf.hvp(x0, np.ones(3))).shape == (3,)
    G = f64(tf.grad_batch(np.stack([x0, 2 * x0])))
    assert G.shape == (2, 3)
    assert len(tf) > 0 and tf.nbytes > 0

    # dynamic parameters: data that changes between calls without re-recording
    def fit(w: fd.Var, X: fd.Var, y: fd.Var) -> fd.Var:
        return fd.sum((X @ w - y) ** 2)
    X, y = np.eye(3), np.ones(3)
    tfit = fd.trace(fit, np.zeros(3), X, y)
    assert np.allclose(tfit.grad(np.zeros(3), X, 2 * y), -4.0)

    # saved, loaded and pickled traces replay the same numbers
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rosenbrock.fdtrace")
        tf.save(path)
        loaded = fd.load(path)
    assert np.array_equal(loaded.grad(x0), g)
    copy = pickle.loads(pickle.dumps(tf))
    assert np.array_equal(copy.grad(x0), g)

    # a guard: the traced path does not hold everywhere
    def branchy(t: fd.Var) -> fd.Var:
        return t * 2.0 if t > 0 else -t
    tb = fd.trace(branchy, 1.0)
    try:
        tb.grad(-1.0)
    except fd.TraceError:
        pass
    else:
        raise AssertionError("a failed guard was not reported")
    assert fd.trace(branchy, 1.0, retrace=True).grad(-1.0) == -1.0
    # optimize=False keeps the recording as is; tf.compile() raises fd.CompileError
    # without a C compiler (not called here: it runs the compiler)
    assert fd.trace(branchy, 1.0, optimize=False).grad(2.0) == 2.0
    assert issubclass(fd.CompileError, fd.FastADError)


# ----------------------------------------------------------------------------------
# 10. Your own primitives

def custom_primitives() -> None:
    @fd.custom_vjp
    def softplus(x: Any) -> Any:
        return np.log1p(np.exp(x))

    def softplus_fwd(x: Any) -> tuple[Any, Any]:
        return softplus(x), x

    def softplus_bwd(x: Any, g: Any) -> tuple[Any]:
        return (g / (1.0 + np.exp(-x)),)
    softplus.defvjp(softplus_fwd, softplus_bwd)
    x = vec(0.5, -0.3, 0.8)
    g = f64(fd.grad(lambda t: fd.sum(softplus(t)))(x))
    assert np.allclose(g, 1.0 / (1.0 + np.exp(-x)))

    @fd.custom_jvp
    def cube(t: Any) -> Any:
        return t ** 3

    @cube.defjvp
    def cube_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
        return cube(primals[0]), 3.0 * primals[0] ** 2 * tangents[0]
    assert fd.derivative(cube)(2.0) == 12.0


def rosenbrock_value(x: Array) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


# ----------------------------------------------------------------------------------
# 6, 8, 9. Debugging helpers and errors

def debugging() -> None:
    with fd.debug_nans():
        try:
            fd.grad(lambda t: fd.log(t - 2.0))(1.0)
        except FloatingPointError:
            pass
        else:
            raise AssertionError("debug_nans let a NaN through")
    try:
        fd.check_grad(lambda t: fd.floor(t) * 0.0 + t * t, 1.5, rtol=1e-300)
    except fd.GradientCheckError as e:
        assert isinstance(e, fd.FastADError)
    fd.release_memory()


# ----------------------------------------------------------------------------------
# 12. Sparse derivatives (SciPy optional)

def sparse() -> None:
    def resid(x: fd.Var) -> fd.Var:
        return x[1:] * x[:-1] - 1.0

    x = vec(1.0, 2.0, 3.0)
    try:
        P = fd.jacobian_sparsity(resid)(x)
    except ImportError:
        return
    assert P.shape == (2, 3)
    J, info = fd.sparse_jacobian(resid, info=True)(x)
    assert info.colors >= 2 and J.nnz == 4
    assert fd.sparse_jacobian(resid)(x).shape == (2, 3)

    def obj(x: fd.Var) -> fd.Var:
        return fd.sum(resid(x) ** 2)

    assert fd.hessian_sparsity(obj)(x).shape == (3, 3)
    assert fd.sparse_hessian(obj)(x).nnz == 7      # tridiagonal: x0, x2 never meet
    tf = fd.trace(obj, x)
    H, hinfo = tf.sparse_hessian(x, info=True)
    assert hinfo.nnz == H.nnz
    res = fd.least_squares(resid, vec(0.5, 0.5, 0.5))
    assert bool(res.success)


def main() -> None:
    tape_basics()
    functional()
    dual_numbers()
    plain_math()
    training()
    traced()
    custom_primitives()
    debugging()
    sparse()
    print("typed_example: all checks passed (fastad %s)" % fd.__version__)


if __name__ == "__main__":
    main()
