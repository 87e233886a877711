"""Stage `respond`: the generator M_t answers every prompt in its own language.

All generation goes through `run_requests` with the run's request cache, so a rerun regenerates nothing that
is done. Answers made elsewhere (imports) are used as they are and not generated again. A request that fails
(finish_reason = error, e.g. a prompt longer than the model context) is dropped with reason `generation_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from lidr_data.errors import LidrError
from lidr_data.generation.base import Generator, Request, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests
from lidr_data.languages import check_language
from lidr_data.readers import read_records, row_location
from lidr_data.recipe import ResponsesImport, resolve_path
from lidr_data.stages.schema import PROMPTS, RESPONSES, StageStats
from lidr_data.stages.tables import drop_table

STAGE = "respond"
FINISH_REASONS = ("stop", "length", "error")

# A dropped respond row: the prompt, what the backend said, and why.
DROP_SCHEMA = pa.schema([*PROMPTS, ("finish_reason", pa.string()), ("request_key", pa.string()),
                         ("error", pa.string())])


def read_imported_responses(imports: Sequence[ResponsesImport]) -> dict[tuple[str, str], dict]:
    """{(prompt_id, lang): response row} from answer files made elsewhere.

    They are attributed to who made them (the file's `model` field, else the import's `model`, else
    `imported:<file name>`), never to the recipe's model, so the card does not misattribute them.
    """
    found: dict[tuple[str, str], dict] = {}
    for spec in imports:
        path = resolve_path(spec.path)
        for i, row in enumerate(read_records(path)):
            where = row_location(path, i)
            for name in (spec.id_field, spec.text_field):
                if name not in row:
                    raise LidrError(f"{where}: missing field {name!r}")
            lang = spec.lang or row.get("lang")
            if lang is None:
                raise LidrError(f"{where}: no 'lang' field and no `lang` set for this import")
            check_language(lang, f"{where}: lang")
            text = row[spec.text_field]
            if text is not None and not isinstance(text, str):
                raise LidrError(f"{where}: field {spec.text_field!r} must be a string")
            finish = row.get("finish_reason") or "stop"
            if finish not in FINISH_REASONS:
                raise LidrError(f"{where}: finish_reason must be one of {', '.join(FINISH_REASONS)}, got {finish!r}")
            key = (str(row[spec.id_field]), lang)
            if key in found:
                raise LidrError(f"{where}: duplicate response for id {key[0]!r} in {lang!r}")
            found[key] = {
                "prompt_id": key[0], "lang": lang, "text": text, "finish_reason": finish,
                "model": row.get("model") or spec.model or f"imported:{path.name}",
                "model_revision": row.get("model_revision") or spec.revision or "imported",
                "request_key": row.get("request_key"), "n_tokens": int(row.get("n_tokens") or 0),
            }
    return found


def respond(prompts: pa.Table, get_generator: Callable[[], Generator], cache: RequestCache | None,
            sampling: SamplingParams, system_prompt: str | None = None,
            imported: dict[tuple[str, str], dict] | None = None,
            progress: bool = True) -> tuple[pa.Table, pa.Table, StageStats]:
    """(responses, dropped, stats). `get_generator` is called only if something must be generated."""
    imported = imported or {}
    rows = prompts.to_pylist()
    results: list[dict | None] = [None] * len(rows)
    todo = []
    for i, p in enumerate(rows):
        got = imported.get((p["prompt_id"], p["lang"]))
        if got is not None and got["text"] is not None:
            results[i] = got
        else:
            todo.append(i)
    if todo:
        requests = [Request.from_messages(rows[i]["text"], sampling, system_prompt) for i in todo]
        completions, keys, _ = run_requests(get_generator(), requests, cache, progress=progress,
                                            description="respond")
        for i, c, key in zip(todo, completions, keys):
            results[i] = {
                "prompt_id": rows[i]["prompt_id"], "lang": rows[i]["lang"], "text": c.text,
                "finish_reason": c.finish_reason, "model": c.model, "model_revision": c.model_revision,
                "request_key": key, "n_tokens": c.n_tokens, "error": c.error,
            }
    kept, dropped = [], []
    for p, r in zip(rows, results):
        if r["finish_reason"] == "error":
            dropped.append({**p, "finish_reason": "error", "request_key": r["request_key"],
                            "error": r.get("error") or "generation failed"})
        else:
            kept.append(r)
    responses = pa.Table.from_pylist(kept, schema=RESPONSES)
    drops = drop_table(pa.Table.from_pylist(dropped, schema=DROP_SCHEMA), STAGE, ["generation_error"] * len(dropped))
    stats = StageStats(STAGE, rows_in=len(rows), kept=len(kept))
    if dropped:
        stats.dropped["generation_error"] = len(dropped)
    return responses, drops, stats.check()
