"""The `vllm` backend: an in-process `vllm.LLM` (GPU, tensor parallel), for large generation jobs.

vllm is an optional extra (`pip install 'lidr-data[vllm]'`) and is imported only when this backend is chosen.
Prompts go through `LLM.chat`, so the model's own chat template renders them, exactly as the transformers
backend does; a request's `assistant_prefix` becomes a final assistant message that the model continues.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.generation.base import Completion, Generator, Request, TokenLogprob
from lidr_data.generation.transformers_backend import local_model_revision

_FINISH = {"stop": "stop", "length": "length"}  # anything else (abort, error) is a failed request


class VLLMGenerator(Generator):
    backend = "vllm"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        batch_size: int = 256,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        trust_remote_code: bool = False,
        seed: int = 0,
    ):
        require("vllm", purpose="the vllm backend")
        import vllm

        self.model = model
        # The runner hands over this many requests at once (one cache commit each); vLLM schedules inside it.
        self.batch_size = batch_size
        self._vllm = vllm
        path = Path(model).expanduser()
        looks_local = path.exists() or model.startswith((".", "/", "~"))
        if looks_local and not (path / "config.json").is_file():
            raise LidrError(f"model folder {model} not found or has no config.json")
        try:
            self.llm = vllm.LLM(
                model=str(path) if looks_local else model,
                revision=revision,
                tokenizer_revision=revision,
                tensor_parallel_size=tensor_parallel_size,
                dtype=dtype,
                max_model_len=max_model_len,
                gpu_memory_utilization=gpu_memory_utilization,
                enforce_eager=enforce_eager,
                trust_remote_code=trust_remote_code,
                seed=seed,
            )
        except (OSError, ValueError) as e:  # missing/unreadable model, or a config vLLM rejects
            first_line = (str(e) or type(e).__name__).splitlines()[0]
            raise LidrError(f"cannot load model {model!r} with vLLM: {first_line}") from e

        self.tokenizer = self.llm.get_tokenizer()
        template = _chat_template(self.tokenizer)
        if template is None:
            raise LidrError(f"model {model!r} has no chat template; lidr needs an instruct (chat) model")
        # Same hash and revision as the transformers backend, so both share cache entries for the same model.
        self.template_hash = hashlib.sha256(template.encode()).hexdigest()[:16]
        if looks_local:
            self.model_revision = revision or local_model_revision(path)
        else:
            self.model_revision = _hub_commit(model, revision) or revision or "main"

    def _sampling(self, request: Request):
        s = request.sampling
        greedy = s.temperature == 0
        return self._vllm.SamplingParams(
            n=1,
            temperature=s.temperature,
            top_p=1.0 if greedy else s.top_p,
            max_tokens=s.max_new_tokens,
            repetition_penalty=s.repetition_penalty,
            # A per-request seed makes a sample independent of what else is in the batch (cacheable), and
            # distinct sample indexes of one prompt give distinct samples.
            seed=None if greedy else s.seed + request.sample_index,
            # We decode the token ids ourselves, as the transformers backend does: vLLM's incremental detokenizer
            # drops a trailing partial UTF-8 character, which would make the two backends' texts differ.
            detokenize=False,
            # vLLM returns these top k (plus the sampled token) per position, from the raw logits by default.
            logprobs=s.top_logprobs or None,
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        # Primed requests (assistant_prefix) continue a final assistant message; the rest get a generation prompt.
        groups: dict[bool, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.assistant_prefix is not None, []).append(i)
        for primed, idx in groups.items():
            for i, c in zip(idx, self._chat([requests[i] for i in idx], primed)):
                out[i] = c
        return out  # type: ignore[return-value]

    def _chat(self, requests: list[Request], primed: bool) -> list[Completion]:
        conversations = []
        for r in requests:
            msgs = r.chat()
            if primed:
                msgs.append({"role": "assistant", "content": r.assistant_prefix})
            conversations.append(msgs)
        try:
            outputs = self.llm.chat(
                conversations,
                [self._sampling(r) for r in requests],
                use_tqdm=False,
                add_generation_prompt=not primed,
                continue_final_message=primed,
            )
        except Exception as e:  # noqa: BLE001 - vLLM rejects a whole call for one bad prompt (e.g. too long)
            if len(requests) == 1:
                return [self._error(f"{type(e).__name__}: {(str(e) or '-').splitlines()[0]}")]
            # Halve until the bad requests are isolated: the good ones still run in batches.
            mid = len(requests) // 2
            return self._chat(requests[:mid], primed) + self._chat(requests[mid:], primed)
        return [self._completion(o, r.sampling.top_logprobs) for o, r in zip(outputs, requests)]

    def _completion(self, output, top_logprobs: int = 0) -> Completion:
        sample = output.outputs[0]
        reason = _FINISH.get(sample.finish_reason)
        if reason is None:
            return self._error(f"vLLM finished with {sample.finish_reason!r}")
        text = self.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
        logprobs = None
        if top_logprobs and sample.logprobs is not None:
            # One {token id: Logprob} dict per generated token; tokens decoded here since detokenize=False.
            positions = list(zip(sample.token_ids, sample.logprobs))
            if reason == "stop" and sample.stop_reason is None and positions:
                positions.pop()  # the end-of-sequence token, which the text (and the transformers backend) omit
            logprobs = tuple(
                TokenLogprob(self.tokenizer.decode([tid]), position[tid].logprob, tuple(
                    (self.tokenizer.decode([i]), lp.logprob)
                    for i, lp in sorted(position.items(), key=lambda kv: -kv[1].logprob)[:top_logprobs]))
                for tid, position in positions)
        return Completion(text, reason, len(sample.token_ids), self.model, self.model_revision, logprobs=logprobs)

    def _error(self, message: str) -> Completion:
        return Completion("", "error", 0, self.model, self.model_revision, error=message)

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()  # stops the engine process now rather than at interpreter exit
        del llm
        import gc

        gc.collect()


def _chat_template(tokenizer) -> str | None:
    """The tokenizer's chat template (vLLM may wrap the HF tokenizer)."""
    for tok in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        template = getattr(tok, "chat_template", None)
        if isinstance(template, str):
            return template
    return None


def _hub_commit(model: str, revision: str | None) -> str | None:
    """The commit of the Hub snapshot vLLM just loaded (the same value transformers reports as _commit_hash)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, revision=revision, local_files_only=True)).name
    except Exception:  # noqa: BLE001 - e.g. a model loaded from another cache layout: fall back to the name
        return None
