"""Stage `pairs`: LIDR preference pairs, both directions, for every non-dominant language L.

- `from_dominant` (the pair in L): prompt in L; chosen = the dominant answer translated into L;
  rejected = the model's own answer in L. `pivot_lang` = the dominant language.
- `to_dominant` (the English pair, one per L): prompt in the dominant language; chosen = the dominant answer;
  rejected = the L answer translated into the dominant language. `pivot_lang` = L.

Prompts that are translation tasks use untranslated answers on both sides (translating the answer to a
translation task would change what it answers), as the authors do for the chosen side.
A failed translation is kept (translation_ok = false, its text null) for the filter stage to drop by name;
this stage drops only what cannot form a pair: a missing answer or a missing translation row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow as pa

from lidr_data.files import portable
from lidr_data.schema import FLAT_TEXT, PAIR_COLUMNS
from lidr_data.stages.base import RunningBuild, Stage, StageStats
from lidr_data.stages.tables import drop_table

STAGE = "pairs"
RAW_SCHEMA = pa.schema([*PAIR_COLUMNS, *FLAT_TEXT])


def pair_id(prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> str:
    """Stable hash of the pair's content (roles and texts of prompt, chosen and rejected)."""
    blob = json.dumps([prompt, chosen, rejected], ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# Candidates = items x languages x directions; the joins find each side. `worst` keeps `length` when either the
# answer or its translation was truncated, so a translation of a cut-off answer counts as truncated.
_SQL = """
WITH items AS (
    SELECT prompt_id, any_value(is_translation_task) AS task, min(ord) AS ord FROM prompts GROUP BY prompt_id
), langs AS (
    SELECT unnest($langs) AS l, generate_subscripts($langs, 1) AS lord
), cand AS (
    SELECT i.prompt_id, i.task, i.ord, langs.l, langs.lord, d.direction, d.dord
    FROM items i, langs, (VALUES ('from_dominant', 0), ('to_dominant', 1)) d(direction, dord)
), joined AS (
    SELECT c.*, pd.text AS pd_text, pl.text AS pl_text,
           rd.text AS rd_text, rd.finish_reason AS rd_finish, rd.model AS rd_model, rd.model_revision AS rd_rev,
           rl.text AS rl_text, rl.finish_reason AS rl_finish,
           t.prompt_id IS NOT NULL AS has_t, t.text AS t_text, t.ok AS t_ok, t.finish_reason AS t_finish
    FROM cand c
    LEFT JOIN prompts pd ON pd.prompt_id = c.prompt_id AND pd.lang = $dominant
    LEFT JOIN prompts pl ON pl.prompt_id = c.prompt_id AND pl.lang = c.l
    LEFT JOIN responses rd ON rd.prompt_id = c.prompt_id AND rd.lang = $dominant
    LEFT JOIN responses rl ON rl.prompt_id = c.prompt_id AND rl.lang = c.l
    LEFT JOIN translations t ON t.prompt_id = c.prompt_id AND (
        (c.direction = 'from_dominant' AND t.src_lang = $dominant AND t.tgt_lang = c.l)
        OR (c.direction = 'to_dominant' AND t.src_lang = c.l AND t.tgt_lang = $dominant))
)
SELECT
    prompt_id,
    CASE direction WHEN 'from_dominant' THEN l ELSE $dominant END AS lang,
    direction,
    CASE direction WHEN 'from_dominant' THEN $dominant ELSE l END AS pivot_lang,
    task AS is_translation_task,
    CASE direction WHEN 'from_dominant' THEN pl_text ELSE pd_text END AS prompt_text,
    CASE WHEN direction = 'to_dominant' OR task THEN rd_text ELSE t_text END AS chosen_text,
    CASE WHEN direction = 'from_dominant' OR task THEN rl_text ELSE t_text END AS rejected_text,
    task OR coalesce(t_ok, false) AS translation_ok,
    CASE WHEN direction = 'to_dominant' OR task THEN rd_finish
         WHEN 'length' IN (rd_finish, t_finish) THEN 'length' ELSE t_finish END AS chosen_finish_reason,
    CASE WHEN direction = 'from_dominant' OR task THEN rl_finish
         WHEN 'length' IN (rl_finish, t_finish) THEN 'length' ELSE t_finish END AS rejected_finish_reason,
    coalesce(rd_model, $model) AS generator_model,
    coalesce(rd_rev, $revision) AS generator_revision,
    CASE WHEN pd_text IS NULL OR pl_text IS NULL THEN 'missing_prompt'
         WHEN rd_finish IS NULL OR rl_finish IS NULL THEN 'missing_response'
         WHEN NOT task AND NOT has_t THEN 'missing_translation' END AS reason
FROM joined
ORDER BY ord, lord, dord
"""


def build_pairs(prompts: pa.Table, responses: pa.Table, translations: pa.Table, dominant: str,
                languages: list[str], iteration: int, system_prompt: str | None, model: str,
                revision: str | None, workdir: str | Path | None = None) -> tuple[pa.Table, pa.Table, StageStats]:
    """(pairs_raw, dropped, stats): PAIR_COLUMNS + FLAT_TEXT for every formable pair.

    `generator_model` is published: a local model folder is named relative to `workdir` (the work folder) when
    inside it, else by its last part, never by an absolute path of this machine. `pair_id` hashes the content
    only, so the name does not change it."""
    con = duckdb.connect()
    try:
        # Registered Arrow tables have no rowid: carry the input order explicitly.
        con.register("prompts", prompts.append_column("ord", pa.array(range(prompts.num_rows), pa.int64())))
        con.register("responses", responses)
        con.register("translations", translations)
        rows = con.sql(_SQL, params={"langs": list(languages), "dominant": dominant, "model": model,
                                     "revision": revision or "unknown"}).to_arrow_table().to_pylist()
    finally:
        con.close()
    kept, dropped, reasons = [], [], []
    names: dict[str, object] = {}
    for r in rows:
        if workdir is not None and (m := r["generator_model"]) is not None:
            if m not in names:
                names[m] = portable(m, Path(workdir))
            r["generator_model"] = names[m]
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        prompt = [*system, {"role": "user", "content": r["prompt_text"]}]
        chosen = [{"role": "assistant", "content": r["chosen_text"]}]
        rejected = [{"role": "assistant", "content": r["rejected_text"]}]
        reason = r.pop("reason")
        row = {**r, "prompt": prompt, "chosen": chosen, "rejected": rejected,
               "pair_id": pair_id(prompt, chosen, rejected), "iteration": iteration}
        if reason is None:
            kept.append(row)
        else:
            dropped.append(row)
            reasons.append(reason)
    pairs_raw = pa.Table.from_pylist(kept, schema=RAW_SCHEMA)
    drops = drop_table(pa.Table.from_pylist(dropped, schema=RAW_SCHEMA), STAGE, reasons)
    stats = StageStats(STAGE, rows_in=len(rows), kept=len(kept))
    for reason in reasons:
        stats.dropped[reason] = stats.dropped.get(reason, 0) + 1
    return pairs_raw, drops, stats.check()


# -- this stage in the build (the list: order.py)

def _run(run: RunningBuild) -> StageStats:
    r = run.recipe
    return run.save(STAGE, *build_pairs(run.table("prompts"), run.table("respond"), run.table("translate"),
                                          r.dominant_lang, r.languages, r.iteration, r.generation.system_prompt,
                                          r.model, r.revision, workdir=Path(r.workdir).expanduser()))


ENTRY = Stage(name=STAGE, output="pairs_raw.parquet", inputs=("prompts", "respond", "translate"),
              settings=lambda r: [r.iteration], run=_run)
