"""Cheap requests do not starve ``serve`` (issue 17): slow request heads are cut off, live board
streams are capped per credential and in all and end when their credential is revoked, and a
new SQLite store is readable by its owner only. Each runs against a real ``serve`` process."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from serve_process import ServeProcess, start_safety_stream
from trial_builder import Trial

from safety_stream.board.live import LiveStreams
from safety_stream.events import encode_json
from safety_stream.store.sql import SqlEventStore

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLOW_CONNECTIONS = 300


def safety_stream(db: str, *args: str) -> str:
    executable = str(Path(sys.executable).with_name("safety-stream"))
    done = subprocess.run(
        [executable, *args, "--db", db], check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServeProcess, str]]:
    db = f"sqlite:///{tmp_path / 'limits.db'}"
    env = os.environ | {
        "SAFETY_STREAM_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "SAFETY_STREAM_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    }
    running = start_safety_stream(db, tmp_path, env=env)
    try:
        yield running, db
    finally:
        running.stop()


def post_one_event(server: ServeProcess) -> httpx.Response:
    trial = Trial()
    trial.enrol("P-1")
    return httpx.post(
        f"{server.url}/v1/events",
        content=encode_json(trial.events[0]).encode(),
        headers={
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/x-ndjson",
        },
        timeout=10,
    )


def closed_by_server(connection: socket.socket) -> bool:
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def test_slow_request_heads_do_not_hold_the_server(
    server: tuple[ServeProcess, str],
) -> None:
    running, _ = server
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CONNECTIONS):  # slowloris: a head that never ends
            connection = socket.create_connection(("127.0.0.1", running.port), timeout=5)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        opened = time.monotonic()
        started = time.monotonic()
        response = post_one_event(running)
        took = time.monotonic() - started
        assert response.status_code == 201, response.text
        assert took < 2.0, f"a POST took {took:.2f} s with {SLOW_CONNECTIONS} slow heads open"
        for connection in slow:
            connection.setblocking(False)
        open_ones = set(slow)
        deadline = opened + HEAD_TIMEOUT + 5
        while open_ones and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_ones), [], [], 0.5)
            open_ones -= {c for c in readable if closed_by_server(c)}
        elapsed = time.monotonic() - opened
        assert not open_ones, f"{len(open_ones)} slow connections still open after {elapsed:.1f} s"
        assert elapsed >= HEAD_TIMEOUT - 0.5  # closed by the timeout, not at once
        fresh = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        with fresh:  # a whole request on a new connection is answered as ever
            fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert fresh.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for connection in slow:
            connection.close()


def open_stream(
    stack: ExitStack, client: httpx.Client, token: str
) -> tuple[httpx.Response, Iterator[str]]:
    response = stack.enter_context(
        client.stream("GET", "/board/stream", headers={"Authorization": f"Bearer {token}"})
    )
    return response, response.iter_text()


def test_live_streams_are_capped_per_credential_and_end_when_it_is_revoked(
    server: tuple[ServeProcess, str],
) -> None:
    running, db = server
    officer = safety_stream(db, "readers", "add", "officer", "--role", "safety_officer")
    timeout = httpx.Timeout(5.0)
    limits = httpx.Limits(max_connections=20)
    with (
        ExitStack() as stack,
        httpx.Client(base_url=running.url, timeout=timeout, limits=limits) as client,
    ):
        admins = [open_stream(stack, client, running.token) for _ in range(4)]
        assert all(response.status_code == 200 for response, _ in admins)
        assert all(next(text).startswith("retry: ") for _, text in admins)
        refused = client.get("/board/stream", headers={"Authorization": f"Bearer {running.token}"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "too many live board streams" in refused.text
        watching, text = open_stream(stack, client, officer)  # another credential still may
        assert watching.status_code == 200 and next(text).startswith("retry: ")
        safety_stream(db, "readers", "revoke", "officer")
        revoked = time.monotonic()
        assert list(text) == []  # the stream ends (a read timeout of 5 s would raise)
        assert time.monotonic() - revoked < 3
        # the admin's streams carry on, and hear about a new event
        assert post_one_event(running).status_code == 201
        assert next(admins[0][1]).startswith("id: ")


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        store = SqlEventStore.create(f"sqlite:///{path}")
        try:
            with store.engine.connect() as connection:  # WAL: -wal and -shm exist meanwhile
                connection.exec_driver_sql("SELECT 1")
                files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
                modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files if f.exists()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert len(modes) == 3, modes
    assert set(modes.values()) == {0o600}, {name: oct(mode) for name, mode in modes.items()}


def test_streams_with_the_same_stamp_key_share_one_poll() -> None:
    reads = {"readers": 0, "S1": 0}

    def reader(key: str) -> Callable[[], str]:
        def read() -> str:
            reads[key] += 1
            return "unchanged"

        return read

    async def quiet() -> bool:
        return False

    async def watch(live: LiveStreams, name: str, key: str) -> list[str]:
        slot = live.admit(name)
        events = live.events(slot, key, reader(key), "unchanged", quiet)
        return [message async for message in events]

    async def run() -> list[list[str]]:
        live = LiveStreams(per_credential=20, in_all=40, check_seconds=0.05, stream_seconds=1)
        watchers = [watch(live, f"reader-{i % 5}", "readers") for i in range(20)]
        watchers += [watch(live, "S1", "S1") for _ in range(4)]
        done = await asyncio.gather(*watchers)
        assert live.open_streams == 0  # every slot given back
        return done

    streams = asyncio.run(run())
    assert all(messages == [messages[0]] for messages in streams)  # quiet: the preamble only
    # one poll per key, every 0.05 s for about 1 s: not 20 (or 4) streams' worth of reads
    assert 10 <= reads["readers"] <= 30 and 10 <= reads["S1"] <= 30, reads


def test_at_the_connection_cap_slow_heads_make_room_for_a_request(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cap.db'}"
    env = os.environ | {"SAFETY_STREAM_MAX_CONNECTIONS": "50"}  # head timeout: the default 10 s
    running = start_safety_stream(db, tmp_path, env=env)
    slow = []
    try:
        for _ in range(100):
            connection = socket.create_connection(("127.0.0.1", running.port), timeout=5)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        response = post_one_event(running)  # not a 503: the oldest slow heads were dropped
        assert response.status_code == 201, response.text
    finally:
        for connection in slow:
            connection.close()
        running.stop()


def test_a_body_dripped_slower_than_the_deadline_gets_a_408_and_is_closed(
    server: tuple[ServeProcess, str],
) -> None:
    running, _ = server
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            + f"Authorization: Bearer {running.token}\r\n".encode()
            + b"Content-Length: 1000\r\n\r\n{"
        )  # the whole head, then one byte of a promised thousand
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < 10:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert BODY_TIMEOUT - 0.5 <= time.monotonic() - started < BODY_TIMEOUT + 5
    assert post_one_event(running).status_code == 201  # and the server goes on


def test_connections_to_the_served_socket_send_without_waiting_for_an_ack() -> None:
    """Connections accepted on serve's listening socket have Nagle's algorithm off: with it on,
    every response's last segment waited for the client's delayed ACK (~40 ms a request)."""
    from safety_stream.commands.serve import listen

    async def accepted_nodelay() -> int:
        options: list[int] = []
        done = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                options.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                done.set()

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        with socket.create_connection(sock.getsockname()[:2]):
            await asyncio.wait_for(done.wait(), 5)
        server.close()
        await server.wait_closed()
        return options[0]

    assert asyncio.run(accepted_nodelay()) != 0
