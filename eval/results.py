"""Results folders: Parquet tables plus run.json, readable by `lidr sql` (each <name>.parquet is a view)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from lidr_data.errors import LidrError
from lidr_data.files import atomic_path, write_text_atomic
from lidr_data.readers import read_json


def slug(text: str) -> str:
    """A folder-safe name for a model path or id ('/x/llama-3-8b/' -> 'llama-3-8b')."""
    name = Path(text.rstrip("/")).name or text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def write_table(df: pl.DataFrame, path: Path) -> None:
    """Write atomically: readers never see a half-written file."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)


def write_json(obj: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_json_list(rows: list[dict], path: Path) -> None:
    """An AlpacaEval-style JSON list, written atomically."""
    write_text_atomic(path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def read_run(folder: str | Path) -> tuple[dict, pl.DataFrame]:
    """(run.json, summary table) of a results folder."""
    folder = Path(folder)
    summary, meta = folder / "summary.parquet", folder / "run.json"
    if not summary.is_file() or not meta.is_file():
        raise LidrError(f"{folder}: not an eval results folder (needs summary.parquet and run.json)")
    info = read_json(meta)
    return info, pl.read_parquet(summary)
