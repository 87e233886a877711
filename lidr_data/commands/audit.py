"""`lidr audit REF ...` (how often a judge finds chosen really better, per language and direction) and
`lidr audit compare A B` (agreement of two audits of one version, Cohen's kappa per language)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidr_data.commands.render import (
    add_format_argument,
    generation_bar,
    messages_to_stderr,
    output_consoles,
    print_tables,
)
from lidr_data.errors import LidrError
from lidr_data.eval.audit import AuditConfig, compare_audits, run_audit
from lidr_data.eval.evaluation import add_judge_arguments, judge_options, langs_argument
from lidr_data.extras import quiet_transformers
from lidr_data.table import Column, TableData, percent

USAGE = """lidr audit REF [--judge openai|reward-model|length|chrf] [--judge-model M] [--judge-reference DIR]
                  [--sample N] [--seed S] [--langs de,fr] [--write-filter] [options]
       lidr audit compare AUDIT_A AUDIT_B"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", usage=USAGE,
        help="judge a sample of a version's pairs: how often is chosen really better, per language",
        description="A seeded random sample of up to --sample pairs per language and direction; the judge compares "
        "chosen and rejected for the pair's prompt in both orders (a disagreement between the orders is a tie). "
        "Reports the share where chosen wins, ties and rejected wins with a Wilson 95% interval, and the judge's "
        "calls and cache hits. The judges, prompts and request cache are those of `lidr eval winrate`: a rerun "
        "makes no judge call. The chrf judge needs no model: the side closer (chrF) to the gold answer for the "
        "pair's prompt in --judge-reference wins; pairs whose prompt has none are reported as `no reference`. The audit is written beside the version, never inside it: "
        "STORE/<dataset>/audits/<version>/<judge>-<sample>-<seed>/ (pairs.parquet, summary.parquet, audit.json; "
        "for org/name@rev: <default store>/<org>--<name>/audits/<rev>/...), readable as the `audit` view of "
        "`lidr sql REF`. `lidr audit compare A B` reports the agreement (Cohen's kappa) of two audit folders of "
        "one version, per language.",
    )
    p.add_argument("ref", help="a version (folder, DATASET_FOLDER@VERSION, org/name@revision), or `compare`")
    p.add_argument("audits", nargs="*", metavar="AUDIT", help="with `compare`: the two audit folders")
    add_judge_arguments(p)
    p.add_argument("--sample", type=int, default=100, help="pairs per language and direction (all when fewer)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--langs", type=langs_argument, default=None, help="prompt languages to audit (default: all)")
    p.add_argument("--out", type=Path, default=None, help="audit folder (default: beside the version, see above)")
    p.add_argument("--cache", type=Path, default=None,
                   help="judge request cache (default: the audits folder's cache/; a `lidr eval winrate` "
                   "OUTPUT/cache works too)")
    p.add_argument("--write-filter", action="store_true",
                   help="also write judge_reversed.json: the pair ids the judge found reversed, for a build to "
                   "drop as `judge_reversed`")
    p.add_argument("--force", action="store_true", help="replace an audit folder made by another judge model")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_format_argument(p, what="results table (csv/json: on stdout, notes on stderr)")
    p.set_defaults(func=run_audit_cmd)


def run_audit_cmd(args: argparse.Namespace) -> int:
    if args.ref == "compare":
        return run_compare(args)
    if args.audits:
        raise LidrError(f"unexpected argument(s) {' '.join(args.audits)}: `lidr audit REF` takes one reference "
                        "(or `lidr audit compare A B`)")
    cfg = AuditConfig(ref=args.ref, judge=args.judge, judge_model=args.judge_model, judge_options=judge_options(args),
                      sample=args.sample, seed=args.seed, langs=args.langs, out=args.out, cache=args.cache,
                      write_filter=args.write_filter, force=args.force)
    out, console = output_consoles(args.format)
    if args.no_progress or args.judge == "reward-model":
        quiet_transformers(all_bars=args.no_progress)
    with messages_to_stderr(args.format):
        result = run_audit(cfg, progress=None if args.no_progress else generation_bar)
    info = result.info
    rows = [{**r, "tie_share": r["ties"] / r["n"] if r["n"] else None,
             "rejected_share": r["rejected_wins"] / r["n"] if r["n"] else None,
             "interval": f"{percent(r['wilson_low'])}-{percent(r['wilson_high'])}" if r["n"] else "-"}
            for r in result.summary.to_dicts()]
    judge = info["judge"] + (f" ({info['judge_model']})" if info.get("judge_model") else "")
    print_tables([TableData(f"audit · {info['dataset']} {info['version']} · judge {judge}", [
        Column("lang"), Column("direction"), Column("available", numeric=True), Column("n", "judged", numeric=True),
        Column("validity", "chosen wins %", True, percent), Column("interval", "Wilson 95%", numeric=True),
        Column("tie_share", "ties %", True, percent), Column("rejected_share", "rejected wins %", True, percent),
        Column("failed", numeric=True), Column("no_reference", "no reference", numeric=True),
        Column("judgments", numeric=True), Column("cache_hits", "cache hits", True)],
        rows, name="audit")], args.format, out)
    counts = info["counts"]
    console.print(f"audit in [bold]{result.folder}[/] · {counts['judged']} pairs judged · judge calls "
                  f"{info['judge_calls']} · cache hits {info['cache_hits']}", soft_wrap=True, highlight=False)
    if counts["no_reference"]:
        console.print(f"[yellow]{counts['no_reference']} of {counts['sampled']} pair(s) have no gold answer (their "
                      f"prompt is not in {info['judge_reference']} in their language): reported as no reference, "
                      "not judged[/]", soft_wrap=True, highlight=False)
    if counts["failed"]:
        console.print(f"[yellow]{counts['failed']} pair(s) without a usable verdict in both orders (failed or "
                      "malformed), left out of the shares; rerun to retry failures[/]", soft_wrap=True)
    if result.filter_path is not None:
        console.print(f"filter ({counts['rejected']} pair(s) judged reversed): {result.filter_path}",
                      soft_wrap=True, highlight=False)
    return 1 if counts["errors"] else 0  # a judge that failed (not one that answered badly): rerun to retry


def run_compare(args: argparse.Namespace) -> int:
    if len(args.audits) != 2:
        raise LidrError("`lidr audit compare` takes two audit folders: lidr audit compare AUDIT_A AUDIT_B")
    a, b = args.audits
    table, info_a, info_b = compare_audits(a, b)
    out, console = output_consoles(args.format)

    def label(info: dict) -> str:
        return info["judge"] + (f" ({info['judge_model']})" if info.get("judge_model") else "")

    print_tables([TableData(f"agreement · {label(info_a)} vs {label(info_b)} · {info_a['dataset']} "
                            f"{info_a['version']}", [
        Column("lang"), Column("n", "both judged", numeric=True), Column("agreement", "agreement %", True, percent),
        Column("kappa", "Cohen's kappa", True, lambda v: "-" if v is None else f"{v:.3f}"),
        Column("a_chosen", "A chosen wins %", True, percent), Column("b_chosen", "B chosen wins %", True, percent)],
        table.to_dicts(), bold=lambda r: r["lang"] == "all", name="agreement")], args.format, out)
    return 0
