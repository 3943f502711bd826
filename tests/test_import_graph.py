"""The import graph of recon, generative and cryodiff has no cycles, and its
dependencies point one way: cryodiff may import recon and generative; those two
never import each other or cryodiff; the napari plugin never imports the
command-line commands.

The graph is static: every ``import``/``from`` statement in each module, found
with :mod:`ast` (inside functions and under ``if TYPE_CHECKING:`` too), with
relative imports resolved. An import of ``a.b.c`` is an edge to the module
``a.b.c`` only (not to the packages ``a`` and ``a.b`` that Python also runs),
and ``from a.b import name`` is an edge to the submodule ``a.b.name`` when
there is one, else to the package's ``__init__``; so a package ``__init__``
that imports its own submodules makes no cycle unless a submodule imports the
package back. A check that imports every module of recon and generative
catches what the source does not show (imports made by other libraries).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recon", "generative", "cryodiff")
#: package -> packages its modules must not import (statically or at run time).
FORBIDDEN = {"recon": ("generative", "cryodiff"), "generative": ("recon", "cryodiff")}
#: module prefix -> module prefixes it must not import (statically).
FORBIDDEN_INSIDE = {"cryodiff.napari": ("cryodiff.commands",)}


def _module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (source file, whether it is a package ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(tree: ast.Module, module: str, is_package: bool, modules) -> set[str]:
    """The project modules (names in ``modules``) that the statements of ``module`` import,
    relative imports resolved against ``module``'s package; each imported name counts as
    its longest prefix in ``modules``."""
    package = module.split(".") if is_package else module.split(".")[:-1]

    def known(name: str) -> str | None:
        parts = name.split(".")
        return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)

    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > len(package):
                continue  # above the top-level package: not a project module
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
        else:
            continue
        targets.update(target for target in map(known, names) if target not in (None, module))
    return targets


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = _module_files()
    return {
        module: _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), module, is_package, modules)
        for module, (path, is_package) in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative), each sorted; a module importing itself is not an edge of the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            child = next(successors, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_imports_resolve_to_project_modules():
    modules = {"p", "p.s", "p.s.m", "p.s.x", "p.s.y", "p.t"}
    source = "from . import x, v\nfrom .y import z\nfrom .. import t\nimport p.s.y.z, numpy\nfrom p import *\nfrom ... import q"
    assert _imports(ast.parse(source), "p.s.m", False, modules) == {"p.s.x", "p.s", "p.s.y", "p.t", "p"}
    assert _imports(ast.parse("from .y import z\nfrom . import m"), "p.s", True, modules) == {"p.s.y", "p.s.m"}


def test_no_import_cycles():
    graph = _graph()
    cycles = [
        ", ".join(f"{module} -> {target}" for module in cycle for target in sorted(graph[module] & set(cycle)))
        for cycle in _cycles(graph)
    ]
    assert not cycles, "import cycles among project modules (their imports of each other): " + "; ".join(cycles)


def test_dependencies_point_one_way():
    rules = FORBIDDEN | FORBIDDEN_INSIDE
    offenders = [
        f"{module} imports {target}"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        for prefix, forbidden in rules.items()
        if _in(module, prefix) and any(_in(target, f) for f in forbidden)
    ]
    assert not offenders, "; ".join(offenders)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_stands_alone(package):
    """Importing every module of ``package`` loads nothing of the packages it must not import."""
    forbidden = FORBIDDEN[package]
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'): importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
