"""The Hub read path against a Hub-protocol server this project did not write: olah (tests/servers/olah_server.py).

What is served is what `lidr publish` wrote: two iterations published to the project's own stand-in
(tests/servers/hub_server.py), whose commits and tags are replayed into a git repository (one commit per Hub
commit, a tag per version, Parquet files as LFS pointers) that olah serves offline. Then the real clients read it
by tag, by branch and by commit through HF_ENDPOINT: `lidr versions/verify/sql/inspect` and
`datasets.load_dataset`. Skipped with a message where the olah venv is absent; `.ci/run` builds it and sets
LIDR_OLAH_PYTHON, which makes a missing or broken olah a failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from servers.hub_server import HubServer
from servers.olah_server import OlahServer, git_mirror, olah_python
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.dataset.layout import read_manifest

pytestmark = pytest.mark.slow
TOKEN = "hf_TestTokenDoNotLeak0123456789"


def _env(endpoint: str, hf_home: Path, token: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_XET="1", NO_COLOR="1", COLUMNS="200")
    if token:
        env["HF_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(olah url, {version: local folder}, {version: git commit sha}, main's sha, a folder for HF_HOMEs)."""
    python, why = olah_python()
    if python is None:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("olah")
    store = tmp / "store"
    langs = {1: ("de", "fr", "es"), 2: ("de", "fr")}
    versions: dict[str, Path] = {}
    for i in (1, 2):  # iter-2 names iter-1 as its parent
        versions[f"iter-{i}"] = materialize(make_run(tmp / "runs" / "demo-lidr" / f"iter-{i}", n_prompts=3 + i,
                                                     langs=langs[i], iteration=i, seed=i), store, progress=False,
                                            parent=str(versions["iter-1"]) if i == 2 else None)
    with HubServer(token=TOKEN) as hub:  # the write path: what `lidr publish` sends to a Hub
        for folder in versions.values():
            out = subprocess.run([sys.executable, "-m", "lidr_data.cli", "publish", str(folder), "--to", "acme/demo"],
                                 capture_output=True, text=True, env=_env(hub.url, tmp / "hf-publish", TOKEN),
                                 timeout=120)
            assert out.returncode == 0, out.stderr
        repo = hub.repos["acme/demo"]
        shas = git_mirror(repo.commits, repo.tags, tmp / "mirrors" / "datasets" / "acme" / "demo")
        tag_shas = {tag: shas[oid] for tag, oid in repo.tags.items()}
        main_sha = shas[repo.branches["main"]]
    with OlahServer(python, tmp / "mirrors", tmp / "olah-run") as olah:
        yield olah.url, versions, tag_shas, main_sha, tmp


def lidr(served, name: str, *args: str):
    url, _, _, _, tmp = served
    return subprocess.run([sys.executable, "-m", "lidr_data.cli", *args], capture_output=True, text=True,
                          env=_env(url, tmp / f"hf-{name}"), timeout=180)


def test_versions_lists_every_tag_with_its_parent(served):
    out = lidr(served, "versions", "versions", "acme/demo", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    versions = served[1]
    assert [r["reference"] for r in rows] == ["acme/demo@iter-1", "acme/demo@iter-2"]
    for row, (tag, folder) in zip(rows, versions.items()):
        m = read_manifest(folder)
        assert row["pairs"] == m["counts"]["pairs"] and row["languages"] == " ".join(sorted(m["counts"]["by_language"]))
        # olah's commit listing cannot be read (no "source content id" to name the parent by its tag): the parent
        # is shown as its build recorded it, with its content id (test_hub.py: by its Hub reference)
        parent = m["parent"]
        assert row["parent"] == ("—" if tag == "iter-1" else
                                 f"{parent['reference']} (content id {parent['content_id'][:12]})")


def test_verify_sql_and_inspect_by_tag_branch_and_commit(served):
    _, versions, tag_shas, main_sha, tmp = served
    refs = {"iter-1": "iter-1", "iter-2": "iter-2", "main": "iter-2", tag_shas["iter-1"]: "iter-1"}
    assert main_sha == tag_shas["iter-2"]
    for rev, tag in refs.items():
        m = read_manifest(versions[tag])
        out = lidr(served, "read", "verify", f"acme/demo@{rev}")
        assert out.returncode == 0 and "hashes and counts match" in out.stdout, (rev, out.stdout + out.stderr)
        assert f"snapshots/{tag_shas[tag]}" in out.stdout  # the snapshot of the commit the reference names
        out = lidr(served, "read", "sql", f"acme/demo@{rev}",
                   "SELECT lang, count(*) AS n FROM pairs GROUP BY lang ORDER BY lang", "--format", "json")
        assert out.returncode == 0, out.stderr
        assert {r["lang"]: r["n"] for r in json.loads(out.stdout)} == m["counts"]["by_language"], rev
        out = lidr(served, "read", "sql", f"acme/demo@{rev}", "SELECT count(*) AS n FROM dropped", "--format", "csv")
        assert out.returncode == 0 and out.stdout.split()[-1] == str(m["counts"]["dropped"]), rev
    report = tmp / "report.html"
    out = lidr(served, "read", "inspect", "acme/demo@iter-1", "--html", str(report))
    m = read_manifest(versions["iter-1"])
    assert out.returncode == 0, out.stderr
    assert f"acme/demo@iter-1 · {m['counts']['pairs']} pairs · demo-lidr iter-1" in out.stdout
    assert report.is_file() and "demo-lidr" in report.read_text(encoding="utf-8")


LOAD_ROWS = """
import json, sys
from datasets import load_dataset
out = {}
for rev, config in json.loads(sys.argv[1]):
    ds = load_dataset("acme/demo", config, split="train", revision=rev)
    out[f"{rev} {config}"] = sorted(zip(ds["pair_id"], ds["iteration"]))
print(json.dumps(out))
"""


def test_load_dataset_by_tag_and_by_commit(served):
    url, versions, tag_shas, _, tmp = served
    refs = {"iter-1": "iter-1", "iter-2": "iter-2", tag_shas["iter-1"]: "iter-1", "main": "iter-2"}
    wanted = [(rev, cfg) for rev in refs for cfg in ("all", "fr")]
    got = subprocess.run([sys.executable, "-c", LOAD_ROWS, json.dumps(wanted)], capture_output=True, text=True,
                         env=_env(url, tmp / "hf-datasets"), cwd=tmp, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    loaded = json.loads(got.stdout.splitlines()[-1])
    for rev, cfg in wanted:
        table = pq.read_table(versions[refs[rev]] / "data" / cfg, columns=["pair_id", "iteration"])
        assert [tuple(r) for r in loaded[f"{rev} {cfg}"]] == sorted(zip(table["pair_id"].to_pylist(),
                                                                        table["iteration"].to_pylist())), (rev, cfg)


def test_missing_revision_and_missing_repository(served):
    # olah answers an unknown revision like an unknown repository (401 RepoNotFound); the refs tell them apart.
    for args in (("verify", "acme/demo@iter-9"), ("sql", "acme/demo@iter-9", "SELECT 1")):
        out = lidr(served, "errors", *args)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == \
            "error: revision iter-9 not found in acme/demo; versions: iter-1, iter-2", out.stderr
    for args in (("verify", "acme/nothing@iter-1"), ("versions", "acme/nothing")):
        out = lidr(served, "errors", *args)
        assert out.returncode == 2 and "dataset repository acme/nothing not found" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
