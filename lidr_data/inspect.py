"""`lidr inspect`: a pair-quality report over a dataset version (or a run folder), in the terminal or as HTML.

All figures are DuckDB aggregates over the numeric tag columns (language ID, lengths, hashes); text is read only
to hash it for duplicate rates and to show the handful of most suspicious pairs, so a million pairs need a few
hundred MB. The HTML page is self-contained: inline CSS and SVG charts drawn here, no script, no CDN.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from lidr_data.dataset.layout import row_counts
from lidr_data.dataset.store import Reference
from lidr_data.errors import LidrError
from lidr_data.safe_text import printable

REQUIRED = ("lang", "direction", "chosen_lang", "rejected_lang", "chosen_lang_score", "rejected_lang_score",
            "chosen_chars", "rejected_chars")
RATIO_FLAG = 3.0  # chosen/rejected length ratio beyond 3x either way is flagged
LOW_SCORE = 0.5  # language-ID confidence below this is flagged
BINS_PER_OCTAVE = 2  # length histograms: log2 bins, half an octave wide
TERMINAL_TOP = 6  # suspicious pairs shown in the terminal (the HTML page shows all)


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
    from lidr_data.dataset.layout import read_manifest
    from lidr_data.sql import connect, tables_for

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
               avg(({ratio} > {RATIO_FLAG} OR {ratio} < {1 / RATIO_FLAG})::INT) AS ratio_flagged
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
    score = f"""(abs(ln(greatest(chosen_chars, 1)::DOUBLE / greatest(rejected_chars, 1))) / ln({RATIO_FLAG})
                 + (chosen_lang IS DISTINCT FROM lang)::INT + (rejected_lang IS DISTINCT FROM lang)::INT
                 + greatest(0, {LOW_SCORE} - least(coalesce(chosen_lang_score, 0), coalesce(rejected_lang_score, 0))) * 2)"""
    # Top-k by position (file, row) on the numeric columns only, then the texts of just those rows: DuckDB
    # prunes row groups by file_row_number, so the text of a million pairs is never scanned for a dozen.
    import pyarrow.parquet as pq

    from lidr_data.files import sql_literal as _q
    from lidr_data.sql import _flat_columns

    files = "[" + ", ".join(_q(f.resolve()) for f in tables.views["pairs"]) + "]"
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
            FROM (SELECT *{_flat_columns(pq.read_schema(filename).names)}
                  FROM read_parquet({_q(Path(filename))}, file_row_number = true)
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
    if ratio > RATIO_FLAG or ratio < 1 / RATIO_FLAG:
        out.append(f"length ratio {ratio:.2f}")
    if r["chosen_lang"] != r["lang"]:
        out.append(f"chosen in {r['chosen_lang']}")
    if r["rejected_lang"] != r["lang"]:
        out.append(f"rejected in {r['rejected_lang']}")
    low = min(r["chosen_lang_score"] or 0, r["rejected_lang_score"] or 0)
    if low < LOW_SCORE:
        out.append(f"language score {low:.2f}")
    return out or ["(nothing flagged)"]


# ------------------------------------------------------- text helpers (the terminal tables: commands/sql.py)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _q3(q, digits: int = 0) -> str:
    if not q:
        return "n/a"
    return "/".join(f"{x:,.{digits}f}" if x is not None else "n/a" for x in q)


def _clip(text: str | None, n: int) -> str:
    if text is None:
        return "∅"
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ----------------------------------------------------------------------------------------------- HTML + SVG

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#2f4b7c", "#a05195"]
DIRECTION_COLORS = {"from_dominant": "#4e79a7", "to_dominant": "#f28e2b"}
SIDE_COLORS = {"chosen": "#2a9d8f", "rejected": "#e76f51"}


def _e(x) -> str:
    """Every text on the page: HTML-escaped, control and bidi characters shown as escapes (NUL, ESC, U+202E...)."""
    return html.escape(printable(str(x)), quote=True)


def _svg_hbars(rows: list[tuple[str, list[tuple[str, float, str]]]], width: int = 640, unit: str = "") -> str:
    """Horizontal (stacked) bars: rows of (label, [(segment name, value, color)])."""
    if not rows:
        return "<p class=muted>nothing to show</p>"
    bar_h, gap, right = 22, 8, 70
    left = min(width // 2, 16 + 7 * max(len(label) for label, _ in rows))
    total_max = max(sum(v for _, v, _ in segs) for _, segs in rows) or 1
    height = len(rows) * (bar_h + gap) + gap
    scale = (width - left - right) / total_max
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, segs) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end" class="lbl">{_e(label)}</text>')
        x = left
        for name, value, color in segs:
            w = value * scale
            if w > 0:
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" rx="2">'
                           f"<title>{_e(label)} · {_e(name)}: {value:,.0f}{unit}</title></rect>")
            x += w
        total = sum(v for _, v, _ in segs)
        out.append(f'<text x="{x + 6:.1f}" y="{y + bar_h * 0.7}" class="val">{total:,.0f}{unit}</text>')
    out.append("</svg>")
    return "".join(out)


def _svg_pct_bars(rows: list[tuple[str, list[tuple[str, float | None, str]]]], width: int = 640) -> str:
    """Grouped horizontal bars of shares in [0, 1] per row."""
    if not rows:
        return "<p class=muted>nothing to show</p>"
    n = max(len(s) for _, s in rows)
    bar_h, gap, right = 12, 10, 60
    left = min(width // 2, 16 + 7 * max(len(label) for label, _ in rows))
    row_h = n * (bar_h + 2) + gap
    height = len(rows) * row_h + gap + 16
    span = width - left - right
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" xmlns="http://www.w3.org/2000/svg">']
    for t in (0, 0.5, 1):
        x = left + t * span
        out.append(f'<line x1="{x}" x2="{x}" y1="4" y2="{height - 14}" class="grid"/>'
                   f'<text x="{x}" y="{height - 2}" text-anchor="middle" class="tick">{int(t * 100)}%</text>')
    for i, (label, segs) in enumerate(rows):
        y0 = gap + i * row_h
        out.append(f'<text x="{left - 8}" y="{y0 + row_h / 2}" text-anchor="end" class="lbl">{_e(label)}</text>')
        for j, (name, value, color) in enumerate(segs):
            y = y0 + j * (bar_h + 2)
            v = value or 0.0
            out.append(f'<rect x="{left}" y="{y}" width="{v * span:.1f}" height="{bar_h}" fill="{color}" rx="2">'
                       f"<title>{_e(label)} · {_e(name)}: {_pct(value)}</title></rect>"
                       f'<text x="{left + v * span + 4:.1f}" y="{y + bar_h - 2}" class="val small">{_pct(value)}</text>')
    out.append("</svg>")
    return "".join(out)


def _svg_hist(series: list[tuple[str, str, dict[float, int]]], x_label: str, x_fmt, width: int = 300,
              height: int = 170, title: str = "", filled_first: bool = True) -> str:
    """Overlaid histograms as filled step areas: series of (name, color, {bin: count}); shares, not counts."""
    bins = sorted({b for _, _, h in series for b in h})
    if not bins:
        return ""
    lo, hi = bins[0], bins[-1] + 0.5
    left, right, top, bottom = 34, 8, 22, 30
    pw, ph = width - left - right, height - top - bottom
    shares = [(name, color, {b: n / max(sum(h.values()), 1) for b, n in h.items()}) for name, color, h in series]
    ymax = max((v for _, _, h in shares for v in h.values()), default=1) or 1

    def X(b: float) -> float:
        return left + (b - lo) / max(hi - lo, 1e-9) * pw

    def Y(v: float) -> float:
        return top + ph - v / ymax * ph

    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{left}" y="14" class="lbl strong">{_e(title)}</text>',
           f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" class="axis"/>']
    for i, (name, color, h) in enumerate(shares):
        pts = [f"{X(lo):.1f},{Y(0):.1f}"]
        for b in bins:
            v = h.get(b, 0.0)
            pts += [f"{X(b):.1f},{Y(v):.1f}", f"{X(b + 0.5):.1f},{Y(v):.1f}"]
        pts.append(f"{X(hi):.1f},{Y(0):.1f}")
        fill = f'fill="{color}" fill-opacity="0.3"' if i == 0 and filled_first else 'fill="none"'
        out.append(f'<polyline points="{" ".join(pts)}" {fill} stroke="{color}" stroke-width="1.8" '
                   f'stroke-linejoin="round"><title>{_e(name)}</title></polyline>')
    step = max(1, math.ceil(len(bins) / 5))
    for b in bins[::step]:
        out.append(f'<text x="{X(b):.1f}" y="{top + ph + 14}" text-anchor="middle" class="tick">{_e(x_fmt(b))}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 2}" text-anchor="middle" class="tick">{_e(x_label)}</text>')
    out.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{ymax * 100:.0f}%</text>')
    out.append("</svg>")
    return "".join(out)


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{_e(n)}</span>' for n, c in items) + "</div>"


CSS = """
:root { --fg:#1f2430; --muted:#6b7280; --line:#e5e7eb; --bg:#f7f8fa; --card:#fff; --accent:#4e79a7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#1f2430; color:#fff; padding:22px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#c7cbd4; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:20px 24px 40px; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:12px; margin-bottom:18px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 16px; }
.kpi b { display:block; font-size:24px; font-weight:650; }
.kpi span { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.kpi.warn b { color:#c2410c; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 20px; margin:14px 0; }
section h2 { margin:0 0 4px; font-size:16px; }
section p.note { margin:0 0 10px; color:var(--muted); font-size:13px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
.smalls { display:grid; grid-template-columns:repeat(auto-fill,minmax(250px,1fr)); gap:10px 18px; }
@media (max-width: 800px) { .grid2 { grid-template-columns:1fr; } }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right; vertical-align:top; }
th { color:var(--muted); font-weight:600; background:#fafbfc; }
td.l, th.l { text-align:left; }
td.txt { text-align:left; max-width:280px; font-size:12px; color:#374151; }
.tag { display:inline-block; background:#fff1e6; color:#9a3412; border-radius:4px; padding:1px 6px; margin:1px 2px;
       font-size:11px; white-space:nowrap; }
.bad { color:#c2410c; font-weight:600; }
.muted { color:var(--muted); }
.legend { display:flex; gap:14px; flex-wrap:wrap; font-size:12px; color:var(--muted); margin:4px 0 6px; }
.legend i { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
svg .lbl { font-size:12px; fill:#374151; } svg .strong { font-weight:600; }
svg .val { font-size:11px; fill:#4b5563; } svg .small { font-size:10px; }
svg .tick { font-size:10px; fill:#6b7280; } svg .grid { stroke:#eef0f3; } svg .axis { stroke:#9ca3af; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px; }
"""


def render_html(report: Report) -> str:
    """A self-contained HTML page (inline CSS and SVG; no script, no external resource)."""
    n = max(report.pairs, 1)
    m = report.manifest or {}
    langs = sorted({r["lang"] for r in report.by_lang_dir})
    lang_color = {lang: PALETTE[i % len(PALETTE)] for i, lang in enumerate(langs)}
    total_dropped = sum(d["rows"] for d in report.drops)
    agree_both = sum(a["both"] * a["pairs"] for a in report.agreement) / n if report.agreement else None
    flagged = sum((r["ratio_flagged"] or 0) * r["pairs"] for r in report.lengths) / n if report.lengths else None

    counts: dict[str, list] = {}
    for r in report.by_lang_dir:
        counts.setdefault(r["lang"], []).append((r["direction"], r["pairs"], DIRECTION_COLORS.get(r["direction"], "#999")))
    counts_svg = _svg_hbars(list(counts.items()))
    drops_svg = _svg_hbars([(f"{d['stage']} · {d['reason']}", [(d["reason"], d["rows"], "#e15759")]) for d in report.drops])
    agree_svg = _svg_pct_bars([
        (f"{a['lang']} · {a['direction']}", [("chosen in prompt language", a["chosen"], SIDE_COLORS["chosen"]),
                                             ("rejected in prompt language", a["rejected"], SIDE_COLORS["rejected"])])
        for a in report.agreement])

    hists = []
    for lang in langs:
        series = []
        for side in ("chosen", "rejected"):
            h = {r["bin"]: r["n"] for r in report.length_hist if r["lang"] == lang and r["side"] == side}
            series.append((side, SIDE_COLORS[side], h))
        hists.append(_svg_hist(series, "characters (log scale)", lambda b: _short(2 ** b), title=f"{lang}"))
    ratio_series = [(lang, lang_color[lang], {r["bin"]: r["n"] for r in report.ratio_hist if r["lang"] == lang})
                    for lang in langs]
    ratio_svg = _svg_hist(ratio_series, "chosen / rejected length (log scale)", lambda b: f"{2 ** b:.2g}x",
                          width=760, height=240, title="", filled_first=False)

    def kpi(label: str, value: str, warn: bool = False) -> str:
        return f'<div class="kpi{" warn" if warn else ""}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'

    d = report.duplicates
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lidr inspect · {_e(m.get('name', report.reference))} {_e(m.get('version', ''))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>Pair-quality report · {_e(m.get('name', report.reference))} {_e(m.get('version', ''))}</h1>",
        f'<div class="sub">{_e(report.reference)}'
        + (f" · generator {_e(m.get('generator', {}).get('model'))} @ {_e(m.get('generator', {}).get('revision'))}"
           f" · iteration {_e(m.get('iteration'))}" if m else "")
        + f" · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</div></header><main>",
        '<div class="kpis">',
        kpi("pairs", f"{report.pairs:,}"),
        kpi("languages", str(len(langs))),
        kpi("dropped rows", f"{total_dropped:,}"),
        kpi("both sides in prompt language", _pct(agree_both), warn=agree_both is not None and agree_both < 0.9),
        kpi(f"length ratio beyond {RATIO_FLAG:g}x", _pct(flagged), warn=flagged is not None and flagged > 0.05),
        kpi("identical pairs", f"{d['exact_pairs']:,}", warn=d["exact_pairs"] > 0),
        "</div>",
        '<div class="grid2"><section><h2>Pairs per language</h2><p class="note">language of the prompt; '
        "to_dominant pairs are the English ones, one per pivot language</p>",
        _legend(list(DIRECTION_COLORS.items())), counts_svg, "</section>",
        '<section><h2>Dropped rows by reason</h2><p class="note">every removed row has a stage and a named reason</p>',
        drops_svg if report.drops else "<p class=muted>no dropped table</p>", "</section></div>",
        '<section><h2>Language-ID agreement with the prompt</h2><p class="note">share of chosen and rejected sides '
        "detected in the prompt's language; pairs whose sides differ in language let DPO learn the language instead "
        "of the quality</p>",
        _legend([("chosen", SIDE_COLORS["chosen"]), ("rejected", SIDE_COLORS["rejected"])]), agree_svg, "</section>",
        '<section><h2>Length distributions per language</h2><p class="note">share of responses per length bin '
        "(characters, log scale)</p>",
        _legend([("chosen", SIDE_COLORS["chosen"]), ("rejected", SIDE_COLORS["rejected"])]),
        '<div class="smalls">', *hists, "</div></section>",
        '<section><h2>Chosen / rejected length ratio</h2><p class="note">a pair far from 1x is often a truncated or '
        "failed translation</p>", _legend(list(lang_color.items())), ratio_svg, _lengths_table(report), "</section>",
        '<section><h2>Duplicates</h2><table><tr><th class=l>measure</th><th>pairs</th><th>share</th></tr>',
        *(f"<tr><td class=l>{_e(label)}</td><td>{v:,}</td><td>{_pct(v / n)}</td></tr>" for label, v in [
            ("identical prompt, chosen and rejected", d["exact_pairs"]),
            ("same prompt and chosen", d["same_prompt_chosen"]),
            ("same chosen text", d["same_chosen"]),
            ("removed by the dedup stage", d["dropped_as_duplicate"])]),
        "</table></section>",
        _validity_table(report),
        _suspicious_table(report),
        "</main><footer>lidr-data · self-contained report (no scripts, no external resources)</footer></body></html>",
    ]
    return "\n".join(parts)


def _short(x: float) -> str:
    return f"{x / 1000:.0f}k" if x >= 1000 else f"{x:.0f}"


def _lengths_table(report: Report) -> str:
    rows = ["<table><tr><th class=l>language</th><th>pairs</th><th>chosen p10 / p50 / p90</th>"
            "<th>rejected p10 / p50 / p90</th><th>ratio p10 / p50 / p90</th><th>ratio beyond "
            f"{RATIO_FLAG:g}x</th></tr>"]
    for r in report.lengths:
        flag = r["ratio_flagged"] or 0
        rows.append(f"<tr><td class=l>{_e(r['lang'])}</td><td>{r['pairs']:,}</td><td>{_q3(r['chosen_q'])}</td>"
                    f"<td>{_q3(r['rejected_q'])}</td><td>{_q3(r['ratio_q'], 2)}</td>"
                    f"<td class='{'bad' if flag > 0.05 else ''}'>{_pct(flag)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _validity_table(report: Report) -> str:
    if not report.validity:
        return ""
    rows = "".join(
        f"<tr><td class=l>{_e(r['audit'])}</td><td class=l>{_e(r['lang'])}</td><td class=l>{_e(r['direction'])}</td>"
        f"<td>{r['n']:,}</td><td>{_pct(r['validity'])}</td><td>{_pct(r['wilson_low'])} - {_pct(r['wilson_high'])}</td>"
        f"<td>{_pct(r['ties'] / r['n'] if r['n'] else None)}</td>"
        f"<td>{_pct(r['rejected_wins'] / r['n'] if r['n'] else None)}</td></tr>" for r in report.validity)
    return ('<section><h2>Pair validity (judge audits)</h2><p class="note">share of a seeded sample where a judge '
            "found chosen better than rejected in both orders, with a Wilson 95% interval (`lidr audit`)</p>"
            "<table><tr><th class=l>audit</th><th class=l>language</th><th class=l>direction</th><th>judged</th>"
            f"<th>chosen wins</th><th>95% interval</th><th>ties</th><th>rejected wins</th></tr>{rows}</table></section>")


def _suspicious_table(report: Report) -> str:
    if not report.suspicious:
        return ""
    rows = ['<section><h2>Most suspicious pairs</h2><p class="note">ranked by length-ratio extremity, sides not in '
            "the prompt's language and low language-ID confidence</p><table><tr><th class=l>pair</th>"
            "<th class=l>lang</th><th class=l>why</th><th class=l>prompt</th><th class=l>chosen</th>"
            "<th class=l>rejected</th></tr>"]
    for s in report.suspicious:
        tags = "".join(f'<span class="tag">{_e(x)}</span>' for x in s["reasons"])
        rows.append(f"<tr><td class=l><code>{_e(str(s['pair_id'])[:10])}</code></td>"
                    f"<td class=l>{_e(s['lang'])}<br><span class=muted>{_e(s['direction'])}</span></td>"
                    f"<td class=l>{tags}</td><td class=txt>{_e(_clip(s['prompt_text'], 160))}</td>"
                    f"<td class=txt>{_e(_clip(s['chosen_text'], 160))}</td>"
                    f"<td class=txt>{_e(_clip(s['rejected_text'], 160))}</td></tr>")
    rows.append("</table></section>")
    return "".join(rows)


def write_html(report: Report, path: str | Path) -> Path:
    """Write the page atomically (a temp file renamed into place)."""
    from lidr_data.files import write_text_atomic

    return write_text_atomic(path, render_html(report))
