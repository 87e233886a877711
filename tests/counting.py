"""A wrapper around a real generator that counts the requests reaching the model (to prove cache hits)."""

from lidr_data.generation.base import Generator


class CountingGenerator(Generator):
    def __init__(self, inner: Generator):
        self.inner, self.calls = inner, 0
        self.model, self.model_revision = inner.model, inner.model_revision
        self.template_hash, self.batch_size = inner.template_hash, inner.batch_size

    def generate(self, requests):
        self.calls += len(requests)
        return self.inner.generate(requests)
