"""One way for every command to print a table: rich on a terminal, never a cut number, or csv/json.

A command describes its tables as plain data (`TableData`: columns and rows of raw values, from
`lidr_data/table.py`, where the library describes the tables it reports) and calls `print_tables`. In `table` format, labels wrap to fit a terminal and numbers are never wrapped or cut; when the
table cannot fit, or the output is not a terminal (piped, logged), it is printed at its natural width instead
of the 80 columns rich assumes. `csv` and `json` print the raw values (full precision) for other programs.
Every console a command prints on comes from `make_console`: off a terminal, no line is wrapped. The build's
report (its event lines, the per-stage table, the version line) is here too: `lidr build` and `lidr demo` show it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lidr_data.build.materialize import materialize_run
from lidr_data.build.pipeline import BuildEvents, read_stats
from lidr_data.dataset.store import store_folder_of
from lidr_data.errors import LidrError
from lidr_data.safe_text import json_safe, printable
from lidr_data.stages.base import StageStats
from lidr_data.table import Column, TableData

FORMATS = ("table", "csv", "json")


class _CommandConsole(Console):
    """Off a terminal, text (str, Text) is printed soft-wrapped: one line per line, however long. Drawn
    renderables (a Panel, a Table) keep their layout: soft wrap would crop their contents to one line."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        text_only = all(isinstance(o, (str, Text)) for o in objects)
        if kwargs.get("soft_wrap") is None and text_only and not self.is_terminal:
            kwargs["soft_wrap"] = True
        super().print(*objects, **kwargs)


def make_console(stderr: bool = False, file: IO[str] | None = None, **options: Any) -> Console:
    """A rich Console for a command's output. On a terminal, text wraps at its width; anywhere else (a pipe, a
    log, a file) no message is wrapped: rich would cut every line at the 80 columns it assumes there, splitting
    paths, ids and commands a reader copies (`completions.p` / `arquet`)."""
    return _CommandConsole(stderr=stderr, file=file, **options)


def check_read_only_output(path: Path | None, flag: str) -> None:
    """Refuse, before anything runs, an output that is a folder or lies inside a dataset store: a read-only
    command (`lidr sql --output`, `lidr inspect --html`) must never replace a version's manifest or add a file to
    its data (symlinks resolved)."""
    if path is None:
        return
    inside = store_folder_of(path)
    if inside is not None:
        raise LidrError(f"{flag} {path}: inside the dataset store folder {inside}; versions are immutable and "
                        "this command only reads them (write the result elsewhere)")
    if path.is_dir():
        raise LidrError(f"{flag} {path}: is a folder (name the file to write)")


def add_format_argument(p: argparse.ArgumentParser, choices: Sequence[str] = FORMATS, what: str = "table") -> None:
    p.add_argument("--format", choices=tuple(choices), default="table",
                   help=f"how to print the {what}: a table for people (numbers never cut; a plain wide layout "
                   "when not a terminal), or csv / json for programs")


def output_consoles(fmt: str) -> tuple[Console, Console]:
    """(the table's console, the messages' console): with csv/json, stdout carries only the table."""
    out = make_console(file=sys.stdout)  # bound now: stays on stdout inside `messages_to_stderr`
    return out, out if fmt == "table" else make_console(stderr=True)


def messages_to_stderr(fmt: str) -> contextlib.AbstractContextManager:
    """With csv/json, whatever else writes to stdout (progress bars of the stages) goes to stderr instead."""
    return contextlib.nullcontext() if fmt == "table" else contextlib.redirect_stdout(sys.stderr)


def print_tables(tables: Sequence[TableData], fmt: str = "table", console: Console | None = None) -> None:
    """Print `tables` in `fmt`. csv: one table is plain CSV; several are blocks, each headed by a `# title` line
    and separated by a blank line. json: one table is a list of row objects; several, an object of such lists."""
    console = console or make_console()
    if fmt == "json":
        if len(tables) == 1:
            data: Any = _json_rows(tables[0])
        else:
            data = {t.name or t.title: _json_rows(t) for t in tables}
        _write(console, json_safe(json.dumps(data, ensure_ascii=False, indent=1, default=str)) + "\n")
        return
    if fmt == "csv":
        out = io.StringIO()
        for i, t in enumerate(tables):
            if len(tables) > 1:
                out.write(("\n" if i else "") + f"# {t.name or t.title}\n")
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([c.key for c in t.columns])
            for row in t.rows:
                writer.writerow(["" if row.get(c.key) is None else _csv_value(row.get(c.key)) for c in t.columns])
        # CSV has no escapes: raw for programs, but a terminal is shown control characters, never sent them
        _write(console, printable(out.getvalue()) if console.is_terminal else out.getvalue())
        return
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    for t in tables:
        print_rich_table(console, t)


def _json_rows(t: TableData) -> list[dict]:
    return [{c.key: _json_value(row.get(c.key)) for c in t.columns} for row in t.rows]


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _csv_value(v: Any) -> str:
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _write(console: Console, text: str) -> None:
    # Straight to the console's file: rich would wrap, highlight or interpret [brackets] in data.
    console.file.write(text)
    console.file.flush()


def rich_table(t: TableData, fixed: bool = False) -> tuple[Table, list[str]]:
    """The rich Table of `t` and the texts of its numeric cells (which must appear whole when printed).
    `fixed`: numeric columns exactly as wide as their widest number, so their headers wrap instead."""
    table = Table(title=t.title, title_justify="left")
    numbers: list[str] = []
    cells = [[c.text(row.get(c.key)) for c in t.columns] for row in t.rows]
    for j, c in enumerate(t.columns):
        if c.numeric:
            widest = max([len(r[j]) for r in cells] + [1])
            numbers += [r[j] for r in cells]
            # Rich may still squeeze these on a narrow terminal: print_rich_table checks, then falls back.
            width = dict(width=max(widest, 4)) if fixed else dict(min_width=widest)
            table.add_column(Text(printable(c.header or c.key)), justify="right", overflow="fold", **width)
        else:
            table.add_column(Text(printable(c.header or c.key)), overflow="fold")
    for row, texts in zip(t.rows, cells):
        # Text, not markup: data such as "[ERROR]" or "[/]" is shown as it is; control characters (ESC, CR, NUL,
        # bidi overrides) as visible escapes, so model text never drives the terminal.
        table.add_row(*[Text(printable(x)) for x in texts], style="bold" if t.bold and t.bold(row) else None)
    return table, numbers


def print_rich_table(console: Console, t: TableData) -> None:
    """Fit the terminal by wrapping labels; print at natural width when it cannot fit or is not a terminal."""
    table, numbers = rich_table(t)
    if console.is_terminal:
        for attempt in (table, rich_table(t, fixed=True)[0]):  # wrap labels, then number headers too
            with console.capture() as cap:
                console.print(attempt)
            text = cap.get()
            if all(n in text for n in numbers) and max(map(len, text.splitlines()), default=0) <= console.width:
                console.file.write(text)
                return
    natural = Measurement.get(console, console.options.update(max_width=1_000_000), table).maximum
    old = console.width
    console.width = max(natural, old) if console.is_terminal else natural
    try:
        with console.capture() as cap:
            console.print(table)
    finally:
        console.width = old
    # rich pads the title line to the table's width: no trailing blanks in a log or a pipe
    console.file.write("".join(line.rstrip() + "\n" for line in cap.get().splitlines()))


@contextlib.contextmanager
def progress_bar(description: str, total: int, transient: bool = True):
    """A rich progress bar: the `progress` callback of the library (`lidr_data.progress.Progress`, yields
    `advance(n)`). Transient: gone once done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=transient) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def generation_bar(description: str, total: int) -> contextlib.AbstractContextManager:
    """The bar of a generation (a stage's, `lidr generate`'s, an eval's): it stays, so a log shows how far it got."""
    return progress_bar(description, total, transient=False)


def warn(message: str) -> None:
    """A notice of the library (e.g. what a --force replaced), in yellow on stderr."""
    make_console(stderr=True).print(message, style="yellow", markup=False, highlight=False, soft_wrap=True)


def snippet(text: str | None, limit: int | None = None) -> str:
    """Model-written text as one safe line (safe_text.printable, newlines shown as ⏎), cut at `limit` characters
    with an ellipsis. Print the result as rich Text (no markup)."""
    if text is None:
        return "(none)"
    shown = printable(text.replace("\n", " ⏎ ").replace("\t", " "), keep="").strip()
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 1].rstrip() + "…"
    return shown


# The build's report, shared by `lidr build` and `lidr demo`.


def build_events(console: Console) -> BuildEvents:
    """The build's reports as lines on `console`: a line per stage (dim when done earlier), notices, warnings in
    yellow, and a spinner while a stage without a progress bar runs."""

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
    print_tables([stats_table(read_stats(run_dir), f"lidr build: {run_dir}")], fmt, out or console)
    console.print(f"pairs: [bold]{run_dir / 'pairs.parquet'}[/] · every drop with its stage and reason: "
                  f"[bold]{run_dir / 'dropped.parquet'}[/]", soft_wrap=True)


def materialize_and_report(run_dir: Path, args: argparse.Namespace, console: Console) -> Path | None:
    """End of a build: the run becomes an immutable version in WORKDIR/store/ (unless --no-materialize), or the
    version made from the very same pairs is reported as up to date."""
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
