"""Nested transformations: fd.grad and fd.value_and_grad inside another one.

A transformation called while an outer one is recording (its arguments are Vars, or
a functional call's scratch tape is in use in this thread) records on the outer
tape instead of a fresh one: each differentiated argument becomes a fresh slot (the
mark of the inner level), f runs, and the gradient with respect to those slots is
taken by the create-graph sweep (Tape.gradient(create_graph=True)), whose recorded
arithmetic the outer level differentiates in turn.  Contributions to slots below
the mark belong to outer levels and are dropped, which is what keeps
d/dx [x * d/dy (x + y)] = 1 (no perturbation confusion).  docs/design/nesting.md,
section 2.
"""
import threading

import numpy as np

from fastad._errors import TapeError
from fastad._pytree import replace_args, tree_flatten
from fastad._scratch import current_level
from fastad._tape import Var, _graph_gradient, fresh_copy, leaf_variable
from fastad._tape import stack as _vstack
from fastad._tape import sum as _vsum


def nesting_tape(args, nums):
    """The outer tape a transformation of args[nums] must record on, or None.

    A differentiated argument that is a Var names its tape; otherwise the scratch
    tape of the innermost functional call running in this thread, if any.
    """
    for i in nums:
        a = args[i]
        if type(a) is Var:
            return a.tape
        if isinstance(a, (list, tuple, dict)):
            for leaf in tree_flatten(a)[0]:
                if type(leaf) is Var:
                    return leaf.tape
    return current_level()


def nested_args(tape, args, nums, fname):
    """args with args[i] (i in nums) replaced by fresh slots on `tape`; the trees."""
    if len(nums) == 1:
        i = nums[0]
        a = args[i]
        if type(a) is np.ndarray and a.dtype == np.float64:
            # the common inner call (a gradient penalty's grad in x): one new leaf
            # block, without the pytree walk (~1 us of the nested call)
            out = list(args)
            out[i] = leaf = leaf_variable(tape, a, "%s: argument %d" % (fname, i))
            return out, [leaf]
    return replace_args(args, nums, lambda leaf, where: _fresh(tape, leaf, where), fname)


def _fresh(tape, leaf, where):
    if type(leaf) is Var:
        if leaf.tape is not tape:
            raise TapeError("%s is a Var of another tape than the outer level's; "
                            "Vars of two different tapes cannot be combined" % where)
        return fresh_copy(leaf)
    if isinstance(leaf, (complex, np.complexfloating)):
        raise TypeError("%s must be real, got complex" % where)
    return leaf_variable(tape, leaf, where)


def nested_grads(tape, target, trees, fname):
    """The gradients of target with respect to the level's trees, as Vars of tape."""
    if target.tape is not tape:
        raise TapeError("%s: f returned a Var of another tape than its arguments'"
                        % fname)
    return _graph_gradient(tape, target, list(trees), fname)


# ----------------------------------------------------------------------------------
# Every transformation on one level: vjp, jacobian, hessian, hvp, jvp, derivative
#
# All of them reduce to create-graph gradients of scalar targets with respect to the
# level's fresh slots, so their results are Vars of the outer tape that the outer
# level differentiates in turn, exactly, to any order.  Forward modes (jvp,
# derivative, a tall jacobian's columns) are reverse-over-reverse: with u a fresh
# leaf shaped like the output, w(u) = u @ J is linear in u, and d(w . t)/du = J t.
# u sits above the level's mark, so that second sweep sees only w's recorded
# arithmetic.

def _fresh_target(v):
    """A new slot copying scalar Var v: the start of a sweep never lies inside an
    array record's output block."""
    return fresh_copy(v)


def _elements(v):
    """The scalar Vars of v's elements, in C order (views: nothing is recorded)."""
    if v.shape == ():
        return [v]
    if len(v.shape) == 1:
        return [v[k] for k in range(v.shape[0])]
    return [v[idx] for idx in np.ndindex(*v.shape)]


def _dot(a, b):
    """sum(a * b) as a scalar Var (b: a number, an array or a Var of a's shape)."""
    if a.shape == ():
        return a * b
    return _vsum(a * b)


def _grads(tape, target, leaves, fname):
    return _graph_gradient(tape, _fresh_target(target), list(leaves), fname)


def level_vjp(tape, out, cotangent, leaves, fname):
    """cotangent @ J of Var `out` with respect to the level's leaves (one Var each)."""
    return _grads(tape, _dot(out, cotangent), leaves, fname)


def _stack_to(rows, shape):
    """The Vars in rows (one per element of `shape`, each of one shape) as one Var
    of shape + their shape."""
    if shape == ():
        return rows[0]
    inner = rows[0].shape
    return _vstack(rows).reshape(tuple(shape) + tuple(inner))


def level_jacobian(tape, out, leaves, fname):
    """d out / d leaf for each leaf: Vars of shape out.shape + leaf.shape.

    Rows by reverse sweeps (one per output element), or, when the output has more
    elements than the inputs plus one, columns by reverse-over-reverse (one sweep
    for w(u) = u @ J, then one per input element)."""
    p = int(np.prod(out.shape, dtype=np.int64))
    m = sum(int(np.prod(v.shape, dtype=np.int64)) for v in leaves)
    shape = tuple(out.shape)
    if p <= m + 1:
        rows = [_grads(tape, e, leaves, fname) for e in _elements(out)]
        return [_stack_to([r[b] for r in rows], shape) for b in range(len(leaves))]
    u = leaf_variable(tape, np.ones(shape), fname)
    w = level_vjp(tape, out, u, leaves, fname)
    result = []
    for wb, leaf in zip(w, leaves):
        cols = [_graph_gradient(tape, _fresh_target(e), [u], fname)[0]
                for e in _elements(wb)]
        if leaf.shape == ():
            result.append(cols[0])
            continue
        result.append(_vstack(cols, axis=-1).reshape(shape + tuple(leaf.shape))
                      if shape != () else _vstack(cols).reshape(leaf.shape))
    return result


def level_jvp(tape, out, leaves, tangents, fname):
    """J @ tangents (one per leaf: a number, an array or a Var of its shape), a Var
    of out's shape."""
    shape = tuple(out.shape)
    u = leaf_variable(tape, 1.0 if shape == () else np.ones(shape), fname)
    w = level_vjp(tape, out, u, leaves, fname)
    s = None
    for wb, tb in zip(w, tangents):
        term = _dot(wb, tb)
        s = term if s is None else s + term
    if s is None:
        return _vzeros(shape)
    return _graph_gradient(tape, _fresh_target(s), [u], fname)[0]


def _vzeros(shape):
    return 0.0 if shape == () else np.zeros(shape)


def depends_on_level(tape, v, leaves):
    """Whether Var v (recorded after the level's mark) depends on the level's
    leaves, structurally: a reverse sweep of NaN cotangents (a NaN times any
    partial, 0 included, is NaN, so a path whose derivative happens to be 0 at
    this point still counts: its higher derivatives need not be).  Not a tangent
    sweep: the leaves are COPY slots, whose tangents it recomputes."""
    from fastad._second import reverse_sweep, var_slots
    ins = np.concatenate([var_slots(leaf) for leaf in leaves])
    outs = var_slots(v)
    if outs.max() < ins.min():
        return False          # recorded before the mark
    adj = reverse_sweep(tape, outs, ins, np.full((1, outs.size), np.nan), "vjp_fn")
    return bool(np.isnan(adj).any())


# ----------------------------------------------------------------------------------
# Duals: fd.derivative's forward mode without a tape, and what nests inside it
#
# A Dual carries no level tag, so inside an fd.derivative that is evaluating f on a
# Dual, another transformation (fd.derivative of a function closing over the outer
# Dual, fd.grad, ...) could mix the two perturbations
# (d/dx [x * d/dy (x + y)] would be 2).  Instead, any transformation entered while a
# Dual evaluation runs raises DualRetry; the fd.derivative evaluating on Duals
# catches it and runs f again on a tape (one level, as fd.jvp), where every inner
# transformation is a nested level with its own mark.

class DualRetry(BaseException):
    """f called a transformation while fd.derivative evaluated it on a Dual.
    A BaseException: a user's `except Exception` in f does not swallow it."""


class _DualDepth(threading.local):
    depth = 0            # this thread's Dual evaluations in progress


_duals = _DualDepth()
# One entry per Dual evaluation running in any thread: the entry check of every
# transformation reads this one global (~20 ns) and looks at its own thread's depth
# only when it is non-empty.  A thread whose own depth is non-zero always sees it
# non-empty (its own append came first); append and pop are atomic.
DUAL_ACTIVE: list = []


def check_no_dual_level():
    """Entry of every transformation: DualRetry inside a Dual evaluation."""
    if DUAL_ACTIVE and _duals.depth:
        raise DualRetry()


def enter_dual():
    """fd.derivative starts a Dual evaluation of f (leave_dual ends it)."""
    DUAL_ACTIVE.append(None)
    _duals.depth += 1


def leave_dual():
    _duals.depth -= 1
    DUAL_ACTIVE.pop()
