"""Language ID (lidr_data.langid) on real texts from shared/data: parallel prompts in 11 languages and real
model answers. fastText answers first, lingua re-reads the uncertain ones; both paths are exercised."""

from __future__ import annotations

import json

import pytest
from shared_data import require_shared_data

from lidr_data import langid
from lidr_data.errors import LidrError
from lidr_data.langid import detect_languages

LANGS = ["ar", "de", "en", "es", "fr", "it", "ja", "ko", "ru", "th", "zh"]


def _prompts(n: int = 200) -> list[tuple[str, str]]:
    folder = require_shared_data("prompts", "alpagasus-0-1000")
    texts = []
    for lang in LANGS:
        with (folder / f"{lang}.jsonl").open(encoding="utf-8") as f:
            texts += [(lang, json.loads(line)["instruction"]) for _, line in zip(range(n), f)]
    return texts


def test_parallel_prompts_in_eleven_languages():
    texts = _prompts()
    found = detect_languages([t for _, t in texts], LANGS)
    wrong = [(lang, code, t[:60]) for (lang, t), (code, _) in zip(texts, found) if code not in (lang, "unknown")]
    unknown = sum(code == "unknown" for code, _ in found)
    # Short instructions are the hard case; measured 2 wrong and 0-3 unknown in these 2,200.
    assert len(wrong) <= 0.01 * len(texts), wrong
    assert unknown <= 0.02 * len(texts)
    # Chinese and Japanese share characters: each is read as itself.
    for lang in ("zh", "ja"):
        got = [code for (lg, _), (code, _) in zip(texts, found) if lg == lang]
        assert got.count(lang) >= 0.97 * len(got)


def test_real_answers_and_translations():
    path = require_shared_data("generations", "llama-3-8b-instruct-M0", "en.responses.to_fr.jsonl")
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    en = detect_languages([r["response"] for r in rows], ["en", "fr", "de", "es", "ru"])
    fr = detect_languages([r["en2fr_reponse"] for r in rows if r["en2fr_reponse"] != "Translation Error"],
                          ["en", "fr", "de", "es", "ru"])
    assert sum(c == "en" for c, _ in en) >= 990 and not {c for c, _ in en} - {"en", "unknown"}
    assert sum(c == "fr" for c, _ in fr) >= 0.99 * len(fr) and not {c for c, _ in fr} - {"fr", "unknown"}


def test_lingua_alone_gives_the_same_answers_on_clear_text(monkeypatch):
    texts = [t for _, t in _prompts(20)]
    both = detect_languages(texts, LANGS)
    monkeypatch.setattr(langid, "_fasttext_predict", lambda: None)
    alone = detect_languages(texts, LANGS)
    agree = sum(a[0] == b[0] for a, b in zip(both, alone))
    assert agree >= 0.97 * len(texts)


def test_worker_processes_give_the_same_answers(monkeypatch):
    texts = [t for _, t in _prompts(100)]  # 1,100 texts
    one = detect_languages(texts, LANGS)
    monkeypatch.setattr(langid, "_workers", lambda: 2)
    monkeypatch.setattr(langid, "PARALLEL_MIN", 100)  # at least two chunks, read in worker processes
    used, real_pool = [], langid._pool
    monkeypatch.setattr(langid, "_pool", lambda: used.append(1) or real_pool())
    many = detect_languages(texts, LANGS)
    assert used
    assert [c for c, _ in many] == [c for c, _ in one]
    assert [s for _, s in many] == pytest.approx([s for _, s in one], abs=1e-9)


def test_empty_and_missing_texts_are_unknown():
    assert detect_languages([None, "", "   \n"], ["en", "fr"]) == [("unknown", 0.0)] * 3


def test_min_score_and_prefix():
    text = "The weather is lovely today and we are going to walk along the river after lunch."
    (code, score), = detect_languages([text], ["en", "fr"])
    assert code == "en" and 0.5 <= score <= 1.0
    assert detect_languages([text], ["en", "fr"], min_score=1.0)[0][0] in ("unknown", "en")
    # Only the prefix is read: French first, English after the cut.
    mixed = "Bonjour tout le monde, il fait beau aujourd'hui. " + text * 20
    assert detect_languages([mixed], ["en", "fr"], prefix_chars=45)[0][0] == "fr"
    assert detect_languages([mixed], ["en", "fr"], prefix_chars=2000, quick_chars=None)[0][0] == "en"
    # The quick first read sees only the French opening and is sure of it: the rest is not read.
    assert detect_languages([mixed], ["en", "fr"], prefix_chars=2000)[0][0] == "fr"


def test_quick_read_goes_on_when_unsure():
    # A code opening is unsure (or not in the languages) at 60 characters; the 300-character read settles it.
    text = "```python\nimport os\nprint(os.getcwd())\n```\n\n" + "Ce programme affiche le dossier courant. " * 6
    assert detect_languages([text], ["en", "fr"])[0][0] == "fr"
    assert detect_languages([text], ["en", "fr"], quick_chars=None)[0][0] == "fr"


def test_single_language_and_bad_codes():
    assert detect_languages(["Ceci est une phrase en français, assez longue pour être reconnue."], ["fr"])[0][0] == "fr"
    with pytest.raises(LidrError, match="'xx'"):
        detect_languages(["hello"], ["en", "xx"])


def test_a_broken_worker_pool_falls_back_to_this_process(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    texts = [t for _, t in _prompts(20)]
    one = detect_languages(texts, LANGS)

    class Broken:
        def map(self, *args):
            raise BrokenProcessPool("a worker died")

    cleared = []
    broken = lambda: Broken()  # noqa: E731
    broken.cache_clear = lambda: cleared.append(1)
    monkeypatch.setattr(langid, "_workers", lambda: 2)
    monkeypatch.setattr(langid, "PARALLEL_MIN", 10)
    monkeypatch.setattr(langid, "_pool", broken)
    again = detect_languages(texts, LANGS)
    assert [c for c, _ in again] == [c for c, _ in one]
    assert [s for _, s in again] == pytest.approx([s for _, s in one], abs=1e-9)
    assert cleared  # the next call starts a new pool


def test_lingua_reads_long_prefixes_with_its_light_models(monkeypatch):
    long_fr = "La rivière traverse la vieille ville et passe devant le marché avant d'atteindre la mer. " * 5
    short_de = "Der Fluss fließt durch die Altstadt."
    modes, real = [], langid._detector
    monkeypatch.setattr(langid, "_detector", lambda langs, low=False: modes.append(low) or real(langs, low))
    monkeypatch.setattr(langid, "_fasttext_predict", lambda: None)  # lingua answers everything
    found = detect_languages([long_fr, short_de], ["en", "fr", "de"])
    assert [c for c, _ in found] == ["fr", "de"]
    assert True in modes and False in modes  # the 300-character prefix used the light models, the short one not


# English answers laid out as real ones are (issue 11): what the detectors read as another language before the
# markup, tables, code and numbers were blanked and before a disagreeing first read got a further look.
QUOTE_FIRST = ('Je vous manque beaucoup, mon amour. (pronounced "zhuh voo mahnk boh-koo")\n\n'
               'This phrase is how French speakers say "I miss you a lot, my love", although the structure is '
               'reversed: literally it means "you are missing to me". The person who is missed is the subject of '
               'the French sentence, and the one who misses them is the object. So to tell a friend that you miss '
               'them, you say "Tu me manques", and if you want to say that they miss you, you say "Je te manque". '
               'It takes a little practice, but once you think of it as "you are lacking to me" it becomes natural, '
               'and you will hear it in songs and films all the time.')
HEADINGS = ('1. **Transition to renewable energy**: Shift from fossil fuels to solar, wind and hydroelectric power.\n'
            '2. **Energy efficiency**: Improve insulation in buildings and use efficient appliances.\n'
            '3. **Sustainable transport**: Encourage public transport, cycling and electric vehicles.\n'
            '4. **Protect forests**: Stop deforestation and plant new trees to absorb carbon dioxide.')
TABLE = ('| Category | Derek Jeter | Albert Pujols |\n|---|---|---|\n| Batting average | .310 | .296 |\n'
         '| Home runs | 260 | 703 |\n| Hits | 3,465 | 3,384 |\n| RBIs | 1,311 | 2,218 |\n\n'
         'Both players had remarkable careers. Jeter was known for his consistency, leadership and clutch hitting '
         'over twenty seasons with the Yankees, while Pujols was one of the most feared power hitters of his '
         'generation.')
RECIPE = ('Ingredients:\n- 2 cups (250 g) all-purpose flour\n- 1 tsp baking soda\n- 1/2 tsp salt\n'
          '- 1 cup (225 g) butter, softened\n- 2 large eggs\n\nInstructions:\n1. Preheat the oven to 375°F (190°C).\n'
          '2. Mix the flour, baking soda and salt in a small bowl.\n3. Beat the butter and sugar until creamy.')
CODE = ('```python\ndef fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n'
        '```\n\nThis function returns the n-th Fibonacci number. It keeps the last two numbers of the sequence and '
        'moves them forward n times, so it runs in linear time and constant memory.')
PAIR_LANGS = ["en", "es", "ru", "de", "fr", "zh", "ja"]


def test_texts_without_letters_are_unknown():
    """No letters, no language: every integer 0..2,999 (five of them were read as a language), times, amounts,
    emoji, bare table rules and code."""
    numbers = [str(i) for i in range(3000)]
    others = ["12:30", "$1,234.50", "-10", "😺🐾🧸", "| 1 | 2 |\n|---|---|", "```\n123\n```", "3.14159", "((2+3)*4)"]
    found = detect_languages(numbers + others, PAIR_LANGS)
    assert [(t, c) for t, (c, _) in zip(numbers + others, found) if c != "unknown"] == []
    assert all(score == 0.0 for _, score in found)
    assert detect_languages(["221"], ["en"]) == [("unknown", 0.0)]


def test_words_only_blanks_markup_code_and_numbers():
    assert langid.words_only(HEADINGS).startswith(". Transition to renewable energy : Shift from fossil fuels")
    assert "---" not in langid.words_only(TABLE) and "|" not in langid.words_only(TABLE)
    assert "fibonacci" not in langid.words_only(CODE) and "This function" in langid.words_only(CODE)
    assert langid.words_only("see https://example.com/a-b or mail me@x.org") == "see or mail"
    assert langid.words_only("Der Fluss fließt — 3 km weiter.") == "Der Fluss fließt km weiter."


def test_markdown_lists_tables_recipes_and_code_read_as_their_prose():
    for text in (HEADINGS, TABLE, RECIPE, CODE):
        assert detect_languages([text], PAIR_LANGS)[0][0] == "en", text[:40]
        assert detect_languages([text], PAIR_LANGS, expected=["en"])[0][0] == "en", text[:40]


def test_a_disagreeing_first_read_gets_a_further_look():
    # The first 300 characters open with a French sentence; the answer is English.
    assert detect_languages([QUOTE_FIRST], PAIR_LANGS, quick_chars=None, prefix_chars=60)[0][0] == "fr"
    (code, score), = detect_languages([QUOTE_FIRST], PAIR_LANGS, prefix_chars=60, expected=["en"])
    assert code == "en" and score >= 0.5
    assert detect_languages([QUOTE_FIRST], PAIR_LANGS, expected=["en"])[0][0] == "en"
    # A text really in another language stays so (wrong-language recall), and costs one more window: the next
    # characters agree with the first read, which decides.
    path = require_shared_data("generations", "llama-3-8b-instruct-M0", "en.responses.to_fr.jsonl")
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    fr = [r["en2fr_reponse"] for r in rows if r["en2fr_reponse"] != "Translation Error"][:300]
    calls = []
    real = langid._detect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(langid, "_detect", lambda texts, *a, **k: calls.append(len(texts)) or real(texts, *a, **k))
        found = detect_languages(fr, PAIR_LANGS, expected=["en"] * len(fr))
        assert sum(c == "fr" for c, _ in found) >= 0.99 * len(fr) and "en" not in {c for c, _ in found}
        longer = sum(len(t) > 300 for t in fr)
        assert calls[0] == len(fr) and 0.9 * longer <= calls[1] <= longer and sum(calls[2:]) <= 0.02 * longer
        # Only the texts that disagree are read again: the table's 60 characters are names, the headings read
        # as English at once; the quote and the table get the next window of 60 characters, then (as it
        # disagrees with the first read) a third, and two windows in a row saying English decide.
        calls.clear()
        found = detect_languages([QUOTE_FIRST, HEADINGS, TABLE], PAIR_LANGS, prefix_chars=60, expected=["en"] * 3)
    assert calls == [3, 2, 2]
    assert [c for c, _ in found] == ["en"] * 3


def test_expected_must_match_the_texts():
    with pytest.raises(LidrError, match="2 expected languages for 1 texts"):
        detect_languages(["hello there"], ["en", "fr"], expected=["en", "fr"])


def test_an_unknown_first_read_reads_on_when_a_language_is_expected():
    """A data block first (no letters in the first two windows), prose after: unknown at first, English on the
    whole."""
    text = "```\n" + "[1, 2, 3, 4.5, 6]\n" * 40 + "```\n\n" + CODE.split("```\n\n")[1]
    assert detect_languages([text], PAIR_LANGS)[0] == ("unknown", 0.0)
    assert detect_languages([text], PAIR_LANGS, expected=["en"])[0][0] == "en"
    # Data alone has no language, expected or not.
    assert detect_languages([text.split("\n\n")[0]], PAIR_LANGS, expected=["en"])[0] == ("unknown", 0.0)


def test_further_look_votes(monkeypatch):
    """read_further's rule on scripted window reads: two windows in a row decide; otherwise most windows win
    (a tie: the text read whole); unknown windows do not vote."""
    script = {"A": [("fr", 0.9), ("fr", 0.7)], "B": [("en", 0.8), ("en", 0.6)], "C": [("en", 0.8), ("fr", 0.6)],
              "D": [("unknown", 0.0), ("unknown", 0.0)], "E": [("unknown", 0.2), ("en", 0.9)],
              "F": [("en", 0.8), ("en", 0.99)]}
    window = {}

    def fake_detect(texts, *args, **kwargs):
        out = []
        for t in texts:
            window[t[0]] = window.get(t[0], -1) + 1
            out.append(script[t[0]][window[t[0]]])
        return out

    monkeypatch.setattr(langid, "_detect", fake_detect)
    texts = [k * 30 for k in "ABCDE"] + ["F" * 20]  # windows of 10 characters: two further reads at most
    first = [("fr", 0.8), ("fr", 0.9), ("fr", 0.95), ("fr", 0.7), ("unknown", 0.1), ("fr", 0.9)]
    got = langid.read_further(texts, first, ["en", "fr"], prefix_chars=10, recheck_chars=30)
    assert got[0] == ("fr", pytest.approx(0.85))  # the first read confirmed by the next window
    assert got[1] == ("en", pytest.approx(0.7))  # two English windows in a row
    assert got[2] == ("fr", pytest.approx((0.95 + 0.6) / 2))  # fr, en, fr: most windows
    assert got[3] == ("fr", 0.7)  # nothing said after the first read: it stands
    assert got[4] == ("en", 0.9)  # an unknown first read, one window with a language
    assert got[5] == ("en", 0.99)  # fr, en and the text ends: a tie, the whole text read decides
