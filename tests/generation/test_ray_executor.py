"""`--executor ray`: generation on a real 2-CPU Ray cluster (`ray start --head` on this machine), one cluster
shared by the module (Ray start-up and each actor's torch import are slow on 2 cores)."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

# Not imported here: Ray reads RAY_AUTH_MODE when first imported, which the cluster fixture sets.
if importlib.util.find_spec("ray") is None:
    pytest.skip("the [ray] extra is not installed (.ci/run installs it)", allow_module_level=True)

from ray_cluster import RayCluster  # noqa: E402
from ray_logging import logged, logging_loader, other_files_loader  # noqa: E402

from lidr_data.build.pipeline import build  # noqa: E402
from lidr_data.build.recipe import load_recipe  # noqa: E402
from lidr_data.cli import main  # noqa: E402
from lidr_data.errors import LidrError  # noqa: E402
from lidr_data.generation.base import Completion, Request, SamplingParams, TokenLogprob  # noqa: E402
from lidr_data.generation.ray_executor import (  # noqa: E402
    RayConfig,
    completion_from_json,
    completion_to_json,
    ray_loader,
    request_from_json,
    request_to_json,
)

pytestmark = pytest.mark.slow  # about a minute and a half for the module on 2 busy cores

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo.yaml"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(num_cpus=2) as c, pytest.MonkeyPatch.context() as mp:
        assert "ray" not in sys.modules, "ray was imported before its auth settings were set"
        for name, value in c.auth_env().items():  # this process is a driver too
            mp.setenv(name, value)
        yield c


@pytest.fixture(scope="module")
def local_run(tiny_model_dir, tmp_path_factory) -> Path:
    """The demo recipe built with the local executor: the reference every Ray run must equal."""
    workdir = tmp_path_factory.mktemp("local")
    assert main(["build", str(DEMO), "--model", str(tiny_model_dir), "--workdir", str(workdir), "--no-progress",
                 "--no-materialize", "--executor", "local"]) == 0
    return workdir / "runs" / "demo" / "iter-1"


ORDER = {"responses.parquet": ["prompt_id", "lang"], "translations.parquet": ["prompt_id", "src_lang", "tgt_lang"],
         "pairs.parquet": ["pair_id"]}


def table(run_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / name).sort(ORDER[name])


def same_tables(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Equal, but for language-ID scores in their last bits: lingua's multi-threaded detection is not
    bit-reproducible from run to run, whatever the executor."""
    scores = [c for c in a.columns if c.endswith("_lang_score")]
    if a.drop(scores).columns != b.drop(scores, strict=False).columns or not a.drop(scores).equals(b.drop(scores)):
        return False
    return all(a[c].is_null().equals(b[c].is_null()) and ((a[c] - b[c]).abs().max() or 0.0) < 1e-9 for c in scores)


def cache_keys(run_dir: Path) -> set[str]:
    db = sqlite3.connect(f"file:{run_dir / 'cache' / 'requests.sqlite'}?mode=ro", uri=True)
    try:
        return {k for (k,) in db.execute("SELECT request_key FROM completions")}
    except sqlite3.OperationalError:  # the build is still creating the file
        return set()
    finally:
        db.close()


def test_requests_and_completions_cross_the_wire_unchanged():
    r = Request.from_messages("Translate <x>", SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=7,
                                                              repetition_penalty=1.0, seed=3, top_logprobs=2),
                              system_prompt="Be brief.", assistant_prefix="<translation>", sample_index=4)
    assert request_from_json(request_to_json(r)) == r
    c = Completion("Olá ✓", "length", 7, "m", "rev", logprobs=(TokenLogprob("Ol", -0.5, (("Ol", -0.5), ("X", -2.0))),))
    failed = Completion("", "error", 0, "m", "rev", error="boom")
    assert [completion_from_json(completion_to_json(x)) for x in (c, failed)] == [c, failed]


def test_build_on_ray_equals_local_and_a_rerun_calls_no_model(cluster, local_run, tiny_model_dir, tmp_path):
    workdir = tmp_path / "ray"
    assert main(["build", str(DEMO), "--model", str(tiny_model_dir), "--workdir", str(workdir), "--no-progress",
                 "--no-materialize", "--executor", "ray", "--ray-address", cluster.address,
                 "--ray-workers", "2"]) == 0
    run_dir = workdir / "runs" / "demo" / "iter-1"
    for name in ("responses.parquet", "translations.parquet", "pairs.parquet"):
        assert same_tables(table(run_dir, name), table(local_run, name)), name
    assert cache_keys(run_dir) == cache_keys(local_run)

    # Every stage reruns (its state is gone), but every request is in the cache: no worker generates anything.
    (run_dir / "state.json").unlink()
    log = tmp_path / "calls.log"
    loader = ray_loader(RayConfig(address=cluster.address, workers=2), load=logging_loader(log))
    build(load_recipe(DEMO), workdir=workdir, model=str(tiny_model_dir), load_generator=loader)
    assert logged(log) == []
    assert same_tables(table(run_dir, "pairs.parquet"), table(local_run, "pairs.parquet"))


def test_a_killed_ray_build_resumes_without_making_a_committed_request_again(cluster, local_run, tiny_model_dir,
                                                                            tmp_path):
    recipe = tmp_path / "demo.yaml"  # small batches, so the cache commits many times during the run
    recipe.write_text(DEMO.read_text().replace("batch_size: 16", "batch_size: 2"))
    workdir, logs = tmp_path / "w", [tmp_path / "calls-1.log", tmp_path / "calls-2.log"]
    run_dir = workdir / "runs" / "demo" / "iter-1"

    def driver(log: Path, delay: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(HERE / "ray_build_driver.py"), str(recipe), str(workdir),
                                 str(tiny_model_dir), cluster.address, str(log), str(delay)],
                                env=cluster.env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    first = driver(logs[0], delay=0.4)
    deadline = time.monotonic() + 300
    while not ((run_dir / "cache").is_dir() and len(cache_keys(run_dir)) >= 6):
        assert first.poll() is None, f"the build ended before it could be killed:\n{first.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no request committed within 300 s"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    at_kill = cache_keys(run_dir)
    assert not (run_dir / "translations.parquet").exists()  # killed during generation

    second = driver(logs[1], delay=0.0)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]
    final = cache_keys(run_dir)
    made_first, made_again = set(logged(logs[0])), logged(logs[1])
    print(f"committed at the kill {len(at_kill)}, generated by the killed run {len(made_first)}, "
          f"by the rerun {len(made_again)}, in all {len(final)}")
    assert at_kill <= made_first  # what was committed was generated by the killed run's workers
    assert not set(made_again) & at_kill  # and none of it was generated again
    assert len(made_again) == len(set(made_again)) and set(made_again) == final - at_kill  # the misses, once each
    assert same_tables(table(run_dir, "pairs.parquet"), table(local_run, "pairs.parquet"))


def test_generate_on_ray_writes_what_local_writes(cluster, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(f'{{"id": {i}, "prompt": "Hello number {i}"}}\n' for i in range(12)))
    common = ["generate", "--model", str(tiny_model_dir), "--input", str(prompts), "--max-new-tokens", "8",
              "--batch-size", "3", "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "local.parquet")]) == 0
    assert main([*common, "--output", str(tmp_path / "ray.parquet"), "--executor", "ray", "--ray-address",
                 cluster.address, "--ray-workers", "2"]) == 0
    assert pl.read_parquet(tmp_path / "ray.parquet").equals(pl.read_parquet(tmp_path / "local.parquet"))


def test_a_worker_with_other_model_files_is_refused(cluster, tiny_model_dir, tmp_path):
    generator = ray_loader(RayConfig(address=cluster.address, workers=1), load=other_files_loader())(
        "transformers", str(tiny_model_dir))
    try:
        with pytest.raises(LidrError, match="the model files differ between nodes"):
            generator.generate([Request.from_messages("Hello")])
    finally:
        generator.close()


def test_a_pool_the_cluster_cannot_hold_is_refused_not_waited_for(cluster, tiny_model_dir, capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": 1, "prompt": "Hello"}\n')
    assert main(["generate", "--model", str(tiny_model_dir), "--input", str(prompts), "--output",
                 str(tmp_path / "o.parquet"), "--no-progress", "--executor", "ray", "--ray-address", cluster.address,
                 "--ray-workers", "3"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: the Ray cluster has 0 GPU(s) and 2 CPU(s): not enough for 3 worker(s) with 0 GPU(s) and 1 CPU(s) "
        "each")
    assert not (tmp_path / "o.parquet").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_nothing_listens_at_is_a_one_line_error(tiny_model_dir, tmp_path, capsys):
    args = ["build", str(DEMO), "--model", str(tiny_model_dir), "--workdir", str(tmp_path), "--no-progress",
            "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: Ray cluster at {args[-1]} does not answer"), err
    assert not (tmp_path / "runs" / "demo" / "iter-1" / "responses.parquet").exists()


def test_an_address_that_is_not_ray_times_out_with_a_clear_error(tmp_path):
    # Something listens but never speaks Ray's protocol: ray.init alone would retry for minutes. In its own
    # process: the abandoned connection attempt must not linger in the test process.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        code = ("from lidr_data.generation.ray_executor import RayConfig, connect\n"
                "from lidr_data.errors import LidrError\n"
                f"try:\n    connect(RayConfig(address={address!r}, connect_timeout_s=3))\n"
                "except LidrError as e:\n    print('LidrError:', e)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env=RayCluster().env())
    assert f"LidrError: Ray cluster at {address} did not answer within 3s" in proc.stdout, proc.stderr[-2000:]


def test_ray_options_need_the_ray_executor_and_a_model_backend(tiny_model_dir, tmp_path, capsys):
    assert main(["build", str(DEMO), "--workdir", str(tmp_path), "--ray-address", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --ray-address needs --executor ray"
    with pytest.raises(LidrError, match="--executor ray runs the transformers or vllm backend, not 'openai'"):
        ray_loader()("openai", "m", base_url="http://127.0.0.1:1/v1")


def _iterate_recipe(tmp_path: Path, model: Path) -> Path:
    """The demo recipe with the module's tiny model and no evaluation (this test is about the build steps)."""
    import yaml

    recipe = yaml.safe_load(DEMO.read_text())
    recipe.update(model=str(model))
    recipe.pop("eval")
    path = tmp_path / "iterate.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_iterate_runs_its_build_steps_on_the_ray_cluster(cluster, local_run, tiny_model_dir, tmp_path, capfd):
    """`lidr iterate --executor ray --ray-address A` passes both to every build step: iteration 1 on the cluster
    builds what the local executor built. With an address nothing listens at, the first build step fails on Ray's
    one-line error and the loop records no step."""
    recipe = _iterate_recipe(tmp_path, tiny_model_dir)
    workdir = tmp_path / "w"
    assert main(["iterate", str(recipe), "--iterations", "1", "--workdir", str(workdir), "--executor", "ray",
                 "--ray-address", cluster.address]) == 0
    run_dir = workdir / "runs" / "demo" / "iter-1"
    for name in ("responses.parquet", "translations.parquet", "pairs.parquet"):
        assert same_tables(table(run_dir, name), table(local_run, name)), name
    assert (workdir / "models" / "M1" / "train_manifest.json").is_file()

    dead, address = tmp_path / "dead", f"127.0.0.1:{_free_port()}"
    capfd.readouterr()
    assert main(["iterate", str(recipe), "--iterations", "1", "--workdir", str(dead), "--executor", "ray",
                 "--ray-address", address]) == 2
    err = capfd.readouterr().err  # the build step's own stderr (a child process), then the loop's line
    assert f"error: Ray cluster at {address} does not answer" in err and "step build:1 failed" in err
    record = dead / "iterate.json"  # written once a step finishes: none did
    assert not record.exists() or json.loads(record.read_text()).get("steps", {}) == {}
    assert not (dead / "runs" / "demo" / "iter-1" / "responses.parquet").exists()
