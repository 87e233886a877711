"""Benchmark: the toolkit's transformers backend against a bare `model.generate` loop, and a cached rerun.

On the same prompts, batches and settings (greedy, repetition penalty 1.1, as in the paper), times
  (a) a bare loop: chat template -> left-padded batch -> `model.generate` -> decode, batch by batch;
  (b) `run_requests` with the transformers backend and a fresh request cache, as `lidr generate` runs it;
  (c) `run_requests` again on the cache (b) filled: every request is a hit.
The backend batches requests in the order given; `--order both` also times the bare loop on the prompts sorted
by token length (longest first, so each batch pads less) to show what sorting would gain. (a) and (b) alternate run by
run (ABBA) in one process, so load from other jobs on a shared machine falls on both alike; figures are medians.
Prints tokens/s, the ratios b/a (target <= 1.05) and c/b (target <= 0.05), and the load average.

    python bench/generation.py [--model PATH] [--dtype float32 bfloat16] [--batch-size 4 8] [--prompts 64]
        [--langs en es de fr] [--max-new-tokens 64] [--repeats 5] [--threads 1] [--order given|both]

Without `--model` it builds the tiny random model (`lidr tiny-model`) in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SHARED_PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "alpagasus-0-1000"


def load_prompts(n: int, folder: Path, langs: list[str]) -> tuple[list[str], str]:
    """`n` prompts taken in turn from each language's file (en, es, de, fr, en, ...), so lengths mix as in a
    build; synthetic prompts when the shared data is absent."""
    files = [folder / f"{lang}.jsonl" for lang in langs]
    if all(f.is_file() for f in files):
        per_lang = []
        for f in files:
            with f.open(encoding="utf-8") as fh:
                per_lang.append([json.loads(line)["instruction"] for _, line in zip(range(n), fh)])
        prompts = [per_lang[i % len(langs)][i // len(langs)] for i in range(n)]
        return prompts, f"{len(prompts)} real Alpagasus prompts ({'/'.join(langs)} in turn) from {folder}"
    topics = ["rivers", "bread", "chess", "volcanoes", "tea", "bridges", "owls", "glass"]
    prompts = [f"Write a short note about {topics[i % len(topics)]} number {i}." for i in range(n)]
    return prompts, f"{n} synthetic prompts ({folder} not found)"


def count_tokens(ids: list[int], stop_ids: set[int]) -> int:
    """Generated tokens counted as the backend counts them: up to and including the first stop token."""
    return next((j + 1 for j, t in enumerate(ids) if t in stop_ids), len(ids))


def bare_loop(model, tokenizer, chats, batch_size: int, max_new_tokens: int,
              stop_ids: set[int]) -> tuple[list[str], int]:
    """What a user would write by hand with transformers: no cache, no keys, no progress bar."""
    import torch

    texts, n_tokens = [], 0
    for i in range(0, len(chats), batch_size):
        prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in chats[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, repetition_penalty=1.1, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        generated = out[:, enc["input_ids"].shape[1] :]
        n_tokens += sum(count_tokens(row, stop_ids) for row in generated.tolist())
        texts += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return texts, n_tokens


def load_str() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def bench_dtype(model: str, dtype: str, requests: list, args: argparse.Namespace, orders: list[str],
                tmp: Path) -> list[dict]:
    """Every batch size for one dtype: (a) and (b) alternating (and (a) on sorted prompts); then (c)."""
    from lidr_data.generation import load_generator
    from lidr_data.generation.cache import RequestCache
    from lidr_data.generation.runner import run_requests

    gen = load_generator("transformers", model, batch_size=args.batch_size[0], dtype=dtype)
    stop_ids = gen._stop_ids
    # Sorted by token length, longest first (ties in the prompts' order): what a length-sorting backend would do.
    lengths = [len(gen.tokenizer(gen.render(r), add_special_tokens=False)["input_ids"]) for r in requests]
    by_length = sorted(range(len(requests)), key=lambda i: (-lengths[i], i))
    position = {i: j for j, i in enumerate(by_length)}
    chats = {"unsorted": [r.chat() for r in requests], "sorted": [requests[i].chat() for i in by_length]}
    bare_loop(gen.hf_model, gen.tokenizer, chats["unsorted"][:2], 2, 4, stop_ids)  # warm-up

    # Time spent inside model.generate, per path: on a loaded machine the model time swings run to run, while
    # what the toolkit adds (keys, templates, tokenizing, cache commits) is the time outside it.
    in_generate = [0.0]
    hf_generate = gen.hf_model.generate

    def timed_generate(*a, **kw):
        start = time.perf_counter()
        try:
            return hf_generate(*a, **kw)
        finally:
            in_generate[0] += time.perf_counter() - start

    gen.hf_model.generate = timed_generate
    summary, cache_dir = [], None
    for batch_size in args.batch_size:
        gen.batch_size = batch_size
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {
            ("bare", order): [] for order in orders} | {("toolkit", "unsorted"): []}
        texts: dict[tuple[str, str], list[str]] = {}
        n_tok: dict[tuple[str, str], int] = {}
        for run in range(args.repeats):
            line = []
            # ABBA: odd runs start with the toolkit, so neither path always runs first (warm caches, load drift).
            steps = [("bare", o) for o in orders] + [("toolkit", "unsorted")]
            for path, order in steps if run % 2 == 0 else steps[::-1]:
                in_generate[0] = 0.0
                start = time.perf_counter()
                if path == "bare":
                    out_texts, n = bare_loop(gen.hf_model, gen.tokenizer, chats[order], batch_size,
                                             args.max_new_tokens, stop_ids)
                    if order == "sorted":  # back to the prompts' order, to compare texts row by row
                        out_texts = [out_texts[position[i]] for i in range(len(requests))]
                else:
                    cache_dir = tmp / f"cache-{dtype}-{batch_size}-{run}"
                    cache = RequestCache(cache_dir)
                    completions, _, stats = run_requests(gen, requests, cache=cache, progress=False)
                    cache.close()
                    assert stats.generated == len(requests) and not stats.errors, stats
                    out_texts, n = [c.text for c in completions], stats.new_tokens
                t = time.perf_counter() - start
                runs[path, order].append((t, t - in_generate[0]))
                texts[path, order], n_tok[path, order] = out_texts, n
                line.append(f"{'(a)' if path == 'bare' else '(b)'}{' sorted' if order == 'sorted' else ''} {t:.2f} s")
            print(f"  {dtype} batch {batch_size} run {run + 1}: {'; '.join(line)}; load {load_str()}", flush=True)

        def med(key: tuple[str, str], i: int = 0, runs: dict = runs) -> float:
            return statistics.median(t[i] for t in runs[key])

        order = "unsorted"
        a, b = med(("bare", order)), med(("toolkit", order))
        added = med(("toolkit", order), 1) - med(("bare", order), 1)
        same = sum(x == y for x, y in zip(texts["bare", order], texts["toolkit", order]))
        row = dict(dtype=dtype, batch=batch_size, bare=a, toolkit=b, ratio=b / a,
                   bare_tps=n_tok["bare", order] / a, toolkit_tps=n_tok["toolkit", order] / b,
                   added_ms=added * 1000, same=same)
        summary.append(row)
        print(f"{dtype} batch {batch_size}: (a) bare {a:7.2f} s {row['bare_tps']:6.1f} tok/s"
              f" | (b) toolkit {b:7.2f} s {row['toolkit_tps']:6.1f} tok/s | b/a = {b / a:.3f} (target <= 1.05)"
              f" | toolkit time outside generate beyond the bare loop's {added * 1000:.0f} ms"
              f" | same text {same}/{len(requests)}", flush=True)
        if len(orders) == 2:
            ratio = med(("bare", "sorted")) / med(("bare", "unsorted"))
            same = sum(x == y for x, y in zip(texts["bare", "sorted"], texts["bare", "unsorted"]))
            print(f"{dtype} batch {batch_size}: bare loop, prompts sorted by length / as given: {ratio:.3f} "
                  f"(same text {same}/{len(requests)})", flush=True)
    gen.hf_model.generate = hf_generate

    # (c) the last fresh cache again: every request is a hit.
    cache = RequestCache(cache_dir)
    start = time.perf_counter()
    _, _, cstats = run_requests(gen, requests, cache=cache, progress=False)
    t_cached = time.perf_counter() - start
    cache.close()
    assert cstats.generated == 0 and cstats.cache_hits == len(requests), cstats
    print(f"{dtype}: (c) fully cached rerun {t_cached:.3f} s; c/b = {t_cached / summary[-1]['toolkit']:.4f} "
          f"(target <= 0.05)", flush=True)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the tiny random model, built in a temp dir)")
    ap.add_argument("--dtype", nargs="+", default=["float32"], help="torch dtypes to load the model in, in turn")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--langs", nargs="+", default=["en"], help="prompt files (languages) taken in turn")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[16])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts-dir", type=Path, default=SHARED_PROMPTS)
    ap.add_argument("--order", choices=["given", "both"], default="given",
                    help="given: the prompts' own order; both: also the bare loop on prompts sorted by length")
    # One thread by default: on a small shared machine, two threads contending with other processes made single
    # runs swing by 3x; one thread keeps (a) and (b) comparable. Pass 0 to keep torch's default.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from lidr_data.generation import Request, SamplingParams
    from lidr_data.tiny_model import build_tiny_model

    prompts, source = load_prompts(args.prompts, args.prompts_dir, args.langs)
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens)  # greedy, repetition penalty 1.1
    requests = [Request.from_messages(p, sampling) for p in prompts]
    orders = ["unsorted", "sorted"] if args.order == "both" else ["unsorted"]
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or str(build_tiny_model(tmp / "model"))
        print(f"{source}; model {args.model or 'tiny (random)'}; max_new_tokens {args.max_new_tokens}; "
              f"{args.repeats} alternating runs per path, medians; torch threads {torch.get_num_threads()}; "
              f"load average {load_str()}", flush=True)
        for dtype in args.dtype:
            summary += bench_dtype(model, dtype, requests, args, orders, tmp)

    print(f"load average at the end {load_str()}")
    print("| dtype | batch | (a) bare | (b) toolkit | b/a | toolkit outside generate, beyond bare | same text |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['dtype']} | {r['batch']} | {r['bare']:.2f} s, {r['bare_tps']:.1f} tok/s | "
              f"{r['toolkit']:.2f} s, {r['toolkit_tps']:.1f} tok/s | {r['ratio']:.3f} | {r['added_ms']:.0f} ms | "
              f"{r['same']}/{len(requests)} |")


if __name__ == "__main__":
    main()
