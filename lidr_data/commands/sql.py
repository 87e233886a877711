"""`lidr sql` (read-only SQL over a dataset reference) and `lidr inspect` (the pair-quality report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lidr_data.errors import LidrError

FORMATS = ("table", "csv", "json", "parquet")
TABLE_ROWS = 100  # rows shown by --format table (all rows go to --output / other formats)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql",
        help="run a read-only SQL query over a dataset version (views: pairs, dropped)",
        description="Query a dataset reference with DuckDB. A version gives the views `pairs` and `dropped` (with "
        "flat prompt_text, chosen_text, rejected_text columns); a folder of Parquet files without a manifest gives "
        "one view per <name>.parquet. Only queries (SELECT/WITH/DESCRIBE/SHOW/SUMMARIZE, and EXPLAIN of a query) are "
        "allowed, and the engine has no file system: statements that write files, attach databases, install "
        "extensions or change settings are refused.",
    )
    p.add_argument("ref", help="a version folder, DATASET_FOLDER@VERSION, a Parquet folder, or org/name@revision")
    p.add_argument("query", help='e.g. "SELECT lang, count(*) FROM pairs GROUP BY lang"')
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", type=Path, default=None, help="write the result here (required for parquet)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="stop a query that runs longer than this (default: 60)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="DuckDB memory limit, e.g. 2GB (default: a quarter of the RAM); a query needing more fails")
    p.set_defaults(func=run_sql)

    p = sub.add_parser(
        "inspect",
        help="pair-quality report of a dataset version (terminal, or --html page)",
        description="Counts by language, direction and drop reason; language-ID agreement of chosen/rejected with "
        "the prompt; length statistics and ratios; duplicate rates; the most suspicious pairs.",
    )
    p.add_argument("ref", help="a version folder, DATASET_FOLDER@VERSION, a run folder, or org/name@revision")
    p.add_argument("--html", type=Path, default=None, help="also write a self-contained HTML report here")
    p.add_argument("--top", type=int, default=12, help="how many suspicious pairs to list")
    p.set_defaults(func=run_inspect)


def _write_result(table, fmt: str, output: Path | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        if output is None:
            raise LidrError("--format parquet needs --output FILE")
        tmp = output.with_name(f".{output.name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(output)
        return
    if fmt == "csv":
        if output is None:
            pacsv.write_csv(table, sys.stdout.buffer)
            sys.stdout.flush()
        else:
            pacsv.write_csv(table, output)
        return
    if fmt == "json":
        text = json.dumps(table.to_pylist(), ensure_ascii=False, indent=1, default=str) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=open(output, "w", encoding="utf-8") if output else None, width=200 if output else None)
    t = Table(show_lines=False)
    for name in table.column_names:
        t.add_column(name, overflow="fold", max_width=60)
    for row in table.slice(0, TABLE_ROWS).to_pylist():
        t.add_row(*["∅" if v is None else _cell(v) for v in row.values()])
    console.print(t)
    more = table.num_rows - TABLE_ROWS
    console.print(f"[dim]{table.num_rows:,} row(s)" + (f"; {more:,} not shown (use --format csv/json/parquet)" if more > 0 else "") + "[/]")


def _cell(v) -> str:
    s = json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 200 else s[:199] + "…"


def run_sql(args: argparse.Namespace) -> int:
    from lidr_data.sql import check_read_only, query

    check_read_only(args.query)  # refuse before anything is downloaded or opened
    table = query(args.ref, args.query, timeout=args.timeout, memory_limit=args.memory_limit)
    _write_result(table, args.format, args.output)
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lidr_data.inspect import build_report, render_rich, write_html

    report = build_report(args.ref, top=args.top)
    render_rich(report)
    if args.html:
        path = write_html(report, args.html)
        Console().print(f"wrote [bold]{path}[/]")
    return 0
