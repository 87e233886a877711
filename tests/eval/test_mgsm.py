"""MGSM: sources (JSONL, TSV, a Hub-layout dataset), off-target rate on real text, and `lidr eval mgsm` end to end."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest
from shared_data import require_shared_data

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.eval.mgsm import build_prompt, detect_output_languages, langid_support, load_mgsm, summarize
from lidr_data.generation.base import Completion, Generator


def test_jsonl_and_tsv_sources_agree(tmp_path):
    mgsm = require_shared_data("mgsm")
    rows = [json.loads(line) for line in (mgsm / "mgsm_de.jsonl").read_text(encoding="utf-8").splitlines()]
    # The original release: question<TAB>answer, no header.
    (tmp_path / "mgsm_de.tsv").write_text("".join(f"{r['query']}\t{r['response']}\n" for r in rows), encoding="utf-8")
    from_jsonl = load_mgsm(mgsm, ["de", "bn"])
    from_tsv = load_mgsm(tmp_path, ["de"])
    assert len(from_jsonl) == 500 and len(from_tsv) == 250
    assert from_tsv == from_jsonl[:250]
    assert {p["gold"] for p in from_jsonl} >= {"276000", "2125"}  # thousands commas are normalized
    assert len(load_mgsm(mgsm, ["ja"], limit=7)) == 7


def test_hub_layout_dataset_offline(tmp_path):
    """`juletxara/mgsm` is one config per language with question/answer_number; a local folder in the Hub layout
    goes through the same `datasets.load_dataset(source, lang, split="test")` path."""
    mgsm = require_shared_data("mgsm")
    repo = tmp_path / "mgsm-hub"
    configs = []
    for lang in ("en", "th"):
        rows = [json.loads(line) for line in (mgsm / f"mgsm_{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
        (repo / lang).mkdir(parents=True)
        pl.DataFrame({"question": [r["query"] for r in rows],
                      "answer": [None] * len(rows),
                      "answer_number": [int(r["response"].replace(",", "")) for r in rows]},
                     schema_overrides={"answer": pl.String}).write_parquet(repo / lang / "test.parquet")
        configs.append(f"- config_name: {lang}\n  data_files:\n  - split: test\n    path: {lang}/test.parquet\n")
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n", encoding="utf-8")
    problems = load_mgsm(repo, ["th", "en"])
    assert problems == load_mgsm(mgsm, ["th", "en"])


def test_bad_sources(tmp_path):
    mgsm = require_shared_data("mgsm")
    with pytest.raises(LidrError, match="no MGSM file for language 'xx'"):
        load_mgsm(mgsm, ["de", "xx"])
    (tmp_path / "de.jsonl").write_text('{"query": "Wie viel?", "response": "viele"}\n', encoding="utf-8")
    with pytest.raises(LidrError, match=r"de.jsonl:1: gold answer 'viele' is not a number"):
        load_mgsm(tmp_path, ["de"])
    (tmp_path / "de.jsonl").write_text('{"query": "Wie viel?", "response": "2"}\n\n{"query": "Wie viel?"}\n',
                                       encoding="utf-8")
    with pytest.raises(LidrError, match=r"de.jsonl:3: missing field 'response'"):  # the blank line counts
        load_mgsm(tmp_path, ["de"])
    (tmp_path / "fr.tsv").write_text("une question sans réponse\n", encoding="utf-8")
    with pytest.raises(LidrError, match=r"fr.tsv:1: expected 2 tab-separated fields"):
        load_mgsm(tmp_path, ["fr"])
    (tmp_path / "fr.tsv").write_text("Combien ?\t2\n\nCombien ?\tdeux\n", encoding="utf-8")
    with pytest.raises(LidrError, match=r"fr.tsv:3: gold answer 'deux' is not a number"):  # its line, not "row 1"
        load_mgsm(tmp_path, ["fr"])
    with pytest.raises(LidrError, match="cannot load MGSM"):
        load_mgsm("no-such-org/no-such-mgsm", ["de"])  # offline here: a clear error, not a traceback


def test_localized_prompts():
    assert "Die Antwort lautet" in build_prompt("Q?", "de") and build_prompt("Q?", "de").startswith("Q?")
    assert "উত্তর হল" in build_prompt("Q?", "bn")
    assert build_prompt("Q?", "xx").endswith('where N is a number.')  # other languages: English instruction
    assert build_prompt("Q?", "de", "Solve: {question}") == "Solve: Q?"
    with pytest.raises(LidrError, match="must contain"):
        build_prompt("Q?", "de", "no placeholder")


def test_off_target_rate_on_real_text():
    """Answers are real MGSM questions in known languages: 2 of 4 German items are answered in another language."""
    mgsm = require_shared_data("mgsm")
    text = {lang: [json.loads(line)["query"] for line in
                   (mgsm / f"mgsm_{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:4]]
            for lang in ("de", "en", "ja", "sw")}
    outputs = [text["de"][0], text["de"][1], text["en"][2], text["ja"][3], text["sw"][0], text["sw"][1], ""]
    langs = ["de", "de", "de", "de", "sw", "sw", "sw"]
    detected, scores = detect_output_languages(outputs, langs)
    assert detected == ["de", "de", "en", "ja", "sw", "sw", "unknown"]
    items = pl.DataFrame({
        "lang": langs, "correct": [True, False, False, False, True, True, False],
        "extracted": ["1", None, "2", None, "3", "4", None], "finish_reason": ["stop"] * 7,
        "detected_lang": detected,
        "off_target": [d != lang and d != "unknown" for d, lang in zip(detected, langs)],
    })
    summary = {r["lang"]: r for r in summarize(items, ["sw", "de"]).iter_rows(named=True)}
    assert summary["de"]["off_target_rate"] == 0.5 and summary["de"]["accuracy"] == 0.25
    assert summary["sw"]["off_target_rate"] == 0.0 and summary["sw"]["unknown_lang_rate"] == pytest.approx(1 / 3)
    assert summary["avg"]["accuracy"] == pytest.approx((0.25 + 2 / 3) / 2)
    assert summary["avg"]["n"] == 7


def test_language_without_language_id_model():
    assert langid_support(["sw", "te", "bn", "xx"]) == {"sw": True, "te": True, "bn": True, "xx": False}
    detected, scores = detect_output_languages(["Das ist ein deutscher Satz über Enten.", "anything"], ["de", "xx"])
    assert detected == ["de", None] and scores[1] is None


@pytest.mark.slow
def test_eval_mgsm_end_to_end_on_tiny_model(tiny_model_dir, tmp_path, capsys):
    mgsm = require_shared_data("mgsm")
    out = tmp_path / "mgsm-run"
    args = ["eval", "mgsm", "--model", str(tiny_model_dir), "--data", str(mgsm), "--langs", "de,bn,th",
            "--limit", "3", "--max-new-tokens", "8", "--output", str(out), "--label", "tiny", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "MGSM · tiny" in printed and "avg" in printed
    items = pl.read_parquet(out / "items.parquet")
    assert items.height == 9 and set(items["lang"]) == {"de", "bn", "th"}
    assert items["finish_reason"].is_in(["stop", "length"]).all()
    assert items["detected_lang"].is_not_null().all()
    # Every item's extracted answer is what the extractor reads from its output (whatever the noise says).
    from lidr_data.eval.extract import extract_answer
    assert items["extracted"].to_list() == [extract_answer(o, lang) for o, lang in zip(items["output"], items["lang"])]
    # The results folder is a SQL reference: each <name>.parquet is a view.
    con = duckdb.connect()
    acc = con.sql(f"SELECT lang, avg(correct::INT) AS acc FROM '{out}/items.parquet' GROUP BY lang").pl()
    summary = con.sql(f"SELECT lang, accuracy FROM '{out}/summary.parquet'").pl()
    assert dict(acc.iter_rows()) == {k: v for k, v in summary.iter_rows() if k != "avg"}
    # A rerun is served from the request cache.
    assert main(args) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["generation"]["cache_hits"] == 9 and info["generation"]["generated"] == 0
    assert "cache hits 9" in capsys.readouterr().out
    # ... and `lidr sql` sees one view per table.
    assert main(["sql", str(out), "SELECT lang, count(*) AS n FROM items GROUP BY lang ORDER BY lang",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ['"lang","n"', '"bn",3', '"de",3', '"th",3']


def test_eval_mgsm_missing_language_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    mgsm = require_shared_data("mgsm")
    code = main(["eval", "mgsm", "--model", str(tiny_model_dir), "--data", str(mgsm), "--langs", "de,ko",
                 "--output", str(tmp_path / "x"), "--no-progress"])
    assert code == 2
    assert "no MGSM file for language 'ko'" in capsys.readouterr().err


def test_answers_without_letters_are_unknown_never_off_target():
    """A bare-number answer has no language: `unknown`, so it is never counted off-target (issue 11: '221' was
    read as German, and 5 of the integers 0..2,999 got a language)."""
    assert detect_output_languages(["221"], ["en"]) == (["unknown"], [0.0])
    for lang in ("en", "de", "ja", "bn"):
        detected, _ = detect_output_languages([str(i) for i in range(3000)], [lang] * 3000)
        assert set(detected) == {"unknown"}, lang
    detected, _ = detect_output_languages(["**18**", "12:30", "$ 1,250.00", "Die Antwort lautet 18."], ["de"] * 4)
    assert detected == ["unknown", "unknown", "unknown", "de"]


class ScriptedGenerator(Generator):
    """No model: `answer(question text) -> completion text`."""

    model, model_revision, template_hash = "scripted", "1", "none"

    def __init__(self, answer):
        self.answer = answer

    def generate(self, requests):
        texts = [self.answer(r.messages[-1][1]) for r in requests]
        return [Completion(t, "stop", len(t.split()), self.model, self.model_revision) for t in texts]


def test_every_language_is_reported_with_accuracy_and_off_target_even_at_zero(tmp_path, capsys):
    """Issue 19: MGSM accuracy per language is reported even where it is 0 (a 135M model), beside its off-target
    rate: English right, German answered in English (wrong and off-target), Spanish wrong in Spanish, French a bare
    number (no letters: unknown, not off-target), Japanese wrong in English."""
    from lidr_data.eval.mgsm import MgsmConfig, run_mgsm

    mgsm = require_shared_data("mgsm")
    langs = ("en", "de", "es", "fr", "ja")
    problems = load_mgsm(mgsm, langs, limit=4)
    lang_of = {build_prompt(p["question"], p["lang"]): p for p in problems}
    english_wrong = "I think the answer is zero, because nothing is left over at the end of the day. The answer is 0."
    script = {
        "en": lambda p: f"First add, then subtract what is left. The answer is {p['gold']}.",
        "de": lambda p: english_wrong,
        "es": lambda p: "Creo que la respuesta es cero, porque al final del día no queda nada. La respuesta es 0.",
        "fr": lambda p: "0",
        "ja": lambda p: english_wrong,
    }
    out = tmp_path / "mgsm"
    summary, _ = run_mgsm(MgsmConfig(model="scripted", output=out, data=str(mgsm), langs=langs, limit=4,
                                     label="M0"),
                           generator=ScriptedGenerator(lambda q: script[lang_of[q]["lang"]](lang_of[q])))
    assert all(p["gold"] != "0" for p in problems)  # so every "0" is wrong
    rows = {r["lang"]: r for r in summary.to_dicts()}
    assert list(rows) == [*langs, "avg"]
    expected = {"en": (1.0, 0.0), "de": (0.0, 1.0), "es": (0.0, 0.0), "fr": (0.0, 0.0), "ja": (0.0, 1.0)}
    assert {lang: (rows[lang]["accuracy"], rows[lang]["off_target_rate"]) for lang in langs} == expected
    assert rows["fr"]["unknown_lang_rate"] == 1.0 and all(rows[lang]["n"] == 4 for lang in langs)
    assert rows["avg"]["accuracy"] == pytest.approx(0.2) and rows["avg"]["off_target_rate"] == pytest.approx(0.4)
    assert main(["eval", "compare", str(out), "--format", "json"]) == 0
    cells = {r["lang"]: r["M0"] for r in json.loads(capsys.readouterr().out)}
    assert cells == {"en": "100.0 (0.0)", "de": "0.0 (100.0)", "es": "0.0 (0.0)", "fr": "0.0 (0.0)",
                     "ja": "0.0 (100.0)", "avg": "20.0 (40.0)"}


def test_eval_mgsm_takes_the_lidr_reference_recipes_take(tiny_model_dir, tmp_path, capsys):
    """Issue 20: `--data lidr:assets/demo-mgsm` (what recipes/demo.yaml's eval: section says) failed with
    "Couldn't find any data file at .../lidr:assets/...": every path option reads `lidr:` references alike."""
    out = tmp_path / "m"
    assert main(["eval", "mgsm", "--model", str(tiny_model_dir), "--data", "lidr:assets/demo-mgsm", "--langs", "en,de",
                 "--limit", "1", "--max-new-tokens", "2", "--output", str(out), "--no-progress"]) == 0
    assert pl.read_parquet(out / "items.parquet").height == 2
    assert len(load_mgsm("lidr:assets/demo-mgsm", ["en", "es", "de", "fr"])) == 12  # three problems per language
    with pytest.raises(LidrError, match="must be a folder"):  # a wrong packaged path is not looked up on the Hub
        load_mgsm("lidr:assets/no-such-folder", ["en"])
