"""The demo's own server: a fresh demo directory, credentials, alert routing, and
``safety-stream serve`` in a child process (the same command an operator runs)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from safety_stream.store.credentials_sql import SqlCredentials
from safety_stream.store.sql import SqlEventStore

READER = "safety-officer"


@dataclass(frozen=True)
class DemoFiles:
    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "demo.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def alert_config(self) -> Path:
        return self.directory / "alerts.yaml"

    @property
    def alert_outbox(self) -> Path:
        return self.directory / "alerts.ndjson"

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"

    @property
    def tokens(self) -> Path:
        return self.directory / "tokens.txt"

    def fresh(self) -> None:
        """Start from nothing: a rerun must not find the previous run's events (same ids)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in (self.database, self.alert_outbox, self.server_log, self.tokens):
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)


def issue_credentials(files: DemoFiles, sites: list[str]) -> tuple[dict[str, str], str]:
    """One token per site and one for a safety officer; written (0600) to ``tokens.txt``."""
    store = SqlEventStore.create(files.db_url)
    try:
        credentials = SqlCredentials(store.engine)
        site_tokens = {site: credentials.add(site, "site", site) for site in sites}
        reader = credentials.add(READER, "safety_officer", None)
    finally:
        store.close()
    files.tokens.touch(mode=0o600)
    lines = [f"# bearer tokens of this demo database ({files.database.name})"]
    lines += [f"{site} {token}" for site, token in site_tokens.items()]
    lines.append(f"{READER} {reader}")
    files.tokens.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site_tokens, reader


def write_alert_config(files: DemoFiles, board_url: str) -> None:
    """Every alert to an NDJSON outbox file in the demo directory (the console shows them)."""
    files.alert_config.write_text(
        f"board_url: {board_url}\n"
        "groups:\n"
        "  - name: dsmb\n"
        "    channels:\n"
        "      - type: file\n"
        f"        path: {files.alert_outbox}\n",
        encoding="utf-8",
    )


def pick_port(host: str, preferred: int) -> int:
    """``preferred`` if it is free, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")


class DemoServer:
    """``safety-stream serve`` on the demo database, logging to ``server.log``."""

    def __init__(self, files: DemoFiles, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"
        command = [
            sys.executable, "-m", "safety_stream.cli", "serve", "--db", files.db_url,
            "--host", host, "--port", str(port), "--alerts", str(files.alert_config),
        ]  # fmt: skip
        self._log = files.server_log.open("ab")
        # its own session: Ctrl-C in the terminal stops the demo, which then stops the server
        # (after the summary), instead of killing the server under the posting sites
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=files.directory,
            start_new_session=True,
        )
        self._files = files

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        tail = self._files.server_log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the demo server did not start; the end of its log:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
