"""Dataset versions, by concept, each module importing only the ones above it in this list:

- `files.py`: hashing, fsync, read-only bits, temporary folders;
- `layout.py`: what a version holds, its manifest and content id, the dataset's index, counts, `verify`;
- `card.py`: the dataset card (README.md);
- `hub.py`: Hub client calls (download, tags, recorded content ids, retries, errors);
- `store.py`: references (`resolve_version(ref)`) and stores (`move_into_place`);
- `lineage.py`: what a manifest records about its parent version and its generator model (portable paths);
- `audits.py`: where the audits of a version live (beside it, never inside), reading them back;
- `materialize.py`: run folder -> version (`materialize`, and `materialize_run` at the end of `lidr build`);
- `publish.py`: a version to the Hub or another local store;
- `load.py`: a version as a `datasets.Dataset`, keyed by its content id.
"""

# `materialize` is imported from `lidr_data.dataset.materialize`: re-exported here, the function would hide the
# module of the same name (`import lidr_data.dataset.materialize as m` would bind the function).
from lidr_data.dataset.layout import verify
from lidr_data.dataset.store import parse_reference, resolve, resolve_version

__all__ = ["parse_reference", "resolve", "resolve_version", "verify"]
