"""readers: the location a row is named by in errors is its real line, blank lines counted; JSON and YAML files
read with one-line errors naming the file."""

import pytest

from lidr_data.errors import LidrError
from lidr_data.readers import iter_records, read_json, read_yaml, row_location


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


def test_read_json_reads_a_file_and_names_it_in_every_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, "é"]}', encoding="utf-8")
    assert read_json(path) == {"a": [1, "é"]}
    path.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(LidrError) as err:
        read_json(path)
    assert str(err.value) == f"{path}: malformed JSON (line 3, column 3: Expecting property name enclosed in double quotes)"
    with pytest.raises(LidrError) as err:
        read_json(path, "manifest")
    assert str(err.value).startswith(f"{path}: malformed manifest (line 3, column 3: ")
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(LidrError) as err:
        read_json(path)
    assert str(err.value) == f"{path}:1: not valid UTF-8 (byte 0xe9 at column 11)"
    with pytest.raises(LidrError) as err:
        read_json(tmp_path / "absent.json")
    assert str(err.value) == f"{tmp_path / 'absent.json'}: file not found"


def test_read_yaml_names_what_is_missing(tmp_path):
    with pytest.raises(LidrError) as err:
        read_yaml(tmp_path / "absent.yaml")
    assert str(err.value) == f"{tmp_path / 'absent.yaml'}: file not found"
    with pytest.raises(LidrError) as err:
        read_yaml(tmp_path / "absent.yaml", "recipe file")
    assert str(err.value) == f"{tmp_path / 'absent.yaml'}: recipe file not found"
