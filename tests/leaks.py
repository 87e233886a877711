"""Test support: where a local path (a tmp folder) shows up in files that are published."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq


def files_holding(folder: Path, needle: str) -> list[str]:
    """Files under `folder` whose content holds `needle`: Parquet files by their decoded values (compression
    would hide the bytes), every other file by its raw bytes (text, JSON, pickles, safetensors headers)."""
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str)
            text += str(pq.read_metadata(path).metadata)
            hit = needle in text
        else:
            hit = needle.encode() in path.read_bytes()
        if hit:
            found.append(path.relative_to(folder).as_posix())
    return found
