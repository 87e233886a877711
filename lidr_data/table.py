"""A table as plain data: columns and rows of raw values. The library describes the tables it reports (an
evaluation's results); `commands/render.py` prints them (rich, csv or json)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Column:
    key: str  # the field in each row (and the csv/json name)
    header: str | None = None  # the table header (default: key)
    numeric: bool = False  # right-aligned; never wrapped or cut
    fmt: Callable[[Any], str] | None = None  # value -> text in table format (default: str, "-" for None)

    def text(self, value: Any) -> str:
        if self.fmt is not None:
            return self.fmt(value)
        if value is None:
            return "-"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)


@dataclass
class TableData:
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    bold: Callable[[dict], bool] | None = None  # rows shown in bold (e.g. the average)
    name: str | None = None  # key of this table in json output (several tables)


def percent(value: float | None, digits: int = 1) -> str:
    """A share as a percentage for a table cell (0.125 -> 12.5; "-" for none)."""
    return "-" if value is None else f"{100 * value:.{digits}f}"


def fixed(value: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals for a table cell ("-" for none)."""
    return "-" if value is None else f"{value:.{digits}f}"
