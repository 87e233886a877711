"""The training data: a version's pairs checked against the tokenizer before any training step.

Everything here computes and returns; the script prints.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lidr_data.dataset.load import REQUIRED_COLUMNS
from lidr_data.errors import LidrError

# Columns that change DPOTrainer's behaviour when present (see shared NOTES); a version never has them.
_TRL_SPECIAL = ("image", "images", "tools", "chat_template_kwargs")


def check_columns(dataset, what: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise LidrError(f"{what}: no {', '.join(f'`{c}`' for c in missing)} column (a preference dataset needs "
                        f"{', '.join(REQUIRED_COLUMNS)})")
    special = [c for c in _TRL_SPECIAL if c in dataset.column_names]
    if special:
        raise LidrError(f"{what}: column(s) {', '.join(special)} would change how DPOTrainer reads the pairs")


@dataclass
class LengthReport:
    """What TRL will do with the pairs at `max_length` (its rules: a prompt of >= max_length tokens is dropped,
    a longer prompt + completion is cut)."""

    pairs: int
    max_length: int | None
    dropped_prompt_too_long: int
    truncated: int
    longest: int


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def check_template_and_lengths(dataset, tokenizer, max_length: int | None, what: str) -> LengthReport:
    """Render every pair with the tokenizer's chat template; refuse a template under which the rendered prompt
    (with the generation prompt) is not a prefix of prompt + completion (TRL would train on a context the model
    never sees); count what TRL drops or truncates at `max_length`."""
    if not getattr(tokenizer, "chat_template", None):
        raise LidrError(f"{what}: the tokenizer has no chat template (the pairs are chat messages)")
    prompts, chosen, rejected = [], [], []
    for i, row in enumerate(dataset.select_columns(list(REQUIRED_COLUMNS))):
        for field in REQUIRED_COLUMNS:
            value = row[field]
            if not isinstance(value, list) or not value or not all(isinstance(m, dict) and "role" in m for m in value):
                raise LidrError(f"{what}: row {i}, field `{field}`: expected a non-empty list of chat messages")
        try:
            p = _render(tokenizer, row["prompt"], True)
            c = _render(tokenizer, row["prompt"] + row["chosen"], False)
            r = _render(tokenizer, row["prompt"] + row["rejected"], False)
        except Exception as e:  # noqa: BLE001 (a template error names the row)
            raise LidrError(f"{what}: row {i}: the chat template fails ({type(e).__name__}: {e})") from None
        for field, full in (("chosen", c), ("rejected", r)):
            if not full.startswith(p):
                raise LidrError(
                    f"{what}: row {i}, field `{field}`: under this chat template the rendered prompt (with the "
                    "generation prompt) is not a prefix of prompt + completion; TRL would train on a context the "
                    "model never sees at inference. Use a template that renders the prompt the same way in both."
                )
        prompts.append(p)
        chosen.append(c)
        rejected.append(r)
    if not prompts:
        return LengthReport(0, max_length, 0, 0, 0)
    encode = lambda texts: [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]  # noqa: E731
    lp, lc, lr = encode(prompts), encode(chosen), encode(rejected)
    dropped = truncated = 0
    if max_length is not None:
        for p, c, r in zip(lp, lc, lr):
            if p >= max_length:
                dropped += 1
            elif c > max_length or r > max_length:
                truncated += 1
    return LengthReport(len(prompts), max_length, dropped, truncated, max(max(lc), max(lr)))


def split_by_prompt(dataset, fraction: float, seed: int):
    """(train, eval): a seeded share of *prompts* held out, so both directions of a prompt stay on one side."""
    if not fraction:
        return dataset, None
    if not 0 < fraction < 1:
        raise LidrError(f"--eval-fraction must be in [0, 1), got {fraction}")
    key = "prompt_id" if "prompt_id" in dataset.column_names else None
    ids = dataset[key] if key else list(range(dataset.num_rows))
    unique = sorted(set(ids))
    if len(unique) < 2:
        raise LidrError(f"--eval-fraction {fraction}: only {len(unique)} prompt(s), nothing left to hold out")
    random.Random(seed).shuffle(unique)
    n_eval = min(len(unique) - 1, max(1, math.ceil(fraction * len(unique))))
    held = set(unique[:n_eval])
    eval_idx = [i for i, x in enumerate(ids) if x in held]
    train_idx = [i for i, x in enumerate(ids) if x not in held]
    return dataset.select(train_idx), dataset.select(eval_idx)
