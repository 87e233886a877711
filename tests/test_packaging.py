"""pyproject.toml: metadata setuptools accepts without a deprecation warning, and every shipped file packaged."""

from __future__ import annotations

import re
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
