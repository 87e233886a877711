"""Optional extras: the core install (`pip install lidr-data`) reads, queries, inspects and publishes versions and
runs the OpenAI-compatible backend without torch; models need an extra. Code that needs one calls `require`
before its lazy imports, so a missing package is a one-line error naming the extra instead of a traceback."""

from __future__ import annotations

import importlib
import warnings

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


# What each generation backend imports when it loads (its class calls `require` with the same modules), and what
# the driver of `--executor ray` needs (the actors load the backend; the driver reads the tokenizer).
BACKEND_MODULES = {"transformers": ("torch", "transformers"), "vllm": ("vllm",), "openai": ()}


def require_generation(backend: str | None, executor: str = "local") -> None:
    """Check, before anything is read or loaded, that this process can run `backend` (or drive it on Ray):
    a missing extra is one line at once, not after the prompts are read and a model is loaded."""
    if executor == "ray":
        require("ray", purpose="--executor ray")
        require("transformers", purpose="--executor ray (the driver computes request keys from the tokenizer)")
        return
    modules = BACKEND_MODULES.get(backend or "", ())
    if modules:
        require(*modules, purpose=f"the {backend} backend")


def quiet_transformers(all_bars: bool = False) -> None:
    """Keep transformers' own output out of lidr's: no bars of its own ("Loading weights", "Writing model
    shards": lidr draws its own bars) and no deprecation warning about its internals, which a user cannot act
    on. Hub download bars stay (a download of gigabytes should show progress) unless `all_bars` (--no-progress).
    Call it where transformers is loaded anyway: importing it takes seconds."""
    # transformers' Trainer calls its own deprecated `is_gradient_checkpointing` (transformers 5.2x)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # transformers is only needed by its backend
        return
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if all_bars or set_hook is None:
        hf_logging.disable_progress_bar()  # every bar, the Hub's downloads too
    if set_hook is not None:
        # every bar transformers draws through its logging module becomes its no-op bar
        set_hook(lambda factory, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs))
