"""The content id of a version published to the Hub travels outside its manifest: in the commit description
(and the tag message), so that an edited manifest on the Hub can be told from the one that was published."""

from __future__ import annotations

import json
from pathlib import Path

from servers.hub_server import HubServer
from test_hub import TOKEN, lidr

from lidr_data.dataset.store import content_id


def test_the_hub_commit_carries_the_published_manifests_content_id(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr")
        assert out.returncode == 0, out.stderr
        commit = hub.repos["acme/demo-lidr"].commits[-1]
        published = json.loads(commit["files"]["manifest.json"])
        header = next(op["value"] for op in commit["operations"] if op["key"] == "header")
        assert f"content id {content_id(published)}" in header["description"]
