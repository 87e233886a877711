"""Filter stage: every rule fires with its name, can be switched off, honours its thresholds; rows in = kept +
dropped. Runs the real tag stage first so the rules read real language-ID tags."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from postprocess_rows import make_pair, write_pairs

from lidr_data.errors import LidrError
from lidr_data.schema import DROP_COLUMNS, FLAT_TEXT, PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.stages.filter import FILTERED, RULES, FilterConfig, filter_pairs
from lidr_data.stages.tag import TagConfig, tag_pairs

EN = "The river flows through the old town, past the market and the cathedral, before it reaches the sea."
FR = "La rivière traverse la vieille ville, passe devant le marché et la cathédrale, avant d'atteindre la mer."
FR_B = "Le fleuve coule lentement vers l'océan en passant par les collines, les villages et les grandes forêts."
DE = "Der Fluss fließt durch die Altstadt, am Markt und am Dom vorbei, bevor er das Meer erreicht."
EN_B = "Rivers carry water from the mountains to the sea, shaping valleys and feeding farms along the way."
LANGS = ["en", "fr", "de"]


def good(**kw):
    base = {"prompt": "Où va la rivière ?", "chosen": FR, "rejected": FR_B, "lang": "fr"}
    base.update(kw)
    return make_pair(base.pop("prompt"), base.pop("chosen"), base.pop("rejected"), **base)


# One row per rule that fails only that rule.
FAILING = {
    "translation_failed": good(chosen=None, translation_ok=False),
    "empty_side": good(rejected="  \n"),
    "truncated": good(rejected_finish="length"),
    "wrong_language": good(chosen=DE),
    "length_ratio": good(chosen=FR * 8),
    "identical_sides": good(rejected=FR + "  "),
}


def run(tmp_path, rows, config=None, dominant="en"):
    raw = write_pairs(rows, tmp_path / "raw.parquet")
    tag_pairs(raw, tmp_path / "tagged.parquet", TagConfig(), LANGS)
    stats = filter_pairs(raw, tmp_path / "tagged.parquet", tmp_path / "kept.parquet", tmp_path / "dropped.parquet",
                         config or FilterConfig(), dominant)
    dropped = pq.read_table(tmp_path / "dropped.parquet")
    # The kept table names rows of pairs_raw; it is read here as those rows, with their tags.
    kept_rows = pq.read_table(tmp_path / "kept.parquet")
    assert kept_rows.schema == FILTERED
    full = pq.read_table(raw)
    tags = pq.read_table(tmp_path / "tagged.parquet")
    for f in TAG_COLUMNS:
        full = full.append_column(f, tags.column(f.name))
    kept = full.take(kept_rows.column("row"))
    assert kept.column("pair_id").equals(kept_rows.column("pair_id"))
    assert stats.rows_in == len(rows) == kept.num_rows + dropped.num_rows
    assert stats.kept == kept.num_rows and sum(stats.dropped.values()) == dropped.num_rows
    return stats, kept, dropped


def test_all_rules_fire_with_their_names_and_good_rows_survive(tmp_path):
    rows = [good(prompt_id="ok1"), good(prompt_id="ok2", chosen=EN, rejected=EN_B, lang="en",
                                        direction="to_dominant", pivot_lang="fr")] + list(FAILING.values())
    stats, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["ok1", "ok2"]
    assert dropped.column("reason").to_pylist() == list(FAILING)
    assert stats.dropped == {name: 1 for name in RULES}
    assert set(dropped.column("stage").to_pylist()) == {"filter"}
    assert dropped.column("duplicate_of").null_count == dropped.num_rows
    assert dropped.schema.names[-3:] == DROP_COLUMNS.names
    assert dropped.schema.names == [*PAIR_COLUMNS.names, *FLAT_TEXT.names, *TAG_COLUMNS.names, *DROP_COLUMNS.names]


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_can_be_switched_off(tmp_path, rule):
    stats, _, _ = run(tmp_path, [FAILING[rule]], FilterConfig(**{rule: False}))
    assert rule not in stats.dropped  # a later rule may still catch it (an empty side has a tiny length ratio)
    later = RULES[RULES.index(rule):]
    stats, kept, _ = run(tmp_path, [FAILING[rule]], FilterConfig(**{r: False for r in later}))
    assert kept.num_rows == 1, stats


def test_first_rule_in_order_wins(tmp_path):
    row = good(chosen=None, translation_ok=False, rejected_finish="length")  # failed, empty and truncated
    _, _, dropped = run(tmp_path, [row])
    assert dropped.column("reason").to_pylist() == ["translation_failed"]
    _, _, dropped = run(tmp_path, [good(rejected="", rejected_finish="length")])
    assert dropped.column("reason").to_pylist() == ["empty_side"]


def test_length_ratio_bounds_are_honoured(tmp_path):
    ratio = len(FR * 3) / len(FR_B)  # about 3
    rows = [good(chosen=FR * 3)]
    assert run(tmp_path, rows, FilterConfig(max_length_ratio=ratio + 0.1))[1].num_rows == 1
    _, _, dropped = run(tmp_path, rows, FilterConfig(max_length_ratio=ratio - 0.1))
    assert dropped.column("reason").to_pylist() == ["length_ratio"]
    rows = [good(rejected=FR_B * 3)]  # ratio about 1/3
    assert run(tmp_path, rows, FilterConfig(min_length_ratio=1 / 3.5))[1].num_rows == 1
    assert run(tmp_path, rows, FilterConfig(min_length_ratio=0.5))[2].num_rows == 1


def test_language_rule_uses_dominant_language_for_to_dominant_pairs(tmp_path):
    row = good(chosen=EN, rejected=EN_B, lang="fr", direction="to_dominant", pivot_lang="fr")
    assert run(tmp_path, [row], dominant="en")[1].num_rows == 1
    _, _, dropped = run(tmp_path, [row], dominant="fr")  # French expected, English found
    assert dropped.column("reason").to_pylist() == ["wrong_language"]
    _, _, dropped = run(tmp_path, [good(rejected=EN_B)])  # the rejected side counts too
    assert dropped.column("reason").to_pylist() == ["wrong_language"]


def test_unknown_language_handling_and_min_score(tmp_path):
    row = good(chosen="42 + 17 = 59 ; 59 * 2 = 118.")  # digits only: language ID says unknown
    _, kept, _ = run(tmp_path, [row], FilterConfig(length_ratio=False))
    assert kept.column("chosen_lang").to_pylist() == ["unknown"]
    _, _, dropped = run(tmp_path, [row], FilterConfig(length_ratio=False, unknown_language="drop"))
    assert dropped.column("reason").to_pylist() == ["wrong_language"]
    # Every confident tag is below a score of 1.0, so min_language_score=1 turns them all into "unknown".
    assert run(tmp_path, [good()], FilterConfig(min_language_score=1.0, unknown_language="drop"))[2].num_rows == 1
    assert run(tmp_path, [good()], FilterConfig(min_language_score=1.0))[1].num_rows == 1


def test_translation_tasks_are_exempt_from_the_language_rule_by_default(tmp_path):
    row = good(chosen=EN, is_translation_task=True)
    assert run(tmp_path, [row])[1].num_rows == 1
    _, _, dropped = run(tmp_path, [row], FilterConfig(exempt_translation_tasks=False))
    assert dropped.column("reason").to_pylist() == ["wrong_language"]


def test_empty_input_writes_empty_tables(tmp_path):
    stats, kept, dropped = run(tmp_path, [])
    assert (stats.rows_in, kept.num_rows, dropped.num_rows) == (0, 0, 0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_length_ratio": 2.0, "max_length_ratio": 1.5}, "filters.max_length_ratio must be > filters.min_length_ratio"),
    ({"min_length_ratio": 0}, "filters.min_length_ratio must be > 0"),
    ({"min_language_score": 2}, "filters.min_language_score"),
    ({"unknown_language": "maybe"}, "filters.unknown_language"),
    ({"truncated": "yes"}, "filters.truncated"),
    ({"max_length_ratio": "big"}, "filters.max_length_ratio must be a number"),
])
def test_config_validation_names_the_field(kwargs, message):
    with pytest.raises(LidrError, match=message):
        FilterConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"failure_markers": ["ok", " "]}, "filters.failure_markers must be a list of non-empty texts, got ['ok', ' ']"),
    ({"failure_markers": "Translation Error"},
     "filters.failure_markers must be a list of non-empty texts, got 'Translation Error'"),
    ({"identical_sides": 1}, "filters.identical_sides must be true or false, got 1"),
    ({"exempt_translation_tasks": "no"}, "filters.exempt_translation_tasks must be true or false, got 'no'"),
    ({"min_language_score": True}, "filters.min_language_score must be a number, got True"),
    ({"min_length_ratio": -1}, "filters.min_length_ratio must be > 0, got -1"),
    ({"min_length_ratio": 2.0, "max_length_ratio": 1.5},
     "filters.max_length_ratio must be > filters.min_length_ratio (got 1.5 <= 2.0)"),
    ({"min_language_score": 1.5}, "filters.min_language_score must be between 0 and 1, got 1.5"),
    ({"unknown_language": "maybe"}, "filters.unknown_language must be 'keep' or 'drop', got 'maybe'"),
    ({"exclude_pairs": ["a.json", ""]}, "filters.exclude_pairs must be a list of file paths, got ['a.json', '']"),
    ({"exclude_pairs": "a.json"}, "filters.exclude_pairs must be a list of file paths, got 'a.json'"),
])
def test_config_validation_messages_are_exact(kwargs, message):
    """Each check's whole message (recipes show it after the file name: `recipe.yaml: filters.x must ...`)."""
    with pytest.raises(LidrError) as e:
        FilterConfig(**kwargs)
    assert str(e.value) == message


def test_tags_of_another_pairs_table_are_a_clear_error(tmp_path):
    rows = [good(prompt_id=f"p{i}") for i in range(3)]
    run(tmp_path, rows)
    # Fewer rows than pairs_raw, then as many rows but another pair order: both are refused, and no table is left.
    write_pairs(rows[:2], tmp_path / "other.parquet")
    tag_pairs(tmp_path / "other.parquet", tmp_path / "short_tags.parquet", TagConfig(), LANGS)
    with pytest.raises(LidrError, match="2 tagged rows for 3 pairs"):
        filter_pairs(tmp_path / "raw.parquet", tmp_path / "short_tags.parquet", tmp_path / "k.parquet",
                     tmp_path / "d.parquet", FilterConfig(), "en")
    write_pairs(rows[::-1], tmp_path / "reversed.parquet")
    tag_pairs(tmp_path / "reversed.parquet", tmp_path / "reversed_tags.parquet", TagConfig(), LANGS)
    with pytest.raises(LidrError, match="do not match pairs_raw by pair_id"):
        filter_pairs(tmp_path / "raw.parquet", tmp_path / "reversed_tags.parquet", tmp_path / "k.parquet",
                     tmp_path / "d.parquet", FilterConfig(), "en")
    assert not (tmp_path / "k.parquet").exists() and not (tmp_path / "d.parquet").exists()


# Every character Python calls whitespace (U+3000, U+00A0, U+2003, U+2028, U+0085, ...) plus zero-width ones.
UNICODE_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["\u200b", "\u200d", "\u2060", "\ufeff"]


def test_a_side_of_only_unicode_spaces_is_an_empty_side(tmp_path):
    assert {"\u3000", "\u00a0", "\u2003", "\u2028", "\x85"} <= set(UNICODE_SPACES)
    rows = [good(prompt_id=f"s{i}", rejected=f"{c}{c} {c}") for i, c in enumerate(UNICODE_SPACES)]
    rows += [good(prompt_id=f"c{i}", chosen=f"\u3000{c}\n", rejected=FR) for i, c in enumerate(UNICODE_SPACES)]
    _, kept, dropped = run(tmp_path, rows, FilterConfig(wrong_language=False))
    assert kept.num_rows == 0
    assert dropped.column("reason").to_pylist() == ["empty_side"] * len(rows)


def test_text_between_unicode_spaces_is_not_empty_and_is_compared_without_them(tmp_path):
    rows = [good(prompt_id="text", rejected="\u3000" + FR_B + "\u00a0"),
            good(prompt_id="same", rejected="\u3000\u2003" + FR + "\u00a0\u2028")]
    _, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["text"]
    assert dropped.column("reason").to_pylist() == ["identical_sides"]


def test_a_side_equal_to_a_failure_marker_is_translation_failed(tmp_path):
    rows = [good(prompt_id="c", chosen="Translation Error"), good(prompt_id="r", rejected=" Translation Error\n"),
            good(prompt_id="mention", chosen=FR + " Translation Error"), good(prompt_id="ok")]
    _, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["mention", "ok"]
    assert dropped.column("reason").to_pylist() == ["translation_failed"] * 2
    # Markers are configurable (regex characters are literal) and can be switched off.
    rows = [good(prompt_id="m", rejected="[ERROR] (no output)"), good(prompt_id="te", chosen="Translation Error")]
    _, kept, dropped = run(tmp_path, rows, FilterConfig(failure_markers=["[ERROR] (no output)"], length_ratio=False,
                                                        wrong_language=False))
    assert dropped.column("prompt_id").to_pylist() == ["m"] and kept.column("prompt_id").to_pylist() == ["te"]
    _, kept, _ = run(tmp_path, rows[1:], FilterConfig(failure_markers=[], length_ratio=False, wrong_language=False))
    assert kept.num_rows == 1


def test_failure_markers_are_validated():
    with pytest.raises(LidrError, match="filters.failure_markers"):
        FilterConfig(failure_markers=["  "])
    with pytest.raises(LidrError, match="filters.failure_markers"):
        FilterConfig(failure_markers="Translation Error")


def test_real_converted_file_with_the_authors_marker(tmp_path):
    """The authors' 1,000 real en->fr self-translations, converted as if extraction had worked (translation_ok
    true): the 78 literal "Translation Error" sides are dropped as translation_failed, and nothing else is."""
    import json

    from shared_data import require_shared_data

    src = require_shared_data("generations", "llama-3-8b-instruct-M0") / "en.responses.to_fr.jsonl"
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    rows = [make_pair(r["instruction"], r["en2fr_reponse"], r["response"], lang="fr", prompt_id=r["id"])
            for r in records]
    _, kept, dropped = run(tmp_path, rows, FilterConfig(wrong_language=False, length_ratio=False, truncated=False))
    failed = set(dropped.filter(pc.equal(dropped["reason"], "translation_failed"))["prompt_id"].to_pylist())
    assert failed == {r["id"] for r in records if r["en2fr_reponse"] == "Translation Error"} and len(failed) == 78
    assert "Translation Error" not in [c[0]["content"] for c in kept["chosen"].to_pylist()]
