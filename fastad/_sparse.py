"""fd.jacobian_sparsity, fd.sparse_jacobian, fd.hessian_sparsity, fd.sparse_hessian
and fd.least_squares: sparse derivatives as scipy.sparse.csr_array.

Each records f with fd.trace and hands the work to the traced function
(tf.sparse_jacobian / tf.sparse_hessian), whose pattern and coloring come from
fastad._sparse_plan; to evaluate many times at new points, trace f yourself and
call those methods (the pattern and coloring are then found once).
"""
import functools

import numpy as np

from fastad._sparse_plan import scipy_sparse
from fastad._trace import trace

__all__ = ["jacobian_sparsity", "sparse_jacobian", "hessian_sparsity",
           "sparse_hessian", "least_squares"]


def _check_callable(f, fname):
    if not callable(f):
        raise TypeError("fd.%s: f must be callable, got %s" % (fname, type(f).__name__))


def _wrap(g, f, fname):
    functools.update_wrapper(g, f, assigned=("__doc__",), updated=())
    g.__name__ = "%s_%s" % (fname, getattr(f, "__name__", "f"))
    return g


def _vector(x, fname):
    """x as a 1-D float64 array, or a clear error."""
    if isinstance(x, (dict, tuple)) or x is None or isinstance(x, (str, bytes)):
        raise TypeError("fd.%s: x must be a 1-D array of numbers, got %s"
                        % (fname, type(x).__name__))
    try:
        arr = np.asarray(x)
    except Exception:
        raise TypeError("fd.%s: x must be a 1-D array of numbers" % fname) from None
    if arr.dtype.kind not in "biuf":
        raise TypeError("fd.%s: x must be a 1-D array of real numbers, got dtype %s"
                        % (fname, arr.dtype))
    if arr.ndim != 1:
        raise ValueError("fd.%s: x must be a 1-D array, got shape %s (flatten it: f "
                         "maps R^n to R^m)" % (fname, arr.shape))
    return np.array(arr, dtype=np.float64)


def _pattern_of(f, x, kind, fname):
    _check_callable(f, fname)
    sp = scipy_sparse("fd." + fname)
    tf = trace(f, _vector(x, fname))
    return tf._sparse_plan(tf._paths[0], kind, "fd." + fname).pattern(sp)


def jacobian_sparsity(f):
    """Return a function giving the structural sparsity pattern of f's Jacobian.

    ``jacobian_sparsity(f)(x)`` records ``f`` at the 1-D array ``x`` and returns
    a boolean ``scipy.sparse.csr_array`` of shape ``(m, n)``: entry ``(i, j)`` is
    stored when output ``i`` depends on input ``j`` along the recorded path (even
    if the derivative happens to be zero at ``x``).

    Examples
    --------
    >>> P = fd.jacobian_sparsity(lambda x: x[1:] * x[:-1])(np.ones(4))
    >>> P.toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    _check_callable(f, "jacobian_sparsity")
    return _wrap(lambda x: _pattern_of(f, x, "jacobian", "jacobian_sparsity"), f,
                 "jacobian_sparsity")


def hessian_sparsity(f):
    """Return a function giving the structural sparsity pattern of the Hessian
    of scalar-valued ``f``: a symmetric boolean ``scipy.sparse.csr_array``
    ``(n, n)`` at the 1-D array ``x``."""
    _check_callable(f, "hessian_sparsity")
    return _wrap(lambda x: _pattern_of(f, x, "hessian", "hessian_sparsity"), f,
                 "hessian_sparsity")


def sparse_jacobian(f, info=False):
    """Return a function computing f's Jacobian as a ``scipy.sparse.csr_array``.

    ``sparse_jacobian(f)(x)``, for ``f`` mapping a 1-D array to a 1-D array,
    records ``f``, finds its pattern, colors it (columns for forward sweeps or
    rows for reverse sweeps, whichever needs fewer colors) and evaluates the
    Jacobian from one compressed sweep.  With ``info=True`` it returns
    ``(J, info)``, ``info.colors`` being the number of colors (directions swept).
    To evaluate at many points, use ``fd.trace(f, x0).sparse_jacobian(x)``:
    the pattern and coloring are then kept between calls.

    Examples
    --------
    >>> J = fd.sparse_jacobian(lambda x: x[1:] * x[:-1])(np.arange(1.0, 5.0))
    >>> J.toarray()
    array([[2., 1., 0., 0.],
           [0., 3., 2., 0.],
           [0., 0., 4., 3.]])
    """
    _check_callable(f, "sparse_jacobian")

    def sparse_jacobian_f(x):
        scipy_sparse("fd.sparse_jacobian")
        x = _vector(x, "sparse_jacobian")
        tf = trace(f, x)
        res = tf._sparse(x, (), "jacobian", "fd.sparse_jacobian", info)
        return res

    return _wrap(sparse_jacobian_f, f, "sparse_jacobian")


def sparse_hessian(f, info=False):
    """Return a function computing the Hessian of scalar-valued ``f`` as a
    symmetric ``scipy.sparse.csr_array`` ``(n, n)``: the pattern is star
    colored and the Hessian read directly from one forward-over-reverse sweep
    of ``info.colors`` directions.  ``info=True`` returns ``(H, info)``.

    Examples
    --------
    >>> H = fd.sparse_hessian(lambda x: fd.sum(x[1:] * x[:-1]))(np.ones(3))
    >>> H.toarray()
    array([[0., 1., 0.],
           [1., 0., 1.],
           [0., 1., 0.]])
    """
    _check_callable(f, "sparse_hessian")

    def sparse_hessian_f(x):
        scipy_sparse("fd.sparse_hessian")
        x = _vector(x, "sparse_hessian")
        tf = trace(f, x)
        return tf._sparse(x, (), "hessian", "fd.sparse_hessian", info)

    return _wrap(sparse_hessian_f, f, "sparse_hessian")


def least_squares(f, x0, sparse=None, **kw):
    """``scipy.optimize.least_squares`` of the residuals ``f(x)`` (1-D array to
    1-D array) with fastad's exact Jacobian.

    ``f`` is traced once at ``x0`` (every later residual and Jacobian is a replay:
    ``f`` must take the same path, or be traced with branches as guards; a guard
    that fails re-records it).  The Jacobian is sparse (``tf.sparse_jacobian``)
    when ``sparse=True``, dense when ``False``; by default sparse when its pattern
    fills at most 1/4 of the matrix and it has at least 100 entries.  Other
    keywords go to ``scipy.optimize.least_squares`` (``jac`` is fastad's); for
    a sparse Jacobian the solver's ``tr_solver`` defaults to ``"lsmr"`` (its
    "exact" solver needs a dense matrix).  Returns SciPy's ``OptimizeResult``.
    """
    _check_callable(f, "least_squares")
    if "jac" in kw:
        raise TypeError("fd.least_squares: jac is computed by fastad; do not pass it")
    for k in ("args", "kwargs"):
        if kw.get(k):
            raise TypeError("fd.least_squares: %s is not supported; close over the "
                            "extra arguments in f (lambda x: g(x, a))" % k)
    if sparse is not None and not isinstance(sparse, (bool, np.bool_)):
        raise TypeError("fd.least_squares: sparse must be True, False or None, got %r"
                        % (sparse,))
    try:
        from scipy import optimize
    except ImportError:
        raise ImportError("fd.least_squares needs SciPy; install it with "
                          "`pip install scipy`") from None
    x0 = _vector(x0, "least_squares")
    tf = trace(f, x0, retrace=True)
    J0, inf = tf.sparse_jacobian(x0, info=True)
    m, n = J0.shape
    if sparse is None:
        sparse = m * n >= 100 and inf.nnz * 4 <= m * n
    if sparse:
        jac = tf.sparse_jacobian
        kw.setdefault("tr_solver", "lsmr")
        if kw.get("method", "trf") == "lm":
            raise ValueError("fd.least_squares: method='lm' needs a dense Jacobian; "
                             "pass sparse=False")
    else:
        jac = tf.jacobian

    def fun(x):
        return np.asarray(tf(x), dtype=np.float64).reshape(-1)

    return optimize.least_squares(fun, x0, jac=jac, **kw)
