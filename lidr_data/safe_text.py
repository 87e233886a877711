"""Text that a model (or a manifest's author) wrote, made safe to show: it must never drive a terminal (escape
sequences, a carriage return that overwrites a line, NUL) nor reorder what a terminal or a page shows (bidi
overrides such as U+202E).

`printable` replaces each such character by a visible escape (`\\x1b`, `\\u202e`): for terminal tables, messages
and HTML. `json_safe` writes the same characters as JSON `\\uXXXX` escapes, which decode to the original text.
"""

from __future__ import annotations

import re

# C0 controls (ESC, NUL, CR, BEL, backspace...), DEL, C1 controls (0x9b is an 8-bit CSI), the bidi marks,
# embeddings, overrides and isolates, and the Unicode line and paragraph separators.
_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
# What json.dumps leaves raw inside strings (it escapes C0 itself; raw C0 in its output is layout whitespace).
_JSON_RAW = re.compile(f"[{_BEYOND_C0}]")


def _visible(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def printable(text: str, keep: str = "\n\t") -> str:
    """`text` with every control or bidi character shown as a visible escape, but those in `keep` (newline and
    tab by default: a table cell or a page lays them out; pass keep="" for one line)."""
    return UNSAFE.sub(lambda m: m.group() if m.group() in keep else _visible(m.group()), text)


def json_safe(dumped: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with the characters `json.dumps` leaves raw (DEL, C1,
    bidi, separators) written as `\\uXXXX` escapes: still valid JSON, decoding to the same values."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
