"""The functional API of reverse mode: fd.grad, fd.value_and_grad, fd.check_grad."""
import contextlib
import numbers

import numpy as np

from fastad._errors import GradientCheckError
from fastad._nest import (DUAL_ACTIVE, check_no_dual_level, nested_args, nested_grads,
                          nesting_tape)
from fastad._pytree import replace_args, tree_flatten, tree_map, tree_unflatten
from fastad._scratch import _pool, _scratch_tape
from fastad._tape import (Var, _set_debug_nans, as_source_dtype, float_array,
                          leaf_variable, source_dtype)


def release_memory():
    """Free the memory fastad keeps in the calling thread for reuse between calls.

    That is the scratch tapes of ``fd.grad``, ``fd.hessian``, ``fd.trace`` and the
    other functional calls, and the work buffers of the second-order sweeps.  The
    next call allocates afresh.  Call it after a peak (one very large recording)
    in a long-running thread; it is never needed for correctness.  A scratch tape
    also shrinks by itself after a call that used far less than a past peak.
    """
    from fastad._tape import _trim_heap
    idle = getattr(_pool, "idle", None)
    if idle:
        idle.clear()
    try:
        from fastad import _second
        _second._release_buffers()
    except ImportError:  # pragma: no cover - part of the normal build
        pass
    _trim_heap()


def _normalize_argnums(argnums, nargs, fname):
    if type(argnums) is int and 0 <= argnums < nargs:
        # the common call (argnums=0): the ABC checks below cost more than a
        # hundred recorded operations on every call of fd.grad(f)
        return [argnums]
    if isinstance(argnums, (bool, np.bool_)) or not isinstance(
            argnums, (numbers.Integral, tuple)):
        raise TypeError("%s: argnums must be an int or a tuple of ints, got %r"
                        % (fname, argnums))
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    out = []
    for a in nums:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError("%s: argnums must be ints, got %r" % (fname, a))
        if not -nargs <= a < nargs:
            raise ValueError("%s: argnums %d is out of range for %d positional "
                             "argument(s)" % (fname, a, nargs))
        out.append(int(a) % nargs)
    return out


def _leaf_to_var(tape, leaf, where):
    """A leaf Var of `leaf`; a bad leaf is a TypeError naming `where` and what it
    got (its dtype for an array), an int beyond float64 a ValueError."""
    if type(leaf) is Var:
        # fastad._nest.nesting_tape sends any argument holding a Var to the
        # nested path; a Var here would have escaped that check
        raise TypeError("%s is a Var of no transformation level this call can "
                        "record on" % where)
    if isinstance(leaf, (complex, np.complexfloating)):
        raise TypeError("%s must be real, got complex" % where)
    return leaf_variable(tape, leaf, where)


def _args_to_vars(tape, args, nums, fname):
    """Replace args[i] (i in nums) by pytrees of leaf Vars; return them too
    (fastad._pytree.replace_args: an argument named twice is converted once)."""
    variable = tape.variable

    def leaf_var(leaf, where):
        # plain floats (a list of 10^4 coordinates, say) skip the checks of the
        # general path: it costs about 1 us a leaf, as much as a few operations
        return variable(leaf) if type(leaf) is float else _leaf_to_var(tape, leaf, where)
    return replace_args(args, nums, leaf_var, fname)


# What a shape error on the output of a scalar-valued f suggests instead.
NON_SCALAR_HINT = ("use fd.jacobian for a function with an array output, or reduce "
                   "the output to a scalar first (e.g. with fd.sum)")


def scalar_output(out, fname):
    """(float value, scalar Var or None) of what a scalar-valued f returned.

    A non-scalar output (an array Var, an ndarray, a list of values) is a shape
    error, ValueError (API.md section 9); an output that is not a number at all is
    a TypeError.
    """
    if type(out) is Var:
        if out.shape != ():
            raise ValueError("%s: f must return a scalar, got a Var of shape %s; %s"
                             % (fname, out.shape, NON_SCALAR_HINT))
        return out.value, out
    if isinstance(out, (bool, np.bool_)) or out is None or isinstance(out, (str, bytes)):
        raise TypeError("%s: f must return a scalar number or Var, got %s"
                        % (fname, type(out).__name__))
    if isinstance(out, numbers.Real):
        return float(out), None
    if isinstance(out, np.ndarray) and out.dtype.kind in "biuf":
        if out.ndim == 0:
            return float(out), None
        raise ValueError("%s: f must return a scalar, got an array of shape %s; %s"
                         % (fname, out.shape, NON_SCALAR_HINT))
    if isinstance(out, (list, tuple)) and _numeric_tree(out):
        raise ValueError("%s: f must return a scalar, got a %s of %d items; %s"
                         % (fname, type(out).__name__, len(out), NON_SCALAR_HINT))
    raise TypeError("%s: f must return a scalar number or Var, got %s"
                    % (fname, type(out).__name__ if not isinstance(out, np.ndarray)
                       else "an array of dtype %s" % out.dtype))


def _numeric_tree(tree):
    """Whether every leaf of `tree` is a number, a Var or a numeric array."""
    for leaf in tree_flatten(tree)[0]:
        if type(leaf) is Var or (isinstance(leaf, numbers.Real) and
                                 not isinstance(leaf, (bool, np.bool_))):
            continue
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biuf":
            continue
        return False
    return True


def _zeros_like_vars(tree):
    """The gradient of a constant: zeros shaped (and typed, API.md 14) like tree."""
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [as_source_dtype(0.0 if v.shape == () else
                                               np.zeros(v.shape), source_dtype(v))
                               for v in leaves])


def split_aux(out, fname):
    """(output, aux) of what f returned under has_aux=True: a pair, else a
    TypeError saying what f must return."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError("%s(..., has_aux=True): f must return a pair (output, aux), got "
                        "%s" % (fname, "a tuple of %d items" % len(out)
                                if isinstance(out, tuple) else type(out).__name__))
    return out


def aux_values(aux):
    """aux with every Var replaced by its value (a float, or a read-only array's
    copy), so nothing of the scratch tape leaves the call: the tape is reused."""
    return tree_map(_plain_leaf, aux)


def _plain_leaf(leaf):
    if type(leaf) is Var:
        value = leaf.value
        return float(value) if leaf.shape == () else np.array(value)
    return leaf


def value_and_grad(f, argnums=0, has_aux=False):
    """Return a function computing ``(f(*args), gradient of f)`` by reverse mode.

    Like :func:`fastad.grad`, but the returned function also gives the value of
    ``f``, at no extra cost: ``f`` runs once, recording, and the tape is swept once.

    Parameters
    ----------
    f : callable
        A function returning a scalar: a scalar Var, a Python number, a NumPy
        scalar or a 0-d array.
    argnums : int or tuple of int, optional
        Which positional arguments to differentiate (default 0).
    has_aux : bool, optional
        ``f`` returns a pair ``(output, aux)``: ``output`` is differentiated,
        ``aux`` comes back beside it with its Vars replaced by their values.

    Returns
    -------
    callable
        ``value_and_grad_f(*args, **kwargs)`` returning ``(value, gradient)``:
        ``value`` is a float, ``gradient`` as for :func:`fastad.grad`; with
        ``has_aux=True``, ``((value, aux), gradient)``.

    Examples
    --------
    >>> fd.value_and_grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 3.0)
    (6.0, (3.0, 2.0))
    """
    return _value_and_grad(f, argnums, "value_and_grad", has_aux)


def _value_and_grad(f, argnums, fname, has_aux=False):
    """value_and_grad, with error messages naming `fname` (grad or value_and_grad);
    with has_aux, ((value, aux), gradient)."""
    if not callable(f):
        raise TypeError("%s: f must be callable, got %s" % (fname, type(f).__name__))
    check_has_aux(has_aux, fname)

    def value_and_grad_f(*args, **kwargs):
        if DUAL_ACTIVE:
            check_no_dual_level()  # inside fd.derivative's Dual evaluation: retry
        nums = _normalize_argnums(argnums, len(args), fname)
        outer = nesting_tape(args, nums)
        if outer is not None:
            # inside another transformation: record on its tape, return Vars of it
            call_args, trees = nested_args(outer, args, nums, fname)
            out = f(*call_args, **kwargs)
            if has_aux:
                # aux stays on the outer tape, as the value does: the outer
                # transformation may differentiate it
                out, aux = split_aux(out, fname)
            value, target = scalar_output(out, fname)
            if target is None:
                grads = [_zeros_like_vars(t) for t in trees]
            else:
                grads = nested_grads(outer, target, trees, fname)
                value = target
            grads = tuple(grads) if isinstance(argnums, tuple) else grads[0]
            return ((value, aux), grads) if has_aux else (value, grads)
        with _scratch_tape() as tape:
            call_args, trees = _args_to_vars(tape, args, nums, fname)
            out = f(*call_args, **kwargs)
            if has_aux:
                out, aux = split_aux(out, fname)
                aux = aux_values(aux)
            value, target = scalar_output(out, fname)
            if target is None:
                grads = [_zeros_like_vars(t) for t in trees]
            else:
                # one argument (the common case) skips the pytree walk of the list
                grads = ([tape.gradient(target, trees[0])] if len(trees) == 1
                         else tape.gradient(target, trees))
        grads = tuple(grads) if isinstance(argnums, tuple) else grads[0]
        if has_aux:
            return (value, aux), grads
        return value, grads

    value_and_grad_f.__name__ = "value_and_grad_%s" % getattr(f, "__name__", "f")
    value_and_grad_f.__doc__ = f.__doc__
    return value_and_grad_f


def check_has_aux(has_aux, fname):
    if not isinstance(has_aux, (bool, np.bool_)):
        raise TypeError("%s: has_aux must be True or False, got %r" % (fname, has_aux))


def grad(f, argnums=0, has_aux=False):
    """Return a function computing the gradient of scalar-valued ``f`` by reverse mode.

    Each call of the returned function runs ``f`` once on Vars, recording every
    operation on a scratch tape, and sweeps the tape backwards once: the whole
    gradient for a small constant factor over running ``f``, however many inputs.

    Parameters
    ----------
    f : callable
        A function returning a scalar: a scalar Var, a Python number, a NumPy
        scalar or a 0-d array.  Its differentiated arguments arrive as Vars
        (array Vars for arrays, pytrees of Vars for lists, tuples and dicts).
    argnums : int or tuple of int, optional
        Which positional arguments to differentiate (default 0).  A tuple gives a
        tuple of gradients, one per entry.
    has_aux : bool, optional
        ``f`` returns a pair ``(output, aux)``: ``output`` is differentiated and
        ``grad_f`` returns ``(gradient, aux)``, ``aux`` with its Vars replaced by
        their values (JAX's convention).

    Returns
    -------
    callable
        ``grad_f(*args, **kwargs)``: the gradient with respect to
        ``args[argnums]``, with that argument's structure and shapes (a float for
        a scalar), in its floating dtype (float32 in, float32 out).  A result that
        does not depend on the argument gives zeros.

    Raises
    ------
    TypeError
        ``f`` is not callable, an argument is not a number, an array of numbers
        or a pytree of them, or ``f`` returns something that is not a number.
    ValueError
        ``f`` returns an array (use :func:`fastad.jacobian`), or ``argnums`` is
        out of range.

    Examples
    --------
    >>> fd.grad(lambda x: x * x)(3.0)
    6.0
    >>> fd.grad(lambda p: fd.sum(p["w"] ** 2))({"w": np.array([1.0, 2.0])})
    {'w': array([2., 4.])}
    >>> fd.grad(lambda x: (x * x, {"x3": x ** 3}), has_aux=True)(2.0)
    (4.0, {'x3': 8.0})
    """
    vg = _value_and_grad(f, argnums, "grad", has_aux)

    if has_aux:
        def grad_f(*args, **kwargs):
            (_, aux), g = vg(*args, **kwargs)
            return g, aux
    else:
        def grad_f(*args, **kwargs):
            return vg(*args, **kwargs)[1]

    grad_f.__name__ = "grad_%s" % getattr(f, "__name__", "f")
    grad_f.__doc__ = f.__doc__
    return grad_f


@contextlib.contextmanager
def debug_nans():
    """A context manager: the first operation inside it that makes a NaN from
    inputs that are not NaN raises ``FloatingPointError`` naming the operation.

    Outside it NaNs propagate silently, as in NumPy.  It applies to the calling
    thread and may be nested.

    Examples
    --------
    >>> with fd.debug_nans():
    ...     fd.grad(lambda x: fd.log(x))(-1.0)
    Traceback (most recent call last):
    FloatingPointError: fd.debug_nans: log produced NaN from non-NaN inputs (-1.0, 0.0)
    """
    old = _set_debug_nans(True)
    try:
        yield
    finally:
        _set_debug_nans(old)


def check_grad(f, x, rtol=1e-6):
    """Compare ``fd.grad(f)(x)`` with central finite differences.

    The differences use a fourth-order stencil, accurate to about 1e-10.

    Parameters
    ----------
    f : callable
        A scalar-valued function of one float or array argument.
    x : float or array_like
        The point to check at.
    rtol : float, optional
        The largest acceptable error (default 1e-6).

    Returns
    -------
    float
        The largest relative error over all coordinates,
        ``abs(g - d) / max(abs(g), abs(d), 1)`` for the gradient ``g`` and the
        finite difference ``d``.  The floor of 1 makes it an absolute error for
        small gradients, where finite differences have no relative accuracy.

    Raises
    ------
    fastad.GradientCheckError
        The error exceeds ``rtol``; the message lists the worst coordinates.

    Examples
    --------
    >>> fd.check_grad(lambda x: fd.sum(fd.sin(x)), np.array([0.1, 0.2])) < 1e-10
    True
    """
    if isinstance(x, (str, bytes, complex)) or x is None:
        raise TypeError("check_grad: x must be a number or array, got %s"
                        % type(x).__name__)
    x0 = np.array(float_array(x, "check_grad: x"))     # TypeError/ValueError naming x
    scalar = x0.ndim == 0
    g = np.atleast_1d(np.asarray(grad(f)(float(x0) if scalar else x0), dtype=np.float64))
    flat = x0.reshape(-1)
    fd_ = np.empty(flat.size)

    def f_at(v):
        arg = float(v[0]) if scalar else v.reshape(x0.shape)
        return scalar_output(f(arg), "check_grad")[0]

    for k in range(flat.size):
        h = 1e-3 * max(1.0, abs(flat[k]))
        vals = []
        for step in (2, 1, -1, -2):
            v = flat.copy()
            v[k] += step * h
            vals.append(f_at(v))
        fd_[k] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    gf = g.reshape(-1)
    err = np.abs(gf - fd_) / np.maximum(np.maximum(np.abs(gf), np.abs(fd_)), 1.0)
    err = np.where(np.isnan(err), np.inf, err)
    worst = float(err.max()) if err.size else 0.0
    if worst > rtol:
        order = np.argsort(-err)[:5]
        rows = ["  x[%s]: grad %.12g, finite difference %.12g, relative error %.3g"
                % (np.unravel_index(i, x0.shape) if x0.ndim else "", gf[i], fd_[i], err[i])
                for i in order]
        raise GradientCheckError("check_grad: relative error %.3g exceeds rtol=%g; "
                                 "worst coordinates:\n%s" % (worst, rtol, "\n".join(rows)))
    return worst
