"""Arrays suite: issue 11's budget table, fastad against its peers side by side.

Workloads (the rows of issue 11's "Budget" table):
  - vectorised Rosenbrock, n = 1000, value + gradient, eager;
  - MLP 64-128-10 (bench_mlp's model), value + gradient, batch 32 and batch 512;
  - dense Hessian of logsumexp(A @ x) + 0.5 ||x||^2, A 80x50;
  - hvp / gradient cost ratio on that function;
  - dense Jacobian of a tridiagonal residual written with slicing, n = 200;
  - gradient of a multi-head attention loss (einsum, reshape, softmax);
  - fd.hessian of a 3-input vectorised function, eager;
  - fixed cost of one recorded array op: a chain of 100 elementwise ops on a (32,)
    array, recording and reverse sweep timed separately.

Timing: the contenders of one workload are timed in interleaved rounds (each round
times every contender once, starting from a different one each round), so load from
other processes on a shared machine falls on all of them alike.  Each sample is the
mean over enough back-to-back calls to last a few milliseconds; rows give the median
over rounds and the interquartile range, ratios are of medians.  Before anything is
timed, every result (fastad's and each peer's) is compared with a reference (a
hand-written NumPy gradient, an analytic Hessian or Jacobian) with np.allclose: a
wrong number raises instead of being reported as fast.

Threads: BLAS is limited to one thread (threadpoolctl when installed, else the
OpenBLAS library NumPy loaded, called directly through ctypes), torch.set_num_threads(1),
and XLA_FLAGS asks XLA's CPU backend for one thread (set when this module is imported,
which is before jax is imported unless an earlier suite imported it).  The table
header says what was in effect.  jax, torch and CasADi are optional: a peer that is
not installed is reported as missing, never dropped.

    python bench/bench_arrays.py [--quick]
"""
import os
import sys

# Thread settings that only work from the environment must be in place before the
# library that reads them is imported.  run.py itself imports neither NumPy nor JAX,
# so with `--suite arrays` (or this file run directly) both are still unimported here.
_NUMPY_PREIMPORTED = "numpy" in sys.modules
if not _NUMPY_PREIMPORTED:
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_JAX_PREIMPORTED = "jax" in sys.modules
if not _JAX_PREIMPORTED and _XLA_ONE_THREAD not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_ONE_THREAD).strip()

import ctypes  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import fastad as fd  # noqa: E402
import bench_mlp  # noqa: E402
from _timing import fmt_time, installed_version, markdown_table  # noqa: E402

FASTAD = "fastad"


# ----------------------------------------------------------------------------------
# Threads

def _openblas_threads(n=None):
    """Set (when n is given) and read the thread count of every OpenBLAS loaded in
    this process, through its own exported functions: [(library, threads)]."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh
                            if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    except OSError:  # not Linux: nothing found, the header says so
        return []
    pairs = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
             ("openblas_get_num_threads", "openblas_set_num_threads"))
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in pairs:
            if hasattr(lib, get) and hasattr(lib, put):
                if n is not None:
                    getattr(lib, put)(int(n))
                found.append((os.path.basename(path), int(getattr(lib, get)())))
                break
    return found


def limit_threads(peers):
    """Ask every engine for one thread; returns (description, undo callable)."""
    said, undo = [], []
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        before = _openblas_threads()
        after = _openblas_threads(1)
        if after:
            said.append("BLAS 1 thread (%s set through ctypes; threadpoolctl not installed)"
                        % ", ".join("%s: %d" % lib for lib in after))
            if before:  # give later suites in this process their thread count back
                undo.append(lambda: _openblas_threads(before[0][1]))
        else:
            said.append("BLAS threads NOT limited (no threadpoolctl, no OpenBLAS found)")
    else:
        ctl = threadpool_limits(limits=1, user_api="blas")
        said.append("BLAS 1 thread (threadpoolctl)")
        undo.append(ctl.restore_original_limits)
    if not _NUMPY_PREIMPORTED:
        said.append("OMP/OPENBLAS/MKL_NUM_THREADS=%s before NumPy was imported"
                    % os.environ.get("OMP_NUM_THREADS"))
    if "torch" in peers:
        import torch
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        said.append("torch.set_num_threads(1)")
        undo.append(lambda: torch.set_num_threads(old))
    if "jax" in peers:
        if _JAX_PREIMPORTED:
            said.append("jax was imported by an earlier suite: XLA_FLAGS could not be set")
        else:
            said.append("XLA_FLAGS=%s" % os.environ.get("XLA_FLAGS"))
    return "; ".join(said), lambda: [u() for u in reversed(undo)]


# ----------------------------------------------------------------------------------
# Timing: interleaved rounds

class Stats:
    def __init__(self, samples):
        s = np.sort(np.asarray(samples))
        self.n = len(s)
        self.median = float(np.median(s))
        self.q1, self.q3 = (float(q) for q in np.percentile(s, (25, 75)))
        self.lo, self.hi = float(s[0]), float(s[-1])

    def scaled(self, k):
        out = Stats([0.0])
        out.n = self.n
        for a in ("median", "q1", "q3", "lo", "hi"):
            setattr(out, a, getattr(self, a) * k)
        return out

    def cell(self):
        return "%s (IQR %s-%s)" % (fmt_time(self.median), fmt_time(self.q1),
                                   fmt_time(self.q3))


def _minimums(st):
    """The same stats with each median replaced by the minimum, for a second verdict."""
    out = {}
    for label, s in st.items():
        m = s.scaled(1.0)
        m.median = s.lo
        out[label] = m
    return out


def interleaved(contenders, rounds, sample_seconds):
    """{label: Stats of seconds per call}: every round calls every contender, the
    starting contender rotating, so a burst of machine noise hits all of them."""
    inner = {}
    for label, fn in contenders:
        one = min(_once(fn) for _ in range(3))
        inner[label] = max(1, min(100000, int(sample_seconds / max(one, 1e-7))))
    samples = {label: [] for label, _ in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for label, fn in contenders[k:] + contenders[:k]:
            n = inner[label]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[label].append((time.perf_counter() - t0) / n)
    return {label: Stats(s) for label, s in samples.items()}


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------
# Checking

def _leaves(x):
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in _leaves(x[k])]
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [np.asarray(x, dtype=np.float64)]


def check(label, got, want, rtol=1e-7, atol=1e-9):
    """Raise unless `got` has the structure and values of `want` (the reference)."""
    g, w = _leaves(got), _leaves(want)
    ok = len(g) == len(w) and all(a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)
                                  for a, b in zip(g, w))
    if not ok:
        err = max((float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf"))
                  for a, b in zip(g, w)) if len(g) == len(w) else float("inf")
        raise AssertionError("%s disagrees with the reference (max abs error %.3g): "
                             "not timed" % (label, err))


def have(module):
    return installed_version(module) is not None


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    return jax, jnp


def _jnp_out(x):
    """A jax result as NumPy, after waiting for it (results leave the framework)."""
    import jax
    return jax.tree_util.tree_map(lambda a: np.asarray(a.block_until_ready()), x)


# ----------------------------------------------------------------------------------
# Workloads.  Each returns a dict:
#   name, size: the row's labels
#   ref: the reference result every contender is checked against
#   contenders: [(label, module or None, factory returning a zero-argument callable)]
#   summary: f(stats by label, missing labels) -> (fastad cell, peers cell,
#            measured-vs-budget cell, verdict)
#   budget: the budget text

def _ratio_cells(st, missing, fastad_label, peers):
    """'peer median (fastad/peer = r)' for each peer label, 'missing' for absent ones."""
    out = []
    for p in peers:
        if p in st:
            out.append("%s %s (%s)" % (p, fmt_time(st[p].median),
                                       _x(st[fastad_label].median / st[p].median)))
        elif p in missing:
            out.append("%s: %s" % (p, missing[p]))
    return "; ".join(out)


def _x(r):
    return "%.2fx" % r if r < 10 else "%.1fx" % r if r < 100 else "%.0fx" % r


def _verdict(conds):
    """conds: [(ok or None when a peer is missing, text)] -> verdict cell."""
    if any(ok is False for ok, _ in conds):
        return "not met"
    if any(ok is None for ok, _ in conds):
        return "unchecked (%s)" % ", ".join(t for ok, t in conds if ok is None)
    return "met"


def wl_rosenbrock(quick):
    n = 50 if quick else 1000
    x = np.linspace(-1.2, 1.2, n) + 0.01 * np.sin(np.arange(n))

    def f_fd(v):
        return fd.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)

    def hand(v):
        a = v[:-1]
        d = v[1:] - a * a
        b = 1.0 - a
        g = np.zeros_like(v)
        g[:-1] = -400.0 * a * d - 2.0 * b
        g[1:] += 200.0 * d
        return float(np.sum(100.0 * d * d + b * b)), g

    def make_jax():
        jax, jnp = _jax()
        vg = jax.jit(jax.value_and_grad(
            lambda v: jnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)))
        xj = jnp.asarray(x)
        return lambda: _jnp_out(vg(xj))

    vg_fd = fd.value_and_grad(f_fd)

    def summary(st, missing):
        r = st[FASTAD].median / st["hand NumPy"].median
        return (st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, ["hand NumPy", "jax.jit"]),
                "%s hand NumPy" % _x(r), _verdict([(r <= 3.0, "")]))
    return dict(name="vectorised Rosenbrock, value+grad, eager", size="n=%d" % n,
                ref=hand(x), budget="<= 3x hand NumPy", summary=summary,
                contenders=[(FASTAD, None, lambda: lambda: vg_fd(x)),
                            ("hand NumPy", None, lambda: lambda: hand(x)),
                            ("jax.jit", "jax", make_jax)])


def wl_mlp(quick, batch):
    if quick:
        batch = batch // 8
    X, Y, source = bench_mlp.load_data(batch)
    p = bench_mlp.init_params()
    peers = ["hand NumPy", "torch eager", "jax.jit"]

    def summary(st, missing):
        r = st[FASTAD].median / st["hand NumPy"].median
        conds = [(r <= (1.8 if batch_label == 32 else 1.2), "")]
        measured = "%s hand NumPy" % _x(r)
        if batch_label == 32:
            if "torch eager" in st:
                rt = st[FASTAD].median / st["torch eager"].median
                conds.append((rt < 1.0, ""))
                measured += ", %s torch" % _x(rt)
            else:
                conds.append((None, "torch missing"))
        return (st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, peers), measured,
                _verdict(conds))
    batch_label = 32 if batch <= 32 else 512
    return dict(name="MLP 64-128-10 value+grad", size="batch %d (%s)" % (batch, source),
                ref=bench_mlp.numpy_backprop(p, X, Y), summary=summary,
                budget="<= 1.8x hand NumPy, faster than torch" if batch_label == 32
                else "<= 1.2x hand NumPy",
                contenders=[(FASTAD, None, lambda: lambda: bench_mlp.run_fastad(p, X, Y)),
                            ("hand NumPy", None,
                             lambda: lambda: bench_mlp.numpy_backprop(p, X, Y)),
                            ("torch eager", "torch",
                             lambda: (lambda run: lambda: run(p, X, Y))(bench_mlp.make_torch())),
                            ("jax.jit", "jax",
                             lambda: (lambda run: lambda: run(p, X, Y))(bench_mlp.make_jax(True)))])


def _lse_problem(quick):
    m, n = (8, 5) if quick else (80, 50)
    A = np.random.default_rng(20240).normal(size=(m, n)) / math.sqrt(n)
    x = np.linspace(-1.2, 1.1, n)

    def f_fd(v):
        return fd.logsumexp(A @ v) + 0.5 * fd.sum(v * v)

    def parts(v):
        z = A @ v
        e = np.exp(z - z.max())
        return e / e.sum()

    def grad_np(v):
        return A.T @ parts(v) + v

    def hess_np(v):
        p = parts(v)
        Ap = A.T @ p
        return (A.T * p) @ A - np.outer(Ap, Ap) + np.eye(n)

    def f_torch(torch):
        At = torch.from_numpy(A)
        return lambda v: torch.logsumexp(At @ v, 0) + 0.5 * v.dot(v)

    def f_jax(jax, jnp):
        Aj = jnp.asarray(A)
        return lambda v: jax.nn.logsumexp(Aj @ v) + 0.5 * jnp.dot(v, v)
    return dict(A=A, x=x, m=m, n=n, f_fd=f_fd, grad_np=grad_np, hess_np=hess_np,
                f_torch=f_torch, f_jax=f_jax)


def wl_lse_hessian(quick):
    P = _lse_problem(quick)
    A, x, n = P["A"], P["x"], P["n"]

    def make_jax():
        jax, jnp = _jax()
        h = jax.jit(jax.hessian(P["f_jax"](jax, jnp)))
        xj = jnp.asarray(x)
        return lambda: _jnp_out(h(xj))

    def make_torch():
        import torch
        f = P["f_torch"](torch)
        return lambda: torch.autograd.functional.hessian(f, torch.from_numpy(x)).numpy()

    def make_casadi():
        import casadi as ca
        v = ca.SX.sym("x", n)
        shift = float(np.max(A @ x))  # a constant shift, as a stable logsumexp uses
        expr = ca.log(ca.sum1(ca.exp(ca.mtimes(ca.DM(A), v) - shift))) + shift \
            + 0.5 * ca.dot(v, v)
        H, _ = ca.hessian(expr, v)
        fn = ca.Function("h", [v], [H])
        return lambda: np.asarray(fn(x).full())

    def make_traced():
        tf = fd.trace(P["f_fd"], x)
        return lambda: tf.hessian(x)
    hess_fd = fd.hessian(P["f_fd"])
    peers = ["analytic NumPy", "jax.jit", "CasADi", "torch"]

    def summary(st, missing):
        conds, measured = [], []
        for peer, limit, text in (("CasADi", 1.0, "faster than CasADi"),
                                  ("jax.jit", 2.0, "<= 2x jax.jit")):
            if peer in st:
                r = st[FASTAD].median / st[peer].median
                conds.append((r <= limit if limit != 1.0 else r < 1.0, ""))
                measured.append("%s %s" % (_x(r), peer))
            else:
                conds.append((None, "%s missing" % peer))
        measured.append("%s analytic" % _x(st[FASTAD].median / st["analytic NumPy"].median))
        return (st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, peers + ["fastad traced"]),
                ", ".join(measured), _verdict(conds))
    contenders = [(FASTAD, None, lambda: lambda: hess_fd(x)),
                  ("analytic NumPy", None, lambda: lambda: P["hess_np"](x)),
                  ("jax.jit", "jax", make_jax),
                  ("CasADi", "casadi", make_casadi),
                  ("torch", "torch", make_torch)]
    if hasattr(fd, "trace"):
        contenders.append(("fastad traced", None, make_traced))
    return dict(name="dense Hessian of logsumexp(A@x)+0.5|x|^2 (fd.hessian, eager)",
                size="A %dx%d" % (P["m"], n), ref=P["hess_np"](x), summary=summary,
                budget="faster than CasADi, <= 2x jax.jit", contenders=contenders,
                note="jax.jit: jit(jax.hessian); CasADi: the hessian of an SX expression, "
                     "called as a compiled Function; torch: "
                     "torch.autograd.functional.hessian; fastad traced: tf.hessian on "
                     "fd.trace(f, x) (no budget, shown for reference)")


def wl_hvp(quick):
    """Cost of one Hessian-vector product over one gradient, per engine.  Each
    contender's result is checked against H v or the gradient as its label says."""
    P = _lse_problem(quick)
    x, n = P["x"], P["n"]
    v = np.cos(np.arange(n))
    g_ref, hv_ref = P["grad_np"](x), P["hess_np"](x) @ v
    grad_fd, hvp_fd = fd.grad(P["f_fd"]), fd.hvp(P["f_fd"])
    from fastad import _second
    tape_level = hasattr(_second, "hvp_sweep") and hasattr(_second, "var_slots")

    def recorded():
        tape = fd.Tape()
        with tape:
            xv = tape.variable(x)
            y = P["f_fd"](xv)
        return tape, xv, y, _second.var_slots(xv), int(_second.var_slots(y)[0])

    def make_tape(which):
        tape, xv, y, ins, out = recorded()
        if which == "grad":
            return lambda: tape.gradient(y, xv)
        # hvp_sweep returns (gradient, H @ each direction as a (k, n) array)
        return lambda: _second.hvp_sweep(tape, ins, out, v[None, :])[1][0]

    def make_torch(which):
        import torch
        f = P["f_torch"](torch)
        xt, vt = torch.from_numpy(x), torch.from_numpy(v)
        if which == "grad":
            def g():
                xr = xt.clone().requires_grad_(True)
                return torch.autograd.grad(f(xr), xr)[0].numpy()
            return g
        return lambda: torch.autograd.functional.hvp(f, xt, vt)[1].numpy()

    def make_jax(which):
        jax, jnp = _jax()
        f = P["f_jax"](jax, jnp)
        xj, vj = jnp.asarray(x), jnp.asarray(v)
        if which == "grad":
            g = jax.jit(jax.grad(f))
            return lambda: _jnp_out(g(xj))
        h = jax.jit(lambda a, b: jax.jvp(jax.grad(f), (a,), (b,))[1])
        return lambda: _jnp_out(h(xj, vj))

    engines = [("fastad", None, lambda w: (lambda: grad_fd(x)) if w == "grad"
                else (lambda: hvp_fd(x, v)))]
    if tape_level:
        engines.append(("fastad tape", None, make_tape))
    engines += [("torch", "torch", make_torch), ("jax.jit", "jax", make_jax)]
    contenders = []
    for name, module, make in engines:
        for which in ("grad", "hvp"):
            contenders.append(("%s %s" % (name, which), module,
                               (lambda mk, w: lambda: mk(w))(make, which)))
    refs = {label: (g_ref if label.endswith("grad") else hv_ref) for label, _, _ in contenders}

    def ratio(st, name):
        return st[name + " hvp"].median / st[name + " grad"].median

    def summary(st, missing):
        main = "fastad tape" if tape_level else "fastad"
        r = ratio(st, main)
        fast = "%s: hvp %s / grad %s = %s" % (main, fmt_time(st[main + " hvp"].median),
                                              fmt_time(st[main + " grad"].median), _x(r))
        if tape_level:
            fast += "; public fd.hvp / fd.grad = %s" % _x(ratio(st, "fastad"))
        peer_cells = []
        for name in ("torch", "jax.jit"):
            if name + " hvp" in st:
                peer_cells.append("%s hvp/grad = %s" % (name, _x(ratio(st, name))))
            else:
                peer_cells.append("%s: %s" % (name, missing[name + " hvp"]))
        return fast, "; ".join(peer_cells), "%s (%s)" % (_x(r), main), _verdict([(r <= 3.0, "")])
    return dict(name="hvp / gradient on that function", size="n=%d" % n, refs=refs,
                budget="<= 3x", summary=summary, contenders=contenders,
                note="tape: tape.gradient vs fastad._second.hvp_sweep on one recorded tape "
                     "(the issue's 'on that tape'); public: fd.grad vs fd.hvp, each recording; "
                     "torch: autograd.grad vs autograd.functional.hvp; jax.jit: jit(grad) vs "
                     "jit(jvp of grad)")


def wl_tridiagonal(quick):
    n = 8 if quick else 200
    x = np.linspace(0.0, 1.0, n)
    c = 0.1
    z = np.zeros(1)

    def r_fd(v):
        vp = fd.concatenate([z, v, z])  # zero boundary values
        return vp[:-2] - 2.0 * vp[1:-1] + vp[2:] + c * fd.exp(v)

    def jac_np(v):
        return np.diag(-2.0 + c * np.exp(v)) + np.eye(n, k=1) + np.eye(n, k=-1)

    def make_jax():
        jax, jnp = _jax()
        zj = jnp.zeros(1)

        def r(v):
            vp = jnp.concatenate([zj, v, zj])
            return vp[:-2] - 2.0 * vp[1:-1] + vp[2:] + c * jnp.exp(v)
        j = jax.jit(jax.jacfwd(r))
        xj = jnp.asarray(x)
        return lambda: _jnp_out(j(xj))

    def make_autograd():
        import autograd
        import autograd.numpy as anp

        def r(v):
            vp = anp.concatenate([z, v, z])
            return vp[:-2] - 2.0 * vp[1:-1] + vp[2:] + c * anp.exp(v)
        j = autograd.jacobian(r)
        return lambda: j(x)
    jac_fd = fd.jacobian(r_fd)

    def summary(st, missing):
        peers = ["analytic NumPy", "jax.jit(jacfwd)", "autograd"]
        if "jax.jit(jacfwd)" in st:
            r = st[FASTAD].median / st["jax.jit(jacfwd)"].median
            cond, measured = (r <= 5.0, ""), "%s jax.jit" % _x(r)
        else:
            cond, measured = (None, "jax missing"), "-"
        return st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, peers), measured, \
            _verdict([cond])
    return dict(name="dense Jacobian of a tridiagonal residual (slicing, fd.jacobian)",
                size="n=%d" % n, ref=jac_np(x), budget="<= 5x jax.jit", summary=summary,
                contenders=[(FASTAD, None, lambda: lambda: jac_fd(x)),
                            ("analytic NumPy", None, lambda: lambda: jac_np(x)),
                            ("jax.jit(jacfwd)", "jax", make_jax),
                            ("autograd", "autograd", make_autograd)])


def wl_attention(quick):
    T, d, H = (4, 8, 2) if quick else (32, 64, 4)
    dh = d // H
    scale = 1.0 / math.sqrt(dh)
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(T, d)), rng.normal(size=(T, d))
    p = {k: rng.normal(size=(d, d)) / math.sqrt(d) for k in ("Wq", "Wk", "Wv", "Wo")}

    def loss_fd(p, X, Y):
        Q = (X @ p["Wq"]).reshape(T, H, dh)
        K = (X @ p["Wk"]).reshape(T, H, dh)
        V = (X @ p["Wv"]).reshape(T, H, dh)
        P_ = fd.softmax(np.einsum("thd,shd->hts", Q, K) * scale, axis=-1)
        O = np.einsum("hts,shd->thd", P_, V).reshape(T, d)
        R = O @ p["Wo"] - Y
        return 0.5 * fd.sum(R * R) / T

    def hand(p, X, Y):
        Q = (X @ p["Wq"]).reshape(T, H, dh)
        K = (X @ p["Wk"]).reshape(T, H, dh)
        V = (X @ p["Wv"]).reshape(T, H, dh)
        S = np.einsum("thd,shd->hts", Q, K) * scale
        E = np.exp(S - S.max(axis=-1, keepdims=True))
        P_ = E / E.sum(axis=-1, keepdims=True)
        O = np.einsum("hts,shd->thd", P_, V).reshape(T, d)
        R = O @ p["Wo"] - Y
        dZ = R / T
        dO = (dZ @ p["Wo"].T).reshape(T, H, dh)
        dP = np.einsum("thd,shd->hts", dO, V)
        dV = np.einsum("hts,thd->shd", P_, dO)
        dS = P_ * (dP - np.sum(dP * P_, axis=-1, keepdims=True)) * scale
        dQ = np.einsum("hts,shd->thd", dS, K)
        dK = np.einsum("hts,thd->shd", dS, Q)
        return 0.5 * float(np.sum(R * R)) / T, {
            "Wq": X.T @ dQ.reshape(T, d), "Wk": X.T @ dK.reshape(T, d),
            "Wv": X.T @ dV.reshape(T, d), "Wo": O.T @ dZ}

    def make_jax():
        jax, jnp = _jax()

        def loss(p, X, Y):
            Q = (X @ p["Wq"]).reshape(T, H, dh)
            K = (X @ p["Wk"]).reshape(T, H, dh)
            V = (X @ p["Wv"]).reshape(T, H, dh)
            P_ = jax.nn.softmax(jnp.einsum("thd,shd->hts", Q, K) * scale, axis=-1)
            O = jnp.einsum("hts,shd->thd", P_, V).reshape(T, d)
            R = O @ p["Wo"] - Y
            return 0.5 * jnp.sum(R * R) / T
        vg = jax.jit(jax.value_and_grad(loss))
        pj = {k: jnp.asarray(a) for k, a in p.items()}
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        return lambda: _jnp_out(vg(pj, Xj, Yj))
    vg_fd = fd.value_and_grad(loss_fd)

    def summary(st, missing):
        if "jax.jit" in st:
            r = st[FASTAD].median / st["jax.jit"].median
            cond, measured = (r <= 3.0, ""), "%s jax.jit" % _x(r)
        else:
            cond, measured = (None, "jax missing"), "-"
        return st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, ["hand NumPy", "jax.jit"]), \
            measured, _verdict([cond])
    return dict(name="multi-head attention loss, value+grad of Wq, Wk, Wv, Wo",
                size="T=%d, d=%d, %d heads" % (T, d, H), ref=hand(p, X, Y),
                budget="<= 3x jax.jit", summary=summary,
                contenders=[(FASTAD, None, lambda: lambda: vg_fd(p, X, Y)),
                            ("hand NumPy", None, lambda: lambda: hand(p, X, Y)),
                            ("jax.jit", "jax", make_jax)])


def wl_small_hessian(quick):
    x = np.array([0.3, -0.7, 1.1])

    def f_fd(v):
        return fd.sum(v ** 2 * fd.sin(v)) + fd.logsumexp(v)

    def hess_np(v):
        e = np.exp(v - v.max())
        p = e / e.sum()
        g2 = 2.0 * np.sin(v) + 4.0 * v * np.cos(v) - v * v * np.sin(v)
        return np.diag(g2 + p) - np.outer(p, p)

    def make_jax():
        jax, jnp = _jax()
        h = jax.jit(jax.hessian(lambda v: jnp.sum(v ** 2 * jnp.sin(v)) + jax.nn.logsumexp(v)))
        xj = jnp.asarray(x)
        return lambda: _jnp_out(h(xj))

    def make_autograd():
        import autograd
        import autograd.numpy as anp
        from autograd.scipy.special import logsumexp
        h = autograd.hessian(lambda v: anp.sum(v ** 2 * anp.sin(v)) + logsumexp(v))
        return lambda: h(x)
    hess_fd = fd.hessian(f_fd)

    def summary(st, missing):
        t = st[FASTAD].median
        return st[FASTAD].cell(), _ratio_cells(st, missing, FASTAD, ["jax.jit", "autograd"]), \
            fmt_time(t), _verdict([(t <= 100e-6, "")])
    return dict(name="fd.hessian of sum(x^2 sin x) + logsumexp(x), eager", size="3 inputs",
                ref=hess_np(x), budget="<= 100 us", summary=summary,
                contenders=[(FASTAD, None, lambda: lambda: hess_fd(x)),
                            ("jax.jit", "jax", make_jax),
                            ("autograd", "autograd", make_autograd)])


N_CHAIN = 100


def _chain(y, sin, tanh):
    """N_CHAIN elementwise ops, values kept in [0, 2]: sin, *c, tanh, +c, square."""
    for _ in range(N_CHAIN // 5):
        y = sin(y)
        y = y * 0.9
        y = tanh(y)
        y = y + 0.5
        y = y * y
    return y


def wl_fixed_cost(quick):
    x0 = np.linspace(-1.0, 1.0, 32)

    def grad_np(x):  # forward accumulation of d sum(chain(x)) / dx, elementwise
        y, dy = x.copy(), np.ones_like(x)
        for _ in range(N_CHAIN // 5):
            dy, y = dy * np.cos(y), np.sin(y)
            dy, y = dy * 0.9, y * 0.9
            y = np.tanh(y)
            dy = dy * (1.0 - y * y)
            y = y + 0.5
            dy, y = dy * 2.0 * y, y * y
        return dy

    def record():
        tape = fd.Tape()
        with tape:
            x = tape.variable(x0)
            loss = fd.sum(_chain(x, fd.sin, fd.tanh))
        return tape, x, loss

    def make_sweep():
        tape, x, loss = record()
        return lambda: tape.gradient(loss, x)

    def make_record():
        def rec_and_check():  # recording alone is timed; its sweep is checked here
            tape, x, loss = record()
            return tape.gradient(loss, x)
        check(FASTAD + " record", rec_and_check(), grad_np(x0))
        return lambda: record()

    def torch_graph(torch):
        xt = torch.from_numpy(x0).requires_grad_(True)
        return xt, _chain(xt, torch.sin, torch.tanh).sum()

    def make_torch_record():
        import torch
        xt, loss = torch_graph(torch)
        check("torch record", torch.autograd.grad(loss, xt)[0].numpy(), grad_np(x0))
        return lambda: torch_graph(torch)

    def make_torch_sweep():
        import torch
        xt, loss = torch_graph(torch)
        return lambda: torch.autograd.grad(loss, xt, retain_graph=True)[0].numpy()

    refs = {FASTAD + " sweep": grad_np(x0), "torch sweep": grad_np(x0)}

    def summary(st, missing):
        s = {k: v.scaled(1.0 / N_CHAIN) for k, v in st.items()}
        rec, swp = s[FASTAD + " record"].median, s[FASTAD + " sweep"].median
        fast = "record %s + sweep %s = %s per op" % (fmt_time(rec), fmt_time(swp),
                                                     fmt_time(rec + swp))
        peers = ["NumPy ufuncs alone %s per op" % fmt_time(s["NumPy forward only"].median)]
        if "torch record" in s:
            peers.append("torch record %s + sweep %s per op" % (
                fmt_time(s["torch record"].median), fmt_time(s["torch sweep"].median)))
        else:
            peers.append("torch: %s" % missing["torch record"])
        return fast, "; ".join(peers), fmt_time(rec + swp) + " per op", \
            _verdict([(rec + swp <= 1.5e-6, "")])
    return dict(name="fixed cost of one recorded array op (chain of %d elementwise ops)"
                     % N_CHAIN, size="(32,)", refs=refs, budget="<= 1.5 us per op, recorded "
                "and swept", summary=summary, per_op=N_CHAIN,
                contenders=[(FASTAD + " record", None, make_record),
                            (FASTAD + " sweep", None, make_sweep),
                            ("NumPy forward only", None,
                             lambda: lambda: _chain(x0, np.sin, np.tanh)),
                            ("torch record", "torch", make_torch_record),
                            ("torch sweep", "torch", make_torch_sweep)],
                note="record: a fresh Tape, the leaf, %d ops and the final sum; sweep: "
                     "tape.gradient on one recorded tape, repeated; torch: the same chain "
                     "on a requires_grad tensor, autograd.grad(retain_graph=True); per op "
                     "= per call / %d" % (N_CHAIN, N_CHAIN))


WORKLOADS = [wl_rosenbrock, lambda q: wl_mlp(q, 32), lambda q: wl_mlp(q, 512),
             wl_lse_hessian, wl_hvp, wl_tridiagonal, wl_attention, wl_small_hessian,
             wl_fixed_cost]


# ----------------------------------------------------------------------------------

def _load_line(start, end):
    cores = os.cpu_count() or 1
    text = "load average %.2f/%.2f/%.2f at start, %.2f/%.2f/%.2f at end on %d cores" % (
        start + end + (cores,))
    if max(start[0], end[0]) >= 0.75 * cores:
        text += (": HIGH, the machine was shared and busy, absolute times are noisy "
                 "(ratios come from interleaved rounds and suffer less)")
    return text


def run(quick=False):
    """The arrays suite's markdown."""
    # Short samples, many rounds: on a loaded machine a 2 ms sample is often not
    # preempted at all, so the lower quantiles stay near the undisturbed time.
    rounds, sample = (3, 0.0005) if quick else (60, 0.002)
    peers = {m for m in ("jax", "torch", "casadi", "autograd") if have(m)}
    if "jax" in peers:
        _jax()
    if "casadi" in peers:
        import casadi  # noqa: F401  (loaded before the thread limits look at its libraries)
    load_start = os.getloadavg()
    threads, undo = limit_threads(peers)
    summary_rows, detail_rows, notes = [], [], []
    try:
        for make in WORKLOADS:
            w = make(quick)
            available, missing = [], {}
            for label, module, factory in w["contenders"]:
                if module is not None and module not in peers:
                    missing[label] = "missing (%s not installed)" % module
                    continue
                fn = factory()
                # "ref": one reference for every contender; "refs": one per label
                # (a label without one is checked inside its factory, or is a floor
                # that computes no derivative)
                want = w["refs"].get(label) if "refs" in w else w["ref"]
                if want is not None:
                    check("%s on %s" % (label, w["name"]), fn(), want)
                available.append((label, fn))
            st = interleaved(available, rounds, sample)
            fast, peer_cell, measured, verdict = w["summary"](st, missing)
            on_minimums = w["summary"](_minimums(st), missing)[3]
            if on_minimums != verdict:  # noise decided it: say so rather than pick one
                verdict += " on medians, %s on minimums (noisy)" % on_minimums
            summary_rows.append(("%s, %s" % (w["name"], w["size"]), fast, peer_cell,
                                 w["budget"], measured, verdict))
            base = st.get(FASTAD)
            for label, _ in available:
                s = st[label]
                detail_rows.append((w["name"] + ", " + w["size"], label, s.cell(),
                                    "%s-%s" % (fmt_time(s.lo), fmt_time(s.hi)), s.n,
                                    _x(base.median / s.median) if base else "-",
                                    _x(base.lo / s.lo) if base else "-"))
            for label, why in missing.items():
                detail_rows.append((w["name"] + ", " + w["size"], label, why, "", "", "", ""))
            if "note" in w:
                notes.append("%s: %s." % (w["name"], w["note"]))
    finally:
        undo()
    load_end = os.getloadavg()
    versions = ", ".join("%s %s" % (m, installed_version(m) or "missing")
                         for m in ("numpy", "jax", "torch", "autograd", "casadi"))
    out = [
        "### Arrays: issue 11's budget, side by side (%s; %s%s)" % (
            threads, _load_line(load_start, load_end),
            "; --quick: smoke sizes, verdicts meaningless" if quick else ""),
        "",
        markdown_table(["workload", "fastad median (IQR)", "peers: median (fastad / peer)",
                        "budget", "measured", "verdict"], summary_rows),
        "",
        "Every contender's result was checked against the reference (hand-written NumPy "
        "gradient, analytic Hessian/Jacobian) with np.allclose before timing. "
        "%d interleaved rounds per workload, each sample the mean of back-to-back calls "
        "lasting about %s; ratios are of medians. Results leave every framework as "
        "NumPy arrays (jax: block_until_ready + np.asarray; torch: .numpy()). %s. "
        "micrograd is installed but scalar-only, so it has no row here." % (
            rounds, fmt_time(sample), versions),
        "",
        "#### Every contender",
        "",
        markdown_table(["workload", "contender", "median (IQR)", "min-max", "rounds",
                        "fastad / this (medians)", "fastad / this (minimums)"], detail_rows),
        "",
        "The minimum is the least disturbed sample; on a loaded machine its ratio is a "
        "cross-check of the median ratio. Verdicts use medians; where the minimums give "
        "a different verdict, the summary says so.",
    ]
    if notes:
        out += [""] + ["- " + n for n in notes]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
