"""Final-answer extraction for MGSM: a localized "the answer is N" first, then the last number in the text.

Digits of every script (Bengali, Devanagari, Thai, Telugu, Arabic-Indic, full-width, ...) are mapped to ASCII
through `unicodedata.decimal`, and compatibility forms (full-width punctuation, no-break spaces) through NFKC,
before any pattern runs. Thousands separators (`,` `.` `'` and spaces, Western and Indian grouping) are removed;
Chinese and Japanese myriads (27.6万, 27万6000, 1亿) are expanded.

MGSM answers are integers, so a single separator followed by exactly three digits reads as a thousands
separator in every language ("2.125" and "2,125" both read 2125): that is how models write these answers in
either convention. A separator followed by another number of digits is a decimal point ("18,5" is 18.5).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

# "The answer is" in each MGSM language (matching is case-insensitive, on normalized text). German models say
# both "Die Antwort ist" and "Die Antwort lautet"; Bengali uses "উত্তর হল/হলো".
ANSWER_PHRASES: dict[str, list[str]] = {
    "en": [r"answer\s*(?:is|:|=|would be|will be)", r"answer\s+to\s+.{0,40}?\s+is"],
    "de": [r"antwort\s*(?:ist|lautet|:|=|wäre|beträgt)"],
    "es": [r"respuesta\s*(?:final\s*)?(?:es|:|=|sería)"],
    "fr": [r"r[ée]ponse\s*(?:finale\s*)?(?:est|:|=|serait)"],
    "ru": [r"ответ\s*(?::|—|–|-|=|равен|будет|составляет)?"],
    "ja": [r"答え\s*(?:は|：|:|=)", r"答\s*[：:]"],
    "zh": [r"答案\s*(?:是|为|為|：|:|=)", r"答\s*[：:]"],
    "th": [r"คำตอบ\s*(?:คือ|สุดท้ายคือ|:|=)?"],
    "sw": [r"jibu\s*(?:ni|:|=|la mwisho ni)"],
    "bn": [r"উত্তর\s*(?:হল|হলো|হবে|:|=)?"],
    "te": [r"సమాధానం\s*(?::|=)?"],
}

# Separators that may sit between digit groups, after NFKC (no-break and thin spaces become " ").
_SEP = r"[,.'’\u066b\u066c ]"
# A group after a space must be exactly three digits (3 000), other separators take any digits (parsed later).
_GROUPS = r"(?:[,.'’\u066b\u066c]\d+| \d{3}(?!\d))*"
_NUMBER = re.compile(rf"(?:(?<![\w-])-)?\d+{_GROUPS}")
_BOXED = re.compile(r"\\boxed\{\s*([^{}]*?)\s*\}")
# Between the phrase and the number: markup, currency, words without digits, on the same line.
_FILLER = r"[^\d\n]{0,40}?"
_COMPILED: dict[str, re.Pattern] = {}


# Chinese/Japanese write large numbers with 万 (10^4) and 亿/億 (10^8): 27.6万, 27万6000.
_MYRIAD = re.compile(r"(\d+(?:\.\d+)?)\s*([万萬亿億])(\d+)?")
_MYRIAD_VALUE = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}


def _expand_myriads(text: str) -> str:
    def expand(m: re.Match) -> str:
        value = Decimal(m.group(1)) * _MYRIAD_VALUE[m.group(2)] + Decimal(m.group(3) or 0)
        return format_number(value)

    return _MYRIAD.sub(expand, text)


def normalize_digits(text: str) -> str:
    """NFKC, then every decimal digit of any script as its ASCII digit."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch.isdigit() and not ch.isascii():
            d = unicodedata.decimal(ch, None)
            out.append(str(d) if d is not None else ch)
        else:
            out.append(ch)
    return "".join(out)


def parse_number(token: str) -> Decimal | None:
    """A number token as written (separators included, ASCII digits) -> its value, or None if it is not one."""
    token = token.strip()
    negative = token.startswith("-")
    token = token.lstrip("-")
    parts = re.split(rf"({_SEP})", token)
    groups, seps = parts[0::2], parts[1::2]
    if not groups or not all(g.isdigit() for g in groups):
        return None
    if not seps:
        value = Decimal(groups[0])
    else:
        last = seps[-1]
        decimal_last = (
            last == "\u066b"  # Arabic decimal separator
            or (last in ".," and len(set(seps)) > 1)  # 1,234.5 / 1.234,5
            or (last in ".," and len(groups[-1]) != 3)  # 18,5 / 3.25
            or (last in ".," and len(seps) == 1 and groups[0].startswith("0"))  # 0.125
        )
        int_groups, frac = (groups[:-1], groups[-1]) if decimal_last else (groups, "")
        int_seps = seps[:-1] if decimal_last else seps
        if len(int_groups) > 1 and not _valid_grouping(int_groups, int_seps):
            return None
        try:
            value = Decimal("".join(int_groups) + ("." + frac if frac else ""))
        except InvalidOperation:
            return None
    return -value if negative else value


def _valid_grouping(groups: list[str], seps: list[str]) -> bool:
    """Western (1,234,567) or Indian (12,34,567) digit grouping with one separator kind."""
    if len(set(seps)) != 1 or not 1 <= len(groups[0]) <= 3 or groups[0].startswith("0"):
        return False
    if len(groups[-1]) != 3:
        return False
    middle = {len(g) for g in groups[1:-1]}
    return middle <= {3} or middle <= {2}


def format_number(value: Decimal) -> str:
    """Canonical text of a value: '18', '18.5', '-3' (no exponent, no trailing zeros)."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _phrase_pattern(lang: str) -> re.Pattern:
    if lang not in _COMPILED:
        phrases = ANSWER_PHRASES.get(lang, []) + (ANSWER_PHRASES["en"] if lang != "en" else [])
        # Phrases go through the same NFKC as the text (Thai SARA AM, for one, decomposes).
        alternatives = "|".join(unicodedata.normalize("NFKC", p) for p in phrases)
        _COMPILED[lang] = re.compile(rf"(?:{alternatives}){_FILLER}(-?\d+{_GROUPS})", re.IGNORECASE)
    return _COMPILED[lang]


def extract_answer(text: str | None, lang: str) -> str | None:
    """The final numeric answer in a model output, as canonical text ('18', '2125', '18.5'), or None.

    Order: the last `\\boxed{N}`; the last localized "the answer is N" (English phrasing is accepted in every
    language); the last number in the text.
    """
    if not text:
        return None
    norm = normalize_digits(text)
    if lang in ("zh", "ja"):
        norm = _expand_myriads(norm)
    candidates: list[str] = []
    boxed = _BOXED.findall(norm)
    if boxed:
        candidates = [m.group(0) for m in _NUMBER.finditer(boxed[-1])][-1:]
    if not candidates:
        candidates = [m.group(1) for m in _phrase_pattern(lang).finditer(norm)][-1:]
    if not candidates:
        candidates = [m.group(0) for m in _NUMBER.finditer(norm)]
    for token in reversed(candidates):
        value = parse_number(token.rstrip(".,' "))
        if value is not None:
            return format_number(value)
    return None


def parse_gold(answer: str | int | float) -> str:
    """A gold MGSM answer ('276,000', 18, '18.0') as canonical text."""
    value = parse_number(normalize_digits(str(answer)).strip())
    if value is None:
        raise ValueError(f"not a number: {answer!r}")
    return format_number(value)
