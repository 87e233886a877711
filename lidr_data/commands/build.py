"""`lidr build RECIPE`: run the LIDR pipeline (resumable) and show, per stage, rows in, kept and dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidr_data import locks
from lidr_data.build.pipeline import build, run_folder
from lidr_data.build.recipe import import_specs, load_recipe, read_imports_file, with_overrides
from lidr_data.commands.options import add_build_options, add_executor_options, executor_loader
from lidr_data.commands.render import (
    build_events,
    generation_bar,
    materialize_and_report,
    messages_to_stderr,
    output_consoles,
    report,
)
from lidr_data.extras import quiet_transformers


def _langs(text: str) -> list[str]:
    return [c.strip() for c in text.replace(" ", ",").split(",") if c.strip()]


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


def run(args: argparse.Namespace) -> int:
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
