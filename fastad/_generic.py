"""The one record class driven by a Primitive's rules (docs/design/array-registry.md 2.1).

A GenericRecord is an array record (fastad._arrays.ArrayRecord: a block of tape
slots holding its output) whose math is not its own: every sweep calls the rules
of the Primitive it was recorded from,

    replay (forward)   prim.forward(values, p) -> (out, res)   the eager kernel itself,
                       so a replay is bit-identical to the first evaluation
    backward           prim.vjp(values, out, res, G, p, needs)
    tangent            prim.jvp(values, out, res, T, p)
    hvp                prim.second(...), or vjp(Gd) for a linear primitive

with the directions on a leading axis (T, G, Gd are (k,) + shape): the reverse
sweep passes k = 1, the block sweeps of fastad._second (forward tangents and
second order for fd.jacobian, fd.hessian, fd.hvp) all k directions at once.  A rule may return a cotangent broadcast against its operand (a
view of another shape): the accumulation below sums it back to the operand's shape.
"""
import math

import numpy as np

from fastad import _arrays
from fastad._arrays import ArrayRecord, unbroadcast


def _names(n):
    return ("x",) if n == 1 else tuple("operand %d" % i for i in range(n))


class GenericRecord(ArrayRecord):
    """One call of `prim` on the tape; attributes beyond ArrayRecord's:
    prim, p (its params dict), res (forward's residuals), needs (bit i: operand i
    is a Var)."""

    def _compute(self, values):
        # ArrayRecord's recording and replay (forward) both call this
        out, res = self.prim.forward(values, self.p)
        shape = self.out_shape          # None while it is first recorded
        if shape is not None and np.shape(out) != shape:
            # a replay (or a loaded file) whose function gives another shape than
            # was recorded: the block would be filled by broadcasting, silently
            raise ValueError("%s: the output has shape %s, recorded with shape %s"
                             % (self.prim.name, np.shape(out), tuple(shape)))
        self.res = res
        return out

    def backward(self, adj):
        g = adj[self.base:self.base + self.size].reshape((1,) + self.out_shape)
        grads = self.prim.vjp(self.values, self.out, self.res, g, self.p, self.needs)
        self._add(adj, grads)

    def tangent(self, val, tan):
        prim = self.prim
        if prim.jvp is None:
            raise TypeError("%s: the primitive has no JVP rule (forward mode needs one)"
                            % prim.name)
        self._load(val)
        t = prim.jvp(self.values, self.out, self.res, self._directions(tan), self.p)
        tan[self.base:self.base + self.size] = np.broadcast_to(
            np.asarray(t)[0], self.out_shape).reshape(-1)

    def hvp(self, val, tan, adj, adj_dot):
        """adj_dot[inputs] += J^T adj_dot[block] + (d/de J(x + e tan)^T) adj[block]."""
        prim = self.prim
        self._load(val)
        b0, b1 = self.base, self.base + self.size
        gd = np.asarray(adj_dot[b0:b1]).reshape((1,) + self.out_shape)
        if prim.second is None:
            # linear or piecewise linear: no curvature, the vjp of the dotted adjoint
            grads = prim.vjp(self.values, self.out, self.res, gd, self.p, self.needs)
        else:
            g = np.asarray(adj[b0:b1]).reshape(self.out_shape)
            grads = prim.second(self.values, self.out, self.res,
                                self._directions(tan), g, gd, self.p, self.needs)
        self._add(adj_dot, grads)

    def tangent_block(self, val, tan):
        """tangent for all k columns of tan (n, k): the rule's k axis is the columns."""
        prim = self.prim
        if prim.jvp is None:
            raise TypeError("%s: the primitive has no JVP rule (forward mode needs one)"
                            % prim.name)
        self._load(val)
        k = tan.shape[1]
        t = prim.jvp(self.values, self.out, self.res, self._block_directions(tan),
                     self.p)
        t = np.broadcast_to(np.asarray(t), (k,) + tuple(self.out_shape))
        tan[self.base:self.base + self.size] = t.reshape(k, self.size).T

    def hvp_block(self, val, tan, adj, adjd):
        """hvp for all k columns of tan and adjd (n, k) in one call of the rule."""
        prim = self.prim
        self._load(val)
        k = tan.shape[1]
        b0, b1 = self.base, self.base + self.size
        gd = np.ascontiguousarray(np.asarray(adjd[b0:b1]).T).reshape(
            (k,) + tuple(self.out_shape))
        if prim.second is None:
            grads = prim.vjp(self.values, self.out, self.res, gd, self.p, self.needs)
        else:
            g = np.asarray(adj[b0:b1]).reshape(self.out_shape)
            grads = prim.second(self.values, self.out, self.res,
                                self._block_directions(tan), g, gd, self.p, self.needs)
        for s, sh, gi in zip(self.slots, self.shapes, grads):
            if s < 0 or gi is None:
                continue
            # (k or 1,) + a shape that broadcasts to the operand's: the direction
            # axis moved last (the block's columns), then summed over any axes the
            # cotangent was broadcast along, the direction axis kept
            gi = np.asarray(gi)
            gi = np.moveaxis(np.broadcast_to(gi, (k,) + gi.shape[1:]), 0, -1)
            target = tuple(sh) + (k,)
            if gi.ndim < len(target):
                gi = gi.reshape((1,) * (len(target) - gi.ndim) + gi.shape)
            gi = np.broadcast_to(unbroadcast(gi, target), target)
            view = adjd[s:s + math.prod(sh)]
            view += gi.reshape(-1, k)

    def _block_directions(self, tan):
        """Each operand's k tangents as a (k,) + shape array, None for constants."""
        k = tan.shape[1]
        return [None if s < 0 else
                np.ascontiguousarray(np.asarray(tan[s:s + math.prod(sh)]).T)
                .reshape((k,) + sh) for s, sh in zip(self.slots, self.shapes)]

    def _directions(self, tan):
        """Each operand's tangent as a (1,) + shape array, None for constants."""
        return [None if s < 0 else
                np.asarray(tan[s:s + math.prod(sh)])
                .reshape((1,) + sh) for s, sh in zip(self.slots, self.shapes)]

    def _add(self, buf, grads):
        """buf[operand i's slots] += grads[i][0], summed to the operand's shape.
        A cotangent that broadcasts against its operand (a sum's) is added as it
        is, without materialising it."""
        for s, sh, gi in zip(self.slots, self.shapes, grads):
            if s < 0 or gi is None:
                continue
            gi = np.asarray(gi)[0]
            gs = gi.shape
            if gs != sh and (len(gs) != len(sh) or
                             any(a != b and a != 1 for a, b in zip(gs, sh))):
                gi = unbroadcast(gi, sh)     # summed over the axes it was broadcast along
            # splitting the one axis of a 1-D slice is always a view, also of a
            # strided column (the second-order sweeps pass those)
            view = buf[s:s + math.prod(sh)].reshape(sh)
            np.add(view, gi, out=view)

    def __repr__(self):
        return "<%s record: slots %d..%d>" % (self.prim.name, self.base,
                                              self.base + self.size - 1)


def new_record(prim, p):
    """An unrecorded GenericRecord of prim with params p (fastad._record_codec
    fills its operands from a file)."""
    rec = GenericRecord.__new__(GenericRecord)
    rec.name = prim.name
    rec.prim = prim
    rec.p = p
    rec.res = None
    return rec


def bind(prim, operands, p):
    """Record prim(*operands) with params p as one GenericRecord; the result Var."""
    return record(new_record(prim, p), operands)


def record(rec, operands):
    """Record the unrecorded GenericRecord rec (new_record) on its operands; the
    result Var (rec.res then holds its forward's residuals)."""
    out = _arrays.record(rec, tuple(operands), _names(len(operands)))
    needs = 0
    for i, s in enumerate(rec.slots):
        if s >= 0:
            needs |= 1 << i
    rec.needs = needs
    return out
