"""Answer extraction on every real MGSM gold answer, written the ways models write them."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from shared_data import require_shared_data

from lidr_data.eval.extract import extract_answer, normalize_digits, parse_gold, parse_number

LANGS = ["bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"]

# How each language states the final answer ({n} is the number as written), and a trailing sentence holding
# another number, so the localized phrase must win over "the last number".
STATED = {
    "en": ["The answer is {n}.", "So the final answer is: **{n}**"],
    "de": ["Die Antwort lautet {n}.", "Die Antwort ist {n} $."],
    "es": ["La respuesta es {n}.", "La respuesta final es: {n} dólares."],
    "fr": ["La réponse est {n}.", "La réponse finale est : {n} €."],
    "ru": ["Ответ: {n}.", "Ответ — {n} долларов."],
    "ja": ["答えは{n}です。", "答え：{n}ドル"],
    "zh": ["答案是{n}。", "答案为：{n}美元"],
    "th": ["คำตอบคือ {n}", "คำตอบคือ {n} บาท"],
    "sw": ["Jibu ni {n}.", "Jibu ni: {n}"],
    "bn": ["উত্তর হল {n}।", "উত্তর হলো {n}টি।"],
    "te": ["సమాధానం {n}.", "సమాధానం: {n}"],
}
TRAILING = {
    "en": " Let me know if you have 2 more questions!", "de": " Ich hoffe, das hilft bei deinen 2 Fragen.",
    "es": " Espero que esto ayude con tus 2 preguntas.", "fr": " J'espère que cela aide pour vos 2 questions.",
    "ru": " Надеюсь, это поможет с 2 вопросами.", "ja": " 他に2つ質問があれば聞いてください。",
    "zh": " 如果还有2个问题请告诉我。", "th": " หวังว่าจะช่วยได้ 2 ข้อ", "sw": " Natumaini hii inasaidia na maswali 2.",
    "bn": " আরও ২টি প্রশ্ন থাকলে জানাও।", "te": " మరో 2 ప్రశ్నలు ఉంటే అడగండి.",
}
REASONING = "16 - 3 - 4 = 9 ; 9 * 2 = 18 ; 7 + 5 = 12.\n"
NATIVE_ZERO = {"bn": 0x09E6, "te": 0x0C66, "th": 0x0E50, "ja": 0xFF10, "zh": 0xFF10}


def group(n: int, lang: str) -> str:
    """n with the thousands separator people use in `lang` (Indian grouping for Bengali)."""
    s = str(n)
    if lang == "bn" and n >= 100000:
        head, tail = s[:-3], s[-3:]
        pairs = [head[max(0, i - 2):i] for i in range(len(head), 0, -2)][::-1]
        return ",".join([*pairs, tail])
    sep = {"de": ".", "es": ".", "fr": "\u202f", "ru": "\u00a0"}.get(lang, ",")
    return f"{n:,}".replace(",", sep)


def native(text: str, lang: str) -> str:
    zero = NATIVE_ZERO[lang]
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


def styles(n: int, lang: str) -> list[str]:
    out = [REASONING + s.format(n=n) for s in STATED[lang]]
    out.append(REASONING + STATED[lang][0].format(n=group(n, lang)))
    out.append(REASONING + STATED[lang][0].format(n=n) + TRAILING[lang])
    out.append(REASONING + f"{n - 1} + 1 = {group(n, lang)}")  # no phrase: the last number
    if lang in NATIVE_ZERO:
        out.append(native(REASONING + STATED[lang][1].format(n=group(n, lang)), lang))
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_every_gold_answer_is_extracted_in_every_style(lang):
    path = require_shared_data("mgsm", f"mgsm_{lang}.jsonl")
    golds = [json.loads(line)["response"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    assert len(golds) == 250
    checked = 0
    for raw in golds:
        gold = parse_gold(raw)
        n = int(gold)
        for text in styles(n, lang):
            assert extract_answer(text, lang) == gold, (lang, raw, text)
            checked += 1
        for wrong in styles(n + 1, lang):  # a wrong answer written the same ways is not the gold
            assert extract_answer(wrong, lang) != gold, (lang, raw, wrong)
    assert checked >= 250 * 5


def test_gold_with_thousands_comma_parses():
    assert parse_gold("276,000") == "276000"
    assert parse_gold("2,125") == "2125"
    assert parse_gold(18) == "18"


@pytest.mark.parametrize(
    ("token", "value"),
    [("1,234,567", "1234567"), ("12,34,567", "1234567"), ("1.234,5", "1234.5"), ("1,234.5", "1234.5"),
     ("18,5", "18.5"), ("3.25", "3.25"), ("0.125", "0.125"), ("276 000", "276000"), ("-4", "-4")],
)
def test_parse_number(token, value):
    assert parse_number(token) == Decimal(value)


def test_malformed_groupings_are_not_numbers():
    assert parse_number("1,23,4") is None
    assert parse_number("12,3456,789") is None


def test_digits_of_other_scripts():
    assert normalize_digits("१२३ ١٢٣ ۱۲۳ ๑๒๓ ౧౨౩ ১২৩ １２３") == "123 123 123 123 123 123 123"
    assert extract_answer("उत्तर है १,२३४", "hi") == "1234"
    assert extract_answer("الجواب ١٢٣", "ar") == "123"


def test_phrase_beats_later_numbers_and_german_phrasings():
    assert extract_answer("Die Antwort ist 42. Schritt 3 war schwer.", "de") == "42"
    assert extract_answer("Die Antwort lautet: 42 Euro. Danke für 3 Fragen.", "de") == "42"
    assert extract_answer("So it is \\boxed{1,024}. Then 7.", "en") == "1024"
    assert extract_answer("The answer is 18. Also 20.", "zh") == "18"  # English phrasing in any language


def test_chinese_and_japanese_myriads():
    assert extract_answer("答案是27.6万美元。", "zh") == "276000"
    assert extract_answer("答えは27万6000円です。", "ja") == "276000"
    assert extract_answer("答案是1亿", "zh") == "100000000"
    assert extract_answer("The answer is 3万", "en") == "3"  # only where the language writes numbers so


def test_no_number():
    assert extract_answer("I do not know.", "en") is None
    assert extract_answer("", "en") is None
    assert extract_answer(None, "en") is None


# Minus signs as models write them: U+2212 MINUS SIGN, en dash, figure dash, small and full-width hyphen-minus,
# hyphen, and ASCII with a space after it.
MINUSES = ["\u2212", "\u2013", "\u2012", "\ufe63", "\uff0d", "\u2010", "-", "- "]


def test_issue_reproductions_negative_answers():
    assert extract_answer("The answer is −10.", "en") == "-10"
    assert extract_answer("Ответ: –10.", "ru") == "-10"
    assert extract_answer("La réponse est −10.", "fr") == "-10"
    assert extract_answer("The answer is - 10.", "en") == "-10"
    assert extract_answer("The answer is -$10.", "en") == "-10"


@pytest.mark.parametrize("lang", LANGS)
def test_negative_answers_keep_their_sign_in_every_language(lang):
    for minus in MINUSES:
        for stated in STATED[lang]:
            text = REASONING + stated.format(n=f"{minus}1,250")
            assert extract_answer(text, lang) == "-1250", (lang, text)
        # No phrase: the last number, signed.
        assert extract_answer(f"16 {minus} 26 = {minus}10", lang) == "-10"
    # A dash between two numbers is a range or a subtraction, not a sign of the second.
    assert extract_answer("from 3–10", lang) == "10"
    assert extract_answer("16-3=13", lang) == "13"


def test_russian_dash_connector_is_not_a_sign():
    assert extract_answer("Ответ — 18 долларов.", "ru") == "18"
    assert extract_answer("Ответ – 18 долларов.", "ru") == "18"  # en dash then a space: the connector
    assert extract_answer("Ответ –18.", "ru") == "-18"  # attached to the digits: the sign


# After the stated answer, a sentence that uses the answer noun loosely with another number: it must not win.
LOOSER = {
    "en": " This answer is based on 3 steps.",
    "de": " Diese Antwort ist in 3 Schritten entstanden.",
    "es": " Esta respuesta es de 3 pasos.",
    "fr": " Cette réponse est obtenue en 3 étapes.",
    "ru": "\n\nЭтот ответ получен за 3 шага.",
    "ja": " この答えを出すのに3つのステップを使いました。",
    "zh": " 这个答案用了3个步骤得出。",
    "th": " คำตอบนี้ได้มาจาก 3 ขั้นตอน",
    "sw": " Jibu hili limepatikana kwa hatua 3.",
    "bn": " উত্তর দিকে ৩টি বাড়ি আছে।",  # উত্তর also means "north"
    "te": " ఈ సమాధానం రావడానికి 3 దశలు పట్టాయి.",
}


def test_issue_reproductions_later_looser_phrase():
    assert extract_answer("Ответ: 18 долларов.\n\nЭтот ответ получен за 3 шага.", "ru") == "18"
    assert extract_answer("The answer is 18. This answer is based on 3 steps.", "en") == "18"
    assert extract_answer("উত্তর হল ১৮। উত্তর দিকে ৩টি বাড়ি আছে।", "bn") == "18"


@pytest.mark.parametrize("lang", LANGS)
def test_full_phrase_beats_a_later_looser_one_and_the_last_full_phrase_wins(lang):
    for stated in STATED[lang]:
        # A later, looser use of the noun never overrides the stated answer.
        assert extract_answer(REASONING + stated.format(n=18) + LOOSER[lang], lang) == "18", (lang, stated)
        # Several full phrases: the last one is the answer (models restate or correct it at the end).
        two = REASONING + stated.format(n=7) + "\n" + REASONING + stated.format(n=18) + LOOSER[lang]
        assert extract_answer(two, lang) == "18", (lang, two)


@pytest.mark.parametrize("lang", ["ru", "th", "bn", "te"])
def test_bare_noun_counts_only_right_before_the_number(lang):
    noun = {"ru": "Ответ", "th": "คำตอบ", "bn": "উত্তর", "te": "సమాధానం"}[lang]
    assert extract_answer(f"{REASONING}{noun} 18", lang) == "18"
    # A full phrase wins over a later bare noun; the noun with words before the number is not an answer phrase.
    full = STATED[lang][1 if lang == "te" else 0]  # Telugu's first style is the bare noun itself
    assert extract_answer(f"{REASONING}{full.format(n=18)} {noun} 3", lang) == "18"


@pytest.mark.parametrize("lang", LANGS)
def test_a_time_is_not_an_integer_answer(lang):
    """A stated answer that is a time or a ratio gives no answer (None): it is neither 12 nor 1230, and the
    extractor does not fall back to another number of the text."""
    for stated in STATED[lang]:
        assert extract_answer(REASONING + stated.format(n="12:30"), lang) is None, (lang, stated)
    assert extract_answer("The meeting starts at 12:30", lang) is None


def test_stated_answer_on_the_next_line():
    assert extract_answer("So, 16 - 3 = 13.\nThe answer is:\n\n**18**\n\nHope 2 steps helped.", "en") == "18"
    assert extract_answer("Ответ:\n18 долларов. Это 2 шага.", "ru") == "18"
    # A bare noun at the end of a line is not followed by its number on the next one.
    assert extract_answer("Получаем ответ\n2. Ответ: 18", "ru") == "18"
    assert extract_answer("Считаем ответ\n2 раза проверили, итого 7", "ru") == "7"


def test_issue_reproduction_time():
    assert extract_answer("The answer is 12:30.", "en") is None
    assert extract_answer("Step 1: 5 + 3 = 8", "en") == "8"  # a colon after a label is not a time
    assert extract_answer("Total:18", "en") == "18"
