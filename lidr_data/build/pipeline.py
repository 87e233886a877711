"""The LIDR build: prompts -> respond -> translate -> pairs -> tag -> filter -> dedup, in a run folder.

Running, resuming and fingerprinting only: each stage declares its own entry (its files, the settings its output
depends on, the function that runs it) at the end of its module, the build walks `stages.order.STAGES`, and the
run folder's layout is `run_folder.RunPaths`.

Resuming: every table is written atomically (temporary file + rename) and a stage counts as finished only
when its outputs exist and `state.json` holds the fingerprint of the settings it ran with. A fingerprint
chains the fingerprint of the stage before it, so changing a setting reruns that stage and everything after
it; a stage that reruns makes the following ones rerun too. Generation inside a stage resumes through the
request cache, so an interrupted respond or translate loses at most one batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data import locks
from lidr_data.build.recipe import TINY_MODEL, Recipe, ResponsesImport, TranslationsImport, with_overrides
from lidr_data.build.run_folder import DROPPED_DIR, RunPaths
from lidr_data.build.run_folder import run_dir as _run_dir
from lidr_data.dataset.lineage import model_record, parent_record
from lidr_data.files import atomic_path, remove_stale_temps, sql_literal, write_json_atomic, write_text_atomic
from lidr_data.generation import load_generator as default_load_generator
from lidr_data.generation.base import Generator
from lidr_data.generation.cache import RequestCache
from lidr_data.progress import Progress
from lidr_data.stages.base import Stage, StageStats
from lidr_data.stages.order import BY_NAME, STAGE_NAMES, STAGES
from lidr_data.stages.tables import write_parquet_atomic
from lidr_data.tiny_model import ensure_tiny_model

# Views of STAGES by name (what each stage writes; whose kept rows are exactly its rows in).
OUTPUTS = {s.name: s.output for s in STAGES}
FEEDS = {s.name: s.rows_from for s in STAGES if s.rows_from}


def run_folder(recipe: Recipe) -> Path:
    return _run_dir(recipe.workdir, recipe.name, recipe.iteration)


def _hash(obj: object) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_settings(recipe: Recipe) -> dict[str, object]:
    """The recipe settings each stage's output depends on (operational knobs such as batch size excluded)."""
    return {stage.name: stage.settings(recipe) for stage in STAGES}


def read_stats(run_dir: str | Path) -> list[StageStats]:
    return RunPaths(Path(run_dir)).read_stats()


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _drop_reasons(path: Path) -> Counter:
    if not path.is_file() or _rows(path) == 0:
        return Counter()
    return Counter(pq.read_table(path, columns=["reason"]).column("reason").to_pylist())


def _ignore(*args: object) -> None:
    pass


def _no_status(stage: str) -> AbstractContextManager:
    return nullcontext()


@dataclasses.dataclass(frozen=True)
class BuildEvents:
    """How a build reports, as plain data and plain text (the command renders them; nothing by default).

    `notify(text)`: what the build does (loading a model). `warn(text)`: what the user should know (rows dropped
    while reading prompts, failed requests retried, translations without their closing tag). `stage_done(stats,
    seconds)`: a stage finished, `seconds` None when it was done earlier and skipped. `status(stage)`: a context
    manager around a stage that does not report progress itself (the generating stages use `progress`).
    """

    notify: Callable[[str], None] = _ignore
    warn: Callable[[str], None] = _ignore
    stage_done: Callable[[StageStats, float | None], None] = _ignore
    status: Callable[[str], AbstractContextManager] = _no_status


class Build:
    """One run folder and the state of its stages."""

    def __init__(self, recipe: Recipe, progress: Progress | None = None, events: BuildEvents | None = None,
                 load_generator: Callable[..., Generator] | None = None):
        self.recipe = recipe
        self.load_generator = load_generator
        self.dir = run_folder(recipe)
        self.paths = RunPaths(self.dir)
        self.progress = progress or None
        self.events = events or BuildEvents()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / DROPPED_DIR).mkdir(exist_ok=True)
        state_path = self.paths.state
        self.state: dict[str, str] = json.loads(state_path.read_text()) if state_path.is_file() else {}
        self.stats = {s.stage: s for s in self.paths.read_stats()}
        self._generator: Generator | None = None
        self._cache: RequestCache | None = None

    # -- paths
    def out(self, stage: str) -> Path:
        return self.paths.table(stage)

    def drops(self, stage: str) -> Path:
        return self.paths.drops(stage)

    def table(self, stage: str) -> pa.Table:
        return pq.read_table(self.out(stage))

    def save(self, stage: str, kept: pa.Table, drops: pa.Table, stats: StageStats) -> StageStats:
        write_parquet_atomic(drops, self.drops(stage))
        write_parquet_atomic(kept, self.out(stage))
        return stats

    # -- generation, created only when a stage has something to generate
    @property
    def cache(self) -> RequestCache:
        if self._cache is None:
            self._cache = RequestCache(self.paths.cache)
        return self._cache

    def generator(self) -> Generator:
        if self._generator is None:
            load = default_load_generator if self.load_generator is None else self.load_generator
            model = self.recipe.model
            if model == TINY_MODEL:
                model = str(ensure_tiny_model(Path(self.recipe.workdir).expanduser() / "tiny-model"))
            options = dict(self.recipe.backend_options)
            if self.recipe.revision:
                options["revision"] = self.recipe.revision
            self.events.notify(f"loading {self.recipe.backend} model {self.recipe.model}")
            self._generator = load(self.recipe.backend, model, **options)
        return self._generator

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
        if self._cache is not None:
            self._cache.close()

    # -- stages
    def finished(self, stage: str, fingerprint: str) -> bool:
        files = [self.out(stage)] + ([self.drops(stage)] if BY_NAME[stage].drops else [])
        done = self.state.get(stage) == fingerprint and stage in self.stats and all(p.is_file() for p in files)
        failed = self.stats[stage].dropped.get("generation_error", 0) if stage in self.stats else 0
        if done and failed:
            # Failed requests are never cached: a rerun retries them (the successful ones are cache hits).
            self.events.warn(f"{stage}: retrying {failed} request(s) that failed last time")
            return False
        return done

    def record(self, stats: StageStats, fingerprint: str) -> None:
        """Check the stage's files against its stats, then mark it finished."""
        stats.check()
        kept, drops = _rows(self.out(stats.stage)), _drop_reasons(self.drops(stats.stage))
        if kept != stats.kept or dict(drops) != {k: v for k, v in stats.dropped.items() if v}:
            raise AssertionError(f"stage {stats.stage}: files hold {kept} kept and {dict(drops)} dropped, "
                                 f"stats say {stats.kept} and {stats.dropped}")
        self.stats[stats.stage] = stats
        self.state[stats.stage] = fingerprint
        write_json_atomic(self.paths.stats, [dataclasses.asdict(self.stats[s]) for s in STAGE_NAMES if s in self.stats])
        write_json_atomic(self.paths.state, self.state)

    def run(self, pipeline: Sequence[Stage]) -> None:
        fingerprint, rerun = "", False
        for folder in (self.dir, self.dir / DROPPED_DIR):  # temporary tables of a killed run (its pid is gone)
            remove_stale_temps(folder)
        for step in pipeline:
            stage = step.name
            fingerprint = _hash([fingerprint, step.settings(self.recipe)])
            if not rerun and self.finished(stage, fingerprint):
                self.events.stage_done(self.stats[stage], None)
                continue
            rerun = True
            self.state.pop(stage, None)
            start = time.perf_counter()
            if step.generates:  # these report through `progress`
                stats = step.run(self)
            else:
                with self.events.status(stage):
                    stats = step.run(self)
            before = step.rows_from
            if before and stats.rows_in != self.stats[before].kept:
                raise AssertionError(f"stage {stage}: {stats.rows_in} rows in, but {before} kept "
                                     f"{self.stats[before].kept}")
            self.record(stats, fingerprint)
            self.events.stage_done(stats, time.perf_counter() - start)
        merge_drops([self.drops(s.name) for s in pipeline], self.paths.dropped)


def merge_drops(parts: Sequence[Path], dst: Path) -> Path:
    """Every stage's drops in one table (columns unioned by name; a row has its own stage's columns)."""
    parts = [p for p in parts if p.is_file()]
    with atomic_path(dst) as tmp:
        if parts:
            query = " UNION ALL BY NAME ".join(f"SELECT * FROM read_parquet({sql_literal(p)})" for p in parts)
            con = duckdb.connect()
            try:
                con.execute(f"COPY ({query}) TO {sql_literal(tmp)} (FORMAT parquet)")
            finally:
                con.close()
        else:
            pq.write_table(pa.table({"stage": pa.array([], pa.string()), "reason": pa.array([], pa.string())}), tmp)
    return dst


def build(recipe: Recipe, *, workdir: str | Path | None = None, iteration: int | None = None,
          model: str | None = None, limit: int | None = None, langs: Sequence[str] | None = None,
          parent: str | None = None, exclude_pairs: Sequence[str | Path] = (),
          responses: Sequence[str | Path | ResponsesImport] = (),
          translations: Sequence[str | Path | TranslationsImport] = (),
          progress: Progress | None = None, events: BuildEvents | None = None,
          load_generator: Callable[..., Generator] | None = None) -> Path:
    """Run every stage of `recipe` (resuming what is done) and return the run folder.

    `responses` / `translations` are import specs (field mapping, failure markers, attribution: what the recipe's
    `imports:` section holds) or bare files in the run-table layout (prompt_id, lang / src_lang, tgt_lang,
    text, ...), e.g. tables of another run: their rows are used as they are, not generated again.
    `parent` (overriding the recipe's `parent:`) is the reference of the version this one follows: it is resolved
    and verified before anything runs, and recorded with the generator model in the run's `lineage.json`, which
    the manifest copies. No parent: the version has none (nothing is inferred from the store).
    `exclude_pairs` adds pair-filter files (`lidr audit --write-filter`) to the recipe's `filters.exclude_pairs`:
    they are checked before anything runs, and their listed pairs are dropped by the filter stage with the file's
    reason; a changed file reruns filter and the stages after it (generation is reused).
    One build at a time per run folder: a second one fails at once with "another build (pid N) holds RUN_DIR".
    `load_generator(backend, model, **options)` creates the generator when a stage has something to generate
    (default `lidr_data.generation.load_generator`). The build reports through `progress` (the generating
    stages) and `events` (see `BuildEvents`); it draws and prints nothing itself.
    """
    recipe = with_overrides(recipe, model=model, iteration=iteration, limit=limit, languages=langs, workdir=workdir,
                            parent=parent)
    if exclude_pairs:
        filters = dataclasses.replace(recipe.filters, exclude_pairs=list(dict.fromkeys(
            # absolute: a resumed build may run from another folder (the manifest gets a portable form)
            [*recipe.filters.exclude_pairs, *(str(Path(p).expanduser().resolve()) for p in exclude_pairs)])))
        recipe = dataclasses.replace(recipe, filters=filters)
    if responses or translations:
        imports = dataclasses.replace(
            recipe.imports,
            responses=[*recipe.imports.responses, *(p if isinstance(p, ResponsesImport) else
                                                    ResponsesImport(path=str(p)) for p in responses)],
            translations=[*recipe.imports.translations, *(p if isinstance(p, TranslationsImport) else
                                                          TranslationsImport(path=str(p)) for p in translations)],
        )
        recipe = dataclasses.replace(recipe, imports=imports)
    with locks.hold(run_folder(recipe), "build"):
        return _build(recipe, progress, events, load_generator)


def build_lineage(recipe: Recipe) -> dict:
    """{"parent": the parent version's record or None, "generator": the generator model's record}: resolved
    before the first stage, so a bad parent reference fails before any generation."""
    workdir = Path(recipe.workdir).expanduser()
    tiny = workdir / "tiny-model" if recipe.model == TINY_MODEL else None
    return {"parent": parent_record(recipe.parent, workdir) if recipe.parent else None,
            "generator": model_record(recipe.model, recipe.revision, workdir, folder=tiny)}


def _build(recipe: Recipe, progress: Progress | None, events: BuildEvents | None,
           load_generator: Callable[..., Generator] | None) -> Path:
    lineage = build_lineage(recipe)
    # Every stage's settings are read before the first stage runs: a bad one (an unreadable pair-filter file)
    # fails here, before any generation.
    stage_settings(recipe)
    run = Build(recipe, progress=progress, events=events, load_generator=load_generator)
    write_text_atomic(run.paths.recipe, recipe.to_yaml())
    write_json_atomic(run.paths.lineage, lineage)
    try:
        run.run(STAGES)
    finally:
        run.close()
    return run.dir
