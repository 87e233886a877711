"""Tag stage on real Parquet with the real language ID (fastText + lingua)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from postprocess_rows import make_pair, write_pairs

from lidr_data.errors import LidrError
from lidr_data.schema import TAG_COLUMNS
from lidr_data.stages.tag import TagConfig, tag_pairs

EN = "The river flows through the old town, past the market and the cathedral, before it reaches the sea."
FR = "La rivière traverse la vieille ville, passe devant le marché et la cathédrale, avant d'atteindre la mer."
DE = "Der Fluss fließt durch die Altstadt, am Markt und am Dom vorbei, bevor er das Meer erreicht."
JA = "川は旧市街を流れ、市場と大聖堂の前を通り過ぎてから海に注ぎます。"
LANGS = ["en", "fr", "de", "ja"]


def _tag(tmp_path, rows, config=None, langs=LANGS):
    src = write_pairs(rows, tmp_path / "pairs_raw.parquet")
    stats = tag_pairs(src, tmp_path / "tagged.parquet", config or TagConfig(), langs)
    return stats, pq.read_table(tmp_path / "tagged.parquet")


def test_tags_languages_lengths_and_hash(tmp_path):
    rows = [make_pair("Où va la rivière ?", FR, DE, lang="fr"),
            make_pair("Where does the river go?", EN, JA, lang="en", direction="to_dominant", pivot_lang="ja")]
    stats, out = _tag(tmp_path, rows)
    assert (stats.rows_in, stats.kept, stats.dropped) == (2, 2, {})
    # One row per pairs_raw row, in its order: pair_id and the tags (the texts are not copied).
    assert out.schema.names == ["pair_id", *TAG_COLUMNS.names]
    assert out.column("pair_id").to_pylist() == [r["pair_id"] for r in rows]
    assert out.column("chosen_lang").to_pylist() == ["fr", "en"]
    assert out.column("rejected_lang").to_pylist() == ["de", "ja"]
    assert all(s >= 0.5 for s in out.column("chosen_lang_score").to_pylist())
    assert out.column("chosen_chars").to_pylist() == [len(FR), len(EN)]
    assert out.column("rejected_chars").to_pylist() == [len(DE), len(JA)]
    expected = hashlib.md5("\x1f".join(["Où va la rivière ?", FR, DE]).encode()).hexdigest()
    assert out.column("content_hash")[0].as_py() == expected
    # Prompt language is the known one unless asked for.
    assert out.column("prompt_lang").to_pylist() == ["fr", "en"]
    assert out.column("prompt_lang_score").null_count == 2


def test_detect_prompt_language(tmp_path):
    rows = [make_pair(FR, EN, EN + " Yes.", lang="en")]  # prompt text is French although lang says en
    _, out = _tag(tmp_path, rows, TagConfig(detect_prompt_language=True))
    assert out.column("prompt_lang").to_pylist() == ["fr"]
    assert out.column("prompt_lang_score")[0].as_py() > 0.5


def test_failed_translation_and_blank_sides_are_unknown_not_errors(tmp_path):
    rows = [make_pair("Q?", None, FR, lang="fr", translation_ok=False),
            make_pair("Q?", "   ", FR, lang="fr")]
    _, out = _tag(tmp_path, rows)
    assert out.column("chosen_lang").to_pylist() == ["unknown", "unknown"]
    assert out.column("chosen_lang_score").to_pylist() == [0.0, 0.0]
    assert out.column("chosen_chars").to_pylist() == [None, 3]
    assert out.column("rejected_lang").to_pylist() == ["fr", "fr"]
    h = out.column("content_hash").to_pylist()
    assert h[0] != h[1] and all(len(x) == 32 for x in h)


def test_batches_stream_in_order_whatever_their_size(tmp_path):
    rows = [make_pair(f"Question {i}?", FR if i % 2 else EN, DE, lang="fr", prompt_id=f"p{i}") for i in range(7)]
    _, first = _tag(tmp_path, rows, TagConfig(batch_rows=3))
    again = tag_pairs(tmp_path / "pairs_raw.parquet", tmp_path / "tagged2.parquet", TagConfig(batch_rows=2), LANGS)
    second = pq.read_table(tmp_path / "tagged2.parquet")
    assert again.rows_in == 7 and second.schema.names == first.schema.names
    assert second.column("chosen_lang").to_pylist() == ["en", "fr"] * 3 + ["en"]
    assert second.equals(first)


def test_missing_column_and_file_are_clear_errors(tmp_path):
    table = pa.Table.from_pylist([make_pair("Q", EN, FR)]).drop_columns(["chosen_text"])
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(LidrError, match="lacks column.*chosen_text"):
        tag_pairs(tmp_path / "bad.parquet", tmp_path / "out.parquet", TagConfig(), LANGS)
    with pytest.raises(LidrError, match="not found"):
        tag_pairs(tmp_path / "nope.parquet", tmp_path / "out.parquet", TagConfig(), LANGS)
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_language_code_is_a_clear_error(tmp_path):
    write_pairs([make_pair("Q", EN, FR)], tmp_path / "raw.parquet")
    with pytest.raises(LidrError, match="'xx'"):
        tag_pairs(tmp_path / "raw.parquet", tmp_path / "out.parquet", TagConfig(), ["en", "xx"])


@pytest.mark.parametrize(("kwargs", "field"), [({"prefix_chars": 0}, "tag.prefix_chars"),
                                               ({"min_score": 1.5}, "tag.min_score"),
                                               ({"batch_rows": 0}, "tag.batch_rows"),
                                               ({"quick_chars": 0}, "tag.quick_chars"),
                                               ({"recheck_chars": 0}, "tag.recheck_chars")])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(LidrError, match=field):
        TagConfig(**kwargs)


QUOTE_FIRST = ('Je vous manque beaucoup, mon amour, et je pense à toi chaque jour. (pronounced "zhuh voo mahnk")\n\n'
               + "This phrase is how French speakers say that they miss someone, although the structure is reversed: "
               "literally it means that you are missing to me. The person who is missed is the subject of the French "
               "sentence, and the one who misses them is the object. " * 3)
HEADINGS = ("1. **Transition to renewable energy**: Shift from fossil fuels to solar, wind and hydroelectric power.\n"
            "2. **Energy efficiency**: Improve insulation in buildings and use efficient appliances.\n"
            "3. **Sustainable transport**: Encourage public transport, cycling and electric vehicles.")


def test_english_answers_in_real_layouts_are_english_and_wrong_ones_stay_wrong(tmp_path):
    """Issue 11: English answers of English pairs that opened with a foreign phrase or with markdown were tagged
    French or Spanish (and dropped as wrong_language); a French answer in an English pair must stay French."""
    rows = [make_pair("How do you say I miss you in French?", QUOTE_FIRST, EN, lang="en", direction="to_dominant",
                      pivot_lang="fr", prompt_id="p1"),
            make_pair("How can we fight climate change?", HEADINGS, EN, lang="en", direction="to_dominant",
                      pivot_lang="de", prompt_id="p2"),
            make_pair("Where does the river go?", EN, FR * 5, lang="en", direction="to_dominant", pivot_lang="fr",
                      prompt_id="p3")]
    _, out = _tag(tmp_path, rows, TagConfig(prefix_chars=80), langs=["en", "es", "fr", "de"])
    assert out.column("chosen_lang").to_pylist() == ["en", "en", "en"]
    assert out.column("rejected_lang").to_pylist() == ["en", "en", "fr"]
