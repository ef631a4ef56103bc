"""First-order optimizers: fd.optim.SGD and fd.optim.Adam.

A training loop::

    opt = fd.optim.Adam(lr=1e-3)
    for step in range(1000):
        loss, g = fd.value_and_grad(loss_fn)(params, X, y)
        params = opt.step(params, g)

`params` and `grads` are pytrees (nested list / tuple / dict) of floats and NumPy
arrays with the same structure.  `step` returns new parameters of that structure
and never writes into the arrays it was given, so a caller may keep the old
parameters around (for a line search, or to compare).

The update rules are the ones PyTorch documents (torch.optim.SGD / Adam / AdamW),
which are the published ones (Sutskever et al. 2013 for Nesterov momentum in this
form, Kingma & Ba 2015 for Adam, Loshchilov & Hutter 2019 for decoupled weight
decay), so hyperparameters carry over.

Optimizer state (step count and moment buffers) is ordinary Python data: pickle
the optimizer itself, or save `opt.state_dict()` and restore it with
`opt.load_state_dict(d)`; either way a run resumes bit for bit.
"""
import copy
import math
import numbers

import numpy as np

from fastad._pytree import tree_flatten, tree_unflatten

__all__ = ["Optimizer", "SGD", "Adam"]


# ----- argument checks --------------------------------------------------------------

def _real(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError("%s must be a real number, got %s" % (name, type(value).__name__))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("%s must be finite, got %r" % (name, value))
    return value


def _positive(name, value):
    value = _real(name, value)
    if value <= 0.0:
        raise ValueError("%s must be > 0, got %r" % (name, value))
    return value


def _nonnegative(name, value):
    value = _real(name, value)
    if value < 0.0:
        raise ValueError("%s must be >= 0, got %r" % (name, value))
    return value


def _unit_interval(name, value):
    """A decay rate: 0 <= value < 1 (1 would never forget, and Adam divides by 1 - b^t)."""
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError("%s must be in [0, 1), got %r" % (name, value))
    return value


def _leaf_array(leaf, what, index):
    """A leaf as a float64 ndarray, and whether it was a scalar (returned as float)."""
    if isinstance(leaf, (bool, np.bool_)) or leaf is None or isinstance(
            leaf, (str, bytes, complex, np.complexfloating)):
        raise TypeError("%s leaf %d must be a float or a real array, got %s"
                        % (what, index, type(leaf).__name__))
    if isinstance(leaf, numbers.Real):
        return np.float64(leaf), True
    if isinstance(leaf, np.ndarray):
        if leaf.dtype.kind not in "biuf":
            raise TypeError("%s leaf %d must be a real array, got dtype %s"
                            % (what, index, leaf.dtype))
        return leaf.astype(np.float64, copy=False), False
    raise TypeError("%s leaf %d must be a float or a NumPy array, got %s "
                    "(pass plain values, not Vars: take them from fd.value_and_grad)"
                    % (what, index, type(leaf).__name__))


# ----- the common driver ------------------------------------------------------------

class Optimizer:
    """Base class of the optimizers: walks the pytrees, keeps per-leaf state, checks
    structure.  Use :class:`SGD` or :class:`Adam`.

    Subclasses define `_hyper` (names of the hyperparameters, which are plain
    attributes a user may change between steps, e.g. to decay `lr`), `_buffers`
    (names of the per-leaf state arrays) and `_update(p, g, state, t)` which
    returns the new parameter leaf as a fresh array.
    """

    _hyper = ()
    _buffers = ()

    def __init__(self):
        self.t = 0              # number of steps taken
        self._treedef = None    # structure of params, fixed at the first step
        self._shapes = None     # shape of each leaf, fixed at the first step
        self._state = None      # {buffer name: [ndarray per leaf]}

    def step(self, params, grads):
        """Return the parameters after one update with gradient ``grads``.

        ``params`` and ``grads`` are pytrees of floats and arrays with the same
        structure (a ``ValueError`` otherwise).  The result is a new pytree of that
        structure; the arrays passed in are never written to.

        Examples
        --------
        >>> opt = fd.optim.SGD(lr=0.1)
        >>> opt.step({"w": np.array([1.0, 2.0])}, {"w": np.array([1.0, 1.0])})
        {'w': array([0.9, 1.9])}
        """
        p_leaves, p_def = tree_flatten(params)
        g_leaves, g_def = tree_flatten(grads)
        if p_def != g_def:
            raise ValueError("%s.step: params and grads have different pytree structures "
                             "(%d and %d leaves); pass the gradient of exactly params"
                             % (type(self).__name__, len(p_leaves), len(g_leaves)))
        ps, scalar = [], []
        gs = []
        for i, (p, g) in enumerate(zip(p_leaves, g_leaves)):
            pa, is_scalar = _leaf_array(p, "params", i)
            ga, _ = _leaf_array(g, "grads", i)
            if np.shape(pa) != np.shape(ga):
                raise ValueError("%s.step: params leaf %d has shape %s but its gradient "
                                 "has shape %s" % (type(self).__name__, i,
                                                   np.shape(pa), np.shape(ga)))
            ps.append(pa)
            gs.append(ga)
            scalar.append(is_scalar)
        shapes = [np.shape(p) for p in ps]
        if self._treedef is None:
            self._treedef, self._shapes = p_def, shapes
            self._state = {name: [np.zeros(s) for s in shapes] for name in self._buffers}
        elif p_def != self._treedef or shapes != self._shapes:
            raise ValueError("%s.step: params changed structure or shapes since the first "
                             "step; use a new optimizer (or reset()) for a new model"
                             % type(self).__name__)
        self.t += 1
        out = []
        for i, (p, g) in enumerate(zip(ps, gs)):
            state = {name: bufs[i] for name, bufs in self._state.items()}
            new_p, new_state = self._update(p, g, state, self.t)
            for name, buf in new_state.items():
                self._state[name][i] = buf
            out.append(float(new_p) if scalar[i] else new_p)
        return tree_unflatten(p_def, out)

    def reset(self):
        """Forget the step count and all moment buffers."""
        Optimizer.__init__(self)

    # ----- saving and resuming --------------------------------------------------

    def state_dict(self):
        """A deep copy of everything needed to resume: hyperparameters, step count,
        and the per-leaf buffers (each arranged in the structure of params)."""
        buffers = None
        if self._state is not None:
            buffers = {name: tree_unflatten(self._treedef, [b.copy() for b in bufs])
                       for name, bufs in self._state.items()}
        return {"optimizer": type(self).__name__,
                "hyper": {name: copy.deepcopy(getattr(self, name)) for name in self._hyper},
                "t": self.t,
                "buffers": buffers}

    def load_state_dict(self, state):
        """Restore what `state_dict()` returned (from an optimizer of the same class)."""
        if not isinstance(state, dict) or "optimizer" not in state:
            raise TypeError("load_state_dict: expected a dict from state_dict(), got %s"
                            % type(state).__name__)
        if state["optimizer"] != type(self).__name__:
            raise ValueError("load_state_dict: state of a %s cannot be loaded into a %s"
                             % (state["optimizer"], type(self).__name__))
        fresh = type(self)(**state["hyper"])   # validates the hyperparameters
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError("load_state_dict: step count must be an int >= 0, got %r" % (t,))
        fresh.t = int(t)
        if state["buffers"] is not None:
            if set(state["buffers"]) != set(self._buffers):
                raise ValueError("load_state_dict: expected buffers %s, got %s"
                                 % (sorted(self._buffers), sorted(state["buffers"])))
            treedef = shapes = None
            fresh._state = {}
            for name in self._buffers:
                leaves, td = tree_flatten(state["buffers"][name])
                arrays = [np.array(b, dtype=np.float64) for b in leaves]
                if treedef is None:
                    treedef, shapes = td, [a.shape for a in arrays]
                elif td != treedef or [a.shape for a in arrays] != shapes:
                    raise ValueError("load_state_dict: buffers %r do not match the other "
                                     "buffers' structure" % name)
                fresh._state[name] = arrays
            fresh._treedef, fresh._shapes = treedef, shapes
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)

    def __repr__(self):
        args = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self._hyper)
        return "%s(%s)" % (type(self).__name__, args)


# ----- the optimizers ---------------------------------------------------------------

class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

    ``SGD(lr, momentum=0.0, nesterov=False, weight_decay=0.0)``; ``nesterov=True``
    needs ``momentum > 0``.  The update of each leaf ``p`` with gradient ``grad``,
    as ``torch.optim.SGD`` documents it::

        g  = grad + weight_decay * p
        b  = momentum * b + g                       (b starts at 0)
        d  = g + momentum * b   if nesterov  else  b   (d = g without momentum)
        p  = p - lr * d
    """

    _hyper = ("lr", "momentum", "nesterov", "weight_decay")
    _buffers = ("momentum_buffer",)

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__()
        self.lr = _positive("SGD: lr", lr)
        self.momentum = _unit_interval("SGD: momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError("SGD: nesterov must be a bool, got %s" % type(nesterov).__name__)
        if nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonnegative("SGD: weight_decay", weight_decay)

    def _update(self, p, g, state, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if not self.momentum:
            return p - self.lr * g, {}
        b = self.momentum * state["momentum_buffer"] + g
        d = g + self.momentum * b if self.nesterov else b
        return p - self.lr * d, {"momentum_buffer": b}


class Adam(Optimizer):
    """Adam (Kingma & Ba), or AdamW (decoupled weight decay) with ``decoupled=True``.

    ``betas`` is the pair ``(b1, b2)``.  The update of each leaf ``p`` with
    gradient ``grad`` at step ``t``, as ``torch.optim.Adam`` and ``AdamW`` document
    it::

        p  = p * (1 - lr * weight_decay)            if decoupled
        g  = grad + weight_decay * p                 if not decoupled (L2 penalty)
        m  = b1 * m + (1 - b1) * g                   (m, v start at 0; t counts from 1)
        v  = b2 * v + (1 - b2) * g**2
        p  = p - lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)
    """

    _hyper = ("lr", "betas", "eps", "weight_decay", "decoupled")
    _buffers = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled=False):
        super().__init__()
        self.lr = _positive("Adam: lr", lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError("Adam: betas must be a pair (beta1, beta2), got %r" % (betas,))
        self.betas = (_unit_interval("Adam: betas[0]", betas[0]),
                      _unit_interval("Adam: betas[1]", betas[1]))
        self.eps = _nonnegative("Adam: eps", eps)
        self.weight_decay = _nonnegative("Adam: weight_decay", weight_decay)
        if not isinstance(decoupled, (bool, np.bool_)):
            raise TypeError("Adam: decoupled must be a bool, got %s"
                            % type(decoupled).__name__)
        self.decoupled = bool(decoupled)

    def _update(self, p, g, state, t):
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p = p * (1.0 - self.lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p
        m = b1 * state["m"] + (1.0 - b1) * g
        v = b2 * state["v"] + (1.0 - b2) * (g * g)
        m_hat = m / (1.0 - b1 ** t)
        v_hat = v / (1.0 - b2 ** t)
        return p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps), {"m": m, "v": v}
