"""The registry of array primitives: every array operation of fastad, declared once.

An entry (Primitive) says what an operation answers to -- the NumPy callables it
takes over on Vars, the Var methods it backs, its fd.<public> name -- and how it is
called: `impl(*operands, **params)`, today's implementation of the operation (an
adapter: the records, sweeps and file format of docs/design/array-registry.md take
their rules from the entry in later stages), `parse` turning a NumPy-style call into
those operands and params, `dual` its form over collections of Dual numbers.  The
declarations are in fastad._prims, one per operation; this module holds the table
and the routing that reads it, and imports nothing from fastad: it is data, below
the core, which reads it to reach the layers above it (record forms, the NumPy
protocols, Duals) without any module writing another's globals.

Routing by operand class: a class that binds primitives itself sets
`__fastad_level__` (an int) and `__fastad_bind__(prim, operands, params)` on
itself.  A call whose operands (or the elements of list, tuple and object-array
operands) include such a class goes to the one of highest level; any other call
goes to `impl`.  Dual (level 1) is the only one today; Var's operations still live
in `impl`, so Var sets neither.
"""
import functools
import sys

import numpy as np

# What `kind` says about an entry (the design's kinds, plus the three an adapter
# stage needs for operations that are not primitives of their own):
#   elementwise       one op-table row (`op`), values and partials from csrc/
#   linear            linear in its operands: sum, mean, reshape, transpose, stack, ...
#   multilinear       linear in each operand: matmul, einsum
#   piecewise_linear  linear between kinks: max, min
#   nonlinear         anything else: prod, logsumexp, softmax, log_softmax
#   front_end         lowered to other entries (clip, dot, inner, squeeze, ...)
#   comparison        a boolean result, recorded as guards (np.less, ...)
#   query             a property of the operand, no derivative (np.shape, ...)
#   custom            a user's fd.custom_vjp / fd.custom_jvp (never in REGISTRY)
# What `sparsity` says (docs/design/array-registry.md section 4.7):
#   elementwise  output element o depends on the operands' elements broadcast to o
#   by_index     the record's forward run on integer index arrays says which operand
#                element each output element is (layout, indexing, assembly)
#   reduce       o depends on the operand's elements along the reduced axes
#   dense        o depends on every element of every operand (the safe default)
# or a callable rule(record, operand_bits) -> output bits (fastad._sparse_plan).
SPARSITY_RULES = ("elementwise", "by_index", "reduce", "dense")

KINDS = ("elementwise", "linear", "multilinear", "piecewise_linear", "nonlinear",
         "front_end", "comparison", "query", "custom")


class Primitive:
    """One array operation (see the module docstring).  Immutable once made.

    A plain class with __slots__ rather than a dataclass: dataclasses cost ~3 ms of
    import time to generate their methods, and slots make attribute reads (which
    the core does on every array op) cheaper."""

    __slots__ = (
        "name",      # unique
        "impl",      # impl(*operands, **params): floats, arrays, Vars
        "kind",      # one of KINDS
        "numpy",     # NumPy callables (ufuncs too) it answers to on Vars
        "methods",   # Var methods and operators it backs
        "public",    # fd.<public>, or None
        "parse",     # NumPy-style (*args, **kwargs) -> (operands, params)
        "op",        # elementwise: the op-table code, else -1
        "dual",      # the same call over Duals (lists, object arrays), or None
        "reduce",    # elementwise: the entry ufunc.reduce means ("sum"), or None
        "record",    # the record form the core calls for large arrays (it returns
                     # NotImplemented below the size threshold), or None
        "tests",     # rows of tests/test_registry.py: (shapes, params, domain)
        "sparsity",  # how a record's output elements depend on its operands' (the
                     # patterns of fastad._sparse_plan): one of SPARSITY_RULES, or a
                     # callable rule(record, operand_bits) -> output bits
        # -- the rules (docs/design/array-registry.md 2.1), read by the one generic
        #    record class (fastad._generic.GenericRecord).  Directions ride on a
        #    leading axis: T, G and Gd are (k,) + shape, so one rule serves reverse
        #    mode (k = 1), tangents and block sweeps alike.
        "forward",   # (values, p) -> (out, res): the value kernel, also the replay
        "vjp",       # (values, out, res, G, p, needs) -> one (k,)+in_shape or None per operand
        "jvp",       # (values, out, res, T, p) -> (k,)+out_shape; T[i] (k,)+in_shape or None
        "second",    # (values, out, res, T, g, Gd, p, needs) -> per operand
                     #   J^T Gd + d/de[J(x + eT)^T g]; None: from kind (linear: vjp(Gd))
        "differentiable_rules",  # the rules may be called on Vars (custom primitives)
        "shape",     # (in_shapes, p) -> out_shape; ValueError naming what is wrong
        "saved",     # (kind, {field: codec}): the record's data-only saved form
                     #   (fastad._record_codec), or None: it has none
    )

    def __init__(self, name, impl, kind, numpy=(), methods=(), public=None, parse=None,
                 op=-1, dual=None, reduce=None, record=None, tests=(),
                 sparsity="dense",
                 forward=None, vjp=None, jvp=None, second=None,
                 differentiable_rules=False, shape=None, saved=None):
        for field, value in (("name", name), ("impl", impl), ("kind", kind),
                             ("numpy", tuple(numpy)), ("methods", tuple(methods)),
                             ("public", public), ("parse", parse), ("op", op),
                             ("dual", dual), ("reduce", reduce), ("record", record),
                             ("tests", tuple(tests)),
                             ("sparsity", sparsity),
                             ("forward", forward), ("vjp", vjp), ("jvp", jvp),
                             ("second", second),
                             ("differentiable_rules", bool(differentiable_rules)),
                             ("shape", shape), ("saved", saved)):
            object.__setattr__(self, field, value)

    def __setattr__(self, field, value):
        raise AttributeError("a Primitive is immutable (declare another one)")

    def __delattr__(self, field):
        raise AttributeError("a Primitive is immutable")

    def __repr__(self):
        return "<fastad primitive %s (%s)>" % (self.name, self.kind)


# The table, and its indexes.  Filled by declare() when fastad._prims is imported
# (the only state filled at import: the declarations themselves).
REGISTRY: dict = {}       # name -> Primitive
BY_NUMPY: dict = {}       # NumPy callable -> Primitive
BY_OP: dict = {}          # op-table code -> elementwise Primitive
BY_UFUNC_NAME: dict = {}  # ufunc name -> elementwise Primitive (ufuncs that are not NumPy's)
METHODS: dict = {}        # Var method name -> impl of the Primitive that backs it
PUBLIC: dict = {}         # fd.<name> -> the public function
SCIPY_SPECIAL: dict = {}  # scipy.special ufunc name -> Primitive, beyond the rows' names


def test_row(*shapes, dom=None, **params):
    """A row of an entry's `tests` (tests/test_registry.py): operand specs (a shape
    tuple is a random array, a list of shapes a list of arrays, anything else a
    constant passed as is), params, and the interval each random operand is drawn
    from (default (-1, 1))."""
    return shapes, params, dom


def declare(prim):
    """Add `prim` to the registry; ValueError when anything it claims is taken."""
    if prim.kind == "custom":
        raise ValueError("primitive %r: custom primitives are not added to the "
                         "registry (user code never changes fastad's tables)" % prim.name)
    if prim.kind not in KINDS:
        raise ValueError("primitive %r: unknown kind %r" % (prim.name, prim.kind))
    if prim.name in REGISTRY:
        raise ValueError("primitive %r is declared twice" % prim.name)
    if (prim.kind == "elementwise") != (prim.op >= 0):
        raise ValueError("primitive %r: an op code exactly for elementwise kinds"
                         % prim.name)
    if prim.sparsity not in SPARSITY_RULES and not callable(prim.sparsity):
        raise ValueError("primitive %r: unknown sparsity rule %r"
                         % (prim.name, prim.sparsity))
    if prim.forward is not None and prim.vjp is None:
        raise ValueError("primitive %r has a forward rule but no vjp rule" % prim.name)
    if prim.forward is not None and prim.second is None and \
            prim.kind not in ("linear", "piecewise_linear"):
        raise ValueError("primitive %r (%s) needs a second-order rule"
                         % (prim.name, prim.kind))
    if prim.numpy and prim.parse is None:
        raise ValueError("primitive %r answers to NumPy callables but has no parse"
                         % prim.name)
    for f in prim.numpy:
        if f in BY_NUMPY:
            raise ValueError("numpy.%s is claimed by %r and %r" % (
                getattr(f, "__name__", f), BY_NUMPY[f].name, prim.name))
    for m in prim.methods:
        if m in METHODS:
            raise ValueError("Var.%s is claimed twice (by %r)" % (m, prim.name))
    if prim.public is not None and prim.public in PUBLIC:
        raise ValueError("fd.%s is claimed twice (by %r)" % (prim.public, prim.name))
    if prim.op >= 0 and prim.op in BY_OP:
        raise ValueError("op code %d is claimed by %r and %r"
                         % (prim.op, BY_OP[prim.op].name, prim.name))
    REGISTRY[prim.name] = prim
    for f in prim.numpy:
        BY_NUMPY[f] = prim
    for m in prim.methods:
        METHODS[m] = prim.impl
    if prim.op >= 0:
        BY_OP[prim.op] = prim
        for name in {prim.name} | {getattr(f, "__name__", None) for f in prim.numpy}:
            if name:
                BY_UFUNC_NAME.setdefault(name, prim)
    if prim.public is not None:
        PUBLIC[prim.public] = _public(prim)
    return prim


# ----------------------------------------------------------------------------------
# Routing by operand class

def binder(args, kwargs=None):
    """The class of highest __fastad_level__ among the operands (and the elements
    of list, tuple and object-array operands), or None."""
    best = [None, 0]
    for a in args:
        _scan(a, best)
    if kwargs:
        for a in kwargs.values():
            _scan(a, best)
    return best[0]


_levels: dict = {}   # type -> its __fastad_level__, 0 for none


def level_of(t):
    """The __fastad_level__ of class t (0: it binds nothing itself), cached by type:
    getattr with a default costs ~0.5 us when the attribute is missing (it raises
    and catches an AttributeError), a dict lookup ~0.03 us."""
    level = _levels.get(t)
    if level is None:
        level = _levels[t] = getattr(t, "__fastad_level__", 0)
    return level


def _scan(x, best):
    t = type(x)
    level = _levels.get(t)
    if level is None:
        level = level_of(t)
    if level:
        if level > best[1]:
            best[0], best[1] = t, level
    elif t is list or t is tuple:
        _scan_items(x, best)
    elif t is np.ndarray and x.dtype.kind == "O":
        _scan_items(x.flat, best)


def _scan_items(items, best):
    # _scan of each item, inlined for the common flat list of Vars or numbers
    # (fd.stack([...]) of many scalars scans every one on every call)
    for e in items:
        t = type(e)
        level = _levels.get(t)
        if level is None:
            level = level_of(t)
        if level:
            if level > best[1]:
                best[0], best[1] = t, level
        elif t is list or t is tuple or t is np.ndarray:
            _scan(e, best)


def bind(prim, operands, params):
    """prim called on its operands, routed by their classes (module docstring)."""
    cls = binder(operands, params)
    if cls is None:
        return prim.impl(*operands, **params)
    return cls.__fastad_bind__(prim, operands, params)


def _public(prim):
    """fd.<prim.public>: the impl itself when it routes every operand class by
    itself (the op table's functions do, in C), else the impl behind bind()."""
    if prim.dual is None:
        return prim.impl
    impl = prim.impl

    @functools.wraps(impl)
    def public(*args, **kwargs):
        cls = binder(args, kwargs)
        if cls is None:
            return impl(*args, **kwargs)
        return cls.__fastad_bind__(prim, args, kwargs)
    return public


def bind_elementwise(op, operands):
    """The op-table function `op` on operands that are not Vars or numbers: a class
    with a binder (a Dual), or object arrays, whose elements are mapped one by one
    (fastad._tape calls this; it knows no class above it)."""
    prim = BY_OP[op]
    cls = binder(operands)
    if cls is not None:
        return cls.__fastad_bind__(prim, operands, {})
    arrays = np.broadcast_arrays(*[np.asarray(o, dtype=object) for o in operands])
    out = np.empty(arrays[0].shape, dtype=object)
    flat = out.reshape(-1)
    for k, args in enumerate(zip(*[a.reshape(-1) for a in arrays])):
        flat[k] = prim.impl(*args)
    return out if out.ndim or len(operands) == 1 else out[()]


# ----------------------------------------------------------------------------------
# NumPy's protocols on Vars (Var.__array_ufunc__ / __array_function__ call these)

def declare_scipy_special(name, prim):
    """scipy.special.<name> on Vars is `prim` (fastad.special: compositions such as
    betaln, and the names SciPy spells otherwise, psi for digamma)."""
    if name in SCIPY_SPECIAL:
        raise ValueError("scipy.special.%s is claimed twice" % name)
    SCIPY_SPECIAL[name] = prim


def ufunc_entry(ufunc):
    """The elementwise or contraction entry of a ufunc: NumPy's by object; another
    library's (scipy.special.erf) by its name, when an op-table row has that name;
    scipy.special's other ufuncs with an entry in SCIPY_SPECIAL when the ufunc is
    the one scipy.special holds under that name (looked up in sys.modules: only
    if the user has imported SciPy, which fastad never does)."""
    prim = BY_NUMPY.get(ufunc)
    if prim is None:
        name = getattr(ufunc, "__name__", None)
        prim = BY_UFUNC_NAME.get(name)
        if prim is None and name in SCIPY_SPECIAL:
            mod = sys.modules.get("scipy.special")
            if mod is not None and getattr(mod, name, None) is ufunc:
                prim = SCIPY_SPECIAL[name]
    return prim


def qualified_name(func):
    """A NumPy callable's name with its module, as users write it:
    numpy.linalg.eigh, numpy.cumsum, scipy.special.loggamma (SciPy's ufuncs carry
    no __module__: looked up in scipy.special when it is imported, never importing
    it); another library's ufunc by its name alone."""
    name = getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None)
    if module is not None:
        return "%s.%s" % (module, name)
    for home in ("numpy", "scipy.special"):
        mod = sys.modules.get(home)
        if mod is not None and getattr(mod, name, None) is func:
            return "%s.%s" % (home, name)
    return name


def array_ufunc(ufunc, method, inputs, kwargs):
    name = getattr(ufunc, "__name__", repr(ufunc))
    prim = ufunc_entry(ufunc)
    if method != "__call__":
        if method == "reduce" and prim is not None and prim.reduce is not None:
            return _ufunc_reduce(name, REGISTRY[prim.reduce], inputs, kwargs)
        raise TypeError("fastad: numpy.%s.%s is not supported on Vars (only calling the "
                        "ufunc, and %s.reduce)" % (name, method, "/".join(
                            p.name for p in REGISTRY.values() if p.reduce is not None)))
    if prim is None:
        raise TypeError("fastad: %s is not supported on Vars (it would detach "
                        "the result from the tape); use fastad's functions"
                        % qualified_name(ufunc))
    operands, params = prim.parse(*inputs, **kwargs)
    return prim.impl(*operands, **params)


def _ufunc_reduce(name, prim, inputs, kwargs):
    """numpy.<ufunc>.reduce(x, axis=0, keepdims=False) as the reduction `prim`."""
    (x,) = inputs
    axis = kwargs.pop("axis", 0)
    keepdims = kwargs.pop("keepdims", False)
    if kwargs:
        raise TypeError("fastad: numpy.%s.reduce got unsupported keyword arguments %s"
                        % (name, sorted(kwargs)))
    return prim.impl(x, axis=axis, keepdims=keepdims)


def array_function(func, args, kwargs):
    prim = BY_NUMPY.get(func)
    if prim is None:
        raise TypeError("fastad: %s is not supported on Vars (it would detach "
                        "the result from the tape)" % qualified_name(func))
    operands, params = prim.parse(*args, **kwargs)
    return prim.impl(*operands, **params)
