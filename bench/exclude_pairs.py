"""Benchmark: the filter stage with pair-filter files (`filters.exclude_pairs`, issue 13) vs without, same corpus.

The corpus is bench/postprocess.py's planted-defect corpus of real texts; it is tagged once, then the filter stage
runs alternately without a pair-filter file (the baseline) and with one listing a share of the pair ids (plus as
many ids that match no pair), in the same process. It prints seconds per run (median of `--repeats`), the ratio
to the baseline, the ids listed and the pairs dropped as judge_reversed.

    python bench/exclude_pairs.py [--pairs 100000] [--share 0.1] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from postprocess import DATA, LANGS, build_corpus  # noqa: E402

from lidr_data.stages.filter import FilterConfig, filter_pairs, read_pair_filter  # noqa: E402
from lidr_data.stages.tag import TagConfig, tag_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--share", type=float, default=0.1, help="share of the pair ids the filter file lists")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark builds its corpus from the shared real data")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lidr-bench-exclude-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "pairs_raw.parquet"
    t = time.perf_counter()
    build_corpus(args.pairs, raw, seed=0)
    print(f"corpus: {args.pairs:,} pairs in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    tag_pairs(raw, work / "tagged.parquet", TagConfig(), LANGS)
    print(f"tag (once): {time.perf_counter() - t:.1f}s")

    ids = pq.read_table(raw, columns=["pair_id"]).column("pair_id").to_pylist()
    listed = ids[:: max(1, round(1 / args.share))] if args.share > 0 else []
    unknown = [f"unknown-{i:012d}" for i in range(len(listed))]
    path = work / "judge_reversed.json"
    path.write_text(json.dumps({"kind": "lidr-pair-filter", "reason": "judge_reversed", "audit": None,
                                "pair_ids": sorted(listed + unknown)}), encoding="utf-8")
    t = time.perf_counter()
    exclusions = [read_pair_filter(path)]
    read_s = time.perf_counter() - t

    times: dict[str, list[float]] = {"baseline": [], "exclude_pairs": []}
    dropped = {}
    for _ in range(args.repeats):  # alternating, so that a busy moment of the machine hits both alike
        for name, ex in (("baseline", []), ("exclude_pairs", exclusions)):
            t = time.perf_counter()
            stats = filter_pairs(raw, work / "tagged.parquet", work / f"kept-{name}.parquet",
                                 work / f"dropped-{name}.parquet", FilterConfig(), "en", ex)
            times[name].append(time.perf_counter() - t)
            dropped[name] = stats.dropped
    base = statistics.median(times["baseline"])
    with_ex = statistics.median(times["exclude_pairs"])
    print(f"pair-filter file: {len(listed):,} listed ids of pairs + {len(unknown):,} ids matching none; "
          f"read and checked in {read_s:.2f}s")
    print(f"filter without the file: {base:.2f}s (median of {args.repeats}: "
          f"{', '.join(f'{x:.2f}' for x in times['baseline'])})")
    print(f"filter with the file:    {with_ex:.2f}s (median of {args.repeats}: "
          f"{', '.join(f'{x:.2f}' for x in times['exclude_pairs'])}); ratio {with_ex / base:.2f}x")
    others = {k: v for k, v in dropped["exclude_pairs"].items() if k != "judge_reversed"}
    print(f"dropped as judge_reversed: {dropped['exclude_pairs'].get('judge_reversed', 0):,} (listed pairs a "
          f"built-in rule drops keep that rule's reason); the other reasons' counts equal the baseline's: "
          f"{others == dropped['baseline']}")

if __name__ == "__main__":
    main()
