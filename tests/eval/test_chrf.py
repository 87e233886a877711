"""The `chrf` judge (no model: chrF of each side against a gold answer): its scores are sacrebleu's, called here
directly; `lidr eval winrate --judge chrf` on the real X-AlpacaEval outputs equals a count made here; pairs without a
gold answer are `no_reference` (not ties, not failures) in win rates and in `lidr audit`; each side's off-target
rate in win rates."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import sacrebleu
from shared_data import require_shared_data
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.dataset.layout import read_manifest
from lidr_data.errors import LidrError
from lidr_data.eval.audit import AuditConfig, compare_audits, run_audit
from lidr_data.eval.judges import CHRF_TIE, ChrfJudge, Pair, load_judge
from lidr_data.eval.winrate import WinrateConfig, run_winrate

GPT4, GPT35 = "gpt-4-turbo-2024-04-09", "gpt-3.5-turbo-0125"


def chrf(text: str, gold: str) -> float:
    return sacrebleu.sentence_chrf(text, [gold]).score


def rows(folder: Path, lang: str) -> list[dict]:
    return json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))


def write(folder: Path, lang: str, data: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{lang}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_chrf_judge_scores_are_sacrebleus(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    gold = rows(outputs / GPT4, "de")[:6]
    other = rows(outputs / GPT35, "de")[:6]
    folder = tmp_path / "gold"
    write(folder, "de", gold + [dict(gold[0], instruction="Zweimal?", output="A"),
                                dict(gold[0], instruction="Zweimal?", output="B")])
    judge = load_judge("chrf", reference=str(folder))
    assert isinstance(judge, ChrfJudge) and not judge.positional
    # GPT-3.5's answer to the instruction against its answer to the next one
    pairs = [Pair(g["instruction"], "de", other[i]["output"], other[(i + 1) % 6]["output"]) for i, g in
             enumerate(gold)]
    pairs.append(Pair("  " + gold[0]["instruction"] + "\n", "de", other[0]["output"], other[0]["output"] + " "))
    pairs += [Pair("Nicht da?", "de", "x", "y"), Pair("Zweimal?", "de", "A", "B"),
              Pair(gold[0]["instruction"], "fr", "x", "y")]  # no row / two gold answers / no file for fr
    verdicts = judge.judge(pairs)
    for p, v in zip(pairs[:7], verdicts):
        g = next(r["output"] for r in gold if r["instruction"] == p.instruction.strip())
        a, b = chrf(p.first, g), chrf(p.second, g)
        assert v.method == "chrf" and v.first_reward == pytest.approx(a, abs=1e-9) and v.second_reward == pytest.approx(b)
        assert v.score == (0.5 if abs(a - b) <= CHRF_TIE else float(a > b))
    assert {v.score for v in verdicts[:6]} == {0.0, 1.0}  # both outcomes occur
    assert [(v.method, v.score, v.error) for v in verdicts[7:]] == [("no_reference", None, None)] * 3
    assert judge.gold("de", gold[2]["instruction"]) == gold[2]["output"] and judge.gold("de", "Zweimal?") is None
    assert judge.describe()["tie_tolerance"] == CHRF_TIE and "nc:6|nw:0" in judge.describe()["chrf_signature"]


def test_chrf_judge_arguments(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    with pytest.raises(LidrError, match="judge 'chrf' needs --judge-reference"):
        load_judge("chrf")
    with pytest.raises(LidrError, match="takes no --judge-model"):
        load_judge("chrf", "gpt-4o", reference=str(outputs / GPT4))
    with pytest.raises(LidrError, match="gold answers folder .*nope not found"):
        load_judge("chrf", reference=str(tmp_path / "nope"))
    with pytest.raises(LidrError, match="--judge-reference is for the chrf judge; judge 'length'"):
        load_judge("length", reference=str(outputs / GPT4))
    cfg = dict(output=tmp_path / "wr", candidate=str(outputs / GPT35), langs=("de",), judge="chrf")
    with pytest.raises(LidrError, match="is the --reference itself: the reference would score chrF 100"):
        run_winrate(WinrateConfig(reference=str(outputs / GPT4), judge_options={"reference": str(outputs / GPT4)},
                                  **cfg))
    write(tmp_path / "gold", "en", rows(outputs / GPT4, "en")[:2])
    with pytest.raises(LidrError, match=r"no gold answers \(--judge-reference\) file for language 'de'"):
        run_winrate(WinrateConfig(reference=str(outputs / GPT35), judge_options={"reference": str(tmp_path / "gold")},
                                  **cfg))


def test_chrf_win_rate_against_m0_equals_an_independent_count(tmp_path, capsys):
    """"M1" (GPT-3.5's answers, three German ones swapped for English ones) against "M0" (some identical, some cut,
    some another language's answer), judged by chrF against GPT-4-Turbo's answers, three of them left out."""
    outputs = require_shared_data("x-alpacaeval", "outputs")
    n = 30
    gold_dir, m0_dir, m1_dir = tmp_path / "gold", tmp_path / "M0", tmp_path / "M1"
    for lang in ("en", "de"):
        cand = rows(outputs / GPT35, lang)[:n]
        other = rows(outputs / GPT4, "es")[:n]
        ref = [dict(r, output=r["output"] if i % 3 == 0 else r["output"][: len(r["output"]) // 2] if i % 3 == 1
                    else other[i]["output"]) for i, r in enumerate(cand)]
        gold = rows(outputs / GPT4, lang)[:n]
        if lang == "de":
            cand = [dict(r, output=rows(outputs / GPT35, "en")[i]["output"]) if i in (5, 6, 7) else r
                    for i, r in enumerate(cand)]
            gold = [g for i, g in enumerate(gold) if i not in (1, 2, 4)]  # no gold answer for three prompts
        write(m1_dir, lang, cand)
        write(m0_dir, lang, ref)
        write(gold_dir, lang, gold)
    assert main(["eval", "winrate", "--candidate", str(m1_dir), "--reference", str(m0_dir), "--judge", "chrf",
                 "--judge-reference", str(gold_dir), "--langs", "en,de", "--label", "M1", "--output",
                 str(tmp_path / "wr"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    printed = {r["lang"]: r for r in json.loads(captured.out)}
    assert "de: 3 item(s) have no gold answer in gold" in " ".join(captured.err.split())
    summary = {r["lang"]: r for r in pl.read_parquet(tmp_path / "wr" / "summary.parquet").to_dicts()}
    assert printed["de"]["win_rate"] == summary["de"]["win_rate"] and printed["de"]["no_reference"] == 3
    for lang in ("en", "de"):
        cand, ref = rows(m1_dir, lang), rows(m0_dir, lang)
        gold = {g["instruction"]: g["output"] for g in rows(gold_dir, lang)}
        s, no_gold = [], 0
        for c, r in zip(cand, ref):
            if c["output"] == r["output"]:
                s.append(0.5)
            elif c["instruction"] not in gold:
                no_gold += 1
            else:
                a, b = chrf(c["output"], gold[c["instruction"]]), chrf(r["output"], gold[c["instruction"]])
                s.append(0.5 if a == b else float(a > b))
        mean = sum(s) / len(s)
        se = math.sqrt(sum((x - mean) ** 2 for x in s) / (len(s) - 1) / len(s))
        got = summary[lang]
        assert got["n"] == n and got["scored"] == len(s) == n - no_gold and got["no_reference"] == no_gold
        assert got["win_rate"] == pytest.approx(100 * mean) and got["se"] == pytest.approx(100 * se)
        assert 0 < got["wins"] and 0 < got["losses"] and got["ties"] >= got["identical"] == sum(
            c["output"] == r["output"] for c, r in zip(cand, ref)) > 0
        assert got["errors"] == got["malformed"] == 0
    assert summary["de"]["no_reference"] == 3 and summary["en"]["no_reference"] == 0
    items = pl.read_parquet(tmp_path / "wr" / "items.parquet")
    assert items.filter(pl.col("outcome") == "no_reference")["score"].is_null().all()
    de = items.filter(pl.col("lang") == "de")
    # each side's chrF against the gold is in the items; the summary reports their means
    scored = de.filter(pl.col("candidate_chrf").is_not_null())
    assert scored.height == n - 3
    gold_de = {g["instruction"]: g["output"] for g in rows(gold_dir, "de")}
    for row in scored.head(5).iter_rows(named=True):
        assert row["candidate_chrf"] == pytest.approx(chrf(row["candidate_output"], gold_de[row["instruction"]]))
    assert summary["de"]["candidate_chrf"] == pytest.approx(scored["candidate_chrf"].mean())
    # off-target: the three English answers in the German file, and the rate is the share of flagged items
    flagged = set(de.filter(pl.col("candidate_off_target"))["key"])
    assert {"6", "7", "8"} <= flagged  # ids 6-8 are rows 5-7
    assert de.filter(pl.col("key").is_in(["6", "7", "8"]))["candidate_lang"].to_list() == ["en"] * 3
    assert summary["de"]["off_target_rate"] == pytest.approx(len(flagged) / n)
    assert summary["de"]["reference_off_target_rate"] >= 10 / n  # M0's Spanish answers in the German file
    assert summary["en"]["off_target_rate"] == pytest.approx(items.filter(pl.col("lang") == "en")[
        "candidate_off_target"].mean())
    assert summary["avg"]["no_reference"] == 3


def test_winrate_reports_off_target_for_the_length_judge_too(tmp_path):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    summary, _ = run_winrate(WinrateConfig(output=tmp_path / "wr", reference=str(outputs / GPT4),
                                           candidate=str(outputs / GPT35), langs=("ru",), judge="length", limit=40),
                             progress=False)
    ru = summary.row(0, named=True)
    items = pl.read_parquet(tmp_path / "wr" / "items.parquet")
    assert ru["off_target_rate"] == pytest.approx(items["candidate_off_target"].mean())
    assert ru["off_target_rate"] < 0.1 and ru["reference_off_target_rate"] < 0.1  # real Russian answers
    assert "candidate_chrf" not in summary.columns and ru["no_reference"] == 0


@pytest.fixture
def xalpaca_version(tmp_path: Path) -> Path:
    """A version whose prompts are real X-AlpacaEval instructions (en, de, fr) and whose sides are real answers."""
    outputs = require_shared_data("x-alpacaeval", "outputs")
    texts = {lang: {"prompt": [r["instruction"] for r in rows(outputs / GPT4, lang)[:5]],
                    "answer": [r["output"] for r in rows(outputs / GPT35, lang)[:6]]} for lang in ("en", "de", "fr")}
    run = make_run(tmp_path / "runs" / "xa" / "iter-1", n_prompts=5, langs=("de", "fr"), texts=texts)
    return materialize(run, tmp_path / "store", progress=False)


def published(version: Path) -> list[dict]:
    out = []
    for rel in read_manifest(version)["configs"]["all"]:
        for r in pq.read_table(version / rel).to_pylist():
            out.append({"pair_id": r["pair_id"], "lang": r["lang"], "prompt": r["prompt"][-1]["content"],
                        "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]})
    return out


def test_audit_with_and_without_gold_answers(xalpaca_version: Path, tmp_path: Path, capsys):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    gold_dir = tmp_path / "gold"
    write(gold_dir, "en", rows(outputs / GPT4, "en")[:5])
    write(gold_dir, "de", rows(outputs / GPT4, "de")[1:5])  # none for the first German prompt; no French file
    assert main(["audit", str(xalpaca_version), "--judge", "chrf", "--judge-reference", str(gold_dir), "--sample",
                 "100", "--out", str(tmp_path / "a1"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    pairs = pl.read_parquet(tmp_path / "a1" / "pairs.parquet")
    expected = {}
    gold = {(lang, g["instruction"]): g["output"] for lang in ("en", "de") for g in rows(gold_dir, lang)}
    for p in published(xalpaca_version):
        g = gold.get((p["lang"], p["prompt"]))
        if p["chosen"] == p["rejected"]:
            expected[p["pair_id"]] = "tie"
        elif g is None:
            expected[p["pair_id"]] = "no_reference"
        else:
            a, b = chrf(p["chosen"], g), chrf(p["rejected"], g)
            expected[p["pair_id"]] = "tie" if a == b else "chosen" if a > b else "rejected"
    assert dict(zip(pairs["pair_id"], pairs["outcome"])) == expected
    counts = {o: list(expected.values()).count(o) for o in ("chosen", "tie", "rejected", "no_reference")}
    assert counts["chosen"] and counts["rejected"] and counts["no_reference"]
    info = json.loads((tmp_path / "a1" / "audit.json").read_text())
    assert info["counts"]["no_reference"] == counts["no_reference"] and info["counts"]["failed"] == 0
    assert info["counts"]["judged"] == counts["chosen"] + counts["tie"] + counts["rejected"]
    assert info["judge"] == "chrf" and info["judge_reference"] == str(gold_dir)
    summary = {(r["lang"], r["direction"]): r for r in pl.read_parquet(tmp_path / "a1" / "summary.parquet").to_dicts()}
    fr = summary[("fr", "from_dominant")]  # no French gold answers at all: nothing judged, nothing failed
    assert fr["n"] == 0 and fr["no_reference"] == fr["sampled"] > 0 and fr["validity"] is None and fr["failed"] == 0
    printed = {(r["lang"], r["direction"]): r for r in json.loads(captured.out)}
    assert printed[("fr", "from_dominant")]["no_reference"] == fr["no_reference"]
    assert f"{counts['no_reference']} of {len(expected)} pair(s) have no gold answer" in " ".join(captured.err.split())

    # Without any gold answer for its prompts (only Spanish ones): every pair is "no reference", the run succeeds.
    write(tmp_path / "es-gold", "es", rows(outputs / GPT4, "es")[:5])
    result = run_audit(AuditConfig(ref=str(xalpaca_version), judge="chrf", sample=100, out=tmp_path / "a2",
                                   judge_options={"reference": str(tmp_path / "es-gold")}))
    identical = int((result.pairs["method"] == "identical").sum())
    assert result.info["counts"]["no_reference"] == len(expected) - identical
    assert result.info["counts"]["judged"] == identical and result.info["counts"]["failed"] == 0
    # `lidr audit compare` counts only the pairs both audits judged
    run_audit(AuditConfig(ref=str(xalpaca_version), judge="length", sample=100, out=tmp_path / "a-length"))
    table, _, _ = compare_audits(tmp_path / "a1", tmp_path / "a-length")
    assert table.filter(pl.col("lang") == "all")["n"][0] == info["counts"]["judged"]
    # the chrf judge needs its gold answers; another gold folder does not silently replace an audit
    with pytest.raises(LidrError, match="needs --judge-reference"):
        run_audit(AuditConfig(ref=str(xalpaca_version), judge="chrf", out=tmp_path / "a3"))
    shutil.copytree(gold_dir, tmp_path / "gold2")
    with pytest.raises(LidrError, match="holds an audit by another judge model or gold"):
        run_audit(AuditConfig(ref=str(xalpaca_version), judge="chrf", sample=100, out=tmp_path / "a1",
                              judge_options={"reference": str(tmp_path / "gold2")}))


def test_chrf_judge_names_its_extra_in_a_core_install(tmp_path: Path):
    from test_extras import lidr_core

    for name in ("c", "r", "g"):
        write(tmp_path / name, "de", [{"id": 1, "instruction": "Hallo?", "output": f"Antwort {name}."}])
    proc, attempts = lidr_core(tmp_path, "eval", "winrate", "--candidate", str(tmp_path / "c"), "--reference",
                               str(tmp_path / "r"), "--judge", "chrf", "--judge-reference", str(tmp_path / "g"),
                               "--langs", "de", "--output", str(tmp_path / "wr"))
    assert proc.returncode == 2 and attempts == ["sacrebleu"]
    assert proc.stderr.strip() == ("error: the chrf judge needs the optional extra: pip install 'lidr-data[eval]' "
                                   "(sacrebleu is not installed)")
