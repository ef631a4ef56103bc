"""Hostile inputs, each scenario in a child interpreter that must exit normally.

A crash (a segfault, an abort, a C-level stack overflow) would take pytest down
with it, so every scenario runs under `sys.executable -c`; the parent asserts the
child's return code is 0 (a negative code means it died by a signal) and that it
reached its last line.  Inside the child, each hostile input must give the
documented outcome: TypeError/ValueError/IndexError for bad arguments, TapeError
for stale or mixed Vars, NaN/inf following NumPy, correct numbers otherwise.
"""
import textwrap

import _child


PRELUDE = textwrap.dedent('''
    import math, sys
    import numpy as np
    import fastad as fd

    def expect(exc, fn, match=None):
        try:
            fn()
        except exc as e:
            if match is not None and match not in str(e):
                raise AssertionError("%r does not mention %r" % (e, match))
            return e
        except BaseException as e:
            raise AssertionError("expected %s, got %r" % (exc.__name__, e))
        raise AssertionError("expected %s, nothing raised" % exc.__name__)
''')


def run_child(body, timeout=300):
    return _child.run_child(body, timeout, prelude=PRELUDE)


def test_nan_and_inf_inputs():
    run_child('''
        nan, inf = math.nan, math.inf
        with fd.Tape() as tape:
            n = tape.variable(nan)
            p = tape.variable(inf)
            q = tape.variable(-inf)
            arr = tape.variable(np.array([nan, inf, -inf, 0.0, -0.0, 5e-324, 1.8e308]))
            outs = []
            for name in ["sin", "exp", "log", "sqrt", "tanh", "sigmoid", "softplus",
                         "arctan", "erf", "abs", "floor", "relu", "cbrt", "expm1"]:
                f = getattr(fd, name)
                for v in (n, p, q):
                    outs.append(f(v))
                outs.append(fd.sum(f(arr)))
            for f in (fd.hypot, fd.arctan2, fd.maximum, fd.minimum, fd.power):
                for a in (n, p, q):
                    for b in (n, p, q, 0.0, 1.0):
                        outs.append(f(a, b))
                        outs.append(f(b, a))
            outs += [p - p, p * 0.0, n / 0.0, p / p, n ** 0.0, 1.0 ** n, p % 2.0,
                     p // 2.0, 2.0 % p, -p, q ** 2]
        assert math.isnan(fd.sin(inf)) and fd.exp(-inf) == 0.0 and fd.exp(inf) == inf
        assert math.isnan((p - p).value) and (n ** 0.0).value == 1.0
        for o in outs:
            srcs = [n, p, q, arr]
            g = tape.gradient(o if o.shape == () else fd.sum(o), srcs)
            assert len(g) == 4 and g[3].shape == (7,)
        g = tape.gradient(fd.sum(arr * 2.0), arr)
        assert (g == 2.0).all()
        # NaN leaves do not leak into unrelated gradients
        with fd.Tape() as t2:
            a = t2.variable(nan)
            b = t2.variable(2.0)
            y = b * b
            z = a * b
        assert t2.gradient(y, [a, b]) == [0.0, 4.0]
        ga, gb = t2.gradient(z, [a, b])
        assert ga == 2.0 and math.isnan(gb)
        v, g = fd.value_and_grad(lambda x: fd.sum(fd.log(x)))(np.array([nan, inf, 0.0, -1.0]))
        assert math.isnan(v) and math.isnan(g[0]) and g[1] == 0.0 and g[2] == inf
    ''')


def test_strings_none_complex_and_objects():
    run_child('''
        bad_values = ["1.0", b"1", None, 1j, np.complex128(1), np.array([1j]),
                      object(), np.array(["a"]), np.array([None]), [1, "x"],
                      np.datetime64("2020-01-01"), {1, 2}, fd, Ellipsis]
        with fd.Tape() as tape:
            x = tape.variable(1.0)
            w = tape.variable(np.ones(3))
            n0 = len(tape)
            for bad in bad_values:
                expect(TypeError, lambda: tape.variable(bad), "value")
                for target in (x, w):
                    expect(TypeError, lambda: target + bad)
                    expect(TypeError, lambda: bad - target)
                    expect(TypeError, lambda: target * bad)
                    expect(TypeError, lambda: bad / target)
                    expect(TypeError, lambda: target ** bad)
                    expect(TypeError, lambda: fd.maximum(target, bad))
                    expect(TypeError, lambda: fd.arctan2(bad, target))
                expect(TypeError, lambda: fd.sin(bad))
                expect(TypeError, lambda: fd.hypot(bad, 1.0))
                expect(TypeError, lambda: tape.gradient(x, bad))
                expect(TypeError, lambda: tape.gradient(bad, x))
                expect(TypeError, lambda: fd.grad(lambda a: a)(bad), "argument 0")
                expect(TypeError, lambda: fd.grad(lambda a: bad)(1.0))
            assert len(tape) == n0       # nothing half-recorded
            expect(TypeError, lambda: pow(x, 2, 3))
            expect(TypeError, lambda: x[0])
            expect(TypeError, lambda: len(x))
            expect(TypeError, lambda: w.__setitem__(0, 1.0))
            expect(TypeError, lambda: fd.Var())
            expect(TypeError, lambda: np.asarray(w))
            expect(TypeError, lambda: w[x * 0.5])
            expect(IndexError, lambda: w[1.5])        # as NumPy
            expect(IndexError, lambda: w["a"])
            for v in (math.nan, math.inf, -math.inf, 1e300, 2.5):
                idx = tape.variable(v)
                expect(TypeError, lambda: w[idx])
            expect(ValueError, lambda: int(tape.variable(math.nan)))
            expect(OverflowError, lambda: int(tape.variable(math.inf)))
            expect(ValueError, lambda: tape.variable(10 ** 400), "too large")
            expect(ValueError, lambda: x + 10 ** 400, "too large")
        assert tape.gradient(x * 3.0, x) == 3.0
    ''')


def test_vars_from_a_reset_tape():
    run_child('''
        tape = fd.Tape()
        with tape:
            x = tape.variable(1.0)
            w = tape.variable(np.ones(4))
            y = fd.sin(x) * fd.sum(w)
        tape.reset()
        with tape:
            fresh = tape.variable(np.arange(10.0))   # reuses the same slots
            f = fd.sum(fresh * fresh)
        uses = [lambda: x + 1, lambda: y * x, lambda: fd.exp(y), lambda: w[0], lambda: w[2:],
                lambda: fd.sum(w), lambda: w * 2.0, lambda: x < y, lambda: int(x),
                lambda: bool(y), lambda: tape.gradient(y, x), lambda: tape.gradient(f, x),
                lambda: tape.gradient(f, [fresh, w]), lambda: fresh + w, lambda: x * fresh[0],
                lambda: fd.stack([x, fresh[1]]), lambda: fd.where(True, x, fresh[0]) * 1.0,
                lambda: fd.concatenate([w, fresh]), lambda: list(w), lambda: fresh[x]]
        for use in uses:
            expect(fd.TapeError, use, "reset")
        assert (tape.gradient(f, fresh) == 2 * np.arange(10.0)).all()
        # many resets: the generation check keeps working
        for i in range(1000):
            tape.reset()
            with tape:
                z = tape.variable(float(i))
                zz = z * z
            assert tape.gradient(zz, z) == 2.0 * i
        expect(fd.TapeError, lambda: zz * x)
        # Vars leaked from fd.grad's recycled scratch tapes
        leaked = []
        fd.grad(lambda a: leaked.append(a) or a * a)(2.0)
        fd.grad(lambda a: a * 3.0)(1.0)
        expect(fd.TapeError, lambda: leaked[0] + 1.0)
        expect(fd.TapeError, lambda: fd.grad(lambda a: a * leaked[0])(1.0))
    ''')


def test_a_million_operation_chain():
    run_child('''
        import time
        n = 10 ** 6
        x0 = 0.3
        # the same recurrence on floats, with its derivative by forward accumulation
        y, dy = x0, 1.0
        for i in range(n // 4):
            s, c = math.sin(y), math.cos(y)
            y, dy = s * 0.5 + 0.25, c * 0.5 * dy       # sin, mul, add
            y, dy = y * 1.0000001, dy * 1.0000001      # mul
        with fd.Tape() as tape:
            x = tape.variable(x0)
            v = x
            for i in range(n // 4):
                v = fd.sin(v) * 0.5 + 0.25
                v = v * 1.0000001
        assert len(tape) == n + 1, len(tape)
        assert v.value == y
        g = tape.gradient(v, x)
        assert abs(g - dy) <= 1e-12 * abs(dy) + 1e-300, (g, dy)
        assert tape.gradient(v, x) == g          # and again
        # the same through fd.grad, with an array argument
        def chain(a):
            acc = a[0]
            for i in range(n // 2):
                acc = acc * 0.9999999 + a[1]
            return acc
        val, ga = fd.value_and_grad(chain)(np.array([1.0, 1e-7]))
        assert np.isfinite(val) and ga.shape == (2,)
        want0 = 0.9999999 ** (n // 2)
        assert abs(ga[0] - want0) < 1e-9 and abs(ga[1] - (1 - want0) / 1e-7) < 1e-3
        tape.reset()
        assert len(tape) == 0
    ''', timeout=600)


def test_deep_nesting():
    run_child('''
        sys.setrecursionlimit(3000)
        # sources nested 100 deep (fastad._pytree.MAX_DEPTH) work; 10**5 deep raise
        # ValueError naming the limit, no crash
        with fd.Tape() as tape:
            x = tape.variable(2.0)
            y = x * x
        src = x
        for _ in range(100):
            src = [src]
        g = tape.gradient(y, src)
        for _ in range(100):
            g = g[0]
        assert g == 4.0
        deep = x
        for _ in range(10 ** 5):
            deep = [deep]
        expect(ValueError, lambda: tape.gradient(y, deep), "at most 100 levels")
        expect(ValueError, lambda: fd.grad(lambda a: 1.0)(deep), "at most 100 levels")
        deep_dict = 1.0
        for _ in range(10 ** 5):
            deep_dict = {"k": deep_dict}
        expect(ValueError, lambda: fd.grad(lambda a: 1.0)(deep_dict), "at most 100 levels")
        # tapes nested 1000 deep
        tapes = [fd.Tape() for _ in range(1000)]
        for t in tapes:
            t.__enter__()
        vs = [t.variable(float(i)) for i, t in enumerate(tapes)]
        ys = [v * v for v in vs]
        for t in reversed(tapes):
            t.__exit__(None, None, None)
        assert all(t.gradient(y, v) == 2.0 * i
                   for i, (t, y, v) in enumerate(zip(tapes, ys, vs)))
        # a long, narrow expression graph: one sum of 10**5 terms, one product
        with fd.Tape() as tape:
            w = tape.variable(np.full(10 ** 5, 1.0 + 1e-6))
            s = fd.sum(w)
            p = fd.prod(w)
        assert (tape.gradient(s, w) == 1.0).all()
        gp = tape.gradient(p, w)
        assert np.allclose(gp, p.value / w.value, rtol=1e-9)
        # exiting tapes out of order does not corrupt the stack
        a, b = fd.Tape(), fd.Tape()
        a.__enter__(); b.__enter__()
        a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        from fastad import _tape
        assert _tape.current_tape() is None
        a.__exit__(None, None, None)            # exiting twice is harmless
    ''')


def test_huge_arrays_of_leaves():
    run_child('''
        n = 10 ** 6
        x0 = np.linspace(-1.0, 1.0, n)
        with fd.Tape() as tape:
            x = tape.variable(x0)
            y = fd.sum(x * x)
        assert len(tape) >= 2 * n            # n leaves, n products, then the sum
        g = tape.gradient(y, x)
        assert g.shape == (n,) and np.array_equal(g, 2 * x0)
        g = fd.grad(lambda a: fd.sum(fd.sin(a)))(x0.reshape(1000, 1000))
        assert g.shape == (1000, 1000) and np.allclose(g.ravel(), np.cos(x0), rtol=1e-15)
        # sizes past the tape's int32 slot limit are refused before allocating
        with fd.Tape() as tape:
            w = tape.variable(np.ones(3))
            big = np.broadcast_to(1.0, (2 ** 31, 3))
            expect(MemoryError, lambda: w + big)
            expect(MemoryError, lambda: w * big)
            assert len(tape) == 3
            assert tape.gradient(fd.sum(w * 2.0), w).tolist() == [2.0, 2.0, 2.0]
        # empty arrays
        with fd.Tape() as tape:
            e = tape.variable(np.zeros((0, 3)))
            s = fd.sum(e)
            assert s.value == 0.0 and tape.gradient(s, e).shape == (0, 3)
            assert len(tape.variable(np.zeros(0))) == 0
    ''', timeout=600)


def test_mixing_tapes():
    run_child('''
        with fd.Tape() as t1:
            a = t1.variable(1.0)
            arr1 = t1.variable(np.ones(3))
        with fd.Tape() as t2:
            b = t2.variable(2.0)
            arr2 = t2.variable(np.ones(3))
        mixes = [lambda: a + b, lambda: b - a, lambda: a * arr2, lambda: arr1 / b,
                 lambda: arr1 + arr2, lambda: fd.hypot(a, b), lambda: a < b,
                 lambda: arr1 < b, lambda: fd.stack([a, b]),
                 lambda: fd.concatenate([arr1, arr2]), lambda: fd.where(True, arr1, arr2),
                 lambda: t1.gradient(b, a), lambda: t2.gradient(b, [b, a]),
                 lambda: fd.grad(lambda x: x * a)(1.0)]
        n1, n2 = len(t1), len(t2)
        for mix in mixes:
            expect(fd.TapeError, mix, "another tape")
        assert (len(t1), len(t2)) == (n1, n2)
        # t1's Vars used while t2 is active are recorded on t1
        with t2:
            c = a * 3.0
        assert c.tape is t1 and t1.gradient(c, a) == 3.0
    ''')


def test_indexing_out_of_range():
    run_child('''
        with fd.Tape() as tape:
            w = tape.variable(np.arange(5.0))
            m = tape.variable(np.arange(6.0).reshape(2, 3))
            n0 = len(tape)
            for k in (5, -6, 2 ** 31, -2 ** 31, 2 ** 62):
                expect(IndexError, lambda: w[k])
            for k in (10 ** 30, -10 ** 30, 2 ** 63, -2 ** 63 - 1, np.uint64(2 ** 63)):
                expect(IndexError, lambda: w[k])
            for k in [(2, 0), (0, 3), (-3, 0), (0, 0, 0), (10 ** 30, 0)]:
                expect(IndexError, lambda: m[k])
            expect(IndexError, lambda: w[np.array([0, 5])])
            expect(IndexError, lambda: w[np.array([True, False])])
            expect(IndexError, lambda: w[[1, -7]])
            expect(IndexError, lambda: m[5])
            expect(IndexError, lambda: tape.variable(7.0) and w[tape.variable(7.0)])
            assert len(tape) <= n0 + 2          # at most the two index leaves
            assert w[-5].value == 0.0 and w[4].value == 4.0 and m[-1, -1].value == 5.0
            assert w[10:20].shape == (0,) and w[-100:2].value.tolist() == [0.0, 1.0]
            it = iter(w)
            assert [next(it).value for _ in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]
            expect(StopIteration, lambda: next(it))
            y = w[4] * m[1, 2]
        g = tape.gradient(y, [w, m])
        assert g[0].tolist() == [0, 0, 0, 0, 5.0] and g[1][1, 2] == 4.0
    ''')


def test_no_tapeless_var_can_be_made():
    run_child('''
        import copy, pickle
        expect(TypeError, lambda: fd.Var(), "cannot be created directly")
        expect(TypeError, lambda: fd.Var(1.0), "cannot be created directly")
        expect(TypeError, lambda: fd.Var.__new__(fd.Var), "cannot be created directly")
        expect(TypeError, lambda: object.__new__(fd.Var))
        expect(TypeError, lambda: type("Sub", (fd.Var,), {}))       # final
        with fd.Tape() as tape:
            x = tape.variable(2.0)
            w = tape.variable(np.ones(3))
        # Vars are immutable: copies are the Var itself, pickling is refused
        assert copy.copy(x) is x and copy.deepcopy(w) is w
        assert copy.deepcopy({"p": [x, w]})["p"][0] is x
        expect(TypeError, lambda: pickle.dumps(x), "pickle")
        expect(TypeError, lambda: pickle.dumps(tape))
        assert not hasattr(x, "__setstate_cython__")
        with tape:
            y = copy.copy(x) * copy.deepcopy(x)
        assert tape.gradient(y, x) == 4.0
    ''')
