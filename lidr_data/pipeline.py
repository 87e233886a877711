"""The LIDR build: prompts -> respond -> translate -> pairs -> tag -> filter -> dedup, in a run folder.

`WORKDIR/runs/<recipe name>/iter-<N>/` holds every stage's table, `dropped/<stage>.parquet` (merged into
`dropped.parquet`), the request cache `cache/requests.sqlite`, `stats.json` (StageStats per stage),
`recipe.yaml` (the resolved recipe) and `state.json` (a fingerprint per finished stage).

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
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from lidr_data import locks
from lidr_data.errors import LidrError
from lidr_data.generation.base import Generator
from lidr_data.generation.cache import RequestCache
from lidr_data.recipe import TINY_MODEL, Recipe, ResponsesImport, TranslationsImport, with_overrides
from lidr_data.stages.schema import STAGES, StageStats
from lidr_data.stages.tables import remove_stale_temps, write_parquet_atomic

# What each stage writes (besides its drops).
OUTPUTS = {
    "prompts": "prompts.parquet",
    "respond": "responses.parquet",
    "translate": "translations.parquet",
    "pairs": "pairs_raw.parquet",
    "tag": "pairs_tagged.parquet",
    "filter": "pairs_filtered.parquet",
    "dedup": "pairs.parquet",
}

GENERATING = ("respond", "translate")
# Stages whose input is exactly the kept rows of the stage before (translate and pairs fan out).
FEEDS = {"respond": "prompts", "tag": "pairs", "filter": "tag", "dedup": "filter"}


def run_folder(recipe: Recipe) -> Path:
    return Path(recipe.workdir).expanduser() / "runs" / recipe.name / f"iter-{recipe.iteration}"


def _hash(obj: object) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_settings(recipe: Recipe) -> dict[str, object]:
    """The recipe settings each stage's output depends on (operational knobs such as batch size excluded)."""
    d = recipe.to_dict()
    return {
        "prompts": [d["prompts"], recipe.dominant_lang, recipe.languages],
        "respond": [recipe.model, recipe.revision, recipe.backend, d["generation"], d["imports"]["responses"]],
        "translate": [d["translation"], d["imports"]["translations"]],
        "pairs": [recipe.iteration],
        "tag": [d["tag"]],
        "filter": [d["filters"]],
        "dedup": [d["dedup"]],
    }


def read_stats(run_dir: str | Path) -> list[StageStats]:
    path = Path(run_dir) / "stats.json"
    if not path.is_file():
        return []
    return [StageStats(**s) for s in json.loads(path.read_text())]


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, obj: object) -> None:
    _write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _drop_reasons(path: Path) -> Counter:
    if not path.is_file() or _rows(path) == 0:
        return Counter()
    return Counter(pq.read_table(path, columns=["reason"]).column("reason").to_pylist())


class Build:
    """One run folder and the state of its stages."""

    def __init__(self, recipe: Recipe, progress: bool = True, console: Console | None = None,
                 load_generator: Callable[..., Generator] | None = None):
        self.recipe = recipe
        self.load_generator = load_generator
        self.dir = run_folder(recipe)
        self.progress = progress
        self.console = console or Console(quiet=not progress)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "dropped").mkdir(exist_ok=True)
        state_path = self.dir / "state.json"
        self.state: dict[str, str] = json.loads(state_path.read_text()) if state_path.is_file() else {}
        self.stats = {s.stage: s for s in read_stats(self.dir)}
        self._generator: Generator | None = None
        self._cache: RequestCache | None = None

    # -- paths
    def out(self, stage: str) -> Path:
        return self.dir / OUTPUTS[stage]

    def drops(self, stage: str) -> Path:
        return self.dir / "dropped" / f"{stage}.parquet"

    # -- generation, created only when a stage has something to generate
    @property
    def cache(self) -> RequestCache:
        if self._cache is None:
            self._cache = RequestCache(self.dir / "cache" / "requests.sqlite")
        return self._cache

    def generator(self) -> Generator:
        if self._generator is None:
            from lidr_data.generation import load_generator

            load = load_generator if self.load_generator is None else self.load_generator
            model = self.recipe.model
            if model == TINY_MODEL:
                model = str(ensure_tiny_model(Path(self.recipe.workdir).expanduser() / "tiny-model"))
            options = dict(self.recipe.backend_options)
            if self.recipe.revision:
                options["revision"] = self.recipe.revision
            self.console.print(f"loading {self.recipe.backend} model [bold]{self.recipe.model}[/]")
            self._generator = load(self.recipe.backend, model, **options)
        return self._generator

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
        if self._cache is not None:
            self._cache.close()

    # -- stages
    def finished(self, stage: str, fingerprint: str) -> bool:
        files = [self.out(stage)] + ([self.drops(stage)] if stage != "tag" else [])
        done = self.state.get(stage) == fingerprint and stage in self.stats and all(p.is_file() for p in files)
        failed = self.stats[stage].dropped.get("generation_error", 0) if stage in self.stats else 0
        if done and failed:
            # Failed requests are never cached: a rerun retries them (the successful ones are cache hits).
            self.console.print(f"[yellow]{stage}: retrying {failed} request(s) that failed last time[/]")
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
        _write_json(self.dir / "stats.json", [dataclasses.asdict(self.stats[s]) for s in STAGES if s in self.stats])
        _write_json(self.dir / "state.json", self.state)

    def run(self, stages: dict[str, Callable[[], StageStats]]) -> None:
        settings = stage_settings(self.recipe)
        fingerprint, rerun = "", False
        for folder in (self.dir, self.dir / "dropped"):  # temporary tables of a killed run (its pid is gone)
            remove_stale_temps(folder)
        for stage in STAGES:
            fingerprint = _hash([fingerprint, settings[stage]])
            if not rerun and self.finished(stage, fingerprint):
                self.console.print(f"[dim]✓ {stage}: done earlier ({self.stats[stage].kept} rows), skipped[/]")
                continue
            rerun = True
            self.state.pop(stage, None)
            start = time.perf_counter()
            if stage in GENERATING:  # these draw their own progress bars
                stats = stages[stage]()
            else:
                with self.console.status(f"[bold]{stage}[/] …"):
                    stats = stages[stage]()
            before = FEEDS.get(stage)
            if before and stats.rows_in != self.stats[before].kept:
                raise AssertionError(f"stage {stage}: {stats.rows_in} rows in, but {before} kept "
                                     f"{self.stats[before].kept}")
            self.record(stats, fingerprint)
            dropped = sum(stats.dropped.values())
            self.console.print(f"✓ [bold]{stage}[/]: {stats.rows_in} in → {stats.kept} kept, {dropped} dropped "
                               f"({time.perf_counter() - start:.1f}s)")
        merge_drops([self.drops(s) for s in STAGES], self.dir / "dropped.parquet")


def ensure_tiny_model(folder: Path) -> Path:
    """The random tiny test model (`model: lidr:tiny-model`), built once per work folder."""
    if not (folder / "config.json").is_file():
        from lidr_data.tiny_model import build_tiny_model

        build_tiny_model(folder)
    return folder


def merge_drops(parts: Sequence[Path], dst: Path) -> Path:
    """Every stage's drops in one table (columns unioned by name; a row has its own stage's columns)."""
    parts = [p for p in parts if p.is_file()]
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    con = duckdb.connect()
    try:
        if parts:
            def quote(p: Path) -> str:
                return "'" + str(p).replace("'", "''") + "'"

            query = " UNION ALL BY NAME ".join(f"SELECT * FROM read_parquet({quote(p)})" for p in parts)
            con.execute(f"COPY ({query}) TO {quote(tmp)} (FORMAT parquet)")
        else:
            pq.write_table(pa.table({"stage": pa.array([], pa.string()), "reason": pa.array([], pa.string())}), tmp)
        os.replace(tmp, dst)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    return dst


def build(recipe: Recipe, *, workdir: str | Path | None = None, iteration: int | None = None,
          model: str | None = None, limit: int | None = None, langs: Sequence[str] | None = None,
          responses: Sequence[str | Path | ResponsesImport] = (),
          translations: Sequence[str | Path | TranslationsImport] = (),
          progress: bool = True, console: Console | None = None,
          load_generator: Callable[..., Generator] | None = None) -> Path:
    """Run every stage of `recipe` (resuming what is done) and return the run folder.

    `responses` / `translations` are import specs (field mapping, failure markers, attribution: what the recipe's
    `imports:` section holds) or bare files in the run-table layout (prompt_id, lang / src_lang, tgt_lang,
    text, ...), e.g. tables of another run: their rows are used as they are, not generated again.
    One build at a time per run folder: a second one fails at once with "another build (pid N) holds RUN_DIR".
    `load_generator(backend, model, **options)` creates the generator when a stage has something to generate
    (default `lidr_data.generation.load_generator`).
    """
    recipe = with_overrides(recipe, model=model, iteration=iteration, limit=limit, languages=langs, workdir=workdir)
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
        return _build(recipe, progress, console, load_generator)


def _build(recipe: Recipe, progress: bool, console: Console | None,
           load_generator: Callable[..., Generator] | None) -> Path:
    from lidr_data.sources import load_prompts
    from lidr_data.stages.dedup import dedup_pairs
    from lidr_data.stages.filter import filter_pairs
    from lidr_data.stages.pairs import build_pairs
    from lidr_data.stages.respond import read_imported_responses, respond
    from lidr_data.stages.tag import tag_pairs
    from lidr_data.stages.translate import read_imported_translations, translate, translation_jobs

    run = Build(recipe, progress=progress, console=console, load_generator=load_generator)
    _write_text(run.dir / "recipe.yaml", recipe.to_yaml())
    gen = recipe.generation
    system_prompt = gen.system_prompt
    # A side equal to any import's failure marker is a failed generation, whichever file it came from.
    filters = dataclasses.replace(recipe.filters, failure_markers=list(dict.fromkeys(
        [*recipe.filters.failure_markers, *recipe.imports.failure_markers])))

    def table(stage: str) -> pa.Table:
        return pq.read_table(run.out(stage))

    def save(stage: str, kept: pa.Table, drops: pa.Table, stats: StageStats) -> StageStats:
        write_parquet_atomic(drops, run.drops(stage))
        write_parquet_atomic(kept, run.out(stage))
        return stats

    def stage_prompts() -> StageStats:
        prompts, drops, stats = load_prompts(recipe.prompts, recipe.all_languages,
                                             warn=lambda m: run.console.print(f"[yellow]prompts: {m}[/]",
                                                                              highlight=False))
        if stats.kept == 0:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(stats.dropped.items(), key=lambda kv: -kv[1]))
            raise LidrError(f"{recipe.prompts.source}: no complete prompt item in {', '.join(recipe.all_languages)}"
                            + (f" (dropped: {reasons})" if reasons else ""))
        for reason, n in stats.dropped.items():
            run.console.print(f"[yellow]prompts: {n} row(s) dropped: {reason}[/]")
        return save("prompts", prompts, drops, stats)

    def stage_respond() -> StageStats:
        imported = read_imported_responses(recipe.imports.responses)
        return save("respond", *respond(table("prompts"), run.generator, run.cache, gen.sampling(), system_prompt,
                                        imported, progress))

    def stage_translate() -> StageStats:
        jobs = translation_jobs(table("prompts"), table("respond"), recipe.dominant_lang, recipe.languages)
        imported = read_imported_translations(recipe.imports.translations)
        sampling = gen.sampling(max_new_tokens=recipe.translation.max_new_tokens)
        kept, drops, stats = translate(jobs, run.generator, run.cache, recipe.translation, sampling,
                                       system_prompt, imported, progress)
        failed = kept.num_rows - sum(kept.column("ok").to_pylist())
        if failed:
            run.console.print(f"[yellow]translate: {failed} of {kept.num_rows} translation(s) could not be "
                              f"extracted (no </{recipe.translation.tag}>): kept with ok = false for the filter[/]")
        return save("translate", kept, drops, stats)

    def stage_pairs() -> StageStats:
        return save("pairs", *build_pairs(table("prompts"), table("respond"), table("translate"),
                                          recipe.dominant_lang, recipe.languages, recipe.iteration, system_prompt,
                                          recipe.model, recipe.revision))

    def with_tmp(stage: str, fn: Callable[[Path, Path | None], StageStats], drops: bool = True) -> StageStats:
        """Run a file-to-file stage into temporary names, then rename (drops first, the table last)."""
        out, drop = run.out(stage), run.drops(stage)
        tmp_out = out.with_name(f".{out.name}.part-{os.getpid()}")
        tmp_drop = drop.with_name(f".{drop.name}.part-{os.getpid()}") if drops else None
        try:
            stats = fn(tmp_out, tmp_drop)
            if tmp_drop is not None:
                os.replace(tmp_drop, drop)
            os.replace(tmp_out, out)
        finally:
            tmp_out.unlink(missing_ok=True)
            if tmp_drop is not None:
                tmp_drop.unlink(missing_ok=True)
        return stats

    stages = {
        "prompts": stage_prompts,
        "respond": stage_respond,
        "translate": stage_translate,
        "pairs": stage_pairs,
        "tag": lambda: with_tmp("tag", lambda o, _: tag_pairs(run.out("pairs"), o, recipe.tag,
                                                               recipe.all_languages), drops=False),
        "filter": lambda: with_tmp("filter", lambda o, d: filter_pairs(run.out("pairs"), run.out("tag"), o, d,
                                                                        filters, recipe.dominant_lang)),
        "dedup": lambda: with_tmp("dedup", lambda o, d: dedup_pairs(run.out("pairs"), run.out("tag"),
                                                                     run.out("filter"), o, d, recipe.dedup)),
    }
    try:
        run.run(stages)
    finally:
        run.close()
    return run.dir
