"""Stage table I/O shared by the stages: opening and writing Parquet (atomically), drop tables and their
columns, read-ahead and write-behind."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data.errors import LidrError
from lidr_data.files import atomic_path
from lidr_data.schema import DROP_COLUMNS, TAG_COLUMNS
from lidr_data.stages.base import StageStats

# Dictionary-encode only the short categorical columns: on unique texts a dictionary is pure cost.
_DICT_COLUMNS = ("lang", "direction", "pivot_lang", "generator_model", "generator_revision", "chosen_finish_reason",
                 "rejected_finish_reason", "prompt_lang", "chosen_lang", "rejected_lang", "stage", "reason")
ROW_GROUP_ROWS = 10_000  # the stages read their input in batches of this size


def parquet_writer(path: str | Path, schema: pa.Schema, final: bool = False) -> pq.ParquetWriter:
    """Stage tables use LZ4: pyarrow reads it ~2.7x faster than snappy here (filter and dedup read all of
    pairs_raw, tag and dedup its texts); the published table uses snappy, the most widely read codec."""
    return pq.ParquetWriter(path, schema, compression="snappy" if final else "lz4",
                            use_dictionary=[n for n in schema.names if n in _DICT_COLUMNS])


def open_table(path: Path, required: pa.Schema, what: str) -> pq.ParquetFile:
    """Open a stage table for streaming; a missing file or column is a one-line LidrError."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: {what} table not found")
    try:
        # pre_buffer=False: with it, iter_batches keeps every batch read so far alive (memory grows with the file).
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise LidrError(f"{path}: not a readable Parquet file ({e})") from None
    missing = [n for n in required.names if n not in pf.schema_arrow.names]
    if missing:
        raise LidrError(f"{path}: {what} table lacks column(s) {', '.join(missing)}")
    return pf


def write_parquet_atomic(table: pa.Table, path: str | Path) -> Path:
    """Write a stage table to a temporary file beside `path`, then rename: readers never see a half-written
    table."""
    with atomic_path(path) as tmp, parquet_writer(tmp, table.schema) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return Path(path)


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


def with_drop_columns(batch: pa.RecordBatch | pa.Table, stage: str, reasons: pa.Array,
                      duplicate_of: pa.Array | None = None) -> pa.Table:
    """`batch` plus the drop columns, from Arrow arrays (the streamed filter and dedup stages): the stage, the
    reasons and `duplicate_of` (null unless given)."""
    n = len(reasons)
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return (table.append_column(DROP_COLUMNS.field("stage"), pa.array([stage] * n, pa.string()))
            .append_column(DROP_COLUMNS.field("reason"), reasons.cast(pa.string()))
            .append_column(DROP_COLUMNS.field("duplicate_of"),
                           duplicate_of if duplicate_of is not None else pa.nulls(n, pa.string())))


def count_reasons(stats: StageStats, reasons: pa.Array) -> None:
    """Add the dropped rows' reasons to `stats.dropped`."""
    for item in pc.value_counts(reasons).to_pylist():
        stats.dropped[item["values"]] = stats.dropped.get(item["values"], 0) + item["counts"]


def with_tags(batch: pa.RecordBatch, tags: pa.Table) -> pa.Table:
    """A batch of pairs_raw with its tag columns appended."""
    table = pa.Table.from_batches([batch])
    for f in TAG_COLUMNS:
        table = table.append_column(f, tags.column(f.name))
    return table


def split_generation_errors(stage: str, results: Sequence[dict], schema: pa.Schema, drop_schema: pa.Schema,
                            inputs: Sequence[dict] | None = None) -> tuple[pa.Table, pa.Table, StageStats]:
    """(kept, dropped, stats) of a generating stage: a result whose finish_reason is `error` (the backend could
    not run the request) is dropped as `generation_error`, recorded as its input row (`inputs[i]`; default: the
    result itself) with the result's finish_reason, request_key and error; the other results are kept."""
    kept, dropped = [], []
    for i, r in enumerate(results):
        if r["finish_reason"] == "error":
            dropped.append({**(r if inputs is None else inputs[i]), "finish_reason": r["finish_reason"],
                            "request_key": r["request_key"], "error": r.get("error") or "generation failed"})
        else:
            kept.append(r)
    drops = drop_table(pa.Table.from_pylist(dropped, schema=drop_schema), stage, ["generation_error"] * len(dropped))
    stats = StageStats(stage, rows_in=len(results), kept=len(kept))
    if dropped:
        stats.dropped["generation_error"] = len(dropped)
    return pa.Table.from_pylist(kept, schema=schema), drops, stats.check()


def read_ahead(batches: Iterable[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """`batches`, read (decompressed, decoded) on a helper thread up to `depth` batches ahead of the consumer:
    Parquet reading releases the GIL, so it overlaps the consumer's own work (and its writes)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():  # the consumer may stop early: never block on a full queue for good
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class WriteBehind:
    """Parquet writes on a helper thread, in the order given, at most `depth` waiting: encoding and compressing
    release the GIL, so they overlap the caller's next batch. Leaving the `with` block waits for every write
    (and raises the first error)."""

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self.thread = ThreadPoolExecutor(1)
        self.pending: deque = deque()

    def write(self, writer: pq.ParquetWriter, table: pa.Table | pa.RecordBatch) -> None:
        self.pending.append(self.thread.submit(writer.write, table))
        while len(self.pending) > self.depth:
            self.pending.popleft().result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.thread.shutdown(cancel_futures=True)
