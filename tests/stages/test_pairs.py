"""Stage pairs: both LIDR directions, English pairs for every language, translation tasks, drops with reasons."""

import pyarrow as pa

from lidr_data.schema import FLAT_TEXT, PAIR_COLUMNS, PROMPTS, RESPONSES, TRANSLATIONS
from lidr_data.stages.pairs import RAW_SCHEMA, build_pairs

LANGS = ["es", "de"]


def make(prompt_ids=("p0", "p1", "p2"), tasks=(), missing_responses=(), translations_override=None):
    prompts = [{"prompt_id": p, "lang": lang, "text": f"Q[{lang}] {p}", "source": "t",
                "is_translation_task": p in tasks} for p in prompt_ids for lang in ("en", *LANGS)]
    responses = [{"prompt_id": p, "lang": lang, "text": f"A[{lang}] {p}",
                  "finish_reason": "length" if (p, lang) == ("p0", "es") else "stop", "model": "gen",
                  "model_revision": "rev1", "request_key": "k", "n_tokens": 1}
                 for p in prompt_ids for lang in ("en", *LANGS) if (p, lang) not in missing_responses]
    translations = []
    for p in prompt_ids:
        if p in tasks:
            continue
        for lang in LANGS:
            translations.append({"prompt_id": p, "src_lang": "en", "tgt_lang": lang, "source_text": f"A[en] {p}",
                                 "text": f"T[en->{lang}] {p}", "ok": True, "finish_reason": "stop",
                                 "request_key": "k"})
            translations.append({"prompt_id": p, "src_lang": lang, "tgt_lang": "en", "source_text": f"A[{lang}] {p}",
                                 "text": f"T[{lang}->en] {p}", "ok": True, "finish_reason": "stop",
                                 "request_key": "k"})
    if translations_override:
        translations = translations_override(translations)
    return (pa.Table.from_pylist(prompts, schema=PROMPTS), pa.Table.from_pylist(responses, schema=RESPONSES),
            pa.Table.from_pylist(translations, schema=TRANSLATIONS))


def run(*tables, system_prompt="You are a helpful assistant."):
    return build_pairs(*tables, "en", LANGS, 3, system_prompt, "recipe-model", None)


def by_key(table):
    return {(r["prompt_id"], r["lang"], r["direction"], r["pivot_lang"]): r for r in table.to_pylist()}


def test_both_directions_and_an_english_pair_per_language():
    pairs, drops, stats = run(*make())
    assert pairs.schema == RAW_SCHEMA and pairs.schema.names == PAIR_COLUMNS.names + FLAT_TEXT.names
    assert (stats.rows_in, stats.kept, drops.num_rows) == (12, 12, 0)  # 3 items x 2 languages x 2 directions
    rows = by_key(pairs)
    es_pair = rows[("p1", "es", "from_dominant", "en")]
    assert (es_pair["prompt_text"], es_pair["chosen_text"], es_pair["rejected_text"]) == (
        "Q[es] p1", "T[en->es] p1", "A[es] p1")
    for lang in LANGS:  # one English pair per non-dominant language, not only the last one
        en_pair = rows[("p1", "en", "to_dominant", lang)]
        assert (en_pair["prompt_text"], en_pair["chosen_text"], en_pair["rejected_text"]) == (
            "Q[en] p1", "A[en] p1", f"T[{lang}->en] p1")
    assert es_pair["prompt"] == [{"role": "system", "content": "You are a helpful assistant."},
                                 {"role": "user", "content": "Q[es] p1"}]
    assert es_pair["chosen"] == [{"role": "assistant", "content": "T[en->es] p1"}]
    assert es_pair["rejected"] == [{"role": "assistant", "content": "A[es] p1"}]
    assert (es_pair["iteration"], es_pair["generator_model"], es_pair["generator_revision"]) == (3, "gen", "rev1")
    assert es_pair["translation_ok"] is True and es_pair["is_translation_task"] is False
    # Order: items as in prompts, then languages, then directions.
    assert [(r["prompt_id"], r["pivot_lang"] if r["direction"] == "to_dominant" else r["lang"])
            for r in pairs.to_pylist()][:4] == [("p0", "es"), ("p0", "es"), ("p0", "de"), ("p0", "de")]


def test_no_system_turn_unless_the_recipe_sets_one():
    pairs, _, _ = run(*make(), system_prompt=None)
    assert all(len(p) == 1 and p[0]["role"] == "user" for p in pairs.column("prompt").to_pylist())


def test_truncation_of_the_source_answer_marks_its_translation():
    rows = by_key(run(*make())[0])
    assert rows[("p0", "es", "from_dominant", "en")]["rejected_finish_reason"] == "length"  # A[es] p0 truncated
    assert rows[("p0", "en", "to_dominant", "es")]["rejected_finish_reason"] == "length"  # its translation
    assert rows[("p0", "en", "to_dominant", "es")]["chosen_finish_reason"] == "stop"


def test_translation_tasks_keep_untranslated_answers():
    rows = by_key(run(*make(tasks={"p2"}))[0])
    es_pair = rows[("p2", "es", "from_dominant", "en")]
    assert (es_pair["chosen_text"], es_pair["rejected_text"]) == ("A[en] p2", "A[es] p2")
    en_pair = rows[("p2", "en", "to_dominant", "de")]
    assert (en_pair["chosen_text"], en_pair["rejected_text"]) == ("A[en] p2", "A[de] p2")
    assert es_pair["is_translation_task"] and es_pair["translation_ok"]


def test_failed_translation_is_kept_with_null_text_for_the_filter():
    def fail_en_de(ts):
        for t in ts:
            if (t["prompt_id"], t["src_lang"], t["tgt_lang"]) == ("p1", "en", "de"):
                t.update(text=None, ok=False, finish_reason="length")
        return ts

    pairs, drops, stats = run(*make(translations_override=fail_en_de))
    assert stats.kept == 12 and drops.num_rows == 0
    bad = by_key(pairs)[("p1", "de", "from_dominant", "en")]
    assert bad["translation_ok"] is False and bad["chosen_text"] is None and bad["chosen"][0]["content"] is None
    assert bad["chosen_finish_reason"] == "length" and bad["rejected_text"] == "A[de] p1"


def test_unformable_pairs_are_dropped_with_reasons():
    def lose_one(ts):
        return [t for t in ts if (t["prompt_id"], t["src_lang"], t["tgt_lang"]) != ("p2", "es", "en")]

    pairs, drops, stats = run(*make(missing_responses={("p0", "de"), ("p1", "en")}, translations_override=lose_one))
    reasons = {(r["prompt_id"], r["lang"], r["direction"], r["pivot_lang"]): r["reason"] for r in drops.to_pylist()}
    assert reasons == {
        ("p0", "de", "from_dominant", "en"): "missing_response", ("p0", "en", "to_dominant", "de"): "missing_response",
        ("p1", "es", "from_dominant", "en"): "missing_response", ("p1", "en", "to_dominant", "es"): "missing_response",
        ("p1", "de", "from_dominant", "en"): "missing_response", ("p1", "en", "to_dominant", "de"): "missing_response",
        ("p2", "en", "to_dominant", "es"): "missing_translation",
    }
    assert set(drops.column("stage").to_pylist()) == {"pairs"}
    assert stats.rows_in == 12 == stats.kept + sum(stats.dropped.values()) == pairs.num_rows + drops.num_rows
    assert stats.dropped == {"missing_response": 6, "missing_translation": 1}


def test_pair_id_is_a_stable_content_hash():
    a, _, _ = run(*make())
    b, _, _ = run(*make())
    assert a.column("pair_id").equals(b.column("pair_id"))
    assert len(set(a.column("pair_id").to_pylist())) == a.num_rows
    c, _, _ = run(*make(), system_prompt="Another system prompt.")
    assert not set(a.column("pair_id").to_pylist()) & set(c.column("pair_id").to_pylist())


def test_a_local_generator_is_named_without_its_absolute_path_and_pair_ids_do_not_change(tmp_path):
    """generator_model is published: a model folder inside the work folder is named relative to it, one outside
    by its last part. pair_id hashes content only, so where the model lay changes no id."""
    work = tmp_path / "work"
    prompts, responses, translations = make(missing_responses=[("p2", "en")])
    for model, expected in [(str(work / "models" / "M1"), "models/M1"), (str(tmp_path / "elsewhere" / "M2"), "M2"),
                            ("org/hub-model", "org/hub-model")]:
        named = responses.set_column(responses.schema.get_field_index("model"), "model",
                                     pa.array([model] * responses.num_rows, pa.string()))
        pairs, drops, _ = build_pairs(prompts, named, translations, "en", LANGS, 3, None, model, None, workdir=work)
        assert set(pairs.column("generator_model").to_pylist()) == {expected}
        assert set(drops.column("generator_model").to_pylist()) == {expected}  # p2: no English answer
        plain, _, _ = build_pairs(prompts, responses, translations, "en", LANGS, 3, None, "gen", None)
        assert pairs.column("pair_id").equals(plain.column("pair_id"))
