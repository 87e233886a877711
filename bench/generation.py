"""Benchmark: the toolkit's transformers backend against a bare `model.generate` loop, and a cached rerun.

On the same prompts and the tiny model (built into a temp dir), times
  (a) a bare loop: chat template -> left-padded batch -> `model.generate` -> decode, batch by batch;
  (b) `run_requests` with the transformers backend and a fresh request cache (same batch size, same settings);
  (c) `run_requests` again on the cache (b) filled: every request is a hit.
Prints best-of-N wall times and the ratios b/a (target <= 1.10) and c/b (target <= 0.05).

    python bench/generation.py [--prompts 64] [--batch-size 16] [--max-new-tokens 64] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SHARED_PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "alpagasus-0-1000" / "en.jsonl"


def load_prompts(n: int, path: Path) -> tuple[list[str], str]:
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            prompts = [json.loads(line)["instruction"] for _, line in zip(range(n), f)]
        return prompts, f"{len(prompts)} real prompts from {path}"
    topics = ["rivers", "bread", "chess", "volcanoes", "tea", "bridges", "owls", "glass"]
    prompts = [f"Write a short note about {topics[i % len(topics)]} number {i}." for i in range(n)]
    return prompts, f"{n} synthetic prompts ({path} not found)"


def bare_loop(model, tokenizer, chats, batch_size: int, max_new_tokens: int) -> list[str]:
    """What a user would write by hand with transformers: no cache, no keys, no progress bar."""
    import torch

    texts = []
    for i in range(0, len(chats), batch_size):
        prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in chats[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, repetition_penalty=1.1, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return texts


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(repeats: int, fn):
    runs = [timed(fn) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts-file", type=Path, default=SHARED_PROMPTS)
    # One thread by default: on a small shared machine, two threads contending with other processes made single
    # runs swing by 3x; one thread keeps (a) and (b) comparable. Pass 0 to keep torch's default.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from lidr_data.generation import Request, SamplingParams, load_generator
    from lidr_data.generation.cache import RequestCache
    from lidr_data.generation.runner import run_requests
    from lidr_data.tiny_model import build_tiny_model

    prompts, source = load_prompts(args.prompts, args.prompts_file)
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens)  # greedy, repetition penalty 1.1
    requests = [Request.from_messages(p, sampling) for p in prompts]
    chats = [r.chat() for r in requests]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen = load_generator("transformers", str(build_tiny_model(tmp / "model")), batch_size=args.batch_size)
        print(f"{source}; tiny model; batch {args.batch_size}; max_new_tokens {args.max_new_tokens}; "
              f"best of {args.repeats}; torch threads {torch.get_num_threads()}")

        bare_loop(gen.hf_model, gen.tokenizer, chats[: args.batch_size], args.batch_size, 4)  # warm-up

        # Time spent inside model.generate, per path: on a loaded machine the model time swings run to run,
        # while what the toolkit adds (keys, templates, tokenizing, cache commits) is the time outside it.
        in_generate = [0.0]
        hf_generate = gen.hf_model.generate

        def timed_generate(*a, **kw):
            start = time.perf_counter()
            try:
                return hf_generate(*a, **kw)
            finally:
                in_generate[0] += time.perf_counter() - start

        gen.hf_model.generate = timed_generate

        def bare():
            return bare_loop(gen.hf_model, gen.tokenizer, chats, args.batch_size, args.max_new_tokens)

        def fresh(run: int):
            cache = RequestCache(tmp / f"cache-{run}")
            result = run_requests(gen, requests, cache=cache, progress=False)
            cache.close()
            return result

        # (a) and (b) alternate, so load from other processes on a shared machine hits both alike.
        bare_times, fresh_times, bare_outside, fresh_outside = [], [], [], []
        for run in range(args.repeats):
            in_generate[0] = 0.0
            t_bare_run, bare_texts = timed(bare)
            bare_outside.append(t_bare_run - in_generate[0])
            in_generate[0] = 0.0
            t_fresh_run, (completions, _, stats) = timed(lambda r=run: fresh(r))
            fresh_outside.append(t_fresh_run - in_generate[0])
            bare_times.append(t_bare_run)
            fresh_times.append(t_fresh_run)
            print(f"  run {run + 1}: (a) {t_bare_run:.3f} s ({bare_outside[-1]:.3f} outside generate)  "
                  f"(b) {t_fresh_run:.3f} s ({fresh_outside[-1]:.3f} outside generate)", flush=True)
        gen.hf_model.generate = hf_generate
        t_bare, t_fresh = min(bare_times), min(fresh_times)
        added = min(fresh_outside) - min(bare_outside)
        assert stats.generated == len(requests), stats
        same = sum(c.text == t for c, t in zip(completions, bare_texts))
        n_tokens = sum(c.n_tokens for c in completions)

        cache = RequestCache(tmp / "cache-0")
        t_cached, (_, _, cstats) = best_of(args.repeats, lambda: run_requests(gen, requests, cache=cache,
                                                                               progress=False))
        assert cstats.generated == 0 and cstats.cache_hits == len(requests), cstats

    print(f"(a) bare model.generate loop   {t_bare:8.3f} s")
    print(f"(b) transformers backend       {t_fresh:8.3f} s   {len(requests) / t_fresh:7.1f} req/s  "
          f"{n_tokens / t_fresh:7.0f} tok/s  (same text as (a): {same}/{len(requests)})")
    print(f"    toolkit time outside model.generate, beyond the bare loop's: {added * 1000:.1f} ms "
          f"= {added / t_bare:.2%} of (a): b/a without the machine's noise ~ {(t_bare + added) / t_bare:.3f}")
    print(f"(c) fully cached rerun         {t_cached:8.3f} s")
    print(f"b/a = {t_fresh / t_bare:.3f}  (target <= 1.10)  {'OK' if t_fresh / t_bare <= 1.10 else 'MISSED'}")
    print(f"c/b = {t_cached / t_fresh:.4f} (target <= 0.05)  {'OK' if t_cached / t_fresh <= 0.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
