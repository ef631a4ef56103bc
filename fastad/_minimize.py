"""fd.minimize: scipy.optimize.minimize fed with exact derivatives from fastad.

SciPy works on flat 1-D float vectors; fastad functions take floats, arrays or
pytrees of them.  This module flattens x0 once, hands SciPy a function that
rebuilds the user's structure, and returns the value and the gradient in one call
(`jac=True`), so each SciPy iteration records and sweeps the tape once.

With trace=True the function is recorded once by fd.trace(..., retrace=True) and
every later evaluation replays the recorded tape in C, re-recording only when a
guard (Python control flow on a value) goes the other way.
"""
import numpy as np

from fastad._pytree import tree_flatten, tree_unflatten

# Methods that take a gradient (jac), and those that also take a Hessian-vector
# product (hessp) or the full Hessian (hess).  Gradient-free methods (Nelder-Mead,
# Powell, COBYLA, COBYQA) get neither: SciPy warns when given one it ignores.
_USES_JAC = {"cg", "bfgs", "newton-cg", "l-bfgs-b", "tnc", "slsqp", "dogleg",
             "trust-ncg", "trust-krylov", "trust-exact", "trust-constr"}
_USES_HESSP = {"newton-cg", "trust-ncg", "trust-krylov"}
_USES_HESS = {"dogleg", "trust-exact"}
# trust-constr takes a sparse Hessian (fd.sparse_hessian: a coloring of its
# pattern, one forward-over-reverse sweep of a few directions per evaluation)
_USES_SPARSE_HESS = {"trust-constr"}
_OURS = ("jac", "hess", "hessp")


def _import_scipy_minimize():
    try:
        from scipy.optimize import minimize as scipy_minimize
    except ImportError:
        raise ImportError("fd.minimize needs SciPy, which is not installed; install it "
                          "with: pip install fastad[scipy]  (or pip install scipy)") from None
    return scipy_minimize


class _Flattener:
    """Converts between the user's x (float, array or pytree) and SciPy's 1-D vector.

    `unflatten` works on a float ndarray and on a 1-D array Var alike (it only
    slices and reshapes), so the flat function can itself be differentiated.
    """

    def __init__(self, x0):
        leaves, self.treedef = tree_flatten(x0)
        if not leaves:
            raise ValueError("minimize: x0 has no numbers in it")
        self.shapes, self.scalar = [], []
        parts = []
        for i, leaf in enumerate(leaves):
            if leaf is None or isinstance(leaf, (bool, np.bool_, str, bytes, complex,
                                                 np.complexfloating)):
                raise TypeError("minimize: x0 leaf %d must be a float or a real array, "
                                "got %s" % (i, type(leaf).__name__))
            arr = np.asarray(leaf)
            if arr.dtype.kind not in "biuf":
                raise TypeError("minimize: x0 leaf %d must be real, got dtype %s"
                                % (i, arr.dtype))
            self.shapes.append(arr.shape)
            self.scalar.append(not isinstance(leaf, np.ndarray))
            parts.append(arr.astype(np.float64).ravel())
        self.x0 = np.concatenate(parts)
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        # The common case, x0 a 1-D array, needs no conversion at all.
        self.identity = (self.treedef.kind == "leaf" and not self.scalar[0]
                         and len(self.shapes[0]) == 1)

    def unflatten(self, v):
        if self.identity:
            return v
        leaves, start = [], 0
        for shape, size, scalar in zip(self.shapes, self.sizes, self.scalar):
            if scalar:
                leaf = v[start]
                if type(leaf) is not type(v):      # a float from an ndarray
                    leaf = float(leaf)
            else:
                leaf = v[start:start + size].reshape(shape)
            leaves.append(leaf)
            start += size
        return tree_unflatten(self.treedef, leaves)

    def flatten(self, tree):
        """A pytree of the structure of x0 (e.g. a gradient) as a 1-D float vector."""
        if self.identity:
            return np.asarray(tree, dtype=np.float64)
        leaves, _ = tree_flatten(tree)
        return np.concatenate([np.asarray(leaf, dtype=np.float64).ravel()
                               for leaf in leaves])


def _method_name(method):
    if callable(method):
        return None
    if not isinstance(method, str):
        raise TypeError("minimize: method must be a string or a callable, got %s"
                        % type(method).__name__)
    return method.lower()


def minimize(f, x0, method="L-BFGS-B", trace=False, args=(), **options):
    """Minimise scalar-valued ``f(x, *args)`` with ``scipy.optimize.minimize`` and
    exact derivatives.

    Gradients come from reverse mode; Newton-CG, trust-ncg and trust-krylov
    also get exact Hessian-vector products (as :func:`fastad.hvp`), dogleg and
    trust-exact the exact Hessian (as :func:`fastad.hessian`), trust-constr the
    exact sparse Hessian (as :func:`fastad.sparse_hessian`, a
    ``scipy.sparse.csr_array``; ``x0`` flattened to one 1-D vector).  SciPy
    is optional: without it this raises ``ImportError`` saying how to install it.

    Parameters
    ----------
    f : callable
        The objective, ``f(x, *args)``, returning a scalar.
    x0 : float, array or pytree
        The starting point, for example a dict of weight arrays.  SciPy sees the
        leaves concatenated into one 1-D vector (dict leaves in sorted key order),
        so ``bounds`` are given per element of that vector.
    method : str, optional
        SciPy's method name (default ``"L-BFGS-B"``).
    trace : bool, optional
        Record ``f`` once with ``fd.trace(f, x0, *args, retrace=True)`` and replay
        the recording at each evaluation: much faster for the many calls an
        optimiser makes; ``f`` is recorded again when its Python control flow
        takes another branch.  ``args`` are then the trace's dynamic parameters
        (floats or arrays).
    args : tuple, optional
        Extra arguments of ``f``, not optimised.
    **options
        Other keyword arguments (``bounds``, ``constraints``, ``tol``,
        ``callback``, ``options``) go to ``scipy.optimize.minimize`` unchanged;
        ``jac``, ``hess`` and ``hessp`` are fastad's to compute.

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result; ``res.x`` is SciPy's flat 1-D vector and ``res.params``
        the same point in the structure of ``x0``.

    Examples
    --------
    >>> res = fd.minimize(lambda p: (p["a"] - 1.0) ** 2 + fd.sum(p["b"] ** 2),
    ...                   {"a": 0.0, "b": np.ones(2)})
    >>> bool(res.success), round(res.params["a"], 6), bool(np.abs(res.params["b"]).max() < 1e-6)
    (True, 1.0, True)
    """
    scipy_minimize = _import_scipy_minimize()
    if not callable(f):
        raise TypeError("minimize: f must be callable, got %s" % type(f).__name__)
    for name in _OURS:
        if name in options:
            raise TypeError("minimize: %s is computed by fastad; do not pass it "
                            "(use scipy.optimize.minimize directly for your own)" % name)
    if not isinstance(args, tuple):
        args = (args,)
    if not isinstance(trace, (bool, np.bool_)):
        raise TypeError("minimize: trace must be a bool, got %s" % type(trace).__name__)
    name = _method_name(method)
    flat = _Flattener(x0)

    def flat_f(v, *a):
        return f(flat.unflatten(v), *a)

    if trace:
        fun, hessp, hess, sparse_hess = _traced(flat_f, flat.x0, args)
    else:
        fun, hessp, hess, sparse_hess = _untraced(flat_f, args)

    kwargs = dict(options)
    if name is None or name in _USES_JAC:
        kwargs["jac"] = True
        call = fun
    else:
        def call(v):
            return fun(v)[0]
    if name in _USES_HESSP:
        kwargs["hessp"] = hessp
    elif name in _USES_HESS:
        kwargs["hess"] = hess
    elif name in _USES_SPARSE_HESS:
        kwargs["hess"] = sparse_hess
    res = scipy_minimize(call, flat.x0.copy(), method=method, **kwargs)
    res["params"] = flat.unflatten(np.array(res.x, dtype=np.float64))
    return res


def _untraced(flat_f, args):
    from fastad._functional import value_and_grad
    vg = value_and_grad(flat_f)

    def fun(v):
        value, g = vg(np.array(v, dtype=np.float64), *args)
        return value, np.asarray(g, dtype=np.float64)

    def hessp(v, p):
        from fastad._forward import hvp   # forward-over-reverse, loaded only when a method needs it
        return np.asarray(hvp(lambda x: flat_f(x, *args))(
            np.array(v, dtype=np.float64), np.array(p, dtype=np.float64)), dtype=np.float64)

    def hess(v):
        from fastad._forward import hessian
        return np.asarray(hessian(lambda x: flat_f(x, *args))(
            np.array(v, dtype=np.float64)), dtype=np.float64)

    def sparse_hess(v):
        from fastad._sparse import sparse_hessian
        return sparse_hessian(lambda x: flat_f(x, *args))(np.array(v, dtype=np.float64))

    return fun, hessp, hess, sparse_hess


def _traced(flat_f, x0, args):
    try:
        from fastad._trace import trace
    except ImportError:
        raise ImportError("minimize(trace=True) needs fd.trace, which this build of "
                          "fastad does not have") from None
    # optimize=False: replay stays bit for bit the untraced run (same iterates)
    tf = trace(flat_f, x0.copy(), *args, retrace=True, optimize=False)

    def fun(v):
        value, g = tf.value_and_grad(np.array(v, dtype=np.float64), *args)
        return float(value), np.asarray(g, dtype=np.float64)

    def hessp(v, p):
        return np.asarray(tf.hvp(np.array(v, dtype=np.float64),
                                 np.array(p, dtype=np.float64), *args), dtype=np.float64)

    def hess(v):
        return np.asarray(tf.hessian(np.array(v, dtype=np.float64), *args),
                          dtype=np.float64)

    def sparse_hess(v):      # pattern and coloring kept on the trace
        return tf.sparse_hessian(np.array(v, dtype=np.float64), *args)

    return fun, hessp, hess, sparse_hess
