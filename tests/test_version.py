"""The version is kept in one place, fastad/_version.py, and everything agrees with it:
fastad.__version__, pyproject.toml (which reads it), the installed package's
metadata and CHANGELOG.md's newest release."""
import importlib.metadata
import pathlib
import re

import pytest

import fastad
import fastad._version

ROOT = pathlib.Path(__file__).resolve().parent.parent
# PEP 440, the public part (N.N.N with an optional pre/post/dev release)
PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def test_version_is_one_string():
    assert isinstance(fastad.__version__, str)
    assert PEP440.match(fastad.__version__), fastad.__version__
    assert fastad.__version__ is fastad._version.__version__


def pyproject():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:                      # Python < 3.11: the two lines by hand
        project = text.split("[project]", 1)[1].split("\n[", 1)[0]
        dynamic = re.search(r"^dynamic\s*=\s*\[(.*?)\]", project, re.M)
        attr = re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"([^"]+)"\s*\}', text, re.M)
        return {
            "dynamic": re.findall(r'"([^"]+)"', dynamic.group(1)) if dynamic else [],
            "static": re.search(r"^version\s*=", project, re.M) is not None,
            "attr": attr.group(1) if attr else None,
        }
    data = tomllib.loads(text)
    return {
        "dynamic": data["project"].get("dynamic", []),
        "static": "version" in data["project"],
        "attr": data["tool"]["setuptools"]["dynamic"]["version"].get("attr"),
    }


def test_pyproject_reads_the_version_from_fastad_version():
    meta = pyproject()
    assert "version" in meta["dynamic"] and not meta["static"]
    assert meta["attr"] == "fastad._version.__version__"


def test_no_other_copy_of_the_version():
    # a second literal (in __init__.py, setup.py, ...) is what drifts
    sources = list((ROOT / "fastad").glob("*.py")) + [ROOT / "setup.py"]
    sources = [p for p in sources if p.exists() and p.name != "_version.py"]
    if not sources:
        pytest.skip("no fastad/ sources beside the tests (an installed wheel is tested)")
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*__version__\s*=", text, re.M), path
        assert not re.search(r"\bversion\s*=\s*['\"]\d", text), path


def test_installed_metadata_agrees():
    try:
        dist = importlib.metadata.distribution("fastad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastad is not installed (built in place): no metadata to compare")
    assert dist.version == fastad.__version__, (
        "installed metadata says %s, fastad.__version__ is %s: reinstall "
        "(pip install -e .)" % (dist.version, fastad.__version__))


def test_changelog_has_the_current_release():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^## Unreleased$", text, re.M), "CHANGELOG.md: no Unreleased section"
    releases = re.findall(r"^## (\d\S*)", text, re.M)
    assert releases, "CHANGELOG.md has no release heading"
    if re.match(r"^\d+(\.\d+)*$", fastad.__version__):
        # a final release: it is the newest one the changelog describes
        assert releases[0] == fastad.__version__, (releases[0], fastad.__version__)
