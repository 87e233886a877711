"""`lidr sql` (read-only SQL over a dataset reference) and `lidr inspect` (the pair-quality report)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.files import atomic_path
from lidr_data.safe_text import json_safe, printable

FORMATS = ("table", "csv", "json", "parquet")
TABLE_ROWS = 100  # rows shown by --format table (all rows go to --output / other formats)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql",
        help="run a read-only SQL query over a dataset version (views: pairs, dropped; audit when audited)",
        description="Query a dataset reference with DuckDB. A version gives the views `pairs` and `dropped` (with "
        "flat prompt_text, chosen_text, rejected_text columns), plus `audit` and `audit_summary` when `lidr audit` has "
        "judged it; a folder of Parquet files without a manifest gives "
        "one view per <name>.parquet. Only queries (SELECT/WITH/DESCRIBE/SHOW/SUMMARIZE, and EXPLAIN of a query) are "
        "allowed, and the engine has no file system: statements that write files, attach databases, install "
        "extensions or change settings are refused.",
    )
    p.add_argument("ref", help="a version folder, DATASET_FOLDER@VERSION, a Parquet folder, or org/name@revision")
    p.add_argument("query", help='e.g. "SELECT lang, count(*) FROM pairs GROUP BY lang"')
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", type=Path, default=None, help="write the result here (required for parquet)")
    p.add_argument("--timeout", type=seconds, default=60.0, metavar="SECONDS",
                   help="stop a query that runs longer than this (default: 60)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="DuckDB memory limit, e.g. 2GB (default: a quarter of the RAM); a query needing more fails")
    p.set_defaults(func=run_sql)

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


def seconds(text: str) -> float:
    """A --timeout: a finite number of seconds above 0 (nan would silently disable the timer, inf overflow it)."""
    import math
    import threading

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > threading.TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds above 0 (at most "
                                         f"{threading.TIMEOUT_MAX:.0f})")
    return value


def check_output(path: Path | None, flag: str) -> None:
    """Refuse, before anything runs, an output that is a folder or lies inside a dataset store: a read-only
    command must never replace a version's manifest or add a file to its data (symlinks resolved)."""
    from lidr_data.dataset.store import store_folder_of

    if path is None:
        return
    inside = store_folder_of(path)
    if inside is not None:
        raise LidrError(f"{flag} {path}: inside the dataset store folder {inside}; versions are immutable and "
                        "this command only reads them (write the result elsewhere)")
    if path.is_dir():
        raise LidrError(f"{flag} {path}: is a folder (name the file to write)")


def flatten_nested(table):
    """Nested columns (lists, structs, maps: e.g. `prompt`, `chosen`) as JSON text, for formats that have no
    nesting (CSV) or a terminal table."""
    import pyarrow as pa

    columns = []
    for col in table.columns:
        if pa.types.is_nested(col.type):
            col = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                            for v in col.to_pylist()], pa.string())
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def _encode(table, fmt: str) -> bytes:
    """The whole result in `fmt`, made before anything is written (an error never leaves half an output)."""
    import pyarrow.csv as pacsv

    if fmt == "csv":
        buf = io.BytesIO()
        try:
            pacsv.write_csv(flatten_nested(table), buf)
        except Exception as e:  # noqa: BLE001 (a column type CSV cannot hold: one line, not a traceback)
            raise LidrError(f"--format csv cannot write this result ({str(e).splitlines()[0]}); "
                            "use --format json or parquet") from None
        return buf.getvalue()
    return (json_safe(json.dumps(table.to_pylist(), ensure_ascii=False, indent=1, default=str)) + "\n").encode("utf-8")


def _write_atomic(output: Path, write) -> None:
    try:
        with atomic_path(output) as tmp:
            write(tmp)
    except OSError as e:  # unwritable folder, no space, a folder in the way: one line, nothing half-written
        raise LidrError(f"--output {output}: cannot write ({e.strerror or e})") from None


def _write_result(table, fmt: str, output: Path | None) -> None:
    import pyarrow.parquet as pq

    if fmt == "parquet":
        if output is None:
            raise LidrError("--format parquet needs --output FILE")
        _write_atomic(output, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return
    if fmt in ("csv", "json"):
        data = _encode(table, fmt)
        if output is None:
            if fmt == "csv" and sys.stdout.isatty():  # CSV has no escapes: a terminal is shown them, never sent them
                data = printable(data.decode("utf-8")).encode("utf-8")
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            _write_atomic(output, lambda tmp: tmp.write_bytes(data))
        return
    import pyarrow as pa

    from lidr_data.commands.render import Column, TableData, make_console, print_tables

    shown = flatten_nested(table.slice(0, TABLE_ROWS))
    columns = [Column(name, numeric=pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or
                      pa.types.is_decimal(f.type), fmt=_cell) for name, f in zip(shown.column_names, shown.schema)]
    t = TableData("", columns, shown.to_pylist())
    more = table.num_rows - TABLE_ROWS
    footer = f"{table.num_rows:,} row(s)" + (f"; {more:,} not shown (use --format csv/json/parquet)" if more > 0 else "")
    if output is None:
        console = make_console()
        print_tables([t], "table", console)
        console.print(f"[dim]{footer}[/]", soft_wrap=True)
        return

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            console = make_console(file=f, width=200)
            print_tables([t], "table", console)
            console.print(footer, soft_wrap=True)

    _write_atomic(output, write)


def _cell(v) -> str:
    if v is None:
        return "∅"
    s = json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 200 else s[:199] + "…"


def run_sql(args: argparse.Namespace) -> int:
    from lidr_data.sql import check_read_only, query

    check_read_only(args.query)  # refuse before anything is downloaded or opened
    check_output(args.output, "--output")
    table = query(args.ref, args.query, timeout=args.timeout, memory_limit=args.memory_limit)
    _write_result(table, args.format, args.output)
    return 0


def inspect_tables(report) -> list:
    """The report's tables as plain data (rows keep raw values; the table format shows percentages)."""
    from lidr_data.commands.render import Column, TableData
    from lidr_data.inspect import RATIO_FLAG, TERMINAL_TOP, _clip, _pct, _q3

    def pct(key: str, header: str) -> Column:
        return Column(key, header, numeric=True, fmt=_pct)

    def q3(key: str, header: str, digits: int = 0) -> Column:
        return Column(key, header, numeric=True, fmt=lambda q: _q3(q, digits))

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
        pct("ratio_flagged", f"ratio beyond {RATIO_FLAG:g}x")], report.lengths, name="lengths"))
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
                 "interval": f"{_pct(r['wilson_low'])}-{_pct(r['wilson_high'])}"} for r in report.validity]
        tables.append(TableData("Pair validity: chosen really better, by judge audit (lidr audit)", [
            Column("audit"), Column("lang", "language"), Column("direction"), Column("n", "judged", numeric=True),
            pct("validity", "chosen wins"), Column("interval", "Wilson 95%"), pct("tie_share", "ties"),
            pct("rejected_share", "rejected wins")], rows, name="validity"))
    if report.suspicious:
        rows = [{**s, "pair": str(s["pair_id"])[:8], "where": f"{s['lang']} {s['direction'].split('_')[0]}",
                 "why": "; ".join(s["reasons"]), "chosen": _clip(s["chosen_text"], 64),
                 "rejected": _clip(s["rejected_text"], 64)} for s in report.suspicious[:TERMINAL_TOP]]
        tables.append(TableData(f"Most suspicious pairs (top {len(rows)})", [
            Column("pair"), Column("where", "lang"), Column("why"), Column("chosen"), Column("rejected")], rows,
            name="suspicious"))
    return tables


def run_inspect(args: argparse.Namespace) -> int:
    import dataclasses

    from lidr_data.commands.render import make_console, print_tables
    from lidr_data.inspect import build_report, write_html

    check_output(args.html, "--html")
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
