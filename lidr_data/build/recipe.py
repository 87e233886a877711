"""Recipes: one YAML file says everything a LIDR build needs (model, languages, prompts, generation, translation,
tag/filter/dedup settings, iteration, where to write).

Each section is a documented dataclass (the `help` metadata of every field is its documentation). Loading
checks the YAML against the dataclasses generically, so every section, including the post-processing ones,
gets the same errors: an unknown key, a wrong type or a bad value names the file and the field path
(`recipe.yaml: filters.max_length_ratio: ...`).

Relative paths are read from the current directory. A path starting with `lidr:` names a file shipped inside
the package (`lidr:assets/demo-prompts`), and `model: lidr:tiny-model` is the random tiny test model, built on
demand in the work folder.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lidr_data.config import option, require, resolve_path
from lidr_data.dataset.layout import check_name
from lidr_data.errors import LidrError
from lidr_data.generation import BACKENDS, check_backend_options
from lidr_data.languages import check_language
from lidr_data.readers import MAX_TEXT_CHARS, parse_yaml, read_yaml
from lidr_data.redact import redact_secrets
from lidr_data.stages.dedup import DedupConfig
from lidr_data.stages.filter import FilterConfig
from lidr_data.stages.prompts import PromptsConfig
from lidr_data.stages.respond import GenerationConfig, ResponsesImport
from lidr_data.stages.tag import TagConfig
from lidr_data.stages.translate import TranslationConfig, TranslationsImport

TINY_MODEL = "lidr:tiny-model"

@dataclass
class ImportsConfig:
    """Generations made elsewhere (another run, another tool)."""

    responses: list[ResponsesImport] = option(help="Answer files.", factory=list)
    translations: list[TranslationsImport] = option(help="Translation files.", factory=list)

    @property
    def failure_markers(self) -> list[str]:
        """Every import's failure markers: the filter drops a side equal to one, wherever it came from."""
        return list(dict.fromkeys(m.strip() for spec in [*self.responses, *self.translations]
                                  for m in spec.failure_markers))


@dataclass
class Recipe:
    """A LIDR build: who generates, in which languages, on which prompts, and how pairs are cleaned."""

    name: str = option(help="Run name: the run folder is WORKDIR/runs/<name>/iter-<iteration>/.")
    model: str = option(help="Generator M_t: a Hub id, a local folder, an endpoint's model name, or lidr:tiny-model.")
    prompts: PromptsConfig = option(help="Prompt source and field mapping.")
    languages: list[str] = option(help="The non-dominant languages (ISO 639-1), e.g. [es, ru, de, fr].", factory=list)
    revision: str | None = option(None, help="Model revision (Hub commit, tag or branch).")
    backend: str = option("transformers", help=f"Generation backend: {', '.join(BACKENDS)}.")
    backend_options: dict[str, Any] = option(
        help="Backend constructor options (batch_size, tensor_parallel_size, base_url, ...).", factory=dict)
    dominant_lang: str = option("en", help="The language the model is best at (the paper: English).")
    generation: GenerationConfig = option(help="Answer generation settings.", factory=GenerationConfig)
    translation: TranslationConfig = option(help="Self-translation settings.", factory=TranslationConfig)
    tag: TagConfig = option(help="Tag stage: language ID and per-pair features.", factory=TagConfig)
    filters: FilterConfig = option(help="Filter stage: named rules and their thresholds.", factory=FilterConfig)
    dedup: DedupConfig = option(help="Dedup stage: exact, then near-duplicate (MinHash).", factory=DedupConfig)
    imports: ImportsConfig = option(help="Generations made elsewhere, not generated again.", factory=ImportsConfig)
    iteration: int = option(1, help="LIDR iteration t (M_t generates the data of iteration t).")
    parent: str | None = option(None, help="The version this one follows (any version reference: a version folder, "
                                "store/name@version, org/name@revision), resolved and verified before the build "
                                "starts and recorded in the manifest. Unset: the version has no parent.")
    workdir: str = option("lidr-work", help="Work folder holding runs/<name>/iter-<N>/.")
    train: dict[str, Any] | str | None = option(None, help="For `lidr iterate`: the `lidr train` settings (any key of a "
                                                "`lidr train --config` YAML), or the path of such a YAML. "
                                                "`lidr build` ignores it.")
    eval: dict[str, Any] | None = option(None, help="For `lidr iterate`: the evaluations of every model, "
                                         "`mgsm:`, `winrate:` and/or `refnll:`, each a mapping of that `lidr eval` "
                                         "command's options (data, langs, limit, judge, ...). `lidr build` ignores it.")
    license: str | None = option(None, help="License of the published data (a Hub license id such as cc-by-nc-4.0; "
                             "it should respect the prompts' and the generator's terms). Default: unknown.")

    def __post_init__(self) -> None:
        require(_valid_name(self.name), "name", "required; letters, digits, '.', '_' and '-' only, not starting "
                f"with '.' or '-', at most 96 characters (it names the dataset's folder and Hub repo), got {self.name!r}")
        require(bool(self.model), "model", "required")
        require(self.backend in BACKENDS, "backend", f"must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        try:
            check_backend_options(self.backend, self.backend_options)
        except LidrError as e:
            raise LidrError(f"backend_options: {e}") from None
        check_language(self.dominant_lang, "dominant_lang")
        require(bool(self.languages), "languages", "at least one non-dominant language is needed")
        for i, code in enumerate(self.languages):
            check_language(code, f"languages[{i}]")
        # The dominant language may be listed too (a common way to write "en + es, de"); it is not a target.
        self.languages = list(dict.fromkeys(c for c in self.languages if c != self.dominant_lang))
        require(bool(self.languages), "languages", "needs a language other than dominant_lang")
        require(self.iteration >= 1, "iteration", f"must be >= 1, got {self.iteration}")
        require(self.parent is None or bool(self.parent.strip()), "parent", "must be a version reference, got ''")
        if self.license is not None:
            require(bool(re.fullmatch(r"[\w.+-]+", self.license)), "license",
                     f"a license id such as cc-by-4.0 or apache-2.0, got {self.license!r}")

    @property
    def all_languages(self) -> list[str]:
        return [self.dominant_lang, *self.languages]

    def to_dict(self) -> dict:
        data = _plain(dataclasses.asdict(self))
        for key in ("train", "eval"):  # `lidr iterate`'s sections: absent from builds that do not set them
            if data[key] is None:
                del data[key]
        return data

    def to_yaml(self) -> str:
        """The recipe as YAML, with secret-looking values redacted (see `redact_secrets`): this is what run
        folders, manifests and cards hold."""
        return yaml.safe_dump(redact_secrets(self.to_dict()), sort_keys=False, allow_unicode=True, width=100)


def _valid_name(name: str) -> bool:
    """The rule materialize applies to the dataset name (`layout.check_name`), checked when the recipe loads
    rather than after the whole build."""
    try:
        check_name(name, "name")
    except LidrError:
        return False
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against the type hint `tp`; return it converted (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise LidrError(f"{path}: must not be null")
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(a, value, path)
            except LidrError as e:
                errors.append(e)
        raise errors[0]
    if value is None:
        raise LidrError(f"{path}: must not be null")
    if origin is Literal:
        if value not in args:
            raise LidrError(f"{path}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise LidrError(f"{path}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise LidrError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise LidrError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LidrError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LidrError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):  # read_yaml refuses them in files; this covers values set in code
            raise LidrError(f"{path}: {value!r} is not a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise LidrError(f"{path}: expected a string, got {value!r}")
        if len(value) > MAX_TEXT_CHARS:
            raise LidrError(f"{path}: a text of {len(value):,} characters; at most {MAX_TEXT_CHARS:,} are accepted")
        return value
    return value


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a YAML mapping; every error names the field path."""
    if not isinstance(data, dict):
        raise LidrError(f"{path or 'recipe'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise LidrError(f"{_join(path, str(key))}: unknown key (known: {', '.join(fields)})")
    kwargs = {name: _convert(hints[name], value, _join(path, name)) for name, value in data.items()}
    for name, f in fields.items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise LidrError(f"{_join(path, name)}: required")
    try:
        return cls(**kwargs)
    except LidrError as e:
        # Checks name the field relative to their section ("limit: ..."): prefix the section path.
        message = str(e)
        if path and not message.startswith(path):
            message = f"{path}.{message}"
        raise LidrError(message) from None
    except (ValueError, TypeError) as e:
        raise LidrError(f"{path or 'recipe'}: {e}") from None


def parse_recipe(data: Any, where: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise LidrError(f"{where}: a recipe is a YAML mapping, got {type(data).__name__}")
    try:
        return from_dict(Recipe, data)
    except LidrError as e:
        raise LidrError(f"{where}: {e}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file (`lidr:assets/demo.yaml` names the packaged demo recipe)."""
    path = resolve_path(path)
    return parse_recipe(read_yaml(path, "recipe file"), str(path))


def with_overrides(recipe: Recipe, *, model: str | None = None, iteration: int | None = None,
                   limit: int | None = None, languages: list[str] | None = None,
                   workdir: str | Path | None = None, parent: str | None = None) -> Recipe:
    """The recipe with command-line overrides applied (and validated like the YAML)."""
    changes: dict[str, Any] = {}
    if model:
        changes["model"] = model
    if iteration is not None:
        changes["iteration"] = iteration
    if languages:
        changes["languages"] = list(languages)
    if workdir is not None:
        changes["workdir"] = str(workdir)
    if parent is not None:
        changes["parent"] = str(parent)
    try:
        if limit is not None:
            changes["prompts"] = dataclasses.replace(recipe.prompts, limit=limit)
        return dataclasses.replace(recipe, **changes)
    except LidrError as e:
        raise LidrError(f"command-line override: {e}") from None


def import_specs(kind: str, groups: list[list[str]]) -> list[ResponsesImport] | list[TranslationsImport]:
    """`--responses FILE KEY=VALUE ...` -> ResponsesImport (and the same for translations), validated like the
    recipe's `imports:` entries."""
    cls = ResponsesImport if kind == "responses" else TranslationsImport
    specs = []
    for path, *settings in groups:
        data: dict = {"path": path}
        for item in settings:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise LidrError(f"--{kind} {path}: {item!r} is not KEY=VALUE (put the recipe before --{kind})")
            key = key.replace("-", "_")
            if key == "failure_markers":  # a YAML list ('[a, b]'), or one marker taken literally
                data[key] = (parse_yaml(value, f"--{kind} {path}: {key}") if value.lstrip().startswith("[")
                             else [value])
            else:  # every other setting is text, kept literally (YAML would read lang=no as false)
                data[key] = value
        specs.append(from_dict(cls, data, f"--{kind} {path}"))
    return specs


def read_imports_file(path: str | Path) -> ImportsConfig:
    """An imports YAML (`responses:`/`translations:` lists, optionally under `imports:`) -> ImportsConfig."""
    path = resolve_path(path)
    if not path.is_file():
        raise LidrError(f"--imports {path}: file not found")
    data = read_yaml(path) or {}
    if isinstance(data, dict) and set(data) == {"imports"}:
        data = data["imports"]
    try:
        return from_dict(ImportsConfig, data, "imports")
    except LidrError as e:
        raise LidrError(f"{path}: {e}") from None
