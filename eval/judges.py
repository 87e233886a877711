"""Pairwise judges behind one small interface: `judge(pairs) -> verdicts`, a verdict being the preference for
the answer shown first, in [0, 1] (None when the judge gave no usable answer).

- `openai` (a `ChatJudge`): a chat model asked with our own prompt (which also asks that the answer be in the
  instruction's language), parsed into a verdict: a logprob-weighted preference P(A) / (P(A) + P(B)) when the
  backend returns top log-probabilities, else the parsed letter. It is only a prompt and a parser: the requests
  go through any generation backend (by default `openai`, an OpenAI-compatible endpoint; also `transformers`
  and `vllm`) and the one request cache, so retries, concurrency and resumability are the generation layer's.
- `reward-model`: a local sequence-classification reward model scores each answer; the higher one wins.
- `length`: longer answer wins, equal lengths tie (deterministic; for tests and sanity checks).
- `chrf`: needs no model: chrF (sacrebleu) of each answer against a gold answer to the same instruction in the
  same language (e.g. GPT-4-Turbo's X-AlpacaEval answers); the higher chrF wins, equal scores tie. A pair whose
  instruction has no gold answer gets no verdict (method `no_reference`): it is reported, never guessed.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.eval.outputs import SUFFIXES, load_outputs
from lidr_data.extras import require
from lidr_data.generation import load_generator
from lidr_data.generation.base import Completion, Generator, Request, SamplingParams, TokenLogprob
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.openai_backend import EndpointRefused, EndpointUnreachable
from lidr_data.generation.runner import run_requests
from lidr_data.languages import LANGUAGES
from lidr_data.progress import Progress, no_progress

JUDGES = ("openai", "reward-model", "length", "chrf")
# Recorded in run.json. The request key holds the whole prompt, so a prompt change misses the cache by itself.
PROMPT_VERSION = "lidr-pairwise-v1"

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
    method: str  # logprobs | parsed | length | reward | chrf | no_reference | malformed | error
    raw: str | None = None  # the judge's answer text (openai) or None
    error: str | None = None
    first_reward: float | None = None  # each answer's own score: the reward model's, or chrF against the gold
    second_reward: float | None = None
    cached: bool = False
    request_key: str | None = None  # the generation request behind a chat judge's verdict


class Judge(ABC):
    name: str
    positional = False  # True when the verdict can depend on which answer is shown first

    @abstractmethod
    def judge(self, pairs: Sequence[Pair], progress: Progress | None = None) -> list[Verdict]:
        """One verdict per pair, in order. Failures are verdicts (method error), not exceptions, except a judge
        that cannot be reached at all."""

    def describe(self) -> dict:
        return {"judge": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models or connections."""


class LengthJudge(Judge):
    name = "length"

    def judge(self, pairs: Sequence[Pair], progress: Progress | None = None) -> list[Verdict]:
        return [Verdict(1.0 if len(p.first) > len(p.second) else 0.0 if len(p.first) < len(p.second) else 0.5,
                        "length") for p in pairs]


# chrF scores (0-100) closer than this are a tie: equal up to floating-point rounding, nothing wider. A wider band
# would turn small real differences into ties; the win rate's standard error already says how much they mean.
CHRF_TIE = 1e-9


def gold_key(instruction: str) -> str:
    """How an instruction finds its gold answer: by its exact text (outer whitespace aside), in its language."""
    return instruction.strip()


class ChrfJudge(Judge):
    """chrF of each answer against the gold answer to the pair's instruction in the pair's language; the higher
    chrF wins, equal scores (within CHRF_TIE) tie.

    Gold answers come from a folder of `{lang}.json` / `{lang}.jsonl` / `{lang}.parquet` outputs (rows with
    `instruction` and `output`: the X-AlpacaEval layout), read per language on first use. A pair finds its gold
    answer by exact instruction text in its own language (ids differ between sources; text does not lie). No file
    for the language, no row with that instruction, or one instruction with two different gold answers: no
    verdict (method `no_reference`), reported as such by the callers, never guessed or counted as a tie."""

    name = "chrf"

    def __init__(self, reference: str | Path):
        require("sacrebleu", purpose="the chrf judge")
        from sacrebleu.metrics import CHRF

        self.reference = Path(reference)
        if not self.reference.is_dir():
            raise LidrError(f"gold answers folder {self.reference} not found (--judge-reference)")
        self.metric = CHRF()  # chrF: character 6-grams, beta 2, no word n-grams (chrF++ would add them)
        self.metric.sentence_score("a", ["a"])  # sacrebleu knows its signature only once it has scored something
        self._gold: dict[str, dict[str, str | None]] = {}
        self._scores: dict[tuple[str, str], float] = {}  # both orders and repeated answers are scored once

    def gold_answers(self, lang: str) -> dict[str, str | None]:
        """{instruction key: gold answer} of one language ({} without a file); None marks an ambiguous one."""
        if lang not in self._gold:
            path = next((self.reference / f"{lang}{suffix}" for suffix in SUFFIXES
                         if (self.reference / f"{lang}{suffix}").is_file()), None)
            gold: dict[str, str | None] = {}
            for row in load_outputs(path).iter_rows(named=True) if path else ():
                if row["instruction"] is None or row["output"] is None:
                    continue
                key = gold_key(row["instruction"])
                gold[key] = row["output"] if gold.get(key, row["output"]) == row["output"] else None
            self._gold[lang] = gold
        return self._gold[lang]

    def gold(self, lang: str, instruction: str) -> str | None:
        return self.gold_answers(lang).get(gold_key(instruction))

    def chrf(self, text: str, gold: str) -> float:
        """sacrebleu's sentence-level chrF (0-100) of `text` against the one gold answer."""
        if (text, gold) not in self._scores:
            self._scores[(text, gold)] = self.metric.sentence_score(text, [gold]).score
        return self._scores[(text, gold)]

    def judge(self, pairs: Sequence[Pair], progress: Progress | None = None) -> list[Verdict]:
        verdicts = []
        with (progress or no_progress)("chrF", len(pairs)) as advance:
            for p in pairs:
                gold = self.gold(p.lang, p.instruction)
                if gold is None:
                    verdicts.append(Verdict(None, "no_reference"))
                else:
                    a, b = self.chrf(p.first, gold), self.chrf(p.second, gold)
                    score = 0.5 if abs(a - b) <= CHRF_TIE else 1.0 if a > b else 0.0
                    verdicts.append(Verdict(score, "chrf", first_reward=a, second_reward=b))
                advance(1)
        return verdicts

    def describe(self) -> dict:
        return {"judge": self.name, "judge_reference": str(self.reference),
                "chrf_signature": str(self.metric.get_signature()), "tie_tolerance": CHRF_TIE}


class RewardModelJudge(Judge):
    """Scores (instruction, answer) with a local `AutoModelForSequenceClassification` (one output logit)."""

    name = "reward-model"

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None, max_length: int = 4096,
                 trust_remote_code: bool = False):
        require("torch", "transformers", purpose="the reward-model judge")
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

    def score(self, texts: list[str], progress: Progress | None = None) -> list[float]:
        import torch

        scores: list[float] = []
        with (progress or no_progress)("reward model", len(texts)) as advance:
            for i in range(0, len(texts), self.batch_size):
                # The rendered chat already carries bos; adding special tokens would double it.
                enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length, add_special_tokens=False)
                with torch.inference_mode():
                    logits = self.model(**enc.to(self.device)).logits
                scores.extend(logits[:, 0].float().tolist())
                advance(len(texts[i:i + self.batch_size]))
        return scores

    def judge(self, pairs: Sequence[Pair], progress: Progress | None = None) -> list[Verdict]:
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


_LETTER = re.compile(r"^\W*(?:(?:answer|output|response)\s*)?\(?([AB])\)?\W*$", re.IGNORECASE)


def parse_letter(text: str | None) -> float | None:
    """'A' -> 1.0, 'B' -> 0.0 (also '**A**', 'Answer B.', '(a)'); anything else -> None (malformed)."""
    m = _LETTER.match(text or "")
    return None if m is None else 1.0 if m.group(1).upper() == "A" else 0.0


def logprob_preference(logprobs: Sequence[TokenLogprob] | None) -> float | None:
    """P(A) / (P(A) + P(B)) from the top log-probabilities of the first generated token that is a letter A or B."""
    for position in logprobs or ():
        if parse_letter(position.token) is None:
            continue
        mass = {"A": 0.0, "B": 0.0}
        for token, logprob in position.top:
            letter = parse_letter(token)
            if letter is not None and math.isfinite(logprob):
                mass["A" if letter == 1.0 else "B"] += math.exp(logprob)
        total = mass["A"] + mass["B"]
        return mass["A"] / total if total > 0 else None
    return None


def judge_messages(pair: Pair) -> list[dict[str, str]]:
    """The chat judge's prompt for one pair: `first` is Answer A, `second` Answer B."""
    user = USER_PROMPT.format(language=LANGUAGES.get(pair.lang, pair.lang), instruction=pair.instruction,
                              first=pair.first, second=pair.second)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(completion: Completion, key: str | None = None) -> Verdict:
    """The chat judge's parser: log-probabilities when there are some, else the letter; failures stay errors."""
    if completion.finish_reason == "error":
        return Verdict(None, "error", error=completion.error, cached=completion.cached, request_key=key)
    raw = completion.text[:500]
    weighted = logprob_preference(completion.logprobs)
    if weighted is not None:
        return Verdict(weighted, "logprobs", raw, cached=completion.cached, request_key=key)
    parsed = parse_letter(completion.text)
    return Verdict(parsed, "parsed" if parsed is not None else "malformed", raw, cached=completion.cached,
                   request_key=key)


class ChatJudge(Judge):
    """A pairwise judge that is a prompt and a parser over a `Generator`: greedy, a few tokens, and the top
    log-probabilities of each (when `logprobs`). With a `cache`, a verdict already given is never asked again
    (errors are not cached, so a rerun retries them)."""

    name = "openai"
    positional = True

    def __init__(self, generator: Generator, cache: RequestCache | None = None, logprobs: bool = True,
                 top_logprobs: int = 5, max_new_tokens: int = 5):
        self.generator, self.cache = generator, cache
        self.sampling = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, repetition_penalty=1.0,
                                       top_logprobs=top_logprobs if logprobs else 0)
        self.calls = 0  # requests handed to the backend (cache misses), over the judge's life

    def request(self, pair: Pair) -> Request:
        return Request.from_messages(judge_messages(pair), self.sampling)

    def key(self, pair: Pair) -> str:
        """The request-cache key of this pair's judgment (it covers the judge model, the prompt and sampling)."""
        return self.generator.request_key(self.request(pair))

    def judge(self, pairs: Sequence[Pair], progress: Progress | None = None) -> list[Verdict]:
        completions, keys, stats = run_requests(self.generator, [self.request(p) for p in pairs], self.cache,
                                                progress=progress, description="judging")
        self.calls += stats.generated
        return [parse_verdict(c, k) for c, k in zip(completions, keys)]

    def describe(self) -> dict:
        info = {"judge": self.name, "judge_model": self.generator.model,
                "judge_backend": self.generator.backend, "prompt_version": PROMPT_VERSION}
        base_url = getattr(self.generator, "base_url", None)
        if base_url is not None:
            info["judge_base_url"] = base_url
        return info

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.generator.close()


def load_judge(name: str, model: str | None = None, cache_path: str | Path | None = None, **options) -> Judge:
    """A judge by name; `model` is the judge model (openai) or the reward model folder; option `reference` is
    the chrf judge's folder of gold answers."""
    if name not in JUDGES:
        raise LidrError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    reference = options.pop("reference", None)
    if name == "chrf":
        if model:
            raise LidrError("judge 'chrf' takes no --judge-model: it scores answers against --judge-reference")
        if not reference:
            raise LidrError("judge 'chrf' needs --judge-reference: a folder of gold answers ({lang}.json with "
                            "instruction and output, e.g. X-AlpacaEval's gpt-4-turbo-2024-04-09 outputs)")
        return ChrfJudge(reference)
    if reference:
        raise LidrError(f"--judge-reference is for the chrf judge; judge {name!r} does not use gold answers")
    if name == "length":
        return LengthJudge()
    if not model:
        raise LidrError(f"judge {name!r} needs --judge-model")
    if name == "reward-model":
        return RewardModelJudge(model, **{k: v for k, v in options.items() if k in ("batch_size", "device")})
    return load_chat_judge(model, cache_path=cache_path, **options)


CHAT_JUDGE_OPTIONS = ("logprobs", "top_logprobs", "max_new_tokens")


def load_chat_judge(model: str, backend: str = "openai", cache_path: str | Path | None = None,
                    **options) -> ChatJudge:
    """A `ChatJudge` over `backend` serving `model`. Options are the judge's own (`logprobs`, `top_logprobs`,
    `max_new_tokens`); the rest go to the backend (for openai: base_url, api_key_env, concurrency, max_retries,
    backoff, ...). `cache_path` is a request-cache file or folder."""
    judge_options = {k: options.pop(k) for k in CHAT_JUDGE_OPTIONS if k in options}
    options = {k: v for k, v in options.items() if v is not None}  # unset CLI flags: the backend's defaults
    if backend == "openai" and "batch_size" not in options:  # a batch is committed at once: keep it >= in flight
        concurrency = options.get("concurrency")
        options["batch_size"] = max(64, concurrency) if isinstance(concurrency, int) else 64
    try:
        generator = load_generator(backend, model, **options)
    except EndpointUnreachable as e:  # the judge's flags, not the generation backend's, are the ones to check
        raise LidrError(f"judge endpoint {e.base_url} is unreachable ({e.detail}); check --judge-base-url and "
                        "that the server is running") from None
    except EndpointRefused as e:
        raise LidrError(f"judge endpoint {e.base_url} rejected the request (HTTP {e.status}): check the API key "
                        "(--judge-api-key-env)") from None
    try:
        return ChatJudge(generator, RequestCache(cache_path) if cache_path else None, **judge_options)
    except BaseException:
        generator.close()
        raise
