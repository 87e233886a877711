"""Build pairs_raw rows (PAIR_COLUMNS + FLAT_TEXT) for the tag/filter/dedup tests and the benchmark."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data.schema import FLAT_TEXT, PAIR_COLUMNS

RAW_SCHEMA = pa.schema([*PAIR_COLUMNS, *FLAT_TEXT])


def make_pair(prompt: str, chosen: str | None, rejected: str | None, *, lang: str = "en",
              direction: str = "from_dominant", pivot_lang: str = "en", prompt_id: str = "p0",
              translation_ok: bool = True, chosen_finish: str = "stop", rejected_finish: str = "stop",
              is_translation_task: bool = False, iteration: int = 1) -> dict:
    """One pairs_raw row whose conversational columns and flat text agree (a failed side has null text)."""
    key = "\x1f".join([prompt, chosen or "", rejected or "", direction, pivot_lang, lang, prompt_id])
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen or ""}],
        "rejected": [{"role": "assistant", "content": rejected or ""}],
        "pair_id": hashlib.sha1(key.encode()).hexdigest()[:16],
        "prompt_id": prompt_id,
        "lang": lang,
        "direction": direction,
        "pivot_lang": pivot_lang,
        "iteration": iteration,
        "generator_model": "test/model",
        "generator_revision": "0" * 40,
        "is_translation_task": is_translation_task,
        "translation_ok": translation_ok,
        "chosen_finish_reason": chosen_finish,
        "rejected_finish_reason": rejected_finish,
        "prompt_text": prompt,
        "chosen_text": chosen,
        "rejected_text": rejected,
    }


def write_pairs(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), path)
    return path
