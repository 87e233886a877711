"""`lidr audit`: how often is "chosen" really better? A judge on a seeded, stratified sample of a version's pairs.

LIDR assumes the translated dominant-language answer beats the model's own answer in L; the paper finds that
true for only 57-79% of pairs. An audit measures it on a user's own version, per language and direction:

- the sample: up to `sample` pairs per (lang, direction), the ones with the smallest sha256("<seed>:<pair_id>")
  (reproducible from the seed, independent of file order and of the other strata);
- the judge (`lidr_data.eval.judges`, the same judges, prompts and request cache as `lidr eval winrate`) sees
  every pair in both orders (chosen first, then rejected first); the pair's outcome is `chosen` or `rejected`
  when both orders agree, else `tie` (position bias cancels out); identical sides are a tie with no judge call;
  a failed or malformed judgment leaves the pair unjudged (outcome null), counted as `failed`; a pair the `chrf`
  judge has no gold answer for (its prompt is not in `--judge-reference` in its language, e.g. every Alpagasus
  prompt) has outcome `no_reference`: counted apart, neither a tie nor a failure, outside the shares;
- per (lang, direction): chosen wins, ties, rejected wins, the validity share (chosen wins / judged) with a
  Wilson 95% interval, judge calls and cache hits.

The audit folder (see `lidr_data.dataset.audits`) holds pairs.parquet, summary.parquet, audit.json and, with
`write_filter`, judge_reversed.json: the pair ids the judge found reversed, for a build to drop as
`judge_reversed`. The folder is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from lidr_data import locks
from lidr_data.dataset import audits
from lidr_data.dataset.hub import published_content_id
from lidr_data.dataset.layout import ALL, content_id, read_manifest, verify
from lidr_data.dataset.store import Reference, parse_reference, resolve
from lidr_data.errors import LidrError
from lidr_data.eval.judges import PROMPT_VERSION, ChatJudge, ChrfJudge, Judge, Pair, load_judge
from lidr_data.eval.results import write_json, write_table
from lidr_data.eval.stats import cohen_kappa, wilson_interval
from lidr_data.files import cleanup_stale_temps, sql_literal, sql_literal_list, swap_into_place, temp_dir_name
from lidr_data.progress import Progress
from lidr_data.version import __version__

OUTCOMES = ("chosen", "tie", "rejected")
NO_REFERENCE = "no_reference"  # the chrf judge had no gold answer for the pair's prompt: not judged, not failed


@dataclass
class AuditConfig:
    """One audit of a dataset version."""

    ref: str = field(metadata={"help": "the version: a local folder, DATASET_FOLDER@VERSION or org/name@revision"})
    judge: str = field(default="openai", metadata={"help": "openai | reward-model | length"})
    judge_model: str | None = field(default=None, metadata={"help": "judge model name or reward model folder"})
    judge_options: dict = field(default_factory=dict, metadata={"help": "judge/backend constructor options"})
    sample: int = field(default=100, metadata={"help": "pairs per language and direction (all when fewer)"})
    seed: int = field(default=0, metadata={"help": "seed of the sample"})
    langs: tuple[str, ...] | None = field(default=None, metadata={"help": "prompt languages to audit (default all)"})
    out: Path | None = field(default=None, metadata={"help": "audit folder (default: beside the version)"})
    cache: Path | None = field(default=None, metadata={"help": "judge request cache (default: <audits>/cache)"})
    write_filter: bool = field(default=False, metadata={"help": "also write judge_reversed.json"})
    force: bool = field(default=False, metadata={"help": "replace an audit of the same folder by another judge model"})


@dataclass
class AuditResult:
    folder: Path
    info: dict  # audit.json
    summary: pl.DataFrame
    pairs: pl.DataFrame
    filter_path: Path | None = None


def _version(ref_text: str) -> tuple[Reference, Path, dict, str]:
    """(reference, version folder, manifest, content id) of a version that passes `verify`."""
    ref, folder, is_version = resolve(parse_reference(ref_text))
    if not is_version:
        raise LidrError(f"{ref}: not a dataset version (no manifest.json); `lidr audit` judges a version's pairs")
    expected = None
    if ref.is_hub:
        expected = published_content_id(ref.repo_id, ref.revision)
    result = verify(folder, expected_content_id=expected)
    if not result.ok:
        raise LidrError(f"{ref}: refusing to audit a version that fails verification: {result.problems[0]}")
    manifest = read_manifest(folder)
    return ref, folder, manifest, content_id(manifest)


SAMPLE_SQL = """
SELECT filename, file_row_number, pair_id, lang, direction
FROM read_parquet({files}, union_by_name = true, filename = true, file_row_number = true)
{where}
QUALIFY row_number() OVER (PARTITION BY lang, direction
                           ORDER BY sha256({seed} || pair_id), filename, file_row_number) <= {n}
"""

TEXTS_SQL = """
SELECT p.pair_id, p.prompt_id, p.lang, p.direction,
       list_filter(p.prompt, lambda m: m.role = 'user')[-1].content AS prompt_text,
       p.chosen[1].content AS chosen_text, p.rejected[1].content AS rejected_text,
       sha256({seed} || p.pair_id) AS sample_key
FROM read_parquet({files}, union_by_name = true, filename = true, file_row_number = true) p
SEMI JOIN picked s ON p.filename = s.filename AND p.file_row_number = s.file_row_number
ORDER BY p.lang, p.direction, sample_key, p.filename, p.file_row_number
"""


def sample_pairs(files: list[Path], sample: int, seed: int, langs: tuple[str, ...] | None = None) -> pl.DataFrame:
    """The stratified sample: per (lang, direction), the `sample` pairs with the smallest sha256("<seed>:<pair_id>").
    The window runs over ids only; texts are read for the picked rows alone."""
    con = duckdb.connect()
    try:
        where = f"WHERE lang IN ({', '.join(sql_literal(x) for x in langs)})" if langs else ""
        seed_lit = sql_literal(f"{seed}:")
        picked = con.sql(SAMPLE_SQL.format(files=sql_literal_list(files), where=where, seed=seed_lit,
                                           n=int(sample))).to_arrow_table()
        con.register("picked", picked)
        return con.sql(TEXTS_SQL.format(files=sql_literal_list(files), seed=seed_lit)).pl()
    finally:
        con.close()


def _strata(files: list[Path]) -> dict[tuple[str, str], int]:
    con = duckdb.connect()
    try:
        rows = con.sql(f"SELECT lang, direction, count(*) FROM read_parquet({sql_literal_list(files)}, "
                       "union_by_name = true) GROUP BY ALL").fetchall()
    finally:
        con.close()
    return {(lang, direction): n for lang, direction, n in rows}


def _side(score: float | None) -> str | None:
    """Which side one order's verdict prefers, from the preference for the chosen side."""
    if score is None:
        return None
    return "chosen" if score > 0.5 else "rejected" if score < 0.5 else "tie"


def outcome(chosen_first: float | None, rejected_first: float | None) -> str | None:
    """The pair's outcome from both orders' preference for the chosen side: agreement decides, a disagreement
    (or a tie in either order) is a tie; None when either order has no usable verdict."""
    a, b = _side(chosen_first), _side(rejected_first)
    if a is None or b is None:
        return None
    return a if a == b and a != "tie" else "tie"


def judge_pairs(judge: Judge, sample: pl.DataFrame, progress: Progress | None = None) -> tuple[list[dict], int]:
    """(one row per sampled pair with both orders' verdicts and its outcome, judge calls made)."""
    rows = sample.to_dicts()
    asked: list[int] = []
    pairs: list[Pair] = []
    for i, r in enumerate(rows):
        if r["chosen_text"] == r["rejected_text"]:
            continue  # identical sides: a tie without asking the judge
        instruction, chosen, rejected = r["prompt_text"] or "", r["chosen_text"] or "", r["rejected_text"] or ""
        pairs += [Pair(instruction, r["lang"], chosen, rejected), Pair(instruction, r["lang"], rejected, chosen)]
        asked.append(i)
    calls_before = judge.calls if isinstance(judge, ChatJudge) else 0
    verdicts = judge.judge(pairs, progress=progress) if pairs else []
    calls = judge.calls - calls_before if isinstance(judge, ChatJudge) else len(pairs)
    by_row = {i: (verdicts[2 * k], verdicts[2 * k + 1]) for k, i in enumerate(asked)}
    out = []
    for i, r in enumerate(rows):
        base = {"pair_id": r["pair_id"], "prompt_id": r["prompt_id"], "lang": r["lang"], "direction": r["direction"],
                "chosen_chars": len(r["chosen_text"] or ""), "rejected_chars": len(r["rejected_text"] or "")}
        got = by_row.get(i)
        if got is None:
            out.append({**base, "chosen_first_score": 0.5, "rejected_first_score": 0.5, "method": "identical",
                        "outcome": "tie", "error": None, "chosen_first_key": None, "rejected_first_key": None,
                        "chosen_first_cached": None, "rejected_first_cached": None, "chosen_reward": None,
                        "rejected_reward": None})
            continue
        v1, v2 = got  # v1: chosen shown first; v2: rejected shown first
        s1 = v1.score
        s2 = None if v2.score is None else 1 - v2.score  # both as the preference for the chosen side
        methods = sorted({v1.method, v2.method})
        result = NO_REFERENCE if NO_REFERENCE in methods else outcome(s1, s2)
        out.append({**base, "chosen_first_score": s1, "rejected_first_score": s2, "method": "+".join(methods),
                    "outcome": result, "error": v1.error or v2.error,
                    "chosen_first_key": v1.request_key, "rejected_first_key": v2.request_key,
                    "chosen_first_cached": v1.cached, "rejected_first_cached": v2.cached,
                    "chosen_reward": v1.first_reward, "rejected_reward": v1.second_reward})
    return out, calls


PAIR_SCHEMA = {
    "pair_id": pl.String, "prompt_id": pl.String, "lang": pl.String, "direction": pl.String,
    "chosen_chars": pl.Int64, "rejected_chars": pl.Int64, "chosen_first_score": pl.Float64,
    "rejected_first_score": pl.Float64, "method": pl.String, "outcome": pl.String, "error": pl.String,
    "chosen_first_key": pl.String, "rejected_first_key": pl.String, "chosen_first_cached": pl.Boolean,
    "rejected_first_cached": pl.Boolean, "chosen_reward": pl.Float64, "rejected_reward": pl.Float64,
}


def summarize(pairs: pl.DataFrame, strata: dict[tuple[str, str], int]) -> pl.DataFrame:
    """Per (lang, direction): counts, validity share (chosen wins / judged) with its Wilson 95% interval, and
    the judge's calls and cache hits there."""
    rows = []
    for (lang, direction), group in pairs.group_by(["lang", "direction"], maintain_order=True):
        count = {o: int((group["outcome"] == o).sum()) for o in OUTCOMES}
        n = sum(count.values())
        low, high = wilson_interval(count["chosen"], n)
        cached = sum(int(group[c].fill_null(False).sum()) for c in ("chosen_first_cached", "rejected_first_cached"))
        asked = 2 * int((group["method"] != "identical").sum())
        rows.append({"lang": lang, "direction": direction, "available": strata.get((lang, direction), 0),
                     "sampled": group.height, "n": n, "chosen_wins": count["chosen"], "ties": count["tie"],
                     "rejected_wins": count["rejected"], "failed": int(group["outcome"].is_null().sum()),
                     "no_reference": int((group["outcome"] == NO_REFERENCE).sum()),
                     "identical": int((group["method"] == "identical").sum()),
                     "validity": count["chosen"] / n if n else None, "wilson_low": low, "wilson_high": high,
                     "judgments": asked, "cache_hits": cached})
    schema = {"lang": pl.String, "direction": pl.String, "available": pl.Int64, "sampled": pl.Int64, "n": pl.Int64,
              "chosen_wins": pl.Int64, "ties": pl.Int64, "rejected_wins": pl.Int64, "failed": pl.Int64,
              "no_reference": pl.Int64, "identical": pl.Int64, "validity": pl.Float64, "wilson_low": pl.Float64,
              "wilson_high": pl.Float64, "judgments": pl.Int64, "cache_hits": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort("lang", "direction")


def _judge_info(judge: Judge) -> dict:
    info = judge.describe()
    revision = None
    if isinstance(judge, ChatJudge):
        revision = judge.generator.model_revision
    elif hasattr(judge, "model"):  # a reward model: the Hub commit it was loaded from, when it came from the Hub
        revision = getattr(judge.model.config, "_commit_hash", None)
    return {"judge": info.get("judge", judge.name), "judge_model": info.get("judge_model"),
            "judge_revision": revision, "judge_backend": info.get("judge_backend"),
            "prompt_version": PROMPT_VERSION if isinstance(judge, ChatJudge) else None,
            **({"judge_reference": info["judge_reference"], "tie_tolerance": info["tie_tolerance"],
                "chrf_signature": info["chrf_signature"]} if isinstance(judge, ChrfJudge) else {})}


def run_audit(cfg: AuditConfig, judge: Judge | None = None, progress: Progress | None = None) -> AuditResult:
    """Sample, judge and write one audit folder; returns it with its tables."""
    if cfg.sample < 1:
        raise LidrError(f"--sample {cfg.sample}: must be at least 1 (pairs per language and direction)")
    ref, version_dir, manifest, cid = _version(cfg.ref)
    files = [version_dir / rel for rel in manifest["configs"].get(ALL, [])]
    if not files or not manifest["counts"].get("pairs"):
        raise LidrError(f"{ref}: the version holds no pairs to audit")
    strata = _strata(files)
    have = sorted({lang for lang, _ in strata})
    langs = tuple(dict.fromkeys(cfg.langs)) if cfg.langs else None
    if langs and (missing := [x for x in langs if x not in have]):
        raise LidrError(f"{ref}: no pairs in language {', '.join(missing)} (languages there: {', '.join(have)})")
    root = audits.audits_root(ref, version_dir)
    name = audits.folder_name(cfg.judge, cfg.sample, cfg.seed)
    final = Path(cfg.out) if cfg.out else root / name
    cache = Path(cfg.cache) if cfg.cache else root / audits.CACHE
    if (final / audits.AUDIT_JSON).is_file() and not cfg.force:
        old = audits.read_audit(final)
        gold = cfg.judge_options.get("reference")
        if old.get("judge_model") != cfg.judge_model or old.get("content_id") != cid or \
                old.get("judge_reference") != (str(Path(gold)) if gold else None):
            what = "another judge model or gold" if old.get("content_id") == cid else "another version"
            raise LidrError(f"{final} holds an audit by {what} ({old.get('judge_model') or old.get('judge')}, "
                            f"content id {old.get('content_id', '')[:12]}); pass --out DIR, or --force to replace it")
    elif final.exists() and not (final / audits.AUDIT_JSON).is_file() and any(final.iterdir()) and not cfg.force:
        raise LidrError(f"{final} exists and is not an audit folder; pass another --out")

    sample = sample_pairs(files, cfg.sample, cfg.seed, langs)
    own_judge = judge is None
    judge = judge or load_judge(cfg.judge, cfg.judge_model, cache_path=cache, **cfg.judge_options)
    try:
        rows, calls = judge_pairs(judge, sample, progress)
        judge_info = _judge_info(judge)
    finally:
        if own_judge:
            judge.close()
    pairs = pl.DataFrame(rows, schema=PAIR_SCHEMA).with_columns(
        pl.lit(final.name).alias("audit"), pl.lit(judge_info["judge"]).alias("judge"))
    summary = summarize(pairs, strata).with_columns(pl.lit(final.name).alias("audit"),
                                                   pl.lit(judge_info["judge"]).alias("judge"))
    cache_hits = int(summary["cache_hits"].sum())
    counts = {o: int((pairs["outcome"] == o).sum()) for o in OUTCOMES}
    info = {
        "kind": "lidr-audit", "reference": str(ref), "dataset": manifest["name"], "version": manifest["version"],
        "content_id": cid, **judge_info, "sample": cfg.sample, "seed": cfg.seed,
        "langs": list(langs) if langs else have, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": {"sampled": pairs.height, "judged": sum(counts.values()), **counts,
                   "failed": int(pairs["outcome"].is_null().sum()), "errors": int(pairs["error"].is_not_null().sum()),
                   NO_REFERENCE: int((pairs["outcome"] == NO_REFERENCE).sum()),
                   "identical": int((pairs["method"] == "identical").sum())},
        "judge_calls": calls, "cache_hits": cache_hits,
        "cache": str(cache) if isinstance(judge, ChatJudge) else None, "lidr_data_version": __version__,
    }
    store = audits.store_of(ref, version_dir)
    filter_path = None
    final.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temps(final.parent)  # what a killed audit left
    tmp = final.parent / temp_dir_name(final.name)
    try:
        tmp.mkdir()
        write_table(pairs, tmp / audits.PAIRS)
        write_table(summary, tmp / audits.SUMMARY)
        if cfg.write_filter:
            write_json(reversed_filter(pairs, info, final, store), tmp / audits.FILTER)
            filter_path = final / audits.FILTER
        write_json(info, tmp / audits.AUDIT_JSON)
        with locks.hold(final.parent, "writer of these audits", wait_s=60.0):
            swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return AuditResult(final, info, summary, pairs, filter_path)


def reversed_filter(pairs: pl.DataFrame, info: dict, folder: Path, store: Path) -> dict:
    """The `lidr-pair-filter` a build takes to drop the pairs the judge found reversed (reason judge_reversed)."""
    try:
        where = folder.resolve().relative_to(store.resolve()).as_posix()
    except ValueError:
        where = str(folder.resolve())
    ids = sorted(set(pairs.filter(pl.col("outcome") == "rejected")["pair_id"].to_list()))
    return {"kind": "lidr-pair-filter", "reason": "judge_reversed",
            "audit": {"path": where, "version": info["version"], "content_id": info["content_id"],
                      "judge": info["judge"], "judge_model": info["judge_model"], "sample": info["sample"],
                      "seed": info["seed"]},
            "pair_ids": ids}


def compare_audits(a: str | Path, b: str | Path) -> tuple[pl.DataFrame, dict, dict]:
    """Agreement of two audits of the same version, per language and overall: pairs judged by both, the share
    with the same outcome and Cohen's kappa over the three outcomes. Returns (table, audit A info, audit B info)."""
    info_a, info_b = audits.read_audit(a), audits.read_audit(b)
    if info_a["content_id"] != info_b["content_id"]:
        raise LidrError(f"{a} and {b} audit different versions (content ids {info_a['content_id'][:12]} and "
                        f"{info_b['content_id'][:12]}): compare audits of one version")
    pa_, pb = (pl.read_parquet(Path(x) / audits.PAIRS).select("pair_id", "lang", "outcome") for x in (a, b))
    both = pa_.join(pb, on=["pair_id", "lang"], suffix="_b").filter(
        pl.col("outcome").is_in(OUTCOMES) & pl.col("outcome_b").is_in(OUTCOMES))  # judged by both
    if both.height == 0:
        raise LidrError(f"{a} and {b} judged no pair in common (different samples: use the same --sample and --seed)")
    rows = []
    groups = [(lang, g) for (lang,), g in both.group_by(["lang"], maintain_order=True)]
    for lang, g in sorted(groups, key=lambda x: x[0]) + [("all", both)]:
        x, y = g["outcome"].to_list(), g["outcome_b"].to_list()
        rows.append({"lang": lang, "n": g.height, "agreement": sum(p == q for p, q in zip(x, y)) / g.height,
                     "kappa": cohen_kappa(x, y),
                     "a_chosen": x.count("chosen") / g.height, "b_chosen": y.count("chosen") / g.height})
    schema = {"lang": pl.String, "n": pl.Int64, "agreement": pl.Float64, "kappa": pl.Float64,
              "a_chosen": pl.Float64, "b_chosen": pl.Float64}
    return pl.DataFrame(rows, schema=schema), info_a, info_b
