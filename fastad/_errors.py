"""The library's exception classes."""


class FastADError(Exception):
    """Base class of every error fastad raises on its own account.

    Bad argument types are ``TypeError`` and bad shapes ``ValueError``, as in
    Python and NumPy; the misuse of tapes and traces and failed gradient checks
    raise the subclasses below.
    """


class TapeError(FastADError):
    """A Var was used after its tape was reset, Vars of two live tapes were combined,
    or a tape was reset while being swept or while it belongs to a trace."""


class TraceError(FastADError):
    """A traced function cannot be replayed at an input (a guard would go the other
    way: the message names it and where it was recorded), or a file given to
    ``fd.load`` is not a valid trace."""


class GradientCheckError(FastADError):
    """``fd.check_grad`` found a gradient that disagrees with finite differences;
    the message lists the worst coordinates."""


class CompileError(FastADError):
    """``tf.compile()`` could not build machine code for a trace: no working C
    compiler (the message says which commands were tried), or a trace it cannot
    compile (one holding array operations)."""
