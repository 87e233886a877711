"""Locks between real processes: flock on a `.lock` file, released when the holder ends (even by SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lidr_data.errors import LidrError
from lidr_data.locks import LOCK_FILE, hold

HOLDER = ("import sys, time; from lidr_data.locks import hold\n"
          "with hold(sys.argv[1], 'build'):\n"
          "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")


def start_holder(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the lock of `folder`; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_names_its_holder_and_is_freed_when_it_ends(tmp_path: Path):
    folder = tmp_path / "runs" / "demo" / "iter-1"
    proc = start_holder(folder, 30)
    try:
        with pytest.raises(LidrError, match=rf"another build \(pid {proc.pid}\) holds {folder}"):
            with hold(folder, "build"):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the kernel drops the lock with the process
        proc.wait()
    with hold(folder, "build") as path:
        assert path == folder / LOCK_FILE and path.read_text().strip() == str(os.getpid())


def test_waiting_for_a_lock_and_reentry(tmp_path: Path):
    proc = start_holder(tmp_path, 0.5)
    started = time.monotonic()
    with hold(tmp_path, "writer", wait_s=30):
        assert time.monotonic() - started < 25
        with hold(tmp_path, "writer"):  # the same process again: re-entrant
            pass
    proc.wait()
    assert proc.returncode == 0
