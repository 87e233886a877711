"""Shared fixtures. Tests run offline: no model or dataset can be downloaded here (see shared/NOTES.md).
Real data beside the project: `from shared_data import require_shared_data`."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
# The session's own Hugging Face home and `datasets` cache, set before `datasets`/`huggingface_hub` are imported
# (they read these at import): a stale user cache must not serve rows to a test (issue 9).
_HF_HOME = tempfile.mkdtemp(prefix="lidr-tests-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny model's matrices are too small for intra-op threads to pay: one thread is ~10x faster on 2 busy cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The `lidr tiny-model` chat model, built once per test session."""
    from lidr_data.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
