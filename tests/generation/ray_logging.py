"""A generator loader for Ray workers: a real backend wrapped to append every request key it generates to a log
file, so a test on the driver can count the requests that reached a model in any worker process."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from lidr_data.generation import load_generator
from lidr_data.generation.base import Generator


class LoggingGenerator(Generator):
    def __init__(self, inner: Generator, log: str, delay: float):
        self.inner, self.log, self.delay = inner, log, delay
        self.model, self.model_revision = inner.model, inner.model_revision
        self.template_hash, self.batch_size = inner.template_hash, inner.batch_size

    def generate(self, requests):
        completions = self.inner.generate(requests)
        time.sleep(self.delay)  # slows a run down enough to kill it half-way
        with open(self.log, "a") as f:  # one write per batch, appended
            f.write("".join(self.request_key(r) + "\n" for r in requests))
        return completions


def _load(backend: str, model: str, *, log: str, delay: float, **options) -> Generator:
    return LoggingGenerator(load_generator(backend, model, **options), log, delay)


def logging_loader(log: Path, delay: float = 0.0):
    """`load` for `ray_loader`: picklable by reference (workers import this module from PYTHONPATH)."""
    return functools.partial(_load, log=str(log), delay=delay)


def logged(log: Path) -> list[str]:
    return log.read_text().split() if log.is_file() else []


def _load_elsewhere(backend: str, model: str, **options) -> Generator:
    """A worker whose model files differ from the driver's (here: another revision fingerprint)."""
    generator = load_generator(backend, model, **options)
    generator.model_revision = "local-0000000000000000"
    return generator


def other_files_loader():
    return _load_elsewhere
