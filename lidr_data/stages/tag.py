"""Tag stage: per-pair features the filter and dedup stages (and users of the published table) read.

Adds TAG_COLUMNS (schema.py) to pairs_raw: the language of chosen and rejected (and of the prompt, when asked),
character lengths and a content hash. The table is streamed batch by batch, so memory stays flat at any size;
language ID (the cost to beat) reads a bounded prefix of each text, skips null/blank texts (failed
translations), and reads each distinct prefix once per batch (the dominant pairs of several pivot languages share
their rejected answer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data.errors import LidrError
from lidr_data.langid import DEFAULT_MIN_SCORE, DEFAULT_PREFIX_CHARS, UNKNOWN, detect_languages
from lidr_data.stages.schema import FLAT_TEXT, PAIR_COLUMNS, TAG_COLUMNS, StageStats

SEP = "\x1f"  # unit separator: joins the three texts for the content hash


@dataclass
class TagConfig:
    """Tag stage settings (recipe section `tag:`)."""

    prefix_chars: int = field(default=DEFAULT_PREFIX_CHARS, metadata={
        "help": "Characters of each text read by language ID (a few hundred decide the language)."})
    min_score: float = field(default=DEFAULT_MIN_SCORE, metadata={
        "help": "Language-ID confidence below this gives 'unknown' instead of a guess (0..1)."})
    detect_prompt_language: bool = field(default=False, metadata={
        "help": "Run language ID on prompts too. Off: prompt_lang is the prompt's known language (`lang`) "
        "with a null score, which saves a third of the language-ID time; no filter rule reads it."})
    batch_rows: int = field(default=10_000, metadata={
        "help": "Rows per streamed batch (memory vs. overhead)."})

    def __post_init__(self) -> None:
        if not isinstance(self.prefix_chars, int) or self.prefix_chars < 1:
            raise LidrError(f"tag.prefix_chars must be an integer >= 1, got {self.prefix_chars!r}")
        if not 0.0 <= float(self.min_score) <= 1.0:
            raise LidrError(f"tag.min_score must be between 0 and 1, got {self.min_score!r}")
        if not isinstance(self.batch_rows, int) or self.batch_rows < 1:
            raise LidrError(f"tag.batch_rows must be an integer >= 1, got {self.batch_rows!r}")


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


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


# Dictionary-encode only the short categorical columns: on unique texts a dictionary is pure cost.
_DICT_COLUMNS = ("lang", "direction", "pivot_lang", "generator_model", "generator_revision", "chosen_finish_reason",
                 "rejected_finish_reason", "prompt_lang", "chosen_lang", "rejected_lang", "stage", "reason")


def parquet_writer(path: Path, schema: pa.Schema, final: bool = False) -> pq.ParquetWriter:
    """Stage tables that the next stage reads at once use LZ4 (fastest write + read here); the published table
    uses snappy, the most widely read codec."""
    return pq.ParquetWriter(path, schema, compression="snappy" if final else "lz4",
                            use_dictionary=[n for n in schema.names if n in _DICT_COLUMNS])


def _detect(texts: pa.ChunkedArray | pa.Array, languages: list[str], config: TagConfig) -> tuple[pa.Array, pa.Array]:
    """Language and score per text; null/blank texts are 'unknown' with score 0 and cost nothing."""
    prefixes = pc.utf8_slice_codeunits(texts, 0, config.prefix_chars).to_pylist()
    unique: dict[str, int] = {}
    for p in prefixes:
        if p is not None and p.strip() and p not in unique:
            unique[p] = len(unique)
    found = detect_languages(list(unique), languages, prefix_chars=config.prefix_chars, min_score=config.min_score)
    codes, scores = [], []
    for p in prefixes:
        i = unique.get(p) if p is not None else None
        code, score = found[i] if i is not None else (UNKNOWN, 0.0)
        codes.append(code)
        scores.append(score)
    return pa.array(codes, pa.string()), pa.array(scores, pa.float64())


def _content_hash(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> pa.Array:
    """md5 of prompt, chosen and rejected text (null as empty): stable across versions, vectorized in DuckDB."""
    con.register("texts", pa.table({n: batch.column(n) for n in FLAT_TEXT.names}))
    try:
        q = (f"SELECT md5(concat_ws('{SEP}', coalesce(prompt_text, ''), coalesce(chosen_text, ''), "
             "coalesce(rejected_text, ''))) AS h FROM texts")
        return con.sql(q).to_arrow_table().column("h").combine_chunks()
    finally:
        con.unregister("texts")


def tag_batch(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch, languages: list[str],
              config: TagConfig) -> pa.RecordBatch:
    chosen_lang, chosen_score = _detect(batch.column("chosen_text"), languages, config)
    rejected_lang, rejected_score = _detect(batch.column("rejected_text"), languages, config)
    if config.detect_prompt_language:
        prompt_lang, prompt_score = _detect(batch.column("prompt_text"), languages, config)
    else:
        prompt_lang, prompt_score = batch.column("lang"), pa.nulls(batch.num_rows, pa.float64())
    tags = {
        "prompt_lang": prompt_lang,
        "prompt_lang_score": prompt_score,
        "chosen_lang": chosen_lang,
        "chosen_lang_score": chosen_score,
        "rejected_lang": rejected_lang,
        "rejected_lang_score": rejected_score,
        "chosen_chars": pc.cast(pc.utf8_length(batch.column("chosen_text")), pa.int64()),
        "rejected_chars": pc.cast(pc.utf8_length(batch.column("rejected_text")), pa.int64()),
        "content_hash": _content_hash(con, batch),
    }
    keep = [n for n in batch.schema.names if n not in TAG_COLUMNS.names]
    arrays = [batch.column(n) for n in keep] + [tags[n] for n in TAG_COLUMNS.names]
    schema = pa.schema([batch.schema.field(n) for n in keep] + list(TAG_COLUMNS))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def tag_pairs(src: Path, dst: Path, config: TagConfig, languages: list[str]) -> StageStats:
    """pairs_raw (PAIR_COLUMNS + FLAT_TEXT) -> the same rows plus TAG_COLUMNS. Tagging drops nothing."""
    src, dst = Path(src), Path(dst)
    if not languages:
        raise LidrError("tag: no languages given for language ID")
    pf = open_table(src, pa.schema([*PAIR_COLUMNS, *FLAT_TEXT]), "pairs_raw")
    in_schema = pf.schema_arrow
    keep = [in_schema.field(n) for n in in_schema.names if n not in TAG_COLUMNS.names]
    out_schema = pa.schema(keep + list(TAG_COLUMNS))
    stats = StageStats("tag")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(dst)
    con = duckdb.connect()
    try:
        with parquet_writer(tmp, out_schema) as writer:
            for batch in pf.iter_batches(batch_size=config.batch_rows):
                writer.write_batch(tag_batch(con, batch, list(languages), config))
                stats.rows_in += batch.num_rows
        os.replace(tmp, dst)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    stats.kept = stats.rows_in
    return stats.check()
