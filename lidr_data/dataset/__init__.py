"""Dataset versions, by concept, each module importing only the ones above it in this list (and nothing of the
package but the ground floor: the build that makes run folders stands beside this package, on top of it):

- `files.py`: hashing, fsync, read-only bits, temporary folders;
- `layout.py`: what a version holds, its manifest and content id, the dataset's index, counts, `verify`;
- `card.py`: the dataset card (README.md);
- `hub.py`: Hub client calls (download, tags, recorded content ids, retries, errors);
- `store.py`: references (`resolve_version(ref)`) and stores (`move_into_place`);
- `lineage.py`: what a manifest records about its parent version and its generator model (portable paths);
- `audits.py`: where the audits of a version live (beside it, never inside), reading them back;
- `materialize.py`: a pairs table, its dropped rows and a manifest record -> version (`write_version`; a run
  folder's side is `lidr_data.build.materialize`);
- `publish.py`: a version to the Hub or another local store;
- `load.py`: a version as a `datasets.Dataset`, keyed by its content id.
"""

from lidr_data.dataset.layout import verify
from lidr_data.dataset.store import parse_reference, resolve, resolve_version

__all__ = ["parse_reference", "resolve", "resolve_version", "verify"]
