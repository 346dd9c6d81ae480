"""``safety-stream serve`` in a child process on a free port, for end-to-end tests and benchmarks.

The benchmarks import this module too (they add ``tests/`` to ``sys.path``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from realservers import free_port, stop_process


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    token: str  # an admin reader's bearer token
    port: int

    def stop(self) -> None:
        stop_process(self.process, timeout=20)


def start_safety_stream(
    db: str,
    workdir: Path,
    plan: Path | None = None,
    alerts: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServeProcess:
    """Create an admin token, start the server and wait for /healthz (log: workdir/server.log)."""
    executable = str(Path(sys.executable).with_name("safety-stream"))
    token = subprocess.run(
        [executable, "readers", "add", "admin", "--role", "admin", "--db", db],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()[-1]  # fmt: skip
    port = free_port()
    command = [executable, "serve", "--db", db, "--port", str(port)]
    command += ["--plan", str(plan)] if plan else []
    command += ["--alerts", str(alerts)] if alerts else []
    log = (workdir / "server.log").open("ab")
    server = ServeProcess(
        subprocess.Popen(command, stdout=log, stderr=log, cwd=workdir, env=env),
        f"http://127.0.0.1:{port}", token, port,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.stop()
    tail = (workdir / "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"safety-stream serve did not start; its log:\n{tail}")
