"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (`vllm serve`, hosted APIs).

Requests run concurrently on a thread pool sharing one `httpx.Client` (thread-safe, one connection pool).
Transient failures (429, 408, 5xx, connection errors, timeouts) are retried with exponential backoff and jitter,
honouring `Retry-After`; a request that still fails becomes a `finish_reason="error"` completion, which the
request cache does not keep, so a rerun retries it.

The API key is read from an environment variable and only ever lives in the client's Authorization header:
httpx masks that header in reprs and logs only method, URL and status, and every message this module builds
from a server's answer or an exception is scrubbed of the key before it reaches a Completion or an error.

A request with `sampling.top_logprobs` asks for `logprobs`/`top_logprobs`; an endpoint that refuses them
(HTTP 400 naming log-probabilities) is asked again without, for that request and every later one, and its
completions carry no log-probabilities.

Two vLLM extensions are used: `repetition_penalty` (sent only when it is not 1.0) and, for an
`assistant_prefix`, `continue_final_message` (the prefix is sent as a final assistant message that the model
continues; the server returns only the continuation). Hosted APIs reject both: use
`--repetition-penalty 1.0` and `-O supports_prefix=false` there.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from lidr_data.errors import LidrError
from lidr_data.generation.base import Completion, Generator, Request, TokenLogprob
from lidr_data.redact import redact_text

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_WAIT = 60.0  # seconds; a longer Retry-After (a spent daily quota) is not worth blocking a run on


class _RedactKeys(logging.Filter):
    """Scrubs API keys from httpx/httpcore log records: httpcore logs response headers at DEBUG, and a server
    may echo the key back. (Filters on a logger do not reach its children, hence the list of loggers.)"""

    LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def add(self, key: str) -> None:
        self.keys.add(key)
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)  # no-op when already there

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(k in message for k in self.keys):
            for k in self.keys:
                message = message.replace(k, "***")
            record.msg, record.args = message, ()
        return True


_redact_logs = _RedactKeys()


class EndpointUnreachable(LidrError):
    """The endpoint could not be reached at all (connection refused, DNS, TLS, timeout)."""

    def __init__(self, base_url: str, detail: str):
        super().__init__(f"cannot reach the OpenAI-compatible endpoint {base_url} ({detail})")
        self.base_url, self.detail = redact_text(base_url), detail  # a password in the URL is never shown


class EndpointRefused(LidrError):
    """The endpoint refused our credentials (HTTP 401 or 403)."""

    def __init__(self, message: str, base_url: str, status: int):
        super().__init__(message)
        self.base_url, self.status = redact_text(base_url), status


def logprobs_from_openai(logprobs: object) -> tuple[TokenLogprob, ...] | None:
    """A chat-completions `choice.logprobs` object (`{"content": [{token, logprob, top_logprobs}]}`) as
    TokenLogprobs; None when it is absent or not of that shape."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    out = []
    for position in content:
        if not isinstance(position, dict) or not isinstance(position.get("token"), str):
            return None
        top = tuple((t["token"], float(t["logprob"])) for t in position.get("top_logprobs") or []
                    if isinstance(t, dict) and isinstance(t.get("token"), str)
                    and isinstance(t.get("logprob"), int | float))
        logprob = position.get("logprob")
        out.append(TokenLogprob(position["token"], float(logprob) if isinstance(logprob, int | float) else
                                float("nan"), top))
    return tuple(out)


def is_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_delay(headers: Mapping[str, str], attempt: int, backoff: float) -> float:
    """The wait before retry number `attempt + 1`: the server's Retry-After when given, else exponential
    backoff with jitter (half fixed, half random, so concurrent clients do not retry in lockstep)."""
    after = parse_retry_after(headers)
    if after is not None:
        return min(after, MAX_WAIT)
    return min(backoff * 2**attempt, MAX_WAIT) * random.uniform(0.5, 1.0)


class OpenAIGenerator(Generator):
    """Generate through an OpenAI-compatible `/chat/completions` endpoint.

    Args:
        model: the model name the endpoint serves.
        base_url: endpoint root, e.g. `http://localhost:8000/v1`; default `$OPENAI_BASE_URL`, else OpenAI's.
        api_key_env: environment variable holding the API key (sent as a Bearer token; unset means no key).
        revision: recorded as `model_revision` (and so part of the cache key); the server cannot tell us.
        concurrency: requests in flight at once.
        timeout: seconds for each connect / read / write of one attempt.
        max_retries: retries after the first attempt for transient failures.
        backoff: base of the exponential backoff, in seconds.
        batch_size: requests handed over (and committed to the cache) at once; keep it >= concurrency.
        supports_prefix: whether the endpoint understands vLLM's `continue_final_message`.
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        revision: str | None = None,
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        batch_size: int = 64,
        supports_prefix: bool = True,
    ):
        for name, value, low in (("concurrency", concurrency, 1), ("batch_size", batch_size, 1),
                                 ("max_retries", max_retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise LidrError(f"openai backend: {name} must be an integer >= {low}, got {value!r}")
        for name, value in (("timeout", timeout), ("backoff", backoff)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or \
                    (name == "timeout" and value == 0):
                raise LidrError(f"openai backend: {name} must be a positive number, got {value!r}")
        self.model = model
        self.model_revision = str(revision) if revision is not None else "unspecified"
        self.template_hash = "server"  # the endpoint applies its own chat template
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.supports_prefix = bool(supports_prefix)
        self.supports_logprobs = True  # until the endpoint says otherwise (see _complete)
        self.base_url = str(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise LidrError(f"openai backend: base_url must start with http:// or https://, got {self.base_url!r}")
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        if self._api_key:
            _redact_logs.add(self._api_key)
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._closing = threading.Event()
        try:
            self._check_endpoint()
        except BaseException:
            self._client.close()
            raise
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lidr-openai")

    # -- secrets -------------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        """`text` without the API key and without any secret-shaped part (a password in base_url, a token)."""
        return redact_text(text.replace(self._api_key, "***") if self._api_key else text)

    def _detail(self, response: httpx.Response) -> str:
        """The server's error message (OpenAI's `{"error": {"message"}}` shape, else the body), key-free."""
        try:
            data = response.json()
            err = data.get("error") if isinstance(data, dict) else None
            message = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
            detail = str(message or data)
        except ValueError:
            detail = response.text
        detail = " ".join(detail.split())
        return self._redact(detail[:300] if len(detail) <= 300 else detail[:300] + "...")

    # -- set-up ----------------------------------------------------------------------------------------------
    def _check_endpoint(self) -> None:
        """Fail early, with one line, when the endpoint is unreachable, refuses the key or is not OpenAI-shaped."""
        url = f"{self.base_url}/models"
        try:
            r = self._client.get(url)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise EndpointUnreachable(
                self.base_url, f"{type(e).__name__}: {self._redact(str(e)) or 'no detail'}"
            ) from None  # no chained httpx exception: nothing about the request leaves this frame
        if r.status_code in (401, 403):
            if self._api_key:
                raise EndpointRefused(f"the endpoint {self.base_url} refused the API key from "
                                      f"${self.api_key_env} (HTTP {r.status_code})", self.base_url, r.status_code)
            raise EndpointRefused(f"the endpoint {self.base_url} needs an API key (HTTP {r.status_code}); "
                                  f"set ${self.api_key_env}", self.base_url, r.status_code)
        if r.status_code == 404:
            raise LidrError(f"{url} answered 404: is base_url right? OpenAI-compatible servers usually "
                            "serve under /v1, e.g. http://localhost:8000/v1")
        if r.status_code >= 400:
            raise LidrError(f"{url} answered HTTP {r.status_code}: {self._detail(r)}")
        try:
            served = [m.get("id") for m in r.json().get("data", [])]
        except (ValueError, AttributeError):
            served = []
        if served and self.model not in served:
            # A warning, not an error: some gateways list only part of what they route.
            logger.warning("model %r is not among the models listed by %s (%s)", self.model,
                           self._redact(self.base_url), ", ".join(map(str, served[:10])))

    # -- generation -----------------------------------------------------------------------------------------
    def request_body(self, request: Request) -> dict:
        """The chat-completions JSON body for one request."""
        s = request.sampling
        messages = request.chat()
        body: dict = {
            "model": self.model,
            "messages": messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_new_tokens,
            "seed": s.seed,
        }
        if s.repetition_penalty != 1.0:  # vLLM extension; leaving it out keeps plain OpenAI servers happy
            body["repetition_penalty"] = s.repetition_penalty
        if s.top_logprobs and self.supports_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = s.top_logprobs
        if request.assistant_prefix and self.supports_prefix:
            messages.append({"role": "assistant", "content": request.assistant_prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        futures = [self._pool.submit(self._complete_safely, r) for r in requests]
        try:
            return [f.result() for f in futures]
        except BaseException:  # Ctrl-C: drop what has not started; close() stops retry waits
            for f in futures:
                f.cancel()
            raise

    def _error(self, message: str) -> Completion:
        return Completion("", "error", 0, self.model, self.model_revision, error=self._redact(message))

    def _complete_safely(self, request: Request) -> Completion:
        try:
            return self._complete(request)
        except Exception as e:  # noqa: BLE001 - one broken request must not lose the batch
            return self._error(f"{type(e).__name__}: {e}")

    def _complete(self, request: Request) -> Completion:
        body = self.request_body(request)
        url = f"{self.base_url}/chat/completions"
        last_error = "no attempt made"
        attempt = 0
        while attempt <= self.max_retries:
            if self._closing.is_set():
                return self._error("generator closed before the request finished")
            headers: Mapping[str, str] = {}
            try:
                r = self._client.post(url, json=body)
            except httpx.TimeoutException as e:
                last_error = f"timed out after {self.timeout:g}s ({type(e).__name__})"
            except httpx.TransportError as e:
                last_error = f"{type(e).__name__}: {e}"
            else:
                if r.is_success:
                    return self._parse(r, request)
                last_error = f"HTTP {r.status_code}: {self._detail(r)}"
                if r.status_code == 400 and "logprobs" in body and "logprob" in last_error.lower():
                    # The endpoint offers no log-probabilities: ask again without them, at once and for good.
                    self.supports_logprobs = False
                    body = self.request_body(request)
                    continue
                if not is_retryable(r.status_code):
                    return self._error(last_error)
                headers = r.headers
            if attempt < self.max_retries:
                wait = retry_delay(headers, attempt, self.backoff)
                logger.debug("retrying %s in %.2fs after: %s", self._redact(url), wait, self._redact(last_error))
                self._closing.wait(wait)
            attempt += 1
        return self._error(f"{last_error} (gave up after {self.max_retries + 1} attempts)")

    def _parse(self, r: httpx.Response, request: Request) -> Completion:
        try:
            data = r.json()
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
            reason = choice.get("finish_reason")
            n_tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
            logprobs = logprobs_from_openai(choice.get("logprobs")) if request.sampling.top_logprobs else None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            return self._error(f"malformed chat-completions response ({type(e).__name__}: {e})")
        prefix = request.assistant_prefix
        if prefix and not self.supports_prefix and text.startswith(prefix):
            text = text[len(prefix):]  # without prefix support the model may write the prefix itself
        if reason not in ("stop", "length"):
            return Completion(text, "error", n_tokens, self.model, self.model_revision,
                              error=self._redact(f"unexpected finish_reason {reason!r}"))
        return Completion(text, reason, n_tokens, self.model, self.model_revision, logprobs=logprobs)

    def close(self) -> None:
        self._closing.set()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
