"""Win rate on the real X-AlpacaEval outputs (GPT-3.5 vs GPT-4-Turbo), matching, statistics and the CLI."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import polars as pl
import pytest
from shared_data import require_shared_data

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.eval.outputs import load_outputs
from lidr_data.eval.results import read_run
from lidr_data.eval.stats import fit_l1_logistic, fit_l1_logistic_cv, length_controlled_win_rate, win_rate
from lidr_data.eval.winrate import WinrateConfig, run_winrate

LANGS = ("en", "es", "ru", "de", "fr")


def independent_length_share(cand_file, ref_file) -> tuple[float, float, int]:
    """The `length` judge's win rate computed here from the raw files: pair rows by instruction, longer wins."""
    cand = json.loads(cand_file.read_text(encoding="utf-8"))
    ref = {r["instruction"]: r["output"] for r in json.loads(ref_file.read_text(encoding="utf-8"))}
    s = []
    for row in cand:
        c, r = row["output"], ref[row["instruction"]]
        s.append(0.5 if c == r or len(c) == len(r) else float(len(c) > len(r)))
    mean = sum(s) / len(s)
    sd = math.sqrt(sum((x - mean) ** 2 for x in s) / (len(s) - 1))
    return 100 * mean, 100 * sd / math.sqrt(len(s)), len(s)


def test_length_judge_on_real_outputs_equals_independent_share(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    ref, cand = outputs / "gpt-4-turbo-2024-04-09", outputs / "gpt-3.5-turbo-0125"
    summary, info = run_winrate(WinrateConfig(output=tmp_path / "wr", reference=str(ref), candidate=str(cand),
                                              langs=LANGS, judge="length"), progress=False)
    rows = {r["lang"]: r for r in summary.iter_rows(named=True)}
    for lang in LANGS:
        wr, se, n = independent_length_share(cand / f"{lang}.json", ref / f"{lang}.json")
        assert rows[lang]["n"] == rows[lang]["scored"] == n == 805
        assert rows[lang]["win_rate"] == pytest.approx(wr, abs=1e-9)
        assert rows[lang]["se"] == pytest.approx(se, abs=1e-9)
        assert rows[lang]["wins"] + rows[lang]["ties"] + rows[lang]["losses"] == 805
        assert rows[lang]["unmatched_candidate"] == rows[lang]["unmatched_reference"] == 0
    assert rows["en"]["matched_by"] == "instruction" and rows["de"]["matched_by"] == "id"
    assert "en: matched by instruction (reference has no 'id')" in info["notes"]
    assert rows["en"]["identical"] == 7  # real identical answers: ties with no judge call
    assert rows["avg"]["win_rate"] == pytest.approx(np.mean([rows[lang]["win_rate"] for lang in LANGS]))
    # Per-item results are SQL-queryable and agree with the summary.
    con = duckdb.connect()
    got = con.sql(f"SELECT lang, 100 * avg(score) FROM '{tmp_path}/wr/items.parquet' GROUP BY lang").fetchall()
    assert {k: pytest.approx(v) for k, v in got} == {lang: rows[lang]["win_rate"] for lang in LANGS}
    judged = con.sql(f"SELECT count(*) FROM '{tmp_path}/wr/judgments.parquet' WHERE lang = 'en'").fetchall()[0][0]
    assert judged == 805 - 7


def test_mismatched_ids_are_reported_not_dropped(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    ref = json.loads((outputs / "gpt-4-turbo-2024-04-09" / "de.json").read_text(encoding="utf-8"))[:20]
    cand = json.loads((outputs / "gpt-3.5-turbo-0125" / "de.json").read_text(encoding="utf-8"))[:20]
    cand = cand[3:] + [dict(cand[5], output="another answer"), dict(cand[0], id=9999)]  # 3 missing, 1 dup, 1 extra
    cand[7]["output"] = None
    for name, rows in (("ref", ref), ("cand", cand)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "de.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary, info = run_winrate(WinrateConfig(output=tmp_path / "wr", reference=str(tmp_path / "ref"),
                                              candidate=str(tmp_path / "cand"), langs=("de",), judge="length"),
                                progress=False)
    de = summary.row(0, named=True)
    unmatched = pl.read_parquet(tmp_path / "wr" / "unmatched.parquet")
    reasons = sorted(zip(unmatched["side"], unmatched["reason"]))
    assert reasons == sorted([("candidate", "duplicate id in candidate"), ("candidate", "missing in reference"),
                              ("candidate", "candidate output missing")]
                             + [("reference", "missing in candidate")] * 3
                             + [("reference", "candidate output missing")])
    assert de["n"] == 20 - 3 - 1 and de["unmatched_candidate"] == 3 and de["unmatched_reference"] == 4
    # every input row is either judged or reported
    assert de["n"] + de["unmatched_candidate"] == len(cand) and de["n"] + de["unmatched_reference"] == len(ref)
    assert any("unmatched row(s)" in note for note in info["notes"])


def test_missing_language_and_bad_arguments(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    ref, cand = outputs / "gpt-4-turbo-2024-04-09", outputs / "gpt-3.5-turbo-0125"
    with pytest.raises(LidrError, match=r"no reference file for language 'zh'.*languages there: de, en, es, fr, ru"):
        run_winrate(WinrateConfig(output=tmp_path, reference=str(ref), candidate=str(cand), langs=("de", "zh"),
                                  judge="length"), progress=False)
    with pytest.raises(LidrError, match="either --candidate"):
        run_winrate(WinrateConfig(output=tmp_path, reference=str(ref), langs=("de",), judge="length"))
    with pytest.raises(LidrError, match="needs --judge-model"):
        run_winrate(WinrateConfig(output=tmp_path, reference=str(ref), candidate=str(cand), langs=("de",),
                                  judge="openai"), progress=False)


def test_bad_output_row_names_its_line_blank_lines_counted(tmp_path):
    path = tmp_path / "de.jsonl"
    path.write_text('{"id": "a", "output": "x"}\n\n{"id": "b", "output": 3}\n', encoding="utf-8")
    with pytest.raises(LidrError, match=r"de.jsonl:3: field 'output' must be a string"):
        load_outputs(path)


def test_win_rate_and_standard_error():
    wr, se = win_rate([1, 0.5, 0, 1])
    assert wr == 62.5 and se == pytest.approx(100 * np.std([1, 0.5, 0, 1], ddof=1) / 2)
    assert win_rate([]) == (None, None) and win_rate([1.0]) == (100.0, None)


def test_length_controlled_win_rate_recovers_a_known_model():
    """AlpacaEval 2's GLM: P(win) = sigmoid(theta + phi tanh(d / std d) [+ psi difficulty]); LC = the model at d = 0."""
    rng = np.random.default_rng(0)
    d = rng.normal(0, 400, 20000)
    X = np.column_stack([np.ones_like(d), np.tanh(d / d.std(ddof=1))])
    y = (rng.random(d.size) < 1 / (1 + np.exp(-(X @ [-1.0, 2.5])))).astype(float)
    w, _ = fit_l1_logistic_cv(X, y)
    assert w[0] == pytest.approx(-1.0, abs=0.06) and w[1] == pytest.approx(2.5, abs=0.1)
    assert length_controlled_win_rate(y, d) == pytest.approx(100 / (1 + math.exp(1.0)), abs=1.5)
    # Outcomes unrelated to length: LC stays near the raw win rate.
    y2 = (rng.random(d.size) < 0.3).astype(float)
    assert length_controlled_win_rate(y2, d) == pytest.approx(100 * y2.mean(), abs=1.0)
    # Length decides everything (the `length` judge, lengths in whole characters, equal lengths tie): the fit stays
    # finite and LC is 50. (The ties at zero difference pin theta; real outputs have them too.)
    chars = np.round(d)
    assert length_controlled_win_rate(np.sign(chars) / 2 + 0.5, chars) == pytest.approx(50, abs=3)
    # Soft labels (ties are 0.5) and an instruction-difficulty term: LC averages sigmoid(theta + psi * difficulty).
    g = rng.normal(0, 1, d.size)
    p = 1 / (1 + np.exp(-(-0.5 + 2.0 * X[:, 1] + 1.5 * g)))
    y3 = np.where(rng.random(d.size) < 0.1, 0.5, (rng.random(d.size) < p).astype(float))
    expected = 100 * np.mean(1 / (1 + np.exp(-(-0.5 + 1.5 * g))))
    assert length_controlled_win_rate(y3, d, difficulty=g) == pytest.approx(expected, abs=2.0)


def test_l1_fit_matches_the_optimality_conditions():
    """The L1 fit is the minimizer of C * sum CE + |w|_1: |gradient| = 1 where w != 0 (sign opposite), <= 1 at 0."""
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(500), rng.normal(size=500), rng.normal(size=500)])
    y = (rng.random(500) < 1 / (1 + np.exp(-(X @ [0.3, 1.0, 0.0])))).astype(float)
    for C in (0.01, 0.1, 10.0):
        w = fit_l1_logistic(X, y, C)
        grad = C * X.T @ (1 / (1 + np.exp(-(X @ w))) - y)
        for j in range(3):
            if abs(w[j]) > 1e-8:
                assert grad[j] == pytest.approx(-np.sign(w[j]), abs=1e-4)
            else:
                assert abs(grad[j]) <= 1 + 1e-4


def test_length_judge_length_controlled_win_rate_is_50_on_real_outputs(tmp_path):
    """The `length` judge decides by length alone, so with length controlled nothing is left: LC = 50 +/- 3 in
    every language (GPT-3.5 vs GPT-4-Turbo X-AlpacaEval outputs; the raw win rate is 6-9)."""
    outputs = require_shared_data("x-alpacaeval", "outputs")
    summary, _ = run_winrate(WinrateConfig(output=tmp_path / "wr", reference=str(outputs / "gpt-4-turbo-2024-04-09"),
                                           candidate=str(outputs / "gpt-3.5-turbo-0125"), langs=LANGS,
                                           judge="length"), progress=False)
    rows = {r["lang"]: r for r in summary.iter_rows(named=True)}
    for lang in LANGS:
        assert rows[lang]["win_rate"] < 10
        assert rows[lang]["lc_win_rate"] == pytest.approx(50, abs=3), lang
    assert rows["avg"]["lc_win_rate"] == pytest.approx(50, abs=3)


@pytest.mark.slow
def test_winrate_cli_generates_candidates_then_compare(tiny_model_dir, tmp_path, capsys):
    data = require_shared_data("x-alpacaeval")
    runs = []
    for label in ("M0", "M1"):
        out = tmp_path / label
        code = main(["eval", "winrate", "--model", str(tiny_model_dir), "--prompts", str(data / "prompts"),
                     "--reference", str(data / "outputs" / "gpt-4-turbo-2024-04-09"), "--langs", "en,de",
                     "--judge", "length", "--limit", "4", "--max-new-tokens", "6", "--label", label,
                     "--output", str(out), "--no-progress"])
        assert code == 0
        runs.append(out)
    printed = capsys.readouterr().out
    assert "win rate · M1 vs gpt-4-turbo-2024-04-09 · judge length" in printed
    assert "matched by instruction" in printed
    generated = json.loads((runs[0] / "outputs" / "de.json").read_text(encoding="utf-8"))
    prompts = json.loads((data / "prompts" / "de.json").read_text(encoding="utf-8"))[:4]
    assert [g["instruction"] for g in generated] == [p["instruction"] for p in prompts]
    summary = pl.read_parquet(runs[0] / "summary.parquet")
    assert summary.filter(pl.col("lang") == "de")["n"][0] == 4
    # The noise answers are short: GPT-4-Turbo's longer answers win under the length judge.
    assert summary.filter(pl.col("lang") == "avg")["win_rate"][0] == 0.0

    assert main(["sql", str(runs[1]), "SELECT count(*) AS n FROM judgments", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ['"n"', "8"]
    assert main(["eval", "compare", *map(str, runs)]) == 0
    table = capsys.readouterr().out
    assert "M0" in table and "M1" in table and "0.00 ± 0.00" in table and "avg" in table
    assert main(["eval", "compare", str(tmp_path)]) == 2
    assert "not an eval results folder" in capsys.readouterr().err


def test_outputs_folders_take_lidr_references():
    """`lidr:assets/...` names a folder shipped with lidr wherever a path is asked for (issue 20)."""
    from lidr_data.eval.outputs import find_lang_file

    assert find_lang_file("lidr:assets/demo-prompts", "de", "prompts").name == "de.jsonl"


def test_a_malformed_run_json_is_a_one_line_error(tmp_path):
    pl.DataFrame({"lang": ["de"]}).write_parquet(tmp_path / "summary.parquet")
    (tmp_path / "run.json").write_text('{"eval": "winrate",\n "judge": }')
    with pytest.raises(LidrError) as err:
        read_run(tmp_path)
    assert str(err.value) == f"{tmp_path / 'run.json'}: malformed JSON (line 2, column 11: Expecting value)"
