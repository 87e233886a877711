"""Win rate of candidate outputs against reference outputs, per language, with a pluggable judge.

Outputs are folders of `{lang}.json` (AlpacaEval JSON lists) or `{lang}.jsonl`, matched by `id`; where a side
has no ids (the English GPT-4-Turbo reference of X-AlpacaEval) they are matched by `instruction`, as AlpacaEval
does, and the summary says so. Rows without a partner are reported in `unmatched.parquet` with a reason, never
dropped silently. Candidate outputs can also be generated on the fly from a model and X-AlpacaEval prompts.

Per item s in [0, 1] (win 1, tie 0.5, loss 0; a logprob-weighted judge gives values between); identical outputs
score 0.5 with no judge call; malformed or failed judgments are counted and left out of the win rate, and so are
items the `chrf` judge has no gold answer for (`no_reference`). Each side's language is identified as MGSM's
off-target rate does it (`lidr_data.langid`), giving an off-target rate per language for both sides.

The `chrf` judge scores both sides against a third set of answers, the gold (`judge_options["reference"]`), so the
reference outputs can be another model's: M1's outputs against M0's, judged by chrF against GPT-4-Turbo's answers,
is M1's chrF win rate against M0.

Results: items.parquet, judgments.parquet (one row per judge call), unmatched.parquet, summary.parquet, run.json.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from lidr_data.config import resolve_path
from lidr_data.errors import LidrError
from lidr_data.eval.evaluation import (
    EvalReport,
    Evaluation,
    Message,
    add_generation_arguments,
    add_judge_arguments,
    is_average,
    judge_options,
    langs_argument,
)
from lidr_data.eval.judges import ChrfJudge, Judge, Pair, load_judge
from lidr_data.eval.mgsm import detect_output_languages
from lidr_data.eval.outputs import find_lang_file, load_outputs
from lidr_data.eval.results import slug, write_json, write_json_list, write_table
from lidr_data.eval.stats import length_controlled_win_rate, win_rate
from lidr_data.extras import quiet_transformers
from lidr_data.generation import Request, SamplingParams, load_generator, parse_backend_options
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests
from lidr_data.progress import Progress
from lidr_data.readers import read_located
from lidr_data.table import Column, TableData, fixed, percent


@dataclass
class WinrateConfig:
    """One win-rate run."""

    output: Path = field(metadata={"help": "results folder"})
    reference: str = field(metadata={"help": "folder of reference outputs ({lang}.json / {lang}.jsonl)"})
    langs: tuple[str, ...] = field(metadata={"help": "languages to evaluate"})
    candidate: str | None = field(default=None, metadata={"help": "folder of candidate outputs"})
    model: str | None = field(default=None, metadata={"help": "generate candidate outputs with this model"})
    prompts: str | None = field(default=None, metadata={"help": "X-AlpacaEval prompts folder ({lang}.json)"})
    backend: str = field(default="transformers", metadata={"help": "generation backend for --model"})
    backend_options: dict = field(default_factory=dict, metadata={"help": "backend constructor options"})
    max_new_tokens: int = field(default=2048, metadata={"help": "generation budget per answer"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "the LIDR paper's setting"})
    system_prompt: str | None = field(default="You are a helpful assistant.", metadata={"help": "system prompt"})
    judge: str = field(default="openai", metadata={"help": "openai | reward-model | length"})
    judge_model: str | None = field(default=None, metadata={"help": "judge model name or reward model folder"})
    judge_options: dict = field(default_factory=dict, metadata={"help": "judge constructor options"})
    both_orders: bool = field(default=False, metadata={"help": "judge each item in both orders"})
    seed: int = field(default=0, metadata={"help": "seed of the per-item random order"})
    limit: int | None = field(default=None, metadata={"help": "first K rows of each file"})
    label: str | None = field(default=None, metadata={"help": "candidate name in tables"})


MATCH_SQL = """
WITH c AS (SELECT *, {key} AS key, row_number() OVER (PARTITION BY {key} ORDER BY pos) AS dup FROM cand),
     r AS (SELECT *, {key} AS key, row_number() OVER (PARTITION BY {key} ORDER BY pos) AS dup FROM ref)
SELECT c.key, c.pos, coalesce(c.instruction, r.instruction) AS instruction,
       c.output AS candidate_output, r.output AS reference_output
FROM c JOIN r ON c.key = r.key AND c.dup = 1 AND r.dup = 1
WHERE c.output IS NOT NULL AND r.output IS NOT NULL
ORDER BY c.pos
"""

UNMATCHED_SQL = """
WITH c AS (SELECT *, {key} AS key, row_number() OVER (PARTITION BY {key} ORDER BY pos) AS dup FROM cand),
     r AS (SELECT *, {key} AS key, row_number() OVER (PARTITION BY {key} ORDER BY pos) AS dup FROM ref)
SELECT 'candidate' AS side, c.pos, c.key, CASE
         WHEN c.key IS NULL THEN 'no {key} in candidate row'
         WHEN c.dup > 1 THEN 'duplicate {key} in candidate'
         WHEN c.output IS NULL THEN 'candidate output missing'
         WHEN r.key IS NULL THEN 'missing in reference'
         ELSE 'reference output missing' END AS reason
FROM c LEFT JOIN r ON c.key = r.key AND r.dup = 1
WHERE c.key IS NULL OR c.dup > 1 OR c.output IS NULL OR r.key IS NULL OR r.output IS NULL
UNION ALL
SELECT 'reference', r.pos, r.key, CASE
         WHEN r.key IS NULL THEN 'no {key} in reference row'
         WHEN r.dup > 1 THEN 'duplicate {key} in reference'
         WHEN r.output IS NULL THEN 'reference output missing'
         WHEN c.key IS NULL THEN 'missing in candidate'
         ELSE 'candidate output missing' END
FROM r LEFT JOIN c ON c.key = r.key AND c.dup = 1
WHERE r.key IS NULL OR r.dup > 1 OR r.output IS NULL OR c.key IS NULL OR c.output IS NULL
ORDER BY 1, 2
"""


def match_outputs(cand: pl.DataFrame, ref: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, str, str]:
    """(matched rows, unmatched rows with a reason, key column, note). Keys: `id` when both sides have one on
    every row, else `instruction`."""
    if cand["id"].null_count() == 0 and ref["id"].null_count() == 0:
        key, note = "id", ""
    elif cand["instruction"].null_count() == 0 and ref["instruction"].null_count() == 0:
        key = "instruction"
        sides = [name for name, df in (("candidate", cand), ("reference", ref)) if df["id"].null_count()]
        note = f"matched by instruction ({' and '.join(sides)} has no 'id')"
    else:
        raise LidrError("cannot match outputs: rows need an 'id' on both sides, or an 'instruction' on both")
    con = duckdb.connect()
    con.register("cand", cand.to_arrow())
    con.register("ref", ref.to_arrow())
    matched = con.sql(MATCH_SQL.format(key=key)).pl()
    unmatched = con.sql(UNMATCHED_SQL.format(key=key)).pl()
    con.close()
    return matched, unmatched, key, note


def generate_candidates(cfg: WinrateConfig, langs: list[str], progress: Progress | None = None) -> Path:
    """Answer the X-AlpacaEval prompts with cfg.model; write AlpacaEval-format {lang}.json under output/outputs."""
    if not cfg.prompts:
        raise LidrError("generating candidate outputs needs --prompts (a folder of X-AlpacaEval {lang}.json)")
    sampling = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              repetition_penalty=cfg.repetition_penalty)
    out_dir = Path(cfg.output) / "outputs"
    generator = load_generator(cfg.backend, cfg.model, **cfg.backend_options)
    cache = RequestCache(Path(cfg.output) / "cache")
    try:
        for lang in langs:
            path = find_lang_file(cfg.prompts, lang, "prompts")
            located = read_located(path)[: cfg.limit] if cfg.limit else read_located(path)
            for where, row in located:
                if not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
                    raise LidrError(f"{where}: missing field 'instruction'")
            rows = [row for _, row in located]
            requests = [Request.from_messages(r["instruction"], sampling, cfg.system_prompt) for r in rows]
            completions, _, _ = run_requests(generator, requests, cache, progress=progress,
                                             description=f"answering {lang}")
            records = [{"id": r.get("id", i), "dataset": r.get("dataset"), "instruction": r["instruction"],
                        # a failed generation has no output: it is reported as unmatched, not judged
                        "output": None if c.finish_reason == "error" else c.text,
                        "generator": cfg.label or cfg.model}
                       for i, (r, c) in enumerate(zip(rows, completions))]
            write_json_list(records, out_dir / f"{lang}.json")
    finally:
        cache.close()
        generator.close()
    return out_dir


def judge_language(judge: Judge, matched: pl.DataFrame, lang: str, both_orders: bool, seed: int,
                   progress: Progress | None) -> tuple[list[dict], list[dict]]:
    """(item rows, judgment rows) for one language's matched outputs."""
    calls: list[tuple[int, bool]] = []  # (item index, candidate shown first)
    pairs: list[Pair] = []
    rows = matched.to_dicts()
    for i, row in enumerate(rows):
        if row["candidate_output"] == row["reference_output"]:
            continue  # identical outputs: a tie without asking the judge
        if not judge.positional:  # the length and reward-model judges score each answer on its own
            orders = [True]
        elif both_orders:
            orders = [True, False]
        else:  # a seeded coin per item and language, stable across runs and item order
            orders = [random.Random(f"{seed}:{lang}:{row['key']}").random() < 0.5]
        for cand_first in orders:
            c, r = row["candidate_output"], row["reference_output"]
            pairs.append(Pair(row["instruction"] or "", lang, c if cand_first else r, r if cand_first else c))
            calls.append((i, cand_first))
    verdicts = judge.judge(pairs, progress=progress) if pairs else []
    per_item: dict[int, list] = {}
    judgments = []
    for (i, cand_first), verdict in zip(calls, verdicts):
        cand_score = None if verdict.score is None else (verdict.score if cand_first else 1 - verdict.score)
        per_item.setdefault(i, []).append((cand_score, verdict))
        judgments.append({
            "lang": lang, "key": rows[i]["key"], "order": "candidate_first" if cand_first else "reference_first",
            "first_score": verdict.score, "candidate_score": cand_score, "method": verdict.method,
            "raw": verdict.raw, "error": verdict.error, "cached": verdict.cached,
            "candidate_reward": verdict.first_reward if cand_first else verdict.second_reward,
            "reference_reward": verdict.second_reward if cand_first else verdict.first_reward,
        })
    items = []
    for i, row in enumerate(rows):
        got = per_item.get(i)
        if got is None:
            score, outcome, method = 0.5, "tie", "identical"
        else:
            valid = [s for s, _ in got if s is not None]
            methods = sorted({v.method for _, v in got})
            method = "+".join(methods)
            if valid:
                score = sum(valid) / len(valid)
                outcome = "win" if score > 0.5 else "loss" if score < 0.5 else "tie"
            else:
                score = None
                outcome = next((m for m in ("no_reference", "malformed") if m in methods), "error")
        items.append({
            "lang": lang, "key": row["key"], "instruction": row["instruction"],
            "candidate_output": row["candidate_output"], "reference_output": row["reference_output"],
            "candidate_chars": len(row["candidate_output"]), "reference_chars": len(row["reference_output"]),
            "score": score, "outcome": outcome, "method": method, "judge_calls": len(got or []),
        })
    if isinstance(judge, ChrfJudge):  # each side's chrF against the gold, identical sides included
        for it in items:
            gold = judge.gold(lang, it["instruction"] or "")
            it["candidate_chrf"] = None if gold is None else judge.chrf(it["candidate_output"], gold)
            it["reference_chrf"] = None if gold is None else judge.chrf(it["reference_output"], gold)
    return items, judgments


def tag_languages(items: list[dict], lang: str) -> None:
    """Each side's detected language and whether it is off-target, as MGSM's off-target rate reads it (None
    where language ID has no model for `lang`; an answer without letters is `unknown`, never off-target)."""
    if not items:
        return
    texts = [it["candidate_output"] for it in items] + [it["reference_output"] for it in items]
    detected, _ = detect_output_languages(texts, [lang] * len(texts))
    for side, codes in (("candidate", detected[:len(items)]), ("reference", detected[len(items):])):
        for it, code in zip(items, codes):
            it[f"{side}_lang"] = code
            it[f"{side}_off_target"] = None if code is None else code not in (lang, "unknown")


def summarize_language(items: list[dict], judgments: list[dict], unmatched: pl.DataFrame, lang: str,
                       matched_by: str) -> dict:
    scored = [it for it in items if it["score"] is not None]
    scores = [it["score"] for it in scored]
    wr, se = win_rate(scores)
    lc = length_controlled_win_rate(scores, [it["candidate_chars"] - it["reference_chars"] for it in scored])
    count = lambda outcome: sum(it["outcome"] == outcome for it in items)  # noqa: E731

    def mean(column: str) -> float | None:
        values = [float(it[column]) for it in items if it.get(column) is not None]
        return sum(values) / len(values) if values else None

    extra = {"candidate_chrf": mean("candidate_chrf"), "reference_chrf": mean("reference_chrf")} \
        if items and "candidate_chrf" in items[0] else {}
    return {
        "lang": lang, "n": len(items), "scored": len(scores), "win_rate": wr, "se": se, "lc_win_rate": lc,
        "wins": count("win"), "ties": count("tie"), "losses": count("loss"),
        "identical": sum(it["method"] == "identical" for it in items),
        "malformed": count("malformed"), "errors": count("error"), "no_reference": count("no_reference"),
        "off_target_rate": mean("candidate_off_target"), "reference_off_target_rate": mean("reference_off_target"),
        **extra,
        # with --both-orders an item can keep one usable verdict while the other call was malformed
        "malformed_calls": sum(j["method"] == "malformed" for j in judgments), "judge_calls": len(judgments),
        "unmatched_candidate": int((unmatched["side"] == "candidate").sum()),
        "unmatched_reference": int((unmatched["side"] == "reference").sum()),
        "matched_by": matched_by,
    }


def run_winrate(cfg: WinrateConfig, judge: Judge | None = None, progress: Progress | None = None) -> tuple[pl.DataFrame, dict]:
    """Judge every language; write the tables into cfg.output. Returns (summary, info with notes)."""
    langs = list(dict.fromkeys(cfg.langs))
    if not langs:
        raise LidrError("no languages given")
    if (cfg.candidate is None) == (cfg.model is None):
        raise LidrError("give either --candidate (a folder of outputs) or --model (to generate them)")
    output = Path(cfg.output)
    gold = cfg.judge_options.get("reference") if cfg.judge == "chrf" else None
    if gold and Path(gold).resolve() == Path(cfg.reference).resolve():
        raise LidrError(f"--judge-reference {gold} is the --reference itself: the reference would score chrF 100 and "
                        "win every item. Judge against other outputs (e.g. M0's), with these as the gold")
    for lang in langs:  # fail on a missing language before any generation or judging
        find_lang_file(cfg.reference, lang, "reference")
        if cfg.candidate:
            find_lang_file(cfg.candidate, lang, "candidate")
        if gold:
            find_lang_file(gold, lang, "gold answers (--judge-reference)")
    candidate_dir = resolve_path(cfg.candidate) if cfg.candidate else generate_candidates(cfg, langs, progress)
    own_judge = judge is None
    judge = judge or load_judge(cfg.judge, cfg.judge_model, cache_path=output / "cache",  # the generation cache
                                **cfg.judge_options)
    label = cfg.label or cfg.model or Path(cfg.candidate).name
    all_items, all_judgments, unmatched_rows, summaries, notes = [], [], [], [], []
    reference_name = Path(cfg.reference).name
    try:
        for lang in langs:
            cand = load_outputs(find_lang_file(candidate_dir, lang, "candidate"), cfg.limit)
            ref = load_outputs(find_lang_file(cfg.reference, lang, "reference"), cfg.limit)
            matched, unmatched, key, note = match_outputs(cand, ref)
            if note:
                notes.append(f"{lang}: {note}")
            if unmatched.height:
                reasons = unmatched.group_by("reason").len().sort("reason")
                notes.append(f"{lang}: {unmatched.height} unmatched row(s): " + ", ".join(
                    f"{n} {reason}" for reason, n in reasons.iter_rows()))
            if matched.height == 0:
                notes.append(f"{lang}: no candidate row matches a reference row; nothing judged")
            items, judgments = judge_language(judge, matched, lang, cfg.both_orders, cfg.seed, progress)
            tag_languages(items, lang)
            summary = summarize_language(items, judgments, unmatched, lang, key)
            if summary["no_reference"]:
                where = judge.reference.name if isinstance(judge, ChrfJudge) else "the gold answers"
                notes.append(f"{lang}: {summary['no_reference']} item(s) have no gold answer in {where} (no row "
                             "with that exact instruction): no reference, left out of the win rate")
            if summary["malformed"] or summary["errors"]:
                notes.append(f"{lang}: {summary['malformed']} malformed and {summary['errors']} failed judgment(s), "
                             "left out of the win rate" + ("; rerun to retry the failures" if summary["errors"] else ""))
            summaries.append(summary)
            all_items += items
            all_judgments += judgments
            unmatched_rows += [{"lang": lang, **r} for r in unmatched.to_dicts()]
    finally:
        if own_judge:
            judge.close()
    summary = pl.DataFrame(summaries, infer_schema_length=None, schema_overrides={
        "win_rate": pl.Float64, "se": pl.Float64, "lc_win_rate": pl.Float64, "matched_by": pl.String,
        "off_target_rate": pl.Float64, "reference_off_target_rate": pl.Float64,
        **({"candidate_chrf": pl.Float64, "reference_chrf": pl.Float64} if isinstance(judge, ChrfJudge) else {})})
    summary = pl.concat([summary, _average(summary)], how="diagonal_relaxed").with_columns(
        pl.lit("winrate").alias("task"), pl.lit(label).alias("model"), pl.lit(reference_name).alias("reference"),
        pl.lit(judge.name).alias("judge"),
    )
    items_df = pl.DataFrame(all_items, infer_schema_length=None, schema_overrides={
        "score": pl.Float64, "candidate_lang": pl.String, "reference_lang": pl.String,
        "candidate_off_target": pl.Boolean, "reference_off_target": pl.Boolean,
        **({"candidate_chrf": pl.Float64, "reference_chrf": pl.Float64} if isinstance(judge, ChrfJudge) else {})}) \
        if all_items else pl.DataFrame(schema={"lang": pl.String, "key": pl.String, "score": pl.Float64})
    judgments_df = pl.DataFrame(all_judgments, infer_schema_length=None, schema_overrides={
        "first_score": pl.Float64, "candidate_score": pl.Float64, "raw": pl.String, "error": pl.String,
        "candidate_reward": pl.Float64, "reference_reward": pl.Float64}) if all_judgments else \
        pl.DataFrame(schema={"lang": pl.String, "key": pl.String, "method": pl.String})
    unmatched_df = pl.DataFrame(unmatched_rows, schema={"lang": pl.String, "side": pl.String, "pos": pl.Int64,
                                                         "key": pl.String, "reason": pl.String})
    info = {"task": "winrate", "label": label, "reference": str(cfg.reference), "candidate": str(candidate_dir),
            "config": asdict(cfg), **judge.describe(), "notes": notes}
    write_table(items_df.with_columns(pl.lit(label).alias("model")), output / "items.parquet")
    write_table(judgments_df, output / "judgments.parquet")
    write_table(unmatched_df, output / "unmatched.parquet")
    write_table(summary, output / "summary.parquet")
    write_json(info, output / "run.json")
    return summary, info


def _average(summary: pl.DataFrame) -> pl.DataFrame:
    """The macro average over languages (as the paper reports), with SE = sqrt(sum SE^2) / L."""
    if summary.height == 0:
        return pl.DataFrame({"lang": ["avg"]})
    counts = ["n", "scored", "wins", "ties", "losses", "identical", "malformed", "errors", "no_reference",
              "malformed_calls", "judge_calls", "unmatched_candidate", "unmatched_reference"]
    means = [c for c in ("win_rate", "lc_win_rate", "off_target_rate", "reference_off_target_rate",
                         "candidate_chrf", "reference_chrf") if c in summary.columns]
    return summary.select(
        pl.lit("avg").alias("lang"),
        *[pl.col(c).sum() for c in counts],
        *[pl.col(c).mean() for c in means],
        ((pl.col("se") ** 2).sum().sqrt() / pl.col("se").count()).alias("se"),
    )


def add_arguments(w: argparse.ArgumentParser) -> None:
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
    add_generation_arguments(w, max_new_tokens=2048, repetition_penalty=1.1)


def run_options(args: argparse.Namespace, progress: Progress | None = None) -> EvalReport:
    """`lidr eval winrate`: the parsed options -> run -> the results table and what to say after it."""
    name = args.label or args.model or (args.candidate and Path(args.candidate).name) or "candidate"
    cfg = WinrateConfig(
        output=args.output or Path("eval-results") / f"winrate-{slug(name)}", reference=args.reference,
        langs=args.langs, candidate=args.candidate, model=args.model, prompts=args.prompts, backend=args.backend,
        backend_options=parse_backend_options(args.backend_option), max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, repetition_penalty=args.repetition_penalty, system_prompt=args.system_prompt,
        judge=args.judge, judge_model=args.judge_model, judge_options=judge_options(args), both_orders=args.both_orders,
        seed=args.seed, limit=args.limit, label=args.label,
    )
    if args.no_progress or (args.model and args.backend != "openai") or args.judge == "reward-model":
        quiet_transformers(all_bars=args.no_progress)
    summary, info = run_winrate(cfg, progress=progress)
    rows = [{**r, "unmatched": f"{r['unmatched_candidate']}/{r['unmatched_reference']}"} for r in summary.to_dicts()]
    chrf = [Column("candidate_chrf", "chrF cand", True, fixed), Column("reference_chrf", "chrF ref", True, fixed),
            Column("no_reference", "no gold", numeric=True)] if info["judge"] == "chrf" else []
    table = TableData(
        f"win rate · {info['label']} vs {Path(info['reference']).name} · judge {info['judge']}", [
            Column("lang"), Column("win_rate", "WR %", True, fixed), Column("se", "± SE", True, fixed),
            Column("lc_win_rate", "LC WR %", True, fixed), Column("wins", "win", numeric=True),
            Column("ties", "tie", numeric=True), Column("losses", "loss", numeric=True), *chrf,
            Column("off_target_rate", "off-target %", True, percent),
            Column("reference_off_target_rate", "ref off-target %", True, percent),
            Column("identical", numeric=True), Column("malformed", numeric=True), Column("errors", numeric=True),
            Column("unmatched", "unmatched c/r", numeric=True), Column("matched_by", "matched by")],
        rows, bold=is_average)
    messages = [Message(note, "note", wrap=False, highlight=False) for note in info["notes"]]
    messages.append(Message("(items, judgments, unmatched, summary .parquet)", "results", wrap=False))
    failed = int(summary.filter(summary["lang"] == "avg")["errors"][0] or 0)
    return EvalReport(table, Path(cfg.output), messages, exit_code=1 if failed else 0)


def _cell(row: dict) -> str:
    wr, se = row["win_rate"], row["se"]
    return "-" if wr is None else f"{wr:.2f}" + ("" if se is None else f" ± {se:.2f}")


def _iterate_check(options: dict) -> str | None:
    # In the loop the candidate is M_t's answers, generated from `prompts`, judged against `reference`.
    if options.get("prompts") and options.get("reference"):
        return None
    return "needs `prompts` (instructions to answer) and `reference` (outputs to beat)"


EVALUATION = Evaluation(
    name="winrate", help="win rate against reference outputs, with a pluggable judge",
    description="Win rate (ties 0.5) of candidate outputs against reference outputs per language, with SE, "
    "win/tie/loss counts and a length-controlled win rate. Outputs are folders of {lang}.json (AlpacaEval lists) "
    "or {lang}.jsonl matched by id (by instruction where a side has no id); or give --model and --prompts to "
    "generate the candidate. Each side's off-target rate is reported too. With --judge chrf the gold answers "
    "(--judge-reference) are separate from the reference outputs, so M1 can be judged against M0's outputs: the "
    "chrF win rate against M0.",
    add_arguments=add_arguments, run=run_options, metrics=("win_rate",),
    cell_title="win rate % ± SE", cell=_cell, iterate_check=_iterate_check,
)
