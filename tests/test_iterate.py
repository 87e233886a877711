"""`lidr iterate`: the self-improvement loop on the demo recipe and the tiny model, as a user runs it (a real
`lidr iterate` process whose steps are real `lidr build/train/eval` processes).

One loop is shared by the module (it costs a few minutes on CPU): it is killed with SIGKILL during M_1's training,
started again and killed during iteration 2's build, then started again and left to finish. Every child process
appends the request keys that reached the model to a file (tests/iterate_hook/sitecustomize.py), and the loop
logs each step it starts, so the tests count model calls and training runs across the kills.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from lidr_data.cli import main
from lidr_data.errors import LidrError
from lidr_data.files import sha256_file
from lidr_data.iterate import STATE, read_state

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo.yaml"
HOOK = Path(__file__).resolve().parent / "iterate_hook"


def _env(calls: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "LIDR_TEST_CALL_LOG": str(calls), "LIDR_DEBUG": ""}


def _start(recipe: Path, workdir: Path, calls: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lidr_data.cli", "iterate", str(recipe), "--iterations", "2",
                             "--workdir", str(workdir), *extra], env=_env(calls), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    """SIGKILL the loop and its step (one process group) as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the loop ended before {what}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _log(workdir: Path) -> list[str]:
    path = workdir / "iterate.log"
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()] if path.is_file() else []


def _started(workdir: Path) -> Counter:
    return Counter(line.split()[1] for line in _log(workdir) if line.startswith("start "))


def _calls(calls: Path) -> list[str]:
    return [line.split()[1] for line in calls.read_text().splitlines()] if calls.is_file() else []


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("iterate")
    workdir, calls = root / "w", root / "calls.txt"

    proc = _start(DEMO, workdir, calls)  # 1. killed while M_1 trains (its staging folder exists)
    _kill_when_ready = lambda: "start build:1" in _log(workdir)  # noqa: E731
    deadline = time.monotonic() + 300
    while not _kill_when_ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "lidr_data.cli", "iterate", str(DEMO), "--iterations", "2",
                             "--workdir", str(workdir)], env=_env(calls), cwd=ROOT, capture_output=True, text=True,
                            timeout=300)  # one loop per work folder at a time
    assert second.returncode == 2 and "another lidr iterate (pid" in " ".join(second.stderr.split()), second.stderr
    _kill_when(proc, lambda: (workdir / "models" / ".M1.partial").exists(), "M_1's training")
    assert "finished train:1" not in _log(workdir)
    proc = _start(DEMO, workdir, calls)  # 2. killed during iteration 2's build, once its answers are generated
    _kill_when(proc, lambda: (workdir / "runs" / "demo" / "iter-2" / "responses.parquet").exists(),
               "iteration 2's answers")
    assert "finished build:2" not in _log(workdir)
    calls_before_finish = len(_calls(calls))
    proc = _start(DEMO, workdir, calls)  # 3. finishes
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return {"workdir": workdir, "calls": calls, "output": out, "calls_before_finish": calls_before_finish}


def test_kills_lose_only_the_step_in_flight(loop):
    workdir, started = loop["workdir"], _started(loop["workdir"])
    # the killed training ran again (resumed or restarted); the killed build ran again; nothing else did
    assert started["train:1"] == 2 and started["build:2"] == 2, started
    once = ["build:1", "materialize:1", "eval-mgsm:M0", "eval-mgsm:M1", "materialize:2", "train:2", "eval-mgsm:M2"]
    assert all(started[step] == 1 for step in once), started
    finished = Counter(line.split()[1] for line in _log(workdir) if line.startswith("finished "))
    assert set(finished.values()) == {1} and len(finished) == 9, finished
    state = json.loads((workdir / "iterate.json").read_text())
    assert list(state["steps"]) == ["build:1", "materialize:1", "eval-mgsm:M0", "train:1", "eval-mgsm:M1",
                                    "build:2", "materialize:2", "train:2", "eval-mgsm:M2"]
    # no request reached a model twice: iteration 2's answers, generated before the kill, came from the cache
    keys = _calls(loop["calls"])
    assert keys and len(keys) == len(set(keys)), Counter(keys).most_common(3)
    assert len(keys) > loop["calls_before_finish"] > 0


def test_lineage_version_to_model_to_version(loop):
    w = loop["workdir"]
    v1, v2 = w / "store" / "demo" / "iter-1", w / "store" / "demo" / "iter-2"
    m1 = json.loads((v1 / "manifest.json").read_text())
    m2 = json.loads((v2 / "manifest.json").read_text())
    from lidr_data.dataset.layout import content_id

    assert m1["parent"] is None
    assert m2["parent"]["version"] == "iter-1" and m2["parent"]["content_id"] == content_id(m1)
    assert m2["parent"]["manifest_sha256"] == sha256_file(v1 / "manifest.json")
    assert m2["generator"]["model"] == "models/M1"
    assert m2["generator"]["train_manifest_sha256"] == sha256_file(w / "models" / "M1" / "train_manifest.json")
    assert m2["generator"]["trained_on"]["content_id"] == content_id(m1)
    train1 = json.loads((w / "models" / "M1" / "train_manifest.json").read_text())
    assert train1["dataset"]["version"] == "iter-1" and train1["dataset"]["content_id"] == content_id(m1)
    card = (w / "models" / "M1" / "README.md").read_text()
    assert "iter-1" in card and content_id(m1) in card
    # disjoint prompt slices: iteration 1 used items 0-4, iteration 2 items 5-9
    ids = [set(pl.read_parquet(w / "runs" / "demo" / f"iter-{t}" / "prompts.parquet")["prompt_id"]) for t in (1, 2)]
    assert ids[0] == {f"demo-{i}" for i in range(5)} and ids[1] == {f"demo-{i}" for i in range(5, 10)}


def test_summary_table_parquet_and_sql(loop, capsys):
    w = loop["workdir"]
    df = pl.read_parquet(w / "summary.parquet")
    assert df["iteration"].to_list() == [0, 1, 2]
    for t in (1, 2):
        row = df.row(t, named=True)
        pairs = pl.read_parquet(w / "runs" / "demo" / f"iter-{t}" / "pairs.parquet")
        dropped = pl.read_parquet(w / "runs" / "demo" / f"iter-{t}" / "dropped.parquet")
        assert row["pairs_kept"] == pairs.height
        for reason, n in Counter(dropped["reason"]).items():
            assert row[f"dropped_{reason}"] == n
        assert row["chosen_lang_agreement"] == pytest.approx((pairs["chosen_lang"] == pairs["lang"]).mean())
        metrics = json.loads((w / "models" / f"M{t}" / "train_manifest.json").read_text())["metrics"]
        assert row["final_loss"] == metrics["last_logged/loss"] and row["nll"] == metrics["last_logged/nll"]
        acc = pl.read_parquet(w / "eval" / f"mgsm-M{t}" / "summary.parquet").filter(pl.col("lang") == "es")
        before = pl.read_parquet(w / "eval" / f"mgsm-M{t - 1}" / "summary.parquet").filter(pl.col("lang") == "es")
        assert row["mgsm_accuracy_es"] == acc["accuracy"][0]
        assert row["mgsm_accuracy_es_change"] == pytest.approx(acc["accuracy"][0] - before["accuracy"][0])
    assert "lidr iterate: across iterations" in loop["output"] and "mgsm_accuracy_es_change" in loop["output"]
    capsys.readouterr()
    assert main(["sql", str(w), "SELECT iteration, pairs_kept FROM summary ORDER BY iteration", "--format",
                 "json"]) == 0
    assert [r["iteration"] for r in json.loads(capsys.readouterr().out)] == [0, 1, 2]
    folders = [str(w / "eval" / f"mgsm-M{t}") for t in (0, 1, 2)]
    assert main(["eval", "compare", *folders, "--format", "json"]) == 0
    assert set(json.loads(capsys.readouterr().out)[0]) == {"lang", "M0", "M1", "M2"}


@pytest.fixture(scope="module")
def removed_m1(loop):
    """`rm -rf W/models/M1`, then the same command again, started this time from W's parent with a relative
    --workdir (the loop was first started from the repository with an absolute one)."""
    w, calls = loop["workdir"], loop["calls"]
    old = {t: json.loads((w / "models" / f"M{t}" / "train_manifest.json").read_text()) for t in (1, 2)}
    before = _started(w)
    shutil.rmtree(w / "models" / "M1")
    done = subprocess.run([sys.executable, "-m", "lidr_data.cli", "iterate", str(DEMO), "--iterations", "2",
                           "--workdir", w.name], env=_env(calls), cwd=w.parent, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"again": _started(w) - before, "old": old}


def test_a_removed_model_reruns_every_step_made_from_it(loop, removed_m1):
    """Only train:1 reran: iteration 2's manifest then named a train_manifest_sha256 that no longer matched M1."""
    from lidr_data.dataset.layout import content_id

    w = loop["workdir"]
    assert removed_m1["again"] == Counter({"train:1": 1, "eval-mgsm:M1": 1, "build:2": 1, "materialize:2": 1,
                                           "train:2": 1, "eval-mgsm:M2": 1}), removed_m1["again"]
    m1 = w / "models" / "M1" / "train_manifest.json"
    v2 = json.loads((w / "store" / "demo" / "iter-2" / "manifest.json").read_text())
    assert v2["generator"]["train_manifest_sha256"] == sha256_file(m1)
    m2 = json.loads((w / "models" / "M2" / "train_manifest.json").read_text())
    assert m2["dataset"]["content_id"] == content_id(v2)
    assert m2["base_model"]["train_manifest_sha256"] == sha256_file(m1)
    assert main(["verify", str(w / "store" / "demo" / "iter-2")]) == 0


def _paths(train_manifest: dict) -> dict:
    lidr, dpo = train_manifest["settings"]["lidr"], train_manifest["settings"]["dpo"]
    return {"dataset": train_manifest["dataset"]["path"], "reference": train_manifest["dataset"]["reference"],
            "base": train_manifest["base_model"]["path"], "base_name": train_manifest["base_model"]["name_or_path"],
            **{k: lidr[k] for k in ("dataset", "model", "output")}, "output_dir": dpo["output_dir"]}


def test_train_manifest_paths_do_not_depend_on_the_launch_folder(loop, removed_m1):
    """They were relative to the folder `lidr iterate` was started from (`it/store/demo/iter-1` from one folder,
    `store/demo/iter-1` from another), so M_t's train-manifest hash changed with the caller's folder."""
    w = loop["workdir"]
    for t in (1, 2):
        new = json.loads((w / "models" / f"M{t}" / "train_manifest.json").read_text())
        assert _paths(new) == _paths(removed_m1["old"][t])
        assert _paths(new)["dataset"] == f"store/demo/iter-{t}" and _paths(new)["output"] == f"models/M{t}"
    assert _paths(new)["base"] == "models/M1"


def test_a_changed_setting_reruns_that_step_and_those_after(loop, tmp_path):
    """Runs last in this module: it changes the shared loop (a finished loop rerun first does nothing)."""
    w, calls = loop["workdir"], loop["calls"]
    before = _started(w)
    done = subprocess.run([sys.executable, "-m", "lidr_data.cli", "iterate", str(DEMO), "--iterations", "2",
                           "--workdir", str(w), "--format", "json"], env=_env(calls), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _started(w) == before and done.stderr.count("done earlier, skipped") == 9
    assert [r["iteration"] for r in json.loads(done.stdout)] == [0, 1, 2]  # stdout: the summary only
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["eval"]["mgsm"]["limit"] = 1  # only the evaluations depend on it
    changed = tmp_path / "demo.yaml"
    changed.write_text(yaml.safe_dump(recipe))
    n_calls = len(_calls(calls))
    proc = _start(changed, w, calls)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    again = _started(w) - before
    assert again == Counter({"eval-mgsm:M0": 1, "eval-mgsm:M1": 1, "eval-mgsm:M2": 1}), again
    assert len(_calls(calls)) == n_calls  # the first item of each language is in the eval caches already


def _recipe(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "expected"), [
    ({"train": {"learning_rat": 1e-4}}, "train.learning_rat: unknown setting"),
    ({"train": {"learning_rate": "fast"}}, "learning_rate"),
    ({"train": {"output": "x"}}, "train.output: set by lidr iterate"),
    ({"train": "no/such/train.yaml"}, "train: no/such/train.yaml: file not found"),
    ({"train": None}, "train: required by lidr iterate"),
    ({"eval": {"mgsm": {"langz": ["en"]}}}, "eval.mgsm.langz: unknown option"),
    ({"eval": {"mgsm": {"limit": "many"}}}, "eval.mgsm: argument limit: invalid int value: 'many'"),
    ({"eval": {"bleu": {}}}, "eval.bleu: unknown evaluation"),
    ({"eval": {"winrate": {"langs": ["en"], "judge": "length"}}}, "eval.winrate: the following arguments are "
                                                                   "required: reference"),
])
def test_invalid_train_or_eval_is_refused_before_iteration_1(tmp_path, capsys, changes, expected):
    recipe = _recipe(tmp_path, **changes)
    workdir = tmp_path / "w"
    assert main(["iterate", str(recipe), "--iterations", "2", "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert expected in " ".join(err.split()) and str(recipe) in " ".join(err.split()).replace("\n", ""), err
    assert "Traceback" not in err and not workdir.exists()


def test_a_secret_in_the_train_section_is_not_written(tmp_path, capsys):
    recipe = _recipe(tmp_path, train={"max_steps": 1, "hub_token": "hf_SecretDoNotWrite0123456789"})
    assert main(["iterate", str(recipe), "--iterations", "1", "--workdir", str(tmp_path / "w")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "train: a secret-looking value" in err and "hf_SecretDoNotWrite" not in err
    assert not any(b"hf_SecretDoNotWrite" in p.read_bytes() for p in (tmp_path / "w").rglob("*") if p.is_file())


@pytest.mark.parametrize(("changes", "field"), [
    ({"train": {"max_steps": 1, "hub_model_id": "https://hf_SECRETiter1@hub.example/org/m"}},
     "train: a secret-looking value (train.hub_model_id)"),
    ({"train": {"max_steps": 1, "hub_token": "plainSECRETiter2"}}, "train: a secret-looking value (train.hub_token)"),
    ({"eval": {"mgsm": {"data": "lidr:assets/demo-mgsm", "backend_option": ["base_url=http://u:pa/ssSECRETiter3@h/v1"]}}},
     "eval: a secret-looking value (eval.mgsm.backend_option)"),
    ({"eval": {"mgsm": {"data": "lidr:assets/demo-mgsm", "backend_option": ["api_key=SECRETiter4"]}}},
     "eval: a secret-looking value (eval.mgsm.backend_option)"),
])
def test_secrets_in_train_or_eval_are_refused_by_name_or_shape_and_never_written(tmp_path, capsys, changes, field):
    """iterate hands train:/eval: to its steps unredacted (a file in W, command-line words): a secret there, found by
    its name or the shape of its value, is refused before any step, and is neither printed nor written."""
    recipe = _recipe(tmp_path, **changes)
    workdir = tmp_path / "w"
    assert main(["iterate", str(recipe), "--iterations", "1", "--workdir", str(workdir)]) == 2
    printed = capsys.readouterr()
    assert field in " ".join(printed.err.split()) and "SECRET" not in printed.out + printed.err
    assert not (workdir / "iterate").exists() and not (workdir / "runs").exists()
    assert not [p for p in workdir.rglob("*") if p.is_file() and b"SECRET" in p.read_bytes()]


def test_a_training_yaml_path_is_accepted(tmp_path):
    from argparse import Namespace

    from lidr_data.commands.iterate import make_plan

    train = tmp_path / "train.yaml"
    shutil.copy(ROOT / "recipes" / "train-paper.yaml", train)
    recipe = _recipe(tmp_path, train=str(train))
    plan = make_plan(Namespace(recipe=str(recipe), iterations=1, workdir=tmp_path / "w", slice_size=None,
                               publish=None, executor="local", ray_address=None))
    assert plan.train["beta"] == 0.1 and plan.slice_size == 5 and plan.evals["mgsm"][:2] == ["--data", str(
        ROOT / "lidr_data" / "assets" / "demo-mgsm")]


def test_an_iteration_keeping_no_pair_stops_the_loop(tmp_path):
    # A random model never writes </translation>: with the closing tag required, every translation fails.
    recipe = _recipe(tmp_path, translation={"max_new_tokens": 8, "require_closing_tag": True}, eval=None)
    workdir, calls = tmp_path / "w", tmp_path / "calls.txt"
    proc = _start(recipe, workdir, calls)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 2, out
    text = " ".join(out.split())
    assert "iteration 1 kept 0 pairs" in text and "translation_failed" in text and "Traceback" not in out
    assert "before training on nothing" in text
    assert "start train:1" not in _log(workdir) and not (workdir / "models").exists()
    assert not (workdir / "store" / "demo" / "iter-1").exists()


@pytest.mark.slow
def test_publish_every_version_to_the_hub(tmp_path):
    """--publish: each version goes to a Hub repo (the loopback Hub-protocol server) as a commit and tag iter-t."""
    from servers.hub_server import HubServer

    token = "hf_TestTokenDoNotLeak0123456789"
    recipe = _recipe(tmp_path, eval=None)
    workdir = tmp_path / "w"
    with HubServer(token=token) as hub:
        env = {k: v for k, v in _env(tmp_path / "calls.txt").items()
               if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=token, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        out = subprocess.run([sys.executable, "-m", "lidr_data.cli", "iterate", str(recipe), "--iterations", "1",
                              "--workdir", str(workdir), "--publish", "acme/lidr-loop"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        repo = hub.repos["acme/lidr-loop"]
        assert "iter-1" in repo.tags
    assert list(json.loads((workdir / "iterate.json").read_text())["steps"]) == [
        "build:1", "materialize:1", "publish:1", "train:1"]
    assert token not in out.stdout + out.stderr
    assert not any(token in p.read_text(errors="ignore") for p in workdir.rglob("*") if p.is_file()
                   and p.suffix in (".json", ".yaml", ".log", ".md"))


def test_a_malformed_state_file_is_a_one_line_error(tmp_path):
    (tmp_path / STATE).write_text('{"steps": {,}}')
    with pytest.raises(LidrError) as err:
        read_state(tmp_path)
    assert str(err.value) == (f"{tmp_path / STATE}: malformed JSON (line 1, column 12: Expecting property name "
                              "enclosed in double quotes); remove it to start the loop over")
