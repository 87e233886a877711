"""Results folders: Parquet tables plus run.json, readable by `lidr sql` (each <name>.parquet is a view)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl

from lidr_data.errors import LidrError


def slug(text: str) -> str:
    """A folder-safe name for a model path or id ('/x/llama-3-8b/' -> 'llama-3-8b')."""
    name = Path(text.rstrip("/")).name or text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def write_table(df: pl.DataFrame, path: Path) -> None:
    """Write atomically: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.write_parquet(tmp)
    os.replace(tmp, path)


def write_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_json_list(rows: list[dict], path: Path) -> None:
    """An AlpacaEval-style JSON list, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_run(folder: str | Path) -> tuple[dict, pl.DataFrame]:
    """(run.json, summary table) of a results folder."""
    folder = Path(folder)
    summary, meta = folder / "summary.parquet", folder / "run.json"
    if not summary.is_file() or not meta.is_file():
        raise LidrError(f"{folder}: not an eval results folder (needs summary.parquet and run.json)")
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LidrError(f"{meta}:{e.lineno}: malformed JSON ({e.msg})") from e
    return info, pl.read_parquet(summary)
