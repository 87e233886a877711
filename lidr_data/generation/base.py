"""The generation interface every backend implements: requests in, completions out.

A request is chat messages plus sampling parameters. Its `key` hashes everything that determines the output
(model, revision, chat-template hash, messages, sampling, sample index) and nothing operational (batch size,
concurrency, device), so the request cache can be shared across runs and backends settings.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from lidr_data.errors import LidrError

FinishReason = Literal["stop", "length", "error"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings. The defaults are the LIDR paper's: greedy decoding with repetition penalty 1.1."""

    temperature: float = field(default=0.0, metadata={"help": "0 means greedy decoding."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (ignored when greedy)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Upper bound on generated tokens."})
    repetition_penalty: float = field(default=1.1, metadata={"help": "1.0 disables the penalty."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (ignored when greedy)."})
    # Fields added after the first release carry `key_default`: they enter the request key only when set to
    # something else, so the keys of earlier requests (and the caches holding them) stay valid.
    top_logprobs: int = field(default=0, metadata={
        "help": "Also return the k most likely tokens and their log-probabilities at each generated position "
        "(0 = none; OpenAI allows up to 20).", "key_default": 0})

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise LidrError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise LidrError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise LidrError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.repetition_penalty <= 0:
            raise LidrError(f"sampling.repetition_penalty must be > 0, got {self.repetition_penalty}")
        if not isinstance(self.top_logprobs, int) or isinstance(self.top_logprobs, bool) or \
                not 0 <= self.top_logprobs <= 20:
            raise LidrError(f"sampling.top_logprobs must be an integer in [0, 20], got {self.top_logprobs!r}")

    def key_fields(self) -> dict:
        """The fields that determine the output, as they enter the request key (see `key_default`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if "key_default" not in f.metadata or getattr(self, f.name) != f.metadata["key_default"]}


@dataclass(frozen=True)
class Request:
    """One generation request.

    `assistant_prefix` primes the assistant turn (the translate stage opens the answer with a tag); the model
    continues from it and the completion text excludes it.
    """

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs; a tuple so requests are hashable
    sampling: SamplingParams = SamplingParams()
    system_prompt: str | None = None
    assistant_prefix: str | None = None
    sample_index: int = 0

    @classmethod
    def from_messages(
        cls,
        messages: Sequence[dict[str, str]] | str,
        sampling: SamplingParams | None = None,
        system_prompt: str | None = None,
        assistant_prefix: str | None = None,
        sample_index: int = 0,
    ) -> Request:
        """Build a request from chat messages (`[{"role", "content"}]`) or a single user prompt string."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        pairs = []
        for m in messages:
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                raise LidrError(f"message role must be one of {ROLES}, got {role!r}")
            if not isinstance(content, str):
                raise LidrError(f"message content must be a string, got {type(content).__name__}")
            pairs.append((role, content))
        if not pairs or not any(c.strip() for r, c in pairs if r == "user"):
            raise LidrError("empty prompt: a request needs a user message with text")
        return cls(tuple(pairs), sampling or SamplingParams(), system_prompt, assistant_prefix, sample_index)

    def chat(self) -> list[dict[str, str]]:
        """The messages as chat-template input, with the system prompt first when set."""
        msgs = [{"role": r, "content": c} for r, c in self.messages]
        if self.system_prompt and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely tokens at its position (best first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    n_tokens: int
    model: str
    model_revision: str
    error: str | None = None  # the message, when finish_reason == "error"
    # One entry per generated token when the request asked for `top_logprobs` and the backend could give them.
    logprobs: tuple[TokenLogprob, ...] | None = None
    # Served from the request cache rather than generated now (how it was obtained, not what it is).
    cached: bool = field(default=False, compare=False)


class Generator(ABC):
    """A backend. Subclasses set `model`, `model_revision`, `template_hash` and implement `generate`."""

    backend: str = "custom"  # the name `load_generator` knows it by
    model: str
    model_revision: str
    template_hash: str  # hash of the chat template; "server" when the endpoint applies its own
    batch_size: int = 8  # how many requests the runner hands over at once (and commits to the cache at once)

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Complete every request, in order. A failed request yields finish_reason="error", not an exception."""

    def stream(self, items: Sequence[tuple[str, Request]]) -> Iterator[list[tuple[str, Completion]]]:
        """Complete the whole work list `(request key, request)`, yielding `(key, completion)` batches as they
        finish, in any order; the runner commits each batch to the request cache when it arrives.

        The default hands `generate` chunks of `batch_size`. Executors that schedule the whole list themselves
        (Ray Data) override it."""
        step = max(1, self.batch_size)
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            yield list(zip([k for k, _ in chunk], self.generate([r for _, r in chunk])))

    def request_key(self, request: Request) -> str:
        payload = {
            "model": self.model,
            "revision": self.model_revision,
            "template": self.template_hash,
            "messages": request.chat(),
            "assistant_prefix": request.assistant_prefix,
            "sampling": request.sampling.key_fields(),
            "sample_index": request.sample_index,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def close(self) -> None:  # noqa: B027 - optional hook for backends holding engines or connections
        """Release engines or connections."""
