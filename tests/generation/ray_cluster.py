"""A real Ray cluster for tests: `ray start --head --block` on this machine, with its own temp dir, 2 CPUs, a
small object store and its own auth token (token auth, as Ray recommends; never ~/.ray), stopped by its process
group afterwards. Workers find the test helpers on PYTHONPATH; drivers need `env()` (or `auth_env()`)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class RayCluster:
    def __init__(self, num_cpus: int = 2):
        self.num_cpus = num_cpus
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.tmp: Path | None = None

    def auth_env(self) -> dict[str, str]:
        if self.tmp is None:
            return {"RAY_AUTH_MODE": "disabled"}
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.tmp / "auth_token")}

    def env(self) -> dict[str, str]:
        return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.auth_env(),
                "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])}

    def __enter__(self) -> RayCluster:
        # A short temp dir: Ray's unix socket paths must stay under 108 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="lidr-ray-"))
        (self.tmp / "auth_token").write_text(secrets.token_hex(32))
        ray = Path(sys.executable).parent / "ray"
        self.log = open(self.tmp / "ray-start.log", "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [str(ray), "start", "--head", "--block", "--port=0", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
             "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=200000000",
             f"--temp-dir={self.tmp}"],
            env=self.env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        address_file = self.tmp / "ray_current_cluster"
        deadline = time.monotonic() + 120
        while not address_file.is_file() or not address_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"ray start failed: {(self.tmp / 'ray-start.log').read_text()[-2000:]}")
            time.sleep(0.2)
        # Connect through loopback (the head listens on every interface).
        self.address = "127.0.0.1:" + address_file.read_text().strip().rsplit(":", 1)[1]
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):  # the group we started, nothing else
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _group_alive(self.proc.pid):
                    self.proc.poll()
                    time.sleep(0.2)
            self.proc.wait(timeout=10)
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
