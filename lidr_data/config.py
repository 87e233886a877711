"""What every settings dataclass shares: its documented fields, its value checks, packaged paths.

Each stage owns its settings dataclass (next to the code that reads them); `recipe.py` composes them into the
recipe and its generic loader checks types and names the field path. Value checks live in each dataclass's
`__post_init__` and name the field relative to their section (`require("limit", ...)` -> "limit: ..."); the
loader prefixes the section path.
"""

from __future__ import annotations

from dataclasses import MISSING, field
from pathlib import Path
from typing import Any

from lidr_data.errors import LidrError

PACKAGE = Path(__file__).resolve().parent
ASSETS = PACKAGE / "assets"


def option(default: Any = MISSING, help: str = "", factory: Any = MISSING) -> Any:
    """A dataclass field with its documentation in metadata (`help`: what `lidr --help` and the docs show)."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def require(ok: bool, name: str, message: str, sep: str = ": ") -> None:
    """A value check: a LidrError "NAME: MESSAGE" unless `ok` (`sep`: what stands between them)."""
    if not ok:
        raise LidrError(f"{name}{sep}{message}")


def check_markers(markers: list[str], name: str = "failure_markers") -> None:
    require(isinstance(markers, list) and all(isinstance(m, str) and m.strip() for m in markers),
            name, f"must be a list of non-empty texts, got {markers!r}")


def resolve_path(path: str | Path) -> Path:
    """`lidr:assets/x` -> the packaged file; anything else is a normal path (relative to the current directory)."""
    text = str(path)
    if text.startswith("lidr:"):
        return PACKAGE / text[len("lidr:"):]
    return Path(text).expanduser()
