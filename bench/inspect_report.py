"""Benchmark: `lidr inspect` and a typical `lidr sql` aggregate on a 1M-pair version, against the same report
computed with `datasets` + pandas, in the same run. Prints wall time and peak RSS of each, and the ratios.

The version is synthetic but made of real text: prompts from the LIDR paper's Alpagasus set and answers from the
real GPT-4-Turbo X-AlpacaEval outputs and Llama-3-8B-Instruct generations in shared/data (about 2 KB per pair).
It is built once under --workdir and reused. Each measurement runs in its own process (peak RSS from wait4);
the `datasets` baseline starts from an empty datasets cache, as a first `load_dataset` does.

Its run folder is made by the tests' `synthetic.make_run` (test support, not in the package): run it with
PYTHONPATH=tests from the repository root.

    PYTHONPATH=tests python bench/inspect_report.py      # 1,000,000 pairs (building it takes ~10 min on 2 cores)
    PYTHONPATH=tests python bench/inspect_report.py --pairs 100000        # quicker
    PYTHONPATH=tests python bench/inspect_report.py --only lidr_sql --only lidr_sql_unsandboxed   # the cost of the sql sandbox

Memory: the datasets + pandas baseline holds every text as a Python object; at 1M pairs it peaked at 17 GB here.
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

# This file is named like the stdlib module `inspect`: keep its folder off sys.path so that `import inspect` in
# the libraries imported below (dataclasses, pandas, torch...) finds the stdlib module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

SHARED = Path(os.environ.get("LIDR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
LANGS = ("de", "es", "fr", "ru")
SQL = ("SELECT lang, direction, count(*) AS pairs, avg(chosen_chars) AS chosen_chars, "
       "avg((chosen_lang = lang)::INT) AS chosen_agree, avg((rejected_lang = lang)::INT) AS rejected_agree "
       "FROM pairs GROUP BY ALL ORDER BY ALL")
# A query that reads the texts (the sandbox scans them through Arrow instead of DuckDB's own Parquet reader).
SQL_TEXT = ("SELECT lang, count(DISTINCT hash(chosen_text)) AS distinct_chosen, avg(length(rejected_text)) AS rej "
            "FROM pairs GROUP BY lang ORDER BY lang")


def real_texts() -> dict:
    texts = {}
    for lang in ("en", *LANGS):
        prompts = [json.loads(line)["instruction"] for line in
                   (SHARED / "prompts" / "alpagasus-0-1000" / f"{lang}.jsonl").read_text().splitlines()]
        outputs = json.loads((SHARED / "x-alpacaeval" / "outputs" / "gpt-4-turbo-2024-04-09" / f"{lang}.json").read_text())
        answers = [o["output"] for o in outputs if o["output"].strip()]
        if lang == "en":
            answers += [json.loads(line)["response"] for line in
                        (SHARED / "generations" / "llama-3-8b-instruct-M0" / "en.responses.jsonl").read_text().splitlines()]
        texts[lang] = {"prompt": prompts, "answer": answers}
    return texts


def build(workdir: Path, pairs: int) -> Path:
    from synthetic import make_run

    from lidr_data.build.materialize import materialize

    version = workdir / "store" / f"bench-{pairs}" / "iter-1"
    if (version / "manifest.json").is_file():
        return version
    n_prompts = int(pairs / (2 * len(LANGS)) / 0.87) + 1  # ~13% of the synthetic pairs are dropped
    t = time.perf_counter()
    run = make_run(workdir / "runs" / f"bench-{pairs}" / "iter-1", n_prompts=n_prompts, langs=LANGS,
                   name=f"bench-{pairs}", texts=real_texts())
    print(f"built run folder in {time.perf_counter() - t:.0f}s", flush=True)
    t = time.perf_counter()
    version = materialize(run, workdir / "store", progress=False)
    print(f"materialized in {time.perf_counter() - t:.0f}s", flush=True)
    return version


# ------------------------------------------------------------------------------------------- workers


def worker_lidr_inspect(version: str) -> dict:
    from lidr_data.inspect import build_report
    from lidr_data.inspect_page import render_html

    report = build_report(version)
    page = render_html(report)
    return {"pairs": report.pairs, "suspicious": len(report.suspicious), "html_bytes": len(page),
            "exact_dups": report.duplicates["exact_pairs"]}


def worker_lidr_sql(version: str) -> dict:
    from lidr_data.sql import query

    table = query(version, SQL)
    return {"rows": table.num_rows, "pairs": sum(table.column("pairs").to_pylist())}


def _unsandboxed(version: str, sql: str):
    """Baseline for the sandbox's cost: the same views over DuckDB's own Parquet reader (`sandbox=False`)."""
    from lidr_data.sql import connect, tables_for

    con = connect(tables_for(version), sandbox=False)
    return con.sql(sql).to_arrow_table()


def worker_lidr_sql_unsandboxed(version: str) -> dict:
    table = _unsandboxed(version, SQL)
    return {"rows": table.num_rows, "pairs": sum(table.column("pairs").to_pylist())}


def worker_lidr_sql_text(version: str) -> dict:
    from lidr_data.sql import query

    table = query(version, SQL_TEXT)
    return {"rows": table.num_rows, "distinct": sum(table.column("distinct_chosen").to_pylist())}


def worker_lidr_sql_text_unsandboxed(version: str) -> dict:
    table = _unsandboxed(version, SQL_TEXT)
    return {"rows": table.num_rows, "distinct": sum(table.column("distinct_chosen").to_pylist())}


def _flat(col):
    return col.map(lambda m: None if m is None or len(m) == 0 else m[-1]["content"])


def worker_pandas_inspect(version: str) -> dict:
    """The same report with datasets + pandas: load, flatten texts, group, quantiles, duplicates, top-k."""
    import numpy as np
    from datasets import load_dataset

    df = load_dataset(version, "all", split="train").to_pandas()
    dropped = load_dataset(version, "dropped", split="train").select_columns(["stage", "reason"]).to_pandas()
    df["prompt_text"], df["chosen_text"], df["rejected_text"] = _flat(df.prompt), _flat(df.chosen), _flat(df.rejected)
    by_lang_dir = df.groupby(["lang", "direction"]).size()
    drops = dropped.groupby(["stage", "reason"]).size()
    df["c_ok"], df["r_ok"] = df.chosen_lang == df.lang, df.rejected_lang == df.lang
    agreement = df.groupby(["lang", "direction"])[["c_ok", "r_ok"]].mean()
    df["ratio"] = df.chosen_chars / df.rejected_chars.clip(lower=1)
    lengths = df.groupby("lang")[["chosen_chars", "rejected_chars", "ratio"]].quantile([0.1, 0.5, 0.9])
    exact = int(df.duplicated(["prompt_text", "chosen_text", "rejected_text"]).sum())
    same_pc = int(df.duplicated(["prompt_text", "chosen_text"]).sum())
    same_c = int(df.duplicated(["chosen_text"]).sum())
    score = (np.abs(np.log(df.chosen_chars.clip(lower=1) / df.rejected_chars.clip(lower=1))) / np.log(3)
             + (~df.c_ok).astype(int) + (~df.r_ok).astype(int)
             + (0.5 - df[["chosen_lang_score", "rejected_lang_score"]].fillna(0).min(axis=1)).clip(lower=0) * 2)
    top = df.loc[score.nlargest(12).index, ["pair_id", "prompt_text", "chosen_text", "rejected_text"]]
    return {"pairs": int(by_lang_dir.sum()), "suspicious": len(top), "exact_dups": exact, "groups": len(agreement),
            "drops": int(drops.sum()), "lengths": len(lengths), "same": same_pc + same_c}


def worker_pandas_sql(version: str) -> dict:
    from datasets import load_dataset

    cols = ["lang", "direction", "chosen_chars", "chosen_lang", "rejected_lang"]
    df = load_dataset(version, "all", split="train").select_columns(cols).to_pandas()
    df["c"], df["r"] = (df.chosen_lang == df.lang).astype(int), (df.rejected_lang == df.lang).astype(int)
    g = df.groupby(["lang", "direction"]).agg(pairs=("lang", "size"), chosen_chars=("chosen_chars", "mean"),
                                              chosen_agree=("c", "mean"), rejected_agree=("r", "mean"))
    return {"rows": len(g), "pairs": int(g.pairs.sum())}


WORKERS = {f.__name__.removeprefix("worker_"): f for f in
           (worker_lidr_inspect, worker_lidr_sql, worker_pandas_inspect, worker_pandas_sql,
            worker_lidr_sql_unsandboxed, worker_lidr_sql_text, worker_lidr_sql_text_unsandboxed)}


def measure(name: str, version: Path) -> dict:
    """Run one worker in a fresh process; wall time from here, peak RSS from the kernel (wait4)."""
    with tempfile.TemporaryDirectory(prefix="lidr-bench-hf-") as cache:
        env = {**os.environ, "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--worker", name, "--version", str(version)],
                                stdout=subprocess.PIPE, env=env, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
    if status != 0:
        return {"name": name, "error": f"exit status {status}", "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}
    return {"name": name, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "result": json.loads(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lidr-bench-inspect")
    parser.add_argument("--only", choices=sorted(WORKERS), action="append", help="run only these measurements")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--version", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.version)))
        return
    if args.build:
        build(args.workdir, args.pairs)
        return
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED} (set LIDR_SHARED_DATA)")
    # Built in a child process: a parent that grew large would pass its peak RSS on to every forked worker.
    subprocess.run([sys.executable, __file__, "--build", "--pairs", str(args.pairs), "--workdir", str(args.workdir)],
                   check=True)
    version = args.workdir / "store" / f"bench-{args.pairs}" / "iter-1"
    manifest = json.loads((version / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in (version / "data" / "all").glob("*.parquet"))
    print(f"version {version}: {manifest['counts']['pairs']:,} pairs, data/all {size / 1e9:.2f} GB on disk", flush=True)
    results = {}
    for name in args.only or ["lidr_sql", "pandas_sql", "lidr_inspect", "pandas_inspect"]:
        r = measure(name, version)
        results[name] = r
        extra = r.get("error") or json.dumps(r["result"])
        print(f"{name:15s} {r['seconds']:8.1f} s   peak RSS {r['peak_rss_mb']:8.0f} MB   {extra}", flush=True)
    pairs = [(f"lidr_{w}", f"pandas_{w}", f"{w} lidr / datasets+pandas") for w in ("sql", "inspect")]
    pairs += [(f"lidr_{w}", f"lidr_{w}_unsandboxed", f"{w} sandboxed / unsandboxed") for w in ("sql", "sql_text")]
    for a_name, b_name, what in pairs:
        a, b = results.get(a_name), results.get(b_name)
        if a and b and "error" not in a and "error" not in b:
            print(f"{what}: time {a['seconds'] / b['seconds']:.3f}x, "
                  f"peak RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.3f}x")


if __name__ == "__main__":
    main()
