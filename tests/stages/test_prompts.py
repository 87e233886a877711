"""Prompt sources: per-language folders (jsonl/json/parquet) and Hub-layout datasets, aligned by id."""

import json

import polars as pl
import pytest
from shared_data import require_shared_data

from lidr_data.build.recipe import PromptsConfig
from lidr_data.errors import LidrError
from lidr_data.stages.prompts import load_prompts


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def folder(tmp_path, langs=("en", "es", "de"), ids=range(4)):
    d = tmp_path / "prompts"
    d.mkdir(exist_ok=True)
    for lang in langs:
        write_jsonl(d / f"{lang}.jsonl", [{"id": f"p{i}", "instruction": f"{lang} prompt {i}"} for i in ids])
    return d


def test_aligned_folder_keeps_every_row(tmp_path):
    d = folder(tmp_path)
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d)), ["en", "es", "de"])
    assert prompts.num_rows == 12 and drops.num_rows == 0
    assert (stats.rows_in, stats.kept, stats.dropped) == (12, 12, {})
    rows = prompts.to_pylist()
    assert [(r["prompt_id"], r["lang"]) for r in rows[:3]] == [("p0", "en"), ("p0", "es"), ("p0", "de")]
    assert rows[1]["text"] == "es prompt 0" and rows[1]["source"].endswith("es.jsonl")
    assert not any(r["is_translation_task"] for r in rows)


def test_mixed_formats_and_field_mapping(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    write_jsonl(d / "en.jsonl", [{"key": 1, "q": "one"}, {"key": 2, "q": "two"}])
    (d / "fr.json").write_text(json.dumps([{"key": 2, "q": "deux"}, {"key": 1, "q": "un"}]))
    pl.DataFrame({"key": [1, 2], "q": ["eins", "zwei"]}).write_parquet(d / "de.parquet")
    prompts, _, stats = load_prompts(PromptsConfig(source=str(d), id_field="key", text_field="q"), ["en", "fr", "de"])
    assert stats.kept == 6
    got = {(r["prompt_id"], r["lang"]): r["text"] for r in prompts.to_pylist()}
    assert got[("1", "fr")] == "un" and got[("2", "de")] == "zwei"  # aligned by id, not by line
    assert prompts.column("prompt_id").to_pylist()[:3] == ["1", "1", "1"]  # ordered as in the dominant file


def test_missing_and_empty_items_are_dropped_with_reasons(tmp_path):
    d = folder(tmp_path, langs=("en",))
    write_jsonl(d / "es.jsonl", [{"id": f"p{i}", "instruction": "x" if i != 2 else "  "} for i in range(4)])
    write_jsonl(d / "de.jsonl", [{"id": f"p{i}", "instruction": "y"} for i in (0, 2, 3, 9)])
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d)), ["en", "es", "de"])
    assert sorted(set(prompts.column("prompt_id").to_pylist())) == ["p0", "p3"]
    reasons = {(r["prompt_id"], r["lang"]): r["reason"] for r in drops.to_pylist()}
    assert reasons == {
        ("p1", "en"): "missing_in:de", ("p1", "es"): "missing_in:de",
        ("p2", "en"): "missing_in:es", ("p2", "es"): "empty_text", ("p2", "de"): "missing_in:es",
        ("p9", "de"): "missing_in:en,es",
    }
    assert set(drops.column("stage").to_pylist()) == {"prompts"}
    assert stats.rows_in == prompts.num_rows + drops.num_rows == stats.kept + sum(stats.dropped.values())


def test_offset_and_limit_select_items_in_dominant_order(tmp_path):
    d = folder(tmp_path, ids=range(10))
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d), offset=3, limit=4), ["en", "es"])
    assert sorted(set(prompts.column("prompt_id").to_pylist())) == ["p3", "p4", "p5", "p6"]
    assert stats.rows_in == 8 and drops.num_rows == 0  # items outside the slice are not "dropped", just unused


def test_translation_tasks_from_ids_file_and_pattern(tmp_path):
    d = folder(tmp_path)
    ids = tmp_path / "tasks.jsonl"
    write_jsonl(ids, [{"id": "p1", "prompt": "..."}, {"id": "p99"}])
    prompts, _, _ = load_prompts(PromptsConfig(source=str(d), translation_task_ids=str(ids)), ["en", "es"])
    flagged = {r["prompt_id"] for r in prompts.to_pylist() if r["is_translation_task"]}
    assert flagged == {"p1"}
    assert sum(prompts.column("is_translation_task").to_pylist()) == 2  # both languages of the item
    prompts, _, _ = load_prompts(PromptsConfig(source=str(d), translation_task_pattern=r"prompt [23]$"),
                                 ["en", "es"])
    assert {r["prompt_id"] for r in prompts.to_pylist() if r["is_translation_task"]} == {"p2", "p3"}
    ids.write_text('{"id": "p1"}\n\n{"task": "p2"}\n', encoding="utf-8")
    with pytest.raises(LidrError, match=r"tasks.jsonl:3: missing field 'id'"):  # the blank line counts
        load_prompts(PromptsConfig(source=str(d), translation_task_ids=str(ids)), ["en", "es"])


@pytest.mark.parametrize(
    ("es_content", "message"),
    [
        ('{"id": "p0", "instruction": "a"}\n{"id": "p1", "instruction": \n', "es.jsonl:2: malformed JSON"),
        ('{"id": "p0", "instruction": "a"}\n{"id": "p0", "instruction": "b"}\n',
         "es.jsonl:2: duplicate id 'p0' (first seen at "),
        ('{"instruction": "a"}\n', "es.jsonl:1: missing field 'id' (prompts.id_field)"),
        ('{"id": "p0", "text": "a"}\n', "es.jsonl:1: missing field 'instruction' (prompts.text_field)"),
        ('{"id": "p0", "instruction": ["a"]}\n', "es.jsonl:1: field 'instruction' must be a string"),
        ('[1, 2]\n', "es.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_prompt_files_name_file_and_row(tmp_path, es_content, message):
    d = folder(tmp_path, langs=("en",))
    (d / "es.jsonl").write_text(es_content)
    with pytest.raises(LidrError) as err:
        load_prompts(PromptsConfig(source=str(d)), ["en", "es"])
    assert message in str(err.value) and str(d) in str(err.value)


def test_missing_folder_or_language_file(tmp_path):
    with pytest.raises(LidrError, match="prompt folder not found"):
        load_prompts(PromptsConfig(source=str(tmp_path / "nope")), ["en", "es"])
    d = folder(tmp_path, langs=("en",))
    with pytest.raises(LidrError, match=r"no prompt file for language 'es' \(expected es.jsonl, es.json, es.parquet\)"):
        load_prompts(PromptsConfig(source=str(d)), ["en", "es"])
    (d / "es.jsonl").write_text("")
    (d / "es.json").write_text("[]")
    with pytest.raises(LidrError, match="several prompt files for language 'es'"):
        load_prompts(PromptsConfig(source=str(d)), ["en", "es"])


def test_hub_dataset_path_with_one_table_for_all_languages(tmp_path):
    # A dataset folder in the Hub layout, read through datasets.load_dataset (the code path of a Hub id), offline.
    repo = tmp_path / "org-prompts"
    (repo / "data").mkdir(parents=True)
    pl.DataFrame({
        "uid": [0, 1, 0, 1, 1], "language": ["en", "en", "de", "de", "fr"],
        "question": ["Hi?", "Why?", "Hallo?", "Warum?", "Pourquoi ?"],
    }).write_parquet(repo / "data" / "train-00000-of-00001.parquet")
    cfg = PromptsConfig(source=str(repo), format="hub", id_field="uid", text_field="question", lang_field="language")
    prompts, drops, stats = load_prompts(cfg, ["en", "de"])
    assert stats.kept == 4 and prompts.column("source").to_pylist()[0].endswith("[train]")
    assert {(r["prompt_id"], r["lang"]): r["text"] for r in prompts.to_pylist()}[("1", "de")] == "Warum?"
    cfg = PromptsConfig(source=str(repo), format="hub", id_field="uid", text_field="question", lang_field="lang")
    with pytest.raises(LidrError, match=r"no field 'lang' \(prompts.lang_field\)"):
        load_prompts(cfg, ["en", "de"])
    with pytest.raises(LidrError, match="cannot load prompt dataset"):
        load_prompts(PromptsConfig(source=str(tmp_path / "empty-dir-x"), format="hub"), ["en", "de"])


def test_hub_dataset_path_with_one_config_per_language(tmp_path):
    repo = tmp_path / "org-parallel"
    repo.mkdir()
    for lang, texts in {"en": ["One?", "Two?"], "de": ["Zwei?", "Eins?"]}.items():
        ids = ["b", "a"] if lang == "de" else ["a", "b"]
        pl.DataFrame({"id": ids, "instruction": texts}).write_parquet(repo / f"{lang}.parquet")
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: en\n  data_files: en.parquet\n"
                                    "- config_name: de\n  data_files: de.parquet\n---\n")
    cfg = PromptsConfig(source=str(repo), format="hub", hub_config="{lang}")
    prompts, _, stats = load_prompts(cfg, ["en", "de"])
    assert stats.kept == 4
    assert {(r["prompt_id"], r["lang"]): r["text"] for r in prompts.to_pylist()}[("a", "de")] == "Eins?"


def test_real_alpagasus_prompts_with_translation_task_list():
    base = require_shared_data("prompts")
    ids_file = base / "translation-instructions.jsonl"
    cfg = PromptsConfig(source=str(base / "alpagasus-0-1000"), translation_task_ids=str(ids_file))
    prompts, drops, stats = load_prompts(cfg, ["en", "es", "ru", "de", "fr"])
    assert stats.kept == 5000 and drops.num_rows == 0
    listed = {json.loads(line)["id"] for line in ids_file.read_text().splitlines() if line.strip()}
    flagged = {r["prompt_id"] for r in prompts.to_pylist() if r["is_translation_task"]}
    assert flagged == listed & set(prompts.column("prompt_id").to_pylist()) and flagged


# -- issue 10, item 6: prompt files as users really have them

def test_invalid_utf8_names_file_line_byte_and_column(tmp_path):
    d = folder(tmp_path, langs=("en",))
    (d / "es.jsonl").write_bytes(b'{"id": "p0", "instruction": "hola"}\n{"id": "p1", "instruction": "ma\xf1ana"}\n')
    with pytest.raises(LidrError) as err:
        load_prompts(PromptsConfig(source=str(d)), ["en", "es"])
    assert str(err.value) == f"{d / 'es.jsonl'}:2: not valid UTF-8 (byte 0xf1 at column 32)"
    (d / "es.json").unlink(missing_ok=True)
    (d / "es.jsonl").unlink()
    (d / "es.json").write_bytes(b'[{"id": "p0",\n "instruction": "caf\xe9"}]')
    with pytest.raises(LidrError, match=r"es.json:2: not valid UTF-8 \(byte 0xe9 at column 21\)"):
        load_prompts(PromptsConfig(source=str(d)), ["en", "es"])


def test_invalid_utf8_is_a_one_line_cli_error(tmp_path, capsys):
    from lidr_data.cli import main

    d = folder(tmp_path, langs=("en", "es"))
    (d / "de.jsonl").write_bytes(b'{"id": "p0", "instruction": "\xff"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nmodel: lidr:tiny-model\nlanguages: [es, de]\nprompts: {{source: {d}}}\n"
                      f"workdir: {tmp_path / 'work'}\n")
    assert main(["build", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "de.jsonl:1: not valid UTF-8 (byte 0xff at column 30)" in err and "Traceback" not in err


def test_byte_order_mark_and_crlf_are_accepted(tmp_path):
    d = folder(tmp_path, langs=("en",))
    (d / "es.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(
        f'{{"id": "p{i}", "instruction": "es prompt {i}"}}\r\n'.encode() for i in range(4)))
    (d / "de.json").write_bytes(b"\xef\xbb\xbf[\r\n" + b",\r\n".join(
        f'{{"id": "p{i}", "instruction": "de prompt {i}"}}'.encode() for i in range(4)) + b"\r\n]\r\n")
    prompts, drops, _ = load_prompts(PromptsConfig(source=str(d)), ["en", "es", "de"])
    assert prompts.num_rows == 12 and drops.num_rows == 0
    got = {(r["prompt_id"], r["lang"]): r["text"] for r in prompts.to_pylist()}
    assert got[("p0", "es")] == "es prompt 0" and got[("p3", "de")] == "de prompt 3"


def test_empty_language_file_is_named(tmp_path):
    d = folder(tmp_path, langs=("en", "fr"))
    (d / "de.jsonl").write_text("\n\n")
    with pytest.raises(LidrError) as err:
        load_prompts(PromptsConfig(source=str(d)), ["en", "de", "fr"])
    assert str(err.value).startswith(f"{d / 'de.jsonl'}: no prompts in this file (it is empty)")


def test_null_instruction_is_dropped_as_null_text_and_named(tmp_path):
    d = folder(tmp_path, langs=("en",))
    write_jsonl(d / "es.jsonl", [{"id": f"p{i}", "instruction": None if i == 2 else f"es {i}"} for i in range(4)])
    notes = []
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d)), ["en", "es"], warn=notes.append)
    reasons = {(r["prompt_id"], r["lang"]): r["reason"] for r in drops.to_pylist()}
    assert reasons == {("p2", "es"): "null_text", ("p2", "en"): "missing_in:es"}
    assert stats.dropped == {"null_text": 1, "missing_in:es": 1}
    assert notes == [f"{d / 'es.jsonl'}:3: field 'instruction' is null (prompts.text_field); 1 row(s) of "
                     f"{d / 'es.jsonl'} like it dropped as null_text"]


ENGLISH = ["Give three tips for staying healthy and fit.", "Describe the structure of an atom in detail.",
           "Write a short story about a robot learning to paint.", "Explain why the sky is blue during the day.",
           "List five famous landmarks in Europe and their cities."]
GERMAN = ["Gib drei Tipps, um gesund und fit zu bleiben.", "Beschreibe den Aufbau eines Atoms im Detail.",
          "Schreibe eine kurze Geschichte über einen Roboter, der malen lernt.",
          "Erkläre, warum der Himmel tagsüber blau ist.", "Nenne fünf berühmte Sehenswürdigkeiten in Europa."]


def test_file_in_another_language_is_dropped_with_a_warning(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    write_jsonl(d / "en.jsonl", [{"id": f"p{i}", "instruction": t} for i, t in enumerate(ENGLISH)])
    write_jsonl(d / "de.jsonl", [{"id": f"p{i}", "instruction": t} for i, t in enumerate(ENGLISH)])  # not German
    notes = []
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d)), ["en", "de"], warn=notes.append)
    assert prompts.num_rows == 0
    assert stats.dropped == {"prompt_wrong_language": 5, "missing_in:de": 5}
    assert {r["reason"] for r in drops.to_pylist() if r["lang"] == "de"} == {"prompt_wrong_language"}
    assert len(notes) == 1 and notes[0].startswith(f"{d / 'de.jsonl'}: 5 of 5 item(s) (100.0%) are not in 'de' "
                                                   "(detected: en 5)")
    # the right file passes; the check can be switched off
    write_jsonl(d / "de.jsonl", [{"id": f"p{i}", "instruction": t} for i, t in enumerate(GERMAN)])
    assert load_prompts(PromptsConfig(source=str(d)), ["en", "de"])[2].kept == 10
    write_jsonl(d / "de.jsonl", [{"id": f"p{i}", "instruction": t} for i, t in enumerate(ENGLISH)])
    assert load_prompts(PromptsConfig(source=str(d), check_language=False), ["en", "de"])[2].kept == 10


def test_real_prompt_files_lose_no_item_to_the_language_check():
    base = require_shared_data("prompts")
    langs = ["en", "ar", "de", "es", "fr", "it", "ja", "ko", "ru", "th", "zh"]
    notes = []
    _, _, stats = load_prompts(PromptsConfig(source=str(base / "alpagasus-0-1000")), langs, warn=notes.append)
    assert stats.kept == 11000 and notes == []


def test_limit_reads_only_what_it_selects(tmp_path):
    # Lines after the selection are never parsed: a broken tail does not matter, and memory follows --limit.
    import tracemalloc

    d = tmp_path / "p"
    d.mkdir()
    n = 50_000
    for lang in ("en", "es", "de"):
        with (d / f"{lang}.jsonl").open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"p{i}", "instruction": f"{lang} prompt number {i} " + "x" * 200}) + "\n")
            f.write("{not json\n")
    tracemalloc.start()
    prompts, drops, stats = load_prompts(PromptsConfig(source=str(d), offset=10, limit=5, check_language=False),
                                           ["en", "es", "de"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(set(prompts.column("prompt_id").to_pylist())) == [f"p{i}" for i in range(10, 15)]
    assert stats.kept == 15 and drops.num_rows == 0
    assert peak < 2_000_000  # the three files hold ~33 MB of text
    with pytest.raises(LidrError, match=r"en.jsonl:50001: malformed JSON"):
        load_prompts(PromptsConfig(source=str(d)), ["en", "es", "de"])


def test_limit_with_ids_in_another_order_still_aligns(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    write_jsonl(d / "en.jsonl", [{"id": f"p{i}", "instruction": f"en {i}"} for i in range(20)])
    write_jsonl(d / "de.jsonl", [{"id": f"p{i}", "instruction": f"de {i}"} for i in reversed(range(20))])
    prompts, _, stats = load_prompts(PromptsConfig(source=str(d), limit=3), ["en", "de"])
    got = {(r["prompt_id"], r["lang"]): r["text"] for r in prompts.to_pylist()}
    assert stats.kept == 6 and got[("p2", "de")] == "de 2" and got[("p0", "en")] == "en 0"


def test_source_column_is_no_absolute_path(tmp_path):
    d = folder(tmp_path)
    prompts, _, _ = load_prompts(PromptsConfig(source=str(d)), ["en", "es"])
    assert set(prompts.column("source").to_pylist()) == {"prompts/en.jsonl", "prompts/es.jsonl"}
