"""Real public data beside the project (shared/data). Tests that need it skip where it is absent.

Import it as `from shared_data import require_shared_data` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("LIDR_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def require_shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set LIDR_SHARED_DATA to the shared/data folder)")
    return path
