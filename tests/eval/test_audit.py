"""`lidr audit`: a judge on a seeded stratified sample of a real materialized version (DuckDB, Parquet), the
`openai` judge against a real loopback HTTP server that counts requests, the reward-model judge on a tiny
sequence-classification model built offline; the audit folder beside the version, its filter file, and
`lidr audit compare`."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.dataset.store import parse_reference
from lidr_data.errors import LidrError
from lidr_data.eval.audit import AuditConfig, compare_audits, outcome, run_audit
from lidr_data.eval.stats import cohen_kappa, wilson_interval
from tests.servers.openai_server import OpenAIServer

ANSWER = re.compile(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]\n(.*?)\n\nReply with", re.S)


@pytest.fixture
def version(tmp_path: Path) -> Path:
    return materialize(make_run(tmp_path / "runs" / "demo-lidr" / "iter-1", n_prompts=12), tmp_path / "store",
                       progress=False)


def published_pairs(version: Path) -> list[dict]:
    """Every published pair with its sides' texts, read with pyarrow (not the audit's DuckDB path)."""
    rows = []
    for rel in read_manifest(version)["configs"]["all"]:
        for r in pq.read_table(version / rel).to_pylist():
            rows.append({"pair_id": r["pair_id"], "lang": r["lang"], "direction": r["direction"],
                         "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]})
    return rows


def expected_sample(version: Path, n: int, seed: int) -> dict[tuple[str, str], list[dict]]:
    """The sample as documented: per (lang, direction), the n smallest sha256("<seed>:<pair_id>")."""
    strata: dict[tuple[str, str], list[dict]] = {}
    for r in published_pairs(version):
        strata.setdefault((r["lang"], r["direction"]), []).append(r)
    key = lambda r: hashlib.sha256(f"{seed}:{r['pair_id']}".encode()).hexdigest()  # noqa: E731
    return {k: sorted(v, key=key)[:n] for k, v in strata.items()}


def test_length_audit_shares_equal_an_independent_count(version: Path):
    result = run_audit(AuditConfig(ref=str(version), judge="length", sample=5, seed=3))
    expected = expected_sample(version, 5, 3)
    summary = {(r["lang"], r["direction"]): r for r in result.summary.to_dicts()}
    assert set(summary) == set(expected)
    for stratum, rows in expected.items():
        wins = Counter("chosen" if len(r["chosen"]) > len(r["rejected"]) else
                       "rejected" if len(r["chosen"]) < len(r["rejected"]) else "tie" for r in rows)
        s = summary[stratum]
        n = len(rows)
        assert (s["n"], s["chosen_wins"], s["ties"], s["rejected_wins"]) == \
            (n, wins["chosen"], wins["tie"], wins["rejected"]), stratum
        assert s["validity"] == pytest.approx(wins["chosen"] / n)
        assert (s["wilson_low"], s["wilson_high"]) == pytest.approx(wilson_interval(wins["chosen"], n))
        judged = result.pairs.filter((pl.col("lang") == stratum[0]) & (pl.col("direction") == stratum[1]))
        assert sorted(judged["pair_id"]) == sorted(r["pair_id"] for r in rows)
    assert result.info["counts"]["judged"] == sum(len(v) for v in expected.values())
    assert result.folder == version.parent / "audits" / "iter-1" / "length-5-3"


def test_wilson_interval_and_kappa_known_values():
    low, high = wilson_interval(8, 10)  # the textbook example: 0.490 .. 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) == (None, None)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    # p_o = 3/4, p_e = 2/4*1/4 + 1/4*2/4 + 1/4*1/4 = 5/16: kappa = (12/16 - 5/16) / (11/16) = 7/11
    a = ["chosen", "chosen", "rejected", "tie"]
    b = ["chosen", "rejected", "rejected", "tie"]
    assert cohen_kappa(a, b) == pytest.approx(7 / 11)
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa([], []) is None


def test_outcome_needs_both_orders_to_agree():
    assert outcome(0.9, 0.8) == "chosen" and outcome(0.1, 0.3) == "rejected"
    assert outcome(0.9, 0.1) == "tie" and outcome(0.5, 0.9) == "tie"  # orders disagree / a tie in one order
    assert outcome(None, 0.9) is None


def test_sample_is_stratified_and_reproducible_from_its_seed(version: Path):
    def ids(seed: int, sample: int = 4, **kw) -> dict:
        r = run_audit(AuditConfig(ref=str(version), judge="length", sample=sample, seed=seed, **kw))
        return {k: sorted(g["pair_id"]) for k, g in r.pairs.group_by(["lang", "direction"])}

    first, again, other = ids(1), ids(1), ids(2)
    assert first == again
    assert first != other
    available = Counter((r["lang"], r["direction"]) for r in published_pairs(version))
    assert {k: len(v) for k, v in first.items()} == {k: min(4, n) for k, n in available.items()}
    everything = ids(1, sample=1000)  # a sample larger than a stratum takes all of it
    assert {k: len(v) for k, v in everything.items()} == dict(available)
    only_de = ids(1, langs=("de",))
    assert list(only_de) == [("de", "from_dominant")] and only_de[("de", "from_dominant")] == \
        first[("de", "from_dominant")]  # other strata do not change a stratum's sample


def longer_wins(body: dict) -> str:
    first, second = ANSWER.search(body["messages"][-1]["content"]).groups()
    return "A" if len(first) > len(second) else "B"


def test_openai_audit_rerun_makes_no_judge_call(version: Path):
    with OpenAIServer(handler=longer_wins, model_name="judge-1") as server:
        cfg = AuditConfig(ref=str(version), judge="openai", judge_model="judge-1", sample=3, seed=0,
                          judge_options={"base_url": server.base_url, "backoff": 0.01, "concurrency": 4})
        first = run_audit(cfg)
        asked = server.chat_count
        non_identical = int((first.pairs["method"] != "identical").sum())
        assert asked == 2 * non_identical > 0  # both orders of every pair
        assert first.info["judge_calls"] == asked and first.info["cache_hits"] == 0
        again = run_audit(cfg)
        assert server.chat_count == asked  # a rerun makes no judge call
        assert again.info["judge_calls"] == 0 and again.info["cache_hits"] == asked
    assert again.pairs.select("pair_id", "outcome").equals(first.pairs.select("pair_id", "outcome"))
    assert Path(first.info["cache"]) == version.parent / "audits" / "iter-1" / "cache"
    assert first.info["judge_model"] == "judge-1" and first.info["prompt_version"]
    # the letter judge prefers the longer side: the same outcomes as the length judge on the same sample
    length = run_audit(AuditConfig(ref=str(version), judge="length", sample=3, seed=0))
    assert dict(zip(first.pairs["pair_id"], first.pairs["outcome"])) == \
        dict(zip(length.pairs["pair_id"], length.pairs["outcome"]))
    keys = first.pairs.filter(pl.col("method") != "identical")
    assert keys["chosen_first_key"].is_not_null().all() and keys["rejected_first_key"].is_not_null().all()


def test_a_position_biased_judge_gives_ties(version: Path):
    with OpenAIServer(handler=lambda body: "A", model_name="judge-a") as server:
        result = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="judge-a", sample=3,
                                       judge_options={"base_url": server.base_url, "backoff": 0.01}))
    assert set(result.pairs["outcome"]) == {"tie"}
    assert result.summary["chosen_wins"].sum() == 0 and result.summary["rejected_wins"].sum() == 0


def test_failed_judgments_are_counted_not_scored(version: Path):
    with OpenAIServer(handler=lambda body: "I cannot decide.", model_name="judge-m") as server:
        result = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="judge-m", sample=2,
                                       judge_options={"base_url": server.base_url, "backoff": 0.01}))
    judged = result.pairs.filter(pl.col("method") != "identical")
    assert judged["outcome"].is_null().all() and judged.height > 0
    assert result.info["counts"]["failed"] == judged.height
    assert int(result.summary["failed"].sum()) == judged.height
    assert int(result.summary["n"].sum()) == result.pairs.height - judged.height


def test_write_filter_lists_the_reversed_pairs(version: Path):
    result = run_audit(AuditConfig(ref=str(version), judge="length", sample=6, seed=7, write_filter=True))
    data = json.loads(result.filter_path.read_text())
    manifest = read_manifest(version)
    assert data["kind"] == "lidr-pair-filter" and data["reason"] == "judge_reversed"
    assert data["audit"] == {"path": "demo-lidr/audits/iter-1/length-6-7", "version": "iter-1",
                             "content_id": content_id(manifest), "judge": "length", "judge_model": None,
                             "sample": 6, "seed": 7}
    reversed_ids = sorted(r["pair_id"] for r in result.pairs.to_dicts() if r["outcome"] == "rejected")
    assert data["pair_ids"] == reversed_ids and reversed_ids
    # independently: the sampled pairs whose chosen side is shorter
    expected = sorted(r["pair_id"] for rows in expected_sample(version, 6, 7).values() for r in rows
                      if len(r["chosen"]) < len(r["rejected"]))
    assert data["pair_ids"] == expected
    assert not [p for p in result.folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_the_audited_version_still_verifies_and_lists_alone(version: Path, capsys):
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    assert main(["audit", str(version), "--judge", "length", "--sample", "3", "--no-progress"]) == 0
    assert {p: p.read_bytes() for p in version.rglob("*") if p.is_file()} == before
    assert main(["verify", str(version)]) == 0
    capsys.readouterr()
    assert main(["versions", str(version.parent), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [Path(r["reference"]).name for r in listed] == ["iter-1"]


def test_audits_is_not_a_version_name(version: Path, tmp_path: Path):
    with pytest.raises(LidrError, match="invalid version name 'audits'"):
        parse_reference(f"{version.parent}@audits")
    with pytest.raises(LidrError, match="invalid version name 'audits'"):
        materialize(make_run(tmp_path / "runs2" / "demo-lidr" / "iter-1", n_prompts=2), tmp_path / "store2",
                    version="audits", progress=False)


def test_cli_json_output_and_errors(version: Path, tmp_path: Path, capsys):
    assert main(["audit", str(version), "--judge", "length", "--sample", "2", "--langs", "de,fr", "--format", "json",
                 "--write-filter", "--no-progress"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert {r["lang"] for r in rows} == {"de", "fr"} and all(r["n"] == 2 for r in rows)
    assert "judge_reversed.json" in captured.err
    for argv, message in [
        (["--sample", "0"], "--sample 0: must be at least 1"),
        (["--langs", "xx"], "no pairs in language xx"),
        (["--judge", "openai"], "needs --judge-model"),
    ]:
        assert main(["audit", str(version), "--judge", "length", *argv]) == 2
        assert message in capsys.readouterr().err
    run = tmp_path / "runs" / "demo-lidr" / "iter-1"  # a run folder: Parquet, no version
    assert main(["audit", str(run), "--judge", "length"]) == 2
    assert "not a dataset version" in capsys.readouterr().err
    assert main(["audit", "compare", str(version)]) == 2
    assert "takes two audit folders" in capsys.readouterr().err


def test_another_judge_model_does_not_overwrite_an_audit(version: Path):
    with OpenAIServer(handler=longer_wins, model_name="m") as server:
        opts = {"base_url": server.base_url, "backoff": 0.01}
        run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="m1", sample=2, judge_options=opts))
        with pytest.raises(LidrError, match="another judge model"):
            run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="m2", sample=2, judge_options=opts))
        forced = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="m2", sample=2,
                                       judge_options=opts, force=True))
    assert forced.info["judge_model"] == "m2"


def test_compare_reports_kappa_per_language(version: Path, capsys):
    length = run_audit(AuditConfig(ref=str(version), judge="length", sample=5))
    with OpenAIServer(handler=lambda body: "A" if "(p-1" in body["messages"][-1]["content"].split("[Answer B]")[0]
                      else "B", model_name="j") as server:
        other = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="j", sample=5,
                                      judge_options={"base_url": server.base_url, "backoff": 0.01}))
    table, _, _ = compare_audits(length.folder, other.folder)
    a = dict(zip(length.pairs["pair_id"], length.pairs["outcome"]))
    b = dict(zip(other.pairs["pair_id"], other.pairs["outcome"]))
    lang = dict(zip(length.pairs["pair_id"], length.pairs["lang"]))
    for row in table.to_dicts():
        ids = [p for p in a if row["lang"] in ("all", lang[p])]
        assert row["n"] == len(ids)
        assert row["kappa"] == pytest.approx(cohen_kappa([a[p] for p in ids], [b[p] for p in ids])) \
            if row["kappa"] is not None else cohen_kappa([a[p] for p in ids], [b[p] for p in ids]) is None
    assert main(["audit", "compare", str(length.folder), str(other.folder), "--format", "json"]) == 0
    assert [r["lang"] for r in json.loads(capsys.readouterr().out)][-1] == "all"


def test_compare_refuses_audits_of_different_versions(version: Path, tmp_path: Path):
    other_version = materialize(make_run(tmp_path / "o" / "runs" / "demo-lidr" / "iter-1", n_prompts=5, seed=9),
                                tmp_path / "o" / "store", progress=False)
    a = run_audit(AuditConfig(ref=str(version), judge="length", sample=2))
    b = run_audit(AuditConfig(ref=str(other_version), judge="length", sample=2))
    with pytest.raises(LidrError, match="audit different versions"):
        compare_audits(a.folder, b.folder)


def test_sql_view_and_inspect_section(version: Path, capsys):
    from lidr_data.inspect import build_report
    from lidr_data.sql import query

    assert "audit" not in {r["name"] for r in query(str(version), "SHOW TABLES").to_pylist()}
    result = run_audit(AuditConfig(ref=str(version), judge="length", sample=4))
    got = query(str(version), "SELECT audit, outcome, count(*) AS n FROM audit GROUP BY ALL ORDER BY ALL").to_pylist()
    counts = Counter(result.pairs["outcome"].to_list())
    assert {r["outcome"]: r["n"] for r in got} == dict(counts) and {r["audit"] for r in got} == {"length-4-0"}
    report = build_report(str(version))
    assert {(r["lang"], r["direction"], r["chosen_wins"]) for r in report.validity} == \
        {(r["lang"], r["direction"], r["chosen_wins"]) for r in result.summary.to_dicts()}
    assert main(["inspect", str(version)]) == 0
    assert "Pair validity" in capsys.readouterr().out
    from lidr_data.inspect_page import render_html

    page = render_html(report)
    assert "Pair validity (judge audits)" in page and "length-4-0" in page


def test_local_publish_with_audit_adds_a_card_section_only(version: Path, tmp_path: Path):
    from lidr_data.dataset.layout import verify
    from lidr_data.dataset.publish import publish

    with pytest.raises(LidrError, match="no audit of this version"):
        publish(str(version), str(tmp_path / "dest"), with_audit="latest")
    run_audit(AuditConfig(ref=str(version), judge="length", sample=4))
    dest = Path(publish(str(version), str(tmp_path / "dest"), with_audit="latest"))
    card = (dest / "README.md").read_text()
    assert "## Pair validity (judge audit)" in card and "| de | from_dominant | 4 |" in card
    src, out = read_manifest(version), read_manifest(dest)
    assert {k: v for k, v in out["files"].items() if k != "README.md"} == \
        {k: v for k, v in src["files"].items() if k != "README.md"}
    assert verify(dest).ok


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model_dir, tmp_path_factory):
    """A random one-label LlamaForSequenceClassification on the tiny chat model's config and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_reward_model_audit_on_a_tiny_model(version: Path, tiny_reward_model: Path):
    result = run_audit(AuditConfig(ref=str(version), judge="reward-model", judge_model=str(tiny_reward_model),
                                   sample=3))
    assert result.info["judge"] == "reward-model" and result.info["judge_model"] == str(tiny_reward_model)
    judged = result.pairs.filter(pl.col("method") != "identical")
    assert judged["chosen_reward"].is_not_null().all()
    for r in judged.to_dicts():  # a reward model scores each side alone: both orders agree with the rewards
        want = "chosen" if r["chosen_reward"] > r["rejected_reward"] else \
            "rejected" if r["chosen_reward"] < r["rejected_reward"] else "tie"
        assert r["outcome"] == want
    assert len({round(r, 6) for r in judged["chosen_reward"]}) > 1  # the model does discriminate


def test_judge_errors_are_counted_and_a_rerun_retries_them(version: Path):
    from tests.servers.openai_server import Reply

    with OpenAIServer(handler=longer_wins, model_name="j", always=Reply(503)) as server:
        failed = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="j", sample=2,
                                       judge_options={"base_url": server.base_url, "backoff": 0.01,
                                                      "max_retries": 1}))
    judged = failed.pairs.filter(pl.col("method") != "identical")
    assert failed.info["counts"]["errors"] == judged.height > 0 and judged["outcome"].is_null().all()
    with OpenAIServer(handler=longer_wins, model_name="j") as server:
        again = run_audit(AuditConfig(ref=str(version), judge="openai", judge_model="j", sample=2,
                                      judge_options={"base_url": server.base_url, "backoff": 0.01}))
        assert server.chat_count == 2 * judged.height  # errors were not cached: asked again
    assert again.info["counts"]["errors"] == 0 and again.pairs["outcome"].is_not_null().all()


def test_a_failing_run_leaves_no_half_audit_and_keeps_the_previous_one(version: Path):
    from lidr_data.eval.judges import LengthJudge

    first = run_audit(AuditConfig(ref=str(version), judge="length", sample=3))
    before = {p.name: p.read_bytes() for p in first.folder.iterdir()}

    class Broken(LengthJudge):
        def judge(self, pairs, progress=None):
            raise KeyboardInterrupt  # a kill in the middle of judging

    with pytest.raises(KeyboardInterrupt):
        run_audit(AuditConfig(ref=str(version), judge="length", sample=3), judge=Broken())
    assert {p.name: p.read_bytes() for p in first.folder.iterdir()} == before
    with pytest.raises(KeyboardInterrupt):
        run_audit(AuditConfig(ref=str(version), judge="length", sample=4), judge=Broken())
    assert not (first.folder.parent / "length-4-0").exists()
    assert not [p for p in first.folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_write_that_fails_midway_leaves_nothing(version: Path, monkeypatch):
    import lidr_data.eval.audit as audit_module

    def disk_full(obj, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_module, "write_json", disk_full)  # after pairs.parquet and summary.parquet
    with pytest.raises(OSError):
        run_audit(AuditConfig(ref=str(version), judge="length", sample=3))
    root = version.parent / "audits" / "iter-1"
    assert not [p for p in root.iterdir() if p.name != ".lock"]
