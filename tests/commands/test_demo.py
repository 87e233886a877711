"""`lidr demo` ends with a few kept pairs: model text printed escaped (no markup, no terminal control)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from lidr_data.commands.demo import sample_pairs, show_pairs
from lidr_data.commands.render import snippet


def _msgs(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


def _pairs(path, rows):
    # (prompt, chosen, rejected, L, direction): a to_dominant pair's prompt is English, its pivot L
    table = pa.Table.from_pylist([{"prompt": _msgs("user", p), "chosen": _msgs("assistant", c),
                                   "rejected": _msgs("assistant", r), "direction": d,
                                   "lang": lang if d == "from_dominant" else "en",
                                   "pivot_lang": "en" if d == "from_dominant" else lang}
                                  for p, c, r, lang, d in rows])
    pq.write_table(table, path / "pairs.parquet")


def test_snippet_escapes_control_and_bidi_characters():
    assert snippet("red \x1b[31mALERT\x1b[0m") == "red \\x1b[31mALERT\\x1b[0m"
    assert snippet("abc\u202edef") == "abc\\u202edef"  # bidi override
    assert snippet("line one\nline two") == "line one ⏎ line two"
    assert snippet("x" * 50, limit=10) == "x" * 9 + "…"
    assert snippet(None) == "(none)"


def test_show_pairs_prints_model_text_literally(tmp_path):
    _pairs(tmp_path, [
        ("Bonjour ?", "Salut [bold]ami[/] \x1b]0;pwned\x07", "Non", "fr", "from_dominant"),
        ("Hello?", "Hi", "Hey", "fr", "to_dominant"),
        ("Hola?", "Hola", "Adiós", "es", "from_dominant"),
    ])
    buf = io.StringIO()
    show_pairs(tmp_path, Console(file=buf, width=200, color_system=None), 4)
    out = buf.getvalue()
    assert "[bold]ami[/]" in out and "\\x1b]0;pwned\\x07" in out and "\x1b" not in out and "\x07" not in out
    assert "3 of the kept pairs" in out
    assert "en · to_dominant (chosen: the direct en answer; rejected: the fr answer translated into en)" in out
    assert "fr · from_dominant (chosen: the en answer translated into fr; rejected: the direct fr answer)" in out


def test_sample_pairs_takes_one_per_language_and_direction_in_turn(tmp_path):
    _pairs(tmp_path, [(f"p{i}", "c", "r", lang, d) for i, (lang, d) in enumerate(
        [("de", "from_dominant"), ("de", "from_dominant"), ("es", "to_dominant"), ("es", "from_dominant")])])
    picked = sample_pairs(tmp_path, 3)
    assert [(r["pivot_lang"], r["direction"]) for r in picked] == [("en", "from_dominant"), ("en", "from_dominant"),
                                                                   ("es", "to_dominant")]
    assert [r["lang"] for r in picked] == ["de", "es", "en"]
    assert sample_pairs(tmp_path, 0) == []
