"""Benchmark: an end-to-end `lidr iterate` on the demo recipe and the tiny model, timed step by step.

Runs, in fresh work folders under one temporary folder:
  (a) `lidr iterate RECIPE --iterations N`: wall time, and each step's own time as `W/iterate.json` records it
      (build, materialize, train, eval per iteration), summed by kind;
  (b) the baseline: the very same step commands (`lidr build`, `lidr train`, `lidr eval ...`, taken from the
      loop's plan) run one after the other by a bare loop, with no fingerprints, state file or summary: what a
      user chaining the commands by hand runs. The ratio (a) / (b) is the loop's own cost;
  (c) `lidr iterate` again on the finished folder of (a): every step is skipped (the cost of a resumed loop that
      has nothing left to do).

    python bench/iterate.py [--recipe recipes/demo.yaml] [--iterations 2]

Figures on a shared 2-core machine vary by ~1.5x from hour to hour: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def iterate(recipe: str, iterations: int, workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lidr_data.cli", "iterate", recipe, "--iterations", str(iterations),
                    "--workdir", str(workdir)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def bare(recipe: str, iterations: int, workdir: Path) -> tuple[float, dict[str, float]]:
    """The loop's step commands, run by hand (the per-iteration recipes the loop writes are written the same way)."""
    from argparse import Namespace

    import yaml

    from lidr_data.commands.iterate import make_plan
    from lidr_data.files import write_text_atomic
    from lidr_data.iterate import iteration_recipe, plan_steps

    plan = make_plan(Namespace(recipe=recipe, iterations=iterations, workdir=workdir, slice_size=None,
                               publish=None, executor="local", ray_address=None))
    started = time.perf_counter()
    (workdir / "iterate").mkdir(parents=True)
    write_text_atomic(workdir / "iterate" / "train.yaml", yaml.safe_dump(plan.train))
    for t in range(1, iterations + 1):
        write_text_atomic(workdir / "iterate" / f"iter-{t}.recipe.yaml", yaml.safe_dump(iteration_recipe(plan, t)))
    steps = {}
    for step in plan_steps(plan):
        t0 = time.perf_counter()
        subprocess.run(step.argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        steps[step.id] = time.perf_counter() - t0
    return time.perf_counter() - started, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "demo.yaml"))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                        help="first run the bare steps once, untimed (cold file caches, model and language-ID "
                        "loads would otherwise fall on whichever variant runs first)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="lidr-bench-iterate-") as tmp:
        os.environ["HF_HOME"] = str(Path(tmp) / "hf")  # no stale `datasets` cache (and nothing left behind)
        loop_dir, bare_dir = Path(tmp) / "loop", Path(tmp) / "bare"
        if args.warmup:
            bare(args.recipe, args.iterations, Path(tmp) / "warmup")
        wall = iterate(args.recipe, args.iterations, loop_dir)
        steps = json.loads((loop_dir / "iterate.json").read_text())["steps"]
        bare_wall, bare_steps = bare(args.recipe, args.iterations, bare_dir)
        rerun = iterate(args.recipe, args.iterations, loop_dir)
    print(f"lidr iterate {Path(args.recipe).name} --iterations {args.iterations} (cpu count {os.cpu_count()})")
    print(f"{'step':<16}{'lidr iterate s':>16}{'bare s':>10}")
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for step, record in steps.items():
        print(f"{step:<16}{record['seconds']:>16.1f}{bare_steps.get(step, float('nan')):>10.1f}")
        by_kind[record["kind"]][0] += record["seconds"]
        by_kind[record["kind"]][1] += bare_steps.get(step, 0.0)
    for kind, (loop_s, bare_s) in by_kind.items():
        print(f"{'all ' + kind:<16}{loop_s:>16.1f}{bare_s:>10.1f}")
    print(f"{'wall':<16}{wall:>16.1f}{bare_wall:>10.1f}   ratio loop/bare {wall / bare_wall:.3f}")
    print(f"rerun of the finished loop (every step skipped): {rerun:.1f} s")


if __name__ == "__main__":
    main()
