"""Pairwise judges behind one small interface: `judge(pairs) -> verdicts`, a verdict being the preference for
the answer shown first, in [0, 1] (None when the judge gave no usable answer).

- `openai`: an OpenAI-compatible chat model with our own prompt (which also asks that the answer be in the
  instruction's language); a logprob-weighted preference P(A) / (P(A) + P(B)) when the endpoint returns
  top_logprobs, else the parsed letter; judgments cached in SQLite and requested concurrently with httpx.
- `reward-model`: a local sequence-classification reward model scores each answer; the higher one wins.
- `length`: longer answer wins, equal lengths tie (deterministic; for tests and sanity checks).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lidr_data.errors import LidrError

JUDGES = ("openai", "reward-model", "length")
PROMPT_VERSION = "lidr-pairwise-v1"  # bump when the prompt changes, so cached judgments are not reused

LANG_NAMES = {
    "ar": "Arabic", "bn": "Bengali", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "hi": "Hindi", "it": "Italian", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "ru": "Russian",
    "sw": "Swahili", "te": "Telugu", "th": "Thai", "tr": "Turkish", "vi": "Vietnamese", "zh": "Chinese",
}

SYSTEM_PROMPT = "You are an impartial judge of the answers of AI assistants."
USER_PROMPT = """Which of the two answers below responds better to the user's instruction?

Judge helpfulness, correctness, completeness and clarity. The answer must be written in the language of the \
instruction ({language}) unless the instruction asks for another language: an answer in the wrong language is \
worse. Neither the order of the answers nor their length alone should decide.

[Instruction]
{instruction}

[Answer A]
{first}

[Answer B]
{second}

Reply with a single letter: A if Answer A is better, B if Answer B is better."""


@dataclass(frozen=True)
class Pair:
    """One judge call: `first` is shown as Answer A, `second` as Answer B."""

    instruction: str
    lang: str
    first: str
    second: str


@dataclass
class Verdict:
    score: float | None  # preference for `first`, in [0, 1]; None when malformed or failed
    method: str  # logprobs | parsed | length | reward | malformed | error
    raw: str | None = None  # the judge's answer text (openai) or None
    error: str | None = None
    first_reward: float | None = None  # reward-model scores
    second_reward: float | None = None
    cached: bool = False


class Judge(ABC):
    name: str
    positional = False  # True when the verdict can depend on which answer is shown first

    @abstractmethod
    def judge(self, pairs: Sequence[Pair], progress: bool = True) -> list[Verdict]:
        """One verdict per pair, in order. Failures are verdicts (method error), not exceptions, except a judge
        that cannot be reached at all."""

    def describe(self) -> dict:
        return {"judge": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models or connections."""


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not enabled)


class LengthJudge(Judge):
    name = "length"

    def judge(self, pairs: Sequence[Pair], progress: bool = True) -> list[Verdict]:
        return [Verdict(1.0 if len(p.first) > len(p.second) else 0.0 if len(p.first) < len(p.second) else 0.5,
                        "length") for p in pairs]


class RewardModelJudge(Judge):
    """Scores (instruction, answer) with a local `AutoModelForSequenceClassification` (one output logit)."""

    name = "reward-model"

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None, max_length: int = 4096,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_name, self.batch_size, self.max_length = model, batch_size, max_length
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(model, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise LidrError(f"cannot load reward model {model!r}: {str(e).splitlines()[0]}") from e
        if self.model.config.num_labels != 1:
            raise LidrError(f"reward model {model!r} has {self.model.config.num_labels} labels; expected 1 (a score)")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def render(self, instruction: str, answer: str) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}], tokenize=False
            )
        return f"{instruction}\n\n{answer}"

    def score(self, texts: list[str], progress: bool = False) -> list[float]:
        import torch

        scores: list[float] = []
        with _progress(progress) as bar:
            task = bar.add_task("reward model", total=len(texts), info="")
            for i in range(0, len(texts), self.batch_size):
                # The rendered chat already carries bos; adding special tokens would double it.
                enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length, add_special_tokens=False)
                with torch.inference_mode():
                    logits = self.model(**enc.to(self.device)).logits
                scores.extend(logits[:, 0].float().tolist())
                bar.update(task, advance=len(texts[i:i + self.batch_size]))
        return scores

    def judge(self, pairs: Sequence[Pair], progress: bool = True) -> list[Verdict]:
        texts = list(dict.fromkeys(self.render(p.instruction, a) for p in pairs for a in (p.first, p.second)))
        reward = dict(zip(texts, self.score(texts, progress)))
        verdicts = []
        for p in pairs:
            a, b = reward[self.render(p.instruction, p.first)], reward[self.render(p.instruction, p.second)]
            verdicts.append(Verdict(1.0 if a > b else 0.0 if a < b else 0.5, "reward", first_reward=a,
                                    second_reward=b))
        return verdicts

    def describe(self) -> dict:
        return {"judge": self.name, "judge_model": self.model_name}


class JudgeCache:
    """Judgments by key (hash of judge model, prompt and sampling); errors are never stored, so reruns retry."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, score REAL, "
                             "method TEXT NOT NULL, raw TEXT)")
        except sqlite3.DatabaseError as e:
            raise LidrError(f"judge cache {self.path} is not a readable SQLite file: {e}") from e

    def get_many(self, keys: list[str]) -> dict[str, Verdict]:
        keys = list(dict.fromkeys(keys))
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self._db.execute(
                f"SELECT key, score, method, raw FROM judgments WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            for key, score, method, raw in rows:
                found[key] = Verdict(score, method, raw, cached=True)
        return found

    def put_many(self, items: list[tuple[str, Verdict]]) -> None:
        rows = [(k, v.score, v.method, v.raw) for k, v in items if v.method != "error"]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        self._db.close()


_LETTER = re.compile(r"^\W*(?:(?:answer|output|response)\s*)?\(?([AB])\)?\W*$", re.IGNORECASE)


def parse_letter(text: str | None) -> float | None:
    """'A' -> 1.0, 'B' -> 0.0 (also '**A**', 'Answer B.', '(a)'); anything else -> None (malformed)."""
    m = _LETTER.match(text or "")
    return None if m is None else 1.0 if m.group(1).upper() == "A" else 0.0


def logprob_preference(logprobs: dict | None) -> float | None:
    """P(A) / (P(A) + P(B)) from the top_logprobs of the first answer token that is a letter A or B."""
    content = (logprobs or {}).get("content") or []
    for position in content:
        if not isinstance(position, dict) or parse_letter(position.get("token")) is None:
            continue
        mass = {"A": 0.0, "B": 0.0}
        for top in position.get("top_logprobs") or []:
            letter = parse_letter(top.get("token"))
            if letter is not None and isinstance(top.get("logprob"), int | float):
                mass["A" if letter == 1.0 else "B"] += math.exp(top["logprob"])
        total = mass["A"] + mass["B"]
        return mass["A"] / total if total > 0 else None
    return None


class _Fatal(Exception):
    """A failure no retry can fix (unreachable endpoint, bad credentials): stops the whole run."""


class OpenAIJudge(Judge):
    """Pairwise judge over an OpenAI-compatible `/chat/completions` endpoint."""

    name = "openai"
    positional = True

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 cache_path: str | Path | None = None, concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 3, retry_wait: float = 0.5, logprobs: bool = True, max_tokens: int = 5):
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._api_key = os.environ.get(api_key_env) or ""  # never printed, logged or stored
        self.concurrency, self.timeout = max(1, concurrency), timeout
        self.max_retries, self.retry_wait = max_retries, retry_wait
        self.logprobs, self.max_tokens = logprobs, max_tokens
        self.cache = JudgeCache(cache_path) if cache_path else None
        self.calls = 0  # HTTP requests made (for tests and benchmarks)
        self._lock = threading.Lock()

    def messages(self, pair: Pair) -> list[dict]:
        user = USER_PROMPT.format(language=LANG_NAMES.get(pair.lang, pair.lang), instruction=pair.instruction,
                                  first=pair.first, second=pair.second)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def key(self, messages: list[dict]) -> str:
        payload = {"v": PROMPT_VERSION, "model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                   "temperature": 0}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def judge(self, pairs: Sequence[Pair], progress: bool = True) -> list[Verdict]:
        messages = [self.messages(p) for p in pairs]
        keys = [self.key(m) for m in messages]
        results: dict[str, Verdict] = self.cache.get_many(keys) if self.cache is not None else {}
        todo = {k: m for k, m in zip(keys, messages) if k not in results}
        if todo:
            try:
                results.update(self._run_all(todo, progress, len(keys) - len(todo)))
            except _Fatal as e:
                raise LidrError(str(e)) from None
        return [results[k] for k in keys]

    def _run_all(self, todo: dict[str, list], progress: bool, hits: int) -> dict[str, Verdict]:
        # Threads over one pooled sync client: measured cheaper per request than httpx's asyncio client here
        # (about 1.7 vs 5.5 ms of client CPU per judgment on 2 cores), and the GIL is released while waiting.
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        done: dict[str, Verdict] = {}
        unsaved: list[tuple[str, Verdict]] = []
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout, limits=limits) as client:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="judge")
            futures = {pool.submit(self._call, client, m): k for k, m in todo.items()}
            try:
                with _progress(progress) as bar:
                    task = bar.add_task("judging", total=len(todo) + hits, completed=hits, info=f"cached {hits}")
                    for future in as_completed(futures):
                        verdict = future.result()  # a _Fatal stops the run
                        done[futures[future]] = verdict
                        unsaved.append((futures[future], verdict))
                        if self.cache is not None and len(unsaved) >= 32:  # commit as we go: a killed run resumes
                            self.cache.put_many(unsaved)
                            unsaved = []
                        bar.update(task, advance=1)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                if self.cache is not None and unsaved:
                    self.cache.put_many(unsaved)
        return done

    def _call(self, client, messages: list[dict]) -> Verdict:
        import httpx

        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.retry_wait * 2 ** (attempt - 1))
            body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
            if self.logprobs:
                body.update(logprobs=True, top_logprobs=5)
            try:
                with self._lock:
                    self.calls += 1
                response = client.post("/chat/completions", json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                error = f"judge endpoint {self.base_url} is unreachable ({type(e).__name__}: {e})"
                if attempt == self.max_retries:
                    raise _Fatal(f"{error}; check --judge-base-url and that the server is running") from None
                continue
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
                continue
            status = response.status_code
            if status in (401, 403):
                raise _Fatal(f"judge endpoint {self.base_url} rejected the request (HTTP {status}): check the API key")
            if status == 404:
                raise _Fatal(f"judge endpoint {self.base_url}/chat/completions answered 404 (model {self.model!r}?)")
            if status == 400 and self.logprobs and "logprob" in response.text.lower():
                self.logprobs = False  # this endpoint does not offer log-probabilities: parse the letter
                continue
            if status != 200:
                error = f"HTTP {status}: {response.text[:200]}"
                continue
            try:
                choice = response.json()["choices"][0]
                content = choice["message"].get("content") or ""
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                return Verdict(None, "malformed", response.text[:500])
            weighted = logprob_preference(choice.get("logprobs"))
            if weighted is not None:
                return Verdict(weighted, "logprobs", content[:500])
            parsed = parse_letter(content)
            return Verdict(parsed, "parsed" if parsed is not None else "malformed", content[:500])
        return Verdict(None, "error", error=error)

    def describe(self) -> dict:
        return {"judge": self.name, "judge_model": self.model, "judge_base_url": self.base_url,
                "prompt_version": PROMPT_VERSION}

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def load_judge(name: str, model: str | None = None, cache_path: str | Path | None = None, **options) -> Judge:
    """A judge by name; `model` is the judge model (openai) or the reward model folder."""
    if name == "length":
        return LengthJudge()
    if name not in JUDGES:
        raise LidrError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    if not model:
        raise LidrError(f"judge {name!r} needs --judge-model")
    if name == "reward-model":
        return RewardModelJudge(model, **{k: v for k, v in options.items() if k in ("batch_size", "device")})
    return OpenAIJudge(model, cache_path=cache_path, **options)
