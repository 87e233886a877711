"""The transformers backend on the tiny offline model (real tokenizer, chat template and generate)."""

import pytest

from lidr_data.errors import LidrError
from lidr_data.generation import load_generator
from lidr_data.generation.base import Request, SamplingParams
from lidr_data.generation.transformers_backend import local_model_revision


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    return load_generator("transformers", str(tiny_model_dir), batch_size=4)


def test_batched_greedy_matches_one_by_one(gen):
    sampling = SamplingParams(max_new_tokens=12)
    reqs = [Request.from_messages(t, sampling) for t in ["Hello", "¿Cuál es la capital de Francia?", "Hi", "数学"]]
    batched = gen.generate(reqs)
    single = [gen.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in single]  # left padding does not change the output
    for c in batched:
        assert c.finish_reason in ("stop", "length") and 0 < c.n_tokens <= 12
        assert c.model_revision.startswith("local-")


def test_length_finish_reason_and_prefix(gen):
    [c] = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=5, repetition_penalty=1.0))])
    assert c.finish_reason in ("length", "stop")
    if c.finish_reason == "length":
        assert c.n_tokens == 5
    prompt = gen.render(Request.from_messages("Hello", assistant_prefix="<translation>"))
    assert prompt.endswith("<|assistant|>\n<translation>")


def test_too_long_prompt_is_an_error_completion_not_a_crash(gen):
    reqs = [Request.from_messages("word " * 3000), Request.from_messages("short", SamplingParams(max_new_tokens=4))]
    long, short = gen.generate(reqs)
    assert long.finish_reason == "error" and "exceeds the model context" in long.error
    assert short.finish_reason in ("stop", "length")


def test_revision_changes_when_weights_change(tiny_model_dir, tmp_path):
    from lidr_data.tiny_model import build_tiny_model

    a = build_tiny_model(tmp_path / "a", seed=1)
    b = build_tiny_model(tmp_path / "b", seed=2)
    assert local_model_revision(a) != local_model_revision(b)
    assert local_model_revision(a) == local_model_revision(build_tiny_model(tmp_path / "a2", seed=1))


def test_bad_model_and_options(tmp_path):
    with pytest.raises(LidrError, match="not found"):
        load_generator("transformers", str(tmp_path / "missing"))
    with pytest.raises(LidrError, match="unknown backend"):
        load_generator("nope", "x")
    with pytest.raises(LidrError, match="unknown option"):
        load_generator("transformers", "x", tensor_parallel_size=2)


def test_top_logprobs_match_a_plain_forward_pass(gen, tiny_model_dir):
    """Batched, left-padded generation with top_logprobs: each position's log-probabilities equal those of one
    unpadded forward pass over prompt + generated tokens; asking for them does not change the text."""
    import torch
    from transformers import AutoModelForCausalLM

    prompts = ["Hello", "¿Cuál es la capital de Francia?", "数学"]
    sampling = SamplingParams(max_new_tokens=6, repetition_penalty=1.3, top_logprobs=3)
    reqs = [Request.from_messages(p, sampling) for p in prompts]
    completions = gen.generate(reqs)
    plain = gen.generate([Request.from_messages(p, SamplingParams(max_new_tokens=6, repetition_penalty=1.3))
                          for p in prompts])
    assert [c.text for c in completions] == [c.text for c in plain] and all(c.logprobs is None for c in plain)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = gen.tokenizer
    for req, c in zip(reqs, completions):
        prompt_ids = tok(gen.render(req), add_special_tokens=False)["input_ids"]
        with torch.inference_mode():  # one unpadded greedy run, then one forward pass over its tokens
            out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=6, do_sample=False,
                                 repetition_penalty=1.3, pad_token_id=tok.pad_token_id)[0, len(prompt_ids):].tolist()
            generated = out[: next((j for j, t in enumerate(out) if t == tok.eos_token_id), len(out))]
            logits = model(torch.tensor([prompt_ids + generated])).logits[0, len(prompt_ids) - 1 : -1]
        assert c.logprobs is not None and len(c.logprobs) == len(generated) > 0
        expected = logits.float().log_softmax(-1)  # raw: the repetition penalty is not applied to reported values
        for j, (position, token_id) in enumerate(zip(c.logprobs, generated)):
            assert position.token == tok.decode([token_id])
            assert position.logprob == pytest.approx(expected[j, token_id].item(), abs=1e-4)
            values, ids = expected[j].topk(3)
            assert [t for t, _ in position.top] == [tok.decode([i]) for i in ids.tolist()]
            assert [lp for _, lp in position.top] == pytest.approx(values.tolist(), abs=1e-4)
