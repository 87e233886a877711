"""Loaded by every child process of a `lidr iterate` test (this folder is put on PYTHONPATH): each request that
reaches a model is appended, by its request key, to the file named by LIDR_TEST_CALL_LOG, once the model returned
it. The loop's steps are separate processes, so an in-process counter cannot see them."""

import os

if os.environ.get("LIDR_TEST_CALL_LOG"):
    import lidr_data.generation as _generation

    _load = _generation.load_generator

    def _counting_load(*args, **kwargs):
        generator = _load(*args, **kwargs)
        inner = generator.generate

        def generate(requests):
            out = inner(requests)
            with open(os.environ["LIDR_TEST_CALL_LOG"], "a", encoding="utf-8") as f:
                f.writelines(f"{os.getpid()} {generator.request_key(r)}\n" for r in requests)
            return out

        generator.generate = generate
        return generator

    _generation.load_generator = _counting_load
