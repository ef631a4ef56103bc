"""The interpreter loops of fastad/_replay.pyx: the forward generated from the op
table's rows (fad_replay_forward), the partials it leaves alone (set_partials_once),
the reverse sweep that stops at the first operation, and the in-place reading of
the input vector by Replay.run."""
import numpy as np
import pytest

import fastad as fd
from fastad._replay import FIXED_PARTIAL_OPS, Replay, tape_arrays, tape_from_arrays
from fastad._tape import OP_INFO

from _op_table_program import points, program, x0


def bits_equal(a, b):
    """Same bits wherever a is not NaN, NaN where a is NaN (the sign and payload of a
    NaN are the compiler's business: see tests/test_trace.py)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    nan = np.isnan(a)
    assert np.array_equal(nan, np.isnan(b))
    assert a[~nan].tobytes() == b[~nan].tobytes()


@pytest.fixture(scope="module")
def table_trace():
    # every op of the table, with both constant-operand forms and constant leaves
    # (fd.stack) between the operations
    return fd.trace(program, x0(), 0.7, optimize=False)


def test_the_table_program_has_every_form_and_leaves_in_the_middle(table_trace):
    op, _a, _b, _val, _db = tape_arrays(table_trace._tape)
    n_in = len(x0()) + 1
    codes = set(op[1 + n_in:].tolist())
    # every binary row's three forms and every unary row are on the tape
    for code, _name, arity, _dom in OP_INFO:
        want = {code} if arity == 1 else {code, code + 1, code + 2}
        assert want <= codes, _name
    # constant leaves (op code 2, FAD_CONST) sit among the operations
    assert 2 in codes


@pytest.mark.parametrize("seed", [3, 4])
def test_replayed_slots_are_the_recorded_slots_bit_for_bit(table_trace, seed):
    # replay at new points: every slot's value and both partials are exactly what a
    # fresh recording at that point holds (fad_eval's expressions, every form)
    for pt in points(seed, 3):
        g = table_trace.grad(pt, 0.7)
        replayed = table_trace._tape._slot_arrays()
        fresh = fd.trace(program, pt, 0.7, optimize=False)
        recorded = fresh._tape._slot_arrays()
        for k in range(6):          # op, a, b, val, da, db
            bits_equal(replayed[k], recorded[k])
        eager = fd.grad(lambda x: program(x, 0.7))(pt)
        for u, v in zip(g, eager):
            bits_equal(u, v)


def test_fixed_ops_keep_partials_and_value_changes(table_trace):
    # the fixed ops' partials are not rewritten by replay, yet are right at every
    # point (checked above); here: their values do change between two points
    pts = points(9, 2)
    table_trace(pts[0], 0.7)
    op, _a, _b, v0, _da, _db = table_trace._tape._slot_arrays()
    table_trace(pts[1], 0.7)
    v1 = table_trace._tape._slot_arrays()[3]
    fixed = np.isin(op, FIXED_PARTIAL_OPS)
    assert fixed.sum() > 10
    assert (v0[fixed] != v1[fixed]).any()


def test_a_loaded_tape_gets_the_zero_db_of_unary_ops():
    # a file may hold anything in a unary op's db; replay never writes it, so the
    # Replay sets it once, and the gradient and second-order sweeps are unaffected
    tf = fd.trace(lambda x: fd.sin(x[0]) * fd.exp(x[1]), np.array([0.3, 0.4]),
                  optimize=False)
    op, a, b, val, db = tape_arrays(tf._tape)
    junk = db.copy()
    unary = np.isin(op, [c for c, _n, arity, _d in OP_INFO if arity == 1])
    assert unary.any()
    junk[unary] = 12.5
    t = tape_from_arrays(op, a, b, val, junk, [], 2)
    rp = Replay(t, 2, 0, tf._paths[0].rp.out_slot, 1)
    assert (tape_arrays(t)[4][unary] == 0.0).all()
    x = np.array([-0.7, 0.2])
    g, v, gr = rp.run(x, np.zeros(0), True)
    assert g == -1
    bits_equal(gr, tf.grad(x))


def test_outputs_that_are_leaves_have_the_right_gradient():
    # the reverse sweep starts below the output and stops at the first operation:
    # an output that is itself an input (or a parameter) is never swept
    x = np.array([0.5, -1.5, 2.0])
    tf = fd.trace(lambda v: v[1], x, optimize=False)
    np.testing.assert_array_equal(tf.grad(x), [0.0, 1.0, 0.0])
    tp = fd.trace(lambda v, p: p, x, 3.0, optimize=False)
    np.testing.assert_array_equal(tp.grad(x, 4.0), [0.0, 0.0, 0.0])
    assert tp(x, 4.0) == 4.0
    # and an output computed from a leaf right below the first operation
    tq = fd.trace(lambda v: v[0] * v[2], x, optimize=False)
    np.testing.assert_array_equal(tq.grad(x), [2.0, 0.0, 0.5])


def rosen(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
    return s


@pytest.mark.parametrize("optimize", [False, True])
def test_inputs_read_in_place_and_through_the_general_path_agree(optimize):
    x = np.random.default_rng(2).uniform(-1, 1, 6)
    tf = fd.trace(rosen, x, optimize=optimize)
    v, g = tf.value_and_grad(x)
    if not optimize:
        bits_equal(g, fd.grad(rosen)(x))
    ro = x.copy()
    ro.setflags(write=False)            # read-only: read in place as well
    swapped = x.astype(">f8")           # byte-swapped: the general path converts it
    strided = np.repeat(x, 2)[::2]      # not contiguous: likewise
    listed = list(x)                    # a pytree of floats
    for y in (ro, swapped, strided):
        v2, g2 = tf.value_and_grad(y)
        assert v2 == v and g2.dtype == y.dtype
        bits_equal(g2, g)
        bits_equal(tf.grad(y), g)
        assert tf(y) == v
    v3, g3 = tf.value_and_grad(np.asarray(listed))
    assert v3 == v
    bits_equal(g3, g)


def test_a_wrong_input_length_names_the_counts():
    x = np.array([0.1, 0.2, 0.3])
    tf = fd.trace(rosen, x)
    rp = tf._paths[0].rp
    with pytest.raises(ValueError, match="expected 3 inputs and 0 parameters, got 2"):
        rp.run(np.zeros(2), np.zeros(0), True)
    with pytest.raises(ValueError, match="expected 3 inputs and 0 parameters, got 3 and 1"):
        rp.run(x, np.zeros(1), True)
    # buffers other than ndarrays still work through a memoryview
    import array
    g, v, gr = rp.run(array.array("d", x.tolist()), array.array("d"), True)
    assert g == -1 and v == tf(x)
    bits_equal(gr, tf.grad(x))


def test_scalar_and_shaped_inputs_keep_their_gradient_shape():
    t0 = fd.trace(lambda u: u * u * 3.0, 0.5)
    v, g = t0.value_and_grad(1.5)
    assert type(v) is float and type(g) is float and g == 9.0
    assert t0.grad(2.0) == 12.0 and type(t0.grad(2.0)) is float
    x = np.arange(6.0).reshape(2, 3)
    t2 = fd.trace(lambda m: m[0, 1] * m[1, 2], x)
    v, g = t2.value_and_grad(x + 1.0)
    assert v == 2.0 * 6.0
    assert g.shape == (2, 3)
    np.testing.assert_array_equal(g, [[0, 6.0, 0], [0, 0, 2.0]])
    # a constant output: zero gradient of x's shape
    tc = fd.trace(lambda m: 4.0, x)
    v, g = tc.value_and_grad(x)
    assert v == 4.0 and g.shape == (2, 3) and not g.any()


def test_batches_match_single_calls_bit_for_bit():
    # batch threads copy the tape's partials (set once) into their own buffers
    tf = fd.trace(rosen, np.zeros(5) + 0.3, optimize=False)
    X = np.random.default_rng(8).uniform(-1, 1, (40, 5))
    G = tf.grad_batch(X, threads=2)
    for i in range(len(X)):
        bits_equal(G[i], tf.grad(X[i]))
