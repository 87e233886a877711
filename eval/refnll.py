"""Reference log-likelihood: how likely a model finds a good answer, without generating anything.

For each instruction with a reference answer in its language (X-AlpacaEval's GPT-4-Turbo answers), the
model reads the prompt through its chat template (system prompt, user turn, `add_generation_prompt=True`), then
the reference answer; the negative log-likelihood is summed over the answer's tokens only (the prompt and any
end-of-turn token are not scored), the answer cut to its first `max_tokens` tokens. Lower is closer to a good
answer: a model that learned from LIDR pairs should find the reference answers in L more likely than before.

Reported per language with n and a standard error over items (each item counts once):
- `nll_per_token`: the mean over items of the item's mean per-token NLL (nats). It depends on the tokenizer:
  Cyrillic text splits into more, easier tokens per character than English, so compare models within a language.
- `nll_per_byte` and `nll_per_char`: the item's summed NLL over the UTF-8 bytes (characters) of the answer text
  its scored tokens cover. A figure less tied to the tokenizer, to read beside the per-token one.

Instructions are matched to reference answers by exact text per language (outer whitespace aside); prompts
without a reference answer are counted (`no_reference`) and listed in unmatched.parquet, never scored.
Results: items.parquet, unmatched.parquet, summary.parquet (per language plus `avg`, the macro average), run.json.
Batches are padded on the right, so padding never changes a real token's position or what it attends to.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from lidr_data.errors import LidrError
from lidr_data.eval.evaluation import EvalReport, Evaluation, Message, is_average, langs_argument
from lidr_data.eval.judges import gold_key
from lidr_data.eval.outputs import find_lang_file
from lidr_data.eval.results import slug, write_json, write_table
from lidr_data.extras import quiet_transformers
from lidr_data.generation import Request
from lidr_data.generation.transformers_backend import TransformersGenerator
from lidr_data.progress import Progress, no_progress
from lidr_data.readers import read_located
from lidr_data.table import Column, TableData, fixed

XALPACAEVAL_LANGS = ("en", "es", "ru", "de", "fr")
XALPACAEVAL_REFERENCE = "gpt-4-turbo-2024-04-09"  # the paper's reference model in X-AlpacaEval
DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclass
class RefNllConfig:
    """One reference log-likelihood run."""

    model: str = field(metadata={"help": "model folder or Hub id (a transformers causal LM with a chat template)"})
    output: Path = field(metadata={"help": "results folder"})
    reference: str = field(metadata={
        "help": "folder of reference answers ({lang}.json with instruction and output), or an X-AlpacaEval folder "
                "(prompts/ and outputs/gpt-4-turbo-2024-04-09/)"})
    prompts: str | None = field(default=None, metadata={
        "help": "folder of prompts ({lang}.json with instruction): the items, in order (default: the X-AlpacaEval "
                "folder's prompts/, else the reference rows themselves)"})
    langs: tuple[str, ...] = field(default=XALPACAEVAL_LANGS, metadata={"help": "languages to evaluate"})
    limit: int | None = field(default=None, metadata={"help": "first K prompts per language"})
    max_tokens: int = field(default=256, metadata={"help": "score only the first N tokens of each answer"})
    # The logits of a batch are batch x length x vocabulary floats: 4 x 400 x 49,152 is ~315 MB in float32.
    batch_size: int = field(default=4, metadata={"help": "sequences per forward pass"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16 | auto"})
    system_prompt: str | None = field(default="You are a helpful assistant.", metadata={"help": "system prompt"})
    label: str | None = field(default=None, metadata={"help": "name of this model in tables (default: model)"})


def resolve_sources(reference: str | Path, prompts: str | Path | None) -> tuple[Path, Path | None]:
    """(reference answers folder, prompts folder or None); an X-AlpacaEval folder gives both."""
    ref = Path(reference)
    if (ref / "outputs" / XALPACAEVAL_REFERENCE).is_dir():
        if prompts is None and (ref / "prompts").is_dir():
            prompts = ref / "prompts"
        ref = ref / "outputs" / XALPACAEVAL_REFERENCE
    return ref, (Path(prompts) if prompts is not None else None)


def _text_field(where: str, row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise LidrError(f"{where}: missing field {name!r} (a non-empty string)")
    return value


def load_items(reference: Path, prompts: Path | None, lang: str, limit: int | None) -> tuple[list[dict], list[dict]]:
    """(items with a reference answer, prompts without one) of one language, in the prompts' order."""
    answers: dict[str, str | None] = {}
    ref_rows = read_located(find_lang_file(reference, lang, "reference"))
    for where, row in ref_rows:
        key = gold_key(_text_field(where, row, "instruction"))
        answer = _text_field(where, row, "output")
        answers[key] = answer if answers.get(key, answer) == answer else None  # None: two different answers
    source = read_located(find_lang_file(prompts, lang, "prompts")) if prompts else ref_rows
    items, unmatched = [], []
    for pos, (where, row) in enumerate(source[:limit] if limit else source):
        instruction = _text_field(where, row, "instruction")
        key = gold_key(instruction)
        ident = row.get("id")
        base = {"lang": lang, "pos": pos, "id": None if ident is None else str(ident), "instruction": instruction}
        if answers.get(key) is None:
            reason = "two different reference answers" if key in answers else "no reference answer"
            unmatched.append({**base, "reason": reason})
        else:
            items.append({**base, "answer": answers[key]})
    return items, unmatched


def encode(tokenizer, render, items: list[dict], max_tokens: int) -> None:
    """Add prompt and answer token ids to each item, the answer cut to `max_tokens`, with the bytes and
    characters of answer text the kept tokens cover."""
    for it in items:
        it["prompt_ids"] = tokenizer(render(it["instruction"]), add_special_tokens=False)["input_ids"]
        # One token past the budget tells whether the answer was cut, without encoding all of a long answer.
        enc = tokenizer(it["answer"], add_special_tokens=False, truncation=True, max_length=max_tokens + 1,
                        return_offsets_mapping=tokenizer.is_fast)
        ids = enc["input_ids"]
        it["truncated"] = len(ids) > max_tokens
        it["answer_ids"] = ids[:max_tokens]
        if not it["truncated"]:
            covered = it["answer"]
        elif tokenizer.is_fast:
            covered = it["answer"][:enc["offset_mapping"][max_tokens - 1][1]]
        else:  # no offsets: decode the kept tokens (a character cut in half counts as one)
            covered = tokenizer.decode(it["answer_ids"])
        it["n_chars"], it["n_bytes"] = len(covered), len(covered.encode("utf-8"))


def score_batches(model, items: list[dict], batch_size: int, pad_id: int, progress: Progress,
                  description: str) -> None:
    """Add `nll_sum` (nats, summed over the answer tokens) to each item. Sequences are sorted by length so a batch
    holds similar lengths, and padded on the right: real tokens keep positions 0..n-1 and never attend to padding,
    so the result does not depend on the batch."""
    import torch

    order = sorted(range(len(items)), key=lambda i: -(len(items[i]["prompt_ids"]) + len(items[i]["answer_ids"])))
    device = next(model.parameters()).device
    with progress(description, len(items)) as advance:
        for start in range(0, len(order), batch_size):
            batch = [items[i] for i in order[start:start + batch_size]]
            seqs = [it["prompt_ids"] + it["answer_ids"] for it in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, s in enumerate(seqs):
                ids[row, :len(s)] = torch.tensor(s)
                mask[row, :len(s)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                for row, it in enumerate(batch):
                    p, a = len(it["prompt_ids"]), len(it["answer_ids"])
                    # the token at position j is predicted by the logits at j - 1
                    logprobs = torch.log_softmax(logits[row, p - 1:p + a - 1].float(), dim=-1)
                    target = ids[row, p:p + a].to(device)
                    it["nll_sum"] = -float(logprobs.gather(1, target[:, None]).sum())
            advance(len(batch))


def _mean_se(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def summarize(items: pl.DataFrame, unmatched: pl.DataFrame, langs: list[str]) -> pl.DataFrame:
    """One row per language, then `avg` (the macro average over languages, SE = sqrt(sum SE^2) / L)."""
    rows = []
    for lang in langs:
        got = items.filter(pl.col("lang") == lang)
        row = {"lang": lang, "n": got.height, "no_reference": unmatched.filter(pl.col("lang") == lang).height,
               "truncated": int(got["truncated"].sum()), "tokens": int(got["n_tokens"].sum()),
               "bytes": int(got["n_bytes"].sum())}
        for unit in ("token", "byte", "char"):
            row[f"nll_per_{unit}"], row[f"se_per_{unit}"] = _mean_se(got[f"nll_per_{unit}"].to_list())
        rows.append(row)
    avg: dict = {"lang": "avg", **{k: sum(r[k] for r in rows) for k in ("n", "no_reference", "truncated", "tokens",
                                                                        "bytes")}}
    for unit in ("token", "byte", "char"):
        means = [r[f"nll_per_{unit}"] for r in rows if r[f"nll_per_{unit}"] is not None]
        ses = [r[f"se_per_{unit}"] for r in rows if r[f"se_per_{unit}"] is not None]
        avg[f"nll_per_{unit}"] = sum(means) / len(means) if means else None
        avg[f"se_per_{unit}"] = math.sqrt(sum(s * s for s in ses)) / len(ses) if ses and len(ses) == len(rows) \
            else None
    schema = {"lang": pl.String, "n": pl.Int64, "no_reference": pl.Int64, "truncated": pl.Int64,
              "tokens": pl.Int64, "bytes": pl.Int64,
              **{f"{kind}_per_{unit}": pl.Float64 for unit in ("token", "byte", "char") for kind in ("nll", "se")}}
    return pl.DataFrame([*rows, avg], schema=schema)


def run_refnll(cfg: RefNllConfig, progress: Progress | None = None) -> tuple[pl.DataFrame, dict]:
    """Score every language; write the tables into cfg.output. Returns (summary, info)."""
    langs = list(dict.fromkeys(cfg.langs))
    if not langs:
        raise LidrError("no languages given")
    if cfg.max_tokens < 1 or cfg.batch_size < 1:
        raise LidrError(f"--max-tokens ({cfg.max_tokens}) and --batch-size ({cfg.batch_size}) must be at least 1")
    if cfg.dtype not in DTYPES:
        raise LidrError(f"--dtype {cfg.dtype!r}: choose one of {', '.join(DTYPES)}")
    reference, prompts = resolve_sources(cfg.reference, cfg.prompts)
    per_lang = {lang: load_items(reference, prompts, lang, cfg.limit) for lang in langs}  # all errors before loading
    # The generation backend's loader: the same model checks, chat template rendering and revision fingerprint.
    loaded = TransformersGenerator(cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
    tokenizer, model = loaded.tokenizer, loaded.hf_model

    def render(instruction: str) -> str:
        return loaded.render(Request.from_messages(instruction, system_prompt=cfg.system_prompt))

    progress = progress or no_progress
    started = time.perf_counter()
    all_items, all_unmatched = [], []
    try:
        for lang in langs:
            items, unmatched = per_lang[lang]
            encode(tokenizer, render, items, cfg.max_tokens)
            context = getattr(model.config, "max_position_embeddings", None)
            for it in items:
                if context and len(it["prompt_ids"]) + len(it["answer_ids"]) > context:
                    raise LidrError(f"{lang} prompt {it['pos']}: {len(it['prompt_ids'])} prompt + "
                                    f"{len(it['answer_ids'])} answer tokens exceed the model's context of {context}; "
                                    "lower --max-tokens")
            score_batches(model, items, cfg.batch_size, tokenizer.pad_token_id, progress, f"reference NLL {lang}")
            all_items += items
            all_unmatched += unmatched
    finally:
        loaded.close()
    seconds = time.perf_counter() - started
    label = cfg.label or cfg.model
    items_df = pl.DataFrame([{
        "model": label, "lang": it["lang"], "pos": it["pos"], "id": it["id"], "instruction": it["instruction"],
        "answer": it["answer"], "n_tokens": len(it["answer_ids"]), "truncated": it["truncated"],
        "n_bytes": it["n_bytes"], "n_chars": it["n_chars"], "prompt_tokens": len(it["prompt_ids"]),
        "nll_sum": it["nll_sum"], "nll_per_token": it["nll_sum"] / len(it["answer_ids"]),
        "nll_per_byte": it["nll_sum"] / it["n_bytes"], "nll_per_char": it["nll_sum"] / it["n_chars"],
    } for it in all_items], schema={
        "model": pl.String, "lang": pl.String, "pos": pl.Int64, "id": pl.String, "instruction": pl.String,
        "answer": pl.String, "n_tokens": pl.Int64, "truncated": pl.Boolean, "n_bytes": pl.Int64, "n_chars": pl.Int64,
        "prompt_tokens": pl.Int64, "nll_sum": pl.Float64, "nll_per_token": pl.Float64, "nll_per_byte": pl.Float64,
        "nll_per_char": pl.Float64})
    unmatched_df = pl.DataFrame(all_unmatched, schema={"lang": pl.String, "pos": pl.Int64, "id": pl.String,
                                                       "instruction": pl.String, "reason": pl.String})
    summary = summarize(items_df, unmatched_df, langs).with_columns(pl.lit("refnll").alias("task"),
                                                                     pl.lit(label).alias("model"))
    tokens = int(items_df["n_tokens"].sum() + items_df["prompt_tokens"].sum()) if items_df.height else 0
    info = {"task": "refnll", "label": label, "config": asdict(cfg), "reference": str(reference),
            "prompts": None if prompts is None else str(prompts), "model_revision": loaded.model_revision,
            "template_hash": loaded.template_hash, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None}
    output = Path(cfg.output)
    write_table(items_df, output / "items.parquet")
    write_table(unmatched_df, output / "unmatched.parquet")
    write_table(summary, output / "summary.parquet")
    write_json(info, output / "run.json")
    return summary, info


def add_arguments(r: argparse.ArgumentParser) -> None:
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
    r.add_argument("--dtype", default="float32", choices=DTYPES)
    r.add_argument("--system-prompt", default="You are a helpful assistant.")
    r.add_argument("--output", type=Path, default=None, help="results folder (default: eval-results/refnll-<model>)")
    r.add_argument("--label", default=None, help="name of this model in tables (default: the model)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_options(args: argparse.Namespace, progress: Progress | None = None) -> EvalReport:
    """`lidr eval refnll`: the parsed options -> run -> the results table and what to say after it."""
    cfg = RefNllConfig(
        model=args.model, output=args.output or Path("eval-results") / f"refnll-{slug(args.label or args.model)}",
        reference=args.reference, prompts=args.prompts, langs=args.langs, limit=args.limit,
        max_tokens=args.max_tokens, batch_size=args.batch_size, dtype=args.dtype, system_prompt=args.system_prompt,
        label=args.label,
    )
    if args.no_progress:
        quiet_transformers()
    summary, info = run_refnll(cfg, progress=progress)
    digits = lambda v: fixed(v, 4)  # noqa: E731
    table = TableData(f"reference NLL · {info['label']} · {Path(info['reference']).name}", [
        Column("lang"), Column("n", numeric=True), Column("nll_per_token", "NLL/token", True, digits),
        Column("se_per_token", "± SE", True, digits), Column("nll_per_byte", "NLL/byte", True, digits),
        Column("se_per_byte", "± SE", True, digits), Column("nll_per_char", "NLL/char", True, digits),
        Column("tokens", numeric=True), Column("truncated", numeric=True),
        Column("no_reference", "no reference", numeric=True)], summary.to_dicts(), bold=is_average)
    messages = []
    missing = int(summary.filter(summary["lang"] == "avg")["no_reference"][0])
    if missing:
        messages.append(Message(f"{missing} prompt(s) have no reference answer with the same instruction: not "
                                "scored (unmatched.parquet)", wrap=False))
    messages.append(Message(f"(items, unmatched, summary .parquet) · {info['seconds']} s · "
                            f"{info['tokens_per_second']} tokens/s", "results", wrap=False, highlight=False))
    return EvalReport(table, Path(cfg.output), messages)


def _cell(row: dict) -> str:
    nll, se, per_byte = row["nll_per_token"], row["se_per_token"], row["nll_per_byte"]
    return "-" if nll is None else f"{nll:.3f}" + ("" if se is None else f" ± {se:.3f}") + \
        ("" if per_byte is None else f" ({per_byte:.4f})")


EVALUATION = Evaluation(
    name="refnll", help="reference log-likelihood: NLL of reference answers per language",
    description="How likely the model finds a good answer, without generating: the mean per-token NLL of each "
    "reference answer (e.g. GPT-4-Turbo's X-AlpacaEval answers) given its prompt through the chat template "
    "(answer tokens only, cut to --max-tokens), with a per-byte and per-character figure beside it (per-token "
    "figures depend on the tokenizer: compare models within a language), n and the standard error over items. "
    "Lower is better.",
    add_arguments=add_arguments, run=run_options, metrics=("nll_per_token", "nll_per_byte"),
    cell_title="NLL/token ± SE (NLL/byte)", cell=_cell,
)
