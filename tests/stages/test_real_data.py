"""Real text end to end through translate -> pairs -> tag -> filter (-> dedup): the 1,000 real
Llama-3-8B-Instruct English answers and their French self-translations from shared/data, 78 of which are the
authors' literal 'Translation Error' (extraction failed).

The translations come in through the translate stage's import path (failure marker -> ok = false, text null),
and the pairs stage builds the French pairs. shared/data holds no French answers from the model, so the
French "own answer" (the rejected side) is stood in for by the English answer: that is what lets the test check
English detection on real answers, and it is why the language rule is checked separately below.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import require_shared_data

from lidr_data.build.recipe import TranslationConfig, TranslationsImport
from lidr_data.generation.base import SamplingParams
from lidr_data.schema import PROMPTS, RESPONSES
from lidr_data.stages.dedup import DedupConfig, dedup_pairs
from lidr_data.stages.filter import FilterConfig, filter_pairs
from lidr_data.stages.pairs import build_pairs
from lidr_data.stages.tag import TagConfig, tag_pairs
from lidr_data.stages.translate import read_imported_translations, translate, translation_jobs

GEN = ("generations", "llama-3-8b-instruct-M0")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    answers_path = require_shared_data(*GEN, "en.responses.jsonl")
    to_fr_path = require_shared_data(*GEN, "en.responses.to_fr.jsonl")
    fr_prompts_path = require_shared_data("prompts", "alpagasus-0-1000", "fr.jsonl")
    answers = [json.loads(line) for line in answers_path.open(encoding="utf-8")]
    fr_prompts = {r["id"]: r["instruction"] for r in map(json.loads, fr_prompts_path.open(encoding="utf-8"))}
    failed_ids = {r["id"] for r in map(json.loads, to_fr_path.open(encoding="utf-8"))
                  if r["en2fr_reponse"] == "Translation Error"}

    prompts = pa.Table.from_pylist(
        [{"prompt_id": a["id"], "lang": "en", "text": a["instruction"], "source": "alpagasus",
          "is_translation_task": False} for a in answers]
        + [{"prompt_id": a["id"], "lang": "fr", "text": fr_prompts[a["id"]], "source": "alpagasus",
            "is_translation_task": False} for a in answers], schema=PROMPTS)
    base = {"finish_reason": "stop", "model": "meta-llama/Meta-Llama-3-8B-Instruct", "model_revision": None,
            "request_key": None, "n_tokens": None}
    responses = pa.Table.from_pylist(
        [{**base, "prompt_id": a["id"], "lang": "en", "text": a["response"]} for a in answers]
        + [{**base, "prompt_id": a["id"], "lang": "fr", "text": a["response"]} for a in answers],  # stand-in
        schema=RESPONSES)

    imported = read_imported_translations([TranslationsImport(
        path=str(to_fr_path), src_lang="en", tgt_lang="fr", id_field="id", text_field="en2fr_reponse",
        failure_markers=["Translation Error"])])
    jobs = [j for j in translation_jobs(prompts, responses, "en", ["fr"]) if j["src_lang"] == "en"]

    def no_generator():
        raise AssertionError("every translation is imported: nothing may be generated")

    translations, _, t_stats = translate(jobs, no_generator, None, TranslationConfig(), SamplingParams(),
                                         imported=imported, progress=False)
    pairs_raw, _, _ = build_pairs(prompts, responses, translations, "en", ["fr"], 1, None,
                                  "meta-llama/Meta-Llama-3-8B-Instruct", None)
    pairs_raw = pairs_raw.filter(pa.compute.equal(pairs_raw.column("direction"), "from_dominant"))
    d = tmp_path_factory.mktemp("real")
    pq.write_table(pairs_raw, d / "pairs_raw.parquet")
    tag_stats = tag_pairs(d / "pairs_raw.parquet", d / "tagged.parquet", TagConfig(), ["en", "fr", "de", "es", "ru"])
    return {"dir": d, "failed_ids": failed_ids, "translations": translations, "t_stats": t_stats,
            "tag_stats": tag_stats, "tagged": pq.read_table(d / "tagged.parquet"),
            "translation_ok": pairs_raw.column("translation_ok").to_pylist()}


def test_translation_errors_become_failures_not_text(run):
    tr = run["translations"]
    assert tr.num_rows == 1000 and run["t_stats"].kept == 1000
    failed = {pid for pid, ok in zip(tr.column("prompt_id").to_pylist(), tr.column("ok").to_pylist()) if not ok}
    assert failed == run["failed_ids"] and len(failed) == 78
    assert "Translation Error" not in tr.column("text").to_pylist()


def test_languages_detected_on_real_text(run):
    t = run["tagged"]
    assert run["tag_stats"].rows_in == t.num_rows == 1000
    ok = run["translation_ok"]  # tags are row-aligned with pairs_raw
    chosen = [lang for lang, good in zip(t.column("chosen_lang").to_pylist(), ok) if good]
    rejected = t.column("rejected_lang").to_pylist()
    # French on the 922 extracted translations, English on the 1,000 answers (a few code-only or very short
    # texts may be "unknown"; none may be read as another language).
    assert len(chosen) == 922
    assert chosen.count("fr") >= 0.99 * 922, {c: chosen.count(c) for c in set(chosen)}
    assert set(chosen) <= {"fr", "unknown"}
    assert rejected.count("en") >= 0.99 * 1000, {c: rejected.count(c) for c in set(rejected)}
    assert set(rejected) <= {"en", "unknown"}
    failed_chosen = [lang for lang, good in zip(t.column("chosen_lang").to_pylist(), ok) if not good]
    assert failed_chosen == ["unknown"] * 78


def test_filter_drops_exactly_the_78_failures_as_translation_failed(run):
    d = run["dir"]
    # The rejected side is an English stand-in for the French answer, so the language rule is off here.
    stats = filter_pairs(d / "pairs_raw.parquet", d / "tagged.parquet", d / "kept.parquet", d / "dropped.parquet",
                         FilterConfig(wrong_language=False), "en")
    dropped = pq.read_table(d / "dropped.parquet")
    failed = {pid for pid, reason in zip(dropped.column("prompt_id").to_pylist(), dropped.column("reason").to_pylist())
              if reason == "translation_failed"}
    assert failed == run["failed_ids"]
    assert stats.dropped["translation_failed"] == 78
    assert stats.rows_in == 1000 == stats.kept + sum(stats.dropped.values())
    # Dedup finishes the run: the published table has no flat text and the identity holds.
    d_stats = dedup_pairs(d / "pairs_raw.parquet", d / "tagged.parquet", d / "kept.parquet", d / "pairs.parquet",
                          d / "dedup_dropped.parquet", DedupConfig())
    assert d_stats.rows_in == stats.kept == d_stats.kept + sum(d_stats.dropped.values())
    assert "chosen_text" not in pq.read_schema(d / "pairs.parquet").names


def test_language_rule_catches_the_english_stand_in_answers(run):
    d = run["dir"]
    stats = filter_pairs(d / "pairs_raw.parquet", d / "tagged.parquet", d / "kept2.parquet", d / "dropped2.parquet",
                         FilterConfig(), "en")
    assert stats.dropped["translation_failed"] == 78
    # Every remaining pair has an English "French answer": each one is dropped by a rule, mostly the language one.
    assert stats.kept <= 10
    assert stats.dropped["wrong_language"] >= 0.98 * (1000 - 78 - stats.dropped.get("empty_side", 0)
                                                    - stats.dropped.get("truncated", 0))
