"""The content id of a version published to the Hub travels outside its manifest: in the commit description
(and the tag message), so that an edited manifest on the Hub can be told from the one that was published."""

from __future__ import annotations

import json
from pathlib import Path

from servers.hub_server import HubServer
from test_hub import TOKEN, lidr

from lidr_data.dataset.layout import content_id


def test_the_hub_commit_carries_the_published_manifests_content_id(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr")
        assert out.returncode == 0, out.stderr
        commit = hub.repos["acme/demo-lidr"].commits[-1]
        published = json.loads(commit["files"]["manifest.json"])
        header = next(op["value"] for op in commit["operations"] if op["key"] == "header")
        assert f"content id {content_id(published)}" in header["description"]


def test_verify_of_a_hub_version_catches_a_manifest_edited_on_the_hub(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        assert lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr").returncode == 0
        out = lidr(hub, tmp_path / "reader-1", "verify", "acme/demo-lidr@iter-1")
        assert out.returncode == 0, out.stderr
        published = json.loads(hub.repos["acme/demo-lidr"].commits[-1]["files"]["manifest.json"])
        assert f"content id {content_id(published)} (matches the id recorded when it was made)" in out.stdout
        # Someone rewrites the generator in the Hub's manifest (every data file and the card unchanged).
        forged = {**published, "generator": {**published["generator"], "model": "gpt-forged"}}
        hub.repos["acme/demo-lidr"].commits[-1]["files"]["manifest.json"] = json.dumps(forged).encode()
        out = lidr(hub, tmp_path / "reader-2", "verify", "acme/demo-lidr@iter-1")
        assert out.returncode == 1 and "manifest altered" in out.stderr, out.stderr
