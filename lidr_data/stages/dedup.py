"""Dedup stage: exact duplicates (same prompt, chosen and rejected text), then near duplicates (MinHash LSH over
the prompt and chosen text), among the pairs the filter kept. The first row in input order is kept; every dropped
row names it in `duplicate_of`. It writes the published pairs table: pairs_raw's rows with their tags.

How it stays fast and flat in memory at a million pairs:
- exact: DuckDB groups the content hashes (from pairs_tagged: no text) and keeps the first row of each group;
- near: text is read in streamed batches, tokenized and hashed in polars (vectorized: no Python loop per pair),
  shingled in numpy and sketched by rensa (MinHash); only one uint64 per LSH band and row is kept, and a sort
  per band flags the rows sharing a band with another row. Only those candidates are sketched again, paired
  within their band buckets, verified by their estimated Jaccard similarity, and grouped (union-find); each
  group keeps its first row.
- Shingles are word n-grams, except that characters of scripts written without spaces (Han, Hiragana, Katakana,
  Thai) are tokens of their own, so the n-grams there are character n-grams (a Japanese paragraph is not one word).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data.config import option
from lidr_data.errors import LidrError
from lidr_data.files import atomic_paths
from lidr_data.schema import DROP_COLUMNS, FLAT_TEXT, PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.stages.base import RunningBuild, Stage, StageStats, section
from lidr_data.stages.filter import FILTERED
from lidr_data.stages.tables import (
    WriteBehind,
    count_reasons,
    open_table,
    parquet_writer,
    read_ahead,
    with_drop_columns,
    with_tags,
)
from lidr_data.stages.tag import load_tags, tags_of

# One token per character in scripts without spaces; otherwise a run of non-space, non-punctuation characters.
_NOSPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}"
TOKEN_PATTERN = rf"[{_NOSPACE}]|[^\s\p{{P}}\p{{S}}{_NOSPACE}]+"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: combines token hashes into shingle hashes


@dataclass
class DedupConfig:
    """Dedup settings (recipe section `dedup:`)."""

    exact: bool = option(True, "Drop pairs whose prompt, chosen and rejected texts all equal an earlier pair's.")
    near: bool = option(True, "Drop pairs whose prompt + chosen text is a near duplicate of an earlier pair's.")
    threshold: float = option(0.8, "Estimated Jaccard similarity of shingle sets at or above which pairs are near "
                          "duplicates (0..1).")
    num_perm: int = option(128, "MinHash permutations (more: finer similarity estimates, more time and memory).")
    num_bands: int | None = option(None, "LSH bands (must divide num_perm); default: chosen for the threshold.")
    shingle_size: int = option(3, "Tokens per shingle (words; characters in Chinese, Japanese and Thai).")
    seed: int = option(42, "MinHash seed.")
    batch_rows: int = option(10_000, "Rows per streamed batch (memory vs. overhead).")

    def __post_init__(self) -> None:
        for name in ("exact", "near"):
            if not isinstance(getattr(self, name), bool):
                raise LidrError(f"dedup.{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0.0 < self.threshold <= 1.0:
            raise LidrError(f"dedup.threshold must be a number in (0, 1], got {self.threshold!r}")
        for name in ("num_perm", "shingle_size", "batch_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LidrError(f"dedup.{name} must be an integer >= 1, got {value!r}")
        if self.num_bands is not None:
            if isinstance(self.num_bands, bool) or not isinstance(self.num_bands, int) or self.num_bands < 1:
                raise LidrError(f"dedup.num_bands must be an integer >= 1, got {self.num_bands!r}")
            if self.num_perm % self.num_bands:
                raise LidrError(f"dedup.num_bands must divide dedup.num_perm ({self.num_bands} does not divide "
                                f"{self.num_perm})")

    def bands(self) -> int:
        return self.num_bands or optimal_bands(self.threshold, self.num_perm)


def optimal_bands(threshold: float, num_perm: int) -> int:
    """Bands (dividing num_perm) minimizing the weighted false-positive and false-negative areas of the LSH
    S-curve (as datasketch does). Misses weigh 4x more than extra candidates, which are verified anyway:
    at threshold 0.8 and 128 permutations this gives 16 bands of 8 (not 8 of 16, which misses ~half the pairs
    of similarity 0.85)."""
    s_lo = np.linspace(0.0, threshold, 200)
    s_hi = np.linspace(threshold, 1.0, 200)
    best, best_err = 1, float("inf")
    for b in range(1, num_perm + 1):
        if num_perm % b:
            continue
        r = num_perm // b
        fp = np.trapezoid(1 - (1 - s_lo**r) ** b, s_lo)
        fn = np.trapezoid((1 - s_hi**r) ** b, s_hi)
        err = 0.2 * fp + 0.8 * fn
        if err < best_err:
            best, best_err = b, err
    return best


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint64 shingle hashes, row offsets of length n+1) for lower-cased texts, all vectorized.
    A text shorter than one shingle gives one shingle of its tokens; an empty text gives none."""
    tokens = (pl.from_arrow(pa.chunked_array([texts]) if isinstance(texts, pa.Array) else texts)
              .fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)
              .list.eval(pl.element().hash(config.seed)))
    arr = tokens.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    lens = ends - starts
    n = config.shingle_size
    counts = np.where(lens >= n, lens - n + 1, np.minimum(lens, 1))
    sh_offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(counts, out=sh_offsets[1:])
    total = int(sh_offsets[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint64), sh_offsets.astype(np.uint64)
    row = np.repeat(np.arange(len(lens)), counts)
    pos = starts[row] + (np.arange(total) - sh_offsets[row])
    row_end = ends[row]
    out = flat[pos].copy()
    last = len(flat) - 1
    with np.errstate(over="ignore"):
        for j in range(1, n):
            nxt = pos + j
            tok = np.where(nxt < row_end, flat[np.minimum(nxt, last)], np.uint64(0))
            out = out * _MIX + tok + np.uint64(j)
    return out, sh_offsets.astype(np.uint64)


def _digests(texts, config: DedupConfig):
    """rensa digest matrix of the texts and the mask of texts that have at least one shingle."""
    import rensa

    flat, offsets = shingle_hashes(texts, config)
    nonempty = np.diff(offsets.astype(np.int64)) > 0
    if not nonempty.all():  # rensa wants no empty rows: drop them from the offsets
        keep_off = np.concatenate([[0], offsets[1:][nonempty]]).astype(np.uint64)
        offsets = keep_off
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, config.num_perm, config.seed)
    return matrix, nonempty


# Near duplicates are only looked for among pairs of the same language and pivot: the English pairs of one item
# share prompt and chosen by construction (one per pivot language, differing in the rejected side) and must all
# stay, as the issue asks for an English pair per non-dominant language.
NEAR_COLUMNS = ["prompt_text", "chosen_text", "lang", "pivot_lang"]


def _group_hash(batch: pa.RecordBatch) -> np.ndarray:
    """uint64 per row identifying its (lang, pivot_lang) group (stable within a run, which is all that is needed)."""
    lang = pl.from_arrow(batch.column("lang")).fill_null("")
    pivot = pl.from_arrow(batch.column("pivot_lang")).fill_null("")
    return (lang + "\x00" + pivot).hash(seed=0).to_numpy().astype(np.uint64)


def _near_texts(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(pc.fill_null(batch.column("prompt_text"), ""),
                                       pc.fill_null(batch.column("chosen_text"), ""), "\n")


class _UnionFind:
    """Groups of verified near duplicates; each group's root is its smallest row index (the kept row)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def _exact(content_hash: pa.ChunkedArray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """first[i] = the first of `rows` with row i's content hash (i itself when i is first or not in `rows`)."""
    table = pa.table({"content_hash": content_hash.take(pa.array(rows)), "row_idx": pa.array(rows)})
    con = duckdb.connect()
    try:
        con.register("h", table)
        dups = con.sql("SELECT row_idx, min(row_idx) OVER (PARTITION BY content_hash) AS first_idx FROM h "
                       "QUALIFY row_idx <> first_idx").to_arrow_table()
    finally:
        con.close()
    first = np.arange(n_rows, dtype=np.int64)
    first[dups.column("row_idx").to_numpy()] = dups.column("first_idx").to_numpy()
    return first


def _as_array(matrix, num_perm: int) -> np.ndarray:
    """A rensa digest matrix as a (rows, num_perm) uint32 array (rensa exposes rows as lists only)."""
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(-1, num_perm)


def _band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """(rows, bands) uint64: one hash per LSH band of each signature."""
    blocks = sig.reshape(len(sig), bands, -1)
    h = np.zeros((len(sig), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(blocks.shape[2]):
            h = h * _MIX + blocks[:, :, j].astype(np.uint64)
    return h


def _sketch(texts: pa.Array, config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    matrix, nonempty = _digests(texts, config)
    return _as_array(matrix, config.num_perm), nonempty


def _sketches(pf: pq.ParquetFile, rows: np.ndarray, config: DedupConfig) -> Iterator[tuple[np.ndarray, ...]]:
    """(row ids, (lang, pivot) group hashes, MinHash signatures) of the rows where `rows` is true that have a
    shingle, batch by batch in order. Batches are sketched on worker threads (polars, numpy and rensa release
    the GIL for most of the work: 1.9x on 2 cores) while the next ones are read ahead."""
    with ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 1))) as pool:
        pending: deque = deque()
        start = 0
        for batch in read_ahead(pf.iter_batches(batch_size=config.batch_rows, columns=NEAR_COLUMNS)):
            ids = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            mask = rows[ids]
            if mask.any():
                job = pool.submit(_sketch, _near_texts(batch).filter(pa.array(mask)), config)
                pending.append((ids[mask], _group_hash(batch)[mask], job))
            while pending and (len(pending) > 4 or pending[0][2].done()):
                yield _finished(*pending.popleft())
        while pending:
            yield _finished(*pending.popleft())


def _finished(ids: np.ndarray, group: np.ndarray, job: Future) -> tuple[np.ndarray, ...]:
    sig, nonempty = job.result()
    return ids[nonempty], group[nonempty], sig


def _near(pf: pq.ParquetFile, alive: np.ndarray, config: DedupConfig) -> np.ndarray:
    """root[i] = the first row of row i's near-duplicate group (i itself when kept), over rows where alive.

    LSH banding is done here in numpy on one uint64 per band and row (128 MB per million rows at 16 bands)
    rather than in an LSH index object: rensa's index for a million rows takes ~2.5 GB."""
    n_rows = len(alive)
    root = np.arange(n_rows, dtype=np.int64)
    bands = config.bands()
    keys = np.zeros((n_rows, bands), dtype=np.uint64)
    sketched = np.zeros(n_rows, dtype=bool)
    for ids, group, sig in _sketches(pf, alive, config):
        keys[ids] = _band_keys(sig, bands) ^ group[:, None]
        sketched[ids] = True
    # Rows sharing at least one band with another row are the only ones that can be near duplicates.
    rows_in = np.flatnonzero(sketched)
    is_cand = np.zeros(n_rows, dtype=bool)
    for b in range(bands):
        k = keys[rows_in, b]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        eq = ks[1:] == ks[:-1]
        hit = np.zeros(len(ks), dtype=bool)
        hit[1:] |= eq
        hit[:-1] |= eq
        is_cand[rows_in[order[hit]]] = True
    del keys
    if is_cand.sum() < 2:
        return root
    # Sketch the candidates again (a few percent of rows) for the full signatures.
    parts = list(_sketches(pf, is_cand, config))
    rows = np.concatenate([ids for ids, _, _ in parts])  # ascending: batches are read in order
    group = np.concatenate([g for _, g, _ in parts])
    sig = np.concatenate([s for _, _, s in parts])
    # Candidate edges: within each band bucket (rows in input order), each row with the previous row and with
    # the bucket's first row; an edge counts when the estimated Jaccard similarity reaches the threshold.
    r = config.num_perm // bands
    uf = _UnionFind()
    for b in range(bands):
        block = sig[:, b * r:(b + 1) * r]
        h = _band_hash(block) ^ group
        order = np.lexsort((rows, h))
        hs, bs, gs = h[order], block[order], group[order]
        same = np.concatenate([[False], (hs[1:] == hs[:-1]) & (gs[1:] == gs[:-1]) & (bs[1:] == bs[:-1]).all(axis=1)])
        if not same.any():
            continue
        pos = np.arange(len(order))
        first = np.maximum.accumulate(np.where(same, 0, pos))
        later = pos[same]
        a = np.concatenate([order[later], order[later]])
        c = np.concatenate([order[later - 1], order[first[later]]])
        similar = (sig[a] == sig[c]).mean(axis=1) >= config.threshold
        for x, y in zip(rows[a][similar].tolist(), rows[c][similar].tolist()):
            if x != y:
                uf.union(x, y)
    for x in list(uf.parent):
        root[x] = uf.find(x)
    return root


def _band_hash(block: np.ndarray) -> np.ndarray:
    """A uint64 per row of a band (for sorting; equality is re-checked on the band itself)."""
    h = np.zeros(len(block), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(block.shape[1]):
            h = h * _MIX + block[:, j].astype(np.uint64)
    return h


def _kept_rows(path: Path, n_rows: int) -> np.ndarray:
    """The row numbers in the filter's kept table, checked to be increasing row numbers of pairs_raw."""
    rows = open_table(path, FILTERED, "filtered pairs").read(columns=["row"]).column("row").to_numpy()
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_rows or (np.diff(rows) <= 0).any()):
        raise LidrError(f"{path}: row numbers are not increasing rows of pairs_raw ({n_rows} rows); "
                        "rerun the filter stage")
    return rows


def dedup_pairs(raw: Path, tagged: Path, filtered: Path, kept_dst: Path, dropped_dst: Path,
                config: DedupConfig) -> StageStats:
    """pairs_raw + pairs_tagged + the filter's kept rows -> the published pairs table (PAIR_COLUMNS +
    TAG_COLUMNS, no flat text) and the dropped rows (pairs_raw and tag columns + stage, reason =
    exact_duplicate | near_duplicate, duplicate_of = the kept pair_id)."""
    raw, kept_dst, dropped_dst = Path(raw), Path(kept_dst), Path(dropped_dst)
    pf = open_table(raw, pa.schema([*PAIR_COLUMNS, *FLAT_TEXT]), "pairs_raw")
    tags = load_tags(tagged, pf)
    n_rows = pf.metadata.num_rows
    rows = _kept_rows(Path(filtered), n_rows)
    selected = np.zeros(n_rows, dtype=bool)
    selected[rows] = True
    first = _exact(tags.column("content_hash"), rows, n_rows) if config.exact else np.arange(n_rows, dtype=np.int64)
    exact_dup = first != np.arange(n_rows)
    root = _near(pf, selected & ~exact_dup, config) if config.near and len(rows) else np.arange(n_rows, dtype=np.int64)
    near_dup = root != np.arange(n_rows)
    keeper = root[first]  # an exact copy of a near duplicate points at the row that was finally kept
    pair_ids = tags.column("pair_id")
    out_schema = pa.schema([*PAIR_COLUMNS, *TAG_COLUMNS])
    dropped_schema = pa.schema([*pf.schema_arrow, *TAG_COLUMNS, *DROP_COLUMNS])
    stats = StageStats("dedup")
    # The kept table is renamed last: it marks the stage's output complete.
    with atomic_paths(dropped_dst, kept_dst) as tmps, parquet_writer(tmps[1], out_schema, final=True) as kept_w, \
            parquet_writer(tmps[0], dropped_schema, final=True) as dropped_w, WriteBehind() as writes:
        start = 0
        for batch in read_ahead(pf.iter_batches(batch_size=config.batch_rows)):
            ids = np.arange(start, start + batch.num_rows)
            part = tags_of(tags, start, batch)
            start += batch.num_rows
            sel = selected[ids]
            if not sel.any():
                continue
            drop = (exact_dup[ids] | near_dup[ids]) & sel
            stats.rows_in += int(sel.sum())
            table = with_tags(batch, part)
            kept = table.filter(pa.array(sel & ~drop)).select(out_schema.names)
            stats.kept += kept.num_rows
            if kept.num_rows:
                writes.write(kept_w, kept.cast(out_schema))
            if drop.any():
                d_ids = ids[drop]
                reasons = pa.array(np.where(exact_dup[d_ids], "exact_duplicate", "near_duplicate"), pa.string())
                dup_of = pair_ids.take(pa.array(keeper[d_ids])).combine_chunks()
                writes.write(dropped_w, with_drop_columns(table.filter(pa.array(drop)), "dedup", reasons, dup_of))
                count_reasons(stats, reasons)
    return stats.check()


# -- this stage in the build (the list: order.py); it streams file to file and writes its outputs atomically

def _run(run: RunningBuild) -> StageStats:
    return dedup_pairs(run.out("pairs"), run.out("tag"), run.out("filter"), run.out("dedup"), run.drops("dedup"),
                       run.recipe.dedup)


ENTRY = Stage(name="dedup", output="pairs.parquet", inputs=("pairs", "tag", "filter"), rows_from="filter",
              settings=lambda r: [section(r, "dedup")], run=_run)
