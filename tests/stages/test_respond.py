"""Stage respond on the tiny model: every prompt answered in its language, cached, imports not regenerated,
failed requests dropped with a reason."""

import pyarrow as pa
import pytest
from counting import CountingGenerator

from lidr_data.build.recipe import ResponsesImport
from lidr_data.errors import LidrError
from lidr_data.generation.base import SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.transformers_backend import TransformersGenerator
from lidr_data.schema import PROMPTS, RESPONSES
from lidr_data.stages.respond import read_imported_responses, respond


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return TransformersGenerator(str(tiny_model_dir), batch_size=8)


def prompts_table(n=3, langs=("en", "es")):
    rows = [{"prompt_id": f"p{i}", "lang": lang, "text": f"{lang}: question number {i}?", "source": "t",
             "is_translation_task": False} for i in range(n) for lang in langs]
    return pa.Table.from_pylist(rows, schema=PROMPTS)


def test_every_prompt_answered_then_served_from_cache(tiny, tmp_path):
    gen, cache = CountingGenerator(tiny), RequestCache(tmp_path / "cache")
    sampling = SamplingParams(max_new_tokens=6)
    responses, drops, stats = respond(prompts_table(), lambda: gen, cache, sampling, "Be brief.", progress=False)
    assert responses.schema == RESPONSES and drops.num_rows == 0
    assert (stats.rows_in, stats.kept, stats.dropped) == (6, 6, {})
    assert [(r["prompt_id"], r["lang"]) for r in responses.to_pylist()] == [
        (f"p{i}", lang) for i in range(3) for lang in ("en", "es")]
    assert set(responses.column("finish_reason").to_pylist()) <= {"stop", "length"}
    assert len(set(responses.column("request_key").to_pylist())) == 6 and gen.calls == 6
    again, _, _ = respond(prompts_table(), lambda: gen, cache, sampling, "Be brief.", progress=False)
    assert gen.calls == 6 and again.equals(responses)  # all from the cache
    # A different system prompt is a different request.
    respond(prompts_table(), lambda: gen, cache, sampling, None, progress=False)
    assert gen.calls == 12


def test_imported_answers_are_not_generated(tiny, tmp_path):
    src = tmp_path / "answers.jsonl"
    src.write_text('{"id": "p0", "answer": "Imported zero."}\n{"id": "p2", "answer": "Imported two."}\n')
    imported = read_imported_responses([ResponsesImport(path=str(src), lang="en", id_field="id",
                                                        text_field="answer", model="m")])
    gen = CountingGenerator(tiny)
    responses, _, stats = respond(prompts_table(), lambda: gen, None, SamplingParams(max_new_tokens=4),
                                  imported=imported, progress=False)
    assert gen.calls == 4 and stats.kept == 6
    by_key = {(r["prompt_id"], r["lang"]): r for r in responses.to_pylist()}
    assert by_key[("p2", "en")]["text"] == "Imported two." and by_key[("p2", "en")]["request_key"] is None
    assert by_key[("p2", "en")]["model"] == "m" and by_key[("p1", "en")]["request_key"] is not None

    def no_model():
        raise AssertionError("nothing should be generated")

    everything = {(f"p{i}", lang): {"prompt_id": f"p{i}", "lang": lang, "text": "x", "finish_reason": "stop",
                                    "model": "m", "model_revision": "r", "request_key": None, "n_tokens": 0}
                  for i in range(3) for lang in ("en", "es")}
    responses, _, _ = respond(prompts_table(), no_model, None, SamplingParams(), imported=everything,
                              progress=False)
    assert responses.num_rows == 6


def test_imports_with_bad_rows_name_file_and_row(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"prompt_id": "p0", "text": "x", "lang": "en"}\n{"prompt_id": "p1", "text": "y"}\n')
    with pytest.raises(LidrError, match=r"a.jsonl:2: no 'lang' field"):
        read_imported_responses([ResponsesImport(path=str(src))])
    src.write_text('{"prompt_id": "p0", "text": "x", "lang": "xx"}\n')
    with pytest.raises(LidrError, match=r"a.jsonl:1: lang: unknown language code 'xx'"):
        read_imported_responses([ResponsesImport(path=str(src))])
    src.write_text('{"prompt_id": "p0", "text": "x", "lang": "en"}\n{"prompt_id": "p0", "text": "y", "lang": "en"}\n')
    with pytest.raises(LidrError, match=r"a.jsonl:2: duplicate response for id 'p0'"):
        read_imported_responses([ResponsesImport(path=str(src))])
    src.write_text('{"prompt_id": "p0", "text": "x", "lang": "en"}\n\n{"prompt_id": "p1", "text": "y"}\n')
    with pytest.raises(LidrError, match=r"a.jsonl:3: no 'lang' field"):  # the blank line counts
        read_imported_responses([ResponsesImport(path=str(src))])


def test_request_too_long_for_the_context_is_dropped_not_a_crash(tiny, tmp_path):
    prompts = prompts_table(n=2)
    rows = prompts.to_pylist()
    rows[1]["text"] = "word " * 3000  # p0/es: far beyond the tiny model's 2,048-token context
    prompts = pa.Table.from_pylist(rows, schema=PROMPTS)
    responses, drops, stats = respond(prompts, lambda: tiny, RequestCache(tmp_path / "c"),
                                      SamplingParams(max_new_tokens=4), progress=False)
    assert (stats.rows_in, stats.kept, stats.dropped) == (4, 3, {"generation_error": 1})
    drop = drops.to_pylist()[0]
    assert (drop["prompt_id"], drop["lang"], drop["stage"], drop["reason"]) == ("p0", "es", "respond",
                                                                                 "generation_error")
    assert "exceeds the model context" in drop["error"]
    assert ("p0", "es") not in {(r["prompt_id"], r["lang"]) for r in responses.to_pylist()}
