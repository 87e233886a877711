"""`lidr build RECIPE`: run the LIDR pipeline (resumable) and show, per stage, rows in, kept and dropped."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from lidr_data.commands.render import (
    Column,
    TableData,
    add_format_argument,
    generation_bar,
    messages_to_stderr,
    output_consoles,
    print_tables,
    progress_bar,
    warn,
)
from lidr_data.extras import quiet_transformers
from lidr_data.stages.schema import StageStats

if TYPE_CHECKING:
    from lidr_data.pipeline import BuildEvents


def _langs(text: str) -> list[str]:
    return [c.strip() for c in text.replace(" ", ",").split(",") if c.strip()]


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=None, help="work folder (default: the recipe's `workdir`)")
    p.add_argument("--version", default=None,
                   help="name of the dataset version written to WORKDIR/store/ (default: iter-<N>)")
    p.add_argument("--force", action="store_true", help="replace an existing version of that name")
    p.add_argument("--no-materialize", action="store_true", help="stop at the run folder; write no version")
    p.add_argument("--allow-empty", action="store_true",
                   help="write the version even when every pair was dropped (refused otherwise, exit 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_format_argument(p, what="table of rows in, kept and dropped per stage (csv/json: on stdout, the rest on "
                        "stderr)")


def add_executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor", "where generation runs (the request cache stays on this machine)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: in this process (default); ray: Ray Data actors on a Ray cluster, each holding one "
                   "model (transformers or vllm backend; pip install 'lidr-data[ray]')")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the cluster: HOST:PORT printed by `ray start --head`, or auto (default: "
                   "RAY_ADDRESS, else a local Ray instance for this run)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="actors in the pool (default: as many as the cluster's GPUs, or CPUs, allow)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs per actor (default: vllm's tensor_parallel_size; transformers: 1 if the cluster has "
                   "GPUs, else 0)")


def executor_loader(args: argparse.Namespace):
    """The `load_generator` for `--executor` (None: the local default), refusing Ray options without Ray, and
    `--executor ray` without the `[ray]` extra at once (before any stage runs)."""
    from lidr_data.errors import LidrError
    from lidr_data.extras import require_generation

    ray_options = {"--ray-address": args.ray_address, "--ray-workers": args.ray_workers,
                   "--ray-gpus-per-worker": args.ray_gpus_per_worker}
    if args.executor == "local":
        given = [name for name, value in ray_options.items() if value is not None]
        if given:
            raise LidrError(f"{', '.join(given)} needs --executor ray")
        return None
    require_generation(None, executor="ray")
    from lidr_data.generation.ray_executor import RayConfig, ray_loader

    return ray_loader(RayConfig(address=args.ray_address, workers=args.ray_workers,
                                num_gpus_per_worker=args.ray_gpus_per_worker))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build LIDR preference pairs from a recipe (respond, translate, pair, tag, filter, dedup)",
        description="Run every stage of a recipe into WORKDIR/runs/<name>/iter-<N>/. A rerun resumes: finished "
        "stages are skipped and generation reuses the request cache. Ends with rows in, kept and dropped by "
        "reason for every stage. One build per run folder at a time: a second one exits at once.",
    )
    p.add_argument("recipe", help="recipe YAML file (e.g. recipes/quickstart.yaml)")
    p.add_argument("--iteration", type=int, default=None, help="LIDR iteration N (default: the recipe's)")
    p.add_argument("--model", default=None, help="generator model, overriding the recipe (e.g. M_t of iteration t)")
    p.add_argument("--parent", default=None, metavar="REF",
                   help="the version this one follows (a version folder, STORE/NAME@VERSION or org/name@revision), "
                   "overriding the recipe's `parent:`; checked before the build starts and recorded in the "
                   "manifest (default: none)")
    p.add_argument("--limit", type=int, default=None, help="use only the first K prompt items")
    p.add_argument("--langs", nargs="+", type=_langs, default=None, metavar="LANG",
                   help="non-dominant languages, overriding the recipe (e.g. --langs es de or --langs es,de)")
    p.add_argument("--responses", action="append", nargs="+", default=[], metavar=("FILE", "KEY=VALUE"),
                   help="answers made elsewhere, not regenerated: a file (prompt_id, lang, text[, finish_reason, "
                   "model]) then optional settings of the recipe's imports.responses entries, e.g. lang=en "
                   "id_field=id text_field=response model=meta-llama/Meta-Llama-3-8B-Instruct "
                   "failure_markers='[Translation Error]'")
    p.add_argument("--translations", action="append", nargs="+", default=[], metavar=("FILE", "KEY=VALUE"),
                   help="translations made elsewhere, not regenerated: a file (prompt_id, src_lang, tgt_lang, "
                   "text[, ok]) then optional settings of imports.translations entries, e.g. src_lang=en tgt_lang=fr "
                   "id_field=id text_field=en2fr_reponse failure_markers='Translation Error'")
    p.add_argument("--exclude-pairs", action="append", default=[], metavar="PATH",
                   help="a pair-filter file written by `lidr audit --write-filter` (repeatable): the pairs it lists "
                   "are dropped with its reason (judge_reversed), added to the recipe's filters.exclude_pairs")
    p.add_argument("--imports", type=Path, default=None, metavar="YAML",
                   help="a YAML file with `responses:` and `translations:` lists, as in a recipe's `imports:` "
                   "section (added to the recipe's own imports)")
    add_build_options(p)
    add_executor_options(p)
    p.set_defaults(func=run)


def import_specs(kind: str, groups: list[list[str]]) -> list:
    """`--responses FILE KEY=VALUE ...` -> ResponsesImport (and the same for translations), validated like the
    recipe's `imports:` entries."""
    from lidr_data.errors import LidrError
    from lidr_data.readers import parse_yaml
    from lidr_data.recipe import ResponsesImport, TranslationsImport, from_dict

    cls = ResponsesImport if kind == "responses" else TranslationsImport
    specs = []
    for path, *settings in groups:
        data: dict = {"path": path}
        for item in settings:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise LidrError(f"--{kind} {path}: {item!r} is not KEY=VALUE (put the recipe before --{kind})")
            key = key.replace("-", "_")
            if key == "failure_markers":  # a YAML list ('[a, b]'), or one marker taken literally
                data[key] = (parse_yaml(value, f"--{kind} {path}: {key}") if value.lstrip().startswith("[")
                             else [value])
            else:  # every other setting is text, kept literally (YAML would read lang=no as false)
                data[key] = value
        specs.append(from_dict(cls, data, f"--{kind} {path}"))
    return specs


def read_imports_file(path: Path):
    """An imports YAML (`responses:`/`translations:` lists, optionally under `imports:`) -> ImportsConfig."""
    from lidr_data.config import resolve_path
    from lidr_data.errors import LidrError
    from lidr_data.readers import read_yaml
    from lidr_data.recipe import ImportsConfig, from_dict

    path = resolve_path(path)
    if not path.is_file():
        raise LidrError(f"--imports {path}: file not found")
    data = read_yaml(path) or {}
    if isinstance(data, dict) and set(data) == {"imports"}:
        data = data["imports"]
    try:
        return from_dict(ImportsConfig, data, "imports")
    except LidrError as e:
        raise LidrError(f"{path}: {e}") from None


def build_events(console: Console) -> BuildEvents:
    """The build's reports as lines on `console`: a line per stage (dim when done earlier), notices, warnings in
    yellow, and a spinner while a stage without a progress bar runs."""
    from lidr_data.pipeline import BuildEvents

    def stage_done(stats: StageStats, seconds: float | None) -> None:
        if seconds is None:
            console.print(f"✓ {stats.stage}: done earlier ({stats.kept} rows), skipped", style="dim", markup=False)
            return
        line = Text.assemble("✓ ", (stats.stage, "bold"), f": {stats.rows_in} in → {stats.kept} kept, "
                             f"{sum(stats.dropped.values())} dropped ({seconds:.1f}s)")
        console.print(line)

    return BuildEvents(
        notify=lambda message: console.print(message, markup=False),
        # Text, not markup: a message may quote data such as "[Translation Error]".
        warn=lambda message: console.print(message, style="yellow", markup=False, highlight=False),
        stage_done=stage_done,
        status=lambda stage: console.status(Text.assemble((stage, "bold"), " …")),
    )


def stats_table(stats: list[StageStats], title: str) -> TableData:
    rows = []
    for s in stats:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(s.dropped.items(), key=lambda kv: -kv[1]) if n)
        rows.append({"stage": s.stage, "rows_in": s.rows_in, "kept": s.kept, "dropped": sum(s.dropped.values()),
                     "dropped_by_reason": reasons or "-"})
    return TableData(title, [Column("stage"), Column("rows_in", "rows in", numeric=True), Column("kept", numeric=True),
                             Column("dropped", numeric=True), Column("dropped_by_reason", "dropped by reason")], rows)


def report(run_dir: Path, console: Console, fmt: str = "table", out: Console | None = None) -> None:
    """The per-stage table (on `out`, default `console`, in `fmt`) and where the tables are (on `console`)."""
    from lidr_data.pipeline import read_stats

    print_tables([stats_table(read_stats(run_dir), f"lidr build: {run_dir}")], fmt, out or console)
    console.print(f"pairs: [bold]{run_dir / 'pairs.parquet'}[/] · every drop with its stage and reason: "
                  f"[bold]{run_dir / 'dropped.parquet'}[/]", soft_wrap=True)


def materialize_and_report(run_dir: Path, args: argparse.Namespace, console: Console) -> Path | None:
    """End of a build: the run becomes an immutable version in WORKDIR/store/ (unless --no-materialize), or the
    version made from the very same pairs is reported as up to date."""
    from lidr_data.dataset.materialize import materialize_run

    if args.no_materialize:
        return None
    done = materialize_run(run_dir, version=args.version, force=args.force, allow_empty=args.allow_empty,
                           progress=None if args.no_progress else progress_bar, notify=warn)
    if done.up_to_date:
        console.print(f"dataset version [bold]{done.path}[/] is up to date", soft_wrap=True)
    else:
        console.print(f"dataset version: [bold]{done.path}[/] (content id {done.content_id}; try `lidr inspect "
                      f"{done.path}` or `lidr sql {done.path} \"SELECT lang, count(*) FROM pairs GROUP BY lang\"`)",
                      soft_wrap=True)
    return done.path


def run(args: argparse.Namespace) -> int:
    from lidr_data import locks
    from lidr_data.pipeline import build, run_folder
    from lidr_data.recipe import load_recipe, with_overrides

    out, console = output_consoles(args.format)
    recipe = load_recipe(args.recipe)
    load_generator = executor_loader(args)  # --executor ray without the [ray] extra: an error now, not later
    if args.no_progress or recipe.backend != "openai":
        quiet_transformers(all_bars=args.no_progress)
    langs = [c for group in args.langs for c in group] if args.langs else None
    responses, translations = import_specs("responses", args.responses), import_specs("translations", args.translations)
    if args.imports is not None:
        extra = read_imports_file(args.imports)
        responses, translations = [*extra.responses, *responses], [*extra.translations, *translations]
    # The run folder stays locked from the first stage to the version: no other build can change its pairs
    # between the build and the materialize.
    with messages_to_stderr(args.format), \
            locks.hold(run_folder(with_overrides(recipe, iteration=args.iteration, workdir=args.workdir)), "build"):
        run_dir = build(recipe, workdir=args.workdir, iteration=args.iteration, model=args.model, limit=args.limit,
                        langs=langs, parent=args.parent, exclude_pairs=args.exclude_pairs, responses=responses,
                        translations=translations,
                        progress=None if args.no_progress else generation_bar, events=build_events(console),
                        load_generator=load_generator)
        report(run_dir, console, args.format, out)
        materialize_and_report(run_dir, args, console)
    return 0
