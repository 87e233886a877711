"""Benchmark the `openai` judge (a ChatJudge over the openai generation backend): judge-call throughput against a loopback server at concurrency 1 and at the
chosen concurrency, and the cost of a fully cached rerun. Then `lidr audit` (lidr_data.eval.audit.run_audit) on a
materialized synthetic version: pairs judged per second (two judgments per pair, both orders) at concurrency 1, 8
and 32, the fully cached rerun, and the same audit with the `length` judge (no judge call: what verifying,
sampling and writing cost) as the baseline.

The server (tests/servers/openai_server.py, a real ThreadingHTTPServer on 127.0.0.1, in its own process so it
does not share the client's GIL) answers each judgment after a fixed delay standing in for the judge model's
latency, with a letter and top_logprobs. The pairs are the
real GPT-3.5 / GPT-4-Turbo X-AlpacaEval outputs when ../shared/data is present, else synthetic texts.

    python bench/eval.py [--n 200] [--latency 0.05] [--concurrency 16] [--audit-sample 25]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # synthetic.py: the version the audit benchmark judges

from lidr_data.eval.judges import Pair, load_chat_judge  # noqa: E402
from tests.servers.openai_server import OpenAIServer, completion_response  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "x-alpacaeval" / "outputs"


def load_pairs(n: int) -> list[Pair]:
    pairs: list[Pair] = []
    for lang in ("de", "es", "fr", "ru", "en"):
        cand, ref = DATA / "gpt-3.5-turbo-0125" / f"{lang}.json", DATA / "gpt-4-turbo-2024-04-09" / f"{lang}.json"
        if not cand.is_file():
            break
        refs = json.loads(ref.read_text(encoding="utf-8"))
        for c, r in zip(json.loads(cand.read_text(encoding="utf-8")), refs):
            pairs.append(Pair(c["instruction"], lang, c["output"], r["output"]))
    if not pairs:
        pairs = [Pair(f"Question {i}?", "en", f"answer {i} " * 40, f"reply {i} " * 60) for i in range(n)]
    return pairs[:n]


class Handler:
    """Picklable server handler: wait `latency` seconds, then answer "A" with top_logprobs 0.7 / 0.3."""

    def __init__(self, latency: float):
        self.latency = latency

    def __call__(self, body: dict) -> dict:
        time.sleep(self.latency)
        reply = completion_response(body["model"], "A", "stop", 1)
        reply["choices"][0]["logprobs"] = {"content": [{"token": "A", "logprob": math.log(0.7), "top_logprobs": [
            {"token": "A", "logprob": math.log(0.7)}, {"token": "B", "logprob": math.log(0.3)}]}]}
        return reply


def serve(latency: float, urls, stop) -> None:
    with OpenAIServer(handler=Handler(latency), model_name="judge") as server:
        urls.put(server.base_url)
        stop.wait()
        urls.put((server.chat_count, server.max_in_flight))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="judgments per run")
    ap.add_argument("--latency", type=float, default=0.05, help="server seconds per judgment")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--audit-sample", type=int, default=25, help="audit: pairs per language and direction")
    ap.add_argument("--audit-concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()

    pairs = load_pairs(args.n)
    kb = sum(len(p.first) + len(p.second) + len(p.instruction) for p in pairs) / len(pairs) / 1000
    print(f"{len(pairs)} pairs ({kb:.1f} KB of text each), server latency {1000 * args.latency:.0f} ms/judgment")
    urls, stop = mp.Queue(), mp.Event()
    server = mp.Process(target=serve, args=(args.latency, urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=30)
    results = {}
    conc = f"concurrency {args.concurrency}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # One warm-up judgment: httpx loads httpcore/anyio/h11 on first use (~0.3 s, paid once per process).
            warm = load_chat_judge("judge", base_url=base_url)
            warm.judge(pairs[:1], progress=False)
            warm.close()
            for name, concurrency, cache in (("concurrency 1", 1, "c1"), (conc, args.concurrency, "cN"),
                                             ("cached rerun", args.concurrency, "cN")):
                judge = load_chat_judge("judge", base_url=base_url, cache_path=Path(tmp) / f"{cache}.sqlite",
                                        concurrency=concurrency)
                start, cpu = time.perf_counter(), time.process_time()
                verdicts = judge.judge(pairs, progress=False)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                judge.close()
                assert all(v.score is not None and abs(v.score - 0.7) < 1e-9 for v in verdicts)
                results[name] = seconds
                print(f"{name:>16}: {seconds:7.3f} s  {len(pairs) / seconds:9.1f} judgments/s  "
                      f"{judge.calls} judge requests  client CPU {1000 * cpu / len(pairs):.2f} ms/judgment")
        audit_bench(base_url, args)
    finally:
        stop.set()
        total, max_in_flight = urls.get(timeout=30)
        total -= 1  # the warm-up (GET /models checks are not chat requests)
        server.join(timeout=10)
    print(f"server: {total} requests in all, at most {max_in_flight} in flight")
    print(f"speed-up of {conc} over concurrency 1: {results['concurrency 1'] / results[conc]:.1f}x "
          f"(ideal {min(args.concurrency, len(pairs))}x; latency-bound floor at {conc}: "
          f"{args.latency * math.ceil(len(pairs) / args.concurrency):.2f} s)")
    print(f"cached rerun costs {100 * results['cached rerun'] / results[conc]:.1f}% of the uncached "
          f"{conc} run ({1000 * results['cached rerun'] / len(pairs):.3f} ms per judgment)")


def audit_bench(base_url: str, args: argparse.Namespace) -> None:
    from synthetic import make_run

    from lidr_data.build.materialize import materialize
    from lidr_data.eval.audit import AuditConfig, run_audit

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        version = materialize(make_run(root / "runs" / "bench" / "iter-1", n_prompts=4 * args.audit_sample),
                              root / "store", progress=False)

        def audit(name: str, judge: str, concurrency: int, cache: str) -> float:
            options = {"base_url": base_url, "concurrency": concurrency} if judge == "openai" else {}
            cfg = AuditConfig(ref=str(version), judge=judge, judge_model="judge" if judge == "openai" else None,
                              judge_options=options, sample=args.audit_sample, out=root / "audits" / name,
                              cache=root / "caches" / cache)
            start = time.perf_counter()
            result = run_audit(cfg)
            seconds = time.perf_counter() - start
            n = result.info["counts"]["sampled"]
            print(f"{name:>22}: {seconds:7.3f} s  {n / seconds:9.1f} pairs/s  ({n} pairs, "
                  f"{result.info['judge_calls']} judge calls, {result.info['cache_hits']} cache hits)")
            return seconds

        print(f"\naudit of a {version.name} version, --sample {args.audit_sample} per language and direction, "
              f"server latency {1000 * args.latency:.0f} ms/judgment")
        base = audit("length judge (baseline)", "length", 1, "none")
        timed = {c: audit(f"openai, concurrency {c}", "openai", c, f"c{c}") for c in args.audit_concurrency}
        top = max(args.audit_concurrency)
        cached = audit(f"cached rerun (c {top})", "openai", top, f"c{top}")
        low = min(args.audit_concurrency)
        print(f"speed-up of concurrency {top} over {low}: {timed[low] / timed[top]:.1f}x; cached rerun "
              f"{100 * cached / timed[top]:.1f}% of the uncached concurrency-{top} run and "
              f"{cached / base:.2f}x the length-judge audit")


if __name__ == "__main__":
    main()
