"""Judges: `openai` against a real loopback HTTP server with scripted judgments, `reward-model` with a tiny
sequence-classification model built offline, and the verdict parsers."""

from __future__ import annotations

import json
import math
import re
import socket

import polars as pl
import pytest

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.eval.judges import (
    Pair,
    RewardModelJudge,
    load_chat_judge,
    logprob_preference,
    parse_letter,
)
from lidr_data.eval.winrate import WinrateConfig, run_winrate
from lidr_data.generation.openai_backend import logprobs_from_openai
from tests.servers.openai_server import OpenAIServer, Reply, completion_response

ANSWER = re.compile(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]\n(.*?)\n\nReply with", re.S)


def scripted_judge(body: dict) -> dict:
    """Prefers the answer containing GOOD. Instructions steer the reply: NOLOGPROBS -> a bare letter,
    MALFORMED -> prose, otherwise the letter with top_logprobs 0.9 / 0.1."""
    user = body["messages"][-1]["content"]
    first, second = ANSWER.search(user).groups()
    letter = "A" if "GOOD" in first else "B"
    other = "B" if letter == "A" else "A"
    if "MALFORMED" in user:
        return completion_response(body["model"], "Both answers have merits.", "stop", 4)
    reply = completion_response(body["model"], letter, "stop", 1)
    if "NOLOGPROBS" not in user and body.get("logprobs"):
        reply["choices"][0]["logprobs"] = {"content": [{"token": letter, "logprob": math.log(0.9), "top_logprobs": [
            {"token": letter, "logprob": math.log(0.9)}, {"token": f" {other}", "logprob": math.log(0.1)},
            {"token": "The", "logprob": math.log(0.001)}]}]}
    return reply


ITEMS = [  # (id, instruction, candidate, reference)
    (1, "Erkläre Photosynthese.", "GOOD: Pflanzen wandeln Licht in Energie um.", "weiß nicht"),
    (2, "NOLOGPROBS Nenne eine Farbe.", "GOOD: Blau.", "Tisch"),
    (3, "MALFORMED Was ist 2+2?", "GOOD: 4", "5"),
    (4, "Sag Hallo.", "Hallo!", "Hallo!"),  # identical: a tie without a judge call
    (5, "Wie heißt die Hauptstadt?", "Paris", "GOOD: Berlin ist die Hauptstadt Deutschlands."),
    (6, "Nur im Kandidaten.", "GOOD", None),
    (7, "Nur in der Referenz.", None, "GOOD"),
]
EXPECTED_SCORES = {"1": 0.9, "2": 1.0, "4": 0.5, "5": 0.1}  # item 3 is malformed: counted, not scored


@pytest.fixture
def outputs(tmp_path):
    for side, col in (("cand", 2), ("ref", 3)):
        rows = [{"id": it[0], "instruction": it[1], "output": it[col], "generator": side} for it in ITEMS
                if it[col] is not None]
        (tmp_path / side).mkdir()
        (tmp_path / side / "de.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def run(outputs, server, both_orders=False, **options):
    cfg = WinrateConfig(output=outputs / "wr", reference=str(outputs / "ref"), candidate=str(outputs / "cand"),
                        langs=("de",), judge="openai", judge_model="judge-1", both_orders=both_orders,
                        judge_options={"base_url": server.base_url, "backoff": 0.01, **options})
    return run_winrate(cfg, progress=False)


def test_openai_judge_scores_logprobs_letters_and_malformed(outputs):
    with OpenAIServer(handler=scripted_judge, model_name="judge-1") as server:
        summary, info = run(outputs, server, concurrency=4)
        assert server.chat_count == 4  # items 1, 2, 3, 5; the identical pair is never sent
        bodies = [r["body"] for r in server.received if r["path"] == "/v1/chat/completions"]  # not GET /models
        assert all(b["model"] == "judge-1" and b["logprobs"] and b["temperature"] == 0 for b in bodies)
        prompt = bodies[0]["messages"][-1]["content"]
        assert "(German)" in prompt and "language of the instruction" in prompt
        de = summary.row(0, named=True)
        assert de["win_rate"] == pytest.approx(100 * sum(EXPECTED_SCORES.values()) / 4)
        assert (de["wins"], de["ties"], de["losses"], de["malformed"], de["errors"], de["identical"]) == \
            (2, 1, 1, 1, 0, 1)
        assert de["unmatched_candidate"] == 1 and de["unmatched_reference"] == 1
        assert de["judge_calls"] == 4 and de["malformed_calls"] == 1
        items = pl.read_parquet(outputs / "wr" / "items.parquet")
        scores = dict(zip(items["key"], items["score"]))
        assert scores.pop("3") is None and scores == pytest.approx(EXPECTED_SCORES)
        judgments = pl.read_parquet(outputs / "wr" / "judgments.parquet")
        assert sorted(judgments["method"]) == ["logprobs", "logprobs", "malformed", "parsed"]
        # The order recorded is the order the server saw.
        seen = {}
        for body in bodies:
            first, _ = ANSWER.search(body["messages"][-1]["content"]).groups()
            key = next(str(it[0]) for it in ITEMS if first in (it[2], it[3]))
            seen[key] = "candidate_first" if any(first == it[2] for it in ITEMS if str(it[0]) == key) \
                else "reference_first"
        assert dict(zip(judgments["key"], judgments["order"])) == seen
        assert any("1 malformed" in note for note in info["notes"])

        # A rerun is served from the judgment cache: no new request.
        summary2, _ = run(outputs, server, concurrency=4)
        assert server.chat_count == 4
        assert summary2.row(0, named=True)["win_rate"] == de["win_rate"]
        assert pl.read_parquet(outputs / "wr" / "judgments.parquet")["cached"].all()


def test_openai_judge_both_orders(outputs):
    with OpenAIServer(handler=scripted_judge, model_name="judge-1") as server:
        summary, _ = run(outputs, server, both_orders=True)
        assert server.chat_count == 8
        judgments = pl.read_parquet(outputs / "wr" / "judgments.parquet")
        assert sorted(judgments["order"].unique()) == ["candidate_first", "reference_first"]
        assert judgments.group_by("key").len()["len"].to_list() == [2, 2, 2, 2]
        items = pl.read_parquet(outputs / "wr" / "items.parquet")
        scores = dict(zip(items["key"], items["score"]))
        assert scores.pop("3") is None and scores == pytest.approx(EXPECTED_SCORES)


def test_openai_judge_retries_then_reports_failures_without_caching(outputs):
    with OpenAIServer(handler=scripted_judge, model_name="judge-1", script=[Reply(500), Reply(429)]) as server:
        summary, _ = run(outputs, server, concurrency=1)
        assert server.chat_count == 6  # two scripted failures were retried
        assert summary.row(0, named=True)["errors"] == 0
    with OpenAIServer(handler=scripted_judge, model_name="judge-1", always=Reply(503)) as server:
        import shutil

        shutil.rmtree(outputs / "wr")
        summary, info = run(outputs, server, max_retries=1)
        de = summary.row(0, named=True)
        assert de["errors"] == 4 and de["scored"] == 1 and de["win_rate"] == 50.0  # only the identical pair
        assert any("rerun to retry" in note for note in info["notes"])
    with OpenAIServer(handler=scripted_judge, model_name="judge-1") as server:
        summary, _ = run(outputs, server)  # failures were not cached: the rerun asks again and succeeds
        assert server.chat_count == 4 and summary.row(0, named=True)["errors"] == 0


def test_endpoint_without_logprobs_falls_back_to_the_letter(outputs):
    def strict(body):
        return scripted_judge(body)

    with OpenAIServer(handler=strict, model_name="judge-1",
                      script=[Reply(400, body={"error": {"message": "logprobs are not supported"}})]) as server:
        summary, _ = run(outputs, server, concurrency=1)
        assert not server.received[-1]["body"].get("logprobs")
        judgments = pl.read_parquet(outputs / "wr" / "judgments.parquet")
        assert set(judgments["method"]) <= {"parsed", "malformed"}
        assert summary.row(0, named=True)["win_rate"] == pytest.approx(100 * (1 + 1 + 0.5 + 0) / 4)


def test_bad_credentials_and_unreachable_judge_are_clear_errors(outputs, capsys, monkeypatch):
    with OpenAIServer(handler=scripted_judge, model_name="judge-1", api_key="sk-right") as server:
        monkeypatch.setenv("LIDR_TEST_JUDGE_KEY", "sk-wrong-secret")
        with pytest.raises(LidrError, match=r"rejected the request \(HTTP 401\)") as err:
            run(outputs, server, api_key_env="LIDR_TEST_JUDGE_KEY")
        assert "sk-wrong-secret" not in str(err.value)
        monkeypatch.setenv("LIDR_TEST_JUDGE_KEY", "sk-right")
        summary, _ = run(outputs, server, api_key_env="LIDR_TEST_JUDGE_KEY")
        assert summary.row(0, named=True)["scored"] == 4
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["eval", "winrate", "--reference", str(outputs / "ref"), "--candidate", str(outputs / "cand"),
                 "--langs", "de", "--judge", "openai", "--judge-model", "judge-1", "--judge-base-url",
                 f"http://127.0.0.1:{port}/v1", "--output", str(outputs / "wr2"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"judge endpoint http://127.0.0.1:{port}/v1 is unreachable" in err and "Traceback" not in err


def test_verdict_parsers():
    assert [parse_letter(t) for t in ["A", " b", "**A**", "Answer B.", "(A)", "A or B", "Both", ""]] == \
        [1.0, 0.0, 1.0, 0.0, 1.0, None, None, None]
    lp = {"content": [{"token": "\n", "top_logprobs": []}, {"token": "B", "top_logprobs": [
        {"token": "B", "logprob": math.log(0.6)}, {"token": "A", "logprob": math.log(0.2)},
        {"token": " A", "logprob": math.log(0.1)}, {"token": "C", "logprob": math.log(0.1)}]}]}
    # The openai backend reads the endpoint's logprobs object into the Completion the judge parses.
    assert logprob_preference(logprobs_from_openai(lp)) == pytest.approx(0.3 / 0.9)
    assert logprob_preference(None) is None and logprob_preference(logprobs_from_openai({"content": []})) is None


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model_dir, tmp_path_factory):
    """A random one-label LlamaForSequenceClassification sharing the tiny chat model's config and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    out = tmp_path_factory.mktemp("tiny-rm")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
def test_reward_model_judge(tiny_reward_model, outputs):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge = RewardModelJudge(str(tiny_reward_model), batch_size=2)
    pairs = [Pair(it[1], "de", it[2], it[3]) for it in ITEMS if it[2] and it[3]]
    verdicts = judge.judge(pairs, progress=False)
    # Independently: score each (instruction, answer) one at a time, without padding.
    tok = AutoTokenizer.from_pretrained(tiny_reward_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model).eval()

    def reward(instruction, answer):
        text = tok.apply_chat_template([{"role": "user", "content": instruction},
                                        {"role": "assistant", "content": answer}], tokenize=False)
        with torch.inference_mode():
            return model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()

    for pair, v in zip(pairs, verdicts):
        a, b = reward(pair.instruction, pair.first), reward(pair.instruction, pair.second)
        assert v.first_reward == pytest.approx(a, abs=1e-4) and v.second_reward == pytest.approx(b, abs=1e-4)
        assert v.score == (1.0 if a > b else 0.0 if a < b else 0.5)
    assert len({round(v.first_reward, 6) for v in verdicts}) > 1  # the model does discriminate

    summary, info = run_winrate(WinrateConfig(output=outputs / "rm", reference=str(outputs / "ref"),
                                              candidate=str(outputs / "cand"), langs=("de",), judge="reward-model",
                                              judge_model=str(tiny_reward_model)), progress=False)
    de = summary.row(0, named=True)
    assert de["scored"] == 5 and de["identical"] == 1 and de["malformed"] == 0
    assert info["judge"] == "reward-model"
    judged = pl.read_parquet(outputs / "rm" / "judgments.parquet")
    assert judged["candidate_reward"].is_not_null().all()


def test_reward_model_must_have_one_label(tiny_model_dir):
    with pytest.raises(LidrError, match="cannot load reward model|labels; expected 1"):
        RewardModelJudge(str(tiny_model_dir))


def test_openai_judge_key_is_stable_and_prompt_sensitive():
    with OpenAIServer(handler=scripted_judge, model_name="m") as server:
        judge = load_chat_judge("m", base_url=server.base_url)
        other = load_chat_judge("m2", base_url=server.base_url)
        p = Pair("Q", "fr", "a", "b")
        k = judge.key(p)
        assert k == judge.key(Pair("Q", "fr", "a", "b"))
        assert k != judge.key(Pair("Q", "fr", "b", "a"))
        assert k != other.key(p)
        judge.close()
        other.close()


PHOTOSYNTHESIS = Pair("Erkläre Photosynthese.", "de", "Pflanzen wandeln Licht in Energie um.", "weiß nicht")


@pytest.fixture(scope="module")
def tiny_judge_model(tiny_model_dir, tmp_path_factory):
    """The tiny chat model with its output rows for 'A' and 'B' swapped with those of its two most likely first
    tokens for the PHOTOSYNTHESIS judgment (input embeddings untouched), so that it answers that judgment with
    'A' and puts 'B' second: a judge whose log-prob verdict is known from the original model.
    Returns (folder, expected preference for the first answer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lidr_data.eval.judges import judge_messages

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = tok.apply_chat_template(judge_messages(PHOTOSYNTHESIS), tokenize=False, add_generation_prompt=True)
    with torch.inference_mode():
        first = model(**tok(prompt, return_tensors="pt", add_special_tokens=False)).logits[0, -1].log_softmax(-1)
    values, ids = first.topk(5)
    letters = [tok.convert_tokens_to_ids(c) for c in "AB"]
    top1, top2 = ids[:2].tolist()
    assert not {top1, top2} & set(letters), "the tiny model already answers with a letter"
    # The other three of the top five must not read as a letter, or they would count too.
    assert all(parse_letter(tok.decode([i])) is None for i in ids[2:].tolist())
    head = model.get_output_embeddings().weight.detach().clone()
    for letter, token in zip(letters, (top1, top2)):
        head[[letter, token]] = head[[token, letter]]
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)
    out = tmp_path_factory.mktemp("tiny-judge")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    p1, p2 = math.exp(values[0].item()), math.exp(values[1].item())
    return out, p1 / (p1 + p2)


@pytest.mark.slow
def test_chat_judge_through_the_transformers_backend_on_the_tiny_model(tiny_judge_model, tmp_path):
    """A judge is a prompt and a parser over any Generator: the log-prob verdict of the tiny judge model through
    the transformers backend, the letter-less noise of another pair counted as malformed, and a rerun served
    from the request cache without a model call."""
    from lidr_data.eval.judges import ChatJudge, parse_verdict
    from lidr_data.generation.cache import RequestCache
    from lidr_data.generation.transformers_backend import TransformersGenerator

    folder, expected = tiny_judge_model
    noise = Pair("Nenne eine Farbe.", "de", "Blau.", "Tisch")
    judge = load_chat_judge(str(folder), backend="transformers", cache_path=tmp_path / "cache", batch_size=2)
    assert judge.generator.backend == "transformers" and judge.describe()["judge_backend"] == "transformers"
    first, other = judge.judge([PHOTOSYNTHESIS, noise], progress=False)
    assert (first.method, first.raw[:1]) == ("logprobs", "A")
    assert first.score == pytest.approx(expected, abs=1e-4) and 0.5 < first.score < 1.0
    # The other prompt gets the model's noise, parsed as the same request answered directly parses.
    [noise_completion] = judge.generator.generate([judge.request(noise)])
    assert other == parse_verdict(noise_completion, judge.key(noise)) and other.raw == noise_completion.text[:500]
    assert judge.calls == 2 and not first.cached
    judge.close()

    class Counting(TransformersGenerator):
        seen = 0

        def generate(self, requests):
            self.seen += len(requests)
            return super().generate(requests)

    generator = Counting(str(folder))
    rerun = ChatJudge(generator, RequestCache(tmp_path / "cache"))
    again = rerun.judge([PHOTOSYNTHESIS, noise], progress=False)
    assert generator.seen == 0 and rerun.calls == 0 and all(v.cached for v in again)
    assert [(v.score, v.method, v.raw) for v in again] == [(v.score, v.method, v.raw) for v in (first, other)]
    rerun.close()


@pytest.mark.slow
def test_openai_judge_logprob_verdict_comes_through_the_generation_layer(tiny_judge_model):
    """The tiny judge model behind a real loopback OpenAI-compatible server: the `openai` judge asks for top
    log-probabilities, the openai backend reads them into the Completion, and the verdict is the weighted one,
    equal to the same judge's through the in-process transformers backend."""
    from lidr_data.generation import load_generator

    folder, expected = tiny_judge_model
    served = load_generator("transformers", str(folder))
    with OpenAIServer(served, model_name="tiny-judge") as server:
        judge = load_chat_judge("tiny-judge", base_url=server.base_url, backoff=0.01)
        [verdict] = judge.judge([PHOTOSYNTHESIS], progress=False)
        judge.close()
        [body] = [r["body"] for r in server.received if r["path"] == "/v1/chat/completions"]
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"], body["temperature"]) == (True, 5, 5, 0.0)
    assert verdict.method == "logprobs" and verdict.score == pytest.approx(expected, abs=1e-4)
