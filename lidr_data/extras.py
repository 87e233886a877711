"""Optional extras: the core install (`pip install lidr-data`) reads, queries, inspects and publishes versions and
runs the OpenAI-compatible backend without torch; models need an extra. Code that needs one calls `require`
before its lazy imports, so a missing package is a one-line error naming the extra instead of a traceback."""

from __future__ import annotations

import importlib

from lidr_data.errors import LidrError

# package imported -> the extra (pyproject.toml [project.optional-dependencies]) that installs it
EXTRA_OF = {
    "torch": "generate",
    "transformers": "generate",
    "tokenizers": "generate",
    "gguf": "generate",  # reading the GGUF of `lidr model smollm2`
    "accelerate": "generate",  # transformers needs it to load a GGUF (and trl to train)
    "trl": "train",
    "peft": "train",
    "vllm": "vllm",
    "ray": "ray",
    "sacrebleu": "eval",
}


def require(*modules: str, purpose: str) -> None:
    """Import `modules` (top-level package names from EXTRA_OF), or raise a LidrError naming the extra to install.

    Only a module that is missing itself is reported this way: an ImportError from inside an installed package
    (a broken install) propagates unchanged, since installing the extra would not fix it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] != name:
                raise
            extra = EXTRA_OF[name]
            raise LidrError(f"{purpose} needs the optional extra: pip install 'lidr-data[{extra}]' "
                            f"({name} is not installed)") from e
