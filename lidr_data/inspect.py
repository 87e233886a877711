"""`lidr inspect`: a pair-quality report over a dataset version (or a run folder): its figures.

All figures are DuckDB aggregates over the numeric tag columns (language ID, lengths, hashes); text is read only
to hash it for duplicate rates and to show the handful of most suspicious pairs, so a million pairs need a few
hundred MB. `build_report` returns them as plain data (`Report`); the terminal tables (`commands/inspect.py`) and
the HTML page (`inspect_page.py`) write its figures with the text helpers at the end of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from lidr_data.dataset.layout import read_manifest, row_counts
from lidr_data.dataset.store import Reference
from lidr_data.errors import LidrError
from lidr_data.files import sql_literal
from lidr_data.sql import connect, flat_text_columns, tables_for

REQUIRED = ("lang", "direction", "chosen_lang", "rejected_lang", "chosen_lang_score", "rejected_lang_score",
            "chosen_chars", "rejected_chars")
LENGTH_RATIO_LIMIT = 3.0  # a chosen/rejected length ratio beyond 3x either way is flagged
LOW_SCORE = 0.5  # language-ID confidence below this is flagged
BINS_PER_OCTAVE = 2  # length histograms: log2 bins, half an octave wide


@dataclass
class Report:
    """Everything the report shows; plain data so it renders as a terminal table, HTML or JSON."""

    reference: str
    pairs: int
    by_lang_dir: list[dict]  # lang, direction, pairs
    drops: list[dict]  # stage, reason, rows
    agreement: list[dict]  # lang, direction, chosen, rejected, both, sides_differ, low_score
    lengths: list[dict]  # lang, chosen/rejected mean/p10/p50/p90, ratio p10/p50/p90, ratio_flagged
    duplicates: dict  # exact_pairs, same_prompt_chosen, same_chosen, dropped_as_duplicate
    suspicious: list[dict]  # pair_id, lang, direction, score, reasons, prompt/chosen/rejected text
    length_hist: list[dict] = field(default_factory=list)  # lang, side, bin (log2 chars), n
    ratio_hist: list[dict] = field(default_factory=list)  # lang, bin (log2 ratio), n
    manifest: dict | None = None
    # audit, judge, lang, direction, n, chosen_wins, ties, rejected_wins, validity, wilson_low/high: one row per
    # audit of this version (`lidr audit`), language and direction; empty when none exists
    validity: list[dict] = field(default_factory=list)


def _records(con, sql: str) -> list[dict]:
    rel = con.sql(sql)
    cols = rel.columns
    return [dict(zip(cols, row)) for row in rel.fetchall()]


def build_report(ref: str | Reference, top: int = 12) -> Report:
    """Compute the report for a version or a folder with a `pairs` table (and optionally `dropped`)."""
    tables = tables_for(ref)
    if "pairs" not in tables.views:
        raise LidrError(f"{tables.reference}: no pairs table to inspect (expected a version or a pairs.parquet)")
    con = connect(tables, sandbox=False)
    try:
        names = [r[0] for r in con.sql("DESCRIBE pairs").fetchall()]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise LidrError(f"{tables.reference}: pairs lack the tag columns {', '.join(missing)} (run the tag stage)")
        return _build(con, tables, names, top, read_manifest(tables.folder) if tables.is_version else None)
    except duckdb.Error as e:  # the report's SQL is fixed: a failure here is unreadable data (DuckDB names the file)
        raise LidrError(f"{tables.folder}: cannot read the data ({str(e).splitlines()[0]}); "
                        f"run `lidr verify {tables.folder}`") from None
    finally:
        con.close()


def _build(con, tables, names: list[str], top: int, manifest: dict | None) -> Report:
    counts = row_counts(con, dropped="dropped" in tables.views)
    pairs = counts["pairs"]
    by_lang_dir = [{"lang": lang, "direction": direction, "pairs": n}
                   for lang, dirs in counts["by_language_direction"].items() for direction, n in dirs.items()]
    drops = sorted(({"stage": stage, "reason": reason, "rows": n}
                    for stage, reasons in counts["drops_by_stage"].items() for reason, n in reasons.items()),
                   key=lambda d: (-d["rows"], d["stage"], d["reason"]))
    dropped_dups = sum(d["rows"] for d in drops if d["stage"] == "dedup")
    agreement = _records(con, f"""
        SELECT lang, direction, count(*) AS pairs,
               avg((chosen_lang = lang)::INT) AS chosen,
               avg((rejected_lang = lang)::INT) AS rejected,
               avg((chosen_lang = lang AND rejected_lang = lang)::INT) AS both,
               avg((chosen_lang IS DISTINCT FROM rejected_lang)::INT) AS sides_differ,
               avg((least(chosen_lang_score, rejected_lang_score) < {LOW_SCORE})::INT) AS low_score
        FROM pairs GROUP BY ALL ORDER BY ALL""")
    ratio = "(chosen_chars::DOUBLE / greatest(rejected_chars, 1))"
    lengths = _records(con, f"""
        SELECT lang, count(*) AS pairs,
               avg(chosen_chars) AS chosen_mean, quantile_cont(chosen_chars, [0.1, 0.5, 0.9]) AS chosen_q,
               avg(rejected_chars) AS rejected_mean, quantile_cont(rejected_chars, [0.1, 0.5, 0.9]) AS rejected_q,
               quantile_cont({ratio}, [0.1, 0.5, 0.9]) AS ratio_q,
               avg(({ratio} > {LENGTH_RATIO_LIMIT} OR {ratio} < {1 / LENGTH_RATIO_LIMIT})::INT) AS ratio_flagged
        FROM pairs GROUP BY lang ORDER BY lang""")
    # Duplicate rates over 64-bit hashes of the texts (the texts themselves stay out of the aggregate state).
    dup = con.sql("""
        SELECT count(*) AS n,
               count(*) - count(DISTINCT hash(prompt_text, chosen_text, rejected_text)) AS exact_pairs,
               count(*) - count(DISTINCT hash(prompt_text, chosen_text)) AS same_prompt_chosen,
               count(*) - count(DISTINCT hash(chosen_text)) AS same_chosen
        FROM pairs""").fetchall()[0]
    duplicates = {"exact_pairs": dup[1], "same_prompt_chosen": dup[2], "same_chosen": dup[3],
                  "dropped_as_duplicate": dropped_dups}
    # Suspicion: extreme length ratios, sides not in the prompt's language, low language-ID confidence.
    score = f"""(abs(ln(greatest(chosen_chars, 1)::DOUBLE / greatest(rejected_chars, 1))) / ln({LENGTH_RATIO_LIMIT})
                 + (chosen_lang IS DISTINCT FROM lang)::INT + (rejected_lang IS DISTINCT FROM lang)::INT
                 + greatest(0, {LOW_SCORE} - least(coalesce(chosen_lang_score, 0), coalesce(rejected_lang_score, 0))) * 2)"""
    # Top-k by position (file, row) on the numeric columns only, then the texts of just those rows: DuckDB
    # prunes row groups by file_row_number, so the text of a million pairs is never scanned for a dozen.
    files = "[" + ", ".join(sql_literal(f.resolve()) for f in tables.views["pairs"]) + "]"
    worst = con.sql(f"""
        SELECT filename, file_row_number, {score} AS score
        FROM read_parquet({files}, union_by_name = true, filename = true, file_row_number = true)
        ORDER BY score DESC, filename, file_row_number LIMIT {int(top)}""").fetchall()
    suspicious: list[dict] = []
    by_file: dict[str, list[int]] = {}
    for filename, row, _ in worst:
        by_file.setdefault(filename, []).append(row)
    key = "pair_id" if "pair_id" in names else "file_row_number"
    for filename, rows in by_file.items():
        suspicious += _records(con, f"""
            SELECT {key}::VARCHAR AS pair_id, lang, direction, {score} AS score, chosen_lang, rejected_lang,
                   chosen_lang_score, rejected_lang_score, chosen_chars, rejected_chars,
                   left(prompt_text, 300) AS prompt_text, left(chosen_text, 300) AS chosen_text,
                   left(rejected_text, 300) AS rejected_text
            FROM (SELECT *{flat_text_columns(pq.read_schema(filename).names)}
                  FROM read_parquet({sql_literal(Path(filename))}, file_row_number = true)
                  WHERE file_row_number IN ({", ".join(str(int(r)) for r in rows)}))""")
    suspicious.sort(key=lambda r: (-r["score"], r["pair_id"]))
    for r in suspicious:
        r["reasons"] = _reasons(r)
    length_hist = _records(con, f"""
        SELECT lang, side, floor(log2(greatest(chars, 1)) * {BINS_PER_OCTAVE}) / {BINS_PER_OCTAVE} AS bin, count(*) AS n
        FROM (SELECT lang, 'chosen' AS side, chosen_chars AS chars FROM pairs
              UNION ALL SELECT lang, 'rejected', rejected_chars FROM pairs)
        WHERE chars IS NOT NULL GROUP BY ALL ORDER BY ALL""")
    ratio_hist = _records(con, f"""
        SELECT lang, greatest(-4, least(4, round(log2({ratio}) * 2) / 2)) AS bin, count(*) AS n
        FROM pairs WHERE chosen_chars IS NOT NULL AND rejected_chars IS NOT NULL GROUP BY ALL ORDER BY ALL""")
    validity = _records(con, """
        SELECT audit, judge, lang, direction, n, chosen_wins, ties, rejected_wins, failed, validity, wilson_low,
               wilson_high
        FROM audit_summary ORDER BY audit, lang, direction""") if "audit_summary" in tables.views else []
    return Report(tables.reference, pairs, by_lang_dir, drops, agreement, lengths, duplicates, suspicious,
                  length_hist, ratio_hist, manifest, validity)


def _reasons(r: dict) -> list[str]:
    out = []
    c, j = r["chosen_chars"] or 0, r["rejected_chars"] or 0
    ratio = max(c, 1) / max(j, 1)
    if ratio > LENGTH_RATIO_LIMIT or ratio < 1 / LENGTH_RATIO_LIMIT:
        out.append(f"length ratio {ratio:.2f}")
    if r["chosen_lang"] != r["lang"]:
        out.append(f"chosen in {r['chosen_lang']}")
    if r["rejected_lang"] != r["lang"]:
        out.append(f"rejected in {r['rejected_lang']}")
    low = min(r["chosen_lang_score"] or 0, r["rejected_lang_score"] or 0)
    if low < LOW_SCORE:
        out.append(f"language score {low:.2f}")
    return out or ["(nothing flagged)"]


# ------------------------------------------------ how the report's figures are written (terminal and HTML page)


def percent_text(x: float | None) -> str:
    """A share in [0, 1] as a percentage with one decimal ("12.5%"); "n/a" for none."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def quantiles_text(q: list[float | None] | None, digits: int = 0) -> str:
    """Quantiles (p10, p50, p90) as "p10/p50/p90" with thousands separators; "n/a" for none."""
    if not q:
        return "n/a"
    return "/".join(f"{x:,.{digits}f}" if x is not None else "n/a" for x in q)


def clipped_text(text: str | None, n: int) -> str:
    """`text` on one line (runs of whitespace as one space), cut to `n` characters with an ellipsis; "∅" for
    none. Not escaped: each renderer escapes it for where it goes."""
    if text is None:
        return "∅"
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
