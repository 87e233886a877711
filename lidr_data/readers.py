"""Read user tables (JSONL, JSON list, Parquet) with errors that name the file, line and field.

Text files are UTF-8; a byte-order mark and CRLF line ends (both common in files made on Windows) are accepted,
and bytes that are not UTF-8 are an error naming the line, column and byte (not a decoder traceback).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from lidr_data.errors import LidrError

SUFFIXES = (".jsonl", ".json", ".parquet")
BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096


def decode_utf8(data: bytes, where: str, line_start: int = 1) -> str:
    """`data` as UTF-8, or a LidrError 'WHERE:LINE: not valid UTF-8 (byte 0x.. at column N)'."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = line_start + data.count(b"\n", 0, e.start)
        column = len(data[start:e.start].decode("utf-8", "replace")) + 1  # in characters, as editors count
        raise LidrError(f"{where}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})") from None


def iter_records(path: str | Path, columns: Sequence[str] | None = None) -> Iterator[tuple[str, dict]]:
    """(location, row) for every row of a .jsonl, .json (a list of objects) or .parquet file, read lazily where
    the format allows (JSONL line by line, Parquet batch by batch; a JSON list is parsed whole).

    `location` names the row in errors: `FILE:LINE` for JSONL (blank lines counted), `FILE: row N` otherwise.
    `columns`: for Parquet, read only these (those the file has; a missing one shows up as a missing field)."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: file not found")
    if path.suffix == ".parquet":
        try:
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            cols = [c for c in columns if c in names] if columns is not None else None
            index = 0
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=cols):
                for row in batch.to_pylist():
                    yield f"{path}: row {index}", row
                    index += 1
        except LidrError:
            raise
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise LidrError(f"{path}: not a readable Parquet file ({e})") from None
        return
    if path.suffix == ".jsonl":
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if lineno == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                line = decode_utf8(raw, str(path), lineno)
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)  # a trailing "\r\n" is JSON whitespace
                except json.JSONDecodeError as e:
                    raise LidrError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise LidrError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield f"{path}:{lineno}", row
        return
    if path.suffix == ".json":
        data = path.read_bytes()
        text = decode_utf8(data[len(BOM):] if data.startswith(BOM) else data, str(path))
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LidrError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LidrError(f"{path}: expected a JSON list of objects")
        for i, row in enumerate(rows):
            yield f"{path}: row {i}", row
        return
    raise LidrError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .jsonl, .json (a list of objects) or .parquet file, as dicts."""
    return [row for _, row in iter_records(path)]


def read_located(path: str | Path) -> list[tuple[str, dict]]:
    """(location, row) for every row of the file: `read_records` with each row's name for errors."""
    return list(iter_records(path))


def row_location(path: str | Path, index: int) -> str:
    """How to name row `index` (0-based) of a file in an error: its line for JSONL (blank lines counted, as
    `iter_records` does, so it reads the file up to that row), a row otherwise. Loops over rows should take the
    locations `iter_records` yields instead."""
    path = Path(path)
    if path.suffix != ".jsonl":
        return f"{path}: row {index}"
    seen = -1
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if raw.decode("utf-8", "replace").strip():
                seen += 1
                if seen == index:
                    return f"{path}:{lineno}"
    raise LidrError(f"{path}: no row {index} (the file has {seen + 1})")
