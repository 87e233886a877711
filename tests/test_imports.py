"""The package's import graph: imports only point down (no cycle, lazy imports inside functions included), each
module imports only the floors README.md "Architecture" allows it (the versioned dataset never stands on the build;
commands never import each other), the package's own modules are imported at module level (only heavy optional
dependencies load lazily), and nothing in the installed package imports the test scaffolding under tests/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


def top_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements run when the module is imported: its body, and inside its top-level if/try blocks."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return found


def imported_names(module: str, path: Path, where: str = "anywhere") -> list[tuple[str, int]]:
    """Every module name an import statement in the file can bind, with its line: `where` = "anywhere"
    (functions too), "module" (run when the module is imported) or "functions" (only inside functions)."""
    names = []
    tree = ast.parse(path.read_text(), str(path))
    nodes = list(ast.walk(tree)) if where != "module" else top_level(tree)
    if where == "functions":
        eager = {id(n) for n in top_level(tree)}
        nodes = [n for n in nodes if id(n) not in eager]
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names += [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return names


def import_graph(where: str = "anywhere") -> dict[str, dict[str, int]]:
    """module -> {package module it imports: line}. `from a import b` points at a.b when b is a module, else a.
    `where`: as in `imported_names`."""
    mods = modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for module, path in mods.items():
        for name, line in imported_names(module, path, where):
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


# -- the floors (README.md "Architecture"). Every module lives in one room; a room imports only itself and the
# rooms listed for it. A module without a room fails the test below: a new module gets its room here and there.
ROOMS: dict[str, tuple[str, ...]] = {  # room: module names under lidr_data ("" = the package itself)
    "ground": ("errors", "redact", "safe_text", "files", "config", "readers", "languages", "langid", "locks",
               "progress", "extras", "version", "schema", "table", "datacards"),
    "generation": ("generation",),
    "stages": ("stages",),
    "dataset": ("dataset",),
    "build": ("build",),
    "versions": ("sql", "inspect", "inspect_page"),
    "models": ("tiny_model", "real_model"),
    "train": ("train",),
    "eval": ("eval",),
    "iterate": ("iterate",),
    "package": ("",),
    "commands": ("commands", "cli"),
}
MAY_IMPORT: dict[str, set[str]] = {
    "ground": set(),
    "generation": {"ground"},
    "stages": {"ground", "generation"},
    "dataset": {"ground"},  # the versioned dataset stands on its own: readers need nothing of the build
    "build": {"ground", "generation", "stages", "dataset", "models"},  # the tiny model, built on first use
    "versions": {"ground", "dataset"},
    "models": {"ground"},
    "train": {"ground", "dataset"},
    "eval": {"ground", "generation", "dataset"},
    "iterate": {"ground", "build", "dataset", "train", "eval"},
    "package": {"ground", "dataset"},
    "commands": set(ROOMS) - {"package"},
}
# Beside the commands, not commands: what several of them share.
COMMAND_HELPERS = {"lidr_data.commands.render", "lidr_data.commands.options"}
# Optional or slow-to-import dependencies: importing them (or one of the package's modules that imports them when
# it loads) is the only reason for an import inside a function.
HEAVY = {"torch", "transformers", "trl", "accelerate", "peft", "datasets", "huggingface_hub", "ray", "vllm",
         "sacrebleu", "gguf", "safetensors"}
# `import lidr_data` runs before any submodule loads, so the package's lazy `load_version` keeps it light.
LAZY_ALLOWED = {("lidr_data", "lidr_data.dataset.load")}


def room_of(module: str) -> str:
    name = module.removeprefix("lidr_data").removeprefix(".")
    for room, names in ROOMS.items():
        if any(name == n or (n and name.startswith(n + ".")) for n in names):
            return room
    raise AssertionError(f"{module} has no room in tests/test_imports.py ROOMS (and README.md Architecture)")


def test_every_import_points_at_an_allowed_floor():
    graph, paths = import_graph(), modules()
    found = [f"{paths[m].relative_to(ROOT)}:{line}: {m} ({room_of(m)}) imports {t} ({room_of(t)})"
             for m, targets in graph.items() for t, line in targets.items()
             if room_of(t) != room_of(m) and room_of(t) not in MAY_IMPORT[room_of(m)]]
    assert not found, "\n".join(found)


def test_the_floor_check_sees_the_dataset_importing_the_build(monkeypatch):
    graph = {"lidr_data.dataset.materialize": {"lidr_data.build.recipe": 3}, "lidr_data.build.recipe": {}}
    monkeypatch.setattr(__import__(__name__), "import_graph", lambda where="anywhere": graph)
    monkeypatch.setattr(__import__(__name__), "modules", lambda: {m: ROOT / "x.py" for m in graph})
    with pytest.raises(AssertionError, match="dataset.materialize .dataset. imports lidr_data.build.recipe .build."):
        test_every_import_points_at_an_allowed_floor()


def test_commands_never_import_other_commands():
    found = [f"{m} imports {t} (line {line})" for m, targets in import_graph().items()
             if m.startswith("lidr_data.commands.") and m not in COMMAND_HELPERS
             for t, line in targets.items() if t.startswith("lidr_data.commands.") and t not in COMMAND_HELPERS]
    assert not found, "\n".join(found)


def heavy_modules() -> set[str]:
    """The package's modules whose import loads a heavy dependency (directly, or through one of the package's
    modules imported at module level)."""
    paths, graph = modules(), import_graph("module")
    heavy = {m for m, path in paths.items()
             if any(name.split(".")[0] in HEAVY for name, _ in imported_names(m, path, "module"))}
    grew = True
    while grew:
        more = {m for m, targets in graph.items() if m not in heavy and heavy & set(targets)}
        heavy |= more
        grew = bool(more)
    return heavy


def test_own_modules_are_imported_at_module_level():
    """A reader (and a tool) sees a module's structure from its top; only a heavy dependency waits for a call."""
    paths, heavy = modules(), heavy_modules()
    found = [f"{paths[m].relative_to(ROOT)}:{line}: {m} imports {t} inside a function"
             for m, targets in import_graph("functions").items() for t, line in targets.items()
             if t not in heavy and (m, t) not in LAZY_ALLOWED]
    assert not found, "\n".join(found)


def test_the_heavy_closure_follows_module_level_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from pkg import c\n")
    (pkg / "c.py").write_text("try:\n    import torch\nexcept ImportError:\n    pass\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import e\n")
    (pkg / "e.py").write_text("from pkg import a\n\ndef f():\n    import torch\n    from pkg import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGES", {"pkg": pkg})
    assert heavy_modules() == {"pkg.b", "pkg.c"}
    assert import_graph("functions") == {"pkg": {}, "pkg.a": {"pkg.b": 2}, "pkg.b": {}, "pkg.c": {},
                                         "pkg.d": {"pkg.e": 2}, "pkg.e": {"pkg.a": 5}}
