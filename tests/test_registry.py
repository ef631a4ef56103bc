"""Table-driven tests over the registry of array primitives (fastad._registry).

Every entry is tested from its own rows (the `tests` of its declaration in
fastad._prims): value against NumPy (floats, arrays, Vars, collections of Duals),
the reverse-mode VJP against central differences, and forward against reverse
mode through random projections, <u, J v> = <J^T u, v> (autograd's check_grads).
A new entry is tested the moment it is declared; the completeness tests below
make sure it is declared everywhere it must be (NumPy names, fd.*, Var methods).
"""
import os
import sys

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.special as sp

import fastad as fd
from fastad import _registry
from fastad._registry import BY_NUMPY, KINDS, METHODS, PUBLIC, REGISTRY, Primitive
from fastad import _tape
from fastad._tape import OP_INFO
from _record_paths import elementwise_records  # noqa: F401,E402  (fixture)

# sizes from RECORD_MIN_SIZE up test every op's record, elementwise ones too
pytestmark = pytest.mark.usefixtures("elementwise_records")

# The entries, and their rows as pytest parameters "name-k"
# linear algebra: entries returning a tuple (their table rows are checked in
# tests/test_linalg.py, which takes the tuple apart)
TUPLE_OUTPUT = {"slogdet", "eigh", "svd", "qr", "cho_factor"}
# the array API's split / array_split return lists (tests/test_array_api.py)
TUPLE_OUTPUT |= {"split", "array_split", "vsplit", "hsplit", "dsplit"}
CASES = [(name, k) for name in sorted(REGISTRY) if name not in TUPLE_OUTPUT
         for k in range(len(REGISTRY[name].tests))]
IDS = ["%s-%d" % c for c in CASES]
DIFF = [c for c in CASES if REGISTRY[c[0]].kind not in ("comparison", "query")]
DIFF_IDS = ["%s-%d" % c for c in DIFF]

# The reference for entries with no NumPy function of their own
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _numdiff import solve_triangular_ref as _solve_triangular_ref  # noqa: E402

REFERENCE = {
    "erf": sp.erf, "erfc": sp.erfc, "sigmoid": sp.expit,
    "relu": lambda a: np.maximum(a, 0.0),
    "softplus": lambda a: np.logaddexp(0.0, a),
    "logsumexp": sp.logsumexp,
    "softmax": lambda a, axis=-1: sp.softmax(a, axis=axis),
    "log_softmax": lambda a, axis=-1: sp.log_softmax(a, axis=axis),
    "getitem": lambda a, key: np.asarray(a)[key],
    "array": np.array,
    # np.reshape takes shape= only from NumPy 2.1 (newshape= before): positional
    "reshape": lambda a, shape: np.reshape(a, shape),
    # linear algebra: log|det a|, slogdet's differentiable half
    "logabsdet": lambda a: np.linalg.slogdet(a)[1],
    # the packed factors of eigh, svd and qr (fastad._prims_decomp), and svdvals
    "eigh_factors": lambda a: np.concatenate(
        [np.linalg.eigh(a)[0][..., None, :], np.linalg.eigh(a)[1]], axis=-2),
    "svd_factors": lambda a: np.concatenate(
        [np.linalg.svd(a, False)[0], np.linalg.svd(a, False)[1][..., None, :],
         np.swapaxes(np.linalg.svd(a, False)[2], -1, -2)], axis=-2),
    "qr_factors": lambda a: np.concatenate(np.linalg.qr(a), axis=-2),
    "svdvals": lambda a: np.linalg.svd(a, compute_uv=False),
    # scipy.linalg (fastad._prims_scipy_linalg claims no SciPy callable)
    "solve_triangular": lambda a, b, trans, **kw: _solve_triangular_ref(
        a, b, trans=int(trans), **kw),
    "cho_factor": lambda a, lower: sl.cho_factor(a, lower=lower),
    "cho_solve": sl.cho_solve,
}

# fd.__all__ names that are not array functions (API.md sections 1-5, 7-9)
NOT_ARRAY_FUNCTIONS = {
    "CompileError", "FastADError", "GradientCheckError", "TapeError", "TraceError", "Tape", "Var",
    "grad", "value_and_grad", "check_grad", "debug_nans", "release_memory", "Dual",
    "jvp", "vjp", "jacobian", "hessian", "hvp", "derivative", "optim", "nn", "special",
    "stats", "linalg",
    "minimize", "trace", "load",
    "jacobian_sparsity", "sparse_jacobian", "hessian_sparsity", "sparse_hessian",
    "least_squares", "custom_vjp", "custom_jvp",
}

# entries with no form over Duals (fd.* does not export them, or Dual arithmetic
# gives them already: clip is maximum/minimum)
NO_DUAL_FORM = {"max", "min", "outer", "inner", "einsum", "ravel", "squeeze",
                "expand_dims", "getitem", "clip", "reciprocal"}
# linear algebra (fastad._prims_linalg): Vars only, no Dual form yet
NO_DUAL_FORM |= {"solve", "inv", "det", "logabsdet", "slogdet", "cholesky",
                 "eigvalsh"}
# decompositions and the rest of numpy.linalg (fastad._prims_decomp), scipy.linalg's
# solves (fastad._prims_scipy_linalg): Vars only
NO_DUAL_FORM |= {n for n, p in REGISTRY.items()
                 if p.impl.__module__ in ("fastad._prims_decomp",
                                          "fastad._prims_scipy_linalg")}
# the array-API front ends (fastad._prims_array): no Dual form yet
NO_DUAL_FORM |= {n for n, p in REGISTRY.items()
                 if p.impl.__module__ in ("fastad._prims_array", "fastad._prims_numpy_misc")
                 and p.kind == "front_end"}
# their primitives (fastad._prims_array): Vars only, so far
NO_DUAL_FORM |= {"cumsum", "cumprod", "round"}


# fd.special: the op-table rows and the compositions, against scipy.special
REFERENCE.update({name: getattr(sp, name) for name in _tape.SPECIAL_ROWS
                  if name != "polygamma"})
REFERENCE["polygamma"] = lambda n, x: sp.polygamma(np.round(n), x)
REFERENCE.update({"special." + name: getattr(sp, name)
                  for name in ("betaln", "beta", "erfcinv", "expit", "log_expit")})
# fd.special's compositions take scalar Duals (their rows do); no form over lists
# and object arrays of Duals yet
NO_DUAL_FORM |= {"special." + name
                 for name in ("betaln", "beta", "erfcinv", "expit", "log_expit")}


def reference(name):
    prim = REGISTRY[name]
    return REFERENCE.get(name) or prim.numpy[0]


def _domain(dom, i):
    if dom is None:
        return (-1.0, 1.0)
    if isinstance(dom[0], tuple):
        return dom[i] if i < len(dom) else dom[-1]
    return dom


def draw(name, k, seed=0):
    """(operands, params) of row k of entry `name`: random arrays for shape specs
    (0-d ones as Python floats), lists of them for list specs, constants as is."""
    shapes, params, dom = REGISTRY[name].tests[k]
    rng = np.random.default_rng(seed + 7 * k + sum(map(ord, name)))
    out, r = [], 0
    for spec in shapes:
        if type(spec) is tuple:
            lo, hi = _domain(dom, r)
            a = rng.uniform(lo, hi, size=spec)
            out.append(float(a) if spec == () else a)
            r += 1
        elif type(spec) is list:
            lo, hi = _domain(dom, r)
            arrays = [rng.uniform(lo, hi, size=s) for s in spec]
            out.append([float(a) if a.ndim == 0 else a for a in arrays])
            r += 1
        else:
            out.append(spec)
    return out, dict(params)


def _is_random(spec):
    return type(spec) in (tuple, list)


def _close(got, want, rtol=1e-12, atol=1e-12):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _values(x):
    return x.value if type(x) is fd.Var else x


# ----------------------------------------------------------------------------------
# The table itself

def test_kinds_and_rows():
    for name, prim in REGISTRY.items():
        assert prim.kind in KINDS, name
        assert prim.tests, "%s has no test rows" % name
        assert (prim.op >= 0) == (prim.kind == "elementwise"), name


def test_one_elementwise_entry_per_op_table_row_in_order():
    rows = [(code, name) for code, name, _, _ in OP_INFO]
    entries = [(p.op, p.name) for p in REGISTRY.values() if p.kind == "elementwise"]
    assert entries == rows


def test_entries_are_immutable():
    prim = REGISTRY["sum"]
    with pytest.raises(AttributeError):
        prim.impl = None
    with pytest.raises(AttributeError):
        del prim.name
    assert prim.impl is fd.sum.__wrapped__


def test_names_and_claims_are_unique(monkeypatch):
    for table in ("REGISTRY", "BY_NUMPY", "BY_OP", "BY_UFUNC_NAME", "METHODS", "PUBLIC"):
        monkeypatch.setattr(_registry, table, dict(getattr(_registry, table)))
    sum_ = REGISTRY["sum"]
    clashes = [
        Primitive("sum", sum_.impl, "linear"),                           # name
        Primitive("sum2", sum_.impl, "linear", numpy=(np.sum,),
                  parse=sum_.parse),                                     # NumPy callable
        Primitive("sum3", sum_.impl, "linear", methods=("sum",)),        # Var method
        Primitive("sum4", sum_.impl, "linear", public="sum"),            # fd.* name
        Primitive("sin2", fd.sin, "elementwise", op=REGISTRY["sin"].op),  # op code
        Primitive("sum5", sum_.impl, "linear", numpy=(np.cumsum,)),      # no parse
        Primitive("sum6", sum_.impl, "nonsense"),                        # kind
        Primitive("sum7", sum_.impl, "linear", op=3),                    # op, not elementwise
    ]
    for prim in clashes:
        with pytest.raises(ValueError):
            _registry.declare(prim)
    assert _registry.REGISTRY["sum"] is sum_


def test_public_names_are_the_array_functions_of_fd_all():
    assert NOT_ARRAY_FUNCTIONS <= set(fd.__all__)
    assert set(PUBLIC) == set(fd.__all__) - NOT_ARRAY_FUNCTIONS
    for name, fn in PUBLIC.items():
        assert getattr(fd, name) is fn, name
        assert REGISTRY[[n for n, p in REGISTRY.items() if p.public == name][0]]
    assert fd.abs is fd.abs and fd.abs(-2.0) == 2.0


def test_every_numpy_callable_dispatches_to_its_entry():
    for name, prim in REGISTRY.items():
        for f in prim.numpy:
            if isinstance(f, np.ufunc):
                assert _registry.ufunc_entry(f) is prim, (name, f)
            else:
                assert BY_NUMPY[f] is prim, (name, f)


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if REGISTRY[n].numpy
                                         and n not in TUPLE_OUTPUT))
def test_numpy_on_vars_gives_the_entry(name):
    # NumPy's own function on Var operands goes through the entry: the same value
    # as its implementation, and a Var (not a detached array) out
    prim = REGISTRY[name]
    operands, params = draw(name, 0)
    with fd.Tape() as t:
        ops = [_on_tape(t, o, s) for o, s in zip(operands, prim.tests[0][0])]
        want = prim.impl(*ops, **params)
        for f in prim.numpy:
            if name == "reshape":   # np.reshape(a, shape=) is NumPy >= 2.1 only
                got = f(*ops, params["shape"])
            else:
                got = f(*ops, **params)
            if prim.kind in ("query", "comparison"):
                assert np.array_equal(got, want), (name, f)
            else:
                assert type(got) is fd.Var, (name, f)
                _close(got.value, _values(want), 0, 0)


def test_ufunc_reduce_is_its_reduction():
    x = np.random.default_rng(0).uniform(size=(5, 4))
    for prim in REGISTRY.values():
        if prim.reduce is None:
            continue
        red = REGISTRY[prim.reduce]
        with fd.Tape() as t:
            v = t.variable(x)
            got = prim.numpy[0].reduce(v, axis=1)
            _close(got.value, red.impl(x, axis=1), 0, 0)
            _close(got.value, prim.numpy[0].reduce(x, axis=1))


def test_other_libraries_ufuncs_dispatch_by_row_name():
    x = np.linspace(0.1, 0.9, 5)
    g = fd.grad(lambda v: np.sum(sp.erf(v)))(x)
    _close(g, 2 / np.sqrt(np.pi) * np.exp(-x * x))


def _method_call(m, ops, params):
    calls = {
        "sum": lambda: ops[0].sum(**params), "mean": lambda: ops[0].mean(**params),
        "reshape": lambda: ops[0].reshape(params["shape"]),
        "transpose": lambda: ops[0].transpose(params.get("axes") or ()),
        "T": lambda: ops[0].T, "dot": lambda: ops[0].dot(ops[1]),
        "__getitem__": lambda: ops[0][params["key"]],
    }
    if m in calls:
        return calls[m]()
    if m.startswith("__r") and len(ops) == 2:
        return getattr(ops[1], m)(ops[0])
    return getattr(ops[0], m)(*ops[1:])


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if REGISTRY[n].methods))
def test_var_methods_give_the_entry(name):
    prim = REGISTRY[name]
    operands, params = draw(name, 0)
    with fd.Tape() as t:
        ops = [_on_tape(t, o, s) for o, s in zip(operands, prim.tests[0][0])]
        want = _values(prim.impl(*ops, **params))
        for m in prim.methods:
            assert hasattr(fd.Var, m), (name, m)
            assert METHODS[m] is prim.impl
            _close(_values(_method_call(m, ops, params)), want, 0, 0)


# ----------------------------------------------------------------------------------
# Values against NumPy

def _on_tape(t, operand, spec):
    if type(spec) is tuple:
        return t.variable(operand)
    if type(spec) is list:
        return [t.variable(o) for o in operand]
    return operand


@pytest.mark.parametrize("name,k", CASES, ids=IDS)
def test_value_on_arrays_and_floats(name, k):
    operands, params = draw(name, k)
    got = REGISTRY[name].impl(*operands, **params)
    want = reference(name)(*operands, **params)
    if REGISTRY[name].kind in ("query", "comparison"):
        assert np.array_equal(got, want)
        return
    assert type(got) is not fd.Var
    _close(got, want)
    if all(not _is_random(spec) or spec == () for spec in REGISTRY[name].tests[k][0]) \
            and np.ndim(want) == 0:
        assert type(got) is float, type(got)      # plain numbers in, a float out


@pytest.mark.parametrize("name,k", CASES, ids=IDS)
def test_value_on_vars(name, k):
    prim = REGISTRY[name]
    operands, params = draw(name, k)
    want = reference(name)(*operands, **params)
    with fd.Tape() as t:
        ops = [_on_tape(t, o, s) for o, s in zip(operands, prim.tests[k][0])]
        got = prim.impl(*ops, **params)
    if prim.kind in ("query", "comparison"):
        assert np.array_equal(got, want)
        return
    _close(_values(got), want)


def _dualize(x, tangent):
    """x (a float, an array, a list of them) as Duals with the tangent's numbers:
    a Dual, (nested) lists of Duals."""
    if type(x) is list:
        return [_dualize(a, b) for a, b in zip(x, tangent)]
    if np.ndim(x) == 0:
        return fd.Dual(float(x), float(tangent))
    return [_dualize(a, b) for a, b in zip(x, tangent)]


def _dual_parts(out):
    if type(out) is fd.Dual:
        return out.value, out.tangent
    arr = np.asarray(out, dtype=object)
    val = np.vectorize(lambda d: d.value if type(d) is fd.Dual else float(d),
                       otypes=[float])(arr)
    tan = np.vectorize(lambda d: d.tangent if type(d) is fd.Dual else 0.0,
                       otypes=[float])(arr)
    return val, tan


DUAL_CASES = [c for c in DIFF if c[0] not in NO_DUAL_FORM]


def test_the_entries_without_a_dual_form():
    assert NO_DUAL_FORM == {n for n, p in REGISTRY.items()
                            if p.dual is None and p.kind not in
                            ("elementwise", "comparison", "query")}


@pytest.mark.parametrize("name,k", DUAL_CASES, ids=["%s-%d" % c for c in DUAL_CASES])
def test_value_on_duals(name, k):
    # lists of Duals (object arrays of Duals for the op table's rows, which map
    # over them); the tangent is the directional derivative, checked by central
    # differences of the NumPy reference
    prim = REGISTRY[name]
    operands, params = draw(name, k)
    rng = np.random.default_rng(k)
    specs = prim.tests[k][0]
    tangents = [([rng.normal(size=np.shape(a)) for a in o] if type(s) is list
                 else rng.normal(size=np.shape(o))) if _is_random(s) else None
                for o, s in zip(operands, specs)]
    duals = []
    for o, s, tg in zip(operands, specs, tangents):
        if not _is_random(s):
            duals.append(o)
            continue
        d = _dualize(o, tg)
        if prim.kind == "elementwise" and type(d) is list:
            d = fd.array(d)             # an object array of Duals
        duals.append(d)
    out = fd.__dict__[prim.public](*duals, **params) if prim.public else \
        prim.impl(*duals, **params)
    val, tan = _dual_parts(out)
    ref = reference(name)
    _close(val, ref(*operands, **params))
    h = 1e-6

    def moved(sign):
        return [o if tg is None else
                ([a + sign * h * b for a, b in zip(o, tg)] if type(o) is list
                 else o + sign * h * tg) for o, tg in zip(operands, tangents)]
    fd_tan = (np.asarray(ref(*moved(1), **params)) - np.asarray(ref(*moved(-1), **params))) \
        / (2 * h)
    _close(tan, fd_tan, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------
# Derivatives

def _flat(x):
    if type(x) is list:
        return np.concatenate([np.ravel(a) for a in x]) if x else np.zeros(0)
    return np.ravel(np.asarray(x, dtype=np.float64))


def _unflat(v, like):
    if type(like) is list:
        out, o = [], 0
        for a in like:
            n = np.size(a)
            out.append(float(v[o]) if np.ndim(a) == 0 else v[o:o + n].reshape(np.shape(a)))
            o += n
        return out
    return float(v[0]) if np.ndim(like) == 0 else v.reshape(np.shape(like))


def _scalarised(name, k, operands, params, i, w):
    """x -> sum(w * entry(operands with operand i = x)) on Vars or numbers."""
    impl = REGISTRY[name].impl

    def f(x):
        ops = list(operands)
        ops[i] = x
        return fd.sum(REGISTRY["multiply"].impl(w, impl(*ops, **params)))
    return f


def _scalarised_operands(name, k, seed):
    """(i, operands, f) for each random operand i of row k of `name`: f is
    x -> sum(w * entry(operands with operand i = x)), w drawn with `seed`."""
    operands, params = draw(name, k)
    out = reference(name)(*operands, **params)
    w = np.random.default_rng(seed).normal(size=np.shape(out))
    for i, spec in enumerate(REGISTRY[name].tests[k][0]):
        if _is_random(spec):
            yield i, operands, _scalarised(name, k, operands, params, i, w)


@pytest.mark.parametrize("name,k", DIFF, ids=DIFF_IDS)
def test_vjp_against_central_differences(name, k):
    for i, operands, f in _scalarised_operands(name, k, seed=1):
        g = _flat(fd.grad(f)(operands[i]))
        x0, h = _flat(operands[i]), 1e-6
        num = np.empty_like(x0)
        for j in range(x0.size):
            e = np.zeros_like(x0)
            e[j] = h
            num[j] = (f(_unflat(x0 + e, operands[i])) - f(_unflat(x0 - e, operands[i]))) \
                / (2 * h)
        _close(g, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name,k", DIFF, ids=DIFF_IDS)
def test_forward_and_reverse_agree_on_random_projections(name, k):
    # <u, J v> (a tangent sweep, fd.jvp) = <J^T u, v> (a reverse sweep, fd.vjp)
    prim = REGISTRY[name]
    operands, params = draw(name, k)
    rng = np.random.default_rng(2)
    for i, spec in enumerate(prim.tests[k][0]):
        if not _is_random(spec):
            continue
        impl = prim.impl

        def f(x):
            ops = list(operands)
            ops[i] = x
            return impl(*ops, **params)
        x0 = operands[i]
        v = _unflat(rng.normal(size=_flat(x0).size), x0)
        out, jv = fd.jvp(f, (x0,), (v,))
        u = rng.normal(size=np.shape(out))
        out2, vjp_fn = fd.vjp(f, x0)
        (jtu,) = vjp_fn(u if np.ndim(out) else float(u))
        _close(out2, out, 0, 0)
        lhs = float(np.sum(u * np.asarray(jv)))
        rhs = float(np.dot(_flat(jtu), _flat(v)))
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name,k", DIFF, ids=DIFF_IDS)
def test_block_sweeps_equal_one_direction_at_a_time(name, k):
    # fd.hessian runs every record's rules once for all m directions (an (n, m)
    # block); fd.hvp of one direction runs them with k = 1: the columns agree
    for i, operands, f in _scalarised_operands(name, k, seed=3):
        x0 = _flat(operands[i])
        if x0.size == 0:
            continue

        def g(v, f=f, like=operands[i]):
            return f(_unflat_var(v, like))
        H = np.atleast_2d(fd.hessian(g)(x0))
        for j in range(x0.size):
            e = np.zeros(x0.size)
            e[j] = 1.0
            _close(np.ravel(fd.hvp(g)(x0, e)), H[:, j], rtol=1e-12, atol=1e-12)


def _unflat_var(v, like):
    """_unflat for a 1-D Var v: slices and reshapes on the tape."""
    if type(like) is list:
        out, o = [], 0
        for a in like:
            n = np.size(a)
            out.append(v[o] if np.ndim(a) == 0 else fd.reshape(v[o:o + n], np.shape(a)))
            o += n
        return out
    return v[0] if np.ndim(like) == 0 else fd.reshape(v, np.shape(like))


# ----------------------------------------------------------------------------------
# Rules in the declaration (docs/design/array-registry.md 2.1): entries with rules
# are recorded as one GenericRecord; their rules take k directions on a leading axis

from fastad import _arrays, _generic  # noqa: E402

RULED = sorted(name for name, p in REGISTRY.items() if p.forward is not None)
# (two-operand ruled entries -- linear algebra's solve, solve_triangular -- have the same checks in
# tests/test_linalg.py: the rows below draw one operand)
RULE_CASES = [(name, k) for name in RULED if name not in ("solve", "solve_triangular")
              for k in range(len(REGISTRY[name].tests))]
RULE_IDS = ["%s-%d" % c for c in RULE_CASES]


def _rule_params(name, shape, params):
    """The params object of a rule call for a test row's NumPy-style params."""
    if name in ("softmax", "log_softmax", "logsumexp", "sum", "mean", "max", "min"):
        axis = params.get("axis", -1 if name in ("softmax", "log_softmax") else None)
        return {"axes": fd._tape.normalize_axes(axis, len(shape), name),
                "keepdims": bool(params.get("keepdims", False))}
    if name == "reshape":
        return {"arg": np.empty(shape).reshape(params["shape"]).shape}
    if name == "transpose":
        axes = params.get("axes") or tuple(range(len(shape)))[::-1]
        return {"arg": tuple(axes)}
    if name in ("inv", "det", "logabsdet", "cholesky", "eigvalsh", "eigh_factors",
                "svd_factors", "qr_factors", "svdvals", "pinv"):  # linear algebra: none
        return {}
    if name in ("cumsum", "cumprod"):  # axis None: the flattened array, as axis 0
        return {"axis": params.get("axis", 0) % max(len(shape), 1)}
    if name == "round":
        return {"decimals": params.get("decimals", 0)}
    raise AssertionError("no params translation for %s" % name)


def _rule_row(name, k):
    prim = REGISTRY[name]
    shapes, params, dom = prim.tests[k]
    lo, hi = dom or (-1.0, 1.0)
    rng = np.random.default_rng(k + 7)
    x = rng.uniform(lo, hi, shapes[0])
    p = _rule_params(name, x.shape, params)
    out, res = prim.forward([x], p)
    return prim, x, p, np.asarray(out), res, rng


def test_ruled_entries_include_the_ported_families():
    assert {"softmax", "log_softmax", "logsumexp", "reshape", "transpose", "sum", "mean",
            "max", "min"} <= set(RULED)
    for gone in ("SoftmaxRecord", "LayoutRecord", "softmax_like", "ReduceRecord",
                 "large_reduce", "reduce"):
        assert not hasattr(_arrays, gone)


@pytest.mark.parametrize("name,k", RULE_CASES, ids=RULE_IDS)
def test_rules_take_k_directions_on_a_leading_axis(name, k):
    prim, x, p, out, res, rng = _rule_row(name, k)
    kdir = 3
    T = rng.uniform(-1, 1, (kdir,) + x.shape)
    G = rng.uniform(-1, 1, (kdir,) + out.shape)
    g = rng.uniform(-1, 1, out.shape)
    block_t = prim.jvp([x], out, res, [T], p)
    block_v = prim.vjp([x], out, res, G, p, 1)[0]
    assert block_t.shape == (kdir,) + out.shape
    for j in range(kdir):
        np.testing.assert_allclose(block_t[j], prim.jvp([x], out, res, [T[j:j + 1]], p)[0],
                                   rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(np.broadcast_to(block_v[j], x.shape),
                                   np.broadcast_to(prim.vjp([x], out, res, G[j:j + 1], p,
                                                            1)[0][0], x.shape),
                                   rtol=1e-14, atol=1e-15)
        # <G_j, J T_j> = <J^T G_j, T_j>
        assert np.sum(G[j] * block_t[j]) == pytest.approx(
            np.sum(np.broadcast_to(block_v[j], x.shape) * T[j]), rel=1e-12, abs=1e-14)
    if prim.second is not None:
        block_s = prim.second([x], out, res, [T], g, G, p, 1)[0]
        for j in range(kdir):
            single = prim.second([x], out, res, [T[j:j + 1]], g, G[j:j + 1], p, 1)[0][0]
            np.testing.assert_allclose(block_s[j], single, rtol=1e-13, atol=1e-15)
            # second = J^T Gd + d/de J(x + e T)^T g: against central differences
            eps = 1e-6

            def vjp_at(z):
                o, r = prim.forward([z], p)
                return np.broadcast_to(prim.vjp([z], np.asarray(o), r, g[None], p, 1)[0][0],
                                       x.shape)
            fd_curv = (vjp_at(x + eps * T[j]) - vjp_at(x - eps * T[j])) / (2 * eps)
            expected = np.broadcast_to(block_v[j], x.shape) + fd_curv
            np.testing.assert_allclose(block_s[j], expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "reshape",
                                  "transpose", "sum", "mean", "max", "min"])
def test_large_arrays_record_one_generic_record_replayed_bit_for_bit(name):
    x = np.random.default_rng(3).uniform(-2, 2, (6, 5))
    call = {"reshape": lambda v: fd.reshape(v, (5, 6)),
            "transpose": lambda v: fd.transpose(v),
            "sum": lambda v: fd.sum(v, axis=1), "mean": lambda v: fd.mean(v, axis=0),
            "max": lambda v: np.max(v, axis=1), "min": lambda v: np.min(v)}.get(
        name, lambda v: getattr(fd, name)(v))
    w = np.random.default_rng(4).uniform(-1, 1, np.shape(call(x)))

    def f(v):
        return fd.sum(fd.sin(call(v)) * w)
    tf = fd.trace(f, x)
    recs = [r for r in tf._tape.records if isinstance(r, _generic.GenericRecord)]
    # the op itself, then the final fd.sum (a record too from 16 elements up)
    assert [r.prim.name for r in recs][0] == name
    for z in (x, x * 1.7 - 0.3):
        assert tf(z) == fd.value_and_grad(f)(z)[0]
        np.testing.assert_array_equal(tf.grad(z), fd.grad(f)(z))
