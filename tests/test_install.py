"""`pip install .` into a fresh venv gives an importable wsexec and workers and working console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from werkzeug.security import check_password_hash

from tests.helpers import ROOT

SOURCES = ("pyproject.toml", "README.md", "wsexec", "workers")  # what the sdist holds: no tests, no checkout


def run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed, with its output in the failure message."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{cmd}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_pip_install_into_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # Offline: the dependencies, pip and the build backend come from this venv's site-packages as a plain path entry,
    # so none of its .pth files (this checkout's editable install) take part.
    (site / "deps-from-the-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
        "--no-build-isolation", ".", cwd=source)
    shutil.rmtree(source)  # the install must not need the source tree any more

    where = run(venv / "bin/python", "-c", "import wsexec, workers, wsexec.app, wsexec.testing, workers.worker; "
                "print(wsexec.__file__, workers.__file__)", cwd=tmp_path).stdout.split()
    assert [Path(p).parent.parent for p in where] == [site, site]
    packages = ("wsexec", "workers")
    shipped = {p.relative_to(site).as_posix() for pkg in packages for p in (site / pkg).rglob("*.py")}
    in_repo = {p.relative_to(ROOT).as_posix() for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    assert shipped == in_repo
    console = {p.relative_to(site).as_posix() for p in (site / "wsexec/ui/static").rglob("*") if p.is_file()}
    assert console == {p.relative_to(ROOT).as_posix() for p in (ROOT / "wsexec/ui/static").rglob("*") if p.is_file()}
    assert "wsexec/ui/static/vendor/xterm/LICENSE" in console  # the page, its scripts, the libraries and licences

    digest = run(venv / "bin/wsexec-auth", "hash", "s3cret", cwd=tmp_path).stdout.strip()
    assert check_password_hash(digest, "s3cret")
    usage = run(venv / "bin/wsexec-worker", "--help", cwd=tmp_path).stdout
    assert "--burst" in usage
    usage = run(venv / "bin/wsexec", "--help", cwd=tmp_path).stdout  # the command-line client
    assert "run" in usage.split() and "Exit codes" in usage
