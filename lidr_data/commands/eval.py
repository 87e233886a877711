"""`lidr eval mgsm|winrate|compare`: MGSM accuracy and off-target rate, win rate with a pluggable judge, and
several result folders side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidr_data.commands.build import quiet_transformers
from lidr_data.commands.render import (
    Column,
    TableData,
    add_format_argument,
    generation_bar,
    make_console,
    messages_to_stderr,
    output_consoles,
    print_tables,
)
from lidr_data.generation import BACKENDS, SamplingParams


def langs_argument(text: str) -> tuple[str, ...]:
    langs = tuple(code.strip() for code in text.replace(" ", ",").split(",") if code.strip())
    if not langs:
        raise argparse.ArgumentTypeError("give at least one language code, e.g. de,fr,ja")
    return langs


def add_judge_arguments(p: argparse.ArgumentParser) -> None:
    """The judge options `lidr eval winrate` and `lidr audit` share (same judges, prompt and request cache)."""
    p.add_argument("--judge", default="openai", choices=("openai", "reward-model", "length"))
    p.add_argument("--judge-model", default=None, help="judge model name (openai) or reward model folder")
    p.add_argument("--judge-base-url", default=None,
                   help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or https://api.openai.com/v1)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the judge API key (the key is never printed or stored)")
    p.add_argument("--judge-concurrency", type=int, default=8, help="judge requests in flight")
    p.add_argument("--no-logprobs", action="store_true", help="do not ask the judge for token log-probabilities")


def judge_options(args: argparse.Namespace) -> dict:
    """The judge's constructor options from `add_judge_arguments` (only the `openai` judge takes any)."""
    if args.judge != "openai":
        return {}
    return {"base_url": args.judge_base_url, "api_key_env": args.judge_api_key_env,
            "concurrency": args.judge_concurrency, "logprobs": not args.no_logprobs}


def _generation_args(p: argparse.ArgumentParser, max_new_tokens: int, repetition_penalty: float) -> None:
    p.add_argument("--backend", default="transformers", choices=BACKENDS)
    p.add_argument("-O", "--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="generation backend option, e.g. -O base_url=http://localhost:8000/v1 -O batch_size=16")
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=SamplingParams.temperature, help="0 = greedy")
    p.add_argument("--repetition-penalty", type=float, default=repetition_penalty)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first K items per language")
    p.add_argument("--label", default=None, help="name of this model in tables (default: the model)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_format_argument(p, what="results table (csv/json: on stdout, notes on stderr)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models: MGSM accuracy, win rate, side-by-side comparison",
                       description="Evaluate models. Each run writes a results folder of Parquet tables "
                       "(items, summary, ...) that `lidr sql` can query, plus run.json.")
    evsub = p.add_subparsers(dest="eval_command", metavar="EVAL", required=True)

    m = evsub.add_parser("mgsm", help="MGSM accuracy and off-target rate per language",
                         description="Zero-shot MGSM in each language: accuracy (localized 'the answer is N', "
                         "else the last number; digits of every script normalized) and off-target rate (answers "
                         "whose language ID is another language). Generation is cached in OUTPUT/cache.")
    m.add_argument("--model", required=True, help="model folder, Hub id, or the endpoint's model name")
    m.add_argument("--data", default="juletxara/mgsm",
                   help="Hub dataset id, or a folder of mgsm_{lang}.jsonl / {lang}.jsonl ({query, response}) or "
                   "mgsm_{lang}.tsv (question<TAB>answer); lidr:assets/demo-mgsm is the small set shipped with lidr")
    m.add_argument("--langs", type=langs_argument, default="bn,de,en,es,fr,ja,ru,sw,te,th,zh", help="comma-separated")
    m.add_argument("--output", type=Path, default=None, help="results folder (default: eval-results/mgsm-<model>)")
    m.add_argument("--system-prompt", default=None)
    m.add_argument("--prompt-template", default=None,
                   help="one prompt for every language, with {question} (default: a localized zero-shot prompt)")
    _generation_args(m, max_new_tokens=1024, repetition_penalty=1.0)
    m.set_defaults(func=run_mgsm_cmd)

    w = evsub.add_parser("winrate", help="win rate against reference outputs, with a pluggable judge",
                         description="Win rate (ties 0.5) of candidate outputs against reference outputs per "
                         "language, with SE, win/tie/loss counts and a length-controlled win rate. Outputs are "
                         "folders of {lang}.json (AlpacaEval lists) or {lang}.jsonl matched by id (by instruction "
                         "where a side has no id); or give --model and --prompts to generate the candidate.")
    w.add_argument("--reference", required=True, help="folder of reference outputs")
    w.add_argument("--candidate", default=None, help="folder of candidate outputs")
    w.add_argument("--model", default=None, help="generate candidate outputs with this model instead")
    w.add_argument("--prompts", default=None, help="X-AlpacaEval prompts folder ({lang}.json) for --model")
    w.add_argument("--system-prompt", default="You are a helpful assistant.")
    w.add_argument("--langs", type=langs_argument, required=True, help="comma-separated, e.g. en,es,ru,de,fr")
    add_judge_arguments(w)
    w.add_argument("--both-orders", action="store_true", help="judge each item in both orders (2 calls)")
    w.add_argument("--seed", type=int, default=0, help="seed of the per-item random answer order")
    w.add_argument("--output", type=Path, default=None, help="results folder (default: eval-results/winrate-<name>)")
    _generation_args(w, max_new_tokens=2048, repetition_penalty=1.1)
    w.set_defaults(func=run_winrate_cmd)

    c = evsub.add_parser("compare", help="several results folders side by side, per language",
                         description="Show runs side by side per language (e.g. M0, M1, M2), as the paper's "
                         "tables do: MGSM accuracy (off-target rate) or win rate (± SE).")
    c.add_argument("runs", nargs="+", type=Path, help="results folders of `lidr eval mgsm` or `lidr eval winrate`")
    c.add_argument("--metric", default=None,
                   help="summary column to show (default: accuracy for MGSM, win_rate for win rate)")
    add_format_argument(c, what="comparison tables")
    c.set_defaults(func=run_compare_cmd)


def _pct(value, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _is_avg(row: dict) -> bool:
    return row.get("lang") == "avg"


def run_mgsm_cmd(args: argparse.Namespace) -> int:
    from lidr_data.commands.generate import parse_options
    from lidr_data.eval.mgsm import MgsmConfig, run_mgsm
    from lidr_data.eval.results import slug

    cfg = MgsmConfig(
        model=args.model, output=args.output or Path("eval-results") / f"mgsm-{slug(args.label or args.model)}",
        data=args.data, langs=args.langs, backend=args.backend, backend_options=parse_options(args.backend_option),
        limit=args.limit, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        repetition_penalty=args.repetition_penalty, system_prompt=args.system_prompt,
        prompt_template=args.prompt_template, label=args.label,
    )
    out, console = output_consoles(args.format)
    if args.no_progress or args.backend != "openai":
        quiet_transformers(all_bars=args.no_progress)
    with messages_to_stderr(args.format):  # progress bars
        summary, info = run_mgsm(cfg, progress=None if args.no_progress else generation_bar)
    print_tables([TableData(f"MGSM · {info['label']}", [
        Column("lang"), Column("n", numeric=True), Column("accuracy", "accuracy %", True, _pct),
        Column("correct", numeric=True), Column("no_answer", "no answer", numeric=True),
        Column("off_target_rate", "off-target %", True, _pct),
        Column("unknown_lang_rate", "unknown lang %", True, _pct), Column("truncated", numeric=True),
        Column("errors", numeric=True)], summary.to_dicts(), bold=_is_avg)], args.format, out)
    if info["langid_unsupported"]:
        console.print(f"[yellow]language ID has no model for {', '.join(info['langid_unsupported'])}: "
                      "off-target rate not computed there[/]")
    gen = info["generation"]
    console.print(f"results in [bold]{cfg.output}[/] (items.parquet, summary.parquet) · generated "
                  f"{gen['generated']} · cache hits {gen['cache_hits']} · errors {gen['errors']}", soft_wrap=True)
    if gen["errors"]:
        console.print(f"[yellow]{gen['errors']} generation(s) failed and count as wrong; rerun to retry them[/]")
    return 1 if gen["errors"] else 0


def run_winrate_cmd(args: argparse.Namespace) -> int:
    from lidr_data.commands.generate import parse_options
    from lidr_data.eval.results import slug
    from lidr_data.eval.winrate import WinrateConfig, run_winrate

    name = args.label or args.model or (args.candidate and Path(args.candidate).name) or "candidate"
    cfg = WinrateConfig(
        output=args.output or Path("eval-results") / f"winrate-{slug(name)}", reference=args.reference,
        langs=args.langs, candidate=args.candidate, model=args.model, prompts=args.prompts, backend=args.backend,
        backend_options=parse_options(args.backend_option), max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, repetition_penalty=args.repetition_penalty, system_prompt=args.system_prompt,
        judge=args.judge, judge_model=args.judge_model, judge_options=judge_options(args), both_orders=args.both_orders,
        seed=args.seed, limit=args.limit, label=args.label,
    )
    out, console = output_consoles(args.format)
    if args.no_progress or (args.model and args.backend != "openai") or args.judge == "reward-model":
        quiet_transformers(all_bars=args.no_progress)
    with messages_to_stderr(args.format):  # progress bars
        summary, info = run_winrate(cfg, progress=None if args.no_progress else generation_bar)
    rows = [{**r, "unmatched": f"{r['unmatched_candidate']}/{r['unmatched_reference']}"} for r in summary.to_dicts()]
    print_tables([TableData(
        f"win rate · {info['label']} vs {Path(info['reference']).name} · judge {info['judge']}", [
            Column("lang"), Column("win_rate", "WR %", True, _num), Column("se", "± SE", True, _num),
            Column("lc_win_rate", "LC WR %", True, _num), Column("wins", "win", numeric=True),
            Column("ties", "tie", numeric=True), Column("losses", "loss", numeric=True),
            Column("identical", numeric=True), Column("malformed", numeric=True), Column("errors", numeric=True),
            Column("unmatched", "unmatched c/r", numeric=True), Column("matched_by", "matched by")],
        rows, bold=_is_avg)], args.format, out)
    for note in info["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"results in [bold]{cfg.output}[/] (items, judgments, unmatched, summary .parquet)", soft_wrap=True)
    return 1 if int(summary.filter(summary["lang"] == "avg")["errors"][0] or 0) else 0


def run_compare_cmd(args: argparse.Namespace) -> int:
    from lidr_data.eval.compare import compare_runs

    tables = []
    for task, metric, langs, columns in compare_runs(args.runs, args.metric):
        cols = [Column("lang")] + [Column(label, numeric=True) for label, _ in columns]
        rows = [{"lang": lang, **{label: cells.get(lang, "-") for label, cells in columns}} for lang in langs]
        tables.append(TableData(f"{task} · {metric}", cols, rows, bold=_is_avg, name=f"{task}:{metric}"))
    print_tables(tables, args.format, make_console())
    return 0
