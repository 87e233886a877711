"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: `/v1/models` and `/v1/chat/completions`.

It answers chat completions with a lidr `Generator` (e.g. `TransformersGenerator` on the tiny model; one request
at a time, behind a lock) or with a custom `handler(body) -> response dict | str` (a str is wrapped as a finished
completion; build dicts with `completion_response`), and speaks vLLM's dialect:
`repetition_penalty` (default 1.0 when absent) and `continue_final_message` (the final assistant message is a
prefix the model continues; the answer holds only the continuation).

It can be scripted to misbehave, and records what it received:

    with OpenAIServer(generator, model_name="tiny") as server:
        server.script.extend([Reply(429, headers={"Retry-After": "0"}), Reply(500), Reply(200, delay=5.0)])
        ...  # client at server.base_url
        server.chat_count, server.received[-1]["body"], server.max_in_flight

`script` replies are consumed one per chat-completions request, before normal service; `always` (a Reply) is
used once the script is empty, e.g. `always=Reply(500)`. A Reply with status 200 and no body only delays the
normal answer. `api_key` makes every endpoint require `Authorization: Bearer <api_key>` (401 otherwise).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lidr_data.errors import LidrError
from lidr_data.generation.base import Generator, Request, SamplingParams, TokenLogprob


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # concurrent clients burst past the default backlog of 5


@dataclass
class Reply:
    """A scripted answer to one chat-completions request."""

    status: int = 500
    delay: float = 0.0  # seconds to wait before answering (longer than the client timeout = a timeout)
    # Hold the request until the server has seen this many requests in flight at once (at most `delay` s, then
    # answer anyway): overlap is then observed whatever the machine's load, not hoped for within a delay.
    until_in_flight: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None  # None: an OpenAI-style error body (or, for 200, the normal answer)


def request_from_body(body: dict) -> Request:
    """Map a chat-completions body onto a lidr Request the way vLLM reads it."""
    messages = list(body.get("messages") or [])
    prefix = None
    if body.get("continue_final_message") and messages and messages[-1].get("role") == "assistant":
        prefix = messages.pop()["content"]
    sampling = SamplingParams(
        temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)),
        max_new_tokens=int(body.get("max_tokens") or 256),
        repetition_penalty=float(body.get("repetition_penalty", 1.0)),
        seed=int(body.get("seed") or 0),
        top_logprobs=int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0,
    )
    return Request.from_messages(messages, sampling, assistant_prefix=prefix)


def completion_response(model: str, text: str, finish_reason: str, completion_tokens: int,
                        prompt_tokens: int = 0, logprobs: Sequence[TokenLogprob] | None = None) -> dict:
    """An OpenAI chat.completion object (with `choices[0].logprobs` when `logprobs` are given)."""
    response = {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    if logprobs is not None:
        response["choices"][0]["logprobs"] = {"content": [
            {"token": t.token, "logprob": t.logprob,
             "top_logprobs": [{"token": token, "logprob": lp} for token, lp in t.top]} for t in logprobs]}
    return response


def error_body(message: str, kind: str = "server_error") -> dict:
    return {"error": {"message": message, "type": kind, "code": None}}


class OpenAIServer:
    """Context manager: starts a ThreadingHTTPServer on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(
        self,
        generator: Generator | None = None,
        *,
        model_name: str = "tiny",
        handler: Callable[[dict], dict | str] | None = None,
        api_key: str | None = None,
        script: list[Reply] | None = None,
        always: Reply | None = None,
    ):
        if generator is None and handler is None:
            raise ValueError("OpenAIServer needs a generator or a handler")
        self.generator = generator
        self.model_name = model_name
        self.handler = handler
        self.api_key = api_key
        self.script: deque[Reply] = deque(script or [])
        self.always = always
        self.received: list[dict[str, Any]] = []  # {"method", "path", "headers", "body", "time"} per request
        self.in_flight = 0
        self.max_in_flight = 0
        self._state = threading.Lock()
        self._changed = threading.Condition(self._state)  # in_flight changed, or the server is stopping
        self._generate_lock = threading.Lock()  # generators are not thread-safe
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_count(self) -> int:
        """How many chat-completions requests arrived (scripted failures included)."""
        with self._state:
            return sum(r["path"] == "/v1/chat/completions" for r in self.received)

    def start(self) -> OpenAIServer:
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"openai-server-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a scripted delay
        with self._changed:
            self._changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour -------------------------------------------------------------------------------------------
    def _record(self, method: str, path: str, headers: dict, body: Any) -> None:
        with self._state:
            self.received.append({"method": method, "path": path, "headers": headers, "body": body,
                                  "time": time.monotonic()})

    def _next_reply(self) -> Reply | None:
        with self._state:
            return self.script.popleft() if self.script else self.always

    def _enter(self) -> None:
        with self._state:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._changed.notify_all()

    def _leave(self) -> None:
        with self._state:
            self.in_flight -= 1

    def models(self) -> tuple[int, dict, dict]:
        return 200, {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "lidr"}]}, {}

    def chat(self, body: Any) -> tuple[int, dict, dict]:
        reply = self._next_reply()
        if reply is not None:
            if reply.until_in_flight:
                with self._changed:
                    self._changed.wait_for(lambda: self.max_in_flight >= reply.until_in_flight
                                           or self._stopping.is_set(), timeout=reply.delay or None)
                if self._stopping.is_set():
                    return 503, error_body("server stopping"), {}
            elif reply.delay and self._stopping.wait(reply.delay):
                return 503, error_body("server stopping"), {}
            if reply.status != 200:
                return reply.status, reply.body or error_body(f"scripted HTTP {reply.status}"), reply.headers
            if reply.body is not None:
                return 200, reply.body, reply.headers
        if not isinstance(body, dict):
            return 400, error_body("body must be a JSON object", "invalid_request_error"), {}
        if self.handler is not None:  # no model-name check: a handler serves whatever name it is asked for
            result = self.handler(body)
            if isinstance(result, str):  # plain text: wrap it as a finished completion
                result = completion_response(str(body.get("model")), result, "stop", len(result.split()))
            return 200, result, {}
        if body.get("model") != self.model_name:
            return 404, error_body(f"The model `{body.get('model')}` does not exist.", "NotFoundError"), {}
        if int(body.get("n") or 1) != 1:
            return 400, error_body("only n=1 is supported", "invalid_request_error"), {}
        try:
            request = request_from_body(body)
        except (LidrError, TypeError, ValueError, KeyError, AttributeError) as e:
            return 400, error_body(str(e), "invalid_request_error"), {}
        with self._generate_lock:
            [c] = self.generator.generate([request])
        if c.finish_reason == "error":
            return 400, error_body(c.error or "generation failed", "invalid_request_error"), {}
        return 200, completion_response(self.model_name, c.text, c.finish_reason, c.n_tokens,
                                        logprobs=c.logprobs), {}


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do (httpx pools connections)
        timeout = 10  # idle keep-alive connections do not hold a thread forever
        disable_nagle_algorithm = True  # headers and body go out in two writes: avoid a 40 ms delayed-ACK stall

        def log_message(self, *args) -> None:  # quiet test output
            pass

        def _authorized(self) -> bool:
            return server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}"

        def _send(self, status: int, payload: dict, headers: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timed out) and closed the connection
                self.close_connection = True

        def do_GET(self) -> None:
            server._record("GET", self.path, dict(self.headers), None)
            if not self._authorized():
                self._send(401, error_body("Incorrect API key provided", "authentication_error"), {})
            elif self.path == "/v1/models":
                self._send(*server.models())
            else:
                self._send(404, error_body(f"no route {self.path}", "NotFoundError"), {})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            server._record("POST", self.path, dict(self.headers), body)
            if not self._authorized():
                self._send(401, error_body("Incorrect API key provided", "authentication_error"), {})
                return
            if self.path != "/v1/chat/completions":
                self._send(404, error_body(f"no route {self.path}", "NotFoundError"), {})
                return
            server._enter()
            try:
                answer = server.chat(body)
            except Exception as e:  # noqa: BLE001 - a handler bug is a 500, visible to the test
                answer = 500, error_body(f"{type(e).__name__}: {e}"), {}
            finally:
                # Out of flight before the client can read the answer: a client that sends its next request as
                # soon as it has one never overlaps this one.
                server._leave()
            self._send(*answer)

    return Handler
