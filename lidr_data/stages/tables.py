"""Small table helpers shared by the stages: atomic Parquet writes and drop tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data.stages.schema import DROP_COLUMNS


def write_parquet_atomic(table: pa.Table, path: str | Path) -> Path:
    """Write to a temporary file beside `path`, then rename: readers never see a half-written table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def drop_table(rows: pa.Table, stage: str, reasons: Sequence[str]) -> pa.Table:
    """`rows` plus the drop columns: the stage, a non-empty reason per row, and a null duplicate_of."""
    if len(reasons) != rows.num_rows:
        raise ValueError(f"{rows.num_rows} rows but {len(reasons)} reasons")
    if any(not r for r in reasons):
        raise ValueError("every dropped row needs a non-empty reason")
    n = rows.num_rows
    return (rows.append_column(pa.field("stage", pa.string()), pa.array([stage] * n, pa.string()))
            .append_column(pa.field("reason", pa.string()), pa.array(list(reasons), pa.string()))
            .append_column(DROP_COLUMNS.field("duplicate_of"), pa.nulls(n, pa.string())))


def empty_drops(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([], schema=pa.schema([*schema, *DROP_COLUMNS]))
