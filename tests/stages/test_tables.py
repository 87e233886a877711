"""Stage table helpers: read-ahead and write-behind keep order, pass errors on and never hang."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lidr_data.stages.tables import WriteBehind, read_ahead, split_generation_errors


def _batches(n: int):
    for i in range(n):
        yield pa.record_batch({"i": [i]})


def test_read_ahead_keeps_order():
    assert [b.column("i")[0].as_py() for b in read_ahead(_batches(50), depth=2)] == list(range(50))


def test_read_ahead_raises_the_readers_error():
    def failing():
        yield pa.record_batch({"i": [0]})
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(read_ahead(failing()))


def test_a_consumer_that_stops_early_does_not_hang():
    before = threading.active_count()
    for batch in read_ahead(_batches(1000), depth=1):
        if batch.column("i")[0].as_py() == 3:
            break
    assert threading.active_count() == before  # the reader thread has finished


def test_write_behind_writes_in_order(tmp_path):
    schema = pa.schema([("i", pa.int64())])
    with pq.ParquetWriter(tmp_path / "a.parquet", schema) as w, WriteBehind(depth=1) as writes:
        for i in range(20):
            writes.write(w, pa.table({"i": [i]}, schema=schema))
    assert pq.read_table(tmp_path / "a.parquet").column("i").to_pylist() == list(range(20))


def test_write_behind_raises_a_failed_write(tmp_path):
    schema = pa.schema([("i", pa.int64())])
    with pytest.raises(ValueError, match="schema"), pq.ParquetWriter(tmp_path / "a.parquet", schema) as w, \
            WriteBehind() as writes:
        writes.write(w, pa.table({"other": ["x"]}))


def test_split_generation_errors_drops_failed_requests_as_their_input_rows():
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
                        ("request_key", pa.string())])
    drop_schema = pa.schema([("id", pa.string()), ("finish_reason", pa.string()), ("request_key", pa.string()),
                             ("error", pa.string())])
    results = [{"id": "a", "text": "ok", "finish_reason": "stop", "request_key": "k0"},
               {"id": "b", "text": None, "finish_reason": "error", "request_key": "k1", "error": "too long"},
               {"id": "c", "text": None, "finish_reason": "error", "request_key": "k2", "error": None}]
    kept, dropped, stats = split_generation_errors("respond", results, schema, drop_schema,
                                                   inputs=[{"id": "A"}, {"id": "B"}, {"id": "C"}])
    assert kept.column("id").to_pylist() == ["a"]
    assert dropped.select(["id", "finish_reason", "request_key", "error", "stage", "reason"]).to_pylist() == [
        {"id": "B", "finish_reason": "error", "request_key": "k1", "error": "too long", "stage": "respond",
         "reason": "generation_error"},
        {"id": "C", "finish_reason": "error", "request_key": "k2", "error": "generation failed", "stage": "respond",
         "reason": "generation_error"}]
    assert (stats.stage, stats.rows_in, stats.kept, stats.dropped) == ("respond", 3, 1, {"generation_error": 2})
    # Without inputs a dropped row is the result itself; nothing failed: no drop reasons counted.
    _, dropped, _ = split_generation_errors("translate", results[1:2], schema, drop_schema)
    assert dropped.column("id").to_pylist() == ["b"]
    _, dropped, stats = split_generation_errors("translate", results[:1], schema, drop_schema)
    assert dropped.num_rows == 0 and stats.dropped == {}
