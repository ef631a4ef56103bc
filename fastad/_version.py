"""The package version, in one place.

pyproject.toml reads it (``[tool.setuptools.dynamic]``, without importing fastad) and
``fastad.__version__`` is this string; CHANGELOG.md has a section per release.
"""
__version__ = "0.1.0"
