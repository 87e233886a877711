"""Stage translate: tag extraction (never a placeholder), jobs in both directions, real self-translations."""

import json

import pyarrow as pa
import pytest
from shared_data import require_shared_data

from lidr_data.build.recipe import ResponsesImport, TranslationConfig, TranslationsImport
from lidr_data.errors import LidrError
from lidr_data.generation.base import Completion, Generator, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.transformers_backend import TransformersGenerator
from lidr_data.schema import PROMPTS, RESPONSES, TRANSLATIONS
from lidr_data.stages.respond import read_imported_responses
from lidr_data.stages.translate import (
    extract_translation,
    read_imported_translations,
    translate,
    translation_jobs,
    translation_request,
)


@pytest.mark.parametrize(
    ("completion", "primed", "strict", "expected"),
    [
        ("Bonjour le monde</translation>", True, True, "Bonjour le monde"),
        ("\n  Bonjour\n\nle monde \n</translation>\nDone!", True, True, "Bonjour\n\nle monde"),
        ("<translation>Hola</translation>", True, True, "Hola"),  # a repeated opening tag is tolerated
        ("Hola</translation> and <translation>more</translation>", True, True, "Hola"),
        ("Hola, esto se cortó a mitad de", True, True, None),  # no closing tag: failure
        ("", True, True, None),
        ("</translation>", True, True, ""),  # extracted, but empty: the filter's empty_side rule sees it
        ("Sure! <translation>Hallo</translation>", False, True, "Hallo"),
        ("Sure! Hallo</translation>", False, True, None),  # unprimed needs both tags
        ("Hola, esto se cortó", True, False, "Hola, esto se cortó"),  # relaxed (demo only)
        ("<translation> Hola", True, False, "Hola"),
    ],
)
def test_extract_translation(completion, primed, strict, expected):
    assert extract_translation(completion, "translation", primed, strict) == expected


def tables(task_ids=()):
    prompts = pa.Table.from_pylist([
        {"prompt_id": f"p{i}", "lang": lang, "text": f"{lang} {i}", "source": "t",
         "is_translation_task": f"p{i}" in task_ids} for i in range(2) for lang in ("en", "es", "de")],
        schema=PROMPTS)
    responses = pa.Table.from_pylist([
        {"prompt_id": f"p{i}", "lang": lang, "text": f"answer {lang} {i}", "finish_reason": "stop", "model": "m",
         "model_revision": "r", "request_key": "k", "n_tokens": 3}
        for i in range(2) for lang in ("en", "es", "de") if (i, lang) != (1, "de")], schema=RESPONSES)
    return prompts, responses


def test_jobs_cover_both_directions_and_skip_translation_tasks():
    prompts, responses = tables()
    jobs = {(j["prompt_id"], j["src_lang"], j["tgt_lang"]): j["source_text"]
            for j in translation_jobs(prompts, responses, "en", ["es", "de"])}
    assert jobs == {
        ("p0", "en", "es"): "answer en 0", ("p0", "en", "de"): "answer en 0",
        ("p0", "es", "en"): "answer es 0", ("p0", "de", "en"): "answer de 0",
        ("p1", "en", "es"): "answer en 1", ("p1", "en", "de"): "answer en 1",  # de answer of p1 is missing
        ("p1", "es", "en"): "answer es 1",
    }
    prompts, responses = tables(task_ids={"p1"})
    assert {j["prompt_id"] for j in translation_jobs(prompts, responses, "en", ["es", "de"])} == {"p0"}


def test_translate_with_the_tiny_model(tiny_model_dir, tmp_path):
    gen = TransformersGenerator(str(tiny_model_dir))
    prompts, responses = tables()
    jobs = translation_jobs(prompts, responses, "en", ["es", "de"])
    cache = RequestCache(tmp_path / "c")
    cfg = TranslationConfig()
    out, drops, stats = translate(jobs, lambda: gen, cache, cfg, SamplingParams(max_new_tokens=8), progress=False)
    assert out.schema == TRANSLATIONS and drops.num_rows == 0 and (stats.rows_in, stats.kept) == (7, 7)
    for r in out.to_pylist():
        assert r["ok"] == (r["text"] is not None)  # failure is a null text, never a placeholder
        assert r["finish_reason"] in ("stop", "length") and r["request_key"]
    assert len(cache) == 7
    # The request carries our template, in the languages' names, with the assistant turn primed by the tag.
    req_text = translation_request(cfg, "answer en 0", "en", "es")
    assert "English" in req_text and "Spanish" in req_text and "<source>\nanswer en 0\n</source>" in req_text
    # Relaxed extraction (the demo's setting) keeps the completion instead of failing it.
    relaxed = TranslationConfig(require_closing_tag=False)
    out2, _, _ = translate(jobs, lambda: gen, cache, relaxed, SamplingParams(max_new_tokens=8), progress=False)
    assert all(out2.column("ok").to_pylist()) and len(cache) == 7  # same requests: all cache hits


def test_translation_request_beyond_context_is_dropped(tiny_model_dir):
    gen = TransformersGenerator(str(tiny_model_dir))
    jobs = [{"prompt_id": "p0", "src_lang": "en", "tgt_lang": "de", "source_text": "short"},
            {"prompt_id": "p1", "src_lang": "en", "tgt_lang": "de", "source_text": "long " * 3000}]
    out, drops, stats = translate(jobs, lambda: gen, None, TranslationConfig(), SamplingParams(max_new_tokens=4),
                                  progress=False)
    assert (stats.kept, stats.dropped) == (1, {"generation_error": 1})
    assert drops.to_pylist()[0]["prompt_id"] == "p1" and drops.to_pylist()[0]["stage"] == "translate"


def test_real_self_translations_map_failures_to_null(tmp_path):
    """1,000 real Llama-3-8B-Instruct en->fr self-translations; 78 are the authors' 'Translation Error'."""
    gen_dir = require_shared_data("generations", "llama-3-8b-instruct-M0")
    src = gen_dir / "en.responses.to_fr.jsonl"
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    failures = {r["id"] for r in records if r["en2fr_reponse"] == "Translation Error"}
    assert len(failures) == 78

    responses_by_key = read_imported_responses(
        [ResponsesImport(path=str(gen_dir / "en.responses.jsonl"), lang="en", id_field="id",
                         text_field="response", model="meta-llama/Meta-Llama-3-8B-Instruct")])
    responses = pa.Table.from_pylist(list(responses_by_key.values()), schema=RESPONSES)
    prompts = pa.Table.from_pylist(
        [{"prompt_id": r["id"], "lang": "en", "text": r["instruction"], "source": "t", "is_translation_task": False}
         for r in records], schema=PROMPTS)
    imported = read_imported_translations([TranslationsImport(
        path=str(src), src_lang="en", tgt_lang="fr", id_field="id", text_field="en2fr_reponse",
        failure_markers=["Translation Error"])])

    def no_model():
        raise AssertionError("imported translations must not be generated again")

    jobs = translation_jobs(prompts, responses, "en", ["fr"])
    out, drops, stats = translate(jobs, no_model, None, TranslationConfig(), SamplingParams(), imported=imported,
                                  progress=False)
    assert (stats.rows_in, stats.kept, drops.num_rows) == (1000, 1000, 0)
    rows = out.to_pylist()
    failed = {r["prompt_id"] for r in rows if not r["ok"]}
    assert failed == failures
    assert all(r["text"] is None for r in rows if not r["ok"])
    assert not any(r["text"] == "Translation Error" for r in rows)
    by_id = {r["id"]: r for r in records}
    for r in rows:
        if r["ok"]:
            assert r["text"] == by_id[r["prompt_id"]]["en2fr_reponse"] and r["text"].strip()
        assert r["source_text"] == by_id[r["prompt_id"]]["response"]


def test_imported_translation_errors(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"prompt_id": "p0", "text": "x"}\n')
    with pytest.raises(LidrError, match=r"t.jsonl:1: no 'src_lang'/'tgt_lang' fields"):
        read_imported_translations([TranslationsImport(path=str(src))])
    src.write_text('\n{"prompt_id": "p0", "src_lang": "en", "tgt_lang": "fr", "text": "x"}\n\n{"prompt_id": "p1"}\n')
    with pytest.raises(LidrError, match=r"t.jsonl:4: missing field 'text'"):  # blank lines count
        read_imported_translations([TranslationsImport(path=str(src))])
    src.write_text('{"prompt_id": "p0", "src_lang": "en", "tgt_lang": "fr", "text": null, "ok": false}\n'
                   '{"prompt_id": "p1", "src_lang": "en", "tgt_lang": "fr", "text": "Salut"}\n')
    got = read_imported_translations([TranslationsImport(path=str(src))])
    assert got[("p0", "en", "fr")]["ok"] is False and got[("p0", "en", "fr")]["text"] is None
    assert got[("p1", "en", "fr")] == {"text": "Salut", "ok": True, "finish_reason": "stop", "request_key": None}


# Completions SmolLM2-135M-Instruct wrote for the default (primed) translation request on real Alpagasus answers
# (recipes/smol.yaml): a finished translation closed by a stray tag, then comments on it.
SMOL_STRAY = [
    ("El Océano de la Ocho is una cienta. El secreto de la olla es un merozo.</pre>\n\nIn this translation, I've "
     "replaced \"the oak tree\" with \"el ocho de la ocho\"", "El Océano de la Ocho is una cienta. El secreto de la "
     "olla es un merozo."),
    ("Wellington der Tauch ist ein historische Brummler des Jahres 1815.\n</rem>\nIn this example, we have "
     "translated", "Wellington der Tauch ist ein historische Brummler des Jahres 1815."),
    ("the water flows out of the sink!</revised_text><source>water flows out of the sink!</revised_text>",
     "the water flows out of the sink!"),
]


@pytest.mark.parametrize(("completion", "expected"), SMOL_STRAY)
def test_a_stray_closing_tag_ends_the_translation_where_allowed(completion, expected):
    assert extract_translation(completion, "translation") is None  # the default stays strict
    assert extract_translation(completion, "translation", stray_closing_tag=True) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        # markup the translation opens and closes is part of it
        ("Hola <b>amigo</b>, <a href=\"x\">aquí</a>.</translation> Fin", "Hola <b>amigo</b>, <a href=\"x\">aquí</a>."),
        ("Eins <br> zwei</translation>", "Eins <br> zwei"),
        # </translation> first: it ends the translation, a stray tag after it does not matter
        ("Salut</translation> puis </pre>", "Salut"),
        ("Salut <i>a</pre> b</translation>", "Salut <i>a"),  # </pre> closes nothing: the first stray tag
        # still no closing tag of any kind: a failure (cut off mid-sentence, or never closed)
        ("Hola, esto se cortó a mitad de", None),
        ("Hola <b>amigo</b> y luego", None),
    ],
)
def test_stray_closing_tags_only_end_what_is_not_markup(completion, expected):
    assert extract_translation(completion, "translation", stray_closing_tag=True) == expected


class FixedGenerator(Generator):
    """Answers every request with the same completion (text, finish_reason)."""

    model, model_revision, template_hash, batch_size = "fixed", "r", "t", 8

    def __init__(self, text: str, finish: str):
        self.text, self.finish = text, finish

    def generate(self, requests):
        return [Completion(self.text, self.finish, 256, self.model, self.model_revision) for _ in requests]


@pytest.mark.parametrize(("text", "stray", "ok", "finish"), [
    ("Hallo Welt.</translation>\nIn this translation I kept going until the limit", False, True, "stop"),
    ("Hallo Welt.</pre>\nIn this translation I kept going until the limit", True, True, "stop"),
    ("Hallo Welt.</pre>\nIn this translation I kept going until the limit", False, False, "length"),
    ("Hallo Welt, und dann ging es weiter bis zur Grenze", True, False, "length"),
])
def test_a_closed_translation_is_not_truncated_by_what_follows_its_tag(text, stray, ok, finish):
    jobs = [{"prompt_id": "p0", "src_lang": "en", "tgt_lang": "de", "source_text": "Hello world."}]
    out, _, _ = translate(jobs, lambda: FixedGenerator(text, "length"), None,
                          TranslationConfig(stray_closing_tag=stray), SamplingParams(max_new_tokens=256))
    row = out.to_pylist()[0]
    assert (row["ok"], row["finish_reason"]) == (ok, finish)
    assert (row["text"] == "Hallo Welt.") if ok else row["text"] is None
