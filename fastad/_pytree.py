"""Nested list / tuple / dict containers ("pytrees"), flattened and rebuilt.

A leaf is anything that is not a list, tuple or dict.  Dicts are walked in sorted key
order (as JAX does) so that two dicts with the same keys flatten alike.
"""


class TreeDef:
    """The structure of a pytree without its leaves."""

    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind, meta, children):
        self.kind = kind          # "leaf", "list", "tuple", "namedtuple" or "dict"
        self.meta = meta          # dict keys, or the namedtuple class
        self.children = children  # TreeDefs of the children

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
    """(list of leaves, TreeDef)."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    t = type(tree)
    if t is list or t is tuple:
        kind = "list" if t is list else "tuple"
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return TreeDef("namedtuple", t, tuple(_flatten(c, leaves) for c in tree))
    elif isinstance(tree, dict):
        keys = sorted(tree, key=_key_order)
        return TreeDef("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    else:
        leaves.append(tree)
        return LEAF
    # Lists of numbers are the common large case (10^4 coordinates): handle their
    # leaves inline instead of one recursive call each (4x faster).
    children = []
    for c in tree:
        if type(c) is float or not isinstance(c, (list, tuple, dict)):
            leaves.append(c)
            children.append(LEAF)
        else:
            children.append(_flatten(c, leaves))
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
    return dict(zip(td.meta, children))


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
