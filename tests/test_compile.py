"""Compiled traces (tf.compile(), fastad/_compile.py): bit-identical to replay on the
whole op table, guards, parameters, the disk cache, and CompileError.

Compiling runs the C compiler (seconds on a loaded machine), so the compiled traces
are built once per module and shared, in a cache directory of the module's own."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastad as fd
from fastad import _compile, _reroll
from fastad._replay import tape_arrays

from _compiler import have_cc
from _op_table_program import N_INPUTS, points, program, x0

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


needs_cc = pytest.mark.skipif(not have_cc(), reason="no working C compiler ($CC or cc)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("xdg")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(d)
    yield d / "fastad"
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def table(cache):
    opt = fd.trace(program, x0(), 0.7)
    plain = fd.trace(program, x0(), 0.7, optimize=False)
    return opt, opt.compile(), plain, plain.compile()


def same(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    keep = ~np.isnan(a)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert a[keep].tobytes() == b[keep].tobytes()


@needs_cc
def test_compiled_is_bit_identical_to_replay_on_the_whole_table(table):
    opt, copt, plain, cplain = table
    assert "compiled" in repr(copt) and "compiled" not in repr(opt)
    for x in points(21, 6):
        for p in (0.7, -2.5):
            for tf, ctf in ((opt, copt), (plain, cplain)):
                v, g = tf.value_and_grad(x, p)
                cv, cg = ctf.value_and_grad(x, p)
                same(cv, v)
                same(np.array(cg), np.array(g))
                same(ctf(x, p), tf(x, p))
                same(np.array(ctf.grad(x, p)), np.array(g))
            # the unoptimized compiled trace is fd.grad to the last bit
            same(np.array(cplain.grad(x, p)), np.array(fd.grad(program)(x, p)))


@needs_cc
def test_compiled_grad_batch_is_bit_identical(table):
    opt, copt, _, _ = table
    X = np.array(points(22, 7))
    for threads in (1, 2):
        same(copt.grad_batch(X, 1.25, threads=threads), opt.grad_batch(X, 1.25, threads=1))
    same(copt.value_batch(X), opt.value_batch(X))
    assert copt.grad_batch(X).shape == (7, N_INPUTS)


def _branchy(x, p):
    s = fd.sin(x[0]) * p + x[1] * x[1]
    if s > 0.0:
        return fd.exp(s) + x[0]
    return fd.log1p(s * s) - x[1]


@pytest.fixture(scope="module")
def guarded(cache):
    tf = fd.trace(_branchy, np.array([0.5, 0.2]), 1.0)
    return tf, tf.compile()


@needs_cc
def test_guards_are_checked_as_in_replay(guarded):
    tf, ctf = guarded
    x = np.array([0.4, 0.1])
    same(ctf.grad(x, 2.0), tf.grad(x, 2.0))          # a dynamic parameter
    bad = np.array([-1.0, 0.0])
    with pytest.raises(fd.TraceError) as e1:
        tf.grad(bad)
    with pytest.raises(fd.TraceError) as e2:
        ctf.grad(bad)
    assert str(e1.value).replace("tf.grad", "") == str(e2.value).replace("tf.grad", "")
    with pytest.raises(fd.TraceError, match="row 1"):
        ctf.grad_batch(np.stack([x, bad]))


@needs_cc
def test_a_second_compile_loads_the_cached_library(guarded, cache):
    tf, ctf = guarded
    tf.compile()
    assert _compile.last_source == "memory"
    _compile._loaded.clear()                  # as a new process would be
    again = tf.compile()
    assert _compile.last_source == "disk"
    libs = [f for f in os.listdir(cache) if f.endswith(".so")]
    assert libs
    x = np.array([0.3, 0.6])
    same(again.grad(x), tf.grad(x))


_CORRUPT_CHILD = """
import os, sys
import fastad as fd
from fastad import _compile, _reroll
from fastad._replay import tape_arrays
cache = _compile.cache_dir()
tf = fd.trace(lambda x: fd.tanh(x) * fd.cos(x) + x * 0.125, 0.4)
if sys.argv[1] == "damage":
    # a library damaged on disk (by another process: this one never loaded it)
    for name in os.listdir(cache):
        if name.endswith(".so"):
            path = os.path.join(cache, name)
            with open(path, "r+b") as fh:
                fh.seek(os.path.getsize(path) // 2)
                fh.write(b"\\xcc" * 64)
ctf = tf.compile()
assert ctf.grad(0.9) == tf.grad(0.9) and ctf(0.9) == tf(0.9)
print("SOURCE", _compile.last_source)
"""


@needs_cc
def test_a_corrupted_cache_file_is_rejected_and_rebuilt(tmp_path):
    # in child processes: a library damaged while loaded would crash this one
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = []
    for step in ("first", "again", "damage"):
        proc = subprocess.run([sys.executable, "-c", _CORRUPT_CHILD, step], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(proc.stdout.split()[-1])
    assert out == ["built", "disk", "built"]


@needs_cc
def test_compiled_pickles_as_a_plain_trace(guarded):
    tf, ctf = guarded
    x = np.array([0.4, 0.1])
    back = pickle.loads(pickle.dumps(ctf))
    assert "compiled" not in repr(back)
    same(back.grad(x), tf.grad(x))


def test_traces_with_array_records_raise_compile_error(cache):
    tf = fd.trace(lambda x: fd.sum(fd.tanh(fd.matmul(np.ones((2, 2)), x))), np.ones(2))
    with pytest.raises(fd.CompileError, match="array operations"):
        tf.compile()


def test_no_compiler_raises_compile_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env["PATH"] = ""
    env["XDG_CACHE_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = ROOT + os.pathsep + os.path.join(ROOT, "tests")
    code = (
        "import fastad as fd\n"
        "tf = fd.trace(lambda x: fd.sin(x) * x, 0.5)\n"
        "try:\n"
        "    tf.compile()\n"
        "except fd.CompileError as e:\n"
        "    assert isinstance(e, fd.FastADError)\n"
        "    print('COMPILE-ERROR', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "COMPILE-ERROR" in proc.stdout
    assert "'cc'" in proc.stdout and "CC" in proc.stdout


@needs_cc
def test_a_cached_library_loads_without_a_compiler(tmp_path):
    if os.environ.get("CC", "").strip():
        pytest.skip("CC is set: the default cc is what this test removes")
    code = ("import fastad as fd\nfrom fastad import _compile\n"
            "tf = fd.trace(lambda x: fd.sin(x) * x + x * x, 0.5)\n"
            "ctf = tf.compile()\n"
            "assert ctf.grad(0.25) == tf.grad(0.25)\n"
            "print('SOURCE', _compile.last_source)\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = []
    for path in (env["PATH"], ""):                    # with cc, then without any
        proc = subprocess.run([sys.executable, "-c", code], env=dict(env, PATH=path),
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(proc.stdout.split()[-1])
    assert out == ["built", "disk"]


def test_units_per_core():
    # small tapes stay one unit; larger ones get at least one unit per core, never
    # more slots per unit than CHUNK_SLOTS
    assert _compile._chunk_slots(_compile.MIN_SPLIT_SLOTS, 2) == _compile.CHUNK_SLOTS
    assert _compile._chunk_slots(10_000, 1) == _compile.CHUNK_SLOTS
    assert _compile._chunk_slots(10_000, 2) == 5_000
    assert _compile._chunk_slots(10 ** 6, 2) == _compile.CHUNK_SLOTS
    for slots, cores in ((2_001, 2), (9_999, 4), (10 ** 5, 3), (3_000, 64)):
        chunk = _compile._chunk_slots(slots, cores)
        units = -(-slots // chunk)
        assert units >= min(cores, slots // chunk) and chunk <= _compile.CHUNK_SLOTS


@needs_cc
def test_a_tape_split_into_many_units_is_bit_identical(cache, monkeypatch):
    # several translation units linked into one library (the path of 10^6-op
    # tapes), here with small units so the test stays quick; without loops, so
    # that every slot is a statement
    monkeypatch.setattr(_compile, "CHUNK_SLOTS", 700)
    monkeypatch.setattr(_compile, "REROLL", False)

    def f(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + 100.0 * (x[i + 1] - x[i] * x[i]) ** 2 + (1.0 - x[i]) ** 2
        return s

    units = _count_units(monkeypatch)
    x = np.linspace(-1.0, 1.5, 300)       # 2,700 computed slots: 4 units of 700
    tf = fd.trace(f, x, optimize=False)
    ctf = tf.compile()
    assert units == [["c0.c", "c1.c", "c2.c", "c3.c", "main.c"]]
    for y in (x, x + 0.3, -x):
        same(ctf.grad(y), tf.grad(y))
        same(ctf(y), tf(y))


def _count_units(monkeypatch):
    units = []
    build = _compile._build

    def counting(files, so_path, cc):
        units.append(sorted(files))
        return build(files, so_path, cc)

    monkeypatch.setattr(_compile, "_build", counting)
    return units


# -- loops: repeated blocks of a tape (fastad/_reroll.py) -----------------------------

def _runs(tf):
    """The runs tf.compile() writes as loops for tf's tape, checked against their
    definition, disjoint and in order; and the number of computed slots."""
    rp = tf._paths[0].rp
    op, a, b, _val, _db = tape_arrays(rp.tape)
    first = 1 + rp.n_in + rp.n_param
    runs = _reroll.find_runs(op, a, b, first, op.shape[0])
    end = first
    for B, K, R in runs:
        assert B >= end and R >= _reroll.MIN_REPS
        assert _reroll.is_run(op, a, b, B, K, R)
        end = B + K * R
    assert end <= op.shape[0]
    return runs, op.shape[0] - first


def _check(tf, ctf, xs, params=()):
    for x in xs:
        v, g = tf.value_and_grad(x, *params)
        cv, cg = ctf.value_and_grad(x, *params)
        same(cv, v)
        same(cg, g)
    X = np.array(xs)
    for threads in (1, 2):
        same(ctf.grad_batch(X, *params, threads=threads),
             tf.grad_batch(X, *params, threads=1))
        same(ctf.value_batch(X, *params, threads=threads), tf.value_batch(X, *params))


def _mixed(x, p):
    """Loops with strides 1, 2, 0 (x[0] throughout) and -1, between straight code,
    one of them broken every seventh iteration, and the parameter in a loop."""
    n = len(x)
    s = fd.sin(x[0]) * x[1]
    for i in range(n - 1):                           # stride 1
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    t = fd.exp(s * 1e-3) + fd.tanh(x[2])
    for i in range(0, n - 1, 2):                     # stride 2, and x[0]: stride 0
        t = t * 0.5 + fd.sin(x[i]) * x[i + 1] - x[0] / (2.0 + x[i] ** 2)
    for i in range(n):                               # stride -1, broken every 13th
        u = x[n - 1 - i]
        t = t + (fd.cos(u) if i % 13 == 5 else fd.sin(u)) * p
    for i in range(n):
        t = t + fd.arctan2(x[i], 1.5 + x[0] * x[0]) * fd.sqrt(x[i] ** 2 + p * p)
    return t * s + fd.log1p(t * t)


@pytest.fixture(scope="module")
def mixed(cache):
    x = np.linspace(-0.9, 1.1, 40)
    out = []
    for optimize in (True, False):
        tf = fd.trace(_mixed, x, 0.75, optimize=optimize)
        out.append((tf, tf.compile()))
    return x, out


@needs_cc
def test_loops_with_strides_and_broken_patterns_are_bit_identical(mixed):
    x, traces = mixed
    rng = np.random.default_rng(5)
    xs = [x, x[::-1].copy(), rng.uniform(-2, 2, x.shape), np.zeros_like(x),
          np.full_like(x, np.inf), np.where(np.arange(40) % 3, x, np.nan)]
    for tf, ctf in traces:
        runs, slots = _runs(tf)
        assert len(runs) >= 3
        assert sum(K * R for _B, K, R in runs) > 0.8 * slots
        for p in (0.75, 0.0, -0.0, -3.0, np.inf):
            _check(tf, ctf, xs, (p,))


@needs_cc
def test_loop_strides_cover_constant_forward_and_backward_steps(mixed):
    _x, traces = mixed
    tf = traces[1][0]
    rp = tf._paths[0].rp
    op, a, b, _val, _db = tape_arrays(rp.tape)
    steps = set()
    for B, K, R in _runs(tf)[0]:
        for arr in (a, b):
            steps.update((arr[B + K:B + 2 * K] - arr[B:B + K]).tolist())
    assert {0, 1, 2, -1} <= steps


def _table_loop(x, p):
    s = 0.0
    for r in range(6):                      # the whole op table, six times
        s = s + program(x[r * N_INPUTS:(r + 1) * N_INPUTS], p)
    return s


@needs_cc
def test_the_whole_table_in_a_loop_is_bit_identical(cache):
    pts = [np.concatenate([np.asarray(q) for q in points(seed, 6)])
           for seed in (31, 32, 33)]
    for optimize in (True, False):
        tf = fd.trace(_table_loop, pts[0], 0.7, optimize=optimize)
        runs, slots = _runs(tf)
        assert max(K * R for _B, K, R in runs) > 0.5 * slots     # the table is a loop body
        ctf = tf.compile()
        for p in (0.7, -2.5):
            _check(tf, ctf, pts, (p,))


def _guarded_loop(x):
    s = 0.0
    for i in range(len(x) - 1):
        t = x[i] * x[i + 1] - 0.25
        if t > 0.0:                          # a guard on a slot inside the loop
            s = s + t * fd.exp(-t)
        else:
            s = s - t
    return s


@needs_cc
def test_guards_inside_loops_are_checked_as_in_replay(cache):
    x = np.linspace(0.6, 1.4, 30)            # every product above 0.25
    tf = fd.trace(_guarded_loop, x)
    ctf = tf.compile()
    assert _runs(tf)[0]
    _check(tf, ctf, [x, x * 1.1, x[::-1].copy()])
    bad = x.copy()
    bad[17] = 0.1                            # two guards in the middle now fail
    with pytest.raises(fd.TraceError) as e1:
        tf.grad(bad)
    with pytest.raises(fd.TraceError) as e2:
        ctf.grad(bad)
    assert str(e1.value).replace("tf.grad", "") == str(e2.value).replace("tf.grad", "")
    with pytest.raises(fd.TraceError, match="row 2"):
        ctf.grad_batch(np.stack([x, x * 1.2, bad]))


def _early_output(x):
    s = 0.0
    out = None
    for i in range(len(x)):
        s = s * 0.5 + fd.sin(x[i]) * x[i]
        if i == 25:
            out = s                          # the rest of the loop is dead
    return out


@needs_cc
def test_output_inside_a_loop_runs_the_reverse_sweep_from_there(cache):
    x = np.linspace(-1.0, 1.0, 40)
    tf = fd.trace(_early_output, x, optimize=False)    # keeps the dead repetitions
    rp = tf._paths[0].rp
    (B, K, R), = [r for r in _runs(tf)[0] if r[0] + r[1] * r[2] > rp.out_slot]
    assert B < rp.out_slot < B + K * R - 1
    ctf = tf.compile()
    _check(tf, ctf, [x, -x, x * 3.0])
    assert not np.any(ctf.grad(x)[26:])


def _shared_start(x):
    u = fd.sin(x[0])
    s = u              # the first repetition's carried sum is u, read by every one
    for i in range(len(x)):
        s = s * 0.5 + u * x[i]
    t = s
    for i in range(len(x)):   # and a loop whose carried slot a later loop reads
        t = t * 0.25 + s * fd.cos(x[i])
    return fd.exp(t) + s


@needs_cc
def test_loops_whose_carried_adjoint_shares_a_slot_are_bit_identical(cache):
    x = np.linspace(-1.0, 1.0, 20)
    for optimize in (True, False):
        tf = fd.trace(_shared_start, x, optimize=optimize)
        assert len(_runs(tf)[0]) >= 2
        _check(tf, tf.compile(), [x, x * 0.5 - 0.2, -x])


def _random_loops(seed, n=24):
    """A seeded random f(x) of one to three loops: each repeats a random block
    over carried sums, values fixed before the loop, x at stride -1, 0, 1 or 2 and
    the block's own earlier values, with straight code in between."""
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(int(rng.integers(1, 4))):
        body = [(int(rng.integers(7)), int(rng.integers(6)), int(rng.integers(6)),
                 float(rng.choice([0.5, -1.25, 2.0])))
                for _ in range(int(rng.integers(2, 8)))]
        plan.append((int(rng.integers(1, 4)), int(rng.choice([-1, 0, 1, 2])),
                     int(rng.integers(0, 3)), body))
    ops = [lambda u, w, c: u * w, lambda u, w, c: u + w, lambda u, w, c: u - w * c,
           lambda u, w, c: fd.sin(u) * c, lambda u, w, c: fd.tanh(u + w),
           lambda u, w, c: fd.exp(u * 0.1) - w, lambda u, w, c: u * c + w]

    def f(x):
        fixed = [fd.sin(x[0]), x[1] * x[2]]
        carry = list(fixed)
        for ncarry, stride, off, body in plan:
            carry = (carry * 3)[:ncarry]
            reps = n // max(1, abs(stride)) - 3 if stride else n - 1
            for i in range(reps):
                j = (off + stride * i) % n if stride >= 0 else n - 1 - i - off
                vals = carry + fixed + [x[j], x[(j + 1) % n]]
                for kind, p, q, c in body:
                    vals.append(ops[kind](vals[p % len(vals)], vals[-1 - q % len(vals)], c))
                carry = [vals[-1 - k] * 0.5 + carry[k] for k in range(len(carry))]
            fixed = fixed + [carry[0] * 0.25]
        s = 0.0
        for v in carry + fixed:
            s = s + v
        return s
    return f


@needs_cc
@pytest.mark.parametrize("seed", range(6))
def test_random_loop_programs_are_bit_identical(cache, seed):
    # random loop structures: carried sums, fixed slots read by every repetition,
    # reversed and constant strides (seeds 0 .. 299 passed when this was written)
    f = _random_loops(seed)
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, 24)
    for optimize in (True, False):
        tf = fd.trace(f, x, optimize=optimize)
        assert _runs(tf)[0]
        _check(tf, tf.compile(), [x, -x, x * 0.5])


@needs_cc
def test_loops_split_into_units_are_bit_identical(cache, monkeypatch):
    monkeypatch.setattr(_compile, "CHUNK_SLOTS", 60)
    units = _count_units(monkeypatch)
    x = np.linspace(-0.7, 1.2, 24)
    tf = fd.trace(_mixed, x, 0.5)
    ctf = tf.compile()
    assert len(units[0]) > 3
    _check(tf, ctf, [x, -x, x * 0.3], (0.5,))


def test_find_runs_on_a_rosenbrock_tape_covers_the_loop():
    def f(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
        return s

    tf = fd.trace(f, np.linspace(-1, 1, 200))
    runs, slots = _runs(tf)
    assert len(runs) == 1 and runs[0][1] == 8 and runs[0][1] * runs[0][2] > slots - 16


def test_is_run_rejects_what_is_not_a_run():
    op = np.array([9, 7] * 6, dtype=np.uint8)
    a = np.array([v for r in range(6) for v in (1 + r, 2 * r)], dtype=np.int32)
    b = np.zeros(12, dtype=np.int32)
    assert _reroll.is_run(op, a, b, 0, 2, 6)
    op2 = op.copy()
    op2[7] = 8                               # another op in repetition 3
    assert not _reroll.is_run(op2, a, b, 0, 2, 6)
    a2 = a.copy()
    a2[8] += 1                               # a step that changes
    assert not _reroll.is_run(op, a2, b, 0, 2, 6)
    b2 = b.copy()
    b2[2::2] = 3                             # b is the sentinel in repetition 0 only
    assert not _reroll.is_run(op, a, b2, 0, 2, 6)
    assert not _reroll.is_run(op, a, b, 0, 2, 7)     # past the end


def _planted(broken_rep=None):
    """op, a, b: 40 random slots, 20 repetitions of a 4-slot block, 40 random slots;
    with broken_rep, that repetition's second slot has another op."""
    rng = np.random.default_rng(3)
    op, a, b = [2] * 11, [0] * 11, [0] * 11            # sentinel-like leaves, 10 inputs

    def noise(count):
        for _ in range(count):
            i = len(op)
            op.append(int(rng.integers(4, 90)))
            a.append(int(rng.integers(1, i)))
            b.append(int(rng.integers(0, i)))

    noise(40)
    start = len(op)
    for r in range(20):
        o = len(op)
        op += [6, 13 if r == broken_rep else 52, 60, 55]
        a += [1, o, o + 1, o + 2]                           # x[1] throughout: stride 0
        b += [0, o - 1, 0, 1 + r]                           # previous block, stride 1
    noise(40)
    return (np.array(op, dtype=np.uint8), np.array(a, dtype=np.int32),
            np.array(b, dtype=np.int32), start)


def test_find_runs_finds_a_planted_block_and_splits_at_a_break():
    op, a, b, start = _planted()
    runs = _reroll.find_runs(op, a, b, 11, op.shape[0])
    assert any(K == 4 and B <= start + 4 and B + K * R >= start + 80 - 4
               for B, K, R in runs)
    op, a, b, start = _planted(broken_rep=10)
    runs = _reroll.find_runs(op, a, b, 11, op.shape[0])
    for B, K, R in runs:
        assert _reroll.is_run(op, a, b, B, K, R)
        assert B + K * R <= start + 41 or B >= start + 42      # never across slot 41
    assert sum(K * R for _B, K, R in runs if K == 4) >= 80 - 2 * 4 - 4
