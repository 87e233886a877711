"""The request cache: a real SQLite file, reopened as a rerun would."""

from lidr_data.generation.base import Completion, Generator, Request, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests


def test_roundtrip_and_errors_are_not_cached(tmp_path):
    cache = RequestCache(tmp_path)
    ok = Completion("hola", "stop", 3, "m", "r")
    failed = Completion("", "error", 0, "m", "r", error="boom")
    assert cache.put_many([("a", ok), ("b", failed)]) == 1
    cache.close()
    reopened = RequestCache(tmp_path / "requests.sqlite")
    assert reopened.get_many(["a", "b", "c"]) == {"a": ok}
    assert len(reopened) == 1


class CountingGenerator(Generator):
    """A deterministic in-memory backend that counts model calls (the cache logic under test is real)."""

    model, model_revision, template_hash, batch_size = "echo", "r1", "t", 3

    def __init__(self):
        self.calls = 0
        self.seen = 0

    def generate(self, requests):
        self.calls += 1
        self.seen += len(requests)
        return [Completion(r.messages[-1][1][::-1], "stop", 1, self.model, self.model_revision) for r in requests]


def test_runner_serves_hits_and_dedupes_identical_requests(tmp_path):
    cache = RequestCache(tmp_path)
    gen = CountingGenerator()
    reqs = [Request.from_messages(t) for t in ["abc", "de", "abc", "xyz"]]
    out, keys, stats = run_requests(gen, reqs, cache, progress=False)
    assert [c.text for c in out] == ["cba", "ed", "cba", "zyx"]
    assert keys[0] == keys[2] and stats.generated == 3 and gen.seen == 3
    out2, _, stats2 = run_requests(gen, reqs, cache, progress=False)
    assert out2 == out and stats2.generated == 0 and stats2.cache_hits == 4 and gen.seen == 3


def test_key_covers_what_determines_output_only():
    gen = CountingGenerator()
    base = Request.from_messages("hi", SamplingParams(max_new_tokens=8))
    same = Request.from_messages([{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=8))
    assert gen.request_key(base) == gen.request_key(same)
    variants = [
        Request.from_messages("hi", SamplingParams(max_new_tokens=9)),
        Request.from_messages("hi", SamplingParams(max_new_tokens=8, temperature=0.7)),
        Request.from_messages("hi", SamplingParams(max_new_tokens=8), system_prompt="be brief"),
        Request.from_messages("hi", SamplingParams(max_new_tokens=8), assistant_prefix="<t>"),
        Request.from_messages("hi", SamplingParams(max_new_tokens=8), sample_index=1),
    ]
    assert len({gen.request_key(v) for v in variants} | {gen.request_key(base)}) == 6
    other = CountingGenerator()
    other.model_revision = "r2"
    assert other.request_key(base) != gen.request_key(base)
    # Operational knobs are not in the key.
    other.model_revision, other.batch_size = "r1", 99
    assert other.request_key(base) == gen.request_key(base)


# Keys computed by the release before `top_logprobs` existed (lidr_data/generation/base.py at d192267).
EARLIER_KEYS = {
    "e5a02164044c1de48534723e835be282c53d29f6c7c4057f60046bc339102eb1":
        Request.from_messages("hi", SamplingParams(max_new_tokens=8)),
    "addbdc5ee4c9522b1276ad2094f60c01d7f1b85a562dc12dda48c5d1741f731a":
        Request.from_messages([{"role": "user", "content": "Bonjour"}], SamplingParams(temperature=0.7, seed=3),
                              system_prompt="sys", assistant_prefix="<t>", sample_index=2),
}


def test_new_sampling_fields_keep_the_keys_of_requests_that_do_not_use_them():
    gen = CountingGenerator()
    assert {gen.request_key(r): r for r in EARLIER_KEYS.values()}.keys() == EARLIER_KEYS.keys()
    asked = Request.from_messages("hi", SamplingParams(max_new_tokens=8, top_logprobs=5))
    assert gen.request_key(asked) not in EARLIER_KEYS  # a different output: a different key
    assert gen.request_key(asked) != gen.request_key(Request.from_messages(
        "hi", SamplingParams(max_new_tokens=8, top_logprobs=3)))


def test_cache_written_before_logprobs_still_hits_and_keeps_logprobs_now(tmp_path):
    import sqlite3

    from lidr_data.generation.base import TokenLogprob

    db = sqlite3.connect(tmp_path / "requests.sqlite")  # the schema of the earlier release, with one row
    db.execute("CREATE TABLE completions (request_key TEXT PRIMARY KEY, text TEXT NOT NULL, finish_reason TEXT "
               "NOT NULL, n_tokens INTEGER NOT NULL, model TEXT NOT NULL, model_revision TEXT NOT NULL, created_at "
               "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
    key, request = next(iter(EARLIER_KEYS.items()))
    db.execute("INSERT INTO completions (request_key, text, finish_reason, n_tokens, model, model_revision) "
               "VALUES (?, 'ih', 'stop', 1, 'echo', 'r1')", (key,))
    db.commit()
    db.close()
    cache = RequestCache(tmp_path)
    gen = CountingGenerator()
    [hit], _, stats = run_requests(gen, [request], cache, progress=False)
    assert (hit.text, hit.logprobs, hit.cached, stats.cache_hits, gen.calls) == ("ih", None, True, 1, 0)
    with_logprobs = Completion("A", "stop", 1, "m", "r", logprobs=(
        TokenLogprob("A", -0.1, (("A", -0.1), (" B", -2.5), ("ф", float("-inf")))),))
    cache.put_many([("k", with_logprobs)])
    cache.close()
    [got] = RequestCache(tmp_path).get_many(["k"]).values()
    assert got == with_logprobs and got.logprobs == with_logprobs.logprobs and got.cached


class StreamingGenerator(CountingGenerator):
    """An executor that takes the whole work list at once and returns batches out of order (as Ray does),
    optionally dying after `die_after` batches (as a killed run would)."""

    def __init__(self, die_after: int | None = None):
        super().__init__()
        self.work_lists: list[int] = []
        self.die_after = die_after

    def stream(self, items):
        self.work_lists.append(len(items))
        batches = [items[i : i + 2] for i in range(0, len(items), 2)][::-1]
        for n, chunk in enumerate(batches):
            if n == self.die_after:
                raise KeyboardInterrupt
            yield list(zip([k for k, _ in chunk], self.generate([r for _, r in chunk])))


def test_streaming_executor_gets_every_miss_at_once_and_each_batch_is_committed_as_it_arrives(tmp_path):
    reqs = [Request.from_messages(t) for t in ["abc", "de", "fgh", "ij", "klm", "abc", "nop"]]
    expected = [c.text for c in run_requests(CountingGenerator(), reqs)[0]]

    dying = StreamingGenerator(die_after=2)
    try:
        run_requests(dying, reqs, RequestCache(tmp_path), progress=False)
    except KeyboardInterrupt:
        pass
    assert dying.work_lists == [6]  # the 6 distinct requests in one work list
    committed = RequestCache(tmp_path)
    assert len(committed) == 4  # the two batches that arrived before the "kill"

    rerun = StreamingGenerator()
    out, keys, stats = run_requests(rerun, reqs, committed, progress=False)
    assert [c.text for c in out] == expected  # joined by key, whatever order the batches came in
    assert rerun.work_lists == [2] and rerun.seen == 2 and stats.cache_hits == 4 and stats.generated == 2  # abc twice, de


class _FailingConnection:
    """Stands in for sqlite3's connection: `fail_on` statements raise what SQLite says on a full device."""

    def __init__(self, real, fail_on: str, message: str):
        self.real, self.fail_on, self.message = real, fail_on, message

    def execute(self, sql, *args):
        import sqlite3

        if self.fail_on in sql:
            raise sqlite3.OperationalError(self.message)
        return self.real.execute(sql, *args)

    def executemany(self, sql, rows):
        import sqlite3

        if self.fail_on in sql:
            raise sqlite3.OperationalError(self.message)
        return self.real.executemany(sql, rows)

    def __enter__(self):
        return self.real.__enter__()

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)

    def close(self):
        self.real.close()


def _failing_sqlite(monkeypatch, fail_on: str, message: str) -> None:
    import sqlite3

    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _FailingConnection(connect(*a, **k), fail_on, message))


def test_a_full_disk_is_not_called_a_corrupt_cache(tmp_path, monkeypatch):
    """With ~40 KB free, opening the cache failed with "disk I/O error" (SQLite cannot create its WAL files) and
    was reported as "not a readable SQLite file"."""
    import shutil
    from collections import namedtuple

    import pytest

    from lidr_data.errors import LidrError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - 40_000, 40_000))
    _failing_sqlite(monkeypatch, "journal_mode=WAL", "disk I/O error")
    with pytest.raises(LidrError, match=r"no space left on the device holding request cache .*requests\.sqlite, "
                                        r"39 KiB free: nothing half-written was kept") as e:
        RequestCache(tmp_path)
    assert "not a readable SQLite file" not in str(e.value)

    monkeypatch.undo()  # plenty of space: an I/O error is still not a corrupt file
    _failing_sqlite(monkeypatch, "journal_mode=WAL", "disk I/O error")
    with pytest.raises(LidrError, match="disk I/O error") as e:
        RequestCache(tmp_path / "b")
    assert "not a readable SQLite file" not in str(e.value) and "no space" not in str(e.value)

    monkeypatch.undo()  # a batch that does not fit: no row of it is kept, and the error says why
    _failing_sqlite(monkeypatch, "INSERT", "database or disk is full")
    cache = RequestCache(tmp_path / "c")
    with pytest.raises(LidrError, match="no space left on the device holding request cache"):
        cache.put_many([("a", Completion("hola", "stop", 3, "m", "r"))])
    assert len(cache) == 0
    cache.close()

    monkeypatch.undo()  # what is really not SQLite is still said to be so
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "requests.sqlite").write_bytes(b"not a database at all, just text " * 100)
    with pytest.raises(LidrError, match="is not a readable SQLite file"):
        RequestCache(tmp_path / "d")
