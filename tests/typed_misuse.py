"""Deliberate misuse of fastad that `mypy --strict` must reject, line by line.

Each line ending in `# E: code` must get an error of that code from mypy (or of
one of `code|other`: for a call of an overloaded function mypy reports either "no
overload matches" or the nearest overload's argument error, as its version sees
fit), and no other line may get one (tests/test_types.py, tools/check_types.sh).  So the stubs
are not Any where it matters: every mistake below is one that fastad refuses at
run time (or a wrong belief about what comes back), and the type checker catches
it first.  This file is never run.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

import fastad as fd


def loss(w: fd.Var, X: NDArray[np.float64], y: NDArray[np.float64]) -> fd.Var:
    return fd.sum((X @ w - y) ** 2)


def as_float(t: float) -> float:
    return t * t


X = np.ones((4, 3))
y = np.zeros(4)
w0 = np.zeros(3)

with fd.Tape() as tape:
    v = tape.variable(0.5)
    a = tape.variable(w0)

    # a Var leaves the tape as a plain number: no derivative (API.md 14)
    math.sin(v)  # E: arg-type
    float(v)  # E: arg-type
    complex(v)  # E: call-overload|arg-type
    # Vars are immutable and made by a tape
    a[0] = 1.0  # E: index
    a["w"]  # E: index
    a[0.5]  # E: index
    fd.Var(1.0)  # E: call-arg
    # not numbers
    fd.sin("0.5")  # E: call-overload|arg-type
    tape.variable(None)  # E: arg-type
    fd.sum(["a", "b"])  # E: call-overload|arg-type
    v + "1"  # E: operator
    fd.maximum(v, None)  # E: call-overload
    # a Var in gives a Var, a float in gives a float
    plain: float = fd.exp(v)  # E: assignment
    data: NDArray[np.float64] = X @ a  # E: assignment
    node: fd.Var = fd.exp(0.5)  # E: assignment
    # the gradient of a scalar source is a number, of an array source an array;
    # statically either, so it must be narrowed before use as one
    tape.gradient(v, v).shape  # E: union-attr
    tape.gradient(1.0, v)  # E: call-overload
    # a Var's value is a float or an array
    v.value.startswith("0")  # E: union-attr

# the functional API keeps f's other parameters
fd.grad(loss)(w0, X)  # E: call-overload|call-arg
fd.grad(loss)(w0, X, "y")  # E: call-overload|arg-type
fd.value_and_grad(loss)(w0, X, y, 3)  # E: call-overload|call-arg
# and the structure of the differentiated argument
g_wrong: float = fd.grad(loss)(w0, X, y)  # E: assignment
# f must return something differentiable
fd.grad(lambda t: "t")  # E: arg-type
# fd.derivative hands f a Dual, which a float-only function cannot take
fd.derivative(as_float)  # E: call-overload|arg-type
# fd.hessian and fd.hvp take argnums as fd.grad does
fd.hvp(loss, argnums="w")  # E: call-overload|arg-type
# a Dual has no __getattr__ for users: fd.sin(d), not d.sin()
fd.Dual(1.0, 1.0).sin()  # E: attr-defined
fd.Dual("1")  # E: arg-type
int(fd.Dual(1.0))  # E: call-overload

# traces
tf = fd.trace(lambda t: fd.sum(t * t), w0)
tf.save(3)  # E: arg-type
tf.grad_batch(np.ones((2, 3)), threads="2")  # E: call-overload
fd.trace(loss, w0, X, y, retrace="yes")  # E: arg-type
fd.load(None)  # E: arg-type

# optimizers and losses
fd.optim.Adam(lr="fast")  # E: arg-type
fd.optim.SGD()  # E: call-arg
opt_state: str = fd.optim.Adam().state_dict()  # E: assignment
fd.nn.cross_entropy(np.ones((2, 3)), "labels")  # E: call-overload
fd.nn.mse(np.ones(3), None)  # E: call-overload
fd.minimize(loss, w0, method=3)  # E: arg-type
