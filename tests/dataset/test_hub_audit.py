"""`lidr publish --with-audit` and `lidr audit org/name@rev` against the loopback Hub server
(tests/servers/hub_server.py), with the real `huggingface_hub` client in subprocesses (it reads HF_ENDPOINT at
import), as tests/dataset/test_hub.py does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers.hub_server import HubServer

from lidr_data.dataset.layout import read_manifest

TOKEN = "hf_TestTokenDoNotLeak0123456789"


def lidr(hub: HubServer, tmp_path: Path, *args: str):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", NO_COLOR="1", COLUMNS="200", HF_HUB_DISABLE_XET="1",
               HF_TOKEN=TOKEN, LIDR_WORKDIR=str(tmp_path / "work-hub"))
    return subprocess.run([sys.executable, "-m", "lidr_data.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.slow
def test_publish_with_audit_keeps_the_data_and_hashes(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr", "--with-audit")
        assert out.returncode == 2 and "no audit of this version" in out.stderr
        out = lidr(hub, tmp_path, "audit", str(version_dir), "--judge", "length", "--sample", "3", "--no-progress")
        assert out.returncode == 0, out.stderr
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr", "--with-audit")
        assert out.returncode == 0, out.stderr
        files = hub.repos["acme/demo-lidr"].commits[-1]["files"]
        card = files["README.md"].decode()
        assert "## Pair validity (judge audit)" in card and "| de | from_dominant | 3 |" in card
        local = read_manifest(version_dir)
        published = json.loads(files["manifest.json"])
        # the data files are the version's, byte for byte, with the same hashes; only the card differs
        assert {k: v for k, v in published["files"].items() if k != "README.md"} == \
            {k: v for k, v in local["files"].items() if k != "README.md"}
        for rel in local["files"]:
            if rel != "README.md":
                assert files[rel] == (version_dir / rel).read_bytes(), rel
        assert not [rel for rel in files if "audit" in rel]  # the audit is a card section, not a file
        out = lidr(hub, tmp_path, "verify", "acme/demo-lidr@iter-1")
        assert out.returncode == 0, out.stderr

        # An audit of the Hub version lives in the default local store, under <org>--<name>/audits/<rev>/.
        out = lidr(hub, tmp_path, "audit", "acme/demo-lidr@iter-1", "--judge", "length", "--sample", "2",
                   "--write-filter", "--no-progress")
        assert out.returncode == 0, out.stderr
        folder = tmp_path / "work-hub" / "store" / "acme--demo-lidr" / "audits" / "iter-1" / "length-2-0"
        assert (folder / "audit.json").is_file()
        info = json.loads((folder / "audit.json").read_text())
        assert info["reference"] == "acme/demo-lidr@iter-1" and info["content_id"] == published_content(hub)
        data = json.loads((folder / "judge_reversed.json").read_text())
        assert data["audit"]["path"] == "acme--demo-lidr/audits/iter-1/length-2-0"
        out = lidr(hub, tmp_path, "sql", "acme/demo-lidr@iter-1", "SELECT count(*) AS n FROM audit", "--format",
                   "json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [{"n": info["counts"]["sampled"]}]


def published_content(hub: HubServer) -> str:
    import hashlib

    manifest = json.loads(hub.repos["acme/demo-lidr"].commits[-1]["files"]["manifest.json"])
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()
