"""The `openai` backend against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/servers/openai_server.py)
that serves the tiny model through lidr's TransformersGenerator. No mocks: every test goes over loopback HTTP."""

import json
import logging
import socket
import time

import polars as pl
import pytest
from servers.openai_server import OpenAIServer, Reply

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.generation import load_generator
from lidr_data.generation.base import Request, SamplingParams
from lidr_data.generation.openai_backend import parse_retry_after, retry_delay

SENTINEL_KEY = "sk-lidr-test-SENTINEL-7f3a9c1e"
FAST = dict(backoff=0.001, timeout=5.0)  # tiny backoff keeps retry tests fast


@pytest.fixture(scope="module")
def tiny_gen(tiny_model_dir):
    return load_generator("transformers", str(tiny_model_dir), batch_size=4)


@pytest.fixture
def server(tiny_gen):
    with OpenAIServer(tiny_gen, model_name="tiny") as s:
        yield s


@pytest.fixture(autouse=True)
def no_ambient_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def client(server, **options):
    return load_generator("openai", "tiny", base_url=server.base_url, **{**FAST, **options})


def chat_bodies(server):
    return [r["body"] for r in server.received if r["path"] == "/v1/chat/completions"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROMPTS = ["Hello", "¿Cuál es la capital de Francia?", "Wie spät ist es?", "数学"]


def test_greedy_text_matches_transformers_backend(server, tiny_gen):
    """Real loopback server: the same greedy request yields the same text and token count over HTTP as in-process."""
    sampling = SamplingParams(max_new_tokens=10)
    reqs = [Request.from_messages(p, sampling, system_prompt="You are a helpful assistant.") for p in PROMPTS]
    gen = client(server, concurrency=4)
    try:
        remote = gen.generate(reqs)
    finally:
        gen.close()
    local = [tiny_gen.generate([r])[0] for r in reqs]
    assert [c.text for c in remote] == [c.text for c in local]
    assert [(c.finish_reason, c.n_tokens) for c in remote] == [(c.finish_reason, c.n_tokens) for c in local]
    for c in remote:
        assert c.finish_reason in ("stop", "length") and 0 < c.n_tokens <= 10 and c.error is None
        assert (c.model, c.model_revision) == ("tiny", "unspecified")
    body = chat_bodies(server)[0]
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert (body["max_tokens"], body["temperature"], body["repetition_penalty"]) == (10, 0.0, 1.1)
    assert gen.template_hash == "server"


def test_repetition_penalty_sent_only_when_not_one(server):
    """Real loopback server: 1.0 leaves out the vLLM extension, so plain OpenAI servers accept the body."""
    gen = client(server)
    try:
        gen.generate([Request.from_messages("Hi", SamplingParams(max_new_tokens=3, repetition_penalty=1.0))])
    finally:
        gen.close()
    assert "repetition_penalty" not in chat_bodies(server)[0]


def test_assistant_prefix_sent_as_continue_final_message(server, tiny_gen):
    """Real loopback server: the prefix travels as a final assistant message the model continues; the
    completion holds only the continuation, as with the in-process backend."""
    req = Request.from_messages("Translate: hola", SamplingParams(max_new_tokens=8), assistant_prefix="<translation>")
    gen = client(server)
    try:
        [c] = gen.generate([req])
    finally:
        gen.close()
    body = chat_bodies(server)[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "<translation>"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert c.text == tiny_gen.generate([req])[0].text

    plain = client(server, supports_prefix=False)
    try:
        plain.generate([req])
    finally:
        plain.close()
    body = chat_bodies(server)[1]
    assert body["messages"][-1]["role"] == "user" and "continue_final_message" not in body


def test_top_logprobs_travel_over_http_like_in_process(server, tiny_gen):
    """Real loopback server: `top_logprobs` is sent as logprobs/top_logprobs and the endpoint's log-probabilities
    come back in the Completion, equal to the in-process backend's; requests without it send neither."""
    asked = Request.from_messages("Hello", SamplingParams(max_new_tokens=5, top_logprobs=3))
    gen = client(server)
    try:
        [remote, plain] = gen.generate([asked, Request.from_messages("Hello", SamplingParams(max_new_tokens=5))])
    finally:
        gen.close()
    [local] = tiny_gen.generate([asked])
    assert remote.text == local.text and remote.logprobs is not None and plain.logprobs is None
    assert [(t.token, [tok for tok, _ in t.top]) for t in remote.logprobs] == \
        [(t.token, [tok for tok, _ in t.top]) for t in local.logprobs]
    assert [t.logprob for t in remote.logprobs] == pytest.approx([t.logprob for t in local.logprobs])
    # the two requests are sent concurrently: tell them apart by content, not by arrival order
    with_lp, without = sorted(chat_bodies(server), key=lambda body: "logprobs" not in body)
    assert (with_lp["logprobs"], with_lp["top_logprobs"]) == (True, 3)
    assert "logprobs" not in without and "top_logprobs" not in without


def test_endpoint_refusing_logprobs_is_asked_again_without(server):
    """Real loopback server answering 400 about logprobs: the request is sent again at once without them (not a
    spent retry: max_retries=0), and later requests leave them out; the completions have no log-probabilities."""
    server.script.append(Reply(400, body={"error": {"message": "logprobs are not supported by this model"}}))
    gen = client(server, max_retries=0, concurrency=1)
    try:
        out = gen.generate([Request.from_messages(p, SamplingParams(max_new_tokens=3, top_logprobs=2))
                            for p in PROMPTS[:2]])
    finally:
        gen.close()
    assert all(c.finish_reason in ("stop", "length") and c.error is None for c in out)
    assert all(c.logprobs is None for c in out)
    bodies = chat_bodies(server)
    assert len(bodies) == 3 and bodies[0]["logprobs"] and not any("logprobs" in b for b in bodies[1:])


def test_retries_429_then_500_then_success(server):
    """Real loopback server answering 429 (Retry-After) then 500, then serving: one good completion, 3 requests,
    and the client waited at least the Retry-After before retrying (backoff alone is 1 ms)."""
    server.script.extend([Reply(429, headers={"Retry-After": "0.5"}), Reply(500)])
    gen = client(server, max_retries=3)
    try:
        [c] = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=4))])
    finally:
        gen.close()
    assert c.finish_reason in ("stop", "length") and c.error is None and c.n_tokens > 0
    assert server.chat_count == 3
    t = [r["time"] for r in server.received if r["path"] == "/v1/chat/completions"]
    assert t[1] - t[0] >= 0.5


def test_always_500_becomes_error_completion_after_all_attempts(tiny_gen):
    """Real loopback server that always answers 500: no exception, finish_reason error after max_retries + 1."""
    with OpenAIServer(tiny_gen, always=Reply(500, body={"error": {"message": "engine dead"}})) as server:
        gen = client(server, max_retries=2)
        try:
            out = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=4))])
        finally:
            gen.close()
        assert server.chat_count == 3
    [c] = out
    assert c.finish_reason == "error" and c.text == "" and c.n_tokens == 0
    assert "HTTP 500" in c.error and "engine dead" in c.error and "3 attempts" in c.error


def test_client_error_is_not_retried(server):
    """Real loopback server: a 404 (unknown model) is final, so it is asked once."""
    gen = load_generator("openai", "no-such-model", base_url=server.base_url, **FAST)
    try:
        [c] = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=4))])
    finally:
        gen.close()
    assert c.finish_reason == "error" and "HTTP 404" in c.error and "does not exist" in c.error
    assert server.chat_count == 1


def test_timeout_is_retried_then_succeeds_or_errors(tiny_gen):
    """Real loopback server delaying beyond the client timeout: retried; one slow answer then a fast one
    succeeds, always slow ends in an error completion after max_retries + 1 attempts."""
    with OpenAIServer(tiny_gen, script=[Reply(200, delay=2.0)]) as server:
        gen = client(server, timeout=0.5, max_retries=3)  # spare retries: a loaded CI machine may be slow
        try:
            [ok] = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=4))])
        finally:
            gen.close()
        assert ok.finish_reason in ("stop", "length") and server.chat_count >= 2
    with OpenAIServer(tiny_gen, always=Reply(200, delay=2.0)) as server:
        gen = client(server, timeout=0.5, max_retries=1)
        try:
            [bad] = gen.generate([Request.from_messages("Hello", SamplingParams(max_new_tokens=4))])
        finally:
            gen.close()
        assert server.chat_count == 2
    assert bad.finish_reason == "error" and "timed out" in bad.error and "2 attempts" in bad.error


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_is_real(tiny_gen, concurrency):
    """Real loopback server: with concurrency 4 it sees requests overlap, with 1 never. Each request is held until
    two were in flight at once (concurrency 4; at most 30 s) or for 0.2 s (concurrency 1, where overlap must not
    happen), so the outcome does not depend on how fast a loaded machine sends the requests."""
    hold = Reply(200, until_in_flight=2, delay=30.0) if concurrency > 1 else Reply(200, delay=0.2)
    with OpenAIServer(tiny_gen, always=hold) as server:
        gen = client(server, concurrency=concurrency)
        try:
            out = gen.generate([Request.from_messages(p, SamplingParams(max_new_tokens=3)) for p in PROMPTS])
        finally:
            gen.close()
        assert server.chat_count == 4 and all(c.finish_reason != "error" for c in out)
        if concurrency == 1:
            assert server.max_in_flight == 1
        else:
            assert 1 < server.max_in_flight <= concurrency


def write_prompts(path, n):
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"{PROMPTS[i % len(PROMPTS)]} #{i}"}) + "\n")


def test_cli_generate_end_to_end(server, tiny_gen, tmp_path, capsys):
    """`lidr generate --backend openai` against the real loopback server writes the completions Parquet, and a
    rerun is served from the request cache (no new HTTP requests)."""
    src, out = tmp_path / "prompts.jsonl", tmp_path / "out.parquet"
    write_prompts(src, 5)
    args = ["generate", "--backend", "openai", "--model", "tiny", "--input", str(src), "--output", str(out),
            "--cache", str(tmp_path / "cache"), "--max-new-tokens", "6", "--no-progress",
            "-O", f"base_url={server.base_url}", "-O", "concurrency=3", "-O", "backoff=0.001"]
    assert main(args) == 0
    table = pl.read_parquet(out)
    assert table["id"].to_list() == [f"p{i}" for i in range(5)]
    assert set(table["finish_reason"]) <= {"stop", "length"} and table["error"].null_count() == 5
    assert (table["n_tokens"] > 0).all() and (table["n_tokens"] <= 6).all()
    assert set(table["model_revision"]) == {"unspecified"} and table["request_key"].n_unique() == 5
    expected = [tiny_gen.generate([Request.from_messages(f"{PROMPTS[i % 4]} #{i}", SamplingParams(max_new_tokens=6))])[0].text
                for i in range(5)]
    assert table["text"].to_list() == expected
    sent = server.chat_count
    assert sent == 5 and "generated 5" in capsys.readouterr().out
    assert main(args) == 0
    assert server.chat_count == sent and "cache hits 5" in capsys.readouterr().out


def test_unreachable_endpoint_is_one_line_exit_2(tmp_path, capsys):
    """A closed loopback port: exit code 2, one line naming the URL, no traceback."""
    src = tmp_path / "prompts.jsonl"
    write_prompts(src, 1)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code = main(["generate", "--backend", "openai", "--model", "tiny", "--input", str(src),
                 "--output", str(tmp_path / "o.parquet"), "--no-progress", "-O", f"base_url={url}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and url in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists()


def test_bad_base_url_and_refused_key(tiny_gen, monkeypatch):
    """Real loopback server: a base_url without /v1 (404 on /models) and a refused key are one-line LidrErrors;
    the refused key is never in the message."""
    with OpenAIServer(tiny_gen, api_key="the-right-key") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "the-right-key")
        with pytest.raises(LidrError, match="/v1"):
            load_generator("openai", "tiny", base_url=f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
        with pytest.raises(LidrError, match=r"refused the API key from \$OPENAI_API_KEY") as e:
            load_generator("openai", "tiny", base_url=server.base_url)
        assert SENTINEL_KEY not in str(e.value)
        monkeypatch.delenv("OPENAI_API_KEY")
        with pytest.raises(LidrError, match="needs an API key"):
            load_generator("openai", "tiny", base_url=server.base_url)


def test_api_key_never_leaks(tiny_gen, tmp_path, monkeypatch, capsys, caplog):
    """Real loopback server that requires the sentinel key (so it is really sent as a Bearer token), then fails
    with error bodies and headers that echo the key back. The key must not appear in stdout/stderr, log records (DEBUG,
    httpx/httpcore included), the error column of the output Parquet, or the cache file."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    caplog.set_level(logging.DEBUG)
    src, out, cache = tmp_path / "prompts.jsonl", tmp_path / "out.parquet", tmp_path / "cache"
    write_prompts(src, 3)
    echo = Reply(500, body={"error": {"message": f"Incorrect API key provided: {SENTINEL_KEY}"}},
                 headers={"X-Echo": f"Bearer {SENTINEL_KEY}"})  # httpcore logs response headers at DEBUG
    with OpenAIServer(tiny_gen, api_key=SENTINEL_KEY, script=[echo] * 2) as server:
        server.always = Reply(400, body={"error": {"message": f"bad request from Bearer {SENTINEL_KEY}"}})
        code = main(["generate", "--backend", "openai", "--model", "tiny", "--input", str(src), "--output",
                     str(out), "--cache", str(cache), "--max-new-tokens", "4", "-O", f"base_url={server.base_url}",
                     "-O", "backoff=0.001", "-O", "max_retries=1", "-O", "concurrency=1"])
        assert all(r["headers"].get("Authorization") == f"Bearer {SENTINEL_KEY}" for r in server.received)
    assert code == 1  # failed requests: non-zero exit, output still written
    table = pl.read_parquet(out)
    assert set(table["finish_reason"]) == {"error"}
    assert any("Incorrect API key provided: ***" in e for e in table["error"])
    captured = capsys.readouterr()
    assert any(r.name.startswith("httpx") for r in caplog.records)  # the client's own logs were captured
    seen = [captured.out, captured.err, *(r.getMessage() for r in caplog.records), caplog.text]
    assert not any(SENTINEL_KEY in s for s in seen)
    for path in [out, *cache.rglob("*")]:
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes(), path


def test_custom_handler_server():
    """Real loopback server driven by a handler (as judge tests use it): a str answer becomes a completion."""
    with OpenAIServer(handler=lambda body: body["messages"][-1]["content"].upper(), model_name="judge") as server:
        gen = load_generator("openai", "judge", base_url=server.base_url, **FAST)
        try:
            out = gen.generate([Request.from_messages(p, SamplingParams(max_new_tokens=4)) for p in ["a b", "ok"]])
        finally:
            gen.close()
    assert [(c.text, c.finish_reason, c.n_tokens) for c in out] == [("A B", "stop", 2), ("OK", "stop", 1)]


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after({"retry-after": http_date}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
    assert retry_delay({"retry-after": "3"}, attempt=0, backoff=10.0) == 3.0
    for attempt in range(4):
        assert 0.5 * 0.1 * 2**attempt <= retry_delay({}, attempt, 0.1) <= 0.1 * 2**attempt


def test_bad_options_are_one_line_errors(server):
    with pytest.raises(LidrError, match="concurrency"):
        load_generator("openai", "tiny", base_url=server.base_url, concurrency=0)
    with pytest.raises(LidrError, match="base_url"):
        load_generator("openai", "tiny", base_url="localhost:8000/v1")
    with pytest.raises(LidrError, match="cannot reach"):
        load_generator("openai", "tiny", base_url="http://[::1/v1")  # httpx.InvalidURL
    with pytest.raises(LidrError, match="unknown option"):
        load_generator("openai", "tiny", base_url=server.base_url, tensor_parallel_size=2)
