"""Shared fixtures. Tests run offline: no model or dataset can be downloaded here (see shared/NOTES.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny model's matrices are too small for intra-op threads to pay: one thread is ~10x faster on 2 busy cores.
import torch  # noqa: E402

torch.set_num_threads(1)

# Real public data beside the project (shared/data); tests that need it skip where it is absent.
SHARED_DATA = Path(os.environ.get("LIDR_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def require_shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set LIDR_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The `lidr tiny-model` chat model, built once per test session."""
    from lidr_data.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
