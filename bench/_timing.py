"""Timing and reporting helpers shared by the benchmark suites in bench/.

Every suite times with `best_of`: the minimum over several repetitions of
time.perf_counter().  On a shared machine the minimum is the least disturbed
measurement (interference only ever adds time); the median is kept alongside so a
reader can see how noisy a run was.  The garbage collector stays on, as in real use:
peers that build object graphs (micrograd, autograd) pay for their cycles.
"""
import os
import platform
import sys
import time
from datetime import date


def best_of(fn, reps, warmup=1):
    """(best, median) seconds per call of fn() over `reps` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[0], times[len(times) // 2]


def fmt_time(seconds):
    """A duration with a unit that keeps three significant digits readable."""
    if seconds < 1e-3:
        return "%.1f us" % (seconds * 1e6)
    if seconds < 1.0:
        return "%.2f ms" % (seconds * 1e3)
    return "%.2f s" % seconds


def fmt_ratio(r):
    return "%.1fx" % r if r < 100 else "%.0fx" % r


def installed_version(module_name):
    """The version of an importable module, or None when it is not installed."""
    try:
        mod = __import__(module_name)
    except Exception:  # a broken install counts as missing, and says so below
        return None
    version = getattr(mod, "__version__", None)
    if version is None:  # micrograd and autograd do not set __version__
        from importlib import metadata
        try:
            version = metadata.version(module_name)
        except metadata.PackageNotFoundError:
            version = "?"
    return version


def machine_line():
    """One line naming the date, machine and interpreter, for every results table."""
    return "%s, %d-core %s, Python %s, %s" % (
        date.today().isoformat(), os.cpu_count() or 0, platform.machine(),
        platform.python_version(), sys.platform)


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)
