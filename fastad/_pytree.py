"""Nested list / tuple / dict containers ("pytrees"), flattened and rebuilt.

A leaf is anything that is not a list, tuple or dict.  Dicts are walked in sorted key
order (as JAX does) so that two dicts with the same keys flatten alike, and rebuilt in
the order the caller wrote their keys (f sees its dicts as they were passed).

Pytrees nest up to MAX_DEPTH levels of containers everywhere.  fastad wraps
arguments in a few containers of its own (the tuple of parameters, the list of
argnums), so the hard limit is HARD_DEPTH = MAX_DEPTH + 4 levels: deeper trees (and
self-containing lists) raise ValueError naming the limit.  The bound keeps every
walk over a TreeDef (flatten, rebuild, ==, hash, the trace file's encoder and
decoder) far inside Python's recursion limit and the C stack, whatever
sys.setrecursionlimit says.
"""
import numpy as np

# Levels of lists / tuples / dicts a user's pytree may nest.
MAX_DEPTH = 100
# ... and the limit tree_flatten enforces, with room for fastad's own wrappers.
HARD_DEPTH = MAX_DEPTH + 4


class TreeDef:
    """The structure of a pytree without its leaves."""

    __slots__ = ("kind", "meta", "children", "order")

    def __init__(self, kind, meta, children, order=None):
        self.kind = kind          # "leaf", "list", "tuple", "namedtuple" or "dict"
        self.meta = meta          # dict keys (sorted: the flatten order), or the
                                  # namedtuple class
        self.children = children  # TreeDefs of the children
        # a dict's keys in the caller's order when that is not the sorted one; two
        # dicts with the same keys have equal TreeDefs whatever their order
        self.order = order

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self.kind == other.kind
                and self.meta == other.meta and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, self.meta if not isinstance(self.meta, list)
                     else tuple(self.meta), tuple(self.children)))

    def __repr__(self):
        return "TreeDef(%s)" % self.kind

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)


LEAF = TreeDef("leaf", None, ())


def tree_flatten(tree):
    """(list of leaves, TreeDef).  ValueError if containers nest deeper than
    HARD_DEPTH levels."""
    leaves = []
    return leaves, _flatten(tree, leaves, 1)


def _too_deep():
    return ValueError("the argument's lists, tuples and dicts nest too deep: a pytree "
                      "may nest at most %d levels" % MAX_DEPTH)


def _flatten(tree, leaves, depth):
    t = type(tree)
    if t is list or t is tuple:
        kind = "list" if t is list else "tuple"
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        if depth > HARD_DEPTH:
            raise _too_deep()
        return TreeDef("namedtuple", t, tuple(_flatten(c, leaves, depth + 1)
                                             for c in tree))
    elif isinstance(tree, dict):
        if depth > HARD_DEPTH:
            raise _too_deep()
        order = tuple(tree)
        keys = sorted(order, key=_key_order)
        return TreeDef("dict", keys, tuple(_flatten(tree[k], leaves, depth + 1)
                                           for k in keys),
                       None if order == tuple(keys) else order)
    else:
        leaves.append(tree)
        return LEAF
    if depth > HARD_DEPTH:
        raise _too_deep()
    # Lists of numbers are the common large case (10^4 coordinates): handle their
    # leaves inline instead of one recursive call each (4x faster).
    children = []
    for c in tree:
        if type(c) is float or not isinstance(c, (list, tuple, dict)):
            leaves.append(c)
            children.append(LEAF)
        else:
            children.append(_flatten(c, leaves, depth + 1))
    return TreeDef(kind, None, tuple(children))


def _key_order(k):
    return (type(k).__name__, k) if not isinstance(k, (int, float)) else ("", k)


def tree_unflatten(treedef, leaves):
    """Rebuild a pytree of structure `treedef` from `leaves` (in flatten order)."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    return out


def _unflatten(td, it):
    if td.kind == "leaf":
        return next(it)
    children = [next(it) if c is LEAF else _unflatten(c, it) for c in td.children]
    if td.kind == "list":
        return children
    if td.kind == "tuple":
        return tuple(children)
    if td.kind == "namedtuple":
        return td.meta(*children)
    d = dict(zip(td.meta, children))
    if td.order is not None:
        return {k: d[k] for k in td.order}
    return d


def tree_map(fn, tree, *rest):
    """Apply fn to every leaf (and the matching leaves of `rest`)."""
    leaves, td = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rtd = tree_flatten(r)
        if rtd != td:
            raise ValueError("tree_map: the trees have different structures")
        others.append(rl)
    return tree_unflatten(td, [fn(*args) for args in zip(leaves, *others)])


def replace_args(args, nums, convert, fname):
    """(args with args[i], i in nums, rebuilt from convert(leaf, where) of each of
    its leaves, the rebuilt trees in nums' order).  An argument named twice in nums
    (argnums=(0, 0), or (1, -1) for two arguments) is converted once and its tree
    returned twice, as in JAX; `where` is "<fname>: argument <i>" for messages."""
    args = list(args)
    trees = []
    done = {}
    for i in nums:
        if i in done:
            trees.append(done[i])
            continue
        where = "%s: argument %d" % (fname, i)
        a = args[i]
        if type(a) is np.ndarray or type(a) is float:
            # a bare array or float, the common case: it is its own only leaf
            args[i] = done[i] = convert(a, where)
        else:
            leaves, td = tree_flatten(a)
            args[i] = done[i] = tree_unflatten(td, [convert(leaf, where)
                                                    for leaf in leaves])
        trees.append(args[i])
    return args, trees
