"""Language identification: the one definition of "which language is this text" used by the tag stage,
`lidr inspect` and the evaluator's off-target rate.

Lingua restricted to the languages in play is accurate on paragraph-length text; every detector fails on
two-word phrases, so a low confidence yields "unknown" rather than a guess. Only a bounded prefix of each text
is read: a few hundred characters decide the language and long answers would otherwise dominate the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lidr_data.errors import LidrError

UNKNOWN = "unknown"
DEFAULT_PREFIX_CHARS = 300
DEFAULT_MIN_SCORE = 0.5


@lru_cache(maxsize=8)
def _detector(languages: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = []
    for code in languages:
        try:
            codes.append(IsoCode639_1.from_str(code))
        except ValueError:
            raise LidrError(f"unknown or unsupported language code {code!r} for language ID") from None
    if len(codes) < 2:  # lingua needs two candidates; English is a neutral second one
        codes.append(IsoCode639_1.EN if codes[0] != IsoCode639_1.EN else IsoCode639_1.FR)
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models().build()


def detect_languages(
    texts: Sequence[str | None],
    languages: Sequence[str],
    prefix_chars: int = DEFAULT_PREFIX_CHARS,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[tuple[str, float]]:
    """(ISO 639-1 code or "unknown", confidence in [0, 1]) for each text, choosing among `languages`."""
    detector = _detector(tuple(sorted(set(languages))))
    prefixes = [(t or "")[:prefix_chars] for t in texts]
    results: list[tuple[str, float]] = []
    for values in detector.compute_language_confidence_values_in_parallel(prefixes):
        if not values:
            results.append((UNKNOWN, 0.0))
            continue
        best = values[0]
        code = best.language.iso_code_639_1.name.lower()
        results.append((code, best.value) if best.value >= min_score else (UNKNOWN, best.value))
    for i, p in enumerate(prefixes):
        if not p.strip():
            results[i] = (UNKNOWN, 0.0)
    return results
