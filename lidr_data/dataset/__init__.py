"""Dataset versions (version.py), stores and references (store.py), the Hub (hub.py) and the card (card.py).

`lidr build` ends with `materialize(run_dir, store)`; consumers resolve references with `resolve_version(ref)`.
"""

from lidr_data.dataset.store import parse_reference, resolve, resolve_version
from lidr_data.dataset.version import materialize, verify

__all__ = ["materialize", "parse_reference", "resolve", "resolve_version", "verify"]
