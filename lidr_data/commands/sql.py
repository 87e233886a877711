"""`lidr sql`: read-only SQL over a dataset reference (a version, a Parquet folder, a Hub revision)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from lidr_data.commands.render import check_read_only_output, make_console, print_tables
from lidr_data.errors import LidrError
from lidr_data.files import atomic_path
from lidr_data.safe_text import json_safe, printable
from lidr_data.sql import check_read_only, query
from lidr_data.table import Column, TableData

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
    check_read_only(args.query)  # refuse before anything is downloaded or opened
    check_read_only_output(args.output, "--output")
    table = query(args.ref, args.query, timeout=args.timeout, memory_limit=args.memory_limit)
    _write_result(table, args.format, args.output)
    return 0
