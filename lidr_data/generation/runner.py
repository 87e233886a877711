"""Run requests through a generator with the request cache, reporting progress through a callback.

Cache hits are served first; the misses go to the backend as one work list (`Generator.stream`), which
returns them in batches (of `generator.batch_size` by default; as they finish on a Ray cluster), and each batch
is committed to the cache as soon as it arrives, which is what makes every stage resumable: a kill loses at most
the batches not yet committed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from lidr_data.generation.base import Completion, Generator, Request
from lidr_data.generation.cache import RequestCache
from lidr_data.progress import Progress, no_progress


@dataclass
class RunStats:
    requests: int = 0
    cache_hits: int = 0
    generated: int = 0
    errors: int = 0
    new_tokens: int = 0
    seconds: float = 0.0


def run_requests(
    generator: Generator,
    requests: Sequence[Request],
    cache: RequestCache | None = None,
    progress: Progress | None = None,
    description: str = "generating",
) -> tuple[list[Completion], list[str], RunStats]:
    """Complete `requests` in order; returns (completions, request keys, stats). `progress(description, total)`
    is advanced by requests done, cache hits first (none drawn by default)."""
    start = time.perf_counter()
    keys = [generator.request_key(r) for r in requests]
    results: dict[str, Completion] = cache.get_many(keys) if cache is not None else {}
    stats = RunStats(requests=len(requests), cache_hits=sum(k in results for k in keys))

    # Identical requests (same key) are generated once.
    todo: dict[str, Request] = {}
    for key, req in zip(keys, requests):
        if key not in results:
            todo.setdefault(key, req)
    todo_items = list(todo.items())
    multiplicity = Counter(keys)

    with (progress or no_progress)(description, len(requests)) as advance:
        advance(stats.cache_hits)
        for batch in generator.stream(todo_items):
            # Executors return batches in any order: results are joined by request key.
            stray = [k for k, _ in batch if k not in todo or k in results]
            if stray:
                raise AssertionError(f"backend returned {len(stray)} completion(s) for keys not asked for or "
                                     f"already done (first {stray[0]})")
            if cache is not None:
                cache.put_many(batch)
            for key, completion in batch:
                results[key] = completion
                stats.generated += 1
                stats.errors += completion.finish_reason == "error"
                stats.new_tokens += completion.n_tokens
            advance(sum(multiplicity[k] for k, _ in batch))
    missing = [k for k in todo if k not in results]
    if missing:
        raise AssertionError(f"backend returned no completion for {len(missing)} request(s) (first {missing[0]})")
    stats.seconds = time.perf_counter() - start
    return [results[k] for k in keys], keys, stats
