"""What an evaluation declares, once, for every command that runs or reads it: its `Evaluation` entry (name, its
options, its runner, what its summary holds), listed in order in `eval/registry.py`. `lidr eval NAME` is made from
it (commands/eval.py), `lidr iterate` checks a recipe's `eval.NAME` options with its parser and reads its metrics
into the loop's table, `lidr eval compare` shows its summaries. Also the command-line options evaluations share
(languages, generation, judge; `lidr audit` takes the judge's too).

Library code: a runner computes, writes its results folder and returns an `EvalReport` (the table and the lines
to show after it); commands/eval.py prints it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from lidr_data.eval.judges import JUDGES
from lidr_data.generation import BACKENDS, SamplingParams
from lidr_data.progress import Progress
from lidr_data.table import TableData


@dataclass(frozen=True)
class Message:
    """A line shown after the results table. `warning`: the text in yellow; `note`: the text after a yellow
    "note:"; `results`: "results in FOLDER" (the report's folder, in bold) then the text. The text is printed as
    console markup. `wrap`: a terminal wraps it at its width (else one long line); `highlight`: numbers and paths
    in it are coloured on a terminal."""

    text: str
    kind: Literal["warning", "note", "results"] = "warning"
    wrap: bool = True
    highlight: bool = True


@dataclass
class EvalReport:
    """What a finished evaluation shows: its results table, then `messages` in order; the exit code of the run
    (1: some items failed and a rerun retries them)."""

    table: TableData
    folder: Path
    messages: list[Message] = field(default_factory=list)
    exit_code: int = 0


@dataclass(frozen=True)
class Evaluation:
    """One evaluation, as `lidr eval`, `lidr iterate` and `lidr eval compare` know it."""

    name: str  # `lidr eval NAME`, a recipe's `eval.NAME`, the `task` of its run.json and summary
    help: str  # its line in `lidr eval --help`
    description: str  # `lidr eval NAME --help`
    # Its options (`lidr eval NAME`; a recipe's `eval.NAME` is checked against them). The command adds --format.
    add_arguments: Callable[[argparse.ArgumentParser], None]
    # Parsed options and a progress callback (None: no bars) -> run, write the results folder, report.
    run: Callable[[argparse.Namespace, Progress | None], EvalReport]
    metrics: tuple[str, ...]  # summary columns `lidr iterate`'s table shows per language (<name>_<metric>_<lang>)
    cell_title: str  # what `lidr eval compare` shows per language by default...
    cell: Callable[[dict], str]  # ...made from one summary row
    # `lidr iterate`: a problem with a recipe's `eval.NAME` options that the parser cannot see (None: none).
    # The loop gives every evaluation --model, --output, --label and --no-progress itself.
    iterate_check: Callable[[dict], str | None] = lambda options: None

    def read_metrics(self, folder: Path) -> dict[str, dict[str, Any]]:
        """The summary reader: {lang: {metric: value}} of `metrics` from a finished results folder (None where
        the summary has no such column)."""
        return {r["lang"]: {m: r.get(m) for m in self.metrics}
                for r in pl.read_parquet(Path(folder) / "summary.parquet").iter_rows(named=True)}


def is_average(row: dict) -> bool:
    """The macro-average row of a summary (shown in bold)."""
    return row.get("lang") == "avg"


def langs_argument(text: str) -> tuple[str, ...]:
    langs = tuple(code.strip() for code in text.replace(" ", ",").split(",") if code.strip())
    if not langs:
        raise argparse.ArgumentTypeError("give at least one language code, e.g. de,fr,ja")
    return langs


def add_generation_arguments(p: argparse.ArgumentParser, max_new_tokens: int, repetition_penalty: float) -> None:
    """The options of an evaluation that generates with the model (`lidr eval mgsm`, `winrate --model`)."""
    p.add_argument("--backend", default="transformers", choices=BACKENDS)
    p.add_argument("-O", "--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="generation backend option, e.g. -O base_url=http://localhost:8000/v1 -O batch_size=16")
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=SamplingParams.temperature, help="0 = greedy")
    p.add_argument("--repetition-penalty", type=float, default=repetition_penalty)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first K items per language")
    p.add_argument("--label", default=None, help="name of this model in tables (default: the model)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_judge_arguments(p: argparse.ArgumentParser) -> None:
    """The judge options `lidr eval winrate` and `lidr audit` share (same judges, prompt and request cache)."""
    p.add_argument("--judge", default="openai", choices=JUDGES,
                   help="chrf: no model, chrF of each side against the gold answer in --judge-reference")
    p.add_argument("--judge-model", default=None, help="judge model name (openai) or reward model folder")
    p.add_argument("--judge-reference", default=None, metavar="DIR",
                   help="the chrf judge's gold answers: a folder of {lang}.json (instruction, output), e.g. "
                   "x-alpacaeval/outputs/gpt-4-turbo-2024-04-09; matched by exact instruction text per language")
    p.add_argument("--judge-base-url", default=None,
                   help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or https://api.openai.com/v1)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the judge API key (the key is never printed or stored)")
    p.add_argument("--judge-concurrency", type=int, default=8, help="judge requests in flight")
    p.add_argument("--no-logprobs", action="store_true", help="do not ask the judge for token log-probabilities")


def judge_options(args: argparse.Namespace) -> dict:
    """The judge's constructor options from `add_judge_arguments` (the `openai` judge's endpoint options; the gold
    answers folder, which only the `chrf` judge accepts)."""
    options = {"reference": str(args.judge_reference)} if args.judge_reference else {}
    if args.judge != "openai":
        return options
    return {**options, "base_url": args.judge_base_url, "api_key_env": args.judge_api_key_env,
            "concurrency": args.judge_concurrency, "logprobs": not args.no_logprobs}
