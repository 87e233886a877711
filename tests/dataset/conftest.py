"""Fixtures for the dataset tests: realistic synthetic run folders (the published pairs schema, both LIDR
directions, four languages, drops from three stages) and versions materialized from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_run

from lidr_data.build.materialize import materialize


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "work" / "runs" / "demo-lidr" / "iter-1", n_prompts=12)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "work" / "store"


@pytest.fixture
def version_dir(run_dir: Path, store: Path) -> Path:
    return materialize(run_dir, store, progress=False)
