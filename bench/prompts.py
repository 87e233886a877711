"""Benchmark: loading prompt files (lidr_data.stages.prompts.load_prompts), the `prompts` stage of a build.

Two questions, each answered with figures and a ratio against a baseline measured in the same run:

1. What does the prompt language check (`prompts.check_language`, on by default) cost? The real parallel
   prompts of shared/data (Alpagasus, 1,000 items x 11 languages) are loaded with the check off and on, after a
   warm-up load that pays for the language-ID models once (reported apart: a build pays it once per process).
2. What does `--limit` cost on large files? N lines x 3 languages (default 1,000,000, ~230 bytes a line, made
   from the real prompts) loaded with `limit=5`, against the old way (every file parsed whole before the slice,
   as `read_records` does). Each variant runs in its own subprocess so its peak RSS (VmHWM) is its own.

    python bench/prompts.py [--lines 1000000] [--data ../shared/data] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGS11 = ["en", "ar", "de", "es", "fr", "it", "ja", "ko", "ru", "th", "zh"]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def language_check(prompts_dir: Path) -> None:
    from lidr_data.build.recipe import PromptsConfig
    from lidr_data.stages.prompts import load_prompts

    def timed(check: bool, langs: list[str]) -> tuple[float, object]:
        start = time.perf_counter()
        _, _, stats = load_prompts(PromptsConfig(source=str(prompts_dir), check_language=check), langs)
        return time.perf_counter() - start, stats

    for langs in (["en", "es", "ru", "de", "fr"], LANGS11):
        warm, _ = timed(True, langs)  # loads fastText and lingua's models for these languages
        off = min(timed(False, langs)[0] for _ in range(3))
        on, stats = min((timed(True, langs) for _ in range(3)), key=lambda r: r[0])
        n = sum(1 for _ in langs) * 1000
        print(f"{len(langs):2d} languages, {n:,} prompts: check off {off:.2f} s, check on {on:.2f} s "
              f"(+{1e6 * (on - off) / n:.0f} us/prompt, {on / off:.1f}x); first load with model warm-up "
              f"{warm:.2f} s; kept {stats.kept:,}, dropped {dict(stats.dropped) or 0}")


def make_files(prompts_dir: Path, folder: Path, lines: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "de", "fr"):
        texts = [json.loads(x)["instruction"] for x in (prompts_dir / f"{lang}.jsonl").read_text().splitlines()]
        with (folder / f"{lang}.jsonl").open("w", encoding="utf-8") as f:
            for i in range(lines):
                f.write(json.dumps({"id": f"p{i}", "instruction": texts[i % len(texts)]}, ensure_ascii=False) + "\n")


def limit_variant(folder: Path, variant: str) -> dict:
    from lidr_data.build.recipe import PromptsConfig
    from lidr_data.stages.prompts import load_prompts

    start = time.perf_counter()
    if variant == "old":
        from lidr_data.readers import read_records

        per_lang = {lang: [(str(r["id"]), r["instruction"]) for r in read_records(folder / f"{lang}.jsonl")]
                    for lang in ("en", "de", "fr")}
        order = list(dict.fromkeys(pid for rows in per_lang.values() for pid, _ in rows))[:5]
        kept = len(order) * 3
    else:
        _, _, stats = load_prompts(PromptsConfig(source=str(folder), limit=5), ["en", "de", "fr"])
        kept = stats.kept
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "kept": kept}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--variant", choices=["old", "new"], help=argparse.SUPPRESS)  # a subprocess's own run
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(limit_variant(args.folder, args.variant)))
        return
    prompts_dir = args.data / "prompts" / "alpagasus-0-1000"
    if not prompts_dir.is_dir():
        sys.exit(f"{prompts_dir}: not found (pass --data)")
    language_check(prompts_dir)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-prompts-"))
    folder = work / f"prompts-{args.lines}"
    if not (folder / "fr.jsonl").is_file():
        make_files(prompts_dir, folder, args.lines)
    size = sum(p.stat().st_size for p in folder.glob("*.jsonl")) / 1e6
    results = {}
    for variant in ("new", "old"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--folder", str(folder)],
                             capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.splitlines()[-1])
    new, old = results["new"], results["old"]
    print(f"--limit 5 on {args.lines:,} lines x 3 files ({size:,.0f} MB): load_prompts {new['seconds']:.2f} s, "
          f"peak RSS {new['peak_rss_mb']:.0f} MB; parsing every file first {old['seconds']:.2f} s, "
          f"{old['peak_rss_mb']:.0f} MB ({old['seconds'] / new['seconds']:.0f}x the time, "
          f"{old['peak_rss_mb'] / new['peak_rss_mb']:.1f}x the memory)")


if __name__ == "__main__":
    main()
