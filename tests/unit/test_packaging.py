"""pyproject's dependencies and requirements.txt (the pinned lock that deployments install) stay in step."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent.parent


def pins(path: Path) -> dict[str, str]:
    """name -> pinned version of a requirements file (every line `name==version`)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version.strip()
    return found


def test_requirements_txt_pins_exactly_what_the_project_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [Requirement(r) for r in project["project"]["dependencies"] + project["build-system"]["requires"]]
    locked = pins(ROOT / "requirements.txt")
    assert {canonicalize_name(r.name) for r in declared} == set(locked)
    for requirement in declared:
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)]), requirement


def test_dev_requirements_are_pinned_and_apart_from_the_runtime_ones() -> None:
    assert not set(pins(ROOT / "requirements-dev.txt")) & set(pins(ROOT / "requirements.txt"))


def test_the_console_files_are_package_data() -> None:
    """`pip install .` ships the console (tests/test_install.py compares what it installs with the checkout)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "ui/static/**/*" in project["tool"]["setuptools"]["package-data"]["wsexec"]
    assert (ROOT / "wsexec" / "ui" / "static" / "index.html").is_file()
