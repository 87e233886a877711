"""`lidr eval refnll`: the reference answers' NLL under the tiny model equals a plain one-example-at-a-time torch
loop written here, whatever the batch and its padding; prompts without a reference answer are counted, not
scored; the CLI, `lidr eval compare` and `lidr iterate`'s `eval:` section take it."""

from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from shared_data import require_shared_data

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.eval.refnll import RefNllConfig, load_items, resolve_sources, run_refnll

LANGS = ("en", "ru", "de")
SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """Real GPT-4-Turbo answers: per language the first three (long: cut at --max-tokens) and the three shortest
    (not cut), so a batch mixes very different lengths and is mostly padding for the short ones."""
    gold = require_shared_data("x-alpacaeval", "outputs", "gpt-4-turbo-2024-04-09")
    folder = tmp_path_factory.mktemp("reference")
    for lang in LANGS:
        rows = json.loads((gold / f"{lang}.json").read_text(encoding="utf-8"))
        picked = rows[:3] + sorted(rows[3:], key=lambda r: len(r["output"]))[:3]
        (folder / f"{lang}.json").write_text(json.dumps(picked, ensure_ascii=False), encoding="utf-8")
    return folder


@functools.cache
def _load(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).float().eval()


def independent_nll(model_dir: Path, instruction: str, answer: str, max_tokens: int) -> tuple[float, int]:
    """(summed NLL of the answer tokens, their count): one example, no batching, no padding, token by token."""
    tok, model = _load(model_dir)
    chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}]
    prompt = tok(tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
                 add_special_tokens=False)["input_ids"]
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"][:max_tokens]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + answer_ids])).logits[0].double()
    nll = 0.0
    for j, token in enumerate(answer_ids):
        nll -= torch.log_softmax(logits[len(prompt) + j - 1], dim=-1)[token].item()
    return nll, len(answer_ids)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_nll_equals_a_plain_loop_whatever_the_batch(tiny_model_dir, reference, tmp_path, batch_size):
    max_tokens = 48
    summary, info = run_refnll(RefNllConfig(model=str(tiny_model_dir), output=tmp_path / "r", reference=str(reference),
                                            langs=LANGS, max_tokens=max_tokens, batch_size=batch_size))
    items = pl.read_parquet(tmp_path / "r" / "items.parquet")
    assert items.height == 18 and items["truncated"].sum() == 9  # the three long answers of each language
    for row in items.iter_rows(named=True):
        nll, n = independent_nll(tiny_model_dir, row["instruction"], row["answer"], max_tokens)
        assert row["n_tokens"] == n and row["nll_sum"] == pytest.approx(nll, abs=1e-4 * n)
        assert row["nll_per_token"] == pytest.approx(nll / n, abs=1e-4)
        if not row["truncated"]:  # the whole answer is scored: per byte and per character of all of it
            assert row["n_bytes"] == len(row["answer"].encode("utf-8")) and row["n_chars"] == len(row["answer"])
        else:  # the covered text is a prefix of the answer that holds the kept tokens
            assert 0 < row["n_chars"] < len(row["answer"])
        assert row["nll_per_byte"] == pytest.approx(row["nll_sum"] / row["n_bytes"])
    for lang in LANGS:
        got = items.filter(pl.col("lang") == lang)
        per_token = got["nll_per_token"].to_list()
        mean = sum(per_token) / 6
        se = math.sqrt(sum((x - mean) ** 2 for x in per_token) / 5 / 6)
        row = summary.filter(pl.col("lang") == lang).row(0, named=True)
        assert row["n"] == 6 and row["nll_per_token"] == pytest.approx(mean) and row["se_per_token"] == pytest.approx(se)
        per_byte = (got["nll_sum"] / got["n_bytes"]).to_list()
        assert row["nll_per_byte"] == pytest.approx(sum(per_byte) / 6)
        assert row["truncated"] == 3 and row["no_reference"] == 0
    avg = summary.filter(pl.col("lang") == "avg").row(0, named=True)
    assert avg["n"] == 18 and avg["nll_per_token"] == pytest.approx(
        summary.filter(pl.col("lang") != "avg")["nll_per_token"].mean())
    assert info["task"] == "refnll" and info["model_revision"].startswith("local-")


def test_prompts_without_a_reference_answer_are_counted_not_scored(tmp_path):
    data = require_shared_data("x-alpacaeval")
    reference, prompts = resolve_sources(data, None)  # an X-AlpacaEval folder gives both
    assert reference == data / "outputs" / "gpt-4-turbo-2024-04-09" and prompts == data / "prompts"
    items, unmatched = load_items(reference, prompts, "en", None)  # the English answers have no id
    assert len(items) == 805 and unmatched == []
    assert items[10]["answer"] == json.loads((reference / "en.json").read_text(encoding="utf-8"))[10]["output"]
    # a prompt whose text is not among the answers' instructions, and one with two different answers
    (tmp_path / "p").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "p" / "de.json").write_text(json.dumps([{"instruction": "Wie spät ist es?"},
                                                        {"instruction": "Nenne eine Farbe."},
                                                        {"instruction": "Zwei Antworten?"}]), encoding="utf-8")
    (tmp_path / "a" / "de.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"instruction": "Nenne eine Farbe. ", "output": "Blau."}, {"instruction": "Zwei Antworten?", "output": "Ja."},
        {"instruction": "Zwei Antworten?", "output": "Nein."}]), encoding="utf-8")
    items, unmatched = load_items(tmp_path / "a", tmp_path / "p", "de", None)
    assert [(i["pos"], i["answer"]) for i in items] == [(1, "Blau.")]
    assert [(u["pos"], u["reason"]) for u in unmatched] == [(0, "no reference answer"),
                                                           (2, "two different reference answers")]
    (tmp_path / "a" / "fr.jsonl").write_text('{"instruction": "Bonjour ?"}\n', encoding="utf-8")
    with pytest.raises(LidrError, match=r"fr.jsonl:1: missing field 'output'"):
        load_items(tmp_path / "a", None, "fr", None)


def test_cli_compare_and_iterate_section(tiny_model_dir, reference, tmp_path, capsys):
    runs = []
    for label, system in (("M0", SYSTEM), ("M1", "Answer well.")):
        out = tmp_path / label
        assert main(["eval", "refnll", "--model", str(tiny_model_dir), "--reference", str(reference), "--langs",
                     "de,ru", "--limit", "2", "--max-tokens", "8", "--system-prompt", system, "--label", label,
                     "--output", str(out), "--no-progress", "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["lang"] for r in rows] == ["de", "ru", "avg"] and rows[0]["n"] == 2 and rows[0]["tokens"] == 16
        runs.append(out)
    assert main(["sql", str(runs[0]), "SELECT count(*) AS n FROM items", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ['"n"', "4"]
    assert main(["eval", "compare", *map(str, runs)]) == 0
    table = capsys.readouterr().out
    assert "refnll · NLL/token ± SE (NLL/byte)" in table and "M0" in table and "M1" in table
    assert main(["eval", "compare", *map(str, runs), "--metric", "nll_per_char", "--format", "json"]) == 0
    m0_de = pl.read_parquet(runs[0] / "summary.parquet").filter(pl.col("lang") == "de")["nll_per_char"][0]
    assert json.loads(capsys.readouterr().out)[0]["M0"] == f"{m0_de:.4g}"

    # `lidr iterate` takes it in the recipe's eval: section, checked by the command's own parser
    from lidr_data.commands.iterate import check_eval
    from lidr_data.eval import registry

    assert "refnll" in registry.names() and registry.find("refnll").metrics == ("nll_per_token", "nll_per_byte")
    words = check_eval({"refnll": {"reference": str(reference), "langs": ["de"], "max_tokens": 8}}, "r.yaml")
    assert words == {"refnll": ["--reference", str(reference), "--langs", "de", "--max-tokens", "8"]}
    with pytest.raises(LidrError, match="r.yaml: eval.refnll: the following arguments are required: reference"):
        check_eval({"refnll": {"langs": ["de"]}}, "r.yaml")
    with pytest.raises(LidrError, match="eval.refnll.prompt: unknown option"):
        check_eval({"refnll": {"reference": "x", "prompt": "y"}}, "r.yaml")
    # ... runs it for every model, and puts its per-language figures in the loop's summary table
    from argparse import Namespace

    import yaml

    from lidr_data.commands.iterate import make_plan
    from lidr_data.iterate import eval_dir, plan_steps, summarize

    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml").read_text())
    recipe["eval"] = {"refnll": {"reference": str(reference), "langs": ["de", "ru"], "limit": 2}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    plan = make_plan(Namespace(recipe=str(tmp_path / "recipe.yaml"), iterations=1, workdir=tmp_path / "w",
                               slice_size=None, publish=None, executor="local", ray_address=None))
    steps = {s.id: s for s in plan_steps(plan)}
    assert {"eval-refnll:M0", "eval-refnll:M1"} <= set(steps)
    argv = steps["eval-refnll:M1"].argv
    assert argv[argv.index("eval") + 1] == "refnll" and argv[argv.index("--model") + 1].endswith("M1")
    shutil.copytree(runs[0], eval_dir(plan, "refnll", 0))
    row = summarize(plan).row(0, named=True)
    m0 = pl.read_parquet(runs[0] / "summary.parquet").filter(pl.col("lang") == "ru").row(0, named=True)
    assert row["refnll_nll_per_token_ru"] == m0["nll_per_token"] and row["refnll_nll_per_byte_ru"] == m0["nll_per_byte"]
