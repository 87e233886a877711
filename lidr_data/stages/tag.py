"""Tag stage: per-pair features the filter and dedup stages (and users of the published table) read.

Writes `pairs_tagged`: `pair_id` + TAG_COLUMNS (schema.py) for every row of pairs_raw, in its row order: the
language of chosen and rejected (and of the prompt, when asked), character lengths and a content hash. The texts
are not copied: the filter and dedup stages read pairs_raw and this table side by side (`load_tags`), so the
long text columns are written once, into the published table. pairs_raw is streamed batch by batch; language ID
(the cost to beat) reads a bounded prefix of each text, skips null/blank texts (failed translations), and reads
each distinct prefix once per batch (the English pairs of several pivot languages share their chosen answer).
A side whose first read is not the pair's language gets a further look (`recheck_chars`, see langid.py).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data.errors import LidrError
from lidr_data.files import atomic_path
from lidr_data.langid import (
    DEFAULT_MIN_SCORE,
    DEFAULT_PREFIX_CHARS,
    DEFAULT_QUICK_CHARS,
    DEFAULT_RECHECK_CHARS,
    UNKNOWN,
    detect_languages,
    disagrees,
    read_further,
)
from lidr_data.schema import FLAT_TEXT, TAG_COLUMNS
from lidr_data.stages.base import RunningBuild, Stage, StageStats, section
from lidr_data.stages.tables import open_table, parquet_writer

SEP = "\x1f"  # unit separator: joins the three texts for the content hash
TAGGED = pa.schema([("pair_id", pa.string()), *TAG_COLUMNS])  # the pairs_tagged table
_TAG_INPUT = pa.schema([("pair_id", pa.string()), ("lang", pa.string()), *FLAT_TEXT])


@dataclass
class TagConfig:
    """Tag stage settings (recipe section `tag:`)."""

    prefix_chars: int = field(default=DEFAULT_PREFIX_CHARS, metadata={
        "help": "Characters of each text read by language ID (a few hundred decide the language)."})
    quick_chars: int | None = field(default=DEFAULT_QUICK_CHARS, metadata={
        "help": "fastText first reads this many characters and keeps a confident answer; it reads on to "
        "prefix_chars only when unsure (~4x faster, as accurate on real answers). null: read prefix_chars at once."})
    recheck_chars: int = field(default=DEFAULT_RECHECK_CHARS, metadata={
        "help": "A side whose first read is not the pair's language (`lang`) gets a further look before the "
        "filter calls it wrong: its next windows of prefix_chars characters vote, up to this many characters (a "
        "short foreign quote, a table or a list at the start no longer decides). Only the few sides that "
        "disagree pay."})
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
        if not isinstance(self.recheck_chars, int) or self.recheck_chars < 1:
            raise LidrError(f"tag.recheck_chars must be an integer >= 1, got {self.recheck_chars!r}")
        if self.quick_chars is not None and (not isinstance(self.quick_chars, int) or self.quick_chars < 1):
            raise LidrError(f"tag.quick_chars must be an integer >= 1 or null, got {self.quick_chars!r}")
        if not 0.0 <= float(self.min_score) <= 1.0:
            raise LidrError(f"tag.min_score must be between 0 and 1, got {self.min_score!r}")
        if not isinstance(self.batch_rows, int) or self.batch_rows < 1:
            raise LidrError(f"tag.batch_rows must be an integer >= 1, got {self.batch_rows!r}")


def _detect(columns: list[pa.ChunkedArray | pa.Array], expected: pa.ChunkedArray | pa.Array, languages: list[str],
            config: TagConfig) -> list[tuple[pa.Array, pa.Array]]:
    """Language and score per text of each column, in one language-ID call; null/blank texts are 'unknown'
    with score 0 and cost nothing, and a prefix that repeats is read once. Each text is expected in the pair's
    language (`expected`, the `lang` column): the few whose first read disagrees get a further look at up to
    `recheck_chars` characters (`read_further`; only those texts are copied out of Arrow at that length)."""
    prefixes = [p for texts in columns for p in pc.utf8_slice_codeunits(texts, 0, config.prefix_chars).to_pylist()]
    unique: dict[str, int] = {}
    for p in prefixes:
        if p is not None and p.strip() and p not in unique:
            unique[p] = len(unique)
    found = detect_languages(list(unique), languages, prefix_chars=config.prefix_chars, min_score=config.min_score,
                             quick_chars=config.quick_chars)
    codes, scores = [], []
    for p in prefixes:
        i = unique.get(p) if p is not None else None
        code, score = found[i] if i is not None else (UNKNOWN, 0.0)
        codes.append(code)
        scores.append(score)
    want = expected.to_pylist() * len(columns)
    rows = len(want) // max(len(columns), 1)
    again = [k for k, (p, w) in enumerate(zip(prefixes, want))
             if p is not None and len(p) == config.prefix_chars and disagrees((codes[k], 0.0), w)]
    if again:
        longer: list[str] = []
        for c, texts in enumerate(columns):
            picked = [k - c * rows for k in again if k // rows == c]
            if picked:
                longer += pc.utf8_slice_codeunits(pc.take(texts, pa.array(picked, pa.int64())), 0,
                                                  config.recheck_chars).to_pylist()
        distinct: dict[str, int] = {}
        for text in longer:
            distinct.setdefault(text, len(distinct))
        firsts = {text: (codes[k], scores[k]) for text, k in zip(longer, again)}
        further = read_further(list(distinct), [firsts[t] for t in distinct], languages, config.min_score,
                               config.prefix_chars, config.recheck_chars)
        for k, text in zip(again, longer):
            codes[k], scores[k] = further[distinct[text]]
    out, start = [], 0
    for texts in columns:
        end = start + len(texts)
        out.append((pa.array(codes[start:end], pa.string()), pa.array(scores[start:end], pa.float64())))
        start = end
    return out


def _language_tags(batch: pa.RecordBatch, languages: list[str], config: TagConfig) -> dict[str, pa.Array]:
    sides = ["chosen", "rejected"] + (["prompt"] if config.detect_prompt_language else [])
    found = _detect([batch.column(f"{side}_text") for side in sides], batch.column("lang"), languages, config)
    tags = {}
    for side, (codes, scores) in zip(sides, found):
        tags[f"{side}_lang"], tags[f"{side}_lang_score"] = codes, scores
    if not config.detect_prompt_language:  # the prompt's known language, with no score
        tags["prompt_lang"], tags["prompt_lang_score"] = batch.column("lang"), pa.nulls(batch.num_rows, pa.float64())
    return tags


def _content_hash(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> pa.Array:
    """md5 of prompt, chosen and rejected text (null as empty): stable across versions, vectorized in DuckDB."""
    con.register("texts", pa.table({n: batch.column(n) for n in FLAT_TEXT.names}))
    try:
        q = (f"SELECT md5(concat_ws('{SEP}', coalesce(prompt_text, ''), coalesce(chosen_text, ''), "
             "coalesce(rejected_text, ''))) AS h FROM texts")
        return con.sql(q).to_arrow_table().column("h").combine_chunks()
    finally:
        con.unregister("texts")


def _other_tags(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> dict[str, pa.Array]:
    return {
        "pair_id": batch.column("pair_id"),
        "chosen_chars": pc.cast(pc.utf8_length(batch.column("chosen_text")), pa.int64()),
        "rejected_chars": pc.cast(pc.utf8_length(batch.column("rejected_text")), pa.int64()),
        "content_hash": _content_hash(con, batch),
    }


def tag_pairs(src: Path, dst: Path, config: TagConfig, languages: list[str]) -> StageStats:
    """pairs_raw -> pairs_tagged (TAGGED: pair_id + TAG_COLUMNS, one row per input row, same order).
    Tagging drops nothing."""
    src, dst = Path(src), Path(dst)
    if not languages:
        raise LidrError("tag: no languages given for language ID")
    pf = open_table(src, _TAG_INPUT, "pairs_raw")
    stats = StageStats("tag")
    con = duckdb.connect()
    pending: deque = deque()

    def write_first() -> None:
        language_job, other = pending.popleft()
        tags = {**language_job.result(), **other}
        writer.write_batch(pa.RecordBatch.from_arrays([tags[n] for n in TAGGED.names], schema=TAGGED))

    try:
        # Language ID (in worker processes, see langid.py) runs on a helper thread while this one reads the
        # next batch and hashes it, so neither waits for the other.
        with atomic_path(dst) as tmp, ThreadPoolExecutor(1) as language_id, parquet_writer(tmp, TAGGED) as writer:
            for batch in pf.iter_batches(batch_size=config.batch_rows, columns=_TAG_INPUT.names):
                pending.append((language_id.submit(_language_tags, batch, list(languages), config),
                                _other_tags(con, batch)))
                stats.rows_in += batch.num_rows
                if len(pending) > 1:
                    write_first()
            while pending:
                write_first()
    finally:
        con.close()
    stats.kept = stats.rows_in
    return stats.check()


def load_tags(path: Path, raw: pq.ParquetFile) -> pa.Table:
    """pairs_tagged, whole (narrow: ~150 bytes a row), checked to have one row per row of `raw`."""
    tags = open_table(path, TAGGED, "pairs_tagged").read(columns=TAGGED.names)
    if tags.num_rows != raw.metadata.num_rows:
        raise LidrError(f"{path}: {tags.num_rows} tagged rows for {raw.metadata.num_rows} pairs; the tags were made "
                        "from another pairs table (rerun the tag stage)")
    return tags


def tags_of(tags: pa.Table, start: int, batch: pa.RecordBatch) -> pa.Table:
    """The tag rows of `batch`, which starts at row `start` of pairs_raw; checked by pair_id."""
    part = tags.slice(start, batch.num_rows)
    if not part.column("pair_id").combine_chunks().equals(batch.column("pair_id")):
        raise LidrError(f"pairs_tagged rows {start}..{start + batch.num_rows - 1} do not match pairs_raw by pair_id; "
                        "the tags were made from another pairs table (rerun the tag stage)")
    return part


# -- this stage in the build (the list: order.py); it streams file to file and writes its output atomically

def _run(run: RunningBuild) -> StageStats:
    return tag_pairs(run.out("pairs"), run.out("tag"), run.recipe.tag, run.recipe.all_languages)


ENTRY = Stage(name="tag", output="pairs_tagged.parquet", inputs=("pairs",), rows_from="pairs", drops=False,
              settings=lambda r: [section(r, "tag")], run=_run)
