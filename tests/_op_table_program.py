"""A scalar program over the whole op table (OP_INFO), for the optimized- and
compiled-trace tests: every op on its own inputs (so each input's gradient is that
op's partial), each also with a constant operand, on a folded constant, once more
as a common subexpression, and once dead."""
import operator

import numpy as np

import fastad as fd
from fastad import _tape
from fastad._tape import OP_INFO

# ops that fd does not export under their table name are the operators, and the
# special-function rows (fd.special's front ends check their arguments: the raw rows here)
_OPERATORS = {"positive": operator.pos, "negative": operator.neg, "add": operator.add,
              "subtract": operator.sub, "multiply": operator.mul,
              "divide": operator.truediv, "mod": operator.mod,
              "floor_divide": operator.floordiv}


def op_fn(name):
    return _OPERATORS.get(name) or getattr(fd, name, None) or getattr(_tape, name)


def _mid(dom):
    return 0.5 * (dom[0] + dom[1])


N_INPUTS = sum(arity for _c, _n, arity, _d in OP_INFO)


def program(x, p):
    """x: a tuple of N_INPUTS floats (op by op, in its domain); p: a parameter."""
    s = 0.0
    k = 0
    for _code, name, arity, dom in OP_INFO:
        fn = op_fn(name)
        # a constant leaf in the op's domain: ops on it fold to constants
        c = fd.stack([x[k], _mid(dom[0])])[1]
        if arity == 1:
            u = x[k]
            k += 1
            s = s + fn(u) + 0.5 * fn(u) + fn(c) * u    # fn(u) twice: one slot
            fn(u * 1.5)                                  # dead
        else:
            u, v = x[k], x[k + 1]
            k += 2
            s = (s + fn(u, v) + fn(u, _mid(dom[1])) + fn(_mid(dom[0]), v)
                 + p * fn(u, v) + fn(c, _mid(dom[1])) * v)
            fn(v, u)                                     # dead
    return s


def points(seed, count):
    """`count` inputs, each coordinate inside its op's test domain."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        xs = []
        for _code, _name, arity, dom in OP_INFO:
            for j in range(arity):
                lo, hi = dom[j]
                xs.append(float(rng.uniform(lo, hi)))
        out.append(tuple(xs))
    return out


def x0():
    return points(0, 1)[0]
