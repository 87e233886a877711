"""`lidr generate` end to end on the tiny model: output table, bad input, and crash recovery (real SIGKILL)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
import pytest

from lidr_data.cli import main


def write_prompts(path, n):
    langs = ["Hello, how are you?", "¿Qué hora es?", "Wie spät ist es?", "Quelle heure est-il ?"]
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"{langs[i % 4]} #{i}"}) + "\n")


def generate_args(model, src, out, cache, *extra):
    return ["generate", "--model", str(model), "--input", str(src), "--output", str(out), "--cache", str(cache),
            "--no-progress", *extra]


def test_generate_writes_completions_and_reruns_from_cache(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "prompts.jsonl"
    write_prompts(src, 6)
    out = tmp_path / "out.parquet"
    assert main(generate_args(tiny_model_dir, src, out, tmp_path / "c", "--max-new-tokens", "6")) == 0
    table = pl.read_parquet(out)
    assert table.columns == ["id", "text", "finish_reason", "n_tokens", "model", "model_revision", "request_key",
                             "error"]
    assert table["id"].to_list() == [f"p{i}" for i in range(6)]
    assert set(table["finish_reason"]) <= {"stop", "length"} and table["request_key"].n_unique() == 6
    assert "generated 6" in capsys.readouterr().out
    assert main(generate_args(tiny_model_dir, src, out, tmp_path / "c", "--max-new-tokens", "6")) == 0
    assert "generated 0 · cache hits 6" in capsys.readouterr().out
    assert pl.read_parquet(out).equals(table)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": 1, "prompt": "hi"}\n{"id": 2, "prompt": \n', "prompts.jsonl:2: malformed JSON"),
        ('{"id": 1, "prompt": "hi"}\n{"id": 2, "prompt": "  "}\n', "prompts.jsonl:2: empty prompt"),
        ('{"prompt": "hi"}\n', "prompts.jsonl:1: missing field 'id'"),
        ('{"id": 1, "text": "hi"}\n', "prompts.jsonl:1: needs a 'messages' or a 'prompt' field"),
        ('{"id": 1, "prompt": "hi"}\n\n{"prompt": "hi"}\n', "prompts.jsonl:3: missing field 'id'"),  # blank line
    ],
)
def test_bad_input_is_one_line_error(tiny_model_dir, tmp_path, capsys, content, message):
    src = tmp_path / "prompts.jsonl"
    src.write_text(content)
    code = main(generate_args(tiny_model_dir, src, tmp_path / "o.parquet", tmp_path / "c"))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists()


def cache_rows(path):
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT count(*) FROM completions").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tiny_model_dir, tmp_path):
    n, batch = 40, 4
    src = tmp_path / "prompts.jsonl"
    write_prompts(src, n)
    cache_dir, out = tmp_path / "cache", tmp_path / "out.parquet"
    args = generate_args(tiny_model_dir, src, out, cache_dir, "--batch-size", str(batch), "--max-new-tokens", "96")
    proc = subprocess.Popen([sys.executable, "-m", "lidr_data.cli", *args], env={**os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = cache_dir / "requests.sqlite"
    deadline = time.time() + 120
    while cache_rows(db) < 2 * batch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run should have been killed before finishing"
    committed = cache_rows(db)
    assert 2 * batch <= committed < n
    assert committed % batch == 0, "batches are committed whole"

    # Resume: only what was not committed is generated; the in-flight batch is the only lost work.
    assert main(args) == 0
    resumed = pl.read_parquet(out)
    assert resumed["id"].to_list() == [f"p{i}" for i in range(n)]
    assert cache_rows(db) == n

    # The resumed output equals an uninterrupted run (greedy decoding is deterministic).
    fresh_out = tmp_path / "fresh.parquet"
    assert main(generate_args(tiny_model_dir, src, fresh_out, tmp_path / "fresh-cache", "--batch-size", str(batch),
                              "--max-new-tokens", "96")) == 0
    assert resumed.equals(pl.read_parquet(fresh_out))


def test_resume_counts(tiny_model_dir, tmp_path, capsys):
    """A rerun generates exactly the requests missing from the cache; a finished run makes zero model calls."""
    src = tmp_path / "prompts.jsonl"
    write_prompts(src, 8)
    cache = tmp_path / "c"
    main(generate_args(tiny_model_dir, src, tmp_path / "o.parquet", cache,
                       "--max-new-tokens", "4"))
    capsys.readouterr()
    write_prompts(tmp_path / "more.jsonl", 11)
    assert main(generate_args(tiny_model_dir, tmp_path / "more.jsonl", tmp_path / "o2.parquet", cache,
                              "--max-new-tokens", "4")) == 0
    assert "generated 3 · cache hits 8" in capsys.readouterr().out


@pytest.mark.parametrize(("setup", "message"), [
    (lambda t: ["--input", str(t / "missing.jsonl")], "missing.jsonl: file not found"),
    (lambda t: ["--input", str(t / "bad.jsonl")], "bad.jsonl:2: malformed JSON"),
    (lambda t: ["--output", str(t / "good.jsonl" / "out.parquet")], "good.jsonl/out.parquet: cannot create its folder"),
    (lambda t: ["--output", str(t)], "is a folder; name the file to write"),
])
def test_input_and_output_are_checked_before_a_model_loads(tmp_path, capsys, monkeypatch, setup, message):
    """Issue 20: a missing --input was reported only after the model had loaded."""
    from lidr_data.commands import generate

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the input and output were checked")

    monkeypatch.setattr(generate, "load_generator", no_model)
    (tmp_path / "good.jsonl").write_text('{"id": 1, "prompt": "hi"}\n')
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "prompt": "hi"}\n{"id": 2,\n')
    args = {"--input": str(tmp_path / "good.jsonl"), "--output": str(tmp_path / "o" / "out.parquet")}
    given = setup(tmp_path)
    args[given[0]] = given[1]
    code = main(["generate", "--model", str(tmp_path / "no-such-model"), "--no-progress",
                 *[w for kv in args.items() for w in kv]])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_piped_output_is_whole_lines_without_library_noise(tmp_path):
    """Issue 20, as a user piping `lidr` sees it: the summary line split its path at 80 columns
    (`completions.p` / `arquet`), and transformers' "Writing model shards" / "Loading weights" bars leaked.
    Also the README's example: the prompts file it names is shipped (`lidr:assets/demo-generate.jsonl`)."""
    deep = tmp_path / ("a-folder-name-long-enough-that-the-path-passes-eighty-columns-" * 2) / "and-deeper"
    model, out = deep / "tiny", deep / "completions.parquet"
    env = {**os.environ, "COLUMNS": "", "OMP_NUM_THREADS": "1"}
    env.pop("COLUMNS")
    runs = [subprocess.run([sys.executable, "-m", "lidr_data.cli", *args], capture_output=True, text=True, env=env,
                           timeout=300)
            for args in (["tiny-model", str(model)],
                         ["generate", "--model", str(model), "--input", "lidr:assets/demo-generate.jsonl",
                          "--output", str(out), "--max-new-tokens", "4"])]
    for run in runs:
        assert run.returncode == 0, run.stderr
        for noise in ("Loading weights", "Writing model shards", "Warning", "it/s]"):
            assert noise not in run.stderr + run.stdout, (noise, run.stderr)
    assert f"tiny random chat model written to {model} (its output is noise)\n" in runs[0].stdout
    assert f"wrote {out}: 4 rows · generated 4 · cache hits 0 · errors 0 · " in runs[1].stdout
    assert pl.read_parquet(out)["id"].to_list() == ["g-0", "g-1", "g-2", "g-3"]
