"""fd.trace: record a function once, then evaluate it and its derivatives in C.

`fd.trace(f, x0, *params)` runs `f` once on a fresh tape whose first slots are the
leaves of `x0` (differentiated inputs) followed by the leaves of `params` (dynamic
parameters, not differentiated).  Every later call writes the new numbers into
those slots and replays the tape (fastad._replay): no Python per operation, the
user's code is not run again.  Guards recorded while `f` ran (comparisons, and
values that escaped into Python) are checked after each replay; a replay that
would take another path raises fd.TraceError, or, with retrace=True, records `f`
again at that input and keeps the few most recent paths.
"""
import os
import threading
from array import array as _pyarray

import numpy as np

from fastad._errors import TraceError
from fastad._pytree import tree_unflatten
from fastad._scratch import _scratch_tape
from fastad._replay import (GUARD_NAMES, Replay, compact_guards, param_leaf,
                            plain_float64, tape_copy, var_slot)
from fastad._optimize import optimize as _optimize_tape
from fastad._tape import Var, as_source_dtype, grad_dtype
from fastad._trace_spec import ArgSpec, Path, _leaf_array
from fastad import _trace_file
from fastad import _sparse_plan
from fastad._custom import refuse_forward_mode

try:  # tangent and second-order sweeps (issue 4); absent in a partial build
    from fastad import _second
except ImportError:  # pragma: no cover - the module is part of the normal build
    _second = None

# What fastad itself takes from this module (fd.trace; TracedFunction, the type of
# what it returns); fastad/_trace.pyi types these, the rest is internal.
__all__ = ["TracedFunction", "trace"]

_F64 = np.dtype(np.float64)

# Paths kept per traced function when retrace=True.  A few cover functions that
# alternate between branches; more would make every failed guard cost a replay
# of each kept path before re-recording.
MAX_PATHS = 4

# Rows times slots below which a batch stays on one thread: starting a thread
# costs about as much as replaying this many slots.
_WORK_PER_THREAD = 200_000


def record(f, xspec, x_flat, pspec, p_flat, optimize=False):
    """Run f once on a fresh tape at (x, params); return its Path (its tape
    optimised by fastad._optimize when `optimize`)."""
    path = _record(f, xspec, x_flat, pspec, p_flat, optimize)
    path.point = (np.array(x_flat, dtype=np.float64), np.array(p_flat, dtype=np.float64))
    return path


def _replay_of(tape, n_in, n_param, slot, size, optimize):
    """The Replay of a freshly recorded tape, optimised when asked and possible
    (fastad._optimize skips tapes with array records and array outputs)."""
    if optimize:
        guards = list(tape.guards)
        opt = _optimize_tape(tape, n_in, n_param, slot, size, compact_guards(tape, guards))
        if opt is not None:
            new_tape, new_slot, compact = opt
            rp = Replay(new_tape, n_in, n_param, new_slot, size, guards=guards,
                        compact=compact)
            rp.ops_recorded = len(tape)
            return rp
    return Replay(tape, n_in, n_param, slot, size)


def _record(f, xspec, x_flat, pspec, p_flat, optimize=False):
    # Record on the thread's warm scratch tape (as fd.grad does: no regrowth while
    # f runs), then keep a right-sized copy; the scratch tape goes back to the pool.
    with _scratch_tape() as scratch:
        xs = [scratch.variable(v) for v in xspec.leaf_values(x_flat)]
        ps = [param_leaf(scratch, v) for v in pspec.leaf_values(p_flat)]
        out = f(tree_unflatten(xspec.treedef, xs), *tree_unflatten(pspec.treedef, ps))
        if type(out) is Var:
            if out.tape is not scratch:
                raise TraceError("fd.trace: f returned a Var recorded on another tape")
            slot = var_slot(out)
            shape, size = out.shape, out.size
        tape = tape_copy(scratch)
        if scratch.spans is not None:      # wengert()'s names of array ops
            tape.spans = _pyarray("q", scratch.spans)
    if type(out) is Var and size == 0:
        # an empty output depends on nothing: keep it as a constant (its Var's slot
        # may lie past the end of the right-sized tape, so no replay may read it)
        return Path(Replay(tape, xspec.size, pspec.size, -1, 0), shape, np.zeros(shape))
    if type(out) is Var:
        rp = _replay_of(tape, xspec.size, pspec.size, slot, size, optimize)
        return Path(rp, shape, None)
    if isinstance(out, (bool, np.bool_)) or out is None or isinstance(out, (str, bytes)):
        raise TypeError("fd.trace: f must return a number, an array or a Var, got %s"
                        % type(out).__name__)
    arr = _leaf_array(out, "the output of f")
    const = float(arr) if arr.ndim == 0 else arr.copy()
    rp = Replay(tape, xspec.size, pspec.size, -1, arr.size)
    return Path(rp, arr.shape, const)


class TracedFunction:
    """A function recorded by :func:`fastad.trace`: call it like ``f``, without
    running ``f`` again.

    Every call replays the recorded tape in C at the new input, recomputing each
    value and local partial derivative, then checks the guards (the places where
    Python looked at a value while ``f`` was recorded).  Results equal those of
    ``fd.grad(f)`` and friends to the last bit with ``fd.trace(..., optimize=False)``,
    and to rounding for an optimised trace (the default).

    ``x`` has the structure and shapes of the ``x0`` given to ``fd.trace``;
    ``params`` (optional, positional) replace the dynamic parameters recorded
    then, with the same shapes.  A guard that would go the other way at ``x``
    raises :class:`fastad.TraceError`, or re-records ``f`` there when the trace
    was made with ``retrace=True``.

    Traced functions pickle, save to a file (:meth:`save`) and load back with
    :func:`fastad.load`.  Do not create them directly.

    Examples
    --------
    >>> tf = fd.trace(lambda x: fd.sum(x ** 2), np.zeros(2))
    >>> tf(np.array([1.0, 2.0])), tf.grad(np.array([1.0, 2.0]))
    (5.0, array([2., 4.]))
    """

    def __init__(self, f, path, xspec, pspec, p_default, retrace, name, optimize=False):
        self._f = f
        self._optimize = bool(optimize)
        self._paths = [path]
        self._xspec = xspec
        self._pspec = pspec
        self._p_default = p_default
        self._x0 = None
        self.retrace = bool(retrace)
        self.__name__ = name
        self._lock = threading.Lock()

    # -- what issue 4's sweeps (and tools) need -----------------------------------

    @property
    def _tape(self):
        """The Tape of the most recently used path (its val/da/db reflect the last
        replay).  Private: it is frozen (recording on it or resetting it raises
        TapeError) and its contents are an implementation detail."""
        return self._paths[0].rp.tape

    @property
    def input_slots(self):
        """Tape slots of the flattened inputs (1 .. n)."""
        return np.arange(1, 1 + self._xspec.size, dtype=np.int64)

    @property
    def output_slots(self):
        rp = self._paths[0].rp
        if rp.out_slot < 0:
            return np.zeros(0, dtype=np.int64)
        return np.arange(rp.out_slot, rp.out_slot + rp.out_size, dtype=np.int64)

    # -- calls ---------------------------------------------------------------------

    def _params(self, params, fname):
        if not params:
            return self._p_default
        if len(params) != len(self._pspec.treedef.children):
            raise TypeError("%s: the trace has %d parameter(s), got %d"
                            % (fname, len(self._pspec.treedef.children), len(params)))
        return self._pspec.flatten(tuple(params), fname)

    def _dispatch(self, x, params, fname, run):
        """Flatten (x, params); run(path, xf, pf) -> (guard, value, result) on the
        most recent path whose guards hold, retracing when allowed."""
        xf = self._xspec.flatten(x, fname)
        pf = self._params(params, fname)
        paths = self._paths
        first = paths[0]
        g, v, res = run(first, xf, pf)
        if g < 0:
            return first, v, res
        if not self.retrace:
            raise TraceError(describe_guard(first, g, fname))
        return self._retrace(xf, pf, fname, run, first, g)

    def _retrace(self, xf, pf, fname, run, failed, g):
        with self._lock:
            for p in list(self._paths[1:]):
                g2, v, res = run(p, xf, pf)
                if g2 < 0:
                    self._paths.remove(p)
                    self._paths.insert(0, p)
                    return p, v, res
            if self._f is None:
                raise TraceError(describe_guard(failed, g, fname) + " (this trace was "
                                 "loaded from a file, so it cannot be re-recorded)")
            path = record(self._f, self._xspec, xf, self._pspec, pf, self._optimize)
            g2, v, res = run(path, xf, pf)
            if g2 >= 0:   # the function is not deterministic in its inputs
                raise TraceError(describe_guard(path, g2, fname) + " (right after "
                                 "re-recording: f takes different paths at one input)")
            self._paths = [p for p in self._paths if p.key != path.key]
            self._paths.insert(0, path)
            del self._paths[MAX_PATHS:]
            return path, v, res

    def __call__(self, x, *params):
        """The value of ``f`` at ``x``: a float, or an array for an array output."""
        r = self._fast(x, params, False)
        if r is not None:
            return r[0]
        r = self._dispatch(x, params, "traced f",
                           lambda p, xf, pf: p.rp.run(xf, pf, False))
        return r[0].value(r[1])

    def _fast(self, x, params, want_grad):
        """The common call -- one float, or one float64 array of the traced shape,
        no new parameters -- straight into C: (value, gradient or None) as the
        caller returns them, or None when it does not apply or a guard failed (the
        general path then handles it and reports the guard).  One frame, no
        unflatten: it is most of a small trace's call."""
        if params:
            return None
        single = self._xspec.single
        t = type(x)
        if t is float:
            if single != ():
                return None
        elif t is not np.ndarray or x.shape != single or not plain_float64(x):
            return None
        elif x.ndim != 1:
            x = x.reshape(-1)
        path = self._paths[0]
        if want_grad and path.out_shape != ():
            return None
        g, v, gr = path.rp.run(x, self._p_default, want_grad)
        if g >= 0:
            return None
        if path.out_const is not None or path.out_shape != ():
            v = path.value(v)
        if want_grad and len(single) != 1:     # the gradient has x's shape
            gr = float(gr[0]) if single == () else gr.reshape(single)
        return v, gr

    def value_and_grad(self, x, *params):
        """``(f(x) as a float, gradient)``; the gradient has the structure and the
        floating dtypes of ``x``."""
        r = self._fast(x, params, True)
        if r is not None:       # a float or a float64 array: no dtype to restore
            return r
        path, v, g = self._dispatch(x, params, "tf.value_and_grad", _RUN_VALUE_AND_GRAD)
        return path.value(v), self._xspec.unflatten(g, self._xspec.grad_dtypes(x))

    def grad(self, x, *params):
        """The gradient of the scalar output at ``x``, with the structure and the
        floating dtypes of ``x``."""
        r = self._fast(x, params, True)
        if r is not None:
            return r[1]
        r = self._dispatch(x, params, "tf.grad", _RUN_GRAD)
        return self._xspec.unflatten(r[2], self._xspec.grad_dtypes(x))

    # -- forward mode and second order (fastad._second sweeps on a replayed tape) --

    def _sweep(self, x, params, fname, fn):
        if _second is None:
            raise NotImplementedError("%s needs fastad._second, which is not built"
                                      % fname)
        return self._dispatch(x, params, fname,
                              lambda p, xf, pf: p.rp.run_then(xf, pf, fn(p)))

    def jvp(self, x, v, *params):
        """``(f(x), J(x) @ v)`` by one tangent sweep; ``v`` has the structure of
        ``x``."""
        vf = self._xspec.flatten(v, "tf.jvp: v")

        def fn(path):
            return lambda tape: (None if path.out_const is not None else
                                 refuse_forward_mode(tape, "tf.jvp", "tf.grad") or
                                 _second.tangent_sweep(tape, self.input_slots,
                                                       _out_slots(path), vf[None, :],
                                                       "tf.jvp")[0])

        path, val, t = self._sweep(x, params, "tf.jvp", fn)
        if t is None:
            t = np.zeros(path.rp.out_size)
        tangent = float(t[0]) if path.out_shape == () else t.reshape(path.out_shape)
        dtypes = self._xspec.grad_dtypes(x)
        if dtypes is not None:       # NumPy's promotion over the inputs, as fd.jvp
            tangent = as_source_dtype(tangent, None if None in dtypes else
                                      np.result_type(*dtypes))
        return path.value(val), tangent

    def jacobian(self, x, *params):
        """The Jacobian at ``x``: shape ``out.shape + x.shape`` (per leaf of ``x``
        for a pytree)."""
        def fn(path):
            return lambda tape: (None if path.out_const is not None else
                                 refuse_forward_mode(tape, "tf.jacobian", "tf.grad") or
                                 _second.jacobian_forward(tape, self.input_slots,
                                                          _out_slots(path),
                                                          fname="tf.jacobian"))

        path, _, J = self._sweep(x, params, "tf.jacobian", fn)
        if J is None:
            J = np.zeros((path.rp.out_size, self._xspec.size))
        out_shape = path.out_shape
        dtypes = self._xspec.grad_dtypes(x) or (None,) * len(self._xspec.shapes)
        blocks, o = [], 0
        for shape, size, dt in zip(self._xspec.shapes, self._xspec.sizes, dtypes):
            b = J[:, o:o + size].reshape(out_shape + shape)
            blocks.append(as_source_dtype(float(b) if b.ndim == 0 else b, dt))
            o += size
        return tree_unflatten(self._xspec.treedef, blocks)

    def hvp(self, x, v, *params):
        """The Hessian of the scalar output at ``x`` times ``v``, without forming
        the Hessian; ``v`` and the result have the structure of ``x``."""
        vf = self._xspec.flatten(v, "tf.hvp: v")

        def fn(path):
            return lambda tape: (None if path.out_const is not None else
                                 _second.hvp_sweep(tape, self.input_slots,
                                                   path.rp.out_slot, vf[None, :],
                                                   "tf.hvp")[1][0])

        path, _, hv = self._sweep(x, params, "tf.hvp", self._scalar_only(fn, "tf.hvp"))
        if hv is None:
            hv = np.zeros(self._xspec.size)
        return self._xspec.unflatten(hv, self._xspec.grad_dtypes(x))

    def hessian(self, x, *params):
        """The dense Hessian of the scalar output at ``x``: shape
        ``x.shape + x.shape`` (``x`` a float or an array; a float for a scalar
        ``x``)."""
        if self._xspec.treedef.kind != "leaf":
            raise TypeError("tf.hessian: x must be a float or an array (flatten a "
                            "pytree input first); use tf.hvp for pytrees")

        def fn(path):
            return lambda tape: (None if path.out_const is not None else
                                 _second.hessian_sweep(tape, self.input_slots,
                                                       path.rp.out_slot,
                                                       fname="tf.hessian")[1])

        path, _, H = self._sweep(x, params, "tf.hessian",
                                 self._scalar_only(fn, "tf.hessian"))
        n = self._xspec.size
        if H is None:
            H = np.zeros((n, n))
        shape = self._xspec.shapes[0]
        dtypes = self._xspec.grad_dtypes(x)
        return as_source_dtype(float(H[0, 0]) if shape == () else H.reshape(shape + shape),
                               dtypes[0] if dtypes else None)

    @staticmethod
    def _scalar_only(fn, fname):
        def wrapped(path):
            if path.out_shape != ():
                raise ValueError("%s: the traced function returns an array of shape "
                                 "%s; a scalar output is needed (trace fd.sum(...) of "
                                 "it, or use tf.jacobian)" % (fname, path.out_shape))
            return fn(path)
        return wrapped

    # -- sparse derivatives (fastad._sparse_plan; pattern and coloring per path) ---

    def _sparse_plan(self, path, kind, fname):
        """The JacobianPlan or HessianPlan of `path`, made on first use: its
        pattern is structural, so it holds for every input taking that path."""
        shapes = self._xspec.shapes
        if self._xspec.treedef.kind != "leaf" or len(shapes[0]) != 1:
            raise ValueError("%s: x must be a 1-D array (f maps R^n to R^m), got "
                             "%s" % (fname, "shape %s" % (shapes[0],)
                                     if self._xspec.treedef.kind == "leaf"
                                     else "a pytree"))
        if kind == "jacobian" and len(path.out_shape) != 1:
            raise ValueError("%s: f must return a 1-D array, got shape %s (use "
                             "tf.sparse_hessian for a scalar f)" % (fname, path.out_shape))
        if kind == "hessian" and path.out_shape != ():
            raise ValueError("%s: f must return a scalar, got shape %s"
                             % (fname, path.out_shape))
        plans = self.__dict__.setdefault("_sparse_plans", {})
        plan = plans.get((kind, path.key))
        if plan is None:
            live = path.out_const is None
            if kind == "jacobian":
                plan = _sparse_plan.JacobianPlan(
                    path.rp.tape, self.input_slots, _out_slots(path) if live else (),
                    path.rp.out_size)
            else:
                plan = _sparse_plan.HessianPlan(
                    path.rp.tape, self.input_slots, path.rp.out_slot if live else -1,
                    fname)
            plans[(kind, path.key)] = plan
        return plan

    def _sparse(self, x, params, kind, fname, info):
        sp = _sparse_plan.scipy_sparse(fname)

        def fn(path):
            plan = self._sparse_plan(path, kind, fname)
            return lambda tape: (plan.values(tape, sp, fname), plan)

        _, _, (result, plan) = self._sweep(x, params, fname, fn)
        return (result, plan.info()) if info else result

    def sparse_jacobian(self, x, *params, info=False):
        """The Jacobian at ``x`` as a ``scipy.sparse.csr_array`` (m, n), for a
        function of a 1-D array to a 1-D array.  The pattern and its coloring
        are found once per recorded path and kept; each call is one replay and
        one sweep of k directions (k = the number of colors).  With
        ``info=True``, returns ``(J, info)``: ``info.colors``, ``info.mode``
        ("forward" or "reverse"), ``info.nnz``."""
        return self._sparse(x, params, "jacobian", "tf.sparse_jacobian", info)

    def sparse_hessian(self, x, *params, info=False):
        """The Hessian of the scalar output at ``x`` (a 1-D array) as a
        symmetric ``scipy.sparse.csr_array`` (n, n), from one forward-over-reverse
        sweep of k directions (a star coloring, found once per path).  With
        ``info=True``, returns ``(H, info)``."""
        return self._sparse(x, params, "hessian", "tf.sparse_hessian", info)

    # -- batches -------------------------------------------------------------------

    def grad_batch(self, X, *params, threads=None, client=None):
        """The gradients at every row of ``X``, spread over threads.

        ``X`` has shape ``(m, n)``, one flattened input per row (``(m,)`` when
        ``x`` is a float); the result has the same shape.  The rows are split over
        ``threads`` threads (default: the machine's cores, fewer for small
        batches), each replaying whole rows with its own buffers and without the
        GIL; tapes holding array records run their rows one after the other.
        A row that fails a guard raises :class:`fastad.TraceError` naming the row,
        or is replayed on its own path with ``retrace=True``.

        With ``client`` (a ``dask.distributed.Client``) the rows are replayed on
        its cluster instead: the trace is sent to every worker once, as data; a
        NumPy ``X`` (or a list of rows) is split into chunks and the result is a
        NumPy array; a ``dask.array`` ``X`` is mapped block by block and the
        result is a lazy ``dask.array``.  Results are equal to the local call's,
        in row order (see the guide page "Beyond one machine").

        Examples
        --------
        >>> tf = fd.trace(lambda x: fd.sum(x ** 2), np.zeros(2))
        >>> tf.grad_batch(np.array([[1.0, 2.0], [3.0, 4.0]]))
        array([[2., 4.],
               [6., 8.]])
        """
        if client is not None:
            return self._on_cluster(X, params, True, threads, "tf.grad_batch",
                                    client)[1]
        return self._batch(X, params, True, threads, "tf.grad_batch")[1]

    def value_batch(self, X, *params, threads=None, client=None):
        """The values at every row of ``X`` (shape ``(m, n)``, as for
        :meth:`grad_batch`, ``client`` too): shape ``(m,) + output shape``."""
        if client is not None:
            return self._on_cluster(X, params, False, threads, "tf.value_batch",
                                    client)[0]
        return self._batch(X, params, False, threads, "tf.value_batch")[0]

    def _on_cluster(self, X, params, want_grad, threads, fname, client):
        # Dask only when asked for: the local call does not even import the module
        from fastad import _distributed
        return _distributed.batch(self, X, params, want_grad, threads, fname, client,
                                  load_bytes)

    def value_and_grad_batch(self, X, *params, threads=None):
        """``(values, gradients)`` at every row of ``X``, as :meth:`value_batch`
        and :meth:`grad_batch` in one pass."""
        return self._batch(X, params, True, threads, "tf.value_and_grad_batch")

    def _batch(self, X, params, want_grad, threads, fname, row0=0, deferred=None):
        # row0: the index in the caller's X of this X's first row (a Dask task
        # replays one chunk of a bigger X), for the errors that name a row.
        # deferred: a list; rows that need re-recording by a trace that cannot
        # re-record (one a Dask worker loaded: no f) are appended to it, left NaN,
        # for the caller to replay where f is
        n = self._xspec.size
        scalar_x = self._xspec.shapes == ((),) and self._xspec.treedef.kind == "leaf"
        dtype = grad_dtype(X)
        Xa = _leaf_array(X, "X", fname)
        if scalar_x and Xa.ndim == 1:
            Xa = Xa.reshape(-1, 1)
        if Xa.ndim != 2 or Xa.shape[1] != n:
            raise ValueError("%s: X must have shape (m, %d) (one flattened input per "
                             "row), got %s" % (fname, n, Xa.shape))
        Xa = np.ascontiguousarray(Xa)
        pf = self._params(params, fname)
        m = Xa.shape[0]
        path = self._paths[0]
        if want_grad and path.out_shape != ():
            raise ValueError("%s: the traced function returns an array of shape %s; "
                             "the gradient needs a scalar output (use tf.jacobian, or "
                             "trace fd.sum(...) of it)" % (fname, path.out_shape))
        if threads is None:
            threads = default_threads(m, len(path.rp.tape))
        elif not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError("%s: threads must be a positive int, got %r"
                             % (fname, threads))
        values, grads, status = path.rp.batch(Xa, pf, want_grad, threads)
        if path.out_const is not None:
            values[...] = path.out_const
        bad = np.flatnonzero(status >= 0)
        if bad.size:
            if not self.retrace:
                i = int(bad[0])
                raise TraceError("%s: row %d of X: %s" % (
                    fname, row0 + i, describe_guard(path, int(status[i]), fname)))
            if deferred is not None and self._f is None:
                deferred.extend(row0 + int(i) for i in bad)
                bad = bad[:0]
            for i in bad:   # other paths: one row at a time, retracing as needed
                row = self._xspec.unflatten(Xa[i])
                try:
                    if want_grad:
                        v, g = self.value_and_grad(row, *params)
                        grads[i] = self._xspec.flatten(g, fname)
                    else:
                        v = self(row, *params)
                except TraceError as e:   # a loaded trace (no f) cannot re-record
                    raise TraceError("%s: row %d of X: %s"
                                     % (fname, row0 + int(i), e)) from None
                values[i] = v
        if path.out_shape != ():
            values = values.reshape((m,) + path.out_shape)
        if scalar_x and grads is not None:
            grads = grads.reshape(m)
        if dtype is not None and grads is not None:
            grads = grads.astype(dtype)
        return values, grads

    # -- introspection -------------------------------------------------------------

    def __len__(self):
        """Number of recorded operations on the current path's tape."""
        return len(self._paths[0].rp.tape)

    @property
    def nbytes(self):
        """Bytes of memory held by every kept path (tapes, adjoints, guards)."""
        return sum(p.rp.nbytes for p in self._paths)

    @property
    def n_guards(self):
        """The number of guards recorded on the current path."""
        return len(self._paths[0].rp.guards)

    def __repr__(self):
        p = self._paths[0]
        n_out = 0 if p.out_const is not None else p.rp.out_size
        extra = ", %d paths" % len(self._paths) if len(self._paths) > 1 else ""
        if p.rp.ops_recorded >= 0:
            ops = "%d operations (%d recorded, optimized)" % (len(p.rp.tape),
                                                              p.rp.ops_recorded)
        else:
            ops = "%d operations" % len(p.rp.tape)
        if p.rp.compiled is not None:
            extra += ", compiled"
        return ("<fastad trace of %s: %s, %d inputs, %d parameters, "
                "%d outputs, %d guards%s%s>" % (
                    self.__name__, ops, self._xspec.size, self._pspec.size,
                    n_out, len(p.rp.guards),
                    ", retrace" if self.retrace else "", extra))

    # -- compiled form (fastad/_compile.py) ------------------------------------------

    def compile(self):
        """This trace as machine code: a new traced function with the same
        interface (call, grad, value_and_grad, grad_batch, ...) whose current path
        runs C generated from its tape, built by the system C compiler and cached
        on disk by the tape's content hash.  Results equal this trace's to the
        last bit.  Raises :class:`fastad.CompileError` without a working compiler.
        """
        from fastad import _compile    # imported on first use: ctypes, hashlib
        path = self._paths[0]
        new = _compile.compiled_path(path)
        tf = TracedFunction(self._f, new, self._xspec, self._pspec, self._p_default,
                            self.retrace, self.__name__, self._optimize)
        tf._x0 = self._x0
        return tf

    # -- persistence (format in fastad/_trace_file.py) -----------------------------

    def save(self, path):
        """Write the trace's current path to the file ``path``.

        The format is versioned binary with a digest (see :func:`fastad.load`).
        The file is written to a temporary name and renamed into place, so a
        crash never leaves half a file.
        """
        data = _trace_file.dump_bytes(self)
        path = os.fspath(path)
        tmp = "%s.tmp%d" % (path, os.getpid())
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def __reduce__(self):
        rp = self._paths[0].rp
        if rp.ops_recorded >= 0:    # the file format has no field for it; a pickle does
            return (_load_optimized, (_trace_file.dump_bytes(self), rp.ops_recorded))
        return (load_bytes, (_trace_file.dump_bytes(self),))


def _load_optimized(data, ops_recorded):
    """Unpickle an optimised trace: the trace, and its recorded length for repr()."""
    tf = load_bytes(data)
    tf._paths[0].rp.ops_recorded = int(ops_recorded)
    return tf


def load(path, primitives=None):
    """Load a trace written by tf.save(path); fd.TraceError if the file is not one,
    or is truncated, corrupted, malformed or of another format version.

    primitives: the user-defined primitives (fd.custom_vjp / fd.custom_jvp) the
    trace may name; records are resolved by name from this list and from fastad's
    own operations, never imported, and a name in neither is a fd.TraceError."""
    return _loaded(_trace_file.read_file(path, primitives))


def load_bytes(data, source="pickle", primitives=None):
    """A trace from the bytes dump_bytes wrote (what pickle stores)."""
    return _loaded(_trace_file.read_bytes(data, source, primitives))


def _loaded(parts):
    """The TracedFunction of what fastad._trace_file read (it has no f)."""
    path, xspec, pspec, params, retrace, name, x0 = parts
    tf = TracedFunction(None, path, xspec, pspec, params, retrace, name)
    tf._x0 = x0
    return tf


def _grad_runner(fname):
    """The run() of _dispatch for a gradient: a shape error names `fname`."""
    def run_grad(path, xf, pf):
        if path.out_shape != ():
            raise ValueError("%s: the traced function returns an array of shape %s; "
                             "the gradient needs a scalar output (use tf.jacobian, or "
                             "trace fd.sum(...) of it)" % (fname, path.out_shape))
        return path.rp.run(xf, pf, True)
    return run_grad


_RUN_GRAD = _grad_runner("tf.grad")
_RUN_VALUE_AND_GRAD = _grad_runner("tf.value_and_grad")


def _out_slots(path):
    rp = path.rp
    return np.arange(rp.out_slot, rp.out_slot + rp.out_size, dtype=np.int64)


def default_threads(m, n_slots):
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    work = m * max(n_slots, 1)
    return int(max(1, min(ncpu, m, work // _WORK_PER_THREAD)))


def describe_guard(path, g, fname):
    """The message of a failed compact guard g: what it was, where it was recorded,
    what it said then and now."""
    rp = path.rp
    kind, ga, gb, gc, go, src, elem = rp.guard_arrays
    k = int(kind[g])
    a, b = int(ga[g]), int(gb[g])
    entry = rp.guards[int(src[g])]
    name, where = entry[0], entry[5]
    loc = "%s:%s" % (where[0], where[1])
    now_a = float(rp.slot_values(np.array([a]))[0])
    array_guard = type(entry[1]) is not int
    elem_txt = " (element %d)" % int(elem[g]) if array_guard else ""
    if k <= 5:
        rhs = "v%d" % b if b >= 0 else repr(float(gc[g]))
        now_b = float(rp.slot_values(np.array([b]))[0]) if b >= 0 else float(gc[g])
        what = ("comparison `v%d %s %s`%s recorded at %s was %s when traced; now "
                "%r %s %r is %s" % (a, GUARD_NAMES[k], rhs, elem_txt, loc, bool(go[g]),
                                    now_a, GUARD_NAMES[k], now_b, not bool(go[g])))
    else:
        what = ("%s(v%d)%s recorded at %s took the value %r out into Python when "
                "traced; it is now %r" % (name, a, elem_txt, loc, float(go[g]), now_a))
    return ("%s: guard failed: %s. The traced function would take another path at "
            "this input: trace it again there, or use fd.trace(f, x0, retrace=True)"
            % (fname, what))


def trace(f, x0, *params, retrace=False, optimize=True):
    """Record ``f(x0, *params)`` once and return a :class:`TracedFunction`.

    The traced function replays the recording in C at new inputs, with no Python
    running per operation, and equals ``fd.grad(f)`` and friends to the last bit.

    Parameters
    ----------
    f : callable
        Returns a scalar (or an array, for ``tf.jacobian``, ``tf.jvp`` and
        ``tf.value_batch``).
    x0 : float, array or pytree
        The input gradients are taken with respect to; later calls take inputs
        of the same structure and shapes.
    params : floats, arrays or pytrees
        Dynamic parameters: recorded as values that may change between calls
        (passed after ``x``), not differentiated.
    retrace : bool, optional
        Where Python looked at a value while ``f`` was recorded (``if x > 0``,
        ``max()``, ``int(v)``, a Var as an index, ...), a guard is recorded.  A
        call where a guard would go the other way raises
        :class:`fastad.TraceError`; with ``retrace=True``, ``f`` is recorded again
        there instead, and the 4 most recent paths are kept.
    optimize : bool, optional
        Optimise the recorded tape (default): dead operations dropped, common
        subexpressions merged, constant subgraphs folded, slots renumbered.
        Values are unchanged; gradients agree with ``fd.grad`` to rounding.
        ``optimize=False`` keeps the recording as is, and ``tf.grad`` then equals
        ``fd.grad(f)`` to the last bit.  Tapes holding array operations are
        never optimised.

    Examples
    --------
    >>> tf = fd.trace(lambda x, a: a * fd.sin(x), 0.0, 2.0)
    >>> tf.grad(0.0), tf.grad(0.0, 3.0)
    (2.0, 3.0)
    """
    if not callable(f):
        raise TypeError("fd.trace: f must be callable, got %s" % type(f).__name__)
    if not isinstance(retrace, (bool, np.bool_)):
        raise TypeError("fd.trace: retrace must be True or False, got %r" % (retrace,))
    if not isinstance(optimize, (bool, np.bool_)):
        raise TypeError("fd.trace: optimize must be True or False, got %r" % (optimize,))
    xspec, xf = ArgSpec.of(x0, "x0")
    xspec.what = "x"
    pspec, pf = ArgSpec.of(tuple(params), "params")
    pspec.what = "params"
    path = record(f, xspec, xf, pspec, pf, bool(optimize))
    tf = TracedFunction(f, path, xspec, pspec, pf, retrace,
                        getattr(f, "__name__", type(f).__name__), bool(optimize))
    tf._x0 = xf
    return tf
