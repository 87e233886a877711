"""The embedded default backend: `transformers` `generate`, batched with left padding, CPU or one GPU."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.generation.base import Completion, Generator, Request, SamplingParams, TokenLogprob


def local_model_revision(path: Path) -> str:
    """A content fingerprint for a model folder, so a retrained model in the same folder misses the cache.

    Small files are hashed whole; weight files by size plus 16 sampled 64 KiB windows (retraining changes
    every tensor, so this sees it without reading gigabytes).
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= 8 << 20:
                h.update(fh.read())
            else:
                for i in range(16):
                    fh.seek(i * (size - 65536) // 15)
                    h.update(fh.read(65536))
    return "local-" + h.hexdigest()[:16]


class TransformersGenerator(Generator):
    backend = "transformers"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ):
        require("torch", "transformers", purpose="the transformers backend")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.batch_size = batch_size
        path = Path(model)
        looks_local = path.exists() or model.startswith((".", "/", "~"))
        if looks_local and not (path / "config.json").is_file():
            raise LidrError(f"model folder {model} not found or has no config.json")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, revision=revision, trust_remote_code=trust_remote_code
            )
            self.hf_model = AutoModelForCausalLM.from_pretrained(
                model, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code
            )
        except OSError as e:
            raise LidrError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from e
        if self.tokenizer.chat_template is None:
            raise LidrError(f"model {model!r} has no chat template; lidr needs an instruct (chat) model")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.hf_model.to(self.device).eval()
        if path.exists():
            self.model_revision = revision or local_model_revision(path)
        else:
            self.model_revision = getattr(self.hf_model.config, "_commit_hash", None) or revision or "main"
        self.template_hash = hashlib.sha256(self.tokenizer.chat_template.encode()).hexdigest()[:16]
        eos = self.hf_model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._stop_ids = {t for t in [*eos, self.tokenizer.eos_token_id] if t is not None}

    def render(self, request: Request) -> str:
        text = self.tokenizer.apply_chat_template(request.chat(), tokenize=False, add_generation_prompt=True)
        return text + (request.assistant_prefix or "")

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        limit = getattr(self.hf_model.config, "max_position_embeddings", None)
        # Requests with equal sampling settings share a generate() call.
        groups: dict[SamplingParams, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.sampling, []).append(i)
        for sampling, idx in groups.items():
            prompts = [self.render(requests[i]) for i in idx]
            lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
            batch = []
            for i, prompt, n in zip(idx, prompts, lengths):
                if limit and n + sampling.max_new_tokens > limit:
                    out[i] = self._error(
                        f"prompt of {n} tokens + max_new_tokens {sampling.max_new_tokens} exceeds the model "
                        f"context of {limit}"
                    )
                else:
                    batch.append((i, prompt))
            if not batch:
                continue
            try:
                completions = self._generate_batch([p for _, p in batch], sampling)
            except Exception as e:  # noqa: BLE001 - one failed batch must not lose the others
                completions = [self._error(f"{type(e).__name__}: {e}")] * len(batch)
            for (i, _), c in zip(batch, completions):
                out[i] = c
        return out  # type: ignore[return-value]

    def _error(self, message: str) -> Completion:
        return Completion("", "error", 0, self.model, self.model_revision, error=message)

    def _generate_batch(self, prompts: list[str], s: SamplingParams) -> list[Completion]:
        import torch

        # The chat template already writes bos; add_special_tokens would double it.
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs = dict(
            max_new_tokens=s.max_new_tokens,
            repetition_penalty=s.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if s.temperature > 0:
            torch.manual_seed(s.seed)
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.top_logprobs:
            # Raw logits (before the repetition penalty or sampling warpers), as OpenAI and vLLM report them.
            # transformers keeps one (batch, vocab) tensor per step: meant for short answers such as a verdict.
            kwargs.update(output_logits=True, return_dict_in_generate=True)
        with torch.inference_mode():
            output = self.hf_model.generate(**enc, **kwargs)
        generated = (output.sequences if s.top_logprobs else output)[:, enc["input_ids"].shape[1] :]
        if s.top_logprobs:  # per step: (batch,) chosen-token log-prob and (batch, k) top log-probs and ids
            chosen, top_values, top_ids = [], [], []
            for step, logits in enumerate(output.logits):
                lp = logits.float().log_softmax(dim=-1)
                chosen.append(lp.gather(1, generated[:, step : step + 1])[:, 0].tolist())
                values, ids = lp.topk(s.top_logprobs, dim=-1)
                top_values.append(values.tolist())
                top_ids.append(ids.tolist())
        completions = []
        for row, ids in enumerate(generated.tolist()):
            stop_at = next((j for j, t in enumerate(ids) if t in self._stop_ids), None)
            if stop_at is not None:
                ids, reason, n = ids[:stop_at], "stop", stop_at + 1
            else:
                reason, n = "length", len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            token_logprobs = None
            if s.top_logprobs:
                token_logprobs = tuple(
                    TokenLogprob(self.tokenizer.decode([t]), chosen[j][row], tuple(
                        (self.tokenizer.decode([i]), v) for i, v in zip(top_ids[j][row], top_values[j][row])))
                    for j, t in enumerate(ids))
            completions.append(Completion(text, reason, n, self.model, self.model_revision, logprobs=token_logprobs))
        return completions
