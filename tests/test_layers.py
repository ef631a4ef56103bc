"""The house's layering, checked from the source: where the C headers are declared
to Cython, and (below) which fastad module may import which.

These tests read fastad/'s source files, nothing is imported or built.
"""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fastad")

# Against an installed wheel (tools/run_installed_tests.py) the tests run from a copy
# with no fastad/ sources beside them; the checks of the source run on the checkout.
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(PKG, "_tape.pyx")),
                                reason="no fastad/ sources beside the tests (an "
                                       "installed wheel is tested)")


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


# ----------------------------------------------------------------------------------
# The import graph: which module may import (or cimport) which.
#
# The layer order of docs/design/array-registry.md section 5, for today's files:
# a module may import modules of lower layers, and of its own layer as long as
# that makes no cycle.  Every module of fastad/ must be listed, so that a new one
# gets a place on purpose.  Lazy imports (inside functions) count like the rest:
# they are edges all the same, only later.
LAYERS = [
    # imports nothing from fastad's other layers: errors, pytrees, C declarations, the version,
    # and the registry of array primitives (data the core reads to reach the
    # layers above it), and the plain-NumPy numerics of fd.stats's derivatives in
    # shape parameters
    {"_errors", "_pytree", "_core", "_registry", "_version", "_c_headers", "_incshape"},
    # the core: tape, Var, scalar recording and the reverse sweep
    {"_tape"},
    # Dual numbers.  The design has them beside the core (no tape import); today
    # _dual still imports _tape (Var checks, the op table, int conversion), so they
    # sit above it until that import goes.
    {"_dual"},
    # array records, and the one record class driven by a primitive's rules
    {"_arrays"},
    {"_generic"},
    # sweeps over finished tapes, replay, the scratch-tape pool
    {"_second", "_replay", "_scratch", "_optimize"},
    # sparsity kernels: dependency bit sets over the tape, graph colorings
    {"_sparsity", "_coloring"},
    # nested transformations: an inner fd.grad records on the outer level's tape
    {"_nest"},
    # array functions on top of records and slots, and their declarations
    {"_array_math", "_math", "_dual_collections", "_prims",
     "_prims_linalg", "_prims_array", "_prims_numpy_misc", "_prims_decomp",
     "_prims_scipy_linalg", "special"},
    # user-defined primitives (fd.custom_vjp / fd.custom_jvp): their rules run sweeps
    {"_custom"},
    # tracing and the trace file format (spec < file format < _trace: no cycle), and
    # the Dask mapping of batches (_trace imports it; it imports only the file format)
    {"_trace_spec", "_record_codec", "_trace_file", "_reroll", "_compile", "_sparse_plan",
     "_trace", "_distributed"},
    # the transformations and the libraries built on them
    {"_functional", "_forward", "_sparse", "nn", "optim", "_minimize"},
    # distributions (fd.stats): built on the array functions and custom primitives
    # (and on fastad.special, imported when first needed)
    {"stats", "linalg"},
    # the package: curated exports, the demo
    {"__init__", "__main__"},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}

_PY_IMPORT = re.compile(r"^\s*(?:from\s+(fastad(?:\.\w+)?)\s+c?import\s+(.+)|"
                        r"c?import\s+(fastad(?:\.\w+)?))")


def _modules():
    names = set()
    for f in os.listdir(PKG):
        stem, ext = os.path.splitext(f)
        if ext in (".py", ".pyx", ".pxd"):
            names.add(stem)
    return names


def _targets(module, names, known):
    """The fastad modules one import statement reaches."""
    if module != "fastad":
        return {module.split(".", 1)[1]}
    out = set()
    for n in re.split(r"[,\s()]+", names):
        n = n.split(" as ")[0].strip()
        if n and n != "as":
            out.add(n if n in known else "__init__")
    return out


def _imports():
    """{module: {module it imports}} for every source file of fastad/.

    Python files are parsed (docstrings and comments cannot fool it); Cython files
    are read line by line, with parenthesised name lists joined."""
    import ast
    known = _modules()
    graph = {m: set() for m in known}
    for f in sorted(os.listdir(PKG)):
        stem, ext = os.path.splitext(f)
        if ext not in (".py", ".pyx", ".pxd", ".pxi"):
            continue
        owner = ("_core" if f == "_op_codes.pxi" else
                 "_tape" if f in ("_ops.pxi", "_partials.pxi") else stem)
        with open(os.path.join(PKG, f)) as fh:
            text = fh.read()
        edges = graph.setdefault(owner, set())
        if ext == ".py":
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.module and \
                        node.level == 0 and (node.module == "fastad" or
                                             node.module.startswith("fastad.")):
                    edges |= _targets(node.module,
                                      " ".join(a.name for a in node.names), known)
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name == "fastad" or a.name.startswith("fastad."):
                            edges |= _targets(a.name, "", known) if a.name != "fastad" \
                                else {"__init__"}
            continue
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].split("#", 1)[0]
            m = _PY_IMPORT.match(line)
            if m:
                if m.group(3):
                    edges |= _targets(m.group(3), "", known) if m.group(3) != "fastad" \
                        else {"__init__"}
                else:
                    names = m.group(2)
                    while names.count("(") > names.count(")") and i + 1 < len(lines):
                        i += 1
                        names += " " + lines[i].split("#", 1)[0]
                    edges |= _targets(m.group(1), names, known)
            i += 1
    for m in graph:
        graph[m].discard(m)      # a .pyx cimports its own .pxd
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_import_graph_is_read():
    # the parser sees the edges the house is built on (a broken regex would make
    # the tests below pass vacuously)
    g = _imports()
    assert {"_tape", "_core"} <= g["_arrays"]
    assert "_core" in g["_tape"] and "_core" in g["_dual"]
    assert {"_trace_file", "_trace_spec", "_replay"} <= g["_trace"]
    assert "_trace_spec" in g["_trace_file"]
    assert "_forward" in g["_minimize"]            # lazy, inside a function
    assert "__init__" in g["__main__"]


def test_the_registry_imports_nothing_from_fastad():
    assert _imports()["_registry"] == set()


def test_every_module_has_a_layer():
    missing = sorted(set(_imports()) - set(RANK))
    assert not missing, "add these modules to LAYERS in %s: %s" % (__file__, missing)


def test_no_import_cycle():
    cycle = _cycle(_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_down_the_layers():
    wrong = sorted("%s -> %s" % (a, b) for a, bs in _imports().items() for b in bs
                   if a in RANK and b in RANK and RANK[b] > RANK[a])
    assert not wrong, "imports against the layer order: %s" % ", ".join(wrong)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_dispatch_on_record_class_names():
    # records carry their own rules (ArrayRecord.hvp / _curvature): no sweep picks a
    # rule by the record's class name
    # (nor through a variable: cls = type(rec).__name__; if cls == ...); naming a
    # record in an error message is fine
    pattern = re.compile(r"type\(rec\)\.__name__\s*(==|in\b|\n)|=\s*type\(rec\)\.__name__")
    for name in _sources((".py", ".pyx")):
        with open(os.path.join(PKG, name)) as f:
            assert not pattern.search(f.read()), name
