"""The tiny random model: written whole or not at all, and a half folder (a full disk or a kill while an earlier
version wrote it in place) is rebuilt instead of failing every later build of the work folder."""

from __future__ import annotations

import os

import pytest

from lidr_data.cli import main
from lidr_data.tiny_model import ensure_tiny_model, is_complete


def _loads(folder) -> None:
    from transformers import AutoConfig, AutoTokenizer

    AutoConfig.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).chat_template


@pytest.mark.parametrize("damage", ["left-by-a-full-disk", "truncated-weights", "no-tokenizer"])
def test_a_half_tiny_model_folder_is_rebuilt(tmp_path, damage):
    folder = tmp_path / "w" / "tiny-model"
    ensure_tiny_model(folder)
    assert is_complete(folder)
    if damage == "left-by-a-full-disk":  # what ENOSPC in model.save_pretrained left: the two small JSON files
        keep = {"config.json", "generation_config.json"}
        for path in folder.iterdir():
            if path.name not in keep:
                path.unlink()
    elif damage == "truncated-weights":  # a kill while the weights were written
        weights = folder / "model.safetensors"
        os.truncate(weights, weights.stat().st_size // 2)
    else:
        (folder / "tokenizer.json").unlink()
    assert not is_complete(folder)
    assert ensure_tiny_model(folder) == folder
    assert is_complete(folder) and sorted(p.name for p in folder.parent.iterdir()) == ["tiny-model"]
    _loads(folder)


def test_a_full_disk_while_writing_the_tiny_model_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import transformers.modeling_utils as modeling_utils

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)  # what fitted
        # safetensors raises its own error type, not OSError: recognised by its words
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(modeling_utils, "safe_save_file", full)
    out = tmp_path / "w" / "tiny-model"
    assert main(["tiny-model", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: no space left on the device holding tiny model" in err and str(out) in err, err
    assert "Traceback" not in err
    assert not out.exists() and list(out.parent.iterdir()) == []  # no half model, no temporary folder
    monkeypatch.undo()
    assert main(["tiny-model", str(out)]) == 0 and is_complete(out)


def test_tiny_model_refuses_a_folder_holding_other_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main(["tiny-model", str(folder)]) == 2
    assert "is not a model folder" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "keep me"
