"""Generation: one small interface (`Generator.generate`), three backends, a persistent request cache."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from lidr_data.errors import LidrError
from lidr_data.generation.base import Completion, Generator, Request, SamplingParams
from lidr_data.generation.openai_backend import OpenAIGenerator
from lidr_data.generation.transformers_backend import TransformersGenerator
from lidr_data.generation.vllm_backend import VLLMGenerator
from lidr_data.readers import parse_yaml

# The backends import torch, transformers and vllm only when a model loads.
_CLASSES: dict[str, type[Generator]] = {"transformers": TransformersGenerator, "openai": OpenAIGenerator,
                                        "vllm": VLLMGenerator}
BACKENDS = tuple(_CLASSES)

__all__ = ["BACKENDS", "Completion", "Generator", "Request", "SamplingParams", "check_backend_options",
           "load_generator", "parse_backend_options"]


def _backend_class(backend: str) -> type[Generator]:
    try:
        return _CLASSES[backend]
    except KeyError:
        raise LidrError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None


def check_backend_options(backend: str, options: Mapping[str, object]) -> None:
    """Refuse option names the backend does not take (checked when a recipe loads, before anything is written:
    a misplaced secret such as `api_key:` must not reach a run folder before the error)."""
    cls = _backend_class(backend)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "model"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise LidrError(
            f"unknown option(s) {', '.join(unknown)} for backend {backend!r}; it accepts {', '.join(sorted(accepted))}"
        )


def load_generator(backend: str, model: str, **options) -> Generator:
    """Create a backend by name. Options are the backend's constructor arguments (batch_size, revision, ...)."""
    check_backend_options(backend, options)
    return _backend_class(backend)(model, **options)


def parse_backend_options(pairs: list[str]) -> dict:
    """`-O KEY=VALUE` words (`lidr generate`, `lidr eval`) -> backend options; values are read as YAML scalars
    (so 2 is an int, true a bool)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LidrError(f"backend option {pair!r} is not KEY=VALUE")
        options[key.replace("-", "_")] = parse_yaml(value, f"backend option {key}")
    return options
