"""Publishing to the Hub and reading back by `org/name@revision`.

Real: the `huggingface_hub` 2.4 client (HfApi.create_repo / create_commit / create_tag, snapshot_download,
hf_hub_download), `datasets.load_dataset("org/name", config, revision=tag)` (the card's snippet),
`lidr publish/verify/sql/versions` run as subprocesses, HTTP over 127.0.0.1.
Local stand-in for the Hub: tests/servers/hub_server.py, which speaks the endpoints the client calls and records
what it received. The session's HF_HUB_OFFLINE=1 is removed only for these subprocesses, whose HF_ENDPOINT points
at the loopback server (huggingface_hub reads it at import, hence subprocesses). The stand-in implements LFS and
regular uploads, not the Xet protocol, so the LFS variant runs with HF_HUB_DISABLE_XET=1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from servers.hub_server import HubServer

from lidr_data.dataset.store import read_manifest
from lidr_data.dataset.synthetic import make_run
from lidr_data.dataset.version import materialize

TOKEN = "hf_TestTokenDoNotLeak0123456789"


def lidr(hub: HubServer, tmp_path: Path, *args: str, token: str | None = TOKEN, xet_off: bool = True):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", NO_COLOR="1", COLUMNS="200")
    if xet_off:
        env["HF_HUB_DISABLE_XET"] = "1"
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "lidr_data.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("upload_mode", ["lfs", "regular"])
def test_publish_one_commit_and_a_tag_then_read_back(version_dir: Path, tmp_path: Path, upload_mode: str):
    with HubServer(token=TOKEN, upload_mode=upload_mode) as hub:
        hub.fail_next["commit"] = [503]  # a transient failure: publish retries
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/demo-lidr")
        assert out.returncode == 0, out.stderr
        assert "acme/demo-lidr@iter-1" in out.stdout

        repo = hub.repos["acme/demo-lidr"]
        # The repo's initial commit (.gitattributes, as on the Hub), then exactly one commit of ours, tagged.
        assert len(repo.commits) == 2 and set(repo.commits[0]["files"]) == {".gitattributes"}
        commit = repo.commits[1]
        assert repo.tags == {"iter-1": commit["oid"]} and repo.branches["main"] == commit["oid"]
        assert [p for m, p in hub.requests if m == "POST" and p.endswith("/commit/main")] == \
            ["/api/datasets/acme/demo-lidr/commit/main"] * 2  # 503, then the retry
        files = commit["files"]
        local = read_manifest(version_dir)
        assert set(files) == set(local["files"]) | {"manifest.json", ".gitattributes"}
        for rel in local["files"]:
            if rel != "README.md":
                assert files[rel] == (version_dir / rel).read_bytes(), rel
        if upload_mode == "lfs":
            assert commit["lfs"] == {r for r in files if r.endswith(".parquet")}
            assert any(p.startswith("/lfs-upload/") for _, p in hub.requests)
        else:
            assert commit["lfs"] == set()
        # The card points at the Hub id and tag; the manifest's README hash follows it.
        card = files["README.md"].decode()
        assert 'load_dataset("acme/demo-lidr", "de", split="train", revision="iter-1")' in card
        assert "hf://datasets/acme/demo-lidr@iter-1/data/all/*.parquet" in card
        assert hub.validated and hub.validated[-1] == card
        # Every request carried the token; it was never printed or written.
        assert all(a == f"Bearer {TOKEN}" for (_, p), a in zip(hub.requests, hub.auth_seen) if not p.startswith("/lfs-"))
        assert TOKEN not in out.stdout + out.stderr
        assert all(TOKEN.encode() not in data for data in files.values())
        assert files[".gitattributes"].startswith(b"*.parquet filter=lfs")  # kept: not ours to delete

        if upload_mode != "lfs":  # the read path does not depend on how the files were uploaded
            return
        # Read back by org/name@tag with the real client through HF_ENDPOINT.
        out = lidr(hub, tmp_path, "verify", "acme/demo-lidr@iter-1")
        assert out.returncode == 0, out.stderr
        assert "hashes and counts match" in out.stdout
        out = lidr(hub, tmp_path, "sql", "acme/demo-lidr@iter-1",
                   "SELECT lang, count(*) AS n FROM pairs GROUP BY lang ORDER BY lang", "--format", "json")
        assert out.returncode == 0, out.stderr
        assert {r["lang"]: r["n"] for r in json.loads(out.stdout)} == local["counts"]["by_language"]
        out = lidr(hub, tmp_path, "versions", "acme/demo-lidr")
        assert out.returncode == 0 and "acme/demo-lidr@iter-1" in out.stdout
        hf_home = tmp_path / "hf-home"
        assert not [p for p in hf_home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]

        # The same through the client's own API: hf_hub_download of one data file by tag.
        code = ("from huggingface_hub import hf_hub_download; import sys; "
                "print(hf_hub_download('acme/demo-lidr', sys.argv[1], repo_type='dataset', revision='iter-1'))")
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-2"), HF_HUB_DISABLE_XET="1")
        rel = local["configs"]["de"][0]
        got = subprocess.run([sys.executable, "-c", code, rel], capture_output=True, text=True, env=env)
        assert got.returncode == 0, got.stderr
        assert Path(got.stdout.strip()).read_bytes() == (version_dir / rel).read_bytes()

        # And the card's own `datasets` snippet, as published (Hub id + revision), through the same endpoint.
        snippet = re.findall(r"```python\n(.*?)```", card, flags=re.S)[0]
        got = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=180)
        assert got.returncode == 0, got.stderr[-2000:]
        assert got.stdout.splitlines()[0] == f"{local['counts']['pairs']} {local['counts']['by_language']['de']}"


@pytest.mark.slow
def test_tags_are_immutable_force_moves_them_and_stale_files_go(version_dir: Path, store: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        assert lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/d").returncode == 0
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/d")
        assert out.returncode == 2 and "already exists" in out.stderr
        assert len(hub.repos["acme/d"].commits) == 2  # the initial commit and ours
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/d", "--force")
        assert out.returncode == 0 and "--force" in out.stderr
        repo = hub.repos["acme/d"]
        assert len(repo.commits) == 3 and repo.tags["iter-1"] == repo.commits[2]["oid"]
        # iteration 2 with fewer languages: main holds exactly the new version; iter-1 still resolves to the old.
        run2 = make_run(tmp_path / "runs" / "demo-lidr" / "iter-2", n_prompts=4, langs=("de",), iteration=2)
        v2 = materialize(run2, store, progress=False)
        assert lidr(hub, tmp_path, "publish", str(v2), "--to", "acme/d").returncode == 0
        main_files = set(repo.resolve("main")["files"])
        assert not any(f.startswith(("data/fr/", "data/es/")) for f in main_files)
        assert any(f.startswith("data/fr/") for f in repo.resolve("iter-1")["files"])
        out = lidr(hub, tmp_path, "sql", "acme/d@iter-2", "SELECT count(*) AS n FROM pairs", "--format", "csv")
        assert out.returncode == 0 and out.stdout.split()[-1] == str(pq.read_metadata(run2 / "pairs.parquet").num_rows)


@pytest.mark.slow
def test_private_repo_missing_revision_and_no_token(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        assert lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/p", "--private").returncode == 0
        assert hub.repos["acme/p"].private is True
        out = lidr(hub, tmp_path, "verify", "acme/p@iter-7")
        assert out.returncode == 2 and "acme/p@iter-7: revision not found" in out.stderr
        out = lidr(hub, tmp_path, "verify", "acme/nothing@iter-1")
        assert out.returncode == 2 and "not found" in out.stderr
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/q", token=None)
        assert out.returncode == 2 and "not authorized" in out.stderr and "Traceback" not in out.stderr
        assert "acme/q" not in hub.repos
