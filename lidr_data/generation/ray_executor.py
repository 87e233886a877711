"""Generation on a Ray cluster (`--executor ray`): Ray Data `map_batches` over an actor pool, each actor holding
one of the existing backends (transformers, vllm).

The driver keeps the request cache (SQLite's WAL cannot be shared across hosts): it computes request keys,
looks them up, and sends only the misses. `RayGenerator.stream` hands Ray the whole work list and yields the
results as Ray returns them (`iter_batches`, in no particular order), so the runner commits each batch to the
cache when it arrives and joins by request key. A killed run therefore resumes with nothing committed made again.

Each actor checks that its backend computes the same request key as the driver for every row it receives (same
model files, revision and chat template): a node with other model files fails loudly instead of filling the
cache under wrong keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.generation import _backend_class, check_backend_options, load_generator
from lidr_data.generation.base import Completion, Generator, Request, SamplingParams
from lidr_data.generation.cache import _dump_logprobs, _load_logprobs
from lidr_data.generation.transformers_backend import local_model_revision

EXECUTORS = ("local", "ray")
RAY_BACKENDS = ("transformers", "vllm")  # openai: the endpoint already scales; nothing to place on a cluster


@dataclass(frozen=True)
class RayConfig:
    """Where and how generation runs on Ray. Operational only: none of it enters a request key."""

    address: str | None = field(default=None, metadata={
        "help": "Ray cluster address (`HOST:PORT` of `ray start --head`, or `auto`); None: "
        "RAY_ADDRESS if set, else a local Ray instance started for this run."})
    workers: int | None = field(default=None, metadata={
        "help": "Actors in the pool, each holding one model (None: as many as the cluster's GPUs, or CPUs, allow)."})
    num_gpus_per_worker: float | None = field(default=None, metadata={
        "help": "GPUs per actor (None: the vllm backend's tensor_parallel_size; transformers: 1 on a cluster with "
        "GPUs, else 0)."})
    num_cpus_per_worker: float = field(default=1.0, metadata={"help": "CPUs reserved per actor."})
    connect_timeout_s: float = field(default=30.0, metadata={
        "help": "A cluster that does not answer within this many seconds is an error, not a hang."})

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise LidrError(f"ray workers must be >= 1, got {self.workers}")
        if self.connect_timeout_s <= 0:
            raise LidrError(f"ray connect timeout must be > 0, got {self.connect_timeout_s}")


def ray_loader(config: RayConfig | None = None,
               load: Callable[..., Generator] | None = None) -> Callable[..., RayGenerator]:
    """A `load_generator(backend, model, **options)` for `pipeline.build` / `generate_file`: the generator it
    returns runs `load(backend, model, **options)` (default `lidr_data.generation.load_generator`) inside Ray
    actors. `load` must be importable on the workers (it is pickled by reference)."""

    def make(backend: str, model: str, **options) -> RayGenerator:
        return RayGenerator(backend, model, options, config or RayConfig(), load)

    return make


class RayGenerator(Generator):
    """A backend run by a pool of Ray actors; the driver side of `--executor ray`."""

    def __init__(self, backend: str, model: str, options: dict, config: RayConfig,
                 load: Callable[..., Generator] | None = None):
        if backend not in RAY_BACKENDS:
            raise LidrError(f"--executor ray runs the {' or '.join(RAY_BACKENDS)} backend, not {backend!r} "
                            "(an OpenAI-compatible endpoint scales on its own side)")
        check_backend_options(backend, options)
        require("ray", purpose="--executor ray")
        self.backend, self.model, self.options, self.config = backend, model, dict(options), config
        self._load = load_generator if load is None else load
        default_batch = inspect.signature(_backend_class(backend).__init__).parameters["batch_size"].default
        self.batch_size = int(options.get("batch_size", default_batch))
        # The key's model identity, computed here without loading weights; every actor checks it matches its own.
        self.model_revision, self.template_hash = model_identity(model, options)
        self._started_ray = False

    # -- the cluster
    def _connect(self):
        import ray

        if not ray.is_initialized():
            connect(self.config)
            self._started_ray = True
        quiet_ray_data()
        return ray

    def _resources(self, ray) -> tuple[int, float]:
        cluster = ray.cluster_resources()
        gpus = self.config.num_gpus_per_worker
        if gpus is None:
            if self.backend == "vllm":
                gpus = float(self.options.get("tensor_parallel_size", 1))
            else:
                gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
        workers = self.config.workers
        if workers is None:
            if gpus > 0:
                workers = int(cluster.get("GPU", 0) // gpus)
            else:
                workers = int(cluster.get("CPU", 1) // max(self.config.num_cpus_per_worker, 1e-9))
        # Ray Data would wait forever for an actor the cluster cannot place.
        if workers < 1 or workers * gpus > cluster.get("GPU", 0) or \
                workers * self.config.num_cpus_per_worker > cluster.get("CPU", 0):
            raise LidrError(f"the Ray cluster has {cluster.get('GPU', 0):g} GPU(s) and {cluster.get('CPU', 0):g} "
                            f"CPU(s): not enough for {max(workers, 1)} worker(s) with {gpus:g} GPU(s) and "
                            f"{self.config.num_cpus_per_worker:g} CPU(s) each")
        return workers, gpus

    # -- generation
    def stream(self, items: Sequence[tuple[str, Request]]) -> Iterator[list[tuple[str, Completion]]]:
        if not items:
            return
        ray = self._connect()
        workers, gpus = self._resources(ray)
        batches = -(-len(items) // max(1, self.batch_size))
        rows = [{"key": k, "request": request_to_json(r)} for k, r in items]
        # One block per batch, so every actor gets work from the start.
        ds = ray.data.from_items(rows, override_num_blocks=min(batches, 10_000))
        results = ds.map_batches(
            GeneratorActor,
            fn_constructor_kwargs=dict(load=self._load, backend=self.backend, model=self.model,
                                       options=self.options, identity=(self.model_revision, self.template_hash)),
            batch_size=self.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, batches))),
            num_gpus=gpus,
            num_cpus=self.config.num_cpus_per_worker,
        )
        try:
            for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield [(k, completion_from_json(c)) for k, c in
                       zip(batch.column("key").to_pylist(), batch.column("completion").to_pylist())]
        except LidrError:
            raise
        except Exception as e:  # a worker's error arrives wrapped (RayTaskError, ActorDiedError): one line
            raise LidrError(f"ray executor: {_first_line(e)}") from e

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        keys = [self.request_key(r) for r in requests]
        done: dict[str, Completion] = {}
        for batch in self.stream(list(dict(zip(keys, requests)).items())):
            done.update(batch)
        return [done[k] for k in keys]

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


class GeneratorActor:
    """One model on one Ray worker: `map_batches` calls it with batches of (key, request) rows."""

    def __init__(self, load: Callable[..., Generator], backend: str, model: str, options: dict,
                 identity: tuple[str, str]):
        self.generator = load(backend, model, **options)
        mine = (self.generator.model_revision, self.generator.template_hash)
        if mine != tuple(identity):
            raise LidrError(f"worker {socket.gethostname()} loads {model} as revision {mine[0]}, chat template "
                            f"{mine[1]}; the driver computed {identity[0]}, {identity[1]}: the model files differ "
                            "between nodes")

    def __call__(self, batch):
        keys = batch.column("key").to_pylist()
        requests = [request_from_json(s) for s in batch.column("request").to_pylist()]
        for key, request in zip(keys, requests):
            if self.generator.request_key(request) != key:  # anything else would cache results under wrong keys
                raise LidrError(f"worker {socket.gethostname()} computes another request key than the driver "
                                f"for {key}")
        completions = self.generator.generate(requests)
        return {"key": keys, "completion": [completion_to_json(c) for c in completions]}


# -- the driver side: connection and model identity

def connect(config: RayConfig) -> None:
    """`ray.init` for `config.address`, or a clear LidrError within `connect_timeout_s` when it does not answer
    (ray.init itself retries an unreachable address for minutes)."""
    import logging

    import ray

    kwargs = dict(logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    address = config.address or os.environ.get("RAY_ADDRESS") or None  # ray.init() would use RAY_ADDRESS too
    if address is None:
        ray.init(**kwargs)
        return
    if address != "auto":
        _probe(address, config.connect_timeout_s)
    outcome: dict[str, BaseException | bool] = {}

    def init() -> None:
        try:
            ray.init(address=address, **kwargs)
            outcome["ok"] = True
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = e

    # Connecting from a thread is what bounds the wait; Ray's notice that it then sets no SIGTERM handler is noise.
    worker_log = logging.getLogger("ray._private.worker")
    if _no_sigterm_notice not in worker_log.filters:
        worker_log.addFilter(_no_sigterm_notice)
    thread = threading.Thread(target=init, name="ray-connect", daemon=True)
    thread.start()
    thread.join(config.connect_timeout_s)
    if thread.is_alive():
        raise LidrError(f"Ray cluster at {address} did not answer within {config.connect_timeout_s:g}s (is it a "
                        "Ray head node? `ray start --head` prints the address to use)")
    if "error" in outcome:
        raise LidrError(f"cannot connect to the Ray cluster at {address}: {_first_line(outcome['error'])}") \
            from outcome["error"]  # type: ignore[misc]


def _no_sigterm_notice(record) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()


def _probe(address: str, timeout: float) -> None:
    """Fail at once on an address nothing listens at (refused, unknown host) instead of waiting on Ray's retries."""
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise LidrError(f"Ray address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise LidrError(f"Ray cluster at {address} does not answer: {e.strerror or e}") from None


def quiet_ray_data() -> None:
    """No Ray Data progress bars or execution notices: the runner reports progress itself."""
    import logging

    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"


def model_identity(model: str, options: dict) -> tuple[str, str]:
    """(model_revision, chat-template hash) as the transformers and vllm backends compute them, from the
    tokenizer and config alone (no weights loaded on the driver)."""
    require("transformers", purpose="--executor ray (the driver computes request keys from the tokenizer)")
    from transformers import AutoConfig, AutoTokenizer

    revision = options.get("revision")
    trust = bool(options.get("trust_remote_code", False))
    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith((".", "/", "~"))
    if looks_local and not (path / "config.json").is_file():
        raise LidrError(f"model folder {model} not found or has no config.json")
    source = str(path) if looks_local else model
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust)
        config = None if looks_local else AutoConfig.from_pretrained(source, revision=revision,
                                                                     trust_remote_code=trust)
    except OSError as e:
        raise LidrError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from e
    if not isinstance(tokenizer.chat_template, str):
        raise LidrError(f"model {model!r} has no chat template; lidr needs an instruct (chat) model")
    template_hash = hashlib.sha256(tokenizer.chat_template.encode()).hexdigest()[:16]
    if looks_local:
        return revision or local_model_revision(path), template_hash
    return getattr(config, "_commit_hash", None) or revision or "main", template_hash


# -- rows on the wire: JSON strings, so Arrow blocks carry plain text columns

def request_to_json(r: Request) -> str:
    return json.dumps({"messages": [list(m) for m in r.messages], "sampling": dataclasses.asdict(r.sampling),
                       "system_prompt": r.system_prompt, "assistant_prefix": r.assistant_prefix,
                       "sample_index": r.sample_index}, ensure_ascii=False)


def request_from_json(blob: str) -> Request:
    d = json.loads(blob)
    return Request(tuple((role, content) for role, content in d["messages"]), SamplingParams(**d["sampling"]),
                   d["system_prompt"], d["assistant_prefix"], d["sample_index"])


def completion_to_json(c: Completion) -> str:
    return json.dumps({"text": c.text, "finish_reason": c.finish_reason, "n_tokens": c.n_tokens, "model": c.model,
                       "model_revision": c.model_revision, "error": c.error,
                       "logprobs": _dump_logprobs(c.logprobs)}, ensure_ascii=False)


def completion_from_json(blob: str) -> Completion:
    d = json.loads(blob)
    return Completion(d["text"], d["finish_reason"], d["n_tokens"], d["model"], d["model_revision"],
                      error=d["error"], logprobs=_load_logprobs(d["logprobs"]))


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    # Ray's wrapped errors end with the original "LidrError: ..." line; prefer that one.
    for line in reversed(lines):
        if "LidrError: " in line:
            return line.split("LidrError: ", 1)[1]
    return lines[-1].strip() if lines else type(e).__name__
