"""`lidr`: a thin face over the library: parse, call, render.

Every subcommand lives in `lidr_data/commands/<name>.py` with an `add_parser(subparsers)` that sets `func`.
A `LidrError` becomes a one-line message and exit code 2; so does a full disk (ENOSPC/EDQUOT, however the
library that hit it words it: `files.disk_full`). `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.markup import escape

from lidr_data.commands import (
    audit,
    build,
    dataset,
    demo,
    generate,
    inspect,
    iterate,
    model,
    sql,
    tiny_model,
    train,
)
from lidr_data.commands import eval as evaluate
from lidr_data.commands.render import make_console
from lidr_data.errors import LidrError
from lidr_data.files import disk_full, no_space_error
from lidr_data.safe_text import printable
from lidr_data.version import __version__

# Order here is the order in `lidr --help`.
COMMAND_MODULES = (tiny_model, model, generate, build, demo, train, evaluate, audit, iterate, dataset, sql, inspect)

err_console = make_console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lidr",
        description="Language Imbalance Driven Rewarding: build, publish, train on and evaluate multilingual "
        "preference data made from a model's own language imbalance.",
    )
    parser.add_argument("--version", action="version", version=f"lidr-data {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMAND_MODULES:
        command.add_parser(sub)
    return parser


def _print_error(e: LidrError) -> int:
    # escaped: messages quote user text and install hints (`lidr-data[generate]`) that are not markup, and
    # data (a DuckDB error echoes a value): control characters are shown, never sent to the terminal
    err_console.print(f"[bold red]error:[/] {escape(printable(str(e)))}", highlight=False, soft_wrap=True)
    return 2


def _failed_path(e: BaseException) -> str | None:
    """The file a full-disk error names, when it names one (an OSError's filename, in it or its causes)."""
    while e is not None:
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `lidr train` hands its words to TRL's parser: a `--` stops argparse from reading them as its own options.
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if first is not None and argv[first] == "train":
        argv.insert(first + 1, "--")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LidrError as e:
        if args.debug or os.environ.get("LIDR_DEBUG"):
            raise
        return _print_error(e)
    except Exception as e:
        if args.debug or os.environ.get("LIDR_DEBUG") or not disk_full(e):
            raise
        return _print_error(no_space_error(_failed_path(e), detail=str(e).strip().splitlines()[0] if str(e).strip() else None))
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
