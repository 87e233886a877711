"""readers: the location a row is named by in errors is its real line, blank lines counted."""

import pytest

from lidr_data.readers import iter_records, row_location


@pytest.mark.parametrize(
    ("content", "lines"),
    [
        ('{"a": 1}\n\n{"a": 2}\n', [1, 3]),
        ('\n\n{"a": 1}\n   \n{"a": 2}\n\n', [3, 5]),
        ('\ufeff{"a": 1}\r\n\r\n{"a": 2}\r\n', [1, 3]),
        ('{"a": 1}\n{"a": 2}', [1, 2]),
    ],
)
def test_row_location_counts_blank_lines_like_iter_records(tmp_path, content, lines):
    path = tmp_path / "rows.jsonl"
    path.write_text(content, encoding="utf-8", newline="")
    located = [where for where, _ in iter_records(path)]
    assert located == [f"{path}:{n}" for n in lines]
    assert [row_location(path, i) for i in range(len(lines))] == located


def test_row_location_of_other_formats_is_a_row_index(tmp_path):
    assert row_location(tmp_path / "rows.json", 2) == f"{tmp_path / 'rows.json'}: row 2"
    assert row_location(tmp_path / "rows.parquet", 0) == f"{tmp_path / 'rows.parquet'}: row 0"
