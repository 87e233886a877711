"""`lidr train org/name@iter-1 ... --push-to org/model` against the loopback Hub stand-in.

Real: `lidr publish` and the trainer run as subprocesses with the real huggingface_hub client, whose HF_ENDPOINT
points at tests/servers/hub_server.py on 127.0.0.1 (read at import, hence subprocesses); TRL training steps on
the tiny model. The server records what it received, so the test checks the pushed commit byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from leaks import files_holding
from servers.hub_server import HubServer
from train_helpers import mean_margin

import lidr_data
from lidr_data.dataset.layout import content_id

TOKEN = "hf_TrainTokenDoNotLeak0123456789"


def _env(hub: HubServer, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", CUDA_VISIBLE_DEVICES="",
               OMP_NUM_THREADS="1", NO_COLOR="1")
    env.pop("HF_DATASETS_CACHE", None)
    return env


@pytest.mark.slow
def test_train_from_a_hub_reference_and_push_the_model(built_version, tiny_model_dir, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "M1"
    with HubServer(token=TOKEN) as hub:
        env = _env(hub, tmp_path)
        pub = subprocess.run([sys.executable, "-m", "lidr_data.cli", "publish", str(built_version), "--to",
                              "acme/demo-lidr"], env=env, capture_output=True, text=True, timeout=120)
        assert pub.returncode == 0, pub.stderr
        tag_commit = hub.repos["acme/demo-lidr"].tags["iter-1"]
        run = subprocess.run(
            [sys.executable, "-m", "lidr_data.train", "acme/demo-lidr@iter-1", "--model", str(tiny_model_dir),
             "--output", str(out), "--max_steps", "5", "--learning_rate", "1e-3", "--per_device_train_batch_size",
             "4", "--max_length", "256", "--save_strategy", "no", "--push-to", "acme/tiny-lidr-dpo"],
            env=env, capture_output=True, text=True, timeout=400)
        assert run.returncode == 0, run.stderr[-3000:]
        model_repo = hub.repos["acme/tiny-lidr-dpo"]

    manifest = json.loads((out / "train_manifest.json").read_text())
    ds = manifest["dataset"]
    hub_manifest = json.loads(hub.repos["acme/demo-lidr"].resolve("iter-1")["files"]["manifest.json"])
    assert (ds["reference"], ds["repo_id"], ds["revision"], ds["commit"]) == \
        ("acme/demo-lidr@iter-1", "acme/demo-lidr", "iter-1", tag_commit)
    assert ds["content_id"] == content_id(hub_manifest)
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["acme/demo-lidr"] and card.data.lidr_dataset["commit"] == tag_commit
    assert "acme/demo-lidr" in card.text and tag_commit in card.text and ds["content_id"] in card.text

    # One commit of the finished folder (after the repo's initial .gitattributes), byte for byte.
    assert model_repo.kind == "model" and len(model_repo.commits) == 2
    files = model_repo.commits[1]["files"]
    local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local
    assert "pushed to acme/tiny-lidr-dpo" in run.stdout
    assert TOKEN not in run.stdout + run.stderr and all(TOKEN.encode() not in v for v in local.values())

    # The DPO margin on the training pairs went up (the pairs are the published version's).
    tokenizer = AutoTokenizer.from_pretrained(out)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in lidr_data.load_version(str(built_version))]
    trained = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert mean_margin(trained, base, tokenizer, rows) > 0.5


@pytest.mark.slow
def test_a_pushed_model_names_no_local_path(built_version, tiny_model_dir, tmp_path, tmp_path_factory):
    """A model trained from a local version on a local base (LoRA: the adapter names its base too) and pushed:
    nothing uploaded holds a path of this machine. Paths inside the work folder (the current directory) are
    relative to it; others are named by their last parts (`demo/iter-1`, the model folder's name)."""
    from huggingface_hub import ModelCard

    work = tmp_path / "work"
    work.mkdir()
    with HubServer(token=TOKEN) as hub:
        run = subprocess.run(
            [sys.executable, "-m", "lidr_data.train", str(built_version), "--model", str(tiny_model_dir),
             "--output", str(work / "models" / "M1"), "--max_steps", "2", "--per_device_train_batch_size", "4",
             "--max_length", "256", "--save_strategy", "no", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
             "--lora_target_modules", "q_proj", "v_proj", "--push-to", "acme/tiny-lidr-lora"],
            env=_env(hub, tmp_path), cwd=work, capture_output=True, text=True, timeout=400)
        assert run.returncode == 0, run.stderr[-3000:]
        pushed = hub.repos["acme/tiny-lidr-lora"].commits[-1]["files"]
    uploaded = tmp_path / "uploaded"
    for name, data in pushed.items():
        (uploaded / name).parent.mkdir(parents=True, exist_ok=True)
        (uploaded / name).write_bytes(data)
    assert "adapter/adapter_config.json" in pushed and "train_manifest.json" in pushed
    for local in {str(tmp_path_factory.getbasetemp()), str(Path.cwd()), str(Path.home())}:
        assert files_holding(uploaded, local) == [], (local, files_holding(uploaded, local))

    manifest = json.loads(pushed["train_manifest.json"])
    ds, base = manifest["dataset"], manifest["base_model"]
    assert (ds["reference"], ds["path"]) == ("demo/iter-1", "demo/iter-1")  # outside the work folder
    assert ds["content_id"] == content_id(json.loads((built_version / "manifest.json").read_text()))
    assert base["path"] == base["name_or_path"] == tiny_model_dir.name
    assert manifest["settings"]["lidr"]["output"] == "models/M1"  # inside the work folder: relative to it
    card = ModelCard.load(uploaded / "README.md")
    assert "the local version `demo/iter-1`" in card.text and f"the local model `{tiny_model_dir.name}`" in card.text
