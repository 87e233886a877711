"""Dedup stage: exact then near duplicates (MinHash LSH, rensa), first row kept, duplicate_of recorded."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from postprocess_rows import make_pair, write_pairs

from lidr_data.errors import LidrError
from lidr_data.schema import DROP_COLUMNS, PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.stages.dedup import DedupConfig, dedup_pairs, optimal_bands, shingle_hashes
from lidr_data.stages.filter import FILTERED
from lidr_data.stages.tag import TagConfig, tag_pairs

EN = ("Photosynthesis is the process by which green plants, algae and some bacteria turn light energy into "
      "chemical energy. Inside the chloroplasts, chlorophyll absorbs sunlight, water is split into oxygen and "
      "hydrogen, and carbon dioxide from the air is fixed into sugars through the Calvin cycle. The oxygen we "
      "breathe is a by-product of this reaction, and the sugars feed almost every food chain on Earth.")
EN_EDIT = EN.replace("almost every", "nearly every")
EN_OTHER = ("A volcano forms where molten rock, gases and ash escape from beneath the crust. Most volcanoes sit at "
            "the edges of tectonic plates, where one plate sinks beneath another or two plates pull apart. "
            "Eruptions can be explosive or gentle depending on how much gas and silica the magma holds.")
JA = ("光合成とは、植物や藻類が光のエネルギーを使って水と二酸化炭素から糖をつくり、酸素を放出するしくみです。"
      "葉の中の葉緑体にあるクロロフィルが太陽の光を吸収し、水が分解されて酸素が生まれます。"
      "つくられた糖は植物の成長に使われ、私たちが吸う酸素のほとんどはこの反応から生まれています。")
JA_EDIT = JA.replace("ほとんど", "大部分")
JA_OTHER = ("火山は、地下のマグマが地表に噴き出してできる山です。多くの火山はプレートの境界にあり、"
            "噴火の仕方はマグマに含まれるガスや二酸化ケイ素の量によって穏やかにも爆発的にもなります。")


def run(tmp_path, rows, config=None):
    write_pairs(rows, tmp_path / "raw.parquet")
    tag_pairs(tmp_path / "raw.parquet", tmp_path / "tagged.parquet", TagConfig(), ["en", "ja", "fr"])
    keep_all(tmp_path / "tagged.parquet", tmp_path / "filtered.parquet")
    stats = dedup_pairs(tmp_path / "raw.parquet", tmp_path / "tagged.parquet", tmp_path / "filtered.parquet",
                        tmp_path / "pairs.parquet", tmp_path / "dropped.parquet", config or DedupConfig())
    kept = pq.read_table(tmp_path / "pairs.parquet")
    dropped = pq.read_table(tmp_path / "dropped.parquet")
    assert stats.rows_in == len(rows) == kept.num_rows + dropped.num_rows
    return stats, kept, dropped


def keep_all(tagged, dst, rows=None):
    """A filter result keeping `rows` (default: every row) of the tagged table."""
    pair_ids = pq.read_table(tagged, columns=["pair_id"]).column("pair_id")
    rows = list(range(len(pair_ids))) if rows is None else rows
    pq.write_table(pa.table({"row": pa.array(rows, pa.int64()),
                             "pair_id": pair_ids.take(pa.array(rows, pa.int64()))},
                            schema=FILTERED), dst)


def row(i, prompt, chosen, rejected="Une autre réponse, plus courte et en français.", **kw):
    return make_pair(prompt, chosen, rejected, prompt_id=f"p{i}", **kw)


def test_exact_duplicates_keep_the_first_and_name_it(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain volcanoes.", EN_OTHER),
            row(2, "Explain photosynthesis.", EN), row(3, "Explain photosynthesis.", EN)]
    stats, kept, dropped = run(tmp_path, rows, DedupConfig(near=False))
    assert kept.column("prompt_id").to_pylist() == ["p0", "p1"]
    assert dropped.column("prompt_id").to_pylist() == ["p2", "p3"]
    assert dropped.column("reason").to_pylist() == ["exact_duplicate"] * 2
    assert dropped.column("duplicate_of").to_pylist() == [kept.column("pair_id")[0].as_py()] * 2
    assert stats.dropped == {"exact_duplicate": 2}
    # The published table: pair + tag columns only, no flat text; dropped rows keep theirs + the drop columns.
    assert kept.schema.names == [*PAIR_COLUMNS.names, *TAG_COLUMNS.names]
    assert dropped.schema.names[-3:] == DROP_COLUMNS.names and "chosen_text" in dropped.schema.names
    assert set(dropped.column("stage").to_pylist()) == {"dedup"}


def test_different_rejected_side_is_not_an_exact_duplicate(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain photosynthesis.", EN, rejected="Autre chose.")]
    _, kept, _ = run(tmp_path, rows, DedupConfig(near=False))
    assert kept.num_rows == 2
    # ... but prompt + chosen are the same, so it is a near duplicate.
    _, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["p0"]
    assert dropped.column("reason").to_pylist() == ["near_duplicate"]


def test_near_duplicates_english_and_japanese(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain volcanoes.", EN_OTHER),
            row(2, "Explain photosynthesis.", EN_EDIT),
            row(3, "光合成を説明してください。", JA, lang="ja"), row(4, "火山を説明してください。", JA_OTHER, lang="ja"),
            row(5, "光合成を説明してください。", JA_EDIT, lang="ja")]
    stats, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["p0", "p1", "p3", "p4"]
    ids = dict(zip(kept.column("prompt_id").to_pylist(), kept.column("pair_id").to_pylist()))
    assert dropped.column("prompt_id").to_pylist() == ["p2", "p5"]
    assert dropped.column("duplicate_of").to_pylist() == [ids["p0"], ids["p3"]]
    assert stats.dropped == {"near_duplicate": 2}
    # Switched off: all kept.
    assert run(tmp_path, rows, DedupConfig(near=False))[1].num_rows == 6


def test_japanese_needs_character_shingles():
    """A Japanese paragraph has no spaces: whitespace words would make it one or two tokens."""
    flat, offsets = shingle_hashes(__import__("pyarrow").array([JA, "one two", ""]), DedupConfig(shingle_size=3))
    counts = [int(offsets[i + 1] - offsets[i]) for i in range(3)]
    assert counts[0] > len(JA) * 0.8 and counts[1] == 1 and counts[2] == 0


def test_threshold_is_honoured(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(2, "Explain photosynthesis.", EN_EDIT)]
    assert run(tmp_path, rows, DedupConfig(threshold=0.7))[1].num_rows == 1
    assert run(tmp_path, rows, DedupConfig(threshold=1.0))[1].num_rows == 2


def test_exact_copy_of_a_near_duplicate_points_at_the_kept_row(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain photosynthesis.", EN_EDIT),
            row(2, "Explain photosynthesis.", EN_EDIT)]
    _, kept, dropped = run(tmp_path, rows)
    assert kept.column("prompt_id").to_pylist() == ["p0"]
    assert dropped.column("reason").to_pylist() == ["near_duplicate", "exact_duplicate"]
    assert dropped.column("duplicate_of").to_pylist() == [kept.column("pair_id")[0].as_py()] * 2


def test_many_rows_across_batches(tmp_path):
    # Distinct texts (different numbers everywhere) plus one copy and one edited copy far apart.
    texts = [" ".join(f"word{i}x{j}" for j in range(40)) for i in range(300)]
    rows = [row(i, f"Question {i}", t) for i, t in enumerate(texts)]
    rows.append(row(300, "Question 7", texts[7]))
    rows.append(row(301, "Question 9", texts[9].replace("word9x20", "changed")))
    stats, kept, dropped = run(tmp_path, rows, DedupConfig(batch_rows=64))
    assert kept.num_rows == 300
    assert dropped.column("prompt_id").to_pylist() == ["p300", "p301"]
    assert dropped.column("reason").to_pylist() == ["exact_duplicate", "near_duplicate"]


def test_empty_input(tmp_path):
    stats, kept, dropped = run(tmp_path, [])
    assert (stats.rows_in, kept.num_rows, dropped.num_rows) == (0, 0, 0)


def test_optimal_bands_divide_num_perm():
    for t in (0.5, 0.8, 0.95):
        b = optimal_bands(t, 128)
        assert 128 % b == 0 and 1 < b < 128


@pytest.mark.parametrize(("kwargs", "field"), [({"threshold": 0}, "dedup.threshold"),
                                               ({"num_perm": 0}, "dedup.num_perm"),
                                               ({"num_bands": 3}, "dedup.num_bands must divide"),
                                               ({"shingle_size": 0}, "dedup.shingle_size"),
                                               ({"exact": "no"}, "dedup.exact")])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(LidrError, match=field):
        DedupConfig(**kwargs)


def test_english_pairs_of_one_item_survive_for_every_pivot(tmp_path):
    """The English pairs of an item share prompt and chosen (one per pivot language): none is a near duplicate
    of another; a near copy under the same pivot still is."""
    rejected = {"es": "Una respuesta en español, más corta.", "de": "Eine kürzere Antwort auf Deutsch.",
                "fr": "Une autre réponse, plus courte et en français."}
    rows = [make_pair("Explain photosynthesis.", EN, rejected[p], prompt_id="p0", lang="en", pivot_lang=p,
                      direction="to_dominant") for p in ("es", "de", "fr")]
    rows.append(make_pair("Explain photosynthesis!", EN_EDIT, rejected["de"] + " Bis bald.", prompt_id="p1",
                          lang="en", pivot_lang="de", direction="to_dominant"))
    stats, kept, dropped = run(tmp_path, rows)
    assert kept.column("pivot_lang").to_pylist() == ["es", "de", "fr"]
    assert dropped.column("prompt_id").to_pylist() == ["p1"]
    assert dropped.column("reason").to_pylist() == ["near_duplicate"]
    assert dropped.column("duplicate_of").to_pylist() == [kept.column("pair_id")[1].as_py()]


def test_a_filter_table_with_foreign_rows_is_a_clear_error(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain volcanoes.", EN_OTHER)]
    run(tmp_path, rows)
    for bad in ([1, 0], [0, 2]):  # not increasing; past the end of pairs_raw
        pq.write_table(pa.table({"row": pa.array(bad, pa.int64()), "pair_id": ["a", "b"]}, schema=FILTERED),
                       tmp_path / "bad.parquet")
        with pytest.raises(LidrError, match="not increasing rows of pairs_raw"):
            dedup_pairs(tmp_path / "raw.parquet", tmp_path / "tagged.parquet", tmp_path / "bad.parquet",
                        tmp_path / "p.parquet", tmp_path / "d.parquet", DedupConfig())
    assert not (tmp_path / "p.parquet").exists()


def test_only_the_rows_the_filter_kept_are_deduplicated_and_published(tmp_path):
    rows = [row(0, "Explain photosynthesis.", EN), row(1, "Explain volcanoes.", EN_OTHER),
            row(2, "Explain photosynthesis.", EN)]
    write_pairs(rows, tmp_path / "raw.parquet")
    tag_pairs(tmp_path / "raw.parquet", tmp_path / "tagged.parquet", TagConfig(), ["en", "ja", "fr"])
    keep_all(tmp_path / "tagged.parquet", tmp_path / "filtered.parquet", rows=[1, 2])  # the filter dropped row 0
    stats = dedup_pairs(tmp_path / "raw.parquet", tmp_path / "tagged.parquet", tmp_path / "filtered.parquet",
                        tmp_path / "pairs.parquet", tmp_path / "dropped.parquet", DedupConfig())
    # Row 2 copies row 0, which is gone already: row 2 is kept, not called a duplicate of a dropped row.
    assert (stats.rows_in, stats.kept, stats.dropped) == (2, 2, {})
    assert pq.read_table(tmp_path / "pairs.parquet").column("prompt_id").to_pylist() == ["p1", "p2"]
