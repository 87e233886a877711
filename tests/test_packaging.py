"""pyproject.toml: metadata setuptools accepts without a deprecation warning, and every shipped file packaged."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the project supports 3.10: this check runs on newer)

ROOT = Path(__file__).resolve().parents[1]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    """Issue 20: setuptools warned that `project.license` as a TOML table must change by 2027-02-18."""
    data = project()
    assert data["project"]["license"] == "Apache-2.0"
    (req,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", req.replace(" ", ""))
    assert minimum and int(minimum[1]) >= 77, req  # PEP 639 license expressions: setuptools 77
    assert not any(c.startswith("License ::") for c in data["project"].get("classifiers", []))  # refused with it


def test_every_data_folder_with_a_python_name_is_a_listed_package():
    """setuptools warned `Package 'lidr_data.assets' is absent from the packages configuration`: a folder of
    shipped files whose name is a Python identifier must be listed (its files are package data)."""
    setup = project()["tool"]["setuptools"]
    packages, data = set(setup["packages"]), setup["package-data"]
    for folder in (ROOT / "lidr_data").iterdir():
        if folder.is_dir() and folder.name.isidentifier() and folder.name != "__pycache__":
            assert f"lidr_data.{folder.name}" in packages, folder
    assert data["lidr_data.assets"] == ["**/*"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_level_third_party_import_is_a_declared_dependency():
    """Issue 21: numpy was imported by the core (stages/filter.py, stages/dedup.py) but not declared, so it came
    only by chance with another package. A module-level import must be a core dependency (train/ may use its
    extras: it runs only with `lidr-data[train]` installed)."""
    data = project()["project"]
    core = {_name(r) for r in data["dependencies"]}
    extras = core | {_name(r) for reqs in data["optional-dependencies"].values() for r in reqs}
    dists = packages_distributions()
    missing = []
    for folder in ("lidr_data", "train", "eval", "datacards"):
        allowed = extras if folder == "train" else core
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for top in {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"lidr_data"}:
                    names = {_name(d) for d in dists.get(top, [top])}
                    if not names & allowed:
                        missing.append(f"{path.relative_to(ROOT)}: {top}")
    assert not missing, missing
