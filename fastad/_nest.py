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
import numpy as np

from fastad._errors import TapeError
from fastad._pytree import replace_args
from fastad._scratch import current_level
from fastad._tape import Var, _graph_gradient, fresh_copy, leaf_variable


def nesting_tape(args, nums):
    """The outer tape a transformation of args[nums] must record on, or None.

    A differentiated argument that is a Var names its tape; otherwise the scratch
    tape of the innermost functional call running in this thread, if any.  (A
    pytree of Vars outside any functional call is refused by the caller.)
    """
    for i in nums:
        a = args[i]
        if type(a) is Var:
            return a.tape
    return current_level()


def nested_args(tape, args, nums, fname):
    """args with args[i] (i in nums) replaced by fresh slots on `tape`; the trees."""
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
