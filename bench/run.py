"""Run fastad's benchmark suites and print their markdown tables.

    python bench/run.py              # every suite, full size; writes bench/results/
    python bench/run.py --quick      # tiny sizes, a smoke test of every code path (CI)
    python bench/run.py --suite core # one suite

A suite is a module bench/bench_NAME.py exposing `run(quick: bool) -> str`
(markdown).  Suites listed in SUITES that are not written yet are reported as
missing, not silently dropped.  Full runs write bench/results/NAME.md; quick runs
write bench/results/NAME.quick.md (ignored by git) so a smoke run never
overwrites measured tables.
"""
import argparse
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the suites import each other and _timing as plain modules

from _timing import machine_line  # noqa: E402

SUITES = ["core", "trace", "hessian", "mlp", "fit", "arrays", "compile", "gp"]


def load_suite(name):
    """The suite's module, or None when bench/bench_NAME.py does not exist."""
    if not os.path.exists(os.path.join(HERE, "bench_%s.py" % name)):
        return None
    return importlib.import_module("bench_%s" % name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and repetitions: a smoke run, numbers meaningless")
    parser.add_argument("--suite", choices=SUITES, action="append",
                        help="run only this suite (repeatable); default: all")
    args = parser.parse_args(argv)

    names = args.suite or SUITES
    results_dir = os.path.join(HERE, "results")
    os.makedirs(results_dir, exist_ok=True)
    header = "Measured %s%s." % (machine_line(), " (--quick: smoke sizes)" if args.quick else "")
    print(header + "\n")
    for name in names:
        module = load_suite(name)
        if module is None:
            print("### %s: bench/bench_%s.py not written yet, skipped\n" % (name, name))
            continue
        t0 = time.perf_counter()
        table = module.run(quick=args.quick)
        elapsed = time.perf_counter() - t0
        print(table)
        print("(suite %s took %.1f s)\n" % (name, elapsed))
        sys.stdout.flush()
        out = os.path.join(results_dir, "%s%s.md" % (name, ".quick" if args.quick else ""))
        with open(out, "w") as fh:
            fh.write(header + "\n\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
