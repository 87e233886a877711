"""Fixtures for the trainer tests: a version made by `lidr build` (the demo recipe on the tiny model), once per
session (helpers to measure a model's margins are in train_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_version(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """`lidr build recipes/demo.yaml` with 4 prompts: 24 pairs in en/es/de/fr, both directions."""
    from lidr_data.cli import main

    work = tmp_path_factory.mktemp("build")
    assert main(["build", str(ROOT / "recipes" / "demo.yaml"), "--model", str(tiny_model_dir), "--workdir",
                 str(work), "--limit", "4", "--no-progress"]) == 0
    return work / "store" / "demo" / "iter-1"
