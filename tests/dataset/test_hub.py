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

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from servers.hub_server import HubServer
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.dataset.publish import check_operations, stale_files
from lidr_data.errors import LidrError

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
        # Its parent is the published iter-1, named by its Hub reference (resolved, verified, recorded with the
        # commit the tag points at).
        run2 = make_run(tmp_path / "runs" / "demo-lidr" / "iter-2", n_prompts=4, langs=("de",), iteration=2)
        out = lidr(hub, tmp_path, "materialize", str(run2), "--store", str(store), "--parent", "acme/d@iter-1")
        assert out.returncode == 0, out.stderr
        v2 = store / "demo-lidr" / "iter-2"
        parent = read_manifest(v2)["parent"]
        published = repo.resolve("iter-1")["files"]["manifest.json"]  # publishing rewrote the card: its own id
        assert parent == {"reference": "acme/d@iter-1", "name": "demo-lidr", "version": "iter-1",
                          "content_id": content_id(json.loads(published)), "commit": repo.tags["iter-1"],
                          "manifest_sha256": hashlib.sha256(published).hexdigest()}
        out = lidr(hub, tmp_path, "materialize", str(run2), "--store", str(store), "--parent", "acme/d@iter-9",
                   "--version", "iter-2b")
        assert out.returncode == 2 and "parent acme/d@iter-9: revision iter-9 not found" in out.stderr
        assert not (store / "demo-lidr" / "iter-2b").exists()
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
        assert out.returncode == 2 and "revision iter-7 not found in acme/p; versions: iter-1" in out.stderr
        out = lidr(hub, tmp_path, "verify", "acme/nothing@iter-1")
        assert out.returncode == 2 and "not found" in out.stderr
        out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/q", token=None)
        assert out.returncode == 2 and "not authorized" in out.stderr and "Traceback" not in out.stderr
        assert "acme/q" not in hub.repos


LOAD_ROWS = """
import json, sys
from datasets import load_dataset
out = {}
for rev, config in json.loads(sys.argv[1]):
    ds = load_dataset("acme/iters", config, split="train", revision=rev)
    out[f"{rev} {config}"] = sorted(zip(ds["pair_id"], ds["iteration"]))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_every_iteration_published_to_one_repo_keeps_its_manifest(store: Path, tmp_path: Path):
    """Three iterations, then a --force republish of the newest, to one repository: every tag and main is a
    whole version (issue 15: the second publish's commit added and deleted manifest.json)."""
    langs = {1: ("de", "fr", "es"), 2: ("de", "fr"), 3: ("de",)}  # fewer languages: stale files must go
    runs = tmp_path / "runs" / "demo-lidr"
    versions: dict[str, Path] = {}
    for i in (1, 2, 3):  # each iteration names the one before it as its parent
        versions[f"iter-{i}"] = materialize(make_run(runs / f"iter-{i}", n_prompts=3 + i, langs=langs[i], iteration=i,
                                                     seed=i), store, progress=False,
                                            parent=str(versions[f"iter-{i - 1}"]) if i > 1 else None)
    with HubServer(token=TOKEN) as hub:
        for folder in versions.values():
            out = lidr(hub, tmp_path, "publish", str(folder), "--to", "acme/iters")
            assert out.returncode == 0, out.stderr
            assert "About to delete a file" not in out.stderr
        # iter-3 rebuilt (other content) and republished over its tag.
        rebuilt = make_run(runs / "iter-3b", n_prompts=7, langs=("de", "es"), iteration=3, seed=9)
        versions["iter-3"] = materialize(rebuilt, store, version="iter-3", force=True, progress=False,
                                         parent=str(versions["iter-2"]))
        out = lidr(hub, tmp_path, "publish", str(versions["iter-3"]), "--to", "acme/iters", "--force")
        assert out.returncode == 0, out.stderr

        repo = hub.repos["acme/iters"]
        assert len(repo.commits) == 1 + 4 and set(repo.tags) == set(versions)
        for commit in repo.commits[1:]:  # no commit of ours both adds and deletes a path
            ops = [(o["key"], o["value"]["path"]) for o in commit["operations"] if o["key"] != "header"]
            added = {p for k, p in ops if k in ("file", "lfsFile")}
            assert not added & {p for k, p in ops if k.startswith("deleted")}, ops
        expected = {**{tag: tag for tag in versions}, "main": "iter-3"}
        for rev, tag in expected.items():
            local = read_manifest(versions[tag])
            files = repo.resolve(rev)["files"]
            assert set(files) == set(local["files"]) | {"manifest.json", ".gitattributes"}, rev
            published = json.loads(files["manifest.json"])
            assert published["version"] == tag and published["counts"] == local["counts"], rev
            for rel in local["files"]:
                if rel != "README.md":
                    assert files[rel] == (versions[tag] / rel).read_bytes(), (rev, rel)
            assert f'revision="{tag}"' in files["README.md"].decode(), rev
            out = lidr(hub, tmp_path, "verify", f"acme/iters@{rev}")
            assert out.returncode == 0 and "hashes and counts match" in out.stdout, (rev, out.stdout + out.stderr)
            out = lidr(hub, tmp_path, "sql", f"acme/iters@{rev}", "SELECT count(*) AS n FROM pairs", "--format", "csv")
            assert out.returncode == 0 and out.stdout.split()[-1] == str(local["counts"]["pairs"]), (rev, out.stderr)

        out = lidr(hub, tmp_path, "versions", "acme/iters", "--format", "json")
        assert out.returncode == 0, out.stderr
        rows = {r["reference"]: r for r in json.loads(out.stdout)}
        assert list(rows) == [f"acme/iters@{tag}" for tag in versions]  # oldest first
        for tag in versions:
            m = read_manifest(versions[tag])
            assert rows[f"acme/iters@{tag}"]["pairs"] == m["counts"]["pairs"]
            # the parent as a reference one can type: the listed version with its content id
            assert rows[f"acme/iters@{tag}"]["parent"] == ("—" if tag == "iter-1" else f"acme/iters@iter-{int(tag[-1]) - 1}")

        # The card's snippet path: datasets.load_dataset by Hub id, config and revision returns that version's rows.
        wanted = [(rev, cfg) for rev, tag in expected.items() for cfg in ("all", "de")]
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-ds"), HF_HUB_DISABLE_XET="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1")
        got = subprocess.run([sys.executable, "-c", LOAD_ROWS, json.dumps(wanted)], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=300)
        assert got.returncode == 0, got.stderr[-2000:]
        loaded = json.loads(got.stdout.splitlines()[-1])
        for rev, cfg in wanted:
            table = pq.read_table(versions[expected[rev]] / "data" / cfg, columns=["pair_id", "iteration"])
            rows_local = sorted(zip(table["pair_id"].to_pylist(), table["iteration"].to_pylist()))
            assert [tuple(r) for r in loaded[f"{rev} {cfg}"]] == rows_local, (rev, cfg)


@pytest.mark.slow
def test_the_card_names_a_parent_published_to_the_same_repo_by_its_hub_reference(store: Path, tmp_path: Path):
    """iter-2's parent, iter-1, was published to the repo first (under another tag name): iter-2's card there
    names it `org/name@tag`. The manifest, which is hashed, keeps the parent as the build recorded it; a repo
    that lacks the parent keeps the recorded reference in the card too."""
    runs = tmp_path / "runs" / "demo-lidr"
    v1 = materialize(make_run(runs / "iter-1", n_prompts=3, iteration=1, seed=1), store, progress=False)
    v2 = materialize(make_run(runs / "iter-2", n_prompts=4, iteration=2, seed=2), store, progress=False,
                     parent=str(v1))
    local_parent = read_manifest(v2)["parent"]
    assert local_parent["content_id"] == content_id(read_manifest(v1))
    with HubServer(token=TOKEN) as hub:
        for args in ([str(v1), "--to", "acme/iters", "--version", "first"], [str(v2), "--to", "acme/iters"],
                     [str(v2), "--to", "acme/other"]):
            out = lidr(hub, tmp_path, "publish", *args)
            assert out.returncode == 0, out.stderr
        out = lidr(hub, tmp_path, "verify", "acme/iters@iter-2")
        assert out.returncode == 0, out.stdout + out.stderr
        rows = {}
        for repo in ("acme/iters", "acme/other"):
            files = hub.repos[repo].resolve("iter-2")["files"]
            assert json.loads(files["manifest.json"])["parent"] == local_parent
            rows[repo] = next(line for line in files["README.md"].decode().splitlines() if "| parent version" in line)
    cid = local_parent["content_id"]
    assert rows["acme/iters"] == f"| parent version | `iter-1` (`acme/iters@first`, content id `{cid}`) |"
    assert rows["acme/other"] == f"| parent version | `iter-1` (`{local_parent['reference']}`, content id `{cid}`) |"


def test_publish_deletes_only_what_the_commit_does_not_write():
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    main = {".gitattributes", "README.md", "manifest.json", "data/all/a.parquet", "data/es/a.parquet"}
    adds = ["README.md", "data/all/a.parquet", "manifest.json"]
    assert stale_files(main, adds) == ["data/es/a.parquet"]
    ops = [CommitOperationAdd(p, b"x") for p in adds] + [CommitOperationDelete(p) for p in stale_files(main, adds)]
    check_operations(ops, "acme/d@iter-2")  # a clean commit passes
    with pytest.raises(LidrError, match=r"acme/d@iter-2: refusing a commit that adds and deletes manifest.json"):
        check_operations(ops + [CommitOperationDelete("manifest.json")], "acme/d@iter-2")
    with pytest.raises(LidrError, match=r"adds and deletes data/all/a.parquet"):
        check_operations(ops + [CommitOperationDelete("data/all/", is_folder=True)], "acme/d@iter-2")


def test_transport_errors_of_the_hub_client_are_retried():
    import httpx2

    from lidr_data.dataset import hub

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise httpx2.ConnectError("connection refused")  # what huggingface_hub 2.x raises
        return "ok"

    assert hub.with_retries("x", flaky, retries=3) == "ok" and len(calls) == 3


OTHER = "hf_SomeoneElsesToken000000000000000"


@pytest.mark.slow
def test_read_errors_tell_a_missing_revision_from_a_missing_repo_and_from_access(version_dir: Path, tmp_path: Path):
    with HubServer(token=TOKEN, readers={OTHER}) as hub:
        for tag in ("iter-1", "iter-10", "iter-2"):
            out = lidr(hub, tmp_path, "publish", str(version_dir), "--to", "acme/p", "--private", "--version", tag)
            assert out.returncode == 0, out.stderr
        # A revision that does not exist: named, with the versions there are (natural order), for every reader.
        for args in (("verify", "acme/p@iter-9"), ("sql", "acme/p@iter-9", "SELECT 1"), ("inspect", "acme/p@iter-9")):
            out = lidr(hub, tmp_path, *args)
            assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == \
                "error: revision iter-9 not found in acme/p; versions: iter-1, iter-2, iter-10", out.stderr
        out = lidr(hub, tmp_path, "verify", "acme/p@" + "0" * 40)
        assert out.returncode == 2 and f"commit {'0' * 40} not found in acme/p; versions: iter-1" in out.stderr
        # A repository that does not exist, with a token and without.
        for args in (("verify", "acme/nothing@iter-1"), ("versions", "acme/nothing")):
            out = lidr(hub, tmp_path, *args)
            assert out.returncode == 2, out.stderr
            assert "error: dataset repository acme/nothing not found, or the Hub token in use has no access to it" \
                in out.stderr and "revision" not in out.stderr
        # A valid token without access to the private repository: the Hub answers as for a missing one.
        out = lidr(hub, tmp_path, "verify", "acme/p@iter-1", token=OTHER)
        assert out.returncode == 2 and "dataset repository acme/p not found, or the Hub token in use has no access" \
            in out.stderr
        out = lidr(hub, tmp_path, "versions", "acme/p", token=OTHER)
        assert out.returncode == 2 and "acme/p not found, or the Hub token in use has no access" in out.stderr
        # No token at all, and a token the Hub rejects.
        out = lidr(hub, tmp_path, "verify", "acme/p@iter-1", token=None)  # this server: 401 without an error code
        assert out.returncode == 2 and "acme/p@iter-1: not authorized (HTTP 401)" in out.stderr
        assert "`hf auth login` or set HF_TOKEN" in out.stderr
        out = lidr(hub, tmp_path, "verify", "acme/p@iter-1", token="hf_Wrong00000000000000000000000000")
        assert out.returncode == 2 and "acme/p@iter-1: the Hub rejected the token (HTTP 401)" in out.stderr
        for out_text in (out.stdout, out.stderr):
            assert "Traceback" not in out_text and TOKEN not in out_text and "hf_Wrong" not in out_text
