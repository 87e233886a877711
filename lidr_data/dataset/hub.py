"""The Hub client calls: download a version, list its tags, read the content id its publishing commit recorded,
with retries and one-line errors.

Reads tell a missing revision (naming the versions there are) from a missing repository or a token problem.
Transient failures (connection errors, 429, 5xx) are retried with backoff. The token is whatever
`huggingface_hub` finds (HF_TOKEN, `hf auth login`); it is never passed through our messages or files.
Publishing (one commit, then a tag) is in `publish.py`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lidr_data.dataset.layout import MANIFEST, read_manifest
from lidr_data.errors import LidrError

T = TypeVar("T")
RETRIES = 4
RETRY_BASE_S = 0.5
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transport_errors() -> tuple[type[BaseException], ...]:
    # huggingface_hub 2.x talks through `httpx2`, whose errors are not httpx's: retry both.
    import importlib

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _transport_errors()):
        return True
    return _status(exc) in TRANSIENT_STATUS


def with_retries(what: str, fn: Callable[[], T], retries: int = RETRIES) -> T:
    """Call fn, retrying transient errors with exponential backoff; other errors pass through at once."""
    for attempt in range(retries):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 (classified below)
            if attempt == retries - 1 or not _is_transient(e):
                raise
            time.sleep(RETRY_BASE_S * 2**attempt)
    raise AssertionError("unreachable")


def _hub_error(exc: BaseException, what: str) -> LidrError:
    """A one-line message for a Hub failure (never including request headers, hence never the token)."""
    from huggingface_hub import errors

    if isinstance(exc, errors.OfflineModeIsEnabled):
        return LidrError(f"{what}: HF_HUB_OFFLINE is set, the Hub cannot be reached (unset it to use Hub references)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return LidrError(f"{what}: revision not found")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return LidrError(f"{what}: dataset repository not found (or no access: check your Hub token)")
    if isinstance(exc, errors.LocalEntryNotFoundError):  # a subclass of EntryNotFoundError: test it first
        from huggingface_hub import constants

        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        return LidrError(f"{what}: not in the local Hub cache and {why}")
    if isinstance(exc, errors.EntryNotFoundError):
        return LidrError(f"{what}: file not found in the repository")
    status = _status(exc)
    if status in (401, 403):
        return LidrError(f"{what}: not authorized (HTTP {status}); log in with `hf auth login` or set HF_TOKEN")
    if status is not None:
        return LidrError(f"{what}: the Hub answered HTTP {status}")
    return LidrError(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _token_set() -> bool:
    """Whether huggingface_hub has a token to send (HF_TOKEN or a stored login); the token itself is not read out."""
    from huggingface_hub import get_token

    return get_token() is not None


def _repo_missing(repo_id: str) -> LidrError:
    # The Hub answers alike for a missing repository and a private one the caller cannot see (by design).
    if _token_set():
        return LidrError(f"dataset repository {repo_id} not found, or the Hub token in use has no access to it")
    return LidrError(f"dataset repository {repo_id} not found (if it is private: `hf auth login` or set HF_TOKEN)")


def _read_error(exc: BaseException, repo_id: str, what: str) -> LidrError:
    """A one-line message for a failed read; a rejected token and a missing repository are told apart."""
    from huggingface_hub import errors

    if isinstance(exc, errors.RepositoryNotFoundError) or (
        isinstance(exc, errors.RemoteEntryNotFoundError) and "/refs" in str(getattr(exc.response, "url", ""))
    ):  # some Hub-protocol servers answer a refs request for an unknown repository with 404 EntryNotFound
        return _repo_missing(repo_id)
    if _status(exc) == 401 and _token_set():
        return LidrError(f"{what}: the Hub rejected the token (HTTP 401); check HF_TOKEN or `hf auth login`")
    return _hub_error(exc, what)


def _tag_key(name: str) -> list:
    """Natural order: iter-2 before iter-10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def _list_refs(repo_id: str):
    from huggingface_hub import HfApi

    try:
        return with_retries(repo_id, lambda: HfApi().list_repo_refs(repo_id, repo_type="dataset"))
    except Exception as e:  # noqa: BLE001 (mapped to one line)
        raise _read_error(e, repo_id, repo_id) from None


def _missing_revision(exc: BaseException, repo_id: str, revision: str | None) -> LidrError:
    """After a failed download: is it the revision (list the versions), the repository, or access?

    Servers differ in how they answer an unknown revision (the Hub: 404 RevisionNotFound; some mirrors: the same
    answer as for an unknown repository), so the repository's refs decide.
    """
    what = f"{repo_id}@{revision or 'main'}"
    refs = _list_refs(repo_id)  # raises the repository / access error when the repository is not readable
    rev = revision or "main"
    names = {r.name for r in refs.tags} | {r.name for r in refs.branches}
    is_commit = bool(re.fullmatch(r"[0-9a-f]{40}", rev))
    if rev in names or (is_commit and any(r.target_commit == rev for r in [*refs.tags, *refs.branches])):
        return _hub_error(exc, what)
    tags = sorted((t.name for t in refs.tags), key=_tag_key)
    kind = "commit" if is_commit else "revision"
    return LidrError(f"{kind} {rev} not found in {repo_id}; versions: {', '.join(tags) or 'none (no tags)'}")


def download(repo_id: str, revision: str | None) -> Path:
    """Fetch a Hub version into the Hub cache (or find it there) and return the local snapshot folder."""
    from huggingface_hub import errors, snapshot_download

    what = f"{repo_id}@{revision or 'main'}"
    try:
        return Path(with_retries(what, lambda: snapshot_download(repo_id, repo_type="dataset", revision=revision)))
    except LidrError:
        raise
    except (errors.RevisionNotFoundError, errors.RepositoryNotFoundError) as e:
        raise _missing_revision(e, repo_id, revision) from None
    except Exception as e:  # noqa: BLE001 (mapped to one line)
        raise _read_error(e, repo_id, what) from None


def hub_versions(repo_id: str) -> list[tuple[str, dict]]:
    """(reference, manifest) for every tag of a Hub dataset whose tree holds a manifest, oldest first."""
    from huggingface_hub import errors, hf_hub_download

    found = []
    for tag in _list_refs(repo_id).tags:
        what = f"{repo_id}@{tag.name}"
        try:
            path = with_retries(what, lambda t=tag.name: hf_hub_download(repo_id, MANIFEST, repo_type="dataset",
                                                                          revision=t))
        except errors.RemoteEntryNotFoundError:  # a tag without a manifest is not a version (e.g. a hand-made tag)
            continue
        except Exception as e:  # noqa: BLE001 (mapped to one line)
            raise _read_error(e, repo_id, what) from None
        manifest = read_manifest(Path(path).parent)
        found.append((str(manifest.get("created_at", "")), _tag_key(tag.name), what, manifest))
    return [(what, manifest) for _, _, what, manifest in sorted(found)]


def published_sources(repo_id: str, refs=None) -> dict[str, str]:
    """{content id of the local version a tag was published from: `repo_id@tag`} for the tags of a Hub dataset
    whose commit `publish` described with a `source content id` (the local id differs from the published one:
    the card, and with it the manifest, is rewritten for the Hub). `refs`: the repository's refs when known."""
    from huggingface_hub import HfApi

    refs = refs if refs is not None else _list_refs(repo_id)
    tags: dict[str, list[str]] = {}
    for tag in refs.tags:
        tags.setdefault(tag.target_commit, []).append(tag.name)
    if not tags:
        return {}
    try:
        commits = with_retries(repo_id, lambda: HfApi().list_repo_commits(repo_id, repo_type="dataset"))
    except (KeyError, TypeError, ValueError):  # a server whose commit listing the client cannot parse (olah)
        return {}
    except Exception as e:  # noqa: BLE001 (mapped to one line)
        raise _hub_error(e, repo_id) from None
    found: dict[str, str] = {}
    for commit in commits:  # newest first: a version published twice is named by its newest tag
        source = re.search(r"source content id ([0-9a-f]{64})", commit.message or "")
        if source and commit.commit_id in tags:
            found.setdefault(source.group(1), f"{repo_id}@{sorted(tags[commit.commit_id], key=_tag_key)[-1]}")
    return found


def published_content_id(repo_id: str, revision: str | None) -> str | None:
    """The content id that `publish` wrote into the description of the commit a revision points at (None if
    that commit has none): what `verify` checks a Hub version's manifest against."""
    from huggingface_hub import HfApi

    what = f"{repo_id}@{revision or 'main'}"
    api = HfApi()
    try:
        commits = with_retries(what, lambda: api.list_repo_commits(repo_id, repo_type="dataset",
                                                                   revision=revision or "main"))
    except (KeyError, TypeError, ValueError):
        # A Hub-protocol server whose commit listing the client cannot parse (olah's mirror answers without
        # authors): no recorded id, which `verify` reports as such rather than failing the version.
        return None
    except Exception as e:  # noqa: BLE001 (mapped to one line)
        raise _hub_error(e, what) from None
    found = re.search(r"content id ([0-9a-f]{64})", commits[0].message or "") if commits else None
    return found.group(1) if found else None
