"""A fixture for tests written against the elementwise *record* path.

Elementwise operations stay per-element scalar slots below
fastad._arrays.ELEMENTWISE_RECORD_MIN_SIZE (256) elements, the size where records
start to win; other array operations record from RECORD_MIN_SIZE (16).  Tests that
exercise ElementwiseRecord's rules on small, cheap arrays (a (9, 8) operand, a
20-element trace) use `elementwise_records`, which lowers the elementwise
threshold to RECORD_MIN_SIZE for the test, so LARGE shapes keep meaning "one
record per op" for every kind.  tests/test_elementwise_paths.py covers the default.
"""
import pytest

from fastad import _arrays


@pytest.fixture
def elementwise_records(monkeypatch):
    monkeypatch.setattr(_arrays, "ELEMENTWISE_RECORD_MIN_SIZE", _arrays.RECORD_MIN_SIZE)
