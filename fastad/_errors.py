"""The library's exception classes (API.md section 9)."""


class FastADError(Exception):
    """Base class of every error fastad raises on its own account."""


class TapeError(FastADError):
    """A Var was used after its tape was reset, or Vars of two tapes were combined."""


class TraceError(FastADError):
    """A traced function cannot be replayed: a guard failed or a file is invalid."""


class GradientCheckError(FastADError):
    """fd.check_grad found a gradient that disagrees with finite differences."""
