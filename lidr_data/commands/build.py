"""`lidr build RECIPE`: run the LIDR pipeline (resumable) and show, per stage, rows in, kept and dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lidr_data.stages.schema import StageStats


def _langs(text: str) -> list[str]:
    return [c.strip() for c in text.replace(" ", ",").split(",") if c.strip()]


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=None, help="work folder (default: the recipe's `workdir`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build LIDR preference pairs from a recipe (respond, translate, pair, tag, filter, dedup)",
        description="Run every stage of a recipe into WORKDIR/runs/<name>/iter-<N>/. A rerun resumes: finished "
        "stages are skipped and generation reuses the request cache. Ends with rows in, kept and dropped by "
        "reason for every stage.",
    )
    p.add_argument("recipe", help="recipe YAML file (e.g. recipes/quickstart.yaml)")
    p.add_argument("--iteration", type=int, default=None, help="LIDR iteration N (default: the recipe's)")
    p.add_argument("--model", default=None, help="generator model, overriding the recipe (e.g. M_t of iteration t)")
    p.add_argument("--limit", type=int, default=None, help="use only the first K prompt items")
    p.add_argument("--langs", nargs="+", type=_langs, default=None, metavar="LANG",
                   help="non-dominant languages, overriding the recipe (e.g. --langs es de or --langs es,de)")
    p.add_argument("--responses", action="append", type=Path, default=[], metavar="FILE",
                   help="answers made elsewhere (prompt_id, lang, text[, finish_reason, model]); not regenerated")
    p.add_argument("--translations", action="append", type=Path, default=[], metavar="FILE",
                   help="translations made elsewhere (prompt_id, src_lang, tgt_lang, text[, ok]); not regenerated")
    add_build_options(p)
    p.set_defaults(func=run)


def stats_table(stats: list[StageStats], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("stage", style="bold")
    table.add_column("rows in", justify="right")
    table.add_column("kept", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("dropped by reason")
    for s in stats:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(s.dropped.items(), key=lambda kv: -kv[1]) if n)
        table.add_row(s.stage, f"{s.rows_in:,}", f"{s.kept:,}", f"{sum(s.dropped.values()):,}", reasons or "-")
    return table


def report(run_dir: Path, console: Console) -> None:
    from lidr_data.pipeline import read_stats

    console.print(stats_table(read_stats(run_dir), f"lidr build: {run_dir}"))
    console.print(f"pairs: [bold]{run_dir / 'pairs.parquet'}[/] · every drop with its stage and reason: "
                  f"[bold]{run_dir / 'dropped.parquet'}[/]")


def run(args: argparse.Namespace) -> int:
    from lidr_data.pipeline import build
    from lidr_data.recipe import load_recipe

    console = Console()
    recipe = load_recipe(args.recipe)
    langs = [c for group in args.langs for c in group] if args.langs else None
    run_dir = build(recipe, workdir=args.workdir, iteration=args.iteration, model=args.model, limit=args.limit,
                    langs=langs, responses=args.responses, translations=args.translations,
                    progress=not args.no_progress, console=console)
    report(run_dir, console)
    return 0
