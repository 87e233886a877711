"""MGSM: zero-shot accuracy per language and off-target rate (answers not in the question's language).

Generation goes through the generation layer with a request cache in the results folder, so a run is resumable
and a rerun only generates what is missing. Results: `items.parquet` (one row per problem), `summary.parquet`
(one row per language plus `avg`, the macro average), `run.json`.
"""

from __future__ import annotations

import argparse
import csv
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
    is_average,
    langs_argument,
)
from lidr_data.eval.extract import extract_answer, parse_gold
from lidr_data.eval.results import slug, write_json, write_table
from lidr_data.extras import quiet_transformers
from lidr_data.generation import Request, SamplingParams, load_generator, parse_backend_options
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests
from lidr_data.langid import detect_languages
from lidr_data.progress import Progress
from lidr_data.readers import read_located
from lidr_data.table import Column, TableData, percent

MGSM_LANGS = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
HUB_ID = "juletxara/mgsm"

# Zero-shot instruction in the question's language, asking for the localized phrase extract.py looks for first.
PROMPTS = {
    "en": "{question}\n\nThink step by step, then finish with \"The answer is N\", where N is a number.",
    "de": "{question}\n\nDenke Schritt für Schritt nach und schließe mit „Die Antwort lautet N“ ab, wobei N eine Zahl ist.",
    "es": "{question}\n\nPiensa paso a paso y termina con «La respuesta es N», donde N es un número.",
    "fr": "{question}\n\nRéfléchis étape par étape, puis termine par « La réponse est N », où N est un nombre.",
    "ru": "{question}\n\nРассуждай шаг за шагом и закончи фразой «Ответ: N», где N — число.",
    "ja": "{question}\n\n段階的に考えて、最後に「答えはNです」（Nは数）と書いてください。",
    "zh": "{question}\n\n请一步一步地思考，最后写出“答案是N”（N为数字）。",
    "th": "{question}\n\nคิดทีละขั้นตอน แล้วจบด้วย \"คำตอบคือ N\" โดยที่ N เป็นตัวเลข",
    "sw": "{question}\n\nFikiria hatua kwa hatua, kisha malizia kwa \"Jibu ni N\", ambapo N ni namba.",
    "bn": "{question}\n\nধাপে ধাপে চিন্তা করো, তারপর শেষে লেখো \"উত্তর হল N\", যেখানে N একটি সংখ্যা।",
    "te": "{question}\n\nదశలవారీగా ఆలోచించి, చివరగా \"సమాధానం N\" అని రాయండి, ఇక్కడ N ఒక సంఖ్య.",
}


@dataclass
class MgsmConfig:
    """One MGSM evaluation run."""

    model: str = field(metadata={"help": "model folder, Hub id, or the endpoint's model name"})
    output: Path = field(metadata={"help": "results folder (tables, run.json, request cache)"})
    data: str = field(default=HUB_ID, metadata={"help": "Hub id, or a folder of {lang}.jsonl / mgsm_{lang}.tsv"})
    langs: tuple[str, ...] = field(default=MGSM_LANGS, metadata={"help": "languages to evaluate"})
    backend: str = field(default="transformers", metadata={"help": "generation backend"})
    backend_options: dict = field(default_factory=dict, metadata={"help": "backend constructor options"})
    limit: int | None = field(default=None, metadata={"help": "first K problems per language"})
    max_new_tokens: int = field(default=1024, metadata={"help": "generation budget per answer"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "1.0 = off"})
    system_prompt: str | None = field(default=None, metadata={"help": "system prompt, if any"})
    prompt_template: str | None = field(
        default=None, metadata={"help": "one template with {question} for every language (default: localized)"}
    )
    label: str | None = field(default=None, metadata={"help": "name of this model in tables (default: model)"})


def _from_rows(rows: list[tuple[str, dict]], lang: str) -> list[dict]:
    """Problems from (location, row) pairs; the location names the row in errors."""
    items = []
    for i, (where, row) in enumerate(rows):
        question = row.get("query", row.get("question"))
        answer = row.get("response", row.get("answer_number", row.get("answer")))
        if not isinstance(question, str) or not question.strip():
            raise LidrError(f"{where}: missing field 'query' (the question)")
        if answer is None:
            raise LidrError(f"{where}: missing field 'response' (the gold answer)")
        try:
            gold = parse_gold(answer)
        except ValueError:
            raise LidrError(f"{where}: gold answer {answer!r} is not a number") from None
        items.append({"lang": lang, "id": f"mgsm-{i}", "question": question, "gold": gold})
    return items


def _read_tsv(path: Path, lang: str) -> list[dict]:
    """The original MGSM files: `question<TAB>answer`, no header."""
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for lineno, fields in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not fields or not "".join(fields).strip():
                continue
            if len(fields) != 2:
                raise LidrError(f"{path}:{lineno}: expected 2 tab-separated fields (question, answer), got {len(fields)}")
            rows.append((f"{path}:{lineno}", {"query": fields[0], "response": fields[1]}))
    return _from_rows(rows, lang)


def load_mgsm(source: str | Path, langs: tuple[str, ...] | list[str], limit: int | None = None) -> list[dict]:
    """Problems as dicts (lang, id, question, gold), in language then file order.

    `source` is a folder holding `mgsm_{lang}.jsonl`, `{lang}.jsonl`, `mgsm_{lang}.tsv` or `{lang}.tsv` per
    language, or a Hub dataset id with one config per language (`juletxara/mgsm`: question, answer_number), or
    a local folder in that Hub layout (README.md with `configs`). `lidr:assets/demo-mgsm` names the folder
    shipped with lidr, as in recipes.
    """
    if not langs:
        raise LidrError("no languages given")
    path = resolve_path(source)
    items: list[dict] = []
    for lang in langs:
        if path.is_dir():
            names = [f"mgsm_{lang}.jsonl", f"{lang}.jsonl", f"mgsm_{lang}.tsv", f"{lang}.tsv"]
            found = next((path / n for n in names if (path / n).is_file()), None)
            if found is None and (path / "README.md").is_file():  # a local copy in the Hub layout
                rows = _load_hub(str(path), lang)
            elif found is None:
                have = sorted(p.name for p in path.iterdir() if p.suffix in (".jsonl", ".tsv"))
                raise LidrError(f"{path}: no MGSM file for language {lang!r} (looked for {', '.join(names)}; "
                                f"found {', '.join(have) or 'nothing'})")
            else:
                rows = _read_tsv(found, lang) if found.suffix == ".tsv" else _from_rows(read_located(found), lang)
        elif path.exists() or str(source).startswith((".", "/", "~", "lidr:")):
            raise LidrError(f"{source}: MGSM source must be a folder of per-language files or a Hub dataset id")
        else:
            rows = _load_hub(str(source), lang)
        if not rows:
            raise LidrError(f"{source}: no MGSM problems for language {lang!r}")
        items.extend(rows[:limit] if limit else rows)
    return items


def _load_hub(dataset_id: str, lang: str) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, lang, split="test")
    except Exception as e:  # noqa: BLE001 - datasets raises many types (offline, missing config, ...)
        raise LidrError(f"cannot load MGSM {dataset_id!r} language {lang!r}: {str(e).splitlines()[0]}") from e
    rows = [(f"{dataset_id}[{lang}]: row {i}", {"query": r["question"], "response": r["answer_number"]})
            for i, r in enumerate(ds)]
    return _from_rows(rows, lang)


def build_prompt(question: str, lang: str, template: str | None = None) -> str:
    template = template or PROMPTS.get(lang, PROMPTS["en"])
    if "{question}" not in template:
        raise LidrError("prompt template must contain {question}")
    return template.replace("{question}", question)


def langid_support(langs) -> dict[str, bool]:
    """Whether the shared language ID (lingua) has a model for each language; it covers every MGSM language."""
    from lingua import IsoCode639_1

    support = {}
    for lang in langs:
        try:
            IsoCode639_1.from_str(lang)  # the check `lidr_data.langid` makes before building its detector
            support[lang] = True
        except ValueError:
            support[lang] = False
    return support


def detect_output_languages(texts: list[str], langs: list[str]) -> tuple[list[str | None], list[float | None]]:
    """Language of each text (None where the question's language has no language-ID model).

    Candidates are the run's languages plus the MGSM languages (English above all: the usual drift), so an
    answer in any of them is seen as off-target, while the detector stays restricted and accurate.
    """
    support = langid_support(sorted(set(langs) | set(MGSM_LANGS)))
    candidates = sorted(code for code, ok in support.items() if ok)
    # The question's language is expected: an answer whose first read disagrees is read further before it
    # counts as off-target. Text without letters (a bare "221") is "unknown", never off-target.
    detected = detect_languages(texts, candidates, expected=[lang if support[lang] else None for lang in langs])
    codes = [code if support[lang] else None for (code, _), lang in zip(detected, langs)]
    scores = [round(score, 4) if support[lang] else None for (_, score), lang in zip(detected, langs)]
    return codes, scores


SUMMARY_SQL = """
WITH per_lang AS (
    SELECT lang, count(*) AS n, count_if(correct) AS correct, avg(correct::INT) AS accuracy,
           count_if(extracted IS NULL) AS no_answer,
           count_if(finish_reason = 'error') AS errors,
           count_if(finish_reason = 'length') AS truncated,
           count(detected_lang) AS lang_checked,
           count_if(off_target) AS off_target,
           CASE WHEN count(detected_lang) > 0 THEN avg(off_target::INT) END AS off_target_rate,
           CASE WHEN count(detected_lang) > 0 THEN avg((detected_lang = 'unknown')::INT) END AS unknown_lang_rate
    FROM items GROUP BY lang
)
SELECT * FROM per_lang
UNION ALL
SELECT 'avg', sum(n)::BIGINT, sum(correct)::BIGINT, avg(accuracy), sum(no_answer)::BIGINT, sum(errors)::BIGINT,
       sum(truncated)::BIGINT, sum(lang_checked)::BIGINT, sum(off_target)::BIGINT, avg(off_target_rate),
       avg(unknown_lang_rate)
FROM per_lang
"""


def summarize(items: pl.DataFrame, lang_order: list[str]) -> pl.DataFrame:
    """Per-language accuracy and off-target rate plus the macro average (`avg`)."""
    con = duckdb.connect()
    con.register("items", items.to_arrow())
    summary = con.sql(SUMMARY_SQL).pl()
    con.close()
    order = {lang: i for i, lang in enumerate([*lang_order, "avg"])}
    return summary.sort(pl.col("lang").replace_strict(order, default=len(order)))


def run_mgsm(cfg: MgsmConfig, generator=None, progress: Progress | None = None) -> tuple[pl.DataFrame, dict]:
    """Evaluate; write items.parquet, summary.parquet and run.json into cfg.output. Returns (summary, info)."""
    langs = list(dict.fromkeys(cfg.langs))
    problems = load_mgsm(cfg.data, langs, cfg.limit)
    sampling = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              repetition_penalty=cfg.repetition_penalty)
    prompts = [build_prompt(p["question"], p["lang"], cfg.prompt_template) for p in problems]
    requests = [Request.from_messages(p, sampling, cfg.system_prompt) for p in prompts]
    output = Path(cfg.output)
    own_generator = generator is None
    generator = generator or load_generator(cfg.backend, cfg.model, **cfg.backend_options)
    cache = RequestCache(output / "cache")
    try:
        completions, keys, stats = run_requests(generator, requests, cache, progress=progress,
                                                description="MGSM")
    finally:
        cache.close()
        if own_generator:
            generator.close()
    item_langs = [p["lang"] for p in problems]
    texts = [c.text for c in completions]
    detected, scores = detect_output_languages(texts, item_langs)
    extracted = [extract_answer(t, p["lang"]) for t, p in zip(texts, problems)]
    label = cfg.label or cfg.model
    items = pl.DataFrame({
        "model": [label] * len(problems),
        "lang": item_langs,
        "id": [p["id"] for p in problems],
        "question": [p["question"] for p in problems],
        "gold": [p["gold"] for p in problems],
        "prompt_text": prompts,  # flat text, as `lidr sql` names it (a `prompt` column there is a chat list)
        "output": texts,
        "finish_reason": [c.finish_reason for c in completions],
        "n_tokens": [c.n_tokens for c in completions],
        "extracted": extracted,
        "correct": [e is not None and e == p["gold"] for e, p in zip(extracted, problems)],
        "detected_lang": detected,
        "lang_score": scores,
        "off_target": [None if d is None else (d != lang and d != "unknown") for d, lang in zip(detected, item_langs)],
        "request_key": keys,
    }, schema_overrides={"extracted": pl.String, "detected_lang": pl.String, "lang_score": pl.Float64,
                         "off_target": pl.Boolean})
    summary = summarize(items, langs).with_columns(pl.lit("mgsm").alias("task"), pl.lit(label).alias("model"))
    info = {
        "task": "mgsm", "label": label, "config": asdict(cfg),
        "generation": asdict(stats),
        "model_revision": completions[0].model_revision if completions else None,
        "langid_unsupported": [lang for lang, ok in langid_support(langs).items() if not ok],
    }
    write_table(items, output / "items.parquet")
    write_table(summary, output / "summary.parquet")
    write_json(info, output / "run.json")
    return summary, info


def add_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument("--model", required=True, help="model folder, Hub id, or the endpoint's model name")
    m.add_argument("--data", default="juletxara/mgsm",
                   help="Hub dataset id, or a folder of mgsm_{lang}.jsonl / {lang}.jsonl ({query, response}) or "
                   "mgsm_{lang}.tsv (question<TAB>answer); lidr:assets/demo-mgsm is the small set shipped with lidr")
    m.add_argument("--langs", type=langs_argument, default="bn,de,en,es,fr,ja,ru,sw,te,th,zh", help="comma-separated")
    m.add_argument("--output", type=Path, default=None, help="results folder (default: eval-results/mgsm-<model>)")
    m.add_argument("--system-prompt", default=None)
    m.add_argument("--prompt-template", default=None,
                   help="one prompt for every language, with {question} (default: a localized zero-shot prompt)")
    add_generation_arguments(m, max_new_tokens=1024, repetition_penalty=1.0)


def run_options(args: argparse.Namespace, progress: Progress | None = None) -> EvalReport:
    """`lidr eval mgsm`: the parsed options -> run -> the results table and what to say after it."""
    cfg = MgsmConfig(
        model=args.model, output=args.output or Path("eval-results") / f"mgsm-{slug(args.label or args.model)}",
        data=args.data, langs=args.langs, backend=args.backend,
        backend_options=parse_backend_options(args.backend_option), limit=args.limit,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        repetition_penalty=args.repetition_penalty, system_prompt=args.system_prompt,
        prompt_template=args.prompt_template, label=args.label,
    )
    if args.no_progress or args.backend != "openai":
        quiet_transformers(all_bars=args.no_progress)
    summary, info = run_mgsm(cfg, progress=progress)
    table = TableData(f"MGSM · {info['label']}", [
        Column("lang"), Column("n", numeric=True), Column("accuracy", "accuracy %", True, percent),
        Column("correct", numeric=True), Column("no_answer", "no answer", numeric=True),
        Column("off_target_rate", "off-target %", True, percent),
        Column("unknown_lang_rate", "unknown lang %", True, percent), Column("truncated", numeric=True),
        Column("errors", numeric=True)], summary.to_dicts(), bold=is_average)
    messages = []
    if info["langid_unsupported"]:
        messages.append(Message(f"language ID has no model for {', '.join(info['langid_unsupported'])}: "
                                "off-target rate not computed there"))
    gen = info["generation"]
    messages.append(Message(f"(items.parquet, summary.parquet) · generated {gen['generated']} · cache hits "
                            f"{gen['cache_hits']} · errors {gen['errors']}", "results", wrap=False))
    if gen["errors"]:
        messages.append(Message(f"{gen['errors']} generation(s) failed and count as wrong; rerun to retry them"))
    return EvalReport(table, Path(cfg.output), messages, exit_code=1 if gen["errors"] else 0)


def _cell(row: dict) -> str:
    acc, off = row["accuracy"], row["off_target_rate"]
    return f"{100 * acc:.1f}" + ("" if off is None else f" ({100 * off:.1f})")


EVALUATION = Evaluation(
    name="mgsm", help="MGSM accuracy and off-target rate per language",
    description="Zero-shot MGSM in each language: accuracy (localized 'the answer is N', else the last number; "
    "digits of every script normalized) and off-target rate (answers whose language ID is another language). "
    "Generation is cached in OUTPUT/cache.",
    add_arguments=add_arguments, run=run_options, metrics=("accuracy",),
    cell_title="accuracy % (off-target %)", cell=_cell,
)
