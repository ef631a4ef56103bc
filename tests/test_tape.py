"""The Tape API of API.md section 2 (and the Var basics of section 1) for scalar and
array leaves: variable, gradient over nested sources, repeated gradients, nesting,
reset and the generation check, mixing tapes, len/nbytes, wengert/to_dot/print."""
import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import fastad as fd
from fastad import _tape


def _slot_ops(tape):
    return tape._slot_arrays()[0]


# ----------------------------------------------------------------------------------
# variable

@pytest.mark.parametrize("value", [0.5, -3, True, False, np.float64(1.25), np.int32(7),
                                   np.array(2.5), np.bool_(True)])
def test_scalar_variable_is_a_float_valued_var(value):
    with fd.Tape() as tape:
        x = tape.variable(value)
    assert type(x) is fd.Var
    assert type(x.value) is float and x.value == float(value)
    assert x.shape == () and x.ndim == 0 and x.size == 1
    with pytest.raises(TypeError, match="drop its derivative"):
        float(x)                   # would escape the tape: API.md 14
    assert tape.gradient(x, x) == 1.0
    assert type(tape.gradient(x, x)) is float


@pytest.mark.parametrize("value", [[1, 2, 3], (0.5, 1.5), np.arange(6).reshape(2, 3),
                                   np.array([True, False]), np.ones((2, 1, 2), np.float32)])
def test_array_variable(value):
    with fd.Tape() as tape:
        x = tape.variable(value)
    want = np.asarray(value, dtype=np.float64)
    assert type(x) is fd.Var
    assert x.shape == want.shape and x.ndim == want.ndim and x.size == want.size
    assert isinstance(x.value, np.ndarray) and x.value.dtype == np.float64
    np.testing.assert_array_equal(x.value, want)
    assert len(x) == want.shape[0]
    assert not x.value.flags.writeable
    with pytest.raises(ValueError):
        x.value[(0,) * x.ndim] = 5.0
    assert len(tape) == want.size      # one leaf slot per element


def test_array_variable_copies_its_input():
    a = np.array([1.0, 2.0])
    with fd.Tape() as tape:
        x = tape.variable(a)
    a[0] = 99.0
    assert x.value[0] == 1.0


@pytest.mark.parametrize("bad, kind", [(1 + 2j, "complex"), ("1.0", "str"), (None, "NoneType"),
                                       (np.array([1j]), "complex"), (object(), "object"),
                                       (b"1", "bytes"), ({"a": 1}, "dict")])
def test_variable_rejects_non_numbers_naming_the_argument(bad, kind):
    tape = fd.Tape()
    with pytest.raises(TypeError, match="value") as e:
        tape.variable(bad)
    assert kind in str(e.value) or "complex" in str(e.value)
    assert len(tape) == 0


@pytest.mark.parametrize("bad", [1j, "x", None, object(), [1, "a"]])
def test_operations_reject_non_numbers(bad):
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        n = len(tape)
        for op in (lambda: x + bad, lambda: bad * x, lambda: x ** bad, lambda: fd.sin(bad),
                   lambda: fd.hypot(x, bad), lambda: fd.maximum(bad, x)):
            with pytest.raises(TypeError):
                op()
    assert len(tape) == n


def test_var_cannot_be_constructed_directly():
    with pytest.raises(TypeError, match="tape.variable"):
        fd.Var(1.0)


def test_repr():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        w = tape.variable([1.0, 2.0])
    assert repr(x) == "Var(0.5)"
    assert repr(w) == "Var([1., 2.])"
    r = repr(tape)
    assert "fastad.Tape" in r and "3 operations" in r


# ----------------------------------------------------------------------------------
# gradient

def _example():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        w = tape.variable(np.array([1.0, 2.0, 3.0]))
        y = fd.sin(x) * fd.sum(w * x) + 3.0
    gx = math.cos(0.5) * 3.0 + math.sin(0.5) * 6.0
    gw = math.sin(0.5) * 0.5 * np.ones(3)
    return tape, x, w, y, gx, gw


def test_gradient_of_api_example():
    tape, x, w, y, gx, gw = _example()
    assert y.value == pytest.approx(math.sin(0.5) * 3.0 + 3.0, rel=1e-15)
    g = tape.gradient(y, x)
    assert type(g) is float and g == pytest.approx(gx, rel=1e-14)
    g = tape.gradient(y, [x, w])
    assert type(g) is list and len(g) == 2
    assert g[0] == pytest.approx(gx, rel=1e-14)
    assert isinstance(g[1], np.ndarray) and g[1].shape == (3,)
    np.testing.assert_allclose(g[1], gw, rtol=1e-14)


def test_gradient_mirrors_nested_sources():
    tape, x, w, y, gx, gw = _example()
    g = tape.gradient(y, {"x": x, "rest": (w, [x, {"again": w}]), "empty": []})
    assert set(g) == {"x", "rest", "empty"}
    assert g["empty"] == []
    assert type(g["rest"]) is tuple and type(g["rest"][1]) is list
    assert g["x"] == pytest.approx(gx) and g["rest"][1][0] == pytest.approx(gx)
    np.testing.assert_allclose(g["rest"][0], gw)
    np.testing.assert_allclose(g["rest"][1][1]["again"], gw)
    assert tape.gradient(y, ()) == ()
    assert tape.gradient(y, (x,)) == (pytest.approx(gx),)
    od = tape.gradient(y, OrderedDict([("b", x), ("a", x)]))
    assert set(od) == {"a", "b"}


def test_sources_the_target_does_not_depend_on_get_zeros():
    with fd.Tape() as tape:
        early = tape.variable(1.0)
        early_arr = tape.variable(np.ones((2, 2)))
        x = tape.variable(2.0)
        y = x * x
        late = tape.variable(5.0)            # recorded after the target
        late_arr = tape.variable(np.ones(3))
        late_use = late * x
    g = tape.gradient(y, [early, early_arr, x, late, late_arr, late_use])
    assert g[0] == 0.0 and type(g[0]) is float
    assert isinstance(g[1], np.ndarray) and g[1].shape == (2, 2) and not g[1].any()
    assert g[2] == 4.0
    assert g[3] == 0.0
    assert g[4].shape == (3,) and not g[4].any()
    assert g[5] == 0.0
    assert all(v is not None for v in g)


def test_gradient_of_an_element_with_respect_to_its_array():
    with fd.Tape() as tape:
        x = tape.variable(np.array([1.0, 2.0, 3.0]))
        e = x[1]
        m = tape.variable(np.arange(6.0).reshape(2, 3))
        f = m[1, 2] * m[0, 1]
    np.testing.assert_array_equal(tape.gradient(e, x), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(tape.gradient(f, m), [[0, 5, 0], [0, 0, 1]])


def test_repeated_gradient_calls_with_different_targets_and_sources():
    with fd.Tape() as tape:
        x = tape.variable(3.0)
        y = tape.variable(4.0)
        a = x * y
        b = fd.sin(x) + y * y
        c = a * b
    for _ in range(3):    # the same answers every time: adjoints are cleared between calls
        assert tape.gradient(a, [x, y]) == [4.0, 3.0]
        assert tape.gradient(b, y) == 8.0
        assert tape.gradient(b, x) == pytest.approx(math.cos(3.0))
        bv = math.sin(3.0) + 16.0
        assert tape.gradient(c, [x, y]) == [pytest.approx(4.0 * bv + 12.0 * math.cos(3.0)),
                                            pytest.approx(3.0 * bv + 12.0 * 8.0)]
        assert tape.gradient(c, a) == pytest.approx(bv)
    # recording more after a gradient call, then differentiating again
    with tape:
        d = c + x
    assert tape.gradient(d, x) == pytest.approx(tape.gradient(c, x) + 1.0)


def test_gradient_argument_errors():
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        w = tape.variable(np.ones(2))
        y = x * 2.0
    with pytest.raises(TypeError, match="target"):
        tape.gradient(1.0, x)
    with pytest.raises(TypeError, match="target"):
        tape.gradient(None, x)
    with pytest.raises(ValueError, match="target must be a scalar"):
        tape.gradient(w * 2.0, x)
    for bad in (1.0, None, "x", [x, 2.0], {"a": np.ones(2)}):
        with pytest.raises(TypeError, match="sources"):
            tape.gradient(y, bad)


def test_gradient_of_a_leaf_and_of_a_constant_expression():
    with fd.Tape() as tape:
        x = tape.variable(2.0)
        y = tape.variable(3.0)
        k = x * 0.0 + 1.0
    assert tape.gradient(x, [x, y]) == [1.0, 0.0]
    assert tape.gradient(k, x) == 0.0


def test_zero_adjoint_branches_do_not_turn_inf_into_nan():
    # sqrt'(0) = inf multiplied by an exact zero adjoint contributes nothing
    with fd.Tape() as tape:
        x = tape.variable(0.0)
        y = 0.0 * fd.sqrt(x) + x
    assert tape.gradient(y, x) == 1.0


def test_shared_subexpressions_accumulate():
    with fd.Tape() as tape:
        x = tape.variable(1.5)
        s = fd.sin(x)
        y = s * s + s
    assert tape.gradient(y, x) == pytest.approx((2 * math.sin(1.5) + 1) * math.cos(1.5))


# ----------------------------------------------------------------------------------
# Active tapes and nesting

def test_operations_record_on_the_tape_of_their_operands():
    outer_before = _tape.current_tape()
    with fd.Tape() as outer:
        assert _tape.current_tape() is outer
        x = outer.variable(2.0)
        with fd.Tape() as inner:
            assert _tape.current_tape() is inner
            y = inner.variable(3.0)
            z = y * y
            u = x * 5.0           # x belongs to outer: recorded on outer
        assert _tape.current_tape() is outer
        v = x * x
    assert _tape.current_tape() is outer_before
    assert z.tape is inner and u.tape is outer and v.tape is outer
    assert len(inner) == 2 and len(outer) == 3
    assert outer.gradient(u, x) == 5.0
    assert outer.gradient(v, x) == 4.0
    assert inner.gradient(z, y) == 6.0


def test_active_stack_is_restored_after_an_exception():
    before = _tape.current_tape()
    with pytest.raises(KeyError):
        with fd.Tape():
            with fd.Tape():
                raise KeyError("boom")
    assert _tape.current_tape() is before


def test_variable_works_without_with_and_keeps_the_tape_alive():
    def make():
        t = fd.Tape()
        return t.variable(2.0) * 3.0
    y = make()
    import gc
    gc.collect()
    with y.tape:
        z = y * y
    assert z.value == 36.0
    assert y.tape.gradient(z, y) == 12.0


def test_tape_reentered_is_fine():
    tape = fd.Tape()
    with tape:
        x = tape.variable(1.0)
    with tape:
        y = x + 1.0
    assert tape.gradient(y, x) == 1.0


# ----------------------------------------------------------------------------------
# reset, generations, mixing tapes

def test_reset_then_old_vars_raise_tape_error():
    tape = fd.Tape()
    with tape:
        x = tape.variable(1.5)
        w = tape.variable(np.ones(3))
        y = x * x
    nbytes = tape.nbytes
    tape.reset()
    assert len(tape) == 0
    assert tape.nbytes == nbytes                       # memory kept for reuse
    stale_uses = [
        lambda: x + 1.0, lambda: 1.0 + x, lambda: x * y, lambda: -x, lambda: abs(x),
        lambda: x ** 2, lambda: 2.0 ** x, lambda: fd.sin(x), lambda: fd.hypot(x, 1.0),
        lambda: x < 1.0, lambda: x == y, lambda: w[0], lambda: w[1:], lambda: w + 1.0,
        lambda: fd.sum(w), lambda: fd.stack([x, x]), lambda: tape.gradient(y, x),
        lambda: bool(x), lambda: int(x), lambda: list(w),
    ]
    for use in stale_uses:
        with pytest.raises(fd.TapeError, match="reset"):
            use()
    assert len(tape) == 0 and tape.guards == []
    # values stay readable: they are cached in the Var
    assert x.value == 1.5 and y.value == 2.25
    # the tape records afresh after reset
    with tape:
        x2 = tape.variable(4.0)
        y2 = fd.sqrt(x2)
    assert tape.gradient(y2, x2) == 0.25
    with pytest.raises(fd.TapeError):
        tape.gradient(y2, x)
    with pytest.raises(fd.TapeError):
        x2 + x


def test_tape_error_is_a_fastad_error():
    assert issubclass(fd.TapeError, fd.FastADError)


def test_vars_of_two_live_tapes_cannot_be_combined():
    with fd.Tape() as t1:
        a = t1.variable(1.0)
        arr = t1.variable(np.ones(2))
    with fd.Tape() as t2:
        b = t2.variable(2.0)
        barr = t2.variable(np.ones(2))
    n1, n2 = len(t1), len(t2)
    mixes = [lambda: a + b, lambda: b * a, lambda: a ** b, lambda: fd.arctan2(a, b),
             lambda: fd.maximum(b, a), lambda: a < b, lambda: a == b, lambda: arr + b,
             lambda: a * barr, lambda: arr * barr, lambda: fd.stack([a, b]),
             lambda: fd.concatenate([arr, barr]), lambda: t1.gradient(b, a),
             lambda: t1.gradient(a, b), lambda: t1.gradient(a, [a, {"k": b}])]
    for mix in mixes:
        with pytest.raises(fd.TapeError, match="another tape"):
            mix()
    assert len(t1) == n1 and len(t2) == n2


# ----------------------------------------------------------------------------------
# len, nbytes, wengert, to_dot, print

def test_len_counts_recorded_operations():
    tape = fd.Tape()
    assert len(tape) == 0
    with tape:
        x = tape.variable(1.0)
        assert len(tape) == 1
        y = x
        for _ in range(10):
            y = y * 1.5 + 1.0
        assert len(tape) == 21
        w = tape.variable(np.ones(4))
        assert len(tape) == 25


def test_nbytes_grows_by_doubling_and_covers_the_slots():
    tape = fd.Tape()
    base = tape.nbytes
    assert base > 0
    with tape:
        x = tape.variable(1.0)
        for _ in range(5000):
            x = x + 1.0
    assert tape.nbytes >= len(tape) * _tape.SLOT_BYTES
    # doubling: capacity is at most ~2x what is used (plus the initial block)
    assert tape.nbytes <= 2 * (len(tape) + 1) * _tape.SLOT_BYTES + base
    before = tape.nbytes
    tape.gradient(x, x)
    assert tape.nbytes >= before         # the adjoint buffer is counted too


def test_wengert_list_one_line_per_operation():
    with fd.Tape() as tape:
        x = tape.variable(0.5)
        y = tape.variable(2.0)
        a = fd.sin(x)
        b = a * y
        c = b + 3.0
        d = 1.0 - c
    text = tape.wengert()
    lines = text.splitlines()
    assert len(lines) == len(tape) == 6
    assert re.match(r"v1\s+= var\s+-> 0\.5$", lines[0])
    assert re.match(r"v3\s+= sin\(v1\)", lines[2])
    assert re.match(r"v4\s+= multiply\(v3, v2\)", lines[3])
    assert re.match(r"v5\s+= add\(v4, 3\.0\)", lines[4])
    assert re.match(r"v6\s+= subtract\(1\.0, v5\)", lines[5])
    assert lines[2].endswith(repr(math.sin(0.5))[:10]) or \
        float(lines[2].split("->")[1]) == a.value
    for line, v in zip(lines, (x, y, a, b, c, d)):
        assert float(line.split("->")[1]) == v.value     # %.17g round-trips
    assert str(tape) == text


def test_print_tape(capsys):
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        fd.exp(x)
    print(tape)
    out = capsys.readouterr().out
    assert "exp(v1)" in out and out.count("\n") == 2


def test_to_dot_is_graphviz_text_of_the_graph():
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        y = tape.variable(2.0)
        z = fd.arctan2(x, y)
        w = z * 4.0
    dot = tape.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    for i in range(1, 5):
        assert re.search(r"\bv%d \[label=" % i, dot)
    edges = set(re.findall(r"(v\d+) -> (v\d+);", dot))
    assert edges == {("v1", "v3"), ("v2", "v3"), ("v3", "v4")}
    assert "arctan2" in dot and "multiply" in dot


def test_empty_tape_renders():
    tape = fd.Tape()
    assert tape.wengert() == ""
    assert tape.to_dot().startswith("digraph")
    assert len(tape) == 0


# ----------------------------------------------------------------------------------
# Var basics used with the tape

def test_comparisons_return_plain_bools():
    with fd.Tape() as tape:
        x = tape.variable(1.0)
        y = tape.variable(2.0)
        w = tape.variable(np.array([0.0, 3.0]))
    assert (x < y) is True and (x > y) is False and (x <= 1.0) is True
    assert (x >= 1) is True and (x == 1.0) is True and (x != y) is True
    assert (2.0 > x) is True and (1.0 == x) is True
    assert bool(x) is True
    out = w > 1.0
    assert isinstance(out, np.ndarray) and out.dtype == bool
    np.testing.assert_array_equal(out, [False, True])
    if x < y:
        branch = x * 2.0
    else:
        branch = y * 2.0
    assert tape.gradient(branch, [x, y]) == [2.0, 0.0]


def test_equality_with_non_numbers_is_false_not_an_error():
    with fd.Tape() as tape:
        x = tape.variable(1.0)
    assert (x == None) is False and (x != None) is True      # noqa: E711
    assert (x == "1.0") is False and (None == x) is False   # noqa: E711
    assert x in [None, "a", 1.0] and x not in [None, "a"]
    for bad in (None, "a", 1j):
        with pytest.raises(TypeError):
            x < bad
    with pytest.raises(TypeError):
        x >= None


def test_array_var_indexing_len_iteration():
    with fd.Tape() as tape:
        x = tape.variable(np.array([1.0, 2.0, 3.0]))
        m = tape.variable(np.arange(6.0).reshape(2, 3))
    assert len(x) == 3 and x.shape == (3,)
    items = list(x)
    assert [type(i) for i in items] == [fd.Var] * 3
    assert [i.value for i in items] == [1.0, 2.0, 3.0]
    assert x[-1].value == 3.0 and x[0].shape == ()
    assert m[1, 2].value == 5.0 and m[1].shape == (3,) and len(m) == 2
    np.testing.assert_array_equal(m[:, 1].value, [1.0, 4.0])
    for bad in (3, -4, 10 ** 12):
        with pytest.raises(IndexError):
            x[bad]
    with pytest.raises(IndexError):
        m[2, 0]
    with pytest.raises(TypeError):
        len(x[0])
    with pytest.raises(TypeError):
        iter(x[0])
    with pytest.raises(TypeError):
        x[0][0]
    with pytest.raises(TypeError):
        x[0] = 1.0
    s = sum(x[i] * x[i] for i in range(len(x)))
    np.testing.assert_array_equal(tape.gradient(s, x), [2.0, 4.0, 6.0])
