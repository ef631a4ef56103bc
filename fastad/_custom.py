"""fd.custom_vjp and fd.custom_jvp: user-defined primitives (API.md section 10).

JAX's conventions.  Called on plain values a custom primitive runs its function;
called on Vars it runs the function on their values and records one
fastad._generic.GenericRecord, whose Primitive (kind "custom", never added to the
registry: user code does not change fastad's tables) carries rules built here from
the user's:

custom_vjp, f.defvjp(fwd, bwd)
    forward  fwd(*values) -> (out, residuals)
    vjp      bwd(residuals, g) -> one cotangent per argument, for each direction g
    jvp      differentiates fwd: fwd recorded on an inner tape, a tangent sweep.  Used
             by fd.hessian / fd.hvp only: fd.jvp and forward-mode fd.jacobian refuse a
             custom_vjp (JAX's rule), see without_jvp()
    second   J^T Gd from bwd, plus the derivative of bwd(res(x), g) along T: fwd and
             bwd recorded on an inner tape, a tangent sweep

custom_jvp, f.defjvp(rule) with rule(primals, tangents) -> (out, tangent_out)
    forward  f(*values)
    jvp      the rule linearised: recorded once per call with the tangents as leaf
             Vars (tangent_out is linear in them), a tangent sweep of that tape
    vjp      the reverse sweep of the same tape (linearise, then transpose)
    second   the rule recorded with primals and tangents both leaf Vars; the
             Hessian-vector product of <g, tangent_out> read on the tangents' block

Second order needs rules written with fastad / NumPy operations (they run on Vars
of the inner tape).  Inside those inner recordings a call of the primitive whose
rules are being differentiated runs its function on the Vars (it does not record
itself again, which would differentiate its rules forever).
"""
import functools
import threading

import numpy as np

from fastad import _generic
from fastad._dual import Dual
from fastad._registry import Primitive
from fastad._pytree import tree_flatten
from fastad._scratch import _scratch_tape
from fastad._second import hvp_sweep, reverse_sweep, tangent_sweep, var_slots
from fastad._tape import Var, leaf_variable, sum as _sum

_state = threading.local()    # .inline: primitives whose rules are being differentiated


def _inline():
    s = getattr(_state, "inline", None)
    if s is None:
        s = _state.inline = set()
    return s


class _Inline:
    """Within: calls of `prim` on Vars run its function on them (module docstring)."""

    def __init__(self, prim):
        self.prim = prim

    def __enter__(self):
        s = _inline()
        self.added = self.prim not in s
        s.add(self.prim)

    def __exit__(self, *exc):
        if self.added:
            _inline().discard(self.prim)


def _plain(v):
    """An operand's value as the user's function receives it: a float for 0-d."""
    return float(v) if v.ndim == 0 else v


def _has(args, cls):
    return any(isinstance(a, cls) for a in args)


def _check_out(name, what, out):
    """out as a float64 array: TypeError naming the primitive when it is not one."""
    if isinstance(out, (tuple, list, dict)) or type(out) is Var:
        raise TypeError("custom primitive %s: %s must return one float or array, got %s"
                        % (name, what, type(out).__name__))
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("custom primitive %s: %s must return a float or an array of "
                        "floats, got %s" % (name, what, type(out).__name__)) from None
    return arr


def _cotangents(name, rule, ct, values):
    """The cotangents a rule returned, checked: one per operand, each None or of
    the operand's shape (as float64 arrays)."""
    n = len(values)
    if not isinstance(ct, (tuple, list)):
        if n == 1 and not isinstance(ct, (dict,)):
            ct = (ct,)
        else:
            raise TypeError("custom primitive %s: %s must return a tuple with one "
                            "cotangent per argument (%d), got %s"
                            % (name, rule, n, type(ct).__name__))
    if len(ct) != n:
        raise ValueError("custom primitive %s: %s returned %d cotangents for %d "
                         "arguments" % (name, rule, len(ct), n))
    out = []
    for i, (c, v) in enumerate(zip(ct, values)):
        if c is None:
            out.append(None)
            continue
        if type(c) is Var:
            raise TypeError("custom primitive %s: %s returned a Var as cotangent %d "
                            "(return plain values)" % (name, rule, i))
        a = np.asarray(c, dtype=np.float64)
        if a.shape != v.shape:
            raise ValueError("custom primitive %s: %s returned cotangent %d of shape %s "
                             "for an argument of shape %s" % (name, rule, i, a.shape,
                                                              v.shape))
        out.append(a)
    return out


def _leaves(tape, values, what):
    """One leaf Var per value (float for 0-d, as the user's functions receive)."""
    return [leaf_variable(tape, _plain(v), what) for v in values]


def _slots_of(xs):
    return np.concatenate([var_slots(x) for x in xs]) if xs else np.zeros(0, np.int64)


def _flat(T, values):
    """(k, total) directions from per-operand (k,)+shape tangents (None: zero)."""
    k = next(t.shape[0] for t in T if t is not None)
    return np.concatenate([np.zeros((k, v.size)) if t is None else
                           np.asarray(t, dtype=np.float64).reshape(k, -1)
                           for t, v in zip(T, values)], axis=1), k


def _split(flat, values, k, needs):
    """Per-operand (k,)+shape blocks of a (k, total) array (None for constants)."""
    out, start = [], 0
    for i, v in enumerate(values):
        block = flat[:, start:start + v.size]
        start += v.size
        out.append(block.reshape((k,) + v.shape) if needs >> i & 1 else None)
    return out


def _var_outputs(outs):
    """(index, output) of the Var outputs among a rule's recorded results."""
    return [(i, o) for i, o in enumerate(outs) if type(o) is Var]


def _second_order_error(name, rule, e):
    return TypeError("custom primitive %s: second order differentiates its %s, which "
                     "must be written with fastad or NumPy operations on Vars (%s: %s)"
                     % (name, rule, type(e).__name__, e))


class _CustomBase:
    """What custom_vjp and custom_jvp share: the wrapper, the call, the primitive."""
    _missing = ""     # the rule-setting method, named in the error of a call without it
    _rule = ""        # which rule it sets ("VJP", "JVP")

    def __init__(self, fun, name=None):
        if not callable(fun):
            raise TypeError("%s: fun must be callable, got %s"
                            % (type(self).__name__, type(fun).__name__))
        if name is not None and not isinstance(name, str):
            raise TypeError("%s: name must be a string, got %s"
                            % (type(self).__name__, type(name).__name__))
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.name = name or getattr(fun, "__name__", "custom")
        self.__name__ = self.name
        self.primitive = None

    def _declare(self, **rules):
        self.primitive = Primitive(self.name, self, "custom", differentiable_rules=True,
                                   **rules)

    def __call__(self, *args):
        prim = self.primitive
        if not _has(args, Var):
            if _has(args, Dual):
                return self._dual(args)
            return self.fun(*args)
        if prim is None:
            raise TypeError("custom primitive %s has no %s rule: call %s.%s first"
                            % (self.name, self._rule, self.name, self._missing))
        if prim in _inline():
            return self.fun(*args)
        for i, a in enumerate(args):
            if isinstance(a, (tuple, list, dict)):
                raise TypeError("custom primitive %s: argument %d is a %s; custom "
                                "primitives take floats, arrays and Vars"
                                % (self.name, i, type(a).__name__))
        return _generic.bind(prim, args, {})

    def __repr__(self):
        return "<fastad %s %s>" % (type(self).__name__, self.name)


# ----------------------------------------------------------------------------------
# custom_vjp

class custom_vjp(_CustomBase):
    """A function with its own vector-Jacobian product, as JAX's ``custom_vjp``.

    ``f = fd.custom_vjp(fun)`` (or as a decorator), then
    ``f.defvjp(fwd, bwd)``: ``fwd(*args)`` returns ``(out, residuals)`` and
    ``bwd(residuals, g)`` a tuple of one cotangent per argument (``None`` for
    none), each of its argument's shape.  On plain values ``f`` runs ``fun``; on
    Vars it is recorded as one operation whose gradient is ``bwd``'s.  Forward
    mode (``fd.jvp``, ``fd.derivative``) raises ``TypeError``: there is no JVP
    rule.  ``name=`` is the name a saved trace stores (default ``fun.__name__``).

    Examples
    --------
    >>> f = fd.custom_vjp(lambda x: x * x)
    >>> f = f.defvjp(lambda x: (x * x, x), lambda x, g: (2.0 * x * g,))
    >>> fd.grad(f)(3.0)
    6.0
    """
    _missing = "defvjp(fwd, bwd)"
    _rule = "VJP"

    def defvjp(self, fwd, bwd):
        """Set the rules: ``fwd(*args) -> (out, residuals)`` and
        ``bwd(residuals, g) -> tuple`` of one cotangent per argument."""
        for what, f in (("fwd", fwd), ("bwd", bwd)):
            if not callable(f):
                raise TypeError("custom_vjp %s.defvjp: %s must be callable, got %s"
                                % (self.name, what, type(f).__name__))
        self.fwd, self.bwd = fwd, bwd
        name = self.name

        def forward(values, p):
            r = fwd(*[_plain(v) for v in values])
            if not isinstance(r, tuple) or len(r) != 2:
                raise TypeError("custom primitive %s: fwd must return (out, residuals), "
                                "got %s" % (name, type(r).__name__))
            if any(type(leaf) is Var for leaf in tree_flatten(r[1])[0]):
                # a Var fwd closed over: its derivative would be lost, and the tape
                # would hold a Var of its own (Vars do not take part in the cyclic
                # GC, for speed: nothing a tape holds may hold one of its Vars)
                raise TypeError("custom primitive %s: fwd's residuals hold a Var, a "
                                "value closed over from the function being "
                                "differentiated (its derivative would be lost); pass "
                                "it to the primitive as an argument" % name)
            return _check_out(name, "fwd", r[0]), r[1]

        def vjp(values, out, res, G, p, needs):
            rows = [_cotangents(name, "bwd", bwd(res, _plain(g)), values) for g in G]
            return [None if not needs >> i & 1 or rows[0][i] is None else
                    np.stack([r[i] if r[i] is not None else np.zeros(values[i].shape)
                              for r in rows]) for i in range(len(values))]

        def jvp(values, out, res, T, p):
            d, k = _flat(T, values)
            with _scratch_tape() as t, _Inline(self.primitive):
                xs = _leaves(t, values, "custom_vjp %s: x" % name)
                try:
                    y = fwd(*xs)[0]
                except Exception as e:
                    raise _second_order_error(name, "fwd", e) from e
                if type(y) is not Var:
                    return np.zeros((k,) + out.shape)
                tan = tangent_sweep(t, _slots_of(xs), var_slots(y), d, name)
            return tan.reshape((k,) + out.shape)

        def second(values, out, res, T, g, Gd, p, needs):
            first = vjp(values, out, res, Gd, p, needs)
            d, k = _flat(T, values)
            with _scratch_tape() as t, _Inline(self.primitive):
                xs = _leaves(t, values, "custom_vjp %s: x" % name)
                try:
                    cts = bwd(fwd(*xs)[1], _plain(g))
                except Exception as e:
                    raise _second_order_error(name, "fwd and bwd", e) from e
                if not isinstance(cts, (tuple, list)):
                    cts = (cts,)
                if len(cts) != len(values):
                    raise ValueError("custom primitive %s: bwd returned %d cotangents "
                                     "for %d arguments" % (name, len(cts), len(values)))
                outs = _var_outputs(cts)
                curv = [None] * len(values)
                if outs:
                    tan = tangent_sweep(t, _slots_of(xs),
                                        _slots_of([o for _, o in outs]), d, name)
                    start = 0
                    for i, o in outs:
                        curv[i] = tan[:, start:start + o.size].reshape(
                            (k,) + values[i].shape)
                        start += o.size
            return [None if f is None else f if c is None else f + c
                    for f, c in zip(first, curv)]

        self._declare(forward=forward, vjp=vjp, jvp=jvp, second=second)
        return self

    def _dual(self, args):
        raise TypeError("custom primitive %s is a custom_vjp: forward mode (Duals, "
                        "fd.derivative) needs a JVP rule, which it has none of; declare "
                        "it with fd.custom_jvp" % self.name)


# ----------------------------------------------------------------------------------
# custom_jvp

class custom_jvp(_CustomBase):
    """A function with its own Jacobian-vector product, as JAX's ``custom_jvp``.

    ``f = fd.custom_jvp(fun)`` (or as a decorator), then ``@f.defjvp`` on
    ``rule(primals, tangents) -> (out, tangent_out)``, linear in the tangents.
    On plain values ``f`` runs ``fun``; on Vars it is recorded as one operation
    whose forward derivative is the rule and whose reverse derivative is the
    rule transposed; Duals go through the rule.  ``name=`` as for custom_vjp.

    Examples
    --------
    >>> f = fd.custom_jvp(lambda x: x ** 3)
    >>> rule = f.defjvp(lambda p, t: (p[0] ** 3, 3.0 * p[0] ** 2 * t[0]))
    >>> fd.grad(f)(2.0), fd.jvp(f, (2.0,), (1.0,))
    (12.0, (8.0, 12.0))
    """
    _missing = "defjvp(rule)"
    _rule = "JVP"

    def defjvp(self, rule):
        """Set the rule ``rule(primals, tangents) -> (out, tangent_out)``; returns it
        (so ``@f.defjvp`` decorates)."""
        if not callable(rule):
            raise TypeError("custom_jvp %s.defjvp: the rule must be callable, got %s"
                            % (self.name, type(rule).__name__))
        self.rule = rule
        name, fun = self.name, self.fun

        def forward(values, p):
            return _check_out(name, "the function", fun(*[_plain(v) for v in values])), \
                None

        def linearised(values, out):
            """(inner tape, tangent leaves, tangent_out) of the rule at values; the
            caller holds the tape's context."""
            t = _scratch_tape()
            tape = t.__enter__()
            try:
                us = _leaves(tape, values, "custom_jvp %s: tangent" % name)
                try:
                    r = rule(tuple(_plain(v) for v in values), tuple(us))
                except (TypeError, ValueError) as e:
                    if isinstance(e, ValueError) and "JVP rule" in str(e):
                        raise
                    raise TypeError("custom primitive %s: the JVP rule runs with the "
                                    "tangents as Vars (linear in them; that is how it is "
                                    "transposed for reverse mode), so it must use fastad "
                                    "or NumPy operations on them (%s: %s)"
                                    % (name, type(e).__name__, e)) from e
                _check_rule_result(name, r)
                tout = r[1]
                if type(tout) is Var and tout.shape != out.shape or \
                        type(tout) is not Var and np.shape(tout) != out.shape:
                    raise ValueError("custom primitive %s: the JVP rule's tangent_out "
                                     "has shape %s, the output has shape %s"
                                     % (name, np.shape(getattr(tout, "value", tout)),
                                        out.shape))
            except BaseException:
                t.__exit__(None, None, None)
                raise
            return t, tape, us, tout

        def jvp(values, out, res, T, p):
            d, k = _flat(T, values)
            cm, tape, us, tout = linearised(values, out)
            try:
                if type(tout) is not Var:
                    return np.zeros((k,) + out.shape)
                return tangent_sweep(tape, _slots_of(us), var_slots(tout), d, name) \
                    .reshape((k,) + out.shape)
            finally:
                cm.__exit__(None, None, None)

        def vjp(values, out, res, G, p, needs):
            k = G.shape[0]
            cm, tape, us, tout = linearised(values, out)
            try:
                if type(tout) is not Var:
                    flat = np.zeros((k, sum(v.size for v in values)))
                else:
                    flat = reverse_sweep(tape, var_slots(tout), _slots_of(us),
                                         np.asarray(G, dtype=np.float64).reshape(k, -1),
                                         name)
            finally:
                cm.__exit__(None, None, None)
            return _split(flat, values, k, needs)

        def second(values, out, res, T, g, Gd, p, needs):
            first = vjp(values, out, res, Gd, p, needs)
            d, k = _flat(T, values)
            n = d.shape[1]
            with _scratch_tape() as tape, _Inline(self.primitive):
                xs = _leaves(tape, values, "custom_jvp %s: x" % name)
                us = _leaves(tape, values, "custom_jvp %s: tangent" % name)
                try:
                    r = rule(tuple(xs), tuple(us))
                except Exception as e:
                    raise _second_order_error(name, "JVP rule", e) from e
                _check_rule_result(name, r)
                if type(r[1]) is not Var:
                    return first
                s = _sum(r[1] * np.asarray(g, dtype=np.float64))
                if type(s) is not Var:
                    return first
                _, hv = hvp_sweep(tape, np.concatenate([_slots_of(xs), _slots_of(us)]),
                                  int(var_slots(s)[0]),
                                  np.concatenate([d, np.zeros((k, n))], axis=1), name)
            curv = _split(hv[:, n:], values, k, needs)
            return [None if f is None else f + c for f, c in zip(first, curv)]

        self._declare(forward=forward, vjp=vjp, jvp=jvp, second=second)
        return rule

    def _dual(self, args):
        """The rule on the Duals' values and tangents (fd.Dual, fd.derivative);
        other arguments are constants (zero tangent)."""
        if self.primitive is None:
            raise TypeError("custom primitive %s has no JVP rule: call %s.defjvp(rule) "
                            "first" % (self.name, self.name))
        primals = tuple(a.value if isinstance(a, Dual) else a for a in args)
        tangents = tuple(a.tangent if isinstance(a, Dual) else np.zeros_like(
            np.asarray(a, dtype=np.float64)) for a in args)
        r = self.rule(primals, tangents)
        _check_rule_result(self.name, r)
        if isinstance(r[0], Dual) or isinstance(r[1], Dual):
            raise TypeError("custom primitive %s: Duals of Duals are not supported"
                            % self.name)
        return Dual(r[0], r[1])


def _check_rule_result(name, r):
    if not isinstance(r, tuple) or len(r) != 2:
        raise TypeError("custom primitive %s: the JVP rule must return (out, "
                        "tangent_out), got %s" % (name, type(r).__name__))


def without_jvp(tape):
    """The name of the first custom_vjp recorded on `tape` (no JVP rule: forward
    mode refuses it), or None."""
    for rec in tape.records:
        prim = getattr(rec, "prim", None)
        if prim is not None and isinstance(prim.impl, custom_vjp):
            return prim.name
    return None


def refuse_forward_mode(tape, fname, instead):
    """TypeError naming the first custom_vjp on `tape` (forward mode needs a JVP rule
    it has none of); None when there is none.  `instead` names what works."""
    name = without_jvp(tape)
    if name is not None:
        raise TypeError("%s: the custom primitive %s is a custom_vjp: forward mode needs "
                        "a JVP rule, which it has none of (declare it with "
                        "fd.custom_jvp, or use %s)" % (fname, name, instead))
    return None
