"""The per-thread pool of scratch tapes behind fd.grad, fd.hessian and fd.trace.

Below both the functional API (fastad._functional, fastad._forward) and tracing
(fastad._trace), which record on these tapes; fd.release_memory empties the pool.
"""
import contextlib
import threading

from fastad._tape import Tape

_pool = threading.local()


def current_level():
    """The scratch tape of the innermost functional call recording in this thread
    (an inner fd.grad records on it: fastad._nest), or None."""
    levels = getattr(_pool, "levels", None)
    return levels[len(levels) - 1] if levels else None


class _scratch_tape:
    """A tape for one call, taken from a per-thread pool and reset afterwards.

    Reusing tapes keeps their grown arrays: the second call of fd.grad(f) on a
    large function allocates nothing.  Calls may nest (f may call fd.grad itself);
    each level takes its own tape.  A class rather than a generator-based
    context manager: entering and leaving is on every fd.grad call, and this
    costs a third of what contextlib's machinery does (~0.4 us vs ~1.3 us).
    """
    __slots__ = ("tape", "levels")

    def __enter__(self):
        idle = getattr(_pool, "idle", None)
        if idle is None:
            idle = _pool.idle = []
        tape = self.tape = idle.pop() if idle else Tape()
        levels = self.levels = getattr(_pool, "levels", None)
        if levels is None:
            levels = self.levels = _pool.levels = []
        levels.append(tape)
        try:
            tape.__enter__()
        except BaseException:
            levels.pop()
            raise
        return tape

    def __exit__(self, *exc):
        tape = self.tape
        try:
            tape.__exit__(*exc)
        finally:
            self.levels.pop()
            tape._recycle()   # reset, and shrink after a peak far above this call
            idle = getattr(_pool, "idle", None)
            if idle is None:
                idle = _pool.idle = []
            if len(idle) < 4:
                idle.append(tape)
        return False


@contextlib.contextmanager
def recording_level(tape):
    """Record on `tape` (fd.vjp's own tape, kept for vjp_fn) as a transformation
    level: a transformation called inside records on it too (fastad._nest)."""
    levels = getattr(_pool, "levels", None)
    if levels is None:
        levels = _pool.levels = []
    levels.append(tape)
    try:
        with tape:
            yield tape
    finally:
        levels.pop()
