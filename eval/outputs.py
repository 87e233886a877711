"""Model outputs in AlpacaEval's layout: a folder of {lang}.json / {lang}.jsonl / {lang}.parquet files whose rows
hold `instruction`, `output` and optionally `id` and `generator`. Read by the win rate, the chrF judge's gold
answers and the reference log-likelihood."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lidr_data.config import resolve_path
from lidr_data.errors import LidrError
from lidr_data.readers import read_located

SUFFIXES = (".json", ".jsonl", ".parquet")


def find_lang_file(folder: str | Path, lang: str, what: str) -> Path:
    """The {lang}.json / {lang}.jsonl file of an outputs or prompts folder (`lidr:assets/...`: shipped with lidr)."""
    folder = resolve_path(folder)
    if not folder.is_dir():
        raise LidrError(f"{what} folder {folder} not found")
    for suffix in SUFFIXES:
        if (folder / f"{lang}{suffix}").is_file():
            return folder / f"{lang}{suffix}"
    have = sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES)
    raise LidrError(f"{folder}: no {what} file for language {lang!r} ({lang}.json or {lang}.jsonl); "
                    f"languages there: {', '.join(have) or 'none'}")


def load_outputs(path: Path, limit: int | None = None) -> pl.DataFrame:
    """(pos, id, instruction, output, generator) of an outputs file; id/instruction may be null."""
    rows = read_located(path)[:limit] if limit else read_located(path)
    records = []
    for i, (where, row) in enumerate(rows):
        output = row.get("output")
        if output is not None and not isinstance(output, str):
            raise LidrError(f"{where}: field 'output' must be a string")
        ident = row.get("id")
        records.append({"pos": i, "id": None if ident is None else str(ident),
                        "instruction": row.get("instruction"), "output": output,
                        "generator": str(row.get("generator") or "")})
    schema = {"pos": pl.Int64, "id": pl.String, "instruction": pl.String, "output": pl.String,
              "generator": pl.String}
    return pl.DataFrame(records, schema=schema)
