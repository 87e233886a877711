"""The output folder of `lidr train`: where it is staged, what it records, how it appears and is published.

The run writes into `<parent>/.<name>.partial/` (checkpoints under `checkpoints/`, the finished model under
`model/`) and the model folder is renamed to `--output` only when everything in it is written: a killed run leaves
no half model at `--output`, and `--resume` finds its checkpoints in the same `.partial` folder.
"""

from __future__ import annotations

import json
import platform
import re
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lidr_data.dataset.hub import _hub_error, with_retries
from lidr_data.errors import LidrError
from lidr_data.files import portable, sha256_file

TRAIN_MANIFEST = "train_manifest.json"
CARD = "README.md"
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "adapter_config.json", TRAIN_MANIFEST)
_LIBRARIES = ("lidr-data", "torch", "transformers", "trl", "datasets", "accelerate", "peft", "huggingface_hub")


def staging_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def check_output(output: Path, overwrite: bool, resume: bool) -> None:
    """Refuse an output folder that already holds something (a model above all) unless --overwrite, and an
    unfinished run's staging folder unless --resume (or --overwrite, which starts over)."""
    if output.exists():
        if not output.is_dir():
            raise LidrError(f"--output {output}: exists and is not a folder")
        holds_model = any((output / f).exists() for f in _MODEL_FILES)
        if (holds_model or any(output.iterdir())) and not overwrite:
            what = "already holds a model" if holds_model else "is not empty"
            raise LidrError(f"--output {output}: {what} (pass --overwrite to replace it)")
    stage = staging_dir(output)
    if stage.exists() and not (resume or overwrite):
        raise LidrError(f"{stage}: an unfinished run of this output is there; --resume continues it, "
                        "--overwrite starts over")
    if resume and not stage.exists():
        raise LidrError(f"--resume: no unfinished run at {stage}")


def last_checkpoint(output: Path) -> str | None:
    """The newest complete checkpoint of the unfinished run. The Trainer writes `trainer_state.json` last, so a
    checkpoint that a kill caught mid-write (no state file, or a cut one) is passed over, not resumed from."""
    folder = staging_dir(output) / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return str(path)
    return None


def base_lineage(model: Path) -> dict:
    """When the base model was itself made by `lidr train` (iteration t > 1): which run, on which version."""
    path = model / TRAIN_MANIFEST
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        dataset = previous.get("dataset", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {"train_manifest_sha256": sha256_file(path)}
    return {"train_manifest_sha256": sha256_file(path), "trained_on": {
        k: dataset.get(k) for k in ("reference", "commit", "content_id")}}


def base_license(model: str, revision: str | None = None) -> str | None:
    """The license the base model declares: its card's metadata (README.md `license:`), else its config.json's
    `license`; a local folder's, or a Hub model's card when it can be had (the Hub cache, or the Hub when online).
    None when unknown. The dataset's license never stands in for it: a Llama 3 fine-tune stays under Llama 3's."""
    folder = Path(model).expanduser()
    card = folder / CARD if folder.is_dir() else None
    if card is None and not folder.exists():
        try:
            from huggingface_hub import hf_hub_download

            card = Path(hf_hub_download(model, CARD, revision=revision))
        except Exception:  # noqa: BLE001 (offline, no card, no such repo: the license is unknown)
            card = None
    found = None
    if card is not None and card.is_file():
        try:
            from huggingface_hub import metadata_load

            found = (metadata_load(card) or {}).get("license")
        except Exception:  # noqa: BLE001 (a card without readable metadata declares nothing)
            found = None
    if found is None and folder.is_dir() and (folder / "config.json").is_file():
        try:
            found = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("license")
        except (OSError, ValueError, AttributeError):
            found = None
    return found if isinstance(found, str) and re.fullmatch(r"[\w.+-]+", found) else None


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def train_manifest(*, dataset: dict, base_model: dict, objective: dict, settings: dict, data: dict,
                   metrics: dict, lora: bool) -> dict:
    """The lineage record of a training run (dataset version by content id -> base model -> this model)."""
    return _jsonable({
        "schema_version": 1,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "base_model": base_model,
        "objective": objective,
        "lora": lora,
        "data": data,
        "settings": settings,
        "libraries": library_versions(),
        "metrics": metrics,
    })


def local_names(workdir: Path, paths: dict[str, str]) -> dict[str, str]:
    """{absolute local path: the name it is published under} for `paths` ({path as typed: its published
    name}), each as typed, expanded and resolved, since libraries write whichever form they were given. Hub ids
    and relative paths are no local layout: they are kept as they are."""
    out: dict[str, str] = {}
    for typed, name in paths.items():
        if not typed.startswith(("/", "~")) and not Path(typed).exists():
            continue  # a Hub id or a packaged path
        for form in (typed, str(Path(typed).expanduser()), str(Path(typed).expanduser().resolve())):
            if form.startswith("/") and form != name:
                out.setdefault(form, name)
    return out


def portable_manifest(manifest: dict, workdir: Path, names: dict[str, str]) -> dict:
    """`manifest` as it may be published: a path in `names` becomes its name there, any other absolute path is
    named relative to the work folder when inside it, else by its last part (`files.portable`)."""

    def walk(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if isinstance(obj, str):
            return names[obj] if obj in names else portable(obj, workdir)
        return obj

    return walk(manifest)


def scrub_folder(folder: Path, names: dict[str, str]) -> list[str]:
    """Rewrite the local paths in `names` to their published names in the text files that libraries wrote into
    the model folder (PEFT's adapter_config.json and card name the base model by the path it was given), and
    remove `training_args.bin` (a pickle of the Trainer's arguments, local folders included: every setting is in
    train_manifest.json as JSON). Returns the files changed, relative to `folder`."""
    changed = []
    ordered = sorted(names, key=len, reverse=True)  # a longer path first: never a prefix of it
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name == "training_args.bin":
            path.unlink()
            changed.append(path.relative_to(folder).as_posix())
            continue
        if path.suffix not in (".json", ".md", ".txt", ".jinja", ".yaml", ".yml"):
            continue
        text = original = path.read_text(encoding="utf-8")
        for local in ordered:
            text = text.replace(local, names[local])
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path.relative_to(folder).as_posix())
    return changed


def write_train_manifest(folder: Path, manifest: dict) -> None:
    (folder / TRAIN_MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def model_card(manifest: dict, languages: list[str]) -> str:
    """README.md of the trained model: Hub metadata via `huggingface_hub.ModelCard` (not TRL's card, which writes
    "fine-tuned version of [None]" for a local base) and a body naming the dataset version by content id."""
    from huggingface_hub import ModelCard, ModelCardData

    ds, base, obj = manifest["dataset"], manifest["base_model"], manifest["objective"]
    hub_base = base.get("hub_id")
    # The model's license is the base model's (or --license), never the dataset's.
    given = manifest["settings"]["lidr"].get("license")
    license_id = given or base.get("license")
    if given:
        license_text = f"`{given}` (given with `--license`)."
    elif license_id:
        license_text = f"`{license_id}`, as the base model declares it."
    else:
        license_text = ("Not determined: the base model declares no license that `lidr train` could read; the "
                        "training data's license does not decide the model's. Check the base model's terms, or "
                        "train with `--license ID`.")
    data = ModelCardData(
        base_model=hub_base,
        base_model_relation="finetune" if hub_base else None,
        datasets=[ds["repo_id"]] if ds.get("repo_id") else None,
        language=languages or None,
        license=license_id,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["lidr", "lidr-data", "dpo", "trl", "multilingual"] + (["lora"] if manifest["lora"] else []),
        lidr_dataset={"reference": ds["reference"], "revision": ds.get("revision"), "commit": ds.get("commit"),
                      "content_id": ds["content_id"]},
    )
    where = f"`{ds['repo_id']}` at revision `{ds['revision']}` (commit `{ds['commit']}`)" if ds.get("repo_id") \
        else f"the local version `{ds['path']}`"
    base_text = f"[`{hub_base}`](https://huggingface.co/{hub_base})" if hub_base else f"the local model `{base['path']}`"
    metrics = manifest.get("metrics") or {}
    shown = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                      for k, v in sorted(metrics.items()))
    body = f"""
# {Path(manifest['settings']['lidr'].get('output') or 'model').name}

Fine-tuned from {base_text} with DPO plus an NLL term on the chosen response (LIDR, Language Imbalance Driven
Rewarding), by `lidr train` (lidr-data {manifest['libraries'].get('lidr-data')}, TRL {manifest['libraries'].get('trl')}).

## Training data

Dataset `{ds['name']}` version `{ds['version']}`, subset `{manifest['data']['subset']}`: {where}.
Reference: `{ds['reference']}`. Content id (sha256 of the version's manifest): `{ds['content_id']}`.
{manifest['data']['train_pairs']} training pairs, {manifest['data']['eval_pairs']} held out for evaluation.

## Objective

DPO (sigmoid, beta = {obj['beta']}) + {obj['nll_weight']} x NLL of the chosen response, normalized per
{obj['nll_normalization']}{' (the paper' + "'" + 's: -log p(chosen|prompt)/|chosen|, averaged over pairs)' if obj['nll_normalization'] == 'sequence' else ' (TRL' + "'" + 's `sft` term: a token mean over the batch)'}.
The reference model is the starting model{' (the base with the LoRA adapter disabled); the adapter is merged into this model and kept in `adapter/`' if manifest['lora'] else ''}.

## License

{license_text}

## Final metrics

| metric | value |
|---|---|
{shown}

`train_manifest.json` records the dataset reference, revision, content id, base model, every setting and the
library versions.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def push_folder(folder: Path, repo_id: str, message: str) -> str:
    """Upload the finished model folder to the Hub as one commit; return the commit id."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    ops = [CommitOperationAdd(p.relative_to(folder).as_posix(), str(p))
           for p in sorted(folder.rglob("*")) if p.is_file()]
    try:
        with_retries(repo_id, lambda: api.create_repo(repo_id, repo_type="model", exist_ok=True))
        commit = with_retries(repo_id, lambda: api.create_commit(repo_id, ops, repo_type="model",
                                                                 commit_message=message))
    except Exception as e:  # noqa: BLE001 (mapped to one line, never with the token)
        raise _hub_error(e, repo_id) from None
    return commit.oid
