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
    p.add_argument("--version", default=None,
                   help="name of the dataset version written to WORKDIR/store/ (default: iter-<N>)")
    p.add_argument("--force", action="store_true", help="replace an existing version of that name")
    p.add_argument("--no-materialize", action="store_true", help="stop at the run folder; write no version")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


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


def materialize_run(run_dir: Path, args: argparse.Namespace, console: Console) -> Path | None:
    """End of a build: the run becomes an immutable version in WORKDIR/store/ (unless --no-materialize).

    Rerunning a finished build is normal (it resumes), so an existing version made from the very same
    pairs.parquet is reported as up to date instead of refused; a different one still needs --force.
    """
    import json

    from lidr_data.dataset.store import MANIFEST, content_id, default_store, read_manifest
    from lidr_data.dataset.version import materialize, sha256_file, version_path
    from lidr_data.errors import LidrError

    if args.no_materialize:
        return None
    store = default_store(run_dir.parents[2])  # run_dir = WORKDIR/runs/<name>/iter-<N>
    existing = version_path(run_dir, store, args.version)
    if existing.exists() and not args.force:
        manifest = json.loads((existing / MANIFEST).read_text())
        if manifest.get("source_pairs_sha256") != sha256_file(run_dir / "pairs.parquet"):
            raise LidrError(f"version {existing} exists and was built from other pairs: use --version NAME for a "
                            "new version, or --force to replace it")
        console.print(f"dataset version [bold]{existing}[/] is up to date")
        return existing
    version = materialize(run_dir, store, version=args.version, force=args.force, progress=not args.no_progress)
    cid = content_id(read_manifest(version))
    console.print(f"dataset version: [bold]{version}[/] (content id {cid}; try `lidr inspect {version}` or "
                  f"`lidr sql {version} \"SELECT lang, count(*) FROM pairs GROUP BY lang\"`)")
    return version


def run(args: argparse.Namespace) -> int:
    from lidr_data import locks
    from lidr_data.pipeline import build, run_folder
    from lidr_data.recipe import load_recipe, with_overrides

    console = Console()
    recipe = load_recipe(args.recipe)
    langs = [c for group in args.langs for c in group] if args.langs else None
    # The run folder stays locked from the first stage to the version: no other build can change its pairs
    # between the build and the materialize.
    with locks.hold(run_folder(with_overrides(recipe, iteration=args.iteration, workdir=args.workdir)), "build"):
        run_dir = build(recipe, workdir=args.workdir, iteration=args.iteration, model=args.model, limit=args.limit,
                        langs=langs, responses=args.responses, translations=args.translations,
                        progress=not args.no_progress, console=console)
        report(run_dir, console)
        materialize_run(run_dir, args, console)
    return 0
