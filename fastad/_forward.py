"""Forward mode and second order: fd.jvp, fd.vjp, fd.jacobian, fd.hessian, fd.hvp,
fd.derivative.

Everything except fd.derivative records f once on a tape and then sweeps the
recording in C (fastad._second): tangent sweeps for forward mode, reverse sweeps
for vjp, forward-over-reverse sweeps for Hessians.  fd.derivative evaluates f on a
Dual number (forward mode without a tape).
"""
import numbers

import numpy as np

from fastad._dual import Dual
from fastad._errors import TapeError
from fastad._functional import (_args_to_vars, _normalize_argnums,
                                _scratch_tape, aux_values, check_has_aux, scalar_output,
                                split_aux)
from fastad._pytree import tree_flatten, tree_unflatten
from fastad._custom import refuse_forward_mode, without_jvp
from fastad._nest import (DUAL_ACTIVE, DualRetry, check_no_dual_level, depends_on_level,
                          enter_dual, leave_dual, level_jacobian, level_jvp, level_vjp, nested_args,
                          nesting_tape)
from fastad._scratch import current_level, recording_level
from fastad._second import (hessian_sweep, hvp_sweep, jacobian_forward, reverse_sweep,
                            tangent_sweep, var_slots)
from fastad._tape import (Tape, Var, as_source_dtype, float_array, grad_dtype,
                          source_dtype, stack)
from fastad._tape import sum as fd_sum

__all__ = ["jvp", "vjp", "jacobian", "hessian", "hvp", "derivative"]


def _check_callable(f, fname):
    if not callable(f):
        raise TypeError("%s: f must be callable, got %s" % (fname, type(f).__name__))


def _wrap_name(fn, f, prefix):
    fn.__name__ = "%s_%s" % (prefix, getattr(f, "__name__", "f"))
    fn.__doc__ = getattr(f, "__doc__", None)
    return fn


def _leaf_slots(leaves):
    """(concatenated input slots, [(offset, size, shape, dtype)] per leaf Var); the
    dtype its derivatives come back in (None: float64, API.md section 14)."""
    parts, layout, off = [], [], 0
    for v in leaves:
        s = var_slots(v)
        parts.append(s)
        layout.append((off, s.size, v.shape, source_dtype(v)))
        off += s.size
    slots = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return slots, layout


def _output(tape, out, fname):
    """What f returned, as (value, flat slots or None for a constant, shape).

    A Var (scalar or array), a number, an ndarray, or a list/tuple of scalar Vars
    and numbers (stacked into a 1-D output).
    """
    var, value, shape = _output_var(tape, out, fname)
    return value, (None if var is None else var_slots(var)), shape


def _output_var(tape, out, fname):
    """What f returned, as (Var or None for a constant, value, shape): _output's
    cases, the Var kept for a nested level to differentiate."""
    if isinstance(out, (list, tuple)) and any(type(e) is Var for e in tree_flatten(out)[0]):
        try:
            out = stack([stack(e) if isinstance(e, (list, tuple)) else e for e in out])
        except ValueError as e:     # ragged: a shape error
            raise ValueError("%s: f returned a list that is not a rectangular array "
                             "(%s)" % (fname, e)) from None
        except TypeError as e:
            raise TypeError("%s: f returned a list that is not an array of numbers and "
                            "Vars (%s)" % (fname, e)) from None
    if type(out) is Var:
        if out.tape is not tape:
            raise TapeError("%s: f returned a Var recorded on another tape, not one "
                            "computed from its arguments" % fname)
        value = out.value
        return out, (float(value) if out.shape == () else np.array(value)), out.shape
    if isinstance(out, Dual):
        raise TypeError("%s: f returned a Dual; use fd.derivative for Dual numbers, "
                        "or return a Var" % fname)
    if isinstance(out, (bool, np.bool_)) or out is None or isinstance(out, (str, bytes)):
        raise TypeError("%s: f must return a number, an array or a Var, got %s"
                        % (fname, type(out).__name__))
    try:
        arr = np.asarray(out)
    except Exception:
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise TypeError("%s: f must return a number, an array or a Var, got %s"
                        % (fname, type(out).__name__))
    arr = arr.astype(np.float64)
    return None, (float(arr) if arr.ndim == 0 else arr), arr.shape


def _split(flat_block, layout, lead_shape, treedef):
    """Cut the columns of a (..., total) block into one array per input leaf, each
    in its leaf's dtype."""
    pieces = []
    for off, size, shape, dtype in layout:
        part = flat_block[..., off:off + size].reshape(tuple(lead_shape) + tuple(shape))
        pieces.append(as_source_dtype(float(part) if part.ndim == 0 else part, dtype))
    return tree_unflatten(treedef, pieces)


def _common_dtype(layout):
    """The dtype of a derivative that mixes every input (a jvp's tangent): NumPy's
    promotion of the inputs' dtypes, so float32 only when every input is float32
    (None, float64, as soon as one is float64, an int or a Python number)."""
    dtypes = {d for _, _, _, d in layout}
    if not dtypes or None in dtypes:
        return None
    return np.result_type(*dtypes)


def _record(f, args, nums, tape, fname, kwargs):
    """Run f on leaf Vars for args[nums]; return (out, per-argnum (leaves, treedef))."""
    call_args, trees = _args_to_vars(tape, args, nums, fname)
    out = f(*call_args, **kwargs)
    return out, [tree_flatten(t) for t in trees]


# ----------------------------------------------------------------------------------
# jvp / vjp

def _as_tuple(x, what, fname):
    if isinstance(x, (tuple, list)):
        return tuple(x)
    raise TypeError("%s: %s must be a tuple (one entry per argument of f), got %s"
                    % (fname, what, type(x).__name__))


def jvp(f, primals, tangents):
    """``(f(*primals), J @ tangents)`` by forward mode.

    ``f`` is recorded once and the recording is swept forwards once (a tangent
    sweep): the derivative of every output along one input direction.

    Inside another transformation (called on its Vars, or while it records) it
    records on that transformation's tape and returns Vars, which the outer one
    differentiates in turn: every transformation nests in every other.

    Parameters
    ----------
    f : callable
        Returns a number, a Var (scalar or array) or a list of scalars.
    primals : tuple
        The arguments of ``f``, one entry per argument.
    tangents : tuple
        The input direction: one entry per primal, each with the structure and
        shapes of its primal.

    Returns
    -------
    tuple
        ``(value, tangent_out)``: the output of ``f`` (a float or an array) and
        its directional derivative, of the output's shape.

    Examples
    --------
    >>> fd.jvp(lambda x: x * x, (3.0,), (1.0,))
    (9.0, 6.0)
    """
    _check_callable(f, "jvp")
    if DUAL_ACTIVE:
        check_no_dual_level()
    primals = _as_tuple(primals, "primals", "jvp")
    tangents = _as_tuple(tangents, "tangents", "jvp")
    if len(primals) != len(tangents):
        raise ValueError("jvp: primals and tangents must have the same length, got %d "
                         "and %d" % (len(primals), len(tangents)))
    outer = nesting_tape(primals, range(len(primals)))
    if outer is not None:
        return _nested_jvp(outer, f, primals, tangents)
    with _scratch_tape() as tape:
        out, flat = _record(f, primals, range(len(primals)), tape, "jvp", {})
        value, out_slots, shape = _output(tape, out, "jvp")
        leaves = [v for lv, _ in flat for v in lv]
        in_slots, layout = _leaf_slots(leaves)
        seed = np.empty(in_slots.size)
        k = 0
        for i, ((lv, td), t) in enumerate(zip(flat, tangents)):
            tl, ttd = tree_flatten(t)
            if ttd != td:
                raise ValueError("jvp: tangents[%d] must have the structure of "
                                 "primals[%d]" % (i, i))
            for v, tv in zip(lv, tl):
                arr = _float_array(tv, "jvp: tangents[%d]" % i)
                if arr.shape != v.shape:
                    raise ValueError("jvp: tangents[%d] has shape %s, its primal has "
                                     "shape %s" % (i, arr.shape, v.shape))
                seed[k:k + arr.size] = arr.reshape(-1)
                k += arr.size
        if out_slots is None:
            tan = np.zeros(shape)
        else:
            refuse_forward_mode(tape, "jvp", "fd.vjp / fd.grad")
            tan = tangent_sweep(tape, in_slots, out_slots, seed[None, :], "jvp")[0]
            tan = tan.reshape(shape)
    return value, as_source_dtype(float(tan) if tan.ndim == 0 else tan,
                                  _common_dtype(layout))


def _nested_jvp(tape, f, primals, tangents):
    """fd.jvp inside another transformation: (value, J @ tangents) as Vars of the
    outer tape (the tangents may be its Vars too)."""
    call, trees = nested_args(tape, primals, range(len(primals)), "jvp")
    var, value, shape = _output_var(tape, f(*call), "jvp")
    leaves, tans = [], []
    for i, (tree, t) in enumerate(zip(trees, tangents)):
        lv, td = tree_flatten(tree)
        tl, ttd = tree_flatten(t)
        if ttd != td:
            raise ValueError("jvp: tangents[%d] must have the structure of "
                             "primals[%d]" % (i, i))
        for v, tv in zip(lv, tl):
            leaves.append(v)
            tans.append(_level_operand(tape, tv, v.shape, "jvp: tangents[%d]" % i,
                                       "its primal"))
    if var is None:
        return value, _zeros(shape)
    return var, level_jvp(tape, var, leaves, tans, "jvp")


def _level_operand(tape, x, shape, where, whose):
    """A tangent, cotangent or direction of a nested level: a Var of the outer
    tape or a float array, of the given shape (ValueError naming `where`)."""
    if type(x) is Var:
        if x.tape is not tape:
            raise TapeError("%s is a Var of another tape than the outer level's" % where)
        got = x.shape
    else:
        x = _float_array(x, where)
        got = x.shape
        if x.ndim == 0:
            x = float(x)
    if tuple(got) != tuple(shape):
        raise ValueError("%s has shape %s, %s has shape %s"
                         % (where, tuple(got), whose, tuple(shape)))
    return x


def _zeros(shape):
    return 0.0 if tuple(shape) == () else np.zeros(shape)


def _float_array(x, where):
    """x as a float64 ndarray: TypeError naming `where` and what it got (its dtype
    for an array), ValueError for an int beyond float64's range."""
    if type(x) is Var or isinstance(x, Dual):
        raise TypeError("%s must be a number or an array of numbers, got %s"
                        % (where, type(x).__name__))
    return float_array(x, where)


def vjp(f, *primals, has_aux=False):
    """``(f(*primals), vjp_fn)``: the value and a vector-Jacobian product function.

    ``f`` is run and recorded once; ``vjp_fn(u)`` sweeps the kept recording
    backwards, so it may be called any number of times with different
    cotangents ``u`` (each of the shape of ``f``'s output).

    Inside another transformation (called on its Vars, or while it records) it
    records on that transformation's tape and returns Vars, which the outer one
    differentiates in turn: every transformation nests in every other.

    With ``has_aux=True``, ``f`` returns a pair ``(output, aux)`` and the result
    is ``(value, vjp_fn, aux)``, ``aux`` with its Vars replaced by their values.

    Returns
    -------
    tuple
        ``(value, vjp_fn)``, where ``vjp_fn(u)`` returns ``u @ J`` as a tuple with
        one entry per primal, each with its primal's structure and shapes.

    Examples
    --------
    >>> value, vjp_fn = fd.vjp(lambda x: x * 2.0, np.array([1.0, 2.0]))
    >>> value, vjp_fn(np.array([1.0, 10.0]))
    (array([2., 4.]), (array([ 2., 20.]),))
    """
    _check_callable(f, "vjp")
    check_has_aux(has_aux, "vjp")
    if DUAL_ACTIVE:
        check_no_dual_level()
    outer = nesting_tape(primals, range(len(primals)))
    if outer is not None:
        return _nested_vjp(outer, f, primals, has_aux)
    tape = Tape()
    with recording_level(tape):     # kept for vjp_fn; what f calls records on it
        out, flat = _record(f, primals, range(len(primals)), tape, "vjp", {})
        if has_aux:
            out, aux = split_aux(out, "vjp")
            aux = aux_values(aux)
    value, out_slots, shape = _output(tape, out, "vjp")
    leaves = [v for lv, _ in flat for v in lv]
    in_slots, layout = _leaf_slots(leaves)
    # per primal: (first leaf index, number of leaves, treedef)
    groups, start = [], 0
    for lv, td in flat:
        groups.append((start, len(lv), td))
        start += len(lv)

    def vjp_fn(cotangent):
        c = _float_array(cotangent, "vjp_fn: cotangent")
        if c.shape != tuple(shape):
            raise ValueError("vjp_fn: cotangent must have the shape of f's output %s, "
                             "got %s" % (tuple(shape), c.shape))
        if out_slots is None:
            g = np.zeros(in_slots.size)
        else:
            g = reverse_sweep(tape, out_slots, in_slots, c.reshape(1, -1), "vjp_fn")[0]
        result = []
        for first, count, td in groups:
            result.append(_split(g, layout[first:first + count], (), td))
        return tuple(result)

    vjp_fn.__name__ = "vjp_%s" % getattr(f, "__name__", "f")
    if has_aux:
        return value, vjp_fn, aux
    return value, vjp_fn


def _nested_call(tape, f, args, nums, fname, has_aux, kwargs):
    """f run inside another transformation, on fresh slots of its tape for
    args[nums]: (output Var or None, value, output shape, (leaves, treedef) of
    each differentiated argument, aux)."""
    call, trees = nested_args(tape, args, nums, fname)
    out = f(*call, **kwargs)
    aux = None
    if has_aux:
        out, aux = split_aux(out, fname)
    var, value, shape = _output_var(tape, out, fname)
    return var, value, shape, [tree_flatten(t) for t in trees], aux


def _per_argument(flat, items):
    """items, one per leaf in flat's order, rebuilt as one tree per argument."""
    result, first = [], 0
    for lv, td in flat:
        result.append(tree_unflatten(td, items[first:first + len(lv)]))
        first += len(lv)
    return result


def _nested_vjp(tape, f, primals, has_aux):
    """fd.vjp inside another transformation: the value and vjp_fn give Vars of
    the outer tape; aux stays as f returned it (the outer level may use it)."""
    var, value, shape, flat, aux = _nested_call(tape, f, primals,
                                                range(len(primals)), "vjp", has_aux, {})
    leaves = [v for lv, _ in flat for v in lv]

    def vjp_fn(cotangent):
        c = _level_operand(tape, cotangent, shape, "vjp_fn: cotangent",
                           "f's output")
        if var is None:
            grads = [_zeros(v.shape) for v in leaves]
        else:
            if type(c) is Var and depends_on_level(tape, c, leaves):
                raise TypeError(
                    "vjp_fn: the cotangent depends on this fd.vjp's own primals (it "
                    "was computed from f's output, say) inside another "
                    "transformation; compute it from the outer variables before "
                    "calling fd.vjp, or use fd.grad of the product")
            grads = level_vjp(tape, var, c, leaves, "vjp_fn")
        return tuple(_per_argument(flat, grads))

    vjp_fn.__name__ = "vjp_%s" % getattr(f, "__name__", "f")
    value = value if var is None else var
    return (value, vjp_fn, aux) if has_aux else (value, vjp_fn)


# ----------------------------------------------------------------------------------
# jacobian

def jacobian(f, argnums=0, has_aux=False):
    """Return a function computing the Jacobian of ``f`` with respect to
    ``args[argnums]``.

    ``f`` is recorded once; the Jacobian comes from forward sweeps when there are
    fewer inputs than outputs and from reverse sweeps otherwise, several
    directions per sweep.

    Inside another transformation (called on its Vars, or while it records) it
    records on that transformation's tape and returns Vars, which the outer one
    differentiates in turn: every transformation nests in every other.

    Returns
    -------
    callable
        ``jacobian_f(*args, **kwargs)``: an array of shape
        ``out.shape + in.shape`` (a float when both are scalars); for a pytree
        argument, the same pytree of such arrays; a tuple of them for a tuple
        ``argnums``.  With ``has_aux=True``, ``f`` returns a pair ``(output,
        aux)`` and ``jacobian_f`` returns ``(J, aux)``, ``aux`` with its Vars
        replaced by their values.

    Examples
    --------
    >>> fd.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    _check_callable(f, "jacobian")
    check_has_aux(has_aux, "jacobian")

    def jacobian_f(*args, **kwargs):
        if DUAL_ACTIVE:
            check_no_dual_level()
        nums = _normalize_argnums(argnums, len(args), "jacobian")
        outer = nesting_tape(args, nums)
        if outer is not None:
            return _nested_jacobian(outer, f, args, nums, argnums, has_aux, kwargs)
        with _scratch_tape() as tape:
            out, flat = _record(f, args, nums, tape, "jacobian", kwargs)
            if has_aux:
                out, aux = split_aux(out, "jacobian")
                aux = aux_values(aux)
            _, out_slots, shape = _output(tape, out, "jacobian")
            leaves = [v for lv, _ in flat for v in lv]
            in_slots, layout = _leaf_slots(leaves)
            p, m = int(np.prod(shape, dtype=np.int64)), in_slots.size
            if out_slots is None:
                J = np.zeros((p, m))
            elif m <= p and without_jvp(tape) is None:
                # forward mode, unless a custom_vjp (no JVP rule) is on the tape
                J = jacobian_forward(tape, in_slots, out_slots, fname="jacobian")
            else:
                J = reverse_sweep(tape, out_slots, in_slots, np.eye(p), "jacobian")
        results, first = [], 0
        for lv, td in flat:
            results.append(_split(J.reshape(tuple(shape) + (m,)),
                                  layout[first:first + len(lv)], shape, td))
            first += len(lv)
        J = tuple(results) if isinstance(argnums, tuple) else results[0]
        return (J, aux) if has_aux else J

    return _wrap_name(jacobian_f, f, "jacobian")


def _nested_jacobian(tape, f, args, nums, argnums, has_aux, kwargs):
    """fd.jacobian inside another transformation: blocks as Vars of the outer tape."""
    var, _, shape, flat, aux = _nested_call(tape, f, args, nums, "jacobian", has_aux,
                                            kwargs)
    leaves = [v for lv, _ in flat for v in lv]
    if var is None:
        blocks = [_zeros(tuple(shape) + tuple(v.shape)) for v in leaves]
    else:
        blocks = level_jacobian(tape, var, leaves, "jacobian")
    results = _per_argument(flat, blocks)
    J = tuple(results) if isinstance(argnums, tuple) else results[0]
    return (J, aux) if has_aux else J


# ----------------------------------------------------------------------------------
# second order

def _as_array_if_numbers(x):
    """A flat list of numbers as the differentiated argument of hessian/hvp is one
    array (fastad's rule since 0.1.0, kept: fd.hessian(f)([1.0, 2.0]) is a 2x2
    matrix); any other list, tuple or dict is a pytree of leaves."""
    if isinstance(x, list) and x and all(
            isinstance(e, numbers.Real) and not isinstance(e, (bool, np.bool_))
            for e in x):
        return np.asarray(x, dtype=np.float64)
    return x


def _second_order_inputs(tape, args, argnums, fname, nested=False):
    """Leaf Vars for args[argnums] on `tape`: (call args, leaves, treedef of the
    differentiated tree: args[argnums] for an int, their tuple for a tuple).
    nested: `tape` is an outer level's, the leaves are fresh slots on it."""
    nums = _normalize_argnums(argnums, len(args), fname)
    args = list(args)
    for i in nums:
        args[i] = _as_array_if_numbers(args[i])
    if nested:
        call, trees = nested_args(tape, args, nums, fname)
    else:
        call, trees = _args_to_vars(tape, args, nums, fname)
    tree = tuple(trees) if isinstance(argnums, tuple) else trees[0]
    leaves, td = tree_flatten(tree)
    return call, leaves, td


def _blocks(H, layout, treedef):
    """The (m, m) Hessian over the concatenated leaves cut into a tree of trees of
    blocks, block [a][b] of shape leaf_a.shape + leaf_b.shape (JAX's layout: a dict
    argument gives a dict of dicts, a tuple argnums a tuple of tuples)."""
    rows = []
    for off_a, size_a, shape_a, dtype_a in layout:
        row = []
        for off_b, size_b, shape_b, dtype_b in layout:
            block = H[off_a:off_a + size_a, off_b:off_b + size_b]
            dtype = _common_dtype([(0, 0, (), dtype_a), (0, 0, (), dtype_b)])
            block = block.reshape(tuple(shape_a) + tuple(shape_b))
            row.append(as_source_dtype(float(block) if block.ndim == 0 else
                                       block.copy(), dtype))
        rows.append(tree_unflatten(treedef, row))
    return tree_unflatten(treedef, rows)


def _scalar_target(tape, out, fname):
    _, target = scalar_output(out, fname)
    if target is not None and target.tape is not tape:
        raise TapeError("%s: f returned a Var of another tape" % fname)
    return target


def hessian(f, argnums=0):
    """Return a function computing the dense Hessian of scalar-valued ``f``.

    ``hessian_f(*args)`` records ``f`` once and runs forward-over-reverse sweeps
    over the recording; each sweep handles many unit directions, so an n-input
    Hessian costs a few passes, not n gradients.

    Inside another transformation (called on its Vars, or while it records) it
    records on that transformation's tape and returns Vars, which the outer one
    differentiates in turn: every transformation nests in every other.

    Parameters
    ----------
    f : callable
        A function returning a scalar.
    argnums : int or tuple of int, optional
        Which positional arguments to differentiate (default 0), as for
        :func:`fastad.grad`.  The argument may be a number, an array (a flat list
        of numbers counts as one) or a pytree of them.

    Returns
    -------
    callable
        ``hessian_f(*args, **kwargs)``: for an array ``x = args[argnums]`` an
        array of shape ``x.shape + x.shape`` (a float for a scalar ``x``).  For a
        pytree argument, a tree of trees of blocks in JAX's layout: a dict
        argument gives a dict of dicts, ``H[a][b]`` of shape ``x[a].shape +
        x[b].shape``; a tuple ``argnums`` gives a tuple of tuples.

    Examples
    --------
    >>> fd.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    >>> fd.hessian(lambda x, y: x * x * y, argnums=(0, 1))(3.0, 2.0)
    ((4.0, 6.0), (6.0, 0.0))
    """
    _check_callable(f, "hessian")
    _normalize_argnums(argnums, 1 << 30, "hessian")     # its type, checked early

    def hessian_f(*args, **kwargs):
        if DUAL_ACTIVE:
            check_no_dual_level()
        outer = nesting_tape(args, _normalize_argnums(argnums, len(args), "hessian"))
        if outer is not None:
            return _nested_hessian(outer, f, args, argnums, kwargs)
        with _scratch_tape() as tape:
            call, leaves, td = _second_order_inputs(tape, args, argnums, "hessian")
            target = _scalar_target(tape, f(*call, **kwargs), "hessian")
            in_slots, layout = _leaf_slots(leaves)
            m = in_slots.size
            if target is None or m == 0:
                H = np.zeros((m, m))
            else:
                H = hessian_sweep(tape, in_slots, int(var_slots(target)[0]),
                                  fname="hessian")[1]
        return _blocks(H, layout, td)

    return _wrap_name(hessian_f, f, "hessian")


def _nested_hessian(tape, f, args, argnums, kwargs):
    """fd.hessian inside another transformation: the gradient's create-graph
    sweep, then one more per gradient element (a tree of trees of Var blocks)."""
    call, leaves, td = _second_order_inputs(tape, args, argnums, "hessian", nested=True)
    target = _scalar_target(tape, f(*call, **kwargs), "hessian")
    if target is None:
        rows = [[_zeros(tuple(a.shape) + tuple(b.shape)) for b in leaves]
                for a in leaves]
    else:
        g = level_vjp(tape, target, 1.0, leaves, "hessian")
        rows = [level_jacobian(tape, ga, leaves, "hessian") for ga in g]
    return tree_unflatten(td, [tree_unflatten(td, row) for row in rows])


def hvp(f, argnums=0):
    """Return a function computing ``H(x) @ v`` for scalar-valued ``f``.

    The Hessian is never formed: ``f`` is recorded once, then one tangent sweep
    and one second-order reverse sweep give the product, for a small multiple of
    the cost of one gradient.

    Inside another transformation (called on its Vars, or while it records) it
    records on that transformation's tape and returns Vars, which the outer one
    differentiates in turn: every transformation nests in every other.

    Parameters
    ----------
    f : callable
        A function returning a scalar.
    argnums : int or tuple of int, optional
        Which positional arguments to differentiate (default 0), as for
        :func:`fastad.hessian`.

    Returns
    -------
    callable
        ``hvp_f(*args, v)``: ``v`` comes last, shaped like the differentiated
        arguments (``args[argnums]``; for a tuple ``argnums``, a tuple of them),
        and so is the result.

    Examples
    --------
    >>> fd.hvp(lambda x: fd.sum(x ** 3))(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([ 6., 12.])
    """
    _check_callable(f, "hvp")
    _normalize_argnums(argnums, 1 << 30, "hvp")

    def hvp_f(*args, **kwargs):
        if len(args) < 2:
            raise TypeError("hvp: the function takes f's arguments and then v, got %d "
                            "argument(s)" % len(args))
        *args, v = args
        if DUAL_ACTIVE:
            check_no_dual_level()
        outer = nesting_tape(args, _normalize_argnums(argnums, len(args), "hvp"))
        if outer is not None:
            return _nested_hvp(outer, f, args, v, argnums, kwargs)
        with _scratch_tape() as tape:
            call, leaves, td = _second_order_inputs(tape, args, argnums, "hvp")
            in_slots, layout = _leaf_slots(leaves)
            direction = _direction(v, leaves, td, in_slots.size, argnums)
            target = _scalar_target(tape, f(*call, **kwargs), "hvp")
            if target is None or in_slots.size == 0:
                hv = np.zeros(in_slots.size)
            else:
                hv = hvp_sweep(tape, in_slots, int(var_slots(target)[0]),
                               direction[None, :], "hvp")[1][0]
        return _split(hv, layout, (), td)

    return _wrap_name(hvp_f, f, "hvp")


def _nested_hvp(tape, f, args, v, argnums, kwargs):
    """fd.hvp inside another transformation: two create-graph sweeps, H v as Vars
    of the outer tape (v may be its Vars too)."""
    call, leaves, td = _second_order_inputs(tape, args, argnums, "hvp", nested=True)
    parts = _direction_parts(v, leaves, td, argnums,
                             lambda x, leaf: _level_operand(tape, x, leaf.shape, "hvp: v",
                                                            "x"))
    target = _scalar_target(tape, f(*call, **kwargs), "hvp")
    if target is None:
        return tree_unflatten(td, [_zeros(leaf.shape) for leaf in leaves])
    g = level_vjp(tape, target, 1.0, leaves, "hvp")
    s = None
    for gb, vb in zip(g, parts):
        term = gb * vb if gb.shape == () else fd_sum(gb * vb)
        s = term if s is None else s + term
    return tree_unflatten(td, level_vjp(tape, s, 1.0, leaves, "hvp"))


def _direction_leaves(v, leaves, td, argnums):
    """hvp's v as one entry per leaf; it must have the leaves' structure (a flat
    list of numbers standing for an array argument may be an array or a list)."""
    if isinstance(argnums, tuple) and isinstance(v, (tuple, list)):
        v = type(v)(_as_array_if_numbers(e) for e in v)
    else:
        v = _as_array_if_numbers(v)
    vl, vtd = tree_flatten(v)
    if vtd != td:
        if len(leaves) == 1 and td.kind == "leaf":
            return [v]
        raise ValueError("hvp: v must have the structure of the differentiated "
                         "argument%s" % ("s" if isinstance(argnums, tuple) else ""))
    return vl


def _direction_parts(v, leaves, td, argnums, convert):
    """hvp's v cut into one entry per leaf, each convert(entry, leaf)."""
    return [convert(vv, leaf)
            for leaf, vv in zip(leaves, _direction_leaves(v, leaves, td, argnums))]


def _direction(v, leaves, td, m, argnums):
    """hvp's v flattened in the leaves' order; it must have their structure and
    shapes."""
    vl = _direction_leaves(v, leaves, td, argnums)
    out = np.empty(m)
    k = 0
    for leaf, vv in zip(leaves, vl):
        arr = _float_array(vv, "hvp: v")
        if arr.shape != leaf.shape:
            raise ValueError("hvp: v must have the shape of x %s, got %s"
                             % (leaf.shape, arr.shape))
        out[k:k + arr.size] = arr.reshape(-1)
        k += arr.size
    return out


# ----------------------------------------------------------------------------------
# derivative (Dual numbers)

def _tangent_of(out, fname):
    if isinstance(out, Dual):
        return out.tangent
    if type(out) is Var:
        raise TypeError("%s: f returned a Var; fd.derivative evaluates f on a Dual "
                        "number, so f must not create tape variables" % fname)
    if isinstance(out, (bool, np.bool_)) or out is None or isinstance(out, (str, bytes)):
        raise TypeError("%s: f must return a number, a Dual or an array of them, got "
                        "%s" % (fname, type(out).__name__))
    if isinstance(out, numbers.Real):
        return 0.0
    if isinstance(out, (list, tuple, np.ndarray)):
        arr = np.asarray(out, dtype=object) if not isinstance(out, np.ndarray) else out
        if arr.dtype.kind in "biuf":
            return np.zeros(arr.shape)
        if arr.dtype.kind != "O":
            raise TypeError("%s: f returned an array of dtype %s" % (fname, arr.dtype))
        res = np.empty(arr.shape, dtype=np.float64)
        flat = res.reshape(-1)
        for k, e in enumerate(arr.reshape(-1)):
            if isinstance(e, Dual):
                t = e.tangent
                if type(t) is not float:
                    raise TypeError("%s: f returned a Dual with a vector tangent" % fname)
                flat[k] = t
            elif isinstance(e, numbers.Real) and not isinstance(e, (bool, np.bool_)):
                flat[k] = 0.0
            else:
                raise TypeError("%s: f returned an array holding %s"
                                % (fname, type(e).__name__))
        return res
    raise TypeError("%s: f must return a number, a Dual or an array of them, got %s"
                    % (fname, type(out).__name__))


def _scalar_point(x):
    """fd.derivative's x as a float: TypeError for what is not a real number, and
    ValueError (a shape error) for an array of more than zero dimensions."""
    if isinstance(x, (bool, np.bool_, Dual, str, bytes, dict)) or type(x) is Var or \
            x is None:
        raise TypeError("derivative: x must be a real number, got %s"
                        % type(x).__name__)
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, numbers.Integral):
        return float(x)
    arr = _float_array(x, "derivative: x")
    if arr.ndim != 0:
        raise ValueError("derivative: x must be a scalar, got an array of shape %s; "
                         "fd.derivative differentiates along one scalar input: use "
                         "fd.jacobian (or fd.jvp for one direction) for an array input, "
                         "or fd.grad(lambda x: fd.sum(f(x))) for the elementwise "
                         "derivative of an elementwise f"
                         % (arr.shape,))
    return float(arr)


def derivative(f):
    """Return a function computing ``f'(x)`` for a scalar ``x`` by forward mode.

    ``f`` is called once, on the dual number ``Dual(x, 1.0)``, with no tape; it
    may return a number, a Dual, or a list or array of them (the derivative then
    has that shape).

    It nests with every transformation, as ``fd.grad`` does:
    ``fd.derivative(fd.derivative(f))`` is ``f''``, and ``f`` may call
    ``fd.grad``, ``fd.jacobian``, ... or another ``fd.derivative``.  A Dual
    carries no level of its own, so when ``f`` calls a transformation, the Dual
    evaluation stops there and ``f`` runs again on a tape (forward mode as in
    :func:`fastad.jvp`), where each level is kept apart:
    ``d/dx [x * d/dy (x + y)] = 1``.  That first call runs the part of ``f``
    before the inner transformation twice; later calls of the same
    ``derivative_f`` go to the tape at once.  So does a ``TypeError`` of the Dual
    evaluation (NumPy's linear algebra on an array of Duals): ``f`` runs again
    on a tape, which takes every array operation fastad has.  Called inside another
    transformation (on a Var, or while one is recording), it records on that
    transformation's tape and returns Vars.

    Examples
    --------
    >>> fd.derivative(fd.sin)(0.0)
    1.0
    >>> fd.derivative(lambda t: [t, t * t])(1.5)
    array([1., 3.])
    """
    _check_callable(f, "derivative")

    on_tape = []      # non-empty once f was seen calling a transformation

    def derivative_f(x, *args, **kwargs):
        if DUAL_ACTIVE:
            check_no_dual_level()
        outer = x.tape if type(x) is Var else current_level()
        if outer is not None:
            return _nested_derivative(outer, f, x, args, kwargs)
        if isinstance(x, Dual):
            raise TypeError("derivative: x is a Dual; a Dual holding Duals is not "
                            "supported: nest the transformations instead, e.g. "
                            "fd.derivative(fd.derivative(f))(x) for f''(x)")
        x0 = _scalar_point(x)
        dual_error = None
        if not on_tape:
            enter_dual()
            try:
                out = f(Dual(x0, 1.0), *args, **kwargs)
            except DualRetry:
                on_tape.append(True)
            except TypeError as e:
                # Duals are scalars: NumPy code that meets one inside an array it
                # cannot compute on (np.linalg.det of an array of Duals raises
                # UFuncTypeError, a TypeError) works on Vars, so f runs again on a
                # tape below (fd.jvp's way)
                dual_error = e
            else:
                return as_source_dtype(_tangent_of(out, "derivative"), grad_dtype(x))
            finally:
                leave_dual()
        if dual_error is None:
            return as_source_dtype(_tape_derivative(f, x0, args, kwargs), grad_dtype(x))
        try:
            result = _tape_derivative(f, x0, args, kwargs)
        except Exception as tape_error:
            # it fails on a tape too: that error is the one reported
            raise tape_error from dual_error
        on_tape.append(True)             # later calls go to the tape directly
        return as_source_dtype(result, grad_dtype(x))

    return _wrap_name(derivative_f, f, "derivative")


def _tape_derivative(f, x0, args, kwargs):
    """f'(x0) by a tangent sweep over a recording of f: fd.derivative of an f that
    calls other transformations (they nest on this tape, each its own level)."""
    with _scratch_tape() as tape:
        xv = tape.variable(x0)
        var, value, shape = _output_var(tape, f(xv, *args, **kwargs), "derivative")
        if var is None:
            return _zeros(shape)
        refuse_forward_mode(tape, "derivative", "fd.grad")
        tan = tangent_sweep(tape, var_slots(xv), var_slots(var), np.ones((1, 1)),
                            "derivative")[0].reshape(shape)
    return float(tan) if tan.ndim == 0 else tan


def _nested_derivative(tape, f, x, args, kwargs):
    """fd.derivative inside another transformation: f' at a fresh slot of the
    outer tape, by reverse-over-reverse (fastad._nest.level_jvp), as a Var."""
    if type(x) is Var:
        if x.shape != ():
            raise ValueError("derivative: x must be a scalar, got a Var of shape %s"
                             % (x.shape,))
    else:
        x = _scalar_point(x)
    (xs,), trees = nested_args(tape, (x,), [0], "derivative")
    var, value, shape = _output_var(tape, f(xs, *args, **kwargs), "derivative")
    if var is None:
        return _zeros(shape)
    return level_jvp(tape, var, [xs], [1.0], "derivative")
