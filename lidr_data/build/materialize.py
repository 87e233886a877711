"""Materialize a run folder: what a build wrote (its pairs and drops, stage statistics, recipe and the lineage
it resolved) becomes an immutable dataset version through `lidr_data.dataset.materialize`.

The build side decides what the manifest records: the recipe is redacted (secret-looking values never reach a
manifest or a card) and every local path made portable here, before the record is handed to the dataset layer.
`materialize_run` is the end of a build: materialize, or report that the version made from the very same pairs
already exists. Nothing here prints: progress and notices go to the callbacks the caller passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data import locks
from lidr_data.build.recipe import TINY_MODEL, Recipe
from lidr_data.build.run_folder import RunPaths
from lidr_data.dataset.layout import check_name, content_id, read_manifest
from lidr_data.dataset.lineage import model_record, parent_record
from lidr_data.dataset.materialize import SHARD_ROWS, check_schema, refuse_existing, write_version
from lidr_data.dataset.store import default_store
from lidr_data.errors import LidrError
from lidr_data.files import portable as _portable
from lidr_data.files import sha256_file, sql_literal, sql_literal_list
from lidr_data.progress import Progress, no_progress
from lidr_data.readers import read_json
from lidr_data.redact import redact_secrets


@dataclass
class RunFolder:
    """What materialize reads from a run folder (its layout: `lidr_data.build.run_folder`)."""

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
        return check_schema(self.pairs)


def _dataset_name(run: RunFolder) -> str:
    name = run.config.name if run.config else run.path.parent.name
    return check_name(str(name), "dataset name (the recipe's `name`)")


def _iteration(run: RunFolder) -> int:
    it = run.config.iteration if run.config else None
    if it is None and run.path.name.startswith("iter-") and run.path.name[5:].isdigit():
        it = int(run.path.name[5:])
    if it is None:
        con = duckdb.connect()
        it = con.execute(f"SELECT max(iteration) FROM read_parquet({sql_literal(run.pairs)})").fetchone()[0]
    return int(it or 1)


def _generator(all_files: list[Path], recipe: Recipe | None) -> dict:
    con = duckdb.connect()
    found = con.execute(
        f"SELECT DISTINCT generator_model, generator_revision FROM read_parquet({sql_literal_list(all_files)}) ORDER BY ALL"
    ).fetchall()
    if found:
        return {"model": found[0][0], "revision": found[0][1], "all": [list(f) for f in found]}
    return {"model": recipe and recipe.model, "revision": recipe and recipe.revision, "all": []}


def _lineage(run: RunFolder, parent: str | None) -> tuple[dict | None, dict]:
    """(parent record, generator model record) of a run: `parent` (a reference) when given, else what the build
    resolved when it started (`lineage.json`); a run folder without one resolves its recipe's `parent:` now."""
    workdir = _run_workdir(run.path)
    recorded = RunPaths(run.path).read_lineage()
    if parent is not None:
        parent_rec = parent_record(parent, workdir)
    elif recorded is not None:
        parent_rec = recorded.get("parent")
    else:
        parent_rec = parent_record(run.config.parent, workdir) if run.config and run.config.parent else None
    if recorded is not None and isinstance(recorded.get("generator"), dict):
        model = recorded["generator"]
    elif run.config is not None:
        tiny = workdir / "tiny-model" if run.config.model == TINY_MODEL else None
        model = model_record(run.config.model, run.config.revision, workdir, folder=tiny)
    else:
        model = {}
    return parent_rec, model


def _exclusions(run: RunFolder) -> list[dict]:
    """What the filter stage's pair-filter files dropped (exclude_pairs.json), with portable paths."""
    path = RunPaths(run.path).exclusions
    if not path.is_file():
        return []
    records = read_json(path)
    workdir = _run_workdir(run.path)
    out = []
    for rec in records:
        audit = rec.get("audit")
        if isinstance(audit, dict) and "path" in audit:
            audit = dict(audit, path=_portable(audit["path"], workdir))
        out.append(dict(rec, path=_portable(rec.get("path"), workdir), audit=audit))
    return out


def _drop_summary(run: RunFolder) -> str:
    """'every row was dropped: translation_failed 4, wrong_language 2' from the run's dropped table."""
    if run.dropped is None or pq.ParquetFile(run.dropped).metadata.num_rows == 0:
        return "the run dropped no row either: its prompts made no pair"
    names = pq.read_schema(run.dropped).names
    cols = [c for c in ("stage", "reason") if c in names]
    counts = Counter(tuple(r) for r in zip(*(pq.read_table(run.dropped, columns=cols).column(c).to_pylist()
                                            for c in cols)))
    return "every row was dropped: " + ", ".join(f"{'/'.join(map(str, k))} {n}" for k, n in counts.most_common())


_LOCAL_PATH_KEYS = {("workdir",), ("output",), ("model",), ("parent",), ("filters", "exclude_pairs"),
                    ("prompts", "source"), ("prompts", "translation_task_ids"), ("imports", "responses", "path"),
                    ("imports", "translations", "path")}


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


def _portable_generator(generator: dict, run_path: Path, model: dict) -> dict:
    """The pairs' generator (portable) plus, when the recipe's model made them, what its folder tells: the
    sha256 of its train_manifest.json and the version it was trained on (`lineage.model_record`)."""
    workdir = _run_workdir(run_path)
    out = dict(generator, model=_portable(generator.get("model"), workdir))
    out["all"] = [[_portable(m, workdir), r] for m, r in generator.get("all", [])]
    made_by = {m for m, _ in out["all"]} or {out["model"]}
    if model.get("model") in made_by:
        out.update({k: model[k] for k in ("train_manifest_sha256", "trained_on") if k in model})
    return out


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
    progress: Progress | None = None,
    allow_empty: bool = False,
    license: str | None = None,
    notify: Callable[[str], None] | None = None,
    parent: str | None = None,
) -> Path:
    """Turn a finished run folder into the immutable version `<store>/<name>/<version>` and return its path.

    `version` defaults to `iter-<N>` (N = the recipe's iteration). An existing version is never overwritten
    unless `force` is set, and then the replacement is told to `notify`. A run without pairs is refused
    (naming its drop reasons) unless `allow_empty`. `license` (a Hub license id) overrides the recipe's
    `license:`. `progress` draws the copy of the pairs (see `Progress`; none by default). `parent` (a version
    reference) overrides the parent the build recorded; it is resolved and verified before anything is written.
    """
    run = RunFolder.open(run_dir)
    with locks.hold(run.path, "build", optional=True):  # no build may rewrite the pairs while they are copied
        return _materialize(run, store, version, force, shard_rows, progress or no_progress, allow_empty, license,
                            notify, parent)


def _materialize(run: RunFolder, store: str | Path, version: str | None, force: bool, shard_rows: int,
                 progress: Progress, allow_empty: bool, license: str | None,
                 notify: Callable[[str], None] | None, parent: str | None = None) -> Path:
    run.check_schema()
    parent_rec, model = _lineage(run, parent)
    if not allow_empty and pq.ParquetFile(run.pairs).metadata.num_rows == 0:
        raise LidrError(f"{run.path}: no pairs to materialize ({_drop_summary(run)}); fix the cause, or pass "
                        "--allow-empty to write an empty version")
    final = version_path(run.path, store, version)
    refuse_existing(final, force)  # before reading anything more of the run
    # Recipe values under secret-looking keys never reach a manifest or card (env var *names* are fine); run
    # folders written before recipe.yaml was redacted at the source go through the same rule.
    recipe, run_label = portable_paths(redact_secrets(run.recipe), run.path)
    record = {
        "name": _dataset_name(run),
        "iteration": _iteration(run),
        "parent": parent_rec,
        "generator": _portable_generator(_generator([run.pairs], run.config), run.path, model),
        "license": license or (run.config and run.config.license) or None,
        "dominant_lang": run.config.dominant_lang if run.config else "en",
        "stage_stats": run.stats,
        "recipe": recipe,
        "source_run": run_label,
        "filters": {"exclude_pairs": excluded} if (excluded := _exclusions(run)) else None,
    }
    return write_version(final, run.pairs, record, dropped=run.dropped, force=force, shard_rows=shard_rows,
                         progress=progress, notify=notify)


@dataclass(frozen=True)
class Materialized:
    """What `materialize_run` did: the version's path and content id, and whether it was already there."""

    path: Path
    content_id: str
    up_to_date: bool


def materialize_run(run_dir: str | Path, store: str | Path | None = None, version: str | None = None,
                    force: bool = False, allow_empty: bool = False, progress: Progress | None = None,
                    notify: Callable[[str], None] | None = None, parent: str | None = None) -> Materialized:
    """Materialize a finished build, or reuse the version made from it: the end of `lidr build`.

    Rerunning a finished build is normal (it resumes), so an existing version made from the very same
    pairs.parquet and the same parent is reported as up to date instead of refused; a different one still needs
    `force`. `store` defaults to WORKDIR/store for a run folder WORKDIR/runs/<name>/iter-<N>.
    """
    run_dir = Path(run_dir)
    store = Path(store) if store is not None else default_store(run_dir.parents[2])
    existing = version_path(run_dir, store, version)
    if existing.exists() and not force:
        manifest = read_manifest(existing)
        if manifest.get("source_pairs_sha256") != sha256_file(run_dir / "pairs.parquet"):
            raise LidrError(f"version {existing} exists and was built from other pairs: use --version NAME for a "
                            "new version, or --force to replace it")
        wanted, _ = _lineage(RunFolder.open(run_dir), parent)
        had = manifest.get("parent") or {}
        if (wanted or {}).get("content_id") != had.get("content_id"):
            raise LidrError(f"version {existing} exists with another parent ({had.get('reference') or 'none'}; "
                            f"now: {(wanted or {}).get('reference') or 'none'}): use --version NAME for a new "
                            "version, or --force to replace it")
        return Materialized(existing, content_id(manifest), up_to_date=True)
    path = materialize(run_dir, store, version=version, force=force, progress=progress, allow_empty=allow_empty,
                       notify=notify, parent=parent)
    return Materialized(path, content_id(read_manifest(path)), up_to_date=False)
