"""A Hub-protocol server this project did not write: `olah` (PyPI), serving plain git repositories offline.

olah runs in its own venv (it pins its own fastapi/pydantic stack): `.ci/run` builds it and sets
LIDR_OLAH_PYTHON; by hand, `python3 -m venv /tmp/lidr-olah-venv && /tmp/lidr-olah-venv/bin/pip install olah==0.5.4`
(found there by default). With `offline = true` and `mirrors-path`, olah serves `<mirrors>/datasets/<org>/<name>`
(a git work tree) for `snapshot_download`, `hf_hub_download` and `datasets.load_dataset` through HF_ENDPOINT:
refs, tags and commits resolve, and LFS pointer files are served from `.git/lfs/objects/` as on the Hub. It
accepts no pushes, so `git_mirror` lays a repository out the way a publish left it on the Hub: one git commit per
Hub commit (the initial `.gitattributes` one, then one per version), a tag per version, LFS files as pointers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

DEFAULT_OLAH_PYTHON = "/tmp/lidr-olah-venv/bin/python"
OLAH_VERSION = "0.5.4"


def olah_python() -> tuple[str | None, str]:
    """(python of the olah venv, or None with the reason). LIDR_OLAH_PYTHON, when set, must work."""
    explicit = os.environ.get("LIDR_OLAH_PYTHON")
    python = explicit or DEFAULT_OLAH_PYTHON
    if not Path(python).is_file():
        if explicit:
            raise RuntimeError(f"LIDR_OLAH_PYTHON={explicit} does not exist")
        return None, (f"olah is not installed (no {DEFAULT_OLAH_PYTHON}): run .ci/run, or python3 -m venv "
                      f"/tmp/lidr-olah-venv && /tmp/lidr-olah-venv/bin/pip install olah=={OLAH_VERSION}")
    check = subprocess.run([python, "-c", "import olah.server"], capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        if explicit:
            raise RuntimeError(f"LIDR_OLAH_PYTHON={explicit} cannot import olah: {check.stderr.strip()[-500:]}")
        return None, f"{python} cannot import olah"
    return python, ""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "lidr-test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "lidr-test", "GIT_COMMITTER_EMAIL": "test@localhost", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def git_mirror(commits: list[dict], tags: dict[str, str], dest: Path) -> dict[str, str]:
    """A git work tree at `dest` replaying Hub commits ({oid, files: {path: bytes}, lfs: {paths}, message}, oldest
    first) and tags ({tag: Hub commit oid}); return {Hub commit oid: git commit sha}. LFS files become pointer files
    with their objects under .git/lfs/objects/, which is where olah reads them."""
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}
    for commit in commits:
        for path in sorted(p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts):
            path.unlink()
        for rel, data in commit["files"].items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel in commit["lfs"]:
                oid = hashlib.sha256(data).hexdigest()
                obj = dest / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
                obj.parent.mkdir(parents=True, exist_ok=True)
                obj.write_bytes(data)
                target.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n")
            else:
                target.write_bytes(data)
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "--allow-empty", "-m", commit.get("message") or "commit")
        shas[commit["oid"]] = _git(dest, "rev-parse", "HEAD")
    for tag, oid in tags.items():
        _git(dest, "tag", tag, shas[oid])
    return shas


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OlahServer:
    """olah on 127.0.0.1 in offline mode, serving the git repositories under `mirrors` (`datasets/<org>/<name>`)."""

    def __init__(self, python: str, mirrors: Path, workdir: Path):
        self.python, self.mirrors, self.workdir = python, mirrors, workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "olah.out"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> OlahServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.workdir / "cache"}"\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            "[accessibility]\noffline = true\n",  # never contact huggingface.co
            encoding="utf-8",
        )
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [self.python, "-m", "olah.server", "--config", str(config), "--log-path", str(self.workdir / "logs")],
                cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/api/whoami-v2", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"olah did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
