"""Final-answer extraction for MGSM: a localized "the answer is N" first, then the last number in the text
(precedence in `extract_answer`).

Digits of every script (Bengali, Devanagari, Thai, Telugu, Arabic-Indic, full-width, ...) are mapped to ASCII
through `unicodedata.decimal`, and compatibility forms (full-width punctuation, no-break spaces) through NFKC,
before any pattern runs. Thousands separators (`,` `.` `'` and spaces, Western and Indian grouping) are removed;
Chinese and Japanese myriads (27.6万, 27万6000, 1亿) are expanded.

MGSM answers are integers, so a single separator followed by exactly three digits reads as a thousands
separator in every language ("2.125" and "2,125" both read 2125): that is how models write these answers in
either convention. A separator followed by another number of digits is a decimal point ("18,5" is 18.5).
Negative answers keep their sign however it is written (U+2212, en dash, "- 10"); a time ("12:30") is no answer.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

# "The answer is" in each MGSM language (matching is case-insensitive, on normalized text): a noun and a
# connector. German models say both "Die Antwort ist" and "Die Antwort lautet"; Bengali uses "উত্তর হল/হলো".
# A dash (en dashes are "-" by then) is a connector unless a digit follows it: "Ответ — 18", "Ответ –10" = -10.
ANSWER_PHRASES: dict[str, list[str]] = {
    "en": [r"answer\s*(?:is|:|=|would be|will be)", r"answer\s+to\s+.{0,40}?\s+is"],
    "de": [r"antwort\s*(?:ist|lautet|:|=|wäre|beträgt)"],
    "es": [r"respuesta\s*(?:final\s*)?(?:es|:|=|sería)"],
    "fr": [r"r[ée]ponse\s*(?:finale\s*)?(?:est|:|=|serait)"],
    "ru": [r"ответ\s*(?::|(?:—|-)(?!\d)|=|равен|будет|составляет)"],
    "ja": [r"答え\s*(?:は|：|:|=)", r"答\s*[：:]"],
    "zh": [r"答案\s*(?:是|为|為|：|:|=)", r"答\s*[：:]"],
    "th": [r"คำตอบ\s*(?:คือ|สุดท้ายคือ|:|=)"],
    "sw": [r"jibu\s*(?:ni|:|=|la mwisho ni)"],
    "bn": [r"উত্তর\s*(?:হল|হলো|হবে|:|=)"],
    "te": [r"సమాధానం\s*(?::|=)"],
}
# The bare noun, in the languages where models (and our own prompts: "సమాధానం N") often drop the connector. It
# counts only when the number follows at once ("Ответ 18"): the word has other uses ("этот ответ получен за 3
# шага"; Bengali উত্তর also means "north": "উত্তর দিকে ৩টি বাড়ি").
ANSWER_NOUNS: dict[str, str] = {"ru": r"ответ", "th": r"คำตอบ", "bn": r"উত্তর", "te": r"సమాధానం"}

# Separators that may sit between digit groups, after NFKC (no-break and thin spaces become " ").
_SEP = r"[,.'’\u066b\u066c ]"
# A group after a space must be exactly three digits (3 000), other separators take any digits (parsed later).
_GROUPS = r"(?:[,.'’\u066b\u066c]\d+| \d{3}(?!\d))*"
# Minus signs as models write them: ASCII hyphen-minus, U+2212 MINUS SIGN, figure and en dashes, hyphens, the
# small hyphen-minus (full-width U+FF0D is ASCII after NFKC). They are mapped to "-" before matching. The em dash
# is not a sign: it is punctuation ("Ответ — 18").
_MINUS = str.maketrans({c: "-" for c in "\u2212\u2012\u2013\u2010\u2011\ufe63"})
# A time or a ratio ("12:30", "3:2") is not an integer answer: such a token is read whole and rejected.
_TOKEN = rf"\d+{_GROUPS}(?::\d+)*"
# A sign: "-" right before the digits, or "- " with one space ("The answer is - 10"), not after a digit or a
# letter of a script that writes hyphenated words (Latin, Greek, Cyrillic: "COVID-19"); Chinese, Japanese and
# Thai put no space before it ("答えは-10"). A currency sign may sit between ("-$10").
_CURRENCY = "$€£¥₹"
_SIGNED = rf"(?:(?<![0-9A-Za-z_\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff-])-\s?[{_CURRENCY}]?)?{_TOKEN}"
_NUMBER = re.compile(rf"(?<!\d){_SIGNED}")
_BOXED = re.compile(r"\\boxed\{\s*([^{}]*?)\s*\}")
# Between a phrase and its number. Strict: markup, quotes, currency signs, spaces ("**18**", "$18", ": 18"), line
# breaks too ("The answer is:\n\n**18**"). After a bare noun: the same on one line. Loose: also words without
# digits, on one line ("the answer is that she has 18 apples").
_STRICT_FILLER = r"[^\w]{0,12}?"
_NOUN_FILLER = r"[^\w\n]{0,12}?"
_LOOSE_FILLER = r"[^\d\n]{0,40}?"
_COMPILED: dict[tuple[str, str], re.Pattern | None] = {}


# Chinese/Japanese write large numbers with 万 (10^4) and 亿/億 (10^8): 27.6万, 27万6000.
_MYRIAD = re.compile(r"(\d+(?:\.\d+)?)\s*([万萬亿億])(\d+)?")
_MYRIAD_VALUE = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}


def _expand_myriads(text: str) -> str:
    def expand(m: re.Match) -> str:
        value = Decimal(m.group(1)) * _MYRIAD_VALUE[m.group(2)] + Decimal(m.group(3) or 0)
        return format_number(value)

    return _MYRIAD.sub(expand, text)


def normalize_digits(text: str) -> str:
    """NFKC, minus signs and dashes (U+2212, en dash, ...) as "-", every decimal digit of any script as ASCII."""
    text = unicodedata.normalize("NFKC", text).translate(_MINUS)
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
    if ":" in token:  # a time or a ratio, not a number
        return None
    negative = token.startswith("-")
    token = token.lstrip("-").lstrip(" " + _CURRENCY)
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


def _pattern(lang: str, tier: str) -> re.Pattern | None:
    """The regex of one tier for `lang`: "strict" (phrase + number), "noun" (bare noun + number) or "loose"
    (phrase, words, number); group 1 is the number. English phrasing is accepted in every language."""
    key = (lang, tier)
    if key not in _COMPILED:
        if tier == "noun":
            phrases = [ANSWER_NOUNS[lang]] if lang in ANSWER_NOUNS else []
        else:
            phrases = ANSWER_PHRASES.get(lang, []) + (ANSWER_PHRASES["en"] if lang != "en" else [])
        filler = {"strict": _STRICT_FILLER, "noun": _NOUN_FILLER, "loose": _LOOSE_FILLER}[tier]
        # Phrases go through the same normalization as the text (Thai SARA AM, for one, decomposes under NFKC).
        alternatives = "|".join(normalize_digits(p) for p in phrases)
        _COMPILED[key] = re.compile(rf"(?:{alternatives}){filler}({_SIGNED})", re.IGNORECASE) if phrases else None
    return _COMPILED[key]


TIERS = ("strict", "noun", "loose")


def extract_answer(text: str | None, lang: str) -> str | None:
    """The final numeric answer in a model output, as canonical text ('18', '-10', '2125', '18.5'), or None.

    Candidates, by precedence: the last `\\boxed{N}`; a localized answer phrase with the number right after it
    ("The answer is N", "Ответ: N", markup and currency allowed between); the bare noun right before the number
    ("Ответ N", "సమాధానం N"; ru, th, bn, te); a phrase with words before the number ("the answer is that she
    has N"); the last number in the text. Within one kind the LAST match wins: models restate the final answer
    at the end. A later, looser match never overrides an earlier, stricter one ("The answer is 18. This answer
    is based on 3 steps." -> 18). A stated answer that is a time or a ratio ("The answer is 12:30") is not an
    integer answer: None, with no fallback to other numbers.
    """
    if not text:
        return None
    norm = normalize_digits(text)
    if lang in ("zh", "ja"):
        norm = _expand_myriads(norm)
    boxed = _BOXED.findall(norm)
    if boxed:
        tokens = [m.group(0) for m in _NUMBER.finditer(boxed[-1])]
        if tokens:
            return _value(tokens[-1])
    for tier in TIERS:
        pattern = _pattern(lang, tier)
        found = [m.group(1) for m in pattern.finditer(norm)] if pattern else []
        if found:
            return _value(found[-1])
    for m in reversed(list(_NUMBER.finditer(norm))):
        value = _value(m.group(0))
        if value is not None:
            return value
    return None


def _value(token: str) -> str | None:
    value = parse_number(token.rstrip(".,' "))
    return None if value is None else format_number(value)


def parse_gold(answer: str | int | float) -> str:
    """A gold MGSM answer ('276,000', 18, '18.0') as canonical text."""
    value = parse_number(normalize_digits(str(answer)).strip())
    if value is None:
        raise ValueError(f"not a number: {answer!r}")
    return format_number(value)
