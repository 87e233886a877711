"""Read user tables (JSONL, JSON list, Parquet), JSON files and YAML files with errors that name the file, line
and field.

Text files are UTF-8; a byte-order mark and CRLF line ends (both common in files made on Windows) are accepted,
and bytes that are not UTF-8 are an error naming the line, column and byte (not a decoder traceback).

YAML (recipes, imports files, training configs, iterate's sections, `KEY=VALUE` option values) is read by
`parse_yaml`/`read_yaml` only: the safe loader, plus checks of the parsed node graph before any Python object is
built: aliases may add at most `MAX_ALIAS_NODES` nodes (a "billion laughs" file is refused, not expanded),
duplicate keys, NaN/infinite numbers and texts over `MAX_TEXT_CHARS` are refused, each naming the file, line and
field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from lidr_data.errors import LidrError

SUFFIXES = (".jsonl", ".json", ".parquet")
BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096
# The longest text a YAML value may hold: 64 Ki characters, about 16k tokens, twice the context window of the
# paper's generator (Llama-3-8B-Instruct, 8k). A system prompt is tokenized with every request of a build; a
# longer value is a pasted file, found here in milliseconds rather than minutes into the build.
MAX_TEXT_CHARS = 65_536
# How many nodes aliases (`*name`) may add to what the file itself writes: reuse of a block of settings adds
# tens; a "billion laughs" file adds billions (each level of aliases multiplies) and would exhaust memory.
MAX_ALIAS_NODES = 10_000
_FLOAT_TAG, _MERGE_TAG = "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"
# libyaml's parser when PyYAML has it (its wheels do): the same safe constructor, but a 10 MB value is scanned in
# a fraction of a second instead of ten, so even a file far over the limits is refused at once.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def decode_utf8(data: bytes, where: str, line_start: int = 1) -> str:
    """`data` as UTF-8, or a LidrError 'WHERE:LINE: not valid UTF-8 (byte 0x.. at column N)'."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = line_start + data.count(b"\n", 0, e.start)
        column = len(data[start:e.start].decode("utf-8", "replace")) + 1  # in characters, as editors count
        raise LidrError(f"{where}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})") from None


def iter_records(path: str | Path, columns: Sequence[str] | None = None) -> Iterator[tuple[str, dict]]:
    """(location, row) for every row of a .jsonl, .json (a list of objects) or .parquet file, read lazily where
    the format allows (JSONL line by line, Parquet batch by batch; a JSON list is parsed whole).

    `location` names the row in errors: `FILE:LINE` for JSONL (blank lines counted), `FILE: row N` otherwise.
    `columns`: for Parquet, read only these (those the file has; a missing one shows up as a missing field)."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: file not found")
    if path.suffix == ".parquet":
        try:
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            cols = [c for c in columns if c in names] if columns is not None else None
            index = 0
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=cols):
                for row in batch.to_pylist():
                    yield f"{path}: row {index}", row
                    index += 1
        except LidrError:
            raise
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise LidrError(f"{path}: not a readable Parquet file ({e})") from None
        return
    if path.suffix == ".jsonl":
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if lineno == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                line = decode_utf8(raw, str(path), lineno)
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)  # a trailing "\r\n" is JSON whitespace
                except json.JSONDecodeError as e:
                    raise LidrError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise LidrError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield f"{path}:{lineno}", row
        return
    if path.suffix == ".json":
        data = path.read_bytes()
        text = decode_utf8(data[len(BOM):] if data.startswith(BOM) else data, str(path))
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LidrError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LidrError(f"{path}: expected a JSON list of objects")
        for i, row in enumerate(rows):
            yield f"{path}: row {i}", row
        return
    raise LidrError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """A JSON file (UTF-8; the files lidr writes: manifests, run and state files, pair filters; as strict as
    `json.loads`, so a byte-order mark is refused) -> Python data. Errors are one line starting with the path:
    'PATH: file not found', 'PATH:LINE: not valid UTF-8 (...)', 'PATH: malformed WHAT (line L, column C: what the
    parser says)'."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: file not found")
    text = decode_utf8(path.read_bytes(), str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LidrError(f"{path}: malformed {what} (line {e.lineno}, column {e.colno}: {e.msg})") from None


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .jsonl, .json (a list of objects) or .parquet file, as dicts."""
    return [row for _, row in iter_records(path)]


def read_located(path: str | Path) -> list[tuple[str, dict]]:
    """(location, row) for every row of the file: `read_records` with each row's name for errors."""
    return list(iter_records(path))


def row_location(path: str | Path, index: int) -> str:
    """How to name row `index` (0-based) of a file in an error: its line for JSONL (blank lines counted, as
    `iter_records` does, so it reads the file up to that row), a row otherwise. Loops over rows should take the
    locations `iter_records` yields instead."""
    path = Path(path)
    if path.suffix != ".jsonl":
        return f"{path}: row {index}"
    seen = -1
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if raw.decode("utf-8", "replace").strip():
                seen += 1
                if seen == index:
                    return f"{path}:{lineno}"
    raise LidrError(f"{path}: no row {index} (the file has {seen + 1})")


def _line(node: yaml.Node | None) -> str:
    mark = getattr(node, "start_mark", None)
    return f":{mark.line + 1}" if mark is not None else ""


def _bound_aliases(root: yaml.Node, where: str) -> None:
    """Refuse a node graph whose aliases expand it by more than MAX_ALIAS_NODES nodes (or that contains itself),
    without expanding it: sizes are counted once per distinct node."""
    sizes: dict[int, int] = {}
    refs: dict[int, int] = {}
    active: set[int] = set()

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    def size(node: yaml.Node) -> int:
        key = id(node)
        refs[key] = refs.get(key, 0) + 1
        if key in sizes:
            return sizes[key]
        if key in active:
            raise LidrError(f"{where}{_line(node)}: a YAML alias refers to a block that contains it (a recursive "
                            "structure has no end)")
        active.add(key)
        sizes[key] = 1 + sum(size(child) for child in children(node))
        active.discard(key)
        return sizes[key]

    total = size(root)
    if total - len(sizes) <= MAX_ALIAS_NODES:
        return
    node, path = root, ""  # name where it happens: follow the heaviest branch down to the first repeated block
    while refs[id(node)] == 1 and children(node):
        if isinstance(node, yaml.MappingNode):
            k, node = max(node.value, key=lambda kv: sizes[id(kv[1])])
            path = _join(path, k.value if isinstance(k, yaml.ScalarNode) else "?")
        else:
            i, node = max(enumerate(node.value), key=lambda iv: sizes[id(iv[1])])
            path = f"{path}[{i}]"
    raise LidrError(f"{where}{_line(node)}: {path or 'document'}: YAML aliases expand the file to {total:,} values "
                    f"(at most {MAX_ALIAS_NODES:,} more than it writes out are accepted)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_values(loader: Any, node: yaml.Node, where: str, path: str = "") -> None:
    """Duplicate keys, non-finite numbers and over-long texts, each naming the line and the field path."""
    if isinstance(node, yaml.ScalarNode):
        if len(node.value) > MAX_TEXT_CHARS:
            raise LidrError(f"{where}{_line(node)}: {path or 'document'}: a text of {len(node.value):,} characters; "
                            f"at most {MAX_TEXT_CHARS:,} are accepted")
        if node.tag == _FLOAT_TAG and not math.isfinite(loader.construct_yaml_float(node)):
            raise LidrError(f"{where}{_line(node)}: {path or 'document'}: {node.value} is not a finite number (NaN "
                            "and infinities are refused: JSON, in which manifests are written, has neither)")
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _check_values(loader, child, where, f"{path}[{i}]")
    elif isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            if k.tag == _MERGE_TAG:  # `<<: *defaults`: its keys may be overridden here, by design
                _check_values(loader, v, where, path)
                continue
            _check_values(loader, k, where, path)
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            sub = _join(path, name)
            if isinstance(k, yaml.ScalarNode):
                key = loader.construct_object(k)
                try:
                    if key in seen:
                        raise LidrError(f"{where}{_line(k)}: {sub}: duplicate key (first at line {seen[key]}); YAML "
                                        "would silently keep the last one")
                    seen[key] = k.start_mark.line + 1
                except TypeError:  # unhashable: the constructor reports it
                    pass
            _check_values(loader, v, where, sub)


def _yaml_error(e: yaml.YAMLError, where: str) -> LidrError:
    mark = getattr(e, "problem_mark", None)
    at = f"{where}:{mark.line + 1}" if mark else where
    return LidrError(f"{at}: malformed YAML ({getattr(e, 'problem', None) or e})")


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> Python data (safe types only), checked as the module docstring says; `where` (a file, or
    `--option NAME`) starts every error."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _bound_aliases(node, where)
            _check_values(loader, node, where)
            return loader.construct_document(node)
        except yaml.YAMLError as e:
            raise _yaml_error(e, where) from None
        except RecursionError:
            raise LidrError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """A YAML file (UTF-8, a byte-order mark accepted) through `parse_yaml`; errors start with the path (a missing
    one: 'PATH: WHAT not found')."""
    path = Path(path)
    if not path.is_file():
        raise LidrError(f"{path}: {what} not found")
    raw = path.read_bytes()
    return parse_yaml(decode_utf8(raw[len(BOM):] if raw.startswith(BOM) else raw, str(path)), str(path))
