"""Real Prometheus and Alertmanager servers, and tiny HTTP endpoints, on 127.0.0.1 for tests.

The servers are Debian's binaries (packages `prometheus` and `prometheus-alertmanager`).
`require_binary` skips a test when one is missing, except under CI (`CI` set), where it fails:
CI installs them, so a missing binary there is a broken setup, not an optional feature.

Every server here listens on 127.0.0.1 only, keeps its state under the directory it is given,
and is stopped by `stop()` or by leaving its `with` block.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"
AMTOOL = "amtool"

# The Debian package that ships each binary, for the skip / fail message.
_PACKAGE_OF = {
    PROMETHEUS: "prometheus",
    PROMTOOL: "prometheus",
    ALERTMANAGER: "prometheus-alertmanager",
    AMTOOL: "prometheus-alertmanager",
}

READY_TIMEOUT = 30.0
_START_ATTEMPTS = 3  # a free port can be taken between free_port() and the server's bind

T = TypeVar("T")


def require_binary(name: str) -> str:
    """The path of an executable; skips the test without it, or fails it under CI."""
    path = shutil.which(name)
    if path is None and os.access(f"/usr/bin/{name}", os.X_OK):
        path = f"/usr/bin/{name}"
    if path is not None:
        return path
    package = _PACKAGE_OF.get(name, name)
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required under CI: apt-get install {package}")
    pytest.skip(f"{name} not available: apt-get install {package}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL if it lingers past ``timeout``; safe to call twice."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str | None = None,
) -> T:
    """Call `predicate` until it returns something truthy, and return that; TimeoutError if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", "a condition")
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {name}")
        time.sleep(interval)


# --- Prometheus and Alertmanager -------------------------------------------------------------


class ServerStartError(RuntimeError):
    """A server exited or did not become ready; the message ends with its output."""


class RunningServer:
    """A server process started by this module, listening at `url`."""

    def __init__(
        self, name: str, url: str, process: subprocess.Popen[bytes], log_path: Path, log: IO[bytes]
    ) -> None:
        self.name = name
        self.url = url
        self.process = process
        self.log_path = log_path
        self._log = log

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the process wrote (stdout and stderr together)."""
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers); safe to call twice."""
        stop_process(self.process)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer({self.name!r}, {self.url!r}, pid={self.process.pid})"


def _start(name: str, workdir: Path, argv_for_port: Callable[[int], list[str]]) -> RunningServer:
    """Start a server on a free port and wait for its /-/ready; retry if the port was taken."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        log_path = workdir / f"{name}.{attempt}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            argv_for_port(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        server = RunningServer(name, f"http://127.0.0.1:{port}", process, log_path, log)
        try:
            _wait_ready(server)
        except ServerStartError:
            tail = server.log_tail()
            server.stop()
            if "address already in use" in tail and attempt < _START_ATTEMPTS:
                continue
            raise
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        code = server.process.poll()
        if code is not None:
            raise ServerStartError(
                f"{server.name} exited with status {code} before it was ready; its output:\n"
                f"{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{server.name} at {server.url} was not ready after {READY_TIMEOUT:g} s; "
                f"its output:\n{server.log_tail()}"
            )
        time.sleep(0.1)


def start_prometheus(
    workdir: Path,
    scrape_targets: list[str],
    rule_files: list[Path],
    alertmanager_url: str | None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    bearer_token: str | None = None,
) -> RunningServer:
    """Prometheus scraping `scrape_targets` (host:port, /metrics) as job "safety-stream",
    sending `bearer_token` (from a credentials file) when given.

    It evaluates `rule_files` and, given `alertmanager_url`, sends alerts there. Its config is
    workdir/prometheus.yml and its TSDB workdir/data.
    """
    binary = require_binary(PROMETHEUS)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(path.resolve()) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": "safety-stream",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(scrape_targets)}],
            }
        ],
    }
    if alertmanager_url is not None:
        parts = urlsplit(alertmanager_url)
        alertmanager: dict[str, Any] = {
            "scheme": parts.scheme or "http",
            "static_configs": [{"targets": [parts.netloc]}],
        }
        if parts.path.strip("/"):
            alertmanager["path_prefix"] = parts.path
        config["alerting"] = {"alertmanagers": [alertmanager]}
    workdir.mkdir(parents=True, exist_ok=True)
    if bearer_token is not None:
        token_file = workdir / "metrics.token"
        token_file.write_text(bearer_token)
        config["scrape_configs"][0]["authorization"] = {
            "type": "Bearer",
            "credentials_file": str(token_file),
        }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    data = workdir / "data"

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    return _start("prometheus", workdir, argv)


def start_alertmanager(workdir: Path, config_text: str) -> RunningServer:
    """Alertmanager with `config_text` as workdir/alertmanager.yml, state in workdir/data."""
    binary = require_binary(ALERTMANAGER)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(config_text, encoding="utf-8")
    data = workdir / "data"

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single, isolated instance
        ]

    return _start("alertmanager", workdir, argv)


def prometheus_query(url: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; RuntimeError with Prometheus's error text if it fails.

    A vector comes back as Prometheus returns it ({"metric": ..., "value": [t, "v"]} per
    series); a scalar or string result as one such entry with no labels.
    """
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10.0)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise RuntimeError(
            f"Prometheus query {expr!r} failed: HTTP {response.status_code}: {response.text[:500]}"
        ) from None
    if response.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(
            f"Prometheus query {expr!r} failed: HTTP {response.status_code}: "
            f"{body.get('errorType', 'error')}: {body.get('error', response.text[:500])}"
        )
    data: dict[str, Any] = body["data"]
    if data["resultType"] in ("vector", "matrix"):
        result: list[dict[str, Any]] = data["result"]
        return result
    return [{"metric": {}, "value": data["result"]}]


# --- tiny HTTP endpoints ---------------------------------------------------------------------


class _ThreadedEndpoint:
    """An http.server on a free 127.0.0.1 port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST a WebhookReceiver recorded; `body` is the parsed JSON (text if not JSON)."""

    path: str
    headers: dict[str, str]
    body: Any


class WebhookReceiver(_ThreadedEndpoint):
    """Records every POST (any path) and answers 200, e.g. as Alertmanager's webhook target."""

    def __init__(self) -> None:
        self._received: list[ReceivedRequest] = []
        self._condition = threading.Condition()
        receiver = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body: Any
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                receiver._record(ReceivedRequest(self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)

    def _record(self, request: ReceivedRequest) -> None:
        with self._condition:
            self._received.append(request)
            self._condition.notify_all()

    @property
    def received(self) -> list[ReceivedRequest]:
        """A snapshot of what arrived so far, oldest first."""
        with self._condition:
            return list(self._received)

    def wait_for_count(self, n: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Wait until at least `n` requests arrived; TimeoutError (with the count) if not."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._received) >= n, timeout=timeout):
                raise TimeoutError(
                    f"{len(self._received)} of {n} webhook requests arrived in {timeout:g} s"
                )
            return list(self._received)


class MetricsTarget(_ThreadedEndpoint):
    """Serves `exposition` (Prometheus text format) at /metrics; assign to change it."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, exposition: str) -> None:
        self.exposition = exposition
        target = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                payload = target.exposition.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", MetricsTarget.CONTENT_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(Handler)
