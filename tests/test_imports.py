"""The package's import graph: imports only point down (no cycle, lazy imports inside functions included) and
nothing in the installed package imports the test scaffolding under tests/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Installed package name -> source folder (pyproject.toml [tool.setuptools.package-dir]).
PACKAGES = {"lidr_data": ROOT / "lidr_data", "lidr_data.train": ROOT / "train", "lidr_data.eval": ROOT / "eval",
            "lidr_data.datacards": ROOT / "datacards"}
TESTS = ROOT / "tests"


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """Every module name an import statement anywhere in the file (functions too) can bind, with its line."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names += [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return names


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {package module it imports: line}. `from a import b` points at a.b when b is a module, else a."""
    mods = modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for module, path in mods.items():
        for name, line in imported_names(module, path):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            # a package's own submodules and parents are not edges (importing a.b runs a/__init__ first)
            if name and name != module and not module.startswith(name + "."):
                graph[module].setdefault(name, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    return "; ".join(f"{a} -> {b} (line {line})" for a in component for b, line in graph[a].items() if b in component)


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("import pkg.a\nfrom pkg import b\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGES", {"pkg": pkg})
    graph = import_graph()
    assert graph["pkg.b"] == {"pkg.c": 2} and graph["pkg.d"] == {"pkg.a": 1, "pkg.b": 2}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_package_imports_form_no_cycle():
    graph = import_graph()
    assert not cycles(graph), "\n".join(describe(graph, c) for c in cycles(graph))


def test_no_module_of_the_package_imports_from_tests():
    # tests/ is on sys.path when pytest runs, so its top-level modules (counting, shared_data, servers, ...)
    # would import fine here and fail in an installed package.
    test_modules = {"tests", "conftest"} | {p.stem for p in TESTS.glob("*.py")} | {
        p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    found = [f"{path.relative_to(ROOT)}:{line}: imports {name}"
             for module, path in modules().items() for name, line in imported_names(module, path)
             if name.split(".")[0] in test_modules]
    assert not found, "\n".join(found)


def test_only_the_commands_import_rich():
    # The library computes and reports through return values and callbacks; drawing is the commands' job.
    found = list(dict.fromkeys(f"{path.relative_to(ROOT)}:{line}: imports rich"
                               for module, path in modules().items() for name, line in imported_names(module, path)
                               if name.split(".")[0] == "rich" and not module.startswith("lidr_data.commands")
                               and module != "lidr_data.cli"))
    assert not found, "\n".join(found)
