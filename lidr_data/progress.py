"""How the library reports progress without drawing anything: the caller passes a `Progress` factory.

`progress(description, total)` returns a context manager yielding `advance(n)`; the commands pass
`lidr_data.commands.render.progress_bar` (a terminal bar), the library defaults to `no_progress`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[int], None]
Progress = Callable[[str, int], AbstractContextManager[Advance]]


@contextmanager
def no_progress(description: str, total: int) -> Iterator[Advance]:
    yield lambda n: None
