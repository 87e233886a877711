"""`lidr inspect`: the report's figures against an independent computation, the rich output, and the HTML page
rendered by a real headless Chromium (Debian package `chromium`; skipped with a message where it is absent)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.inspect import build_report
from lidr_data.inspect_page import render_html

MARKUP = "<b>bold?</b> & <script>alert(1)</script>"


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    """A version with one exact duplicate pair and one pair with a 50x length ratio and HTML in its text."""
    root = tmp_path_factory.mktemp("inspect")
    run = make_run(root / "runs" / "demo-lidr" / "iter-1", n_prompts=20)
    rows = pq.read_table(run / "pairs.parquet").to_pylist()
    dup = dict(rows[3])
    odd = dict(rows[5])
    text = (MARKUP + " ") * 150
    odd.update(pair_id="injected-odd", chosen=[{"role": "assistant", "content": text}], chosen_chars=len(text),
               rejected=[{"role": "assistant", "content": "Oui."}], rejected_chars=4)
    rows += [dup, odd]
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(run / "pairs.parquet")), run / "pairs.parquet")
    return materialize(run, root / "store", progress=False)


def test_report_matches_an_independent_computation(version: Path):
    rows = pq.read_table(version / "data" / "all").to_pylist()
    dropped = pq.read_table(version / "data" / "dropped").to_pylist()
    report = build_report(str(version), top=5)
    assert report.pairs == len(rows)
    assert {(r["lang"], r["direction"]): r["pairs"] for r in report.by_lang_dir} == \
        dict(Counter((r["lang"], r["direction"]) for r in rows))
    assert {(d["stage"], d["reason"]): d["rows"] for d in report.drops} == \
        dict(Counter((d["stage"], d["reason"]) for d in dropped))
    for a in report.agreement:
        group = [r for r in rows if r["lang"] == a["lang"] and r["direction"] == a["direction"]]
        assert a["chosen"] == pytest.approx(sum(r["chosen_lang"] == r["lang"] for r in group) / len(group))
        assert a["rejected"] == pytest.approx(sum(r["rejected_lang"] == r["lang"] for r in group) / len(group))
    for r in report.lengths:
        group = [x for x in rows if x["lang"] == r["lang"]]
        assert r["chosen_q"][1] == pytest.approx(statistics.median(x["chosen_chars"] for x in group))
        assert r["rejected_q"][1] == pytest.approx(statistics.median(x["rejected_chars"] for x in group))
    assert report.duplicates["exact_pairs"] == 1 and report.duplicates["same_prompt_chosen"] >= 1
    assert report.duplicates["dropped_as_duplicate"] == sum(d["stage"] == "dedup" for d in dropped)
    top = report.suspicious[0]
    assert top["pair_id"] == "injected-odd" and top["reasons"][0].startswith("length ratio")
    assert len(report.suspicious) == 5
    assert report.manifest["version"] == "iter-1"


def test_terminal_report(version: Path, capsys):
    assert main(["inspect", str(version)]) == 0
    out = capsys.readouterr().out
    for heading in ("Pairs by language and direction", "Dropped rows", "Lengths", "Duplicates",
                    "Most suspicious pairs"):
        assert heading in out
    assert "injected" in out


def test_html_is_self_contained_and_escaped(version: Path, tmp_path: Path):
    page = render_html(build_report(str(version)))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") >= 4 + 4  # counts, drops, agreement, ratio + one length plot per language


def test_html_renders_in_headless_chromium(version: Path, tmp_path: Path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")
    html = tmp_path / "report.html"
    assert main(["inspect", str(version), "--html", str(html)]) == 0
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>x</title>")
    shots = {}
    for name, page in (("report", html), ("blank", blank)):
        shot = tmp_path / f"{name}.png"
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,2200",
               f"--screenshot={shot}", page.as_uri()]
        subprocess.run(cmd, capture_output=True, timeout=120)
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        shots[name] = shot.stat().st_size
    # A page with charts and tables compresses far worse than an empty one.
    assert shots["report"] > 10 * shots["blank"], shots
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"--user-data-dir={tmp_path / 'chrome-profile'}", html.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") >= 8 and "Most suspicious pairs" in dom


# Terminal escapes (colour, clear screen, a title change, an OSC 8 link), NUL, CR (overwrites the line), BEL,
# backspace, an 8-bit CSI and bidi overrides/isolates (U+202E shows "txt.exe" as "exe.txt").
HOSTILE = ("\u202etxt.exe\u202c \x1b[31mRED\x1b[0m nul\x00 cr\rX \x1b[2J\x1b]0;pwned\x07 bs\x08 csi\x9b31m "
           "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \u2066iso\u2069 <b>tag</b>")
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # anything that must not reach a terminal


@pytest.fixture(scope="module")
def hostile_version(tmp_path_factory) -> Path:
    """A version whose chosen and rejected texts hold terminal escapes, NUL, CR, C1 and bidi controls."""
    root = tmp_path_factory.mktemp("hostile")
    texts = {lang: {"prompt": [f"{lang} prompt {HOSTILE}"],
                    "answer": [f"{HOSTILE} {lang} answer {k}" for k in range(3)] + ["x" * 400]}
             for lang in ("en", "de", "fr")}
    run = make_run(root / "runs" / "demo-lidr" / "iter-1", n_prompts=6, langs=("de", "fr"), texts=texts)
    return materialize(run, root / "store", progress=False)


def test_model_text_never_drives_the_terminal(hostile_version: Path, capsys):
    """Issue 20 item 9: `lidr inspect` and `lidr sql` showed model text raw; control characters are now shown as
    visible escapes in every terminal rendering, and JSON carries them as escapes that decode to the same text."""
    assert main(["inspect", str(hostile_version), "--top", "20"]) == 0
    out = capsys.readouterr().out
    assert "Most suspicious pairs" in out and "\\x1b[31mRED" in out and "\\u202etxt" in out
    assert not RAW.findall(out), sorted(set(RAW.findall(out)))
    q = "SELECT chosen_text, rejected_text, prompt FROM pairs ORDER BY pair_id LIMIT 5"
    assert main(["sql", str(hostile_version), q]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J" in out and "\\x00" in out and "\\x0d" in out and "\\x9b" in out and "5 row(s)" in out
    assert not RAW.findall(out), sorted(set(RAW.findall(out)))
    # JSON: the same characters as escapes (valid JSON that decodes to exactly the stored text)
    assert main(["sql", str(hostile_version), q, "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert not RAW.findall(out), sorted(set(RAW.findall(out)))
    expected = duckdb.sql(f"SELECT chosen[1].content AS chosen_text, rejected[1].content AS rejected_text, prompt "
                          f"FROM '{hostile_version}/data/all/*.parquet' ORDER BY pair_id LIMIT 5").fetchall()
    assert [tuple(r.values()) for r in json.loads(out)] == expected and any(HOSTILE in r[0] for r in expected)
    assert main(["inspect", str(hostile_version), "--format", "json", "--top", "20"]) == 0
    out = capsys.readouterr().out
    assert not RAW.findall(out) and any(HOSTILE in s["chosen_text"] for s in json.loads(out)["suspicious"])
    # An error message that echoes a value (DuckDB quotes the string it cannot convert) is escaped too.
    assert main(["sql", str(hostile_version), "SELECT CAST(chosen_text AS INTEGER) FROM pairs"]) == 2
    err = capsys.readouterr().err
    assert "Could not convert" in err and "\\x1b" in err and not RAW.findall(err), err
    assert len(err.strip().splitlines()) == 1


def test_html_escapes_every_control_character(hostile_version: Path, tmp_path: Path):
    page = render_html(build_report(str(hostile_version), top=20))
    assert not RAW.findall(page), sorted(set(RAW.findall(page)))
    assert "\\x1b[31mRED" in page and "\\x00" in page and "\\u202etxt.exe" in page and "&lt;b&gt;tag" in page
    assert "<b>tag" not in page
    out = tmp_path / "r.html"
    assert main(["inspect", str(hostile_version), "--html", str(out)]) == 0
    assert b"\x00" not in out.read_bytes() and out.read_text(encoding="utf-8").rstrip().endswith("</html>")
