"""`lidr eval mgsm|winrate|refnll|compare`: MGSM accuracy and off-target rate, win rate with a pluggable judge,
reference log-likelihood, and several result folders side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

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
from lidr_data.extras import quiet_transformers
from lidr_data.generation import BACKENDS, SamplingParams


def langs_argument(text: str) -> tuple[str, ...]:
    langs = tuple(code.strip() for code in text.replace(" ", ",").split(",") if code.strip())
    if not langs:
        raise argparse.ArgumentTypeError("give at least one language code, e.g. de,fr,ja")
    return langs


def add_judge_arguments(p: argparse.ArgumentParser) -> None:
    """The judge options `lidr eval winrate` and `lidr audit` share (same judges, prompt and request cache)."""
    p.add_argument("--judge", default="openai", choices=("openai", "reward-model", "length", "chrf"),
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
    p = sub.add_parser("eval", help="evaluate models: MGSM accuracy, win rate, reference NLL, side-by-side comparison",
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
                         "where a side has no id); or give --model and --prompts to generate the candidate. Each "
                         "side's off-target rate is reported too. With --judge chrf the gold answers "
                         "(--judge-reference) are separate from the reference outputs, so M1 can be judged against "
                         "M0's outputs: the chrF win rate against M0.")
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

    r = evsub.add_parser("refnll", help="reference log-likelihood: NLL of reference answers per language",
                         description="How likely the model finds a good answer, without generating: the mean "
                         "per-token NLL of each reference answer (e.g. GPT-4-Turbo's X-AlpacaEval answers) given "
                         "its prompt through the chat template (answer tokens only, cut to --max-tokens), with a "
                         "per-byte and per-character figure beside it (per-token figures depend on the tokenizer: "
                         "compare models within a language), n and the standard error over items. Lower is better.")
    r.add_argument("--model", required=True, help="model folder or Hub id")
    r.add_argument("--reference", required=True,
                   help="folder of reference answers ({lang}.json: instruction, output), or an X-AlpacaEval folder "
                   "(its outputs/gpt-4-turbo-2024-04-09 and prompts/)")
    r.add_argument("--prompts", default=None,
                   help="folder of prompts ({lang}.json: instruction), matched to the answers by exact instruction "
                   "text (default: the X-AlpacaEval folder's prompts/, else the answers' own instructions)")
    r.add_argument("--langs", type=langs_argument, default="en,es,ru,de,fr", help="comma-separated")
    r.add_argument("--limit", type=int, default=None, help="evaluate only the first K prompts per language")
    r.add_argument("--max-tokens", type=int, default=256, help="score the first N tokens of each answer")
    r.add_argument("--batch-size", type=int, default=4, help="sequences per forward pass")
    r.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "auto"))
    r.add_argument("--system-prompt", default="You are a helpful assistant.")
    r.add_argument("--output", type=Path, default=None, help="results folder (default: eval-results/refnll-<model>)")
    r.add_argument("--label", default=None, help="name of this model in tables (default: the model)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_format_argument(r, what="results table (csv/json: on stdout, notes on stderr)")
    r.set_defaults(func=run_refnll_cmd)

    c = evsub.add_parser("compare", help="several results folders side by side, per language",
                         description="Show runs side by side per language (e.g. M0, M1, M2), as the paper's "
                         "tables do: MGSM accuracy (off-target rate) or win rate (± SE).")
    c.add_argument("runs", nargs="+", type=Path, help="results folders of `lidr eval mgsm`, `winrate` or `refnll`")
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
    chrf = [Column("candidate_chrf", "chrF cand", True, _num), Column("reference_chrf", "chrF ref", True, _num),
            Column("no_reference", "no gold", numeric=True)] if info["judge"] == "chrf" else []
    print_tables([TableData(
        f"win rate · {info['label']} vs {Path(info['reference']).name} · judge {info['judge']}", [
            Column("lang"), Column("win_rate", "WR %", True, _num), Column("se", "± SE", True, _num),
            Column("lc_win_rate", "LC WR %", True, _num), Column("wins", "win", numeric=True),
            Column("ties", "tie", numeric=True), Column("losses", "loss", numeric=True), *chrf,
            Column("off_target_rate", "off-target %", True, _pct),
            Column("reference_off_target_rate", "ref off-target %", True, _pct),
            Column("identical", numeric=True), Column("malformed", numeric=True), Column("errors", numeric=True),
            Column("unmatched", "unmatched c/r", numeric=True), Column("matched_by", "matched by")],
        rows, bold=_is_avg)], args.format, out)
    for note in info["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"results in [bold]{cfg.output}[/] (items, judgments, unmatched, summary .parquet)", soft_wrap=True)
    return 1 if int(summary.filter(summary["lang"] == "avg")["errors"][0] or 0) else 0


def run_refnll_cmd(args: argparse.Namespace) -> int:
    from lidr_data.eval.refnll import RefNllConfig, run_refnll
    from lidr_data.eval.results import slug

    cfg = RefNllConfig(
        model=args.model, output=args.output or Path("eval-results") / f"refnll-{slug(args.label or args.model)}",
        reference=args.reference, prompts=args.prompts, langs=args.langs, limit=args.limit,
        max_tokens=args.max_tokens, batch_size=args.batch_size, dtype=args.dtype, system_prompt=args.system_prompt,
        label=args.label,
    )
    out, console = output_consoles(args.format)
    if args.no_progress:
        quiet_transformers()
    with messages_to_stderr(args.format):  # progress bars
        summary, info = run_refnll(cfg, progress=None if args.no_progress else generation_bar)
    digits = lambda v: _num(v, 4)  # noqa: E731
    print_tables([TableData(f"reference NLL · {info['label']} · {Path(info['reference']).name}", [
        Column("lang"), Column("n", numeric=True), Column("nll_per_token", "NLL/token", True, digits),
        Column("se_per_token", "± SE", True, digits), Column("nll_per_byte", "NLL/byte", True, digits),
        Column("se_per_byte", "± SE", True, digits), Column("nll_per_char", "NLL/char", True, digits),
        Column("tokens", numeric=True), Column("truncated", numeric=True),
        Column("no_reference", "no reference", numeric=True)], summary.to_dicts(), bold=_is_avg)], args.format, out)
    missing = int(summary.filter(summary["lang"] == "avg")["no_reference"][0])
    if missing:
        console.print(f"[yellow]{missing} prompt(s) have no reference answer with the same instruction: not scored "
                      "(unmatched.parquet)[/]", soft_wrap=True)
    console.print(f"results in [bold]{cfg.output}[/] (items, unmatched, summary .parquet) · {info['seconds']} s · "
                  f"{info['tokens_per_second']} tokens/s", soft_wrap=True, highlight=False)
    return 0


def run_compare_cmd(args: argparse.Namespace) -> int:
    from lidr_data.eval.compare import compare_runs

    tables = []
    for task, metric, langs, columns in compare_runs(args.runs, args.metric):
        cols = [Column("lang")] + [Column(label, numeric=True) for label, _ in columns]
        rows = [{"lang": lang, **{label: cells.get(lang, "-") for label, cells in columns}} for lang in langs]
        tables.append(TableData(f"{task} · {metric}", cols, rows, bold=_is_avg, name=f"{task}:{metric}"))
    print_tables(tables, args.format, make_console())
    return 0
