"""What a trace knows about its inputs and its output: ArgSpec and Path.

Shared by fastad._trace (recording, calls) and fastad._trace_file (the file format),
which both build them; a module of their own, so that neither imports the other
for them.
"""
import numpy as np

from fastad._pytree import tree_flatten, tree_unflatten
from fastad._tape import Var, as_source_dtype, float_array, grad_dtype

_F64 = np.dtype(np.float64)


class ArgSpec:
    """The structure and leaf shapes of one argument group (x, or the params)."""

    __slots__ = ("treedef", "shapes", "sizes", "size", "what", "single")

    def __init__(self, treedef, shapes, what):
        self.treedef = treedef
        self.shapes = tuple(tuple(s) for s in shapes)
        self.sizes = tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)
        self.size = sum(self.sizes)
        self.what = what
        # the shape of the one leaf when the structure is a bare leaf (fast paths)
        self.single = self.shapes[0] if treedef.kind == "leaf" else None

    @classmethod
    def of(cls, tree, what):
        """(spec, flat float64 values) of a pytree of numbers and arrays."""
        leaves, td = tree_flatten(tree)
        arrs = [_leaf_array(leaf, "%s%s" % (what, _leaf_name(td, k)))
                for k, leaf in enumerate(leaves)]
        spec = cls(td, [a.shape for a in arrs], what)
        flat = np.concatenate([a.reshape(-1) for a in arrs]) if arrs else np.zeros(0)
        return spec, flat

    def flatten(self, tree, fname):
        """The leaves of `tree` as one float64 vector, checking the structure and
        every leaf's shape against the trace."""
        if len(self.shapes) == 1 and self.treedef.kind == "leaf":
            t = type(tree)
            if t is float or t is int:
                if self.shapes[0] != ():
                    raise ValueError("%s: %s must have shape %s as when traced, got a "
                                     "number" % (fname, self.what, self.shapes[0]))
                if t is int:   # a ValueError naming x for an int beyond float64
                    return float_array(tree, "%s: %s" % (fname, self.what)).reshape(1)
                return np.array([tree], dtype=np.float64)
            if t is np.ndarray and tree.dtype == np.float64 and \
                    tree.shape == self.shapes[0]:
                return np.ascontiguousarray(tree).reshape(-1)
            leaves, td = [tree], self.treedef
        else:
            leaves, td = tree_flatten(tree)
        if td != self.treedef:
            raise ValueError("%s: %s has a different structure than when traced "
                             "(%d leaves expected, got %d)" % (
                                 fname, self.what, len(self.shapes), len(leaves)))
        parts = []
        for k, leaf in enumerate(leaves):
            name = "%s%s" % (self.what, _leaf_name(td, k))
            arr = _leaf_array(leaf, name, fname)
            if arr.shape != self.shapes[k]:
                raise ValueError("%s: %s has shape %s; the trace was recorded with "
                                 "shape %s (trace again for a new shape)"
                                 % (fname, name, arr.shape, self.shapes[k]))
            parts.append(arr.reshape(-1))
        if not parts:
            return np.zeros(0)
        return np.concatenate(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0])

    def unflatten(self, flat, dtypes=None):
        """A pytree of this structure from a flat vector (floats for scalars); each
        leaf in dtypes[k] when given (grad_dtypes)."""
        single = self.single
        if single is not None and dtypes is None:
            if single == ():
                return float(flat[0])
            return flat if len(single) == 1 else flat.reshape(single)
        out, o = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(float(flat[o]) if shape == () else flat[o:o + size].reshape(shape))
            o += size
        if dtypes is not None:
            out = [as_source_dtype(leaf, dt) for leaf, dt in zip(out, dtypes)]
        return tree_unflatten(self.treedef, out)

    def grad_dtypes(self, tree):
        """Per leaf of `tree` (already checked by flatten), the dtype a derivative
        with respect to it comes back in (API.md section 14), or None when every
        one is float64 -- the common case, answered without flattening."""
        t = type(tree)
        if t is float or t is int:
            return None
        if t is np.ndarray:
            if tree.dtype == _F64:
                return None
            leaves = [tree]
        else:
            leaves = tree_flatten(tree)[0]
        dtypes = tuple(grad_dtype(leaf) for leaf in leaves)
        return dtypes if any(d is not None for d in dtypes) else None

    def leaf_values(self, flat):
        """The leaves for recording: floats for scalars, arrays otherwise."""
        out, o = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(float(flat[o]) if shape == () else
                       np.array(flat[o:o + size]).reshape(shape))
            o += size
        return out


def _leaf_name(td, k):
    return "" if td.kind == "leaf" else " (leaf %d)" % k


def _leaf_array(leaf, name, fname="fd.trace"):
    """leaf as a float64 ndarray: TypeError naming the argument and what it got
    (its dtype for an array), ValueError for an int beyond float64's range."""
    if type(leaf) is Var:
        raise TypeError("%s: %s is a Var; pass numbers or arrays" % (fname, name))
    if isinstance(leaf, (dict, set)):
        raise TypeError("%s: %s must be a number or an array of numbers, got %s"
                        % (fname, name, type(leaf).__name__))
    return float_array(leaf, "%s: %s" % (fname, name))


class Path:
    """One recorded path: its Replay plus what the output looks like."""

    __slots__ = ("rp", "out_shape", "out_const", "key", "point")

    def __init__(self, rp, out_shape, out_const):
        self.rp = rp
        self.out_shape = out_shape      # () for a scalar output
        self.out_const = out_const      # the output when f returned no Var, else None
        self.point = None               # (x, params) flat, where it was recorded
        kind, ga, gb, gc, go = rp.guard_arrays[:5]
        # the path a trace took is the outcome of all its guards at their slots
        self.key = (rp.tape.__len__(), kind.tobytes(), ga.tobytes(), gb.tobytes(),
                    gc.tobytes(), go.tobytes())

    def value(self, v):
        if self.out_const is not None:
            return self.out_const if self.out_shape == () else self.out_const.copy()
        if self.out_shape == ():
            return v
        if type(v) is float:   # the replay hands one-element outputs back as a float
            return np.full(self.out_shape, v)
        return v.reshape(self.out_shape)
