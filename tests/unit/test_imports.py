"""The shape of the code: no import cycles, workers/ without Flask, one reader of os.environ, tests/ imported by
no one else. Read from the source (ast) and checked by importing each module first in a clean interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("wsexec", "workers")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported(path: Path) -> Iterator[tuple[str, bool]]:
    """(module, at import time?) for every import in the file, lazy ones (inside a function) included."""
    tree = ast.parse(path.read_text())
    lazy = {id(node) for func in ast.walk(tree) if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(func)}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            # `from wsexec import context` imports the submodule wsexec.context
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            yield name, id(node) not in lazy


def graph(eager_only: bool) -> dict[str, set[str]]:
    """Our module -> our modules it imports (a parent package is no edge: importing wsexec.x runs wsexec first)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges[name] = {dep for dep, eager in imported(path) if dep in MODULES and dep != name
                       and not name.startswith(f"{dep}.") and (eager or not eager_only)}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from where the walk met it)."""
    found, done, path = [], set(), []

    def visit(node: str) -> None:
        if node in path:
            found.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        path.append(node)
        for dep in sorted(edges[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)
    return found


def test_no_import_cycles_not_even_through_lazy_imports() -> None:
    assert cycles(graph(eager_only=False)) == []


def test_every_module_imports_first_in_a_clean_interpreter() -> None:
    """A cycle that only import order hides breaks when the module that closes it is imported first."""
    script = (
        "import importlib, sys\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ('wsexec', 'workers')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_workers_never_import_flask() -> None:
    eager = graph(eager_only=True)
    reached, todo = set(), [name for name in MODULES if name.split(".")[0] == "workers"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += eager[name]
    uses_flask = {name for name in reached for dep, _ in imported(MODULES[name])
                  if dep.split(".")[0] in ("flask", "flask_smorest", "flask_httpauth")}
    assert uses_flask == set()


def reads_environment(node: ast.AST) -> bool:
    """os.environ or os.getenv, or either imported from os."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == "os" and node.attr in ("environ", "getenv")
    if isinstance(node, ast.ImportFrom) and node.module == "os":
        return any(alias.name in ("environ", "getenv") for alias in node.names)
    return False


def test_config_is_the_only_reader_of_the_environment_in_the_packages() -> None:
    readers = {name for name, path in MODULES.items()
               if any(reads_environment(node) for node in ast.walk(ast.parse(path.read_text())))}
    assert readers == {"wsexec.config"}


def test_nothing_outside_tests_imports_tests() -> None:
    importers = set()
    for path in ROOT.glob("*/**/*.py"):
        top = path.relative_to(ROOT).parts[0]
        if top not in ("tests", ".venv", "var") and any(dep.split(".")[0] == "tests" for dep, _ in imported(path)):
            importers.add(path.relative_to(ROOT).as_posix())
    assert importers == set()
