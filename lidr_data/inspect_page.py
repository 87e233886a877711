"""`lidr inspect --html`: the pair-quality report (`inspect.Report`) as one self-contained HTML page.

Inline CSS and SVG charts drawn here, no script, no CDN. Every text on the page goes through `_e`: HTML-escaped,
with control and bidi characters shown as visible escapes (model text never reaches the page raw).
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

from lidr_data.files import write_text_atomic
from lidr_data.inspect import LENGTH_RATIO_LIMIT, Report, clipped_text, percent_text, quantiles_text
from lidr_data.safe_text import printable

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
                       f"<title>{_e(label)} · {_e(name)}: {percent_text(value)}</title></rect>"
                       f'<text x="{left + v * span + 4:.1f}" y="{y + bar_h - 2}" class="val small">{percent_text(value)}</text>')
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
        kpi("both sides in prompt language", percent_text(agree_both), warn=agree_both is not None and agree_both < 0.9),
        kpi(f"length ratio beyond {LENGTH_RATIO_LIMIT:g}x", percent_text(flagged), warn=flagged is not None and flagged > 0.05),
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
        *(f"<tr><td class=l>{_e(label)}</td><td>{v:,}</td><td>{percent_text(v / n)}</td></tr>" for label, v in [
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
            f"{LENGTH_RATIO_LIMIT:g}x</th></tr>"]
    for r in report.lengths:
        flag = r["ratio_flagged"] or 0
        rows.append(f"<tr><td class=l>{_e(r['lang'])}</td><td>{r['pairs']:,}</td><td>{quantiles_text(r['chosen_q'])}</td>"
                    f"<td>{quantiles_text(r['rejected_q'])}</td><td>{quantiles_text(r['ratio_q'], 2)}</td>"
                    f"<td class='{'bad' if flag > 0.05 else ''}'>{percent_text(flag)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _validity_table(report: Report) -> str:
    if not report.validity:
        return ""
    rows = "".join(
        f"<tr><td class=l>{_e(r['audit'])}</td><td class=l>{_e(r['lang'])}</td><td class=l>{_e(r['direction'])}</td>"
        f"<td>{r['n']:,}</td><td>{percent_text(r['validity'])}</td><td>{percent_text(r['wilson_low'])} - {percent_text(r['wilson_high'])}</td>"
        f"<td>{percent_text(r['ties'] / r['n'] if r['n'] else None)}</td>"
        f"<td>{percent_text(r['rejected_wins'] / r['n'] if r['n'] else None)}</td></tr>" for r in report.validity)
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
                    f"<td class=l>{tags}</td><td class=txt>{_e(clipped_text(s['prompt_text'], 160))}</td>"
                    f"<td class=txt>{_e(clipped_text(s['chosen_text'], 160))}</td>"
                    f"<td class=txt>{_e(clipped_text(s['rejected_text'], 160))}</td></tr>")
    rows.append("</table></section>")
    return "".join(rows)


def write_html(report: Report, path: str | Path) -> Path:
    """Write the page atomically (a temp file renamed into place)."""
    return write_text_atomic(path, render_html(report))
