"""Materialize a run folder into an immutable dataset version, and verify a version.

Layout of a version (the Hub's dataset layout, so `datasets.load_dataset(folder_or_repo, config)` reads it):

    data/<lang>/train-00000-of-0000N.parquet   one config per prompt language
    data/all/...                               every pair
    data/dropped/...                           every dropped row with its stage and reason
    README.md                                  the dataset card (Hub YAML metadata + text)
    manifest.json                              counts, sha256 of every file, recipe, generator, lineage

The version is assembled in a hidden temporary folder beside its destination, made read-only (files 0444,
folders 0555) and renamed into place only when complete (rename is atomic within one file system), under the
dataset's lock, never over an existing version without `force`: a killed materialize leaves no version, only a
`.tmp-*` folder that the next materialize removes. Its content id (`store.content_id`) is recorded then in the
dataset's index (`store.INDEX`), where `verify` checks the manifest against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lidr_data import __version__, locks
from lidr_data.dataset.store import (
    CARD,
    MANIFEST,
    check_name,
    content_id,
    list_versions,
    read_manifest,
    record_version,
    recorded_content_id,
    safe_relpath,
)
from lidr_data.errors import LidrError
from lidr_data.recipe import Recipe
from lidr_data.run_folder import RunPaths
from lidr_data.stages.schema import PAIR_COLUMNS, TAG_COLUMNS

SCHEMA_VERSION = 1
ALL, DROPPED = "all", "dropped"
SHARD_ROWS = 250_000  # rows per Parquet shard (a few hundred MB of text at most)
ROW_GROUP_ROWS = 10_000
STORE_LOCK_WAIT_S = 60.0  # the dataset lock is held only for the final check and rename: a wait is short
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _redact(obj):
    """Recipe values under secret-looking keys never reach a manifest or card (env var *names* are fine); run
    folders written before recipe.yaml was redacted at the source go through the same rule."""
    from lidr_data.recipe import redact_secrets

    return redact_secrets(obj)


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


@dataclass
class RunFolder:
    """What materialize reads from a run folder (its layout: `lidr_data.run_folder`)."""

    path: Path
    pairs: Path
    dropped: Path | None
    recipe: dict  # recipe.yaml as written: the manifest's record
    stats: list = field(default_factory=list)
    config: Recipe | None = None  # the same recipe through the Recipe type: what materialize reads from it

    @classmethod
    def open(cls, run_dir: str | Path) -> RunFolder:
        paths = RunPaths(Path(run_dir))
        path = paths.path
        if not path.is_dir():
            raise LidrError(f"run folder {path} does not exist")
        if not paths.pairs.is_file():
            raise LidrError(f"{path}: no {paths.pairs.name} (has the build finished?)")
        config = paths.read_recipe()
        stats = [asdict(s) for s in paths.read_stats()]
        dropped = paths.dropped
        return cls(path, paths.pairs, dropped if dropped.is_file() else None, paths.read_recipe_data() or {},
                   stats, config)

    def check_schema(self) -> pa.Schema:
        schema = pq.read_schema(self.pairs)
        missing = [f.name for f in list(PAIR_COLUMNS) + list(TAG_COLUMNS) if f.name not in schema.names]
        if missing:
            raise LidrError(f"{self.pairs}: missing published columns {', '.join(missing)}")
        return schema


def _dataset_name(run: RunFolder) -> str:
    name = run.config.name if run.config else run.path.parent.name
    return check_name(str(name), "dataset name (the recipe's `name`)")


def _iteration(run: RunFolder) -> int:
    it = run.config.iteration if run.config else None
    if it is None and run.path.name.startswith("iter-") and run.path.name[5:].isdigit():
        it = int(run.path.name[5:])
    if it is None:
        con = duckdb.connect()
        it = con.execute(f"SELECT max(iteration) FROM read_parquet('{_sql_path(run.pairs)}')").fetchone()[0]
    return int(it or 1)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _parquet_list(paths: list[Path]) -> str:
    return "[" + ", ".join(f"'{_sql_path(p)}'" for p in paths) + "]"


def compute_stats(all_files: list[Path], dropped_files: list[Path]) -> dict:
    """Counts and quality figures for the manifest and card, from the written data (numbers only, no text)."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW pairs AS SELECT * EXCLUDE (prompt, chosen, rejected) FROM read_parquet({_parquet_list(all_files)})")

    def rows(q: str) -> list[tuple]:
        return con.execute(q).fetchall()

    total = rows("SELECT count(*) FROM pairs")[0][0]
    by_lang = dict(rows("SELECT lang, count(*) FROM pairs GROUP BY lang ORDER BY lang"))
    by_dir = dict(rows("SELECT direction, count(*) FROM pairs GROUP BY direction ORDER BY direction"))
    by_lang_dir: dict = {}
    for lang, direction, n in rows("SELECT lang, direction, count(*) FROM pairs GROUP BY ALL ORDER BY ALL"):
        by_lang_dir.setdefault(lang, {})[direction] = n
    per_lang = []
    for r in rows("""
        SELECT lang, direction, count(*) AS n,
               avg((chosen_lang = lang)::INT) AS chosen_agree,
               avg((rejected_lang = lang)::INT) AS rejected_agree,
               avg(chosen_chars) AS chosen_mean, median(chosen_chars) AS chosen_median,
               avg(rejected_chars) AS rejected_mean, median(rejected_chars) AS rejected_median,
               median(chosen_chars / greatest(rejected_chars, 1)) AS ratio_median
        FROM pairs GROUP BY ALL ORDER BY ALL"""):
        per_lang.append(dict(zip(["lang", "direction", "pairs", "chosen_lang_agreement", "rejected_lang_agreement",
                                  "chosen_chars_mean", "chosen_chars_median", "rejected_chars_mean",
                                  "rejected_chars_median", "length_ratio_median"], r)))
    n_dropped, drop_reasons, drops_by_stage = 0, {}, {}
    if dropped_files:
        con.execute(f"CREATE VIEW dropped AS SELECT stage, reason FROM read_parquet({_parquet_list(dropped_files)}, union_by_name=true)")
        for stage, reason, n in rows("SELECT stage, reason, count(*) FROM dropped GROUP BY ALL ORDER BY 3 DESC, 1, 2"):
            drops_by_stage.setdefault(stage, {})[reason] = n
            drop_reasons[reason] = drop_reasons.get(reason, 0) + n
            n_dropped += n
    return {
        "pairs": total,
        "by_language": by_lang,
        "by_direction": by_dir,
        "by_language_direction": by_lang_dir,
        "dropped": n_dropped,
        "drop_reasons": drop_reasons,
        "drops_by_stage": drops_by_stage,
        "quality": per_lang,
    }


def _generator(all_files: list[Path], recipe: Recipe | None) -> dict:
    con = duckdb.connect()
    found = con.execute(
        f"SELECT DISTINCT generator_model, generator_revision FROM read_parquet({_parquet_list(all_files)}) ORDER BY ALL"
    ).fetchall()
    if found:
        return {"model": found[0][0], "revision": found[0][1], "all": [list(f) for f in found]}
    return {"model": recipe and recipe.model, "revision": recipe and recipe.revision, "all": []}


def _parent(dataset_dir: Path, iteration: int, version: str) -> dict | None:
    """The version of the previous iteration in the same dataset folder, with its manifest hash."""
    if iteration <= 1:
        return None
    if dataset_dir.is_dir():
        for v in reversed(list_versions(dataset_dir)):
            try:
                m = read_manifest(v)
            except LidrError:
                continue
            if m.get("iteration") == iteration - 1 and v.name != version:
                return {"version": v.name, "manifest_sha256": sha256_file(v / MANIFEST), "content_id": content_id(m)}
    return {"version": f"iter-{iteration - 1}", "manifest_sha256": None}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Hash every file in `folder` (but the manifest) into manifest["files"] and write manifest.json."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.suffix == ".parquet":
            entry["rows"] = pq.ParquetFile(path).metadata.num_rows
        files[rel] = entry
    manifest["files"] = files
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _drop_summary(run: RunFolder) -> str:
    """'every row was dropped: translation_failed 4, wrong_language 2' from the run's dropped table."""
    if run.dropped is None or pq.ParquetFile(run.dropped).metadata.num_rows == 0:
        return "the run dropped no row either: its prompts made no pair"
    names = pq.read_schema(run.dropped).names
    cols = [c for c in ("stage", "reason") if c in names]
    counts = Counter(tuple(r) for r in zip(*(pq.read_table(run.dropped, columns=cols).column(c).to_pylist()
                                            for c in cols)))
    return "every row was dropped: " + ", ".join(f"{'/'.join(map(str, k))} {n}" for k, n in counts.most_common())


_LOCAL_PATH_KEYS = {("workdir",), ("output",), ("model",), ("prompts", "source"), ("prompts", "translation_task_ids"),
                    ("imports", "responses", "path"), ("imports", "translations", "path")}


def _portable(value: object, workdir: Path) -> object:
    """A local path as it may be published: relative to the work folder when inside it, else its last part.
    Hub ids (`org/name`), packaged paths (`lidr:...`) and relative paths pass unchanged."""
    if not isinstance(value, str) or not value.startswith(("/", "~")):
        return value
    path = Path(value).expanduser()
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix() or "."
    except ValueError:
        return path.name or value


def _run_workdir(run_path: Path) -> Path:
    """WORKDIR of a run folder WORKDIR/runs/<name>/iter-<N> (the run's own parent otherwise)."""
    path = run_path.resolve()
    return path.parents[2] if len(path.parents) > 2 and path.parents[1].name == "runs" else path.parent


def portable_paths(recipe: dict, run_path: Path) -> tuple[dict, str]:
    """(recipe, source_run) with no absolute local path: manifests and cards are published (issue 10)."""
    workdir = _run_workdir(run_path)

    def walk(obj: object, keys: tuple[str, ...]) -> object:
        if isinstance(obj, dict):
            return {k: walk(v, (*keys, str(k))) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, keys) for v in obj]
        if keys == ("workdir",) and isinstance(obj, str):
            return Path(obj).expanduser().name or obj
        return _portable(obj, workdir) if keys in _LOCAL_PATH_KEYS else obj

    return walk(recipe, ()), str(_portable(str(run_path.resolve()), workdir))


def _portable_generator(generator: dict, run_path: Path) -> dict:
    workdir = _run_workdir(run_path)
    out = dict(generator, model=_portable(generator.get("model"), workdir))
    out["all"] = [[_portable(m, workdir), r] for m, r in generator.get("all", [])]
    return out


def temp_dir_name(version: str) -> str:
    """`.tmp-<pid>-<random>-<version>`: the pid tells a later run whether the writer is still alive."""
    return f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{version}"


def cleanup_stale_temps(dataset_dir: Path) -> None:
    """Remove `.tmp-*` folders whose writer process is gone (a killed materialize or publish)."""
    if not dataset_dir.is_dir():
        return
    for child in dataset_dir.iterdir():
        if not (child.is_dir() and child.name.startswith(".tmp-")):
            continue
        pid = child.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid.isdigit() and int(pid) == os.getpid():
            continue
        remove_tree(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_license(license: str) -> str:
    """A license id as the Hub's card metadata takes it (cc-by-4.0, apache-2.0, other, ...)."""
    if not re.fullmatch(r"[\w.+-]+", str(license)):
        raise LidrError(f"license: a license id such as cc-by-4.0 or apache-2.0, got {license!r}")
    return str(license)


def version_path(run_dir: str | Path, store: str | Path, version: str | None = None) -> Path:
    """Where `materialize` puts the version of this run: `<store>/<name>/<version or iter-N>`."""
    run = RunFolder.open(run_dir)
    return Path(store) / _dataset_name(run) / check_name(version or f"iter-{_iteration(run)}", "version")


def materialize(
    run_dir: str | Path,
    store: str | Path,
    version: str | None = None,
    force: bool = False,
    shard_rows: int = SHARD_ROWS,
    progress: bool = True,
    allow_empty: bool = False,
    license: str | None = None,
) -> Path:
    """Turn a finished run folder into the immutable version `<store>/<name>/<version>` and return its path.

    `version` defaults to `iter-<N>` (N = the recipe's iteration). An existing version is never overwritten
    unless `force` is set, and then the replacement is announced on stderr. A run without pairs is refused
    (naming its drop reasons) unless `allow_empty`. `license` (a Hub license id) overrides the recipe's
    `license:`.
    """
    run = RunFolder.open(run_dir)
    with locks.hold(run.path, "build", optional=True):  # no build may rewrite the pairs while they are copied
        return _materialize(run, store, version, force, shard_rows, progress, allow_empty, license)


def _materialize(run: RunFolder, store: str | Path, version: str | None, force: bool, shard_rows: int,
                 progress: bool, allow_empty: bool, license: str | None) -> Path:
    run_dir = run.path
    schema = run.check_schema()
    if not allow_empty and pq.ParquetFile(run.pairs).metadata.num_rows == 0:
        raise LidrError(f"{run.path}: no pairs to materialize ({_drop_summary(run)}); fix the cause, or pass "
                        "--allow-empty to write an empty version")
    name = _dataset_name(run)
    iteration = _iteration(run)
    final = version_path(run_dir, store, version)
    dataset_dir, version = final.parent, final.name
    if final.exists() and not force:  # checked again, under the dataset's lock, before the final rename
        raise LidrError(f"version {final} already exists (versions are immutable; pass --force to replace it)")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temps(dataset_dir)
    tmp = dataset_dir / temp_dir_name(version)
    tmp.mkdir()
    try:
        data = tmp / "data"
        pf = pq.ParquetFile(run.pairs)
        rows = duckdb.connect().execute(f"SELECT DISTINCT lang FROM read_parquet('{_sql_path(run.pairs)}')").fetchall()
        if any(r[0] is None for r in rows):
            raise LidrError(f"{run.pairs}: some pairs have no `lang`")
        langs = sorted(r[0] for r in rows)
        for lang in langs:
            check_name(lang, "language code")
            if lang in (ALL, DROPPED):
                raise LidrError(f"{run.pairs}: language code {lang!r} clashes with a reserved config name")
        writers = {ALL: _ShardWriter(data / ALL, schema, shard_rows)}
        writers.update({lang: _ShardWriter(data / lang, schema, shard_rows) for lang in langs})
        with _progress(progress, f"materialize {name}/{version}", pf.metadata.num_rows) as advance:
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
        if run.dropped is not None:
            dschema = pq.read_schema(run.dropped)
            dw = _ShardWriter(data / DROPPED, dschema, shard_rows)
            for batch in pq.ParquetFile(run.dropped).iter_batches(batch_size=ROW_GROUP_ROWS):
                dw.write(pa.Table.from_batches([batch], schema=dschema))
            configs[DROPPED] = [p.relative_to(tmp).as_posix() for p in dw.close()]

        all_files = [tmp / p for p in configs[ALL]]
        counts = compute_stats(all_files, [tmp / p for p in configs.get(DROPPED, [])])
        if counts["pairs"] != pf.metadata.num_rows:  # a guard on the writer, not on the input
            raise LidrError(f"internal error: wrote {counts['pairs']} pairs, read {pf.metadata.num_rows}")
        recipe, run_label = portable_paths(_redact(run.recipe), run.path)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": version,
            "iteration": iteration,
            "parent": _parent(dataset_dir, iteration, version),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lidr_data_version": __version__,
            "generator": _portable_generator(_generator(all_files, run.config), run.path),
            "license": check_license(license or (run.config and run.config.license) or "unknown"),
            "dominant_lang": run.config.dominant_lang if run.config else "en",
            "configs": configs,
            "counts": {k: v for k, v in counts.items() if k != "quality"},
            "quality": counts["quality"],
            "stage_stats": run.stats,
            "recipe": recipe,
            "source_run": run_label,
            "source_pairs_sha256": sha256_file(run.pairs),  # lets `lidr build` see a version is up to date
            "files": {},
        }
        from lidr_data.dataset.card import render_card

        (tmp / CARD).write_text(render_card(manifest, location=str(final.resolve())), encoding="utf-8")
        write_manifest(tmp, manifest)
        _fsync_tree(tmp)
        move_into_place(tmp, final, force=force)
    except BaseException:
        remove_tree(tmp)
        raise
    return final


def move_into_place(tmp: Path, final: Path, force: bool = False) -> str:
    """Make a complete version folder read-only and rename it to its final name; return its content id.

    Under the dataset's lock: an existing version is refused unless `force`, and then swapped out first and
    deleted after, so readers never see a missing or half version. The content id goes into the dataset's index.
    """
    cid = content_id(read_manifest(tmp))
    make_read_only(tmp)
    try:
        with locks.hold(final.parent, "writer of this dataset", wait_s=STORE_LOCK_WAIT_S):
            replaced = final.exists() or final.is_symlink()
            if replaced:
                if not force:
                    raise LidrError(f"version {final} already exists (versions are immutable; pass --force to "
                                    "replace it)")
                from rich.console import Console

                Console(stderr=True).print(f"[yellow]--force: replacing existing version {final}[/]")
                old = final.parent / temp_dir_name(f"old-{final.name}")
                final.rename(old)
                tmp.rename(final)
                remove_tree(old)
            else:
                tmp.rename(final)
            record_version(final.parent, final.name, cid, replaced=replaced)
    except BaseException:
        if tmp.exists():
            make_writable(tmp)  # the caller removes it
        raise
    return cid


def make_read_only(folder: Path) -> None:
    """Drop every write bit under `folder` (files and folders, `folder` included): a version is immutable."""
    for path in [*sorted(folder.rglob("*"), reverse=True), folder]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~_WRITE_BITS)


def make_writable(folder: Path) -> None:
    """Give the owner write permission again under `folder` (before deleting or replacing a version)."""
    if not folder.exists():
        return
    folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR | (stat.S_IXUSR if path.is_dir() else 0))


def remove_tree(folder: Path) -> None:
    """Delete a folder that may be a read-only version (or a half-written one)."""
    if folder.is_symlink() or not folder.exists():
        return
    make_writable(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename publishes them (a crash must not leave a version of empty files)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class _progress:
    """A rich progress bar (or nothing) as a context manager yielding an `advance(n)` callable."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=True)
        self._p.start()
        task = self._p.add_task(self.description, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.stop()
        return False


@dataclass
class VerifyResult:
    version_dir: Path
    problems: list[str]
    files_checked: int
    content_id: str | None = None  # of the manifest as it is now
    recorded_content_id: str | None = None  # what the store's index (or the caller) recorded; None: unknown

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(version_dir: str | Path, expected_content_id: str | None = None) -> VerifyResult:
    """Recompute every hash and row count in the manifest; report missing, altered and unlisted files, and a
    manifest whose content id differs from the one recorded when the version was made (`expected_content_id`,
    else the store's index)."""
    folder = Path(version_dir)
    manifest = read_manifest(folder)
    problems: list[str] = []
    cid = content_id(manifest)
    recorded = expected_content_id or recorded_content_id(folder)
    if recorded is not None and recorded != cid:
        problems.append(f"{MANIFEST}: manifest altered (content id {cid}, recorded when the version was made: "
                        f"{recorded})")
    files = manifest["files"]
    for rel, entry in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 mismatch (file altered)")
            continue
        if "rows" in entry:
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except Exception as e:  # noqa: BLE001 (any read failure is a verification failure)
                problems.append(f"{rel}: unreadable Parquet ({e})")
                continue
            if rows != entry["rows"]:
                problems.append(f"{rel}: {rows} rows, manifest says {entry['rows']}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        # Hub-managed files (.gitattributes, which every Hub repo has) and download metadata are not ours.
        if rel not in files and rel != ".gitattributes" and not rel.startswith(".cache/"):
            problems.append(f"{rel}: not listed in the manifest")
    for cfg, rels in manifest["configs"].items():
        for rel in rels:
            if rel not in files or not safe_relpath(rel):
                problems.append(f"config {cfg}: file {rel} not in the manifest")
    if all(p.startswith(f"{MANIFEST}:") for p in problems):  # counts: only meaningful once the files are intact
        all_files = [folder / rel for rel in manifest["configs"].get(ALL, [])]
        dropped_files = [folder / rel for rel in manifest["configs"].get(DROPPED, [])]
        counts = compute_stats(all_files, dropped_files)
        for key in ("pairs", "by_language", "by_direction", "by_language_direction", "dropped", "drop_reasons"):
            if counts[key] != manifest["counts"].get(key):
                problems.append(f"counts.{key}: data has {counts[key]}, manifest says {manifest['counts'].get(key)}")
        for cfg, rels in manifest["configs"].items():
            if cfg in (ALL, DROPPED):
                continue
            n = sum(files[r].get("rows", 0) for r in rels)
            if n != manifest["counts"]["by_language"].get(cfg, 0):
                problems.append(f"config {cfg}: {n} rows, manifest counts {manifest['counts']['by_language'].get(cfg)}")
    return VerifyResult(folder, problems, len(files), cid, recorded)
