"""Kill -9 the server again and again while a site posts 20,000 events: nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from safety_stream.client import SiteClient
from safety_stream.projections.projector import Projector, replay
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.synthetic import make_events

EVENTS = 20_000
KILLS = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``safety-stream serve`` in a child process we can SIGKILL."""

    def __init__(self, db: str, port: int, workdir: Path) -> None:
        self.db, self.port, self.workdir = db, port, workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log = (workdir / "server.log").open("ab")

    def start(self) -> None:
        executable = Path(sys.executable).with_name("safety-stream")
        self.process = subprocess.Popen(
            [str(executable), "serve", "--db", self.db, "--port", str(self.port)],
            cwd=self.workdir, stdout=self.log, stderr=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server did not start; see server.log")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    executable = Path(sys.executable).with_name("safety-stream")
    token = subprocess.run(
        [str(executable), "readers", "add", "loader", "--role", "admin", "--db", db],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()[-1]  # fmt: skip
    (tmp_path / "token").write_text(token)
    running = Server(db, free_port(), tmp_path)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.kill()


def test_sigkill_during_ingest_loses_and_doubles_nothing(server: Server, tmp_path: Path) -> None:
    events = make_events(EVENTS, seed=11)
    token = (tmp_path / "token").read_text()
    client = SiteClient(
        f"http://127.0.0.1:{server.port}", token, retries=400, backoff=0.02, max_backoff=0.25
    )
    posted: list[int] = []
    failure: list[BaseException] = []

    def post_all() -> None:
        try:
            for start in range(0, EVENTS, 250):
                summary = client.post_events(events[start : start + 250])
                assert summary.rejected == 0, summary.problems[:3]
                posted.append(summary.stored + summary.duplicates)
        except BaseException as error:
            failure.append(error)

    poster = threading.Thread(target=post_all)
    poster.start()
    rng = random.Random(5)
    batches = EVENTS // 250
    # kill at points picked by progress, not by wall time, so a faster server still gets killed
    # mid-stream: after a random number of acknowledged batches plus a random delay (landing
    # anywhere in a request: parsing, validating, appending, committing, projecting)
    batches_done_at_kill = []
    for target in sorted(rng.sample(range(3, batches - 10), KILLS)):
        while len(posted) < target and poster.is_alive():
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        batches_done_at_kill.append(len(posted))
        server.kill()
        time.sleep(rng.uniform(0.0, 0.3))
        server.start()
    poster.join(timeout=600)
    client.close()
    assert not poster.is_alive()
    assert failure == []
    # the kills landed while the site was still posting (not after it had finished)
    assert sum(done < batches for done in batches_done_at_kill) >= 3, batches_done_at_kill
    assert sum(posted) == EVENTS  # every batch acknowledged, each event exactly once
    server.kill()

    store = SqlEventStore.open(server.db)
    stored = list(store.read())
    assert len(stored) == EVENTS
    assert {str(s.event_id) for s in stored} == {e["event_id"] for e in events}
    assert store.verify().ok
    live = Projector(store, SqlProjectionRepository(store.engine))
    live.catch_up()  # what a restarted server does first
    rebuilt, count, _ = replay(store, InMemoryProjectionRepository())
    assert count == EVENTS
    assert live.state == rebuilt
    store.close()
