"""Stage `respond`: the generator M_t answers every prompt in its own language.

All generation goes through `run_requests` with the run's request cache, so a rerun regenerates nothing that
is done. Answers made elsewhere (imports) are used as they are and not generated again. A request that fails
(finish_reason = error, e.g. a prompt longer than the model context) is dropped with reason `generation_error`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from lidr_data.config import check_markers, option, require, resolve_path
from lidr_data.errors import LidrError
from lidr_data.generation.base import Generator, Request, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests
from lidr_data.languages import check_language
from lidr_data.progress import Progress
from lidr_data.readers import read_located
from lidr_data.schema import PROMPTS, RESPONSES
from lidr_data.stages.base import RunningBuild, Stage, StageStats, section
from lidr_data.stages.tables import split_generation_errors

STAGE = "respond"
FINISH_REASONS = ("stop", "length", "error")

# A dropped respond row: the prompt, what the backend said, and why.
DROP_SCHEMA = pa.schema([*PROMPTS, ("finish_reason", pa.string()), ("request_key", pa.string()),
                         ("error", pa.string())])


@dataclass
class GenerationConfig:
    """How the model answers the prompts. Defaults are the paper's: greedy, repetition penalty 1.1."""

    max_new_tokens: int = option(SamplingParams.max_new_tokens, help="Upper bound on answer tokens (the paper: 2,400).")
    temperature: float = option(SamplingParams.temperature, help="0 = greedy decoding.")
    top_p: float = option(SamplingParams.top_p, help="Nucleus sampling mass (ignored when greedy).")
    repetition_penalty: float = option(SamplingParams.repetition_penalty, help="1.0 disables the penalty.")
    seed: int = option(SamplingParams.seed, help="Sampling seed (ignored when greedy).")
    system_prompt: str | None = option(
        None, help="System turn for every request (the paper: 'You are a helpful assistant.'); it is also the "
        "system turn of the published prompt column.")

    def __post_init__(self) -> None:
        self.sampling()  # validates

    def sampling(self, max_new_tokens: int | None = None) -> SamplingParams:
        try:
            return SamplingParams(temperature=self.temperature, top_p=self.top_p,
                                  max_new_tokens=max_new_tokens or self.max_new_tokens,
                                  repetition_penalty=self.repetition_penalty, seed=self.seed)
        except LidrError as e:  # SamplingParams says "sampling.x"; the recipe field is "x"
            raise LidrError(str(e).removeprefix("sampling.")) from None


@dataclass
class ResponsesImport:
    """Answers generated elsewhere; their (prompt id, language) is not generated again."""

    path: str = option(help="A .jsonl/.json/.parquet file.")
    lang: str | None = option(None, help="Language of every row; omit when the file has a 'lang' column.")
    id_field: str = option("prompt_id", help="Field with the prompt id.")
    text_field: str = option("text", help="Field with the answer.")
    model: str | None = option(None, help="Who generated these answers (recorded as the pairs' generator_model). "
                           "Default: the file's 'model' field, else 'imported:<file name>' (never the recipe's model).")
    revision: str | None = option(None, help="That model's revision. Default: the file's 'model_revision', else "
                              "'imported'.")
    failure_markers: list[str] = option(
        help="Literal texts that mean 'generation failed' in that file; a pair with such a side is dropped by the "
        "filter as translation_failed (as are the filter's own filters.failure_markers).", factory=list)

    def __post_init__(self) -> None:
        require(bool(self.path), "path", "required")
        if self.lang is not None:
            check_language(self.lang, "lang")
        check_markers(self.failure_markers)


def read_imported_responses(imports: Sequence[ResponsesImport]) -> dict[tuple[str, str], dict]:
    """{(prompt_id, lang): response row} from answer files made elsewhere.

    They are attributed to who made them (the file's `model` field, else the import's `model`, else
    `imported:<file name>`), never to the recipe's model, so the card does not misattribute them.
    """
    found: dict[tuple[str, str], dict] = {}
    for spec in imports:
        path = resolve_path(spec.path)
        for where, row in read_located(path):
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
            progress: Progress | None = None) -> tuple[pa.Table, pa.Table, StageStats]:
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
    return split_generation_errors(STAGE, results, RESPONSES, DROP_SCHEMA, inputs=rows)


# -- this stage in the build (the list: order.py)

def _run(run: RunningBuild) -> StageStats:
    recipe = run.recipe
    imported = read_imported_responses(recipe.imports.responses)
    return run.save(STAGE, *respond(run.table("prompts"), run.generator, run.cache, recipe.generation.sampling(),
                                        recipe.generation.system_prompt, imported, run.progress))


ENTRY = Stage(name=STAGE, output="responses.parquet", inputs=("prompts",), rows_from="prompts", generates=True,
              settings=lambda r: [r.model, r.revision, r.backend, section(r, "generation"),
                                  [dataclasses.asdict(i) for i in r.imports.responses]], run=_run)
