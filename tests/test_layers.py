"""The house's layering, checked from the source: where the C headers are declared
to Cython, and (below) which fastad module may import which.

These tests read fastad/'s source files, nothing is imported or built.
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fastad")


def _sources(exts):
    return sorted(f for f in os.listdir(PKG) if f.endswith(exts))


def test_the_op_table_headers_are_declared_to_cython_once():
    # fastad_ops.h and fastad_vec.h are declared in fastad/_core.pxd (which includes
    # the generated list of op codes, _op_codes.pxi) and nowhere else: a second
    # declaration could drift from the first without any compiler noticing
    pattern = re.compile(r'cdef\s+extern\s+from\s+"(fastad_\w+\.h)"')
    where = {}
    for name in _sources((".pyx", ".pxd", ".pxi")):
        with open(os.path.join(PKG, name)) as f:
            for header in pattern.findall(f.read()):
                where.setdefault(header, set()).add(name)
    assert where.get("fastad_ops.h", set()) - {"_op_codes.pxi"} == {"_core.pxd"}, where
    assert where.get("fastad_vec.h") == {"_core.pxd"}, where
    assert set(where) == {"fastad_ops.h", "fastad_vec.h"}, where
    with open(os.path.join(PKG, "_core.pxd")) as f:
        assert 'include "_op_codes.pxi"' in f.read()
