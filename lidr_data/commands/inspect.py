"""`lidr inspect`: the pair-quality report of a dataset version, in the terminal (table, csv, json) or as HTML."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from lidr_data.commands.render import check_read_only_output, make_console, print_tables
from lidr_data.errors import LidrError
from lidr_data.inspect import LENGTH_RATIO_LIMIT, build_report, clipped_text, percent_text, quantiles_text
from lidr_data.inspect_page import write_html
from lidr_data.safe_text import json_safe, printable
from lidr_data.table import Column, TableData

TERMINAL_SUSPICIOUS = 6  # suspicious pairs in the table and csv formats (json and the HTML page hold all --top)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="pair-quality report of a dataset version (terminal, or --html page)",
        description="Counts by language, direction and drop reason; language-ID agreement of chosen/rejected with "
        "the prompt; length statistics and ratios; duplicate rates; the most suspicious pairs; and the pair validity "
        "per language of each `lidr audit` of the version.",
    )
    p.add_argument("ref", help="a version folder, DATASET_FOLDER@VERSION, a run folder, or org/name@revision")
    p.add_argument("--html", type=Path, default=None, help="also write a self-contained HTML report here")
    p.add_argument("--top", type=int, default=12, help="how many suspicious pairs to list")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (for people; numbers never cut), csv (the report's tables as blocks, each headed "
                   "by a '# name' line) or json (the whole report)")
    p.set_defaults(func=run_inspect)


def inspect_tables(report) -> list:
    """The report's tables as plain data (rows keep raw values; the table format shows percentages)."""

    def pct(key: str, header: str) -> Column:
        return Column(key, header, numeric=True, fmt=percent_text)

    def q3(key: str, header: str, digits: int = 0) -> Column:
        return Column(key, header, numeric=True, fmt=lambda q: quantiles_text(q, digits))

    tables = [TableData("Pairs by language and direction", [
        Column("lang", "language"), Column("direction"), Column("pairs", numeric=True),
        pct("chosen", "chosen in prompt lang"), pct("rejected", "rejected in prompt lang"),
        pct("sides_differ", "sides differ"), pct("low_score", "low LID score")], report.agreement, name="agreement")]
    if report.drops:
        tables.append(TableData("Dropped rows", [Column("stage"), Column("reason"), Column("rows", numeric=True)],
                                report.drops, name="dropped"))
    tables.append(TableData("Lengths (characters) and chosen/rejected ratio", [
        Column("lang", "language"), Column("pairs", numeric=True), q3("chosen_q", "chosen p10/p50/p90"),
        q3("rejected_q", "rejected p10/p50/p90"), q3("ratio_q", "ratio p10/p50/p90", 2),
        pct("ratio_flagged", f"ratio beyond {LENGTH_RATIO_LIMIT:g}x")], report.lengths, name="lengths"))
    n = max(report.pairs, 1)
    d = report.duplicates
    dup_rows = [{"kind": label, "rows": d[key], "share": d[key] / n} for key, label in (
        ("exact_pairs", "identical pairs"), ("same_prompt_chosen", "same prompt and chosen"),
        ("same_chosen", "same chosen text"), ("dropped_as_duplicate", "removed by dedup"))]
    tables.append(TableData("Duplicates", [Column("kind"), Column("rows", numeric=True), pct("share", "share")],
                            dup_rows, name="duplicates"))
    if report.validity:
        rows = [{**r, "tie_share": r["ties"] / r["n"] if r["n"] else None,
                 "rejected_share": r["rejected_wins"] / r["n"] if r["n"] else None,
                 "interval": f"{percent_text(r['wilson_low'])}-{percent_text(r['wilson_high'])}"} for r in report.validity]
        tables.append(TableData("Pair validity: chosen really better, by judge audit (lidr audit)", [
            Column("audit"), Column("lang", "language"), Column("direction"), Column("n", "judged", numeric=True),
            pct("validity", "chosen wins"), Column("interval", "Wilson 95%"), pct("tie_share", "ties"),
            pct("rejected_share", "rejected wins")], rows, name="validity"))
    if report.suspicious:
        rows = [{**s, "pair": str(s["pair_id"])[:8], "where": f"{s['lang']} {s['direction'].split('_')[0]}",
                 "why": "; ".join(s["reasons"]), "chosen": clipped_text(s["chosen_text"], 64),
                 "rejected": clipped_text(s["rejected_text"], 64)} for s in report.suspicious[:TERMINAL_SUSPICIOUS]]
        tables.append(TableData(f"Most suspicious pairs (top {len(rows)})", [
            Column("pair"), Column("where", "lang"), Column("why"), Column("chosen"), Column("rejected")], rows,
            name="suspicious"))
    return tables


def run_inspect(args: argparse.Namespace) -> int:
    check_read_only_output(args.html, "--html")
    report = build_report(args.ref, top=args.top)
    out = make_console()
    notes = out if args.format == "table" else make_console(stderr=True)
    if args.format == "json":
        data = dataclasses.asdict(report)
        sys.stdout.write(json_safe(json.dumps(data, ensure_ascii=False, indent=1, default=str)) + "\n")
    else:
        if args.format == "table":
            title = f"lidr inspect · {report.reference} · {report.pairs:,} pairs"
            if report.manifest:
                m = report.manifest
                title += f" · {m['name']} {m['version']} · {m.get('generator', {}).get('model')}"
            out.print(printable(title, keep=""), soft_wrap=True, highlight=False, markup=False, style="bold")
        print_tables(inspect_tables(report), args.format, out)
    if args.html:
        try:
            path = write_html(report, args.html)
        except OSError as e:
            raise LidrError(f"--html {args.html}: cannot write ({e.strerror or e})") from None
        notes.print(f"wrote [bold]{path}[/]", soft_wrap=True)
    return 0
