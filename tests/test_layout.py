"""The package layout holds (README "Layout"): no import cycle among our modules — counting imports inside
functions, not those under `if TYPE_CHECKING:` — and each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("guard", "rules", "ratelimit")


def module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class ImportCollector(ast.NodeVisitor):
    """Every module of ours that `module` imports at run time, wherever the import statement sits."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            # `from guard.core import codes` imports the module guard.core.codes.
            if f"{target}.{alias.name}" in MODULES:
                self._add(f"{target}.{alias.name}")
            else:
                self._add(target)

    def _add(self, name: str) -> None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name.split(".")[0] in PACKAGES and name != self.module:
            self.found.add(name)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        collector = ImportCollector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[module] = collector.found
    return graph


GRAPH = import_graph()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle_through_a_function_level_import() -> None:
    source = "def late():\n    import guard.app\n"
    collector = ImportCollector("guard.core.types", False)
    collector.visit(ast.parse(source))
    graph = {"guard.core.types": collector.found, "guard.app": {"guard.core.types"}}
    assert cycles(graph) == [["guard.app", "guard.core.types"]]


def test_the_checker_skips_type_checking_imports() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from guard.app import create_app\n"
    collector = ImportCollector("guard.core.types", False)
    collector.visit(ast.parse(source))
    assert collector.found == set()


def test_every_package_is_read() -> None:
    assert {"guard.app", "guard.http.proxy", "rules.matcher", "ratelimit.limiter"} <= set(MODULES)


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def _importers_of(prefix: str) -> dict[str, set[str]]:
    return {
        module: {t for t in targets if t == prefix or t.startswith(prefix + ".")}
        for module, targets in GRAPH.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "guard" and len(parts) > 1 else parts[0]


# What each layer may import of our packages (README "Layout"). `guard.app`, `guard.cli` and
# `guard.commands` sit on top and wire the rest.
ALLOWED: dict[str, set[str]] = {
    "rules": {"rules"},
    "ratelimit": {"ratelimit"},
    "guard": {"guard"},
    "guard.config": {"guard.config"},
    "guard.core": {"guard.core", "guard.config", "rules", "ratelimit"},
    "guard.observe": {"guard.observe", "guard.core", "guard.config"},
    "guard.http": {"guard.http", "guard.core", "guard.observe", "guard.config", "rules", "ratelimit"},
    "guard.risk": {"guard.risk", "guard.core", "guard.observe", "guard.config", "guard.http", "ratelimit"},
    "guard.wecom": {"guard.wecom", "guard.core", "guard.observe", "guard.config", "rules"},
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_what_lies_below(layer: str) -> None:
    wrong = {
        module: sorted(t for t in targets if _layer(t) not in ALLOWED[layer])
        for module, targets in GRAPH.items()
        if _layer(module) == layer
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_nothing_imports_the_app_or_the_request_handler() -> None:
    top = {"guard.cli", "guard.__main__"}
    for target in ("guard.app", "guard.http.proxy"):
        importers = {m for m, targets in GRAPH.items() if target in targets}
        allowed = top | {m for m in importers if m.startswith("guard.commands")}
        if target == "guard.http.proxy":
            allowed.add("guard.app")
        assert importers <= allowed, (target, sorted(importers - allowed))


def test_core_and_config_do_not_use_aiohttp() -> None:
    for module, path in MODULES.items():
        if _layer(module) in ("guard.core", "guard.config", "rules", "ratelimit"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and not node.level
            }
            assert "aiohttp" not in names, module
