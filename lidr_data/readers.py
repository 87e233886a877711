"""Read user tables (JSONL, JSON list, Parquet) with errors that name the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from lidr_data.errors import LidrError

SUFFIXES = (".jsonl", ".json", ".parquet")


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .jsonl, .json (a list of objects) or .parquet file, as dicts."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: file not found")
    if path.suffix == ".parquet":
        try:
            return pl.read_parquet(path).to_dicts()
        except Exception as e:  # noqa: BLE001 - polars raises several types for corrupt files
            raise LidrError(f"{path}: not a readable Parquet file ({e})") from e
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LidrError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e
                if not isinstance(row, dict):
                    raise LidrError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
        return rows
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LidrError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from e
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise LidrError(f"{path}: expected a JSON list of objects")
        return data
    raise LidrError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")


def row_location(path: str | Path, index: int) -> str:
    """How to name row `index` (0-based) of a file in an error: a line for JSONL, a row otherwise."""
    path = Path(path)
    return f"{path}:{index + 1}" if path.suffix == ".jsonl" else f"{path}: row {index}"
