"""tools/fuzz_trace.py's own mutations end on any input: the fuzzer edits records'
JSON, so a later edit of the same candidate reads sizes and nesting that an earlier
one wrote (a record "size" of 2**63 once made the parent search its divisors forever
and CI's fuzzer step hung; deep wrapping once raised RecursionError in the walk)."""
import os
import random
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
fuzz_trace = pytest.importorskip("fuzz_trace")


@pytest.mark.parametrize("size", [2**31 - 1, 2**63, 2**64 - 1, -1, 1.5, "6", True])
@pytest.mark.parametrize("kind", ["elementwise", "reduce", "layout", "matmul"])
def test_record_edit_ends_on_hostile_sizes(size, kind):
    r = random.Random(3)
    rec = {"kind": kind, "size": size, "base": 7, "op": "sum", "arg": [3],
           "inputs": [[1, [3]], [-1, [3], 0]], "out_shape": [3]}
    for _ in range(20):
        what = fuzz_trace.record_edit(r, [dict(rec)], 4)
        assert isinstance(what, str)


def test_record_edit_still_reshapes_plausible_records():
    r = random.Random(5)
    seen = set()
    for _ in range(50):
        rec = {"kind": "layout", "size": 12, "base": 20, "op": "reshape", "arg": [12],
               "inputs": [[1, [12]]], "out_shape": [12]}
        fuzz_trace.record_edit(r, [rec], 0)
        assert fuzz_trace._prod(rec["out_shape"]) == 12
        seen.add(tuple(rec["out_shape"]))
    assert len(seen) > 3


@pytest.mark.parametrize("n", [1, 2, 12, 97, 360, 65536, 65521])
def test_divisors(n):
    assert fuzz_trace.divisors(n) == [d for d in range(2, n + 1) if n % d == 0]


def test_json_walk_stops_at_its_depth_bound():
    deep = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    paths = list(fuzz_trace.json_paths({"records": deep}))
    assert max(len(p) for p in paths) == fuzz_trace.JSON_EDIT_DEPTH
    r = random.Random(1)
    for _ in range(30):             # edits of deep objects end, none raises
        fuzz_trace.json_edit(r, {"records": [[[[1]]]], "x": deep})
