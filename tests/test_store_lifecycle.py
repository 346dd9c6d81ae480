"""Migrating is an explicit life-cycle step: `safety-stream db upgrade` (and `serve` / `worker`,
once as they start) migrate under the migration lock; every other open writes nothing and
refuses a store that is missing or behind, naming `safety-stream db upgrade --db URL`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import require_server
from distributed import METRICS_TOKEN, kafka_environment, kafka_settings
from realservers import free_port, stop_process
from sqlalchemy import text

from safety_stream.cli import main
from safety_stream.errors import UsageError
from safety_stream.store.engine import make_engine
from safety_stream.store.migrate import StoreUnavailable, current_revision, head_revision, upgrade
from safety_stream.store.opening import open_store, schema_status
from safety_stream.store.sql import SqlEventStore

EXECUTABLE = str(Path(sys.executable).with_name("safety-stream"))
HEAD = head_revision()
BEHIND = f"{int(HEAD) - 1:04d}"  # the revision before this version's


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the command as a user would see them."""
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own exits
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def store_at(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- (a) serve and two workers starting together on one new PostgreSQL database ---------------


def test_serve_and_two_workers_starting_together_on_a_new_database_all_come_up(
    postgres_url: str, tmp_path: Path
) -> None:
    """As compose would without its `migrate` service: all three upgrade as they start, under
    the lock, so one creates the schema, the others find it at head, and all three run."""
    settings = kafka_settings(require_server("Kafka", "SAFETY_STREAM_TEST_KAFKA"))
    env = kafka_environment(settings)
    assert revision_of(postgres_url) is None  # a new, empty database
    serve_port, worker_ports = free_port(), [free_port(), free_port()]
    commands = {
        "serve": [EXECUTABLE, "serve", "--db", postgres_url, "--port", str(serve_port)],
        **{
            f"worker-{i}": [
                EXECUTABLE,
                "worker",
                "--db",
                postgres_url,
                "--web-port",
                str(port),
                "--data-dir",
                str(tmp_path / f"worker-{i}" / "data"),
            ]
            for i, port in enumerate(worker_ports, start=1)
        },
    }
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():  # all three at once, none waiting for another
            (tmp_path / name).mkdir(exist_ok=True)
            with logs[name].open("wb") as log:
                processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=log, cwd=tmp_path / name, env=env
                )

        def log_of(name: str) -> str:
            return logs[name].read_text(errors="replace")

        def up() -> set[str]:
            ready = set()
            try:
                if httpx.get(f"http://127.0.0.1:{serve_port}/healthz", timeout=2).is_success:
                    ready.add("serve")
                for name, port in zip(("worker-1", "worker-2"), worker_ports, strict=True):
                    metrics = httpx.get(
                        f"http://127.0.0.1:{port}/metrics",
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                        timeout=5,
                    )
                    if metrics.is_success and "worker for" in log_of(name):
                        ready.add(name)
            except httpx.HTTPError:
                pass
            return ready

        deadline = time.monotonic() + 120
        ready: set[str] = set()
        while time.monotonic() < deadline:
            exited = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            assert not exited, {n: log_of(n)[-3000:] for n in exited}
            ready = up()
            if ready == set(commands):
                break
            time.sleep(0.5)
        assert ready == set(commands), {n: log_of(n)[-3000:] for n in set(commands) - ready}

        assert schema_status(postgres_url).current
        assert revision_of(postgres_url) == HEAD
        texts = [log_of(name) for name in commands]
        migrated = [t for t in texts if f"schema (new store) -> {HEAD}" in t]
        found = [t for t in texts if f"schema at {HEAD}, nothing to migrate" in t]
        assert (len(migrated), len(found)) == (1, 2), texts  # migrated once, under the lock
        assert not any("Traceback" in t for t in texts), texts
    finally:
        for process in processes.values():
            stop_process(process, timeout=60)


# --- (b) a mistyped --db creates nothing --------------------------------------------------------


def test_verify_of_a_mistyped_sqlite_store_fails_and_creates_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    status, out, err = run(["verify", "--db", url], capsys)
    assert status == 2 and out == ""
    assert f"no store at {tmp_path / 'typo.db'}" in err
    assert f"`safety-stream db upgrade --db {url}` creates one" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert status == 1 and "no store there" in out
    with pytest.raises(UsageError, match="no store at"):
        SqlEventStore.open(url)
    assert list(tmp_path.iterdir()) == []  # no database, no -migrate-lock, no -wal / -shm


def test_a_postgresql_database_without_the_schema_is_refused_and_left_empty(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["verify", "--db", postgres_url], capsys)
    assert status == 2
    assert "holds no safety-stream event log" in err and "db upgrade --db" in err
    assert run(["db", "status", "--db", postgres_url], capsys)[0] == 1
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar()
    finally:
        engine.dispose()
    assert tables == 0  # not even alembic_version


# --- (c) a store behind the code's schema is refused and left as it was ----------------------

READ_COMMANDS = [
    ["verify"],
    ["rejected"],
    ["replay"],
    ["alerts"],
    ["sites", "list"],
    ["readers", "list"],
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_read_commands_refuse_a_store_one_revision_behind_and_leave_it_unchanged(
    backend: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    store_at(url, BEHIND)
    shown = url  # no password in the test URLs
    file = Path(url.removeprefix("sqlite:///")) if backend == "sqlite" else None
    before = digest(file) if file else None
    for command in READ_COMMANDS:
        status, out, err = run([*command, "--db", url], capsys)
        assert status == 1, (command, out, err)
        assert f"schema is at revision {BEHIND}, this version needs {HEAD}" in err, command
        assert f"(upgrade it with `safety-stream db upgrade --db {shown}`)" in err, command
        assert "unexpected" not in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(StoreUnavailable, match=f"revision {BEHIND}.*safety-stream db upgrade"):
        SqlEventStore.open(url)  # the library's open refuses it the same way
    assert revision_of(url) == BEHIND
    if file is not None:
        assert digest(file) == before

    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert status == 1
    assert f"revision: {BEHIND}" in out and f"head: {HEAD}" in out
    assert f"status: behind (run `safety-stream db upgrade --db {shown}`)" in out
    assert revision_of(url) == BEHIND

    status, out, _ = run(["db", "upgrade", "--db", url], capsys)
    assert (status, out.strip()) == (0, f"{shown}: schema {BEHIND} -> {HEAD}")
    assert run(["verify", "--db", url], capsys)[0] == 0


# --- (d) db upgrade is idempotent; db status's exit codes ---------------------------------------


def test_db_upgrade_twice_changes_nothing_the_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "trial.db"
    url = f"sqlite:///{database}"
    status, out, _ = run(["db", "upgrade", "--db", url], capsys)
    assert (status, out.strip()) == (0, f"{url}: schema (new store) -> {HEAD}")
    before = digest(database)
    status, out, _ = run(["db", "upgrade", "--db", url], capsys)
    assert (status, out.strip()) == (0, f"{url}: schema at {HEAD} (head), nothing to do")
    assert digest(database) == before
    status, out, err = run(["migrate", "--db", url], capsys)  # the old name: an alias
    assert status == 0 and "nothing to do" in out
    assert "same as `safety-stream db upgrade`" in err


def test_db_status_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert status == 1 and "status: missing" in out
    assert list(tmp_path.iterdir()) == []  # status never creates anything

    store_at(url, BEHIND)
    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert status == 1 and "status: behind" in out

    assert run(["db", "upgrade", "--db", url], capsys)[0] == 0
    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert (status, out.splitlines()) == (
        0,
        [f"store: {url}", f"revision: {HEAD}", f"head: {HEAD}", "status: current"],
    )

    engine = make_engine(url)  # as a newer version of safety-stream would leave it
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    status, out, _ = run(["db", "status", "--db", url], capsys)
    assert status == 1 and "status: newer than this version" in out
    status, _, err = run(["db", "upgrade", "--db", url], capsys)
    assert status == 1 and "revision 9999" in err and "newer version" in err
    assert revision_of(url) == "9999"  # refused, not touched

    status, _, err = run(["db", "status", "--db", "trial.db"], capsys)
    assert status == 2 and "not a store URL" in err


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_db_upgrades_started_together_migrate_once(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    started = [
        subprocess.Popen(
            [EXECUTABLE, "db", "upgrade", "--db", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in started]
    assert [process.returncode for process in started] == [0, 0, 0], outputs
    assert sum(f"schema (new store) -> {HEAD}" in out for out in outputs) == 1, outputs
    assert sum("nothing to do" in out for out in outputs) == 2, outputs
    assert revision_of(url) == HEAD


def test_the_start_up_step_upgrades_and_other_opens_do_not(sqlite_url: str) -> None:
    """`open_store(url, create=True)` (serve, worker, the demo) upgrades a store behind;
    `open_store(url, create=False)` and `SqlEventStore.open` never do."""
    store_at(sqlite_url, BEHIND)
    with pytest.raises(StoreUnavailable, match="db upgrade"):
        open_store(sqlite_url, create=False)
    assert revision_of(sqlite_url) == BEHIND
    store = open_store(sqlite_url, create=True)
    store.close()
    assert revision_of(sqlite_url) == HEAD
    SqlEventStore.open(sqlite_url).close()
