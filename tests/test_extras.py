"""The core install: `lidr sql`, `inspect`, `versions`, `verify`, `materialize`, a local `publish` and the
OpenAI-compatible backend run without torch, transformers, trl, accelerate, peft, vLLM or Ray; a command that
needs one says which extra to install.
Each `lidr` runs in a subprocess where importing those packages fails (and is recorded), as in a core install.
(.ci/run also checks a real fresh venv with `pip install .`.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from servers.openai_server import OpenAIServer
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.errors import LidrError
from lidr_data.extras import EXTRA_OF, require

# Runs `lidr ARGS...` with every package of an extra unimportable, as in a core install: None in sys.modules,
# so availability probes (polars asks importlib.util.find_spec about torch) answer "not installed" and imports
# fail. Each import attempted anyway is recorded in the file $LIDR_TEST_ATTEMPTS, so code that swallows the
# ImportError cannot hide it.
CORE_ONLY = textwrap.dedent("""
    import builtins, importlib, os, sys
    BLOCKED = set(os.environ["LIDR_TEST_BLOCKED"].split())
    attempts = []
    for name in BLOCKED:
        sys.modules[name] = None
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in BLOCKED:
            attempts.append(name)
        return real_import(name, globals, locals, fromlist, level)

    def recording_import_module(name, package=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
        return real_import_module(name, package)

    builtins.__import__, importlib.import_module = recording_import, recording_import_module
    from lidr_data.cli import main
    try:
        code = main(sys.argv[1:])
    finally:
        with open(os.environ["LIDR_TEST_ATTEMPTS"], "w") as f:
            f.write("\\n".join(attempts))
    sys.exit(code)
""")


def lidr_core(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    attempts = tmp_path / "attempts.txt"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "LIDR_TEST_BLOCKED": " ".join(sorted(EXTRA_OF)), "LIDR_TEST_ATTEMPTS": str(attempts), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", CORE_ONLY, *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    return proc, [a for a in attempts.read_text().splitlines() if a]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("core") / "runs" / "demo-lidr" / "iter-1", n_prompts=6)


@pytest.fixture(scope="module")
def version(run_dir: Path) -> Path:
    return materialize(run_dir, run_dir.parents[2] / "store", progress=False)


def test_sql_inspect_versions_verify_without_the_extras(version: Path, tmp_path: Path):
    proc, attempts = lidr_core(tmp_path, "sql", str(version), "SELECT count(*) AS n FROM pairs", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": 31}] and attempts == []

    html = tmp_path / "report.html"
    proc, attempts = lidr_core(tmp_path, "inspect", str(version), "--format", "json", "--html", str(html))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pairs"] == 31 and html.stat().st_size > 0 and attempts == []

    proc, attempts = lidr_core(tmp_path, "versions", str(version.parent), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["pairs"] == 31 and attempts == []
    proc, attempts = lidr_core(tmp_path, "verify", str(version))
    assert proc.returncode == 0 and "hashes and counts match" in proc.stdout and attempts == []


def test_materialize_and_publish_to_a_local_store_without_the_extras(run_dir: Path, tmp_path: Path):
    proc, attempts = lidr_core(tmp_path, "materialize", str(run_dir), "--store", str(tmp_path / "store"))
    assert proc.returncode == 0, proc.stderr
    made = tmp_path / "store" / "demo-lidr" / "iter-1"
    assert (made / "manifest.json").is_file() and attempts == []
    proc, attempts = lidr_core(tmp_path, "publish", str(made), "--to", str(tmp_path / "other"))
    assert proc.returncode == 0, proc.stderr
    proc, attempts = lidr_core(tmp_path, "verify", str(tmp_path / "other" / "demo-lidr" / "iter-1"))
    assert proc.returncode == 0 and "hashes and counts match" in proc.stdout and attempts == []


def test_openai_backend_generates_without_the_extras(tmp_path: Path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "Hello"}\n{"id": "b", "prompt": "Hallo"}\n')
    out = tmp_path / "out.parquet"
    with OpenAIServer(handler=lambda body: "Bonjour.", model_name="m") as server:
        proc, attempts = lidr_core(tmp_path, "generate", "--backend", "openai", "--model", "m", "--input",
                                   str(prompts), "--output", str(out), "-O", f"base_url={server.base_url}",
                                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(out).column("text").to_pylist() == ["Bonjour.", "Bonjour."] and attempts == []


@pytest.mark.parametrize(("args", "extra", "missing"), [
    (["tiny-model", "{tmp}/tiny"], "generate", "torch"),
    (["generate", "--model", "{tmp}/model", "--input", "{tmp}/p.jsonl", "--output", "{tmp}/o.parquet"],
     "generate", "torch"),
    (["generate", "--backend", "vllm", "--model", "{tmp}/model", "--input", "{tmp}/p.jsonl", "--output",
      "{tmp}/o.parquet"], "vllm", "vllm"),
    (["train", "{tmp}/v", "--model", "{tmp}/model", "--output", "{tmp}/o"], "train", "trl"),
    (["generate", "--executor", "ray", "--model", "{tmp}/model", "--input", "{tmp}/p.jsonl", "--output",
      "{tmp}/o.parquet"], "ray", "ray"),
    # before any stage runs (issue 20: it came after the prompts stage and the model)
    (["build", "lidr:assets/demo.yaml", "--executor", "ray", "--workdir", "{tmp}/w"], "ray", "ray"),
    (["iterate", "lidr:assets/demo.yaml", "--iterations", "1", "--executor", "ray", "--workdir", "{tmp}/w"], "ray",
     "ray"),
])
def test_a_command_that_needs_an_extra_names_it(tmp_path: Path, args: list[str], extra: str, missing: str):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "Hello"}\n')
    proc, attempts = lidr_core(tmp_path, *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2 and attempts == [missing]
    assert proc.stderr.strip().splitlines() == [
        f"error: {proc.stderr.split('error: ')[1].split(' needs ')[0]} needs the optional extra: "
        f"pip install 'lidr-data[{extra}]' ({missing} is not installed)"]
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "o.parquet").exists()
    assert not (tmp_path / "w").exists()  # nothing built


def test_require_reports_only_a_missing_package_not_a_broken_one(tmp_path: Path, monkeypatch):
    (tmp_path / "lidr_broken_pkg").mkdir()
    (tmp_path / "lidr_broken_pkg" / "__init__.py").write_text("import lidr_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(EXTRA_OF, "lidr_broken_pkg", "generate")
    monkeypatch.setitem(EXTRA_OF, "lidr_absent_pkg", "train")
    with pytest.raises(LidrError, match=r"^training needs the optional extra: pip install 'lidr-data\[train\]' "
                                        r"\(lidr_absent_pkg is not installed\)$"):
        require("lidr_absent_pkg", purpose="training")
    with pytest.raises(ModuleNotFoundError, match="lidr_no_such_dependency"):
        require("lidr_broken_pkg", purpose="training")
    require("json", purpose="reading JSON")  # present: no error
