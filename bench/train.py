"""Benchmark: `lidr train` against the same `DPOTrainer` call written directly.

On one dataset version (synthetic pairs in the published schema, or real texts from ../shared/data when present)
and two random models built offline (the tiny test model, and a larger one from `lidr tiny-model` options,
~100M parameters by default, where step time dominates), runs in separate worker processes (so each peak RSS is
its own), alternating wrapper and bare:
  (a) bare: `load_dataset("parquet", ...)` -> `DPOTrainer(model=path, args=DPOConfig(loss_type=["sigmoid","sft"],
      ...), processing_class=tokenizer).train()` -> `save_model`: what a user writes by hand;
  (b) `lidr_data.train.dpo.main([...])`: resolve + verify + content-keyed load, template and length checks, the
      per-sequence NLL override, staged output, train_manifest.json and model card.
Prints, per model: steps/s from the median optimizer-step time (the first, warm-up step left out; a median
because this project's 2-core machines are shared and single steps catch other jobs), whole-run wall time, peak
RSS, and the ratios wrapper / bare (target: step time ratio <= 1.05 on the larger model).

Its version is made by the tests' `synthetic.make_run` (test support, not in the package):

    PYTHONPATH=tests python bench/train.py [--steps 6] [--batch-size 2] [--max-length 256] [--large-hidden 1024] [--large-layers 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ["--per_device_train_batch_size", "{batch}", "--max_length", "{max_length}", "--max_steps", "{steps}",
            "--learning_rate", "1e-5", "--save_strategy", "no", "--logging_steps", "1000", "--report_to", "none",
            "--seed", "0"]


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _step_timer():
    """A TrainerCallback timing every optimizer step; the first one (warm-up) is left out of the rate."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def worker(kind: str, version: str, model: str, out: str, settings: list[str]) -> dict:
    """One run in this process; returns its figures."""
    import torch
    import trl

    torch.manual_seed(0)
    timer = _step_timer()
    start = time.perf_counter()
    if kind == "bare":
        from datasets import load_dataset
        from transformers import AutoTokenizer
        from trl import DPOConfig, DPOTrainer, TrlParser

        (args,) = TrlParser((DPOConfig,)).parse_args_and_config(
            settings + ["--output_dir", out, "--bf16", "False", "--gradient_checkpointing", "False",
                        "--use_cpu", "True", "--loss_type", "sigmoid", "sft", "--loss_weights", "1.0", "1.0"])
        data = load_dataset("parquet", data_files=f"{version}/data/all/*.parquet", split="train")
        trainer = DPOTrainer(model=model, args=args, train_dataset=data,
                             processing_class=AutoTokenizer.from_pretrained(model), callbacks=[timer])
        trainer.train()
        trainer.save_model(out)
    else:
        # The wrapper, with the same timer added to whatever trainer it builds.
        original = trl.DPOTrainer.__init__

        def with_timer(self, *a, **k):
            k["callbacks"] = [*(k.get("callbacks") or []), timer]
            original(self, *a, **k)

        trl.DPOTrainer.__init__ = with_timer
        from lidr_data.train.dpo import main

        code = main([version, "--model", model, "--output", out, *settings])
        assert code == 0, "lidr train failed"
    wall = time.perf_counter() - start
    steps = sorted(timer.times[1:] or timer.times)
    median = steps[len(steps) // 2] if len(steps) % 2 else (steps[len(steps) // 2 - 1] + steps[len(steps) // 2]) / 2
    return {"kind": kind, "threads": torch.get_num_threads(), "step_times": [round(t, 2) for t in timer.times],
            "wall_s": wall, "loop_s": sum(steps), "median_step_s": median, "steps_per_s": 1 / median,
            "peak_rss_mb": peak_rss_mb()}


def run_worker(kind: str, version: Path, model: Path, out: Path, settings: list[str], env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, str(version), str(model), str(out), json.dumps(settings)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_version(folder: Path, n_prompts: int) -> tuple[Path, str]:
    from synthetic import make_run

    from lidr_data.build.materialize import materialize

    texts, what = None, f"synthetic pairs ({n_prompts} prompts x 3 languages, both directions)"
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "generations" / "llama-3-8b-instruct-M0"
    if (shared / "en.responses.jsonl").is_file():
        rows = [json.loads(x) for x in (shared / "en.responses.jsonl").read_text(encoding="utf-8").splitlines()[:64]]
        en = {"prompt": [r["instruction"] for r in rows], "answer": [r["response"] for r in rows]}
        texts = {lang: en for lang in ("en", "de", "fr", "es")}  # real lengths; the language does not matter here
        what = f"pairs with real Llama-3-8B answers as texts ({n_prompts} prompts x 3 languages)"
    run = make_run(folder / "runs" / "bench" / "iter-1", n_prompts=n_prompts, name="bench", texts=texts)
    return materialize(run, folder / "store", progress=False), what


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--large-hidden", type=int, default=1024)
    p.add_argument("--large-layers", type=int, default=12)
    p.add_argument("--repeats", type=int, default=2, help="runs of each kind per model (best loop time kept)")
    p.add_argument("--threads", type=int, default=0, help="OMP threads per worker (0: torch's default)")
    args = p.parse_args()

    from lidr_data.files import remove_tree

    # Models, version and outputs: 41 MB at the smallest settings, over 1 GB at the defaults; removed however the
    # run ends (a failed worker, Ctrl-C), the read-only version included.
    tmp = Path(tempfile.mkdtemp(prefix="lidr-bench-train-"))
    try:
        _run(args, tmp)
    finally:
        remove_tree(tmp)


def _run(args: argparse.Namespace, tmp: Path) -> None:
    from lidr_data.tiny_model import build_tiny_model

    version, what = make_version(tmp, args.prompts)
    models = {"tiny": build_tiny_model(tmp / "tiny")}
    models["large"] = build_tiny_model(tmp / "large", hidden_size=args.large_hidden, num_layers=args.large_layers)
    settings = [s.format(batch=args.batch_size, max_length=args.max_length, steps=args.steps) for s in SETTINGS]
    env = {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"data: {what}; {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}")
    for name, model in models.items():
        import torch
        from transformers import AutoModelForCausalLM

        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
        del torch
        best: dict[str, dict] = {}
        for i in range(args.repeats):
            for kind in ("bare", "lidr"):  # alternate, so drifts of the shared machine hit both
                r = run_worker(kind, version, model, tmp / f"out-{name}-{kind}-{i}", settings, env)
                if kind not in best or r["median_step_s"] < best[kind]["median_step_s"]:
                    best[kind] = r
        b, w = best["bare"], best["lidr"]
        print(f"\n{name} model ({n_params / 1e6:.1f}M parameters), best of {args.repeats}:")
        print(f"  {'':6} {'steps/s':>9} {'median step s':>14} {'wall s':>8} {'peak RSS MB':>12}  step times s")
        for label, r in (("bare", b), ("lidr", w)):
            print(f"  {label:6} {r['steps_per_s']:9.3f} {r['median_step_s']:14.2f} {r['wall_s']:8.2f} "
                  f"{r['peak_rss_mb']:12.0f}  {r['step_times']}")
        print(f"  wrapper / bare: step time {w['median_step_s'] / b['median_step_s']:.3f}, wall time "
              f"{w['wall_s'] / b['wall_s']:.3f}, peak RSS {w['peak_rss_mb'] / b['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, version, model, out, settings = sys.argv[2:7]
        print(json.dumps(worker(kind, version, model, out, json.loads(settings))))
    else:
        main()
