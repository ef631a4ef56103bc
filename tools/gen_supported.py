#!/usr/bin/env python
"""The list of what fastad differentiates, generated from its registry.

    python tools/gen_supported.py --write     # rewrite docs/supported.md and the
                                              # README's summary between its markers
    python tools/gen_supported.py --check     # exit 1 when either is stale

Every array operation is one registry entry (fastad._registry): the NumPy and SciPy
callables it answers to on Vars, the Var methods it backs, its fd.<name>.  The
scalar math functions are the op table's rows, which the registry holds as
elementwise entries.  fd.special and fd.stats are listed from the modules
themselves.  So the lists cannot drift from the code: tests/test_readme.py runs
--check.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "supported.md")
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- supported: begin -->", "<!-- supported: end -->"

# the groups, in the order they are listed; a qualified name goes to the longest
# module prefix that matches
MODULES = ("numpy", "numpy.linalg", "scipy.special", "scipy.linalg")
TITLES = {"numpy": "NumPy functions and ufuncs", "numpy.linalg": "numpy.linalg",
          "scipy.special": "scipy.special (SciPy's ufuncs on Vars)",
          "scipy.linalg": "scipy.linalg", "fd.special": "fd.special",
          "fd.stats": "fd.stats distributions", "Var": "Var methods"}


def _module_of(qualified):
    """'numpy' for numpy.cumsum and numpy._core.umath.sin (NumPy's own submodules
    are written numpy.<name> by users), 'numpy.linalg' for numpy.linalg.eigh."""
    mod, _, name = qualified.rpartition(".")
    for m in sorted(MODULES, key=len, reverse=True):
        if mod == m:
            return m, name
    for m in ("numpy.linalg", "scipy.linalg", "scipy.special"):
        if mod.startswith(m + ".") or mod.startswith(m.replace(".", "._") + "."):
            return m, name
    if mod.split(".")[0] == "numpy":
        return "numpy", name
    return None, name


def collect():
    """{group: sorted names} of everything the registry and the modules declare."""
    try:
        import fastad                  # the installed one (or PYTHONPATH's)
    except ImportError:
        sys.path.insert(0, ROOT)       # else this checkout, built in place
        import fastad
    from fastad import _registry
    groups = {g: set() for g in TITLES}
    for prim in _registry.REGISTRY.values():
        for f in prim.numpy:
            group, name = _module_of(_registry.qualified_name(f))
            if group is not None:
                groups[group].add(name)
    # Var's own methods and properties (some back registry entries, some are the
    # core's: x.max() calls numpy.max, x.value reads the number)
    groups["Var"].update(n for n in dir(fastad.Var) if not n.startswith("_"))
    for sub in ("special", "stats"):
        mod = getattr(fastad, sub, None)
        if mod is not None:
            names = getattr(mod, "__all__", None) or [
                n for n in dir(mod) if not n.startswith("_")]
            groups["fd." + sub].update(names)
    if groups["fd.special"]:
        # SciPy's ufuncs of the same names dispatch to fd.special on Vars
        groups["scipy.special"].update(
            n for n in groups["fd.special"] if _is_scipy_ufunc(n))
    return {g: sorted(v) for g, v in groups.items() if v}


def _is_scipy_ufunc(name):
    try:
        import numpy as np
        import scipy.special
    except ImportError:
        return False
    return isinstance(getattr(scipy.special, name, None), np.ufunc)


def render_doc(groups):
    lines = ["# What fastad differentiates", "",
             "Generated from fastad's registry by `python tools/gen_supported.py "
             "--write`; do not edit by hand. Each name below works on fastad's "
             "values (Vars) with first and second derivatives, under `fd.trace` "
             "too; the [guide](guide/index.md) says how and where the "
             "derivative has a choice. Calling anything else on a Var raises "
             "`TypeError` naming the function.", ""]
    for g in TITLES:
        if g not in groups:
            continue
        lines += ["## %s (%d)" % (TITLES[g], len(groups[g])), "",
                  ", ".join("`%s`" % n for n in groups[g]), ""]
    return "\n".join(lines)


def render_summary(groups):
    parts = ["%d %s" % (len(groups[g]), TITLES[g].split(" (")[0]) for g in TITLES
             if g in groups]
    import textwrap
    text = ("On Vars, with first and second derivatives: %s; the full list, generated "
            "from the registry, is [docs/supported.md](docs/supported.md)."
            % ", ".join(parts))
    return textwrap.fill(text, 86, initial_indent="  ", subsequent_indent="  ")


def _replace_block(text, block):
    pat = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pat.search(text):
        raise SystemExit("gen_supported: README.md has no %s ... %s block" % (BEGIN, END))
    return pat.sub(lambda m: BEGIN + "\n" + block + "\n  " + END, text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    groups = collect()
    doc = render_doc(groups)
    with open(README) as fh:
        readme = fh.read()
    new_readme = _replace_block(readme, render_summary(groups))
    if args.write:
        with open(DOC, "w") as fh:
            fh.write(doc)
        with open(README, "w") as fh:
            fh.write(new_readme)
        return 0
    if args.check:
        old_doc = open(DOC).read() if os.path.exists(DOC) else ""
        stale = [p for p, old, new in ((DOC, old_doc, doc), (README, readme, new_readme))
                 if old != new]
        for p in stale:
            print("gen_supported: %s is stale; run python tools/gen_supported.py --write"
                  % os.path.relpath(p, ROOT))
        return 1 if stale else 0
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
