"""`lidr eval mgsm|winrate|refnll|compare`: MGSM accuracy and off-target rate, win rate with a pluggable judge,
reference log-likelihood, and several result folders side by side.

One subcommand per evaluation of `eval/registry.py`, made from its entry: its options, its runner, the report it
returns (printed here); `compare` reads what each evaluation's summary gives."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lidr_data.commands.render import (
    add_format_argument,
    generation_bar,
    make_console,
    messages_to_stderr,
    output_consoles,
    print_tables,
)
from lidr_data.eval import registry
from lidr_data.eval.compare import compare_runs
from lidr_data.eval.evaluation import EvalReport, is_average
from lidr_data.table import Column, TableData


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models: MGSM accuracy, win rate, reference NLL, side-by-side comparison",
                       description="Evaluate models. Each run writes a results folder of Parquet tables "
                       "(items, summary, ...) that `lidr sql` can query, plus run.json.")
    evsub = p.add_subparsers(dest="eval_command", metavar="EVAL", required=True)
    for evaluation in registry.EVALUATIONS:
        e = evsub.add_parser(evaluation.name, help=evaluation.help, description=evaluation.description)
        evaluation.add_arguments(e)
        add_format_argument(e, what="results table (csv/json: on stdout, notes on stderr)")
        e.set_defaults(func=run_evaluation)

    c = evsub.add_parser("compare", help="several results folders side by side, per language",
                         description="Show runs side by side per language (e.g. M0, M1, M2), as the paper's "
                         "tables do: MGSM accuracy (off-target rate) or win rate (± SE).")
    c.add_argument("runs", nargs="+", type=Path, help="results folders of `lidr eval mgsm`, `winrate` or `refnll`")
    c.add_argument("--metric", default=None,
                   help="summary column to show (default: accuracy for MGSM, win_rate for win rate)")
    add_format_argument(c, what="comparison tables")
    c.set_defaults(func=run_compare_cmd)


def _message_markup(kind: str, text: str, folder: Path) -> str:
    if kind == "note":
        return f"[yellow]note:[/] {text}"
    if kind == "results":
        return f"results in [bold]{folder}[/] {text}"
    return f"[yellow]{text}[/]"


def show_report(report: EvalReport, fmt: str, out: Console, console: Console) -> None:
    """The results table (on `out`, in `fmt`), then the report's lines (on `console`)."""
    print_tables([report.table], fmt, out)
    for m in report.messages:
        console.print(_message_markup(m.kind, m.text, report.folder), highlight=m.highlight,
                      soft_wrap=None if m.wrap else True)


def run_evaluation(args: argparse.Namespace) -> int:
    """`lidr eval NAME` for any evaluation of the registry."""
    evaluation = registry.find(args.eval_command)
    out, console = output_consoles(args.format)
    with messages_to_stderr(args.format):  # progress bars
        report = evaluation.run(args, None if args.no_progress else generation_bar)
    show_report(report, args.format, out, console)
    return report.exit_code


def run_compare_cmd(args: argparse.Namespace) -> int:
    tables = []
    for task, metric, langs, columns in compare_runs(args.runs, args.metric):
        cols = [Column("lang")] + [Column(label, numeric=True) for label, _ in columns]
        rows = [{"lang": lang, **{label: cells.get(lang, "-") for label, cells in columns}} for lang in langs]
        tables.append(TableData(f"{task} · {metric}", cols, rows, bold=is_average, name=f"{task}:{metric}"))
    print_tables(tables, args.format, make_console())
    return 0
