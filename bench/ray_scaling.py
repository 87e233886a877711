"""Benchmark: the Ray executor (`--executor ray`) from 1 to 2 workers on the tiny model, with start-up costs apart.

On one set of prompts (the tiny model, built into a temp dir; greedy, fresh request cache for every run):
  (a) the local executor: `run_requests` with the transformers backend in this process (the baseline);
  (b) the Ray executor with 1 and then 2 actors, on a 2-CPU Ray cluster started by this script
      (`ray start --head --block` on this machine, own temp dir and auth token, stopped afterwards).
Start-up is shown apart from generation: the cluster's start (`ray start` until its address is written), the
driver's connection (`ray.init`), and per pool size the actor pool's start (each actor imports torch and loads the
model), measured as a run of one batch per actor. Generation time is a full run's wall time less that start-up;
throughput is requests / generation time (best of --repeats runs each, as the machine is shared), and the ratios are 2 workers / 1 worker and each against local. The
outputs of every run are checked equal to the local ones.

Its cluster helper is the tests' (tests/generation/ray_cluster.py): run it from the repository root.

    python bench/ray_scaling.py [--prompts 384] [--max-new-tokens 48] [--batch-size 8] [--workers 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "generation"))

from ray_cluster import RayCluster  # noqa: E402

from lidr_data.generation import Request, SamplingParams, load_generator  # noqa: E402
from lidr_data.generation.cache import RequestCache  # noqa: E402
from lidr_data.generation.runner import run_requests  # noqa: E402

LANGS = ["What is the capital of France?", "¿Cuál es la capital de Francia?", "Quelle est la capitale de la France ?",
         "Was ist die Hauptstadt von Frankreich?", "Какая столица Франции?"]


def prompts(n: int, max_new_tokens: int) -> list[Request]:
    sampling = SamplingParams(max_new_tokens=max_new_tokens)
    return [Request.from_messages(f"{LANGS[i % len(LANGS)]} ({i}) " * (1 + i % 4), sampling) for i in range(n)]


def timed_run(generator, requests, cache_dir: Path) -> tuple[list, float]:
    cache = RequestCache(cache_dir)
    start = time.perf_counter()
    out, _, stats = run_requests(generator, requests, cache)
    seconds = time.perf_counter() - start
    cache.close()
    assert stats.generated == len(requests)
    return out, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=384)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3, help="best of N for every figure (fresh cache each time)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # each Ray actor gets one CPU (OMP_NUM_THREADS=1): the same for the baseline
    tmp = Path(tempfile.mkdtemp(prefix="lidr-bench-ray-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from lidr_data.tiny_model import build_tiny_model

    model = str(build_tiny_model(tmp / "tiny"))
    requests = prompts(args.prompts, args.max_new_tokens)
    print(f"{args.prompts} prompts, max_new_tokens {args.max_new_tokens}, batch size {args.batch_size}, "
          f"{os.cpu_count()} CPUs visible")

    local = load_generator("transformers", model, batch_size=args.batch_size)
    reference, local_s = timed_run(local, requests, tmp / "cache-local-0")
    for r in range(1, args.repeats):
        local_s = min(local_s, timed_run(local, requests, tmp / f"cache-local-{r}")[1])
    local.close()
    rows = [("local (in process)", 0.0, local_s, local_s)]

    t0 = time.perf_counter()
    with RayCluster(num_cpus=2) as cluster:
        cluster_start = time.perf_counter() - t0
        os.environ.update(cluster.auth_env())  # before ray is imported
        import ray

        from lidr_data.generation.ray_executor import RayConfig, connect, ray_loader

        t0 = time.perf_counter()
        connect(RayConfig(address=cluster.address))
        connect_s = time.perf_counter() - t0
        for n in args.workers:
            load = ray_loader(RayConfig(address=cluster.address, workers=n))
            generator = load("transformers", model, batch_size=args.batch_size)
            # One batch per actor: the pool's start-up (plus one batch, ~0.1 s here).
            startup_s = total_s = float("inf")
            for r in range(args.repeats):
                startup_s = min(startup_s, timed_run(generator, requests[: n * args.batch_size],
                                                     tmp / f"cache-start-{n}-{r}")[1])
                out, seconds = timed_run(generator, requests, tmp / f"cache-ray-{n}-{r}")
                assert out == reference, f"{n} worker(s): outputs differ from the local executor's"
                total_s = min(total_s, seconds)
            rows.append((f"ray, {n} worker{'s' * (n > 1)}", startup_s, total_s, total_s - startup_s))
        ray.shutdown()

    print(f"\nstart-up: Ray cluster (ray start --head, 2 CPUs) {cluster_start:.1f} s; driver connect (ray.init) "
          f"{connect_s:.1f} s")
    print("\n| executor | actor pool start s | total s | generation s | req/s | vs local |")
    print("|---|---|---|---|---|---|")
    local_rate = len(requests) / local_s
    rates = {}
    for name, startup_s, total_s, gen_s in rows:
        if gen_s <= 0.1 * total_s:  # within the noise of the start-up figure: no rate to speak of
            print(f"| {name} | {startup_s:.1f} | {total_s:.1f} | {gen_s:.1f} | n/a (more --prompts) | |")
            continue
        rates[name] = rate = len(requests) / gen_s
        print(f"| {name} | {startup_s:.1f} | {total_s:.1f} | {gen_s:.1f} | {rate:.0f} | {rate / local_rate:.2f}x |")
    if "ray, 1 worker" in rates and "ray, 2 workers" in rates:
        print(f"\n2 workers / 1 worker: generation throughput {rates['ray, 2 workers'] / rates['ray, 1 worker']:.2f}x; "
              "outputs equal to the local executor's in every run")

if __name__ == "__main__":
    main()
