"""The dataset package is layered: each module imports only the modules below it (issue 12: store.py, hub.py
and version.py used to import each other), and none imports test support."""

from __future__ import annotations

import ast
from pathlib import Path

import lidr_data.dataset

# Bottom first: a module may import the ones before it in this list, never one after it (file-system
# helpers live below the package, in lidr_data/files.py).
LAYERS = ["layout", "card", "hub", "store", "lineage", "audits", "materialize", "publish", "load"]
PACKAGE = Path(lidr_data.dataset.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_every_module_is_in_a_layer():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert sorted(LAYERS) == modules


def test_imports_point_down_only():
    wrong = []
    for i, name in enumerate(LAYERS):
        for module in imported_modules(PACKAGE / f"{name}.py"):
            if module.startswith("lidr_data.dataset."):
                target = module.split(".")[2]
                if target in LAYERS and LAYERS.index(target) >= i:
                    wrong.append(f"{name} imports {module}")
            assert not module.startswith(("tests", "synthetic")), f"{name} imports test support {module}"
    assert wrong == []


def test_the_package_does_not_ship_test_support():
    assert not (PACKAGE / "synthetic.py").exists()
