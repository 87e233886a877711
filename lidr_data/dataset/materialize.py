"""Make an immutable dataset version from a pairs table, its dropped rows and a manifest record (see
`layout.py` for what a version holds).

The version is assembled in a hidden temporary folder beside its destination, made read-only (files 0444,
folders 0555) and renamed into place only when complete (rename is atomic within one file system), under the
dataset's lock, never over an existing version without `force`: a killed materialize leaves no version, only a
`.tmp-*` folder that the next materialize removes. Its content id (`layout.content_id`) is recorded then in the
dataset's index (`layout.INDEX`), where `verify` checks the manifest against it.

What the tables are made from is the caller's business: `lidr_data.build.materialize` reads a run folder into
them. Nothing here prints: progress and notices go to the callbacks the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data.dataset.card import check_license, render_card
from lidr_data.dataset.layout import (
    ALL,
    CARD,
    DROPPED,
    SCHEMA_VERSION,
    check_name,
    compute_stats,
    write_manifest,
)
from lidr_data.dataset.store import move_into_place
from lidr_data.errors import LidrError
from lidr_data.files import (
    cleanup_stale_temps,
    disk_full,
    fsync_tree,
    no_space_error,
    remove_tree,
    sha256_file,
    sql_literal,
    temp_dir_name,
)
from lidr_data.progress import Progress, no_progress
from lidr_data.schema import PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.version import __version__

SHARD_ROWS = 250_000  # rows per Parquet shard (a few hundred MB of text at most)
ROW_GROUP_ROWS = 10_000

# What the maker of the pairs records about them (`write_version`'s `record`), in manifest order around the
# fields this module computes.
RECORD_FIELDS = ("name", "iteration", "parent", "generator", "license", "dominant_lang", "stage_stats", "recipe",
                 "source_run")


class _ShardWriter:
    """Appends Arrow batches to `data/<config>/train-*.parquet`, starting a new shard every `shard_rows` rows."""

    def __init__(self, folder: Path, schema: pa.Schema, shard_rows: int):
        self.folder, self.schema, self.shard_rows = folder, schema, shard_rows
        self.paths: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None or self._in_shard >= self.shard_rows:
                self._open()
            take = min(table.num_rows, self.shard_rows - self._in_shard)
            self._writer.write_table(table.slice(0, take), row_group_size=ROW_GROUP_ROWS)
            self._in_shard += take
            self.rows += take
            table = table.slice(take)

    def _open(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"train-{len(self.paths):05d}.parquet"
        self.paths.append(path)
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._in_shard = 0

    def close(self) -> list[Path]:
        if self._writer is None:  # an empty config still gets one (empty) file so that it loads
            self._open()
        self._writer.close()
        n = len(self.paths)
        final = []
        for i, path in enumerate(self.paths):  # Hub naming: train-00000-of-00002.parquet
            target = path.with_name(f"train-{i:05d}-of-{n:05d}.parquet")
            path.rename(target)
            final.append(target)
        return final


def check_schema(pairs: Path) -> pa.Schema:
    """The pairs table's schema, refused when a published column is missing."""
    schema = pq.read_schema(pairs)
    missing = [f.name for f in list(PAIR_COLUMNS) + list(TAG_COLUMNS) if f.name not in schema.names]
    if missing:
        raise LidrError(f"{pairs}: missing published columns {', '.join(missing)}")
    return schema


def refuse_existing(final: Path, force: bool) -> None:
    """Versions are immutable: an existing one is replaced only with `force`."""
    if final.exists() and not force:
        raise LidrError(f"version {final} already exists (versions are immutable; pass --force to replace it)")


def write_version(final: Path, pairs: Path, record: dict, dropped: Path | None = None, force: bool = False,
                  shard_rows: int = SHARD_ROWS, progress: Progress = no_progress,
                  notify: Callable[[str], None] | None = None) -> Path:
    """Write the version `final` (`<store>/<name>/<version>`) from the `pairs` table (and the `dropped` rows) and
    return it.

    `record` holds `RECORD_FIELDS` (and optionally `filters`), copied into the manifest as they are: a manifest
    is published, so they must already be redacted and hold no local path. An existing version is never
    overwritten unless `force` is set, and then the replacement is told to `notify`. `progress` draws the copy of
    the pairs.
    """
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise ValueError(f"manifest record without {', '.join(missing)}")
    schema = check_schema(pairs)
    name = record["name"]
    dataset_dir, version = final.parent, final.name
    refuse_existing(final, force)  # checked again, under the dataset's lock, before the final rename
    dataset_dir.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temps(dataset_dir)
    tmp = dataset_dir / temp_dir_name(version)
    tmp.mkdir()
    try:
        data = tmp / "data"
        pf = pq.ParquetFile(pairs)
        rows = duckdb.connect().execute(f"SELECT DISTINCT lang FROM read_parquet({sql_literal(pairs)})").fetchall()
        if any(r[0] is None for r in rows):
            raise LidrError(f"{pairs}: some pairs have no `lang`")
        langs = sorted(r[0] for r in rows)
        for lang in langs:
            check_name(lang, "language code")
            if lang in (ALL, DROPPED):
                raise LidrError(f"{pairs}: language code {lang!r} clashes with a reserved config name")
        writers = {ALL: _ShardWriter(data / ALL, schema, shard_rows)}
        writers.update({lang: _ShardWriter(data / lang, schema, shard_rows) for lang in langs})
        with progress(f"materialize {name}/{version}", pf.metadata.num_rows) as advance:
            for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS):
                table = pa.Table.from_batches([batch], schema=schema)
                writers[ALL].write(table)
                lang_col = table.column("lang")
                for lang in langs:
                    part = table.filter(pc.equal(lang_col, lang))
                    if part.num_rows:
                        writers[lang].write(part)
                advance(table.num_rows)
        configs = {cfg: [p.relative_to(tmp).as_posix() for p in w.close()] for cfg, w in writers.items()}
        if dropped is not None:
            dschema = pq.read_schema(dropped)
            dw = _ShardWriter(data / DROPPED, dschema, shard_rows)
            for batch in pq.ParquetFile(dropped).iter_batches(batch_size=ROW_GROUP_ROWS):
                dw.write(pa.Table.from_batches([batch], schema=dschema))
            configs[DROPPED] = [p.relative_to(tmp).as_posix() for p in dw.close()]

        all_files = [tmp / p for p in configs[ALL]]
        counts = compute_stats(all_files, [tmp / p for p in configs.get(DROPPED, [])])
        if counts["pairs"] != pf.metadata.num_rows:  # a guard on the writer, not on the input
            raise LidrError(f"internal error: wrote {counts['pairs']} pairs, read {pf.metadata.num_rows}")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": version,
            "iteration": record["iteration"],
            "parent": record["parent"],
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lidr_data_version": __version__,
            "generator": record["generator"],
            "license": check_license(record["license"] or "unknown"),
            "dominant_lang": record["dominant_lang"],
            "configs": configs,
            "counts": {k: v for k, v in counts.items() if k != "quality"},
            "quality": counts["quality"],
            "stage_stats": record["stage_stats"],
            "recipe": record["recipe"],
            "source_run": record["source_run"],
            "source_pairs_sha256": sha256_file(pairs),  # lets `lidr build` see a version is up to date
            "files": {},
        }
        if record.get("filters"):  # e.g. which audit removed what (filters.exclude_pairs)
            manifest["filters"] = record["filters"]
        (tmp / CARD).write_text(render_card(manifest, location=str(final.resolve())), encoding="utf-8")
        write_manifest(tmp, manifest)
        fsync_tree(tmp)
        move_into_place(tmp, final, force=force, notify=notify)
    except BaseException as e:
        remove_tree(tmp)
        if isinstance(e, Exception) and not isinstance(e, LidrError) and disk_full(e):
            raise no_space_error(final, f"version {final}") from e
        raise
    return final


