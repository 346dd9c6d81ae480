"""Credentials are listed, revoked, rotated and expire (issue 17, item 8): a revoked, rotated
away or expired token is refused by the API and ends the board sessions it opened; the
credentials' history is hash-chained; site ids and reader names are identifiers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, text, update

from safety_stream.api.app import create_app
from safety_stream.auth import CredentialError, token_hash
from safety_stream.cli import main
from safety_stream.runtime import Runtime, build_memory_runtime, build_runtime
from safety_stream.settings import Settings
from safety_stream.store.credentials_memory import InMemoryCredentials
from safety_stream.store.credentials_sql import SqlCredentials, verify_credential_changes
from safety_stream.store.opening import open_store
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import CredentialChangeRow

SH = "CN-SH-01"
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(params=["memory", "sqlite"])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    if request.param == "memory":
        built = build_memory_runtime()
    else:
        built = build_runtime(Settings(db=request.getfixturevalue("sqlite_url")))
    yield built
    built.close()


def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), follow_redirects=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the API refuses what is no longer valid ---------------------------------------------------


def test_a_revoked_token_is_refused_by_the_api(runtime: Runtime) -> None:
    api = client(runtime)
    officer = runtime.credentials.add("officer", "safety_officer", None)
    site = runtime.credentials.add(SH, "site", SH)
    assert api.get("/v1/rules", headers=bearer(officer)).status_code == 200
    revoked = runtime.credentials.revoke("officer", actor="test")
    assert revoked.revoked_at is not None
    assert api.get("/v1/rules", headers=bearer(officer)).status_code == 401
    assert runtime.credentials.authenticate(site) is not None  # only that one credential
    with pytest.raises(CredentialError, match="already revoked"):
        runtime.credentials.revoke("officer")
    (listed,) = [c for c in runtime.credentials.listing() if c.name == "officer"]
    assert listed.revoked_at == revoked.revoked_at  # kept, for the audit


def test_rotating_refuses_the_old_token_and_accepts_the_new(runtime: Runtime) -> None:
    api = client(runtime)
    old = runtime.credentials.add("officer", "safety_officer", None)
    new = runtime.credentials.rotate("officer")
    assert new != old
    assert api.get("/v1/rules", headers=bearer(old)).status_code == 401
    assert api.get("/v1/rules", headers=bearer(new)).status_code == 200
    principal = runtime.credentials.authenticate(new)
    assert principal is not None
    assert (principal.name, principal.role, principal.site_id) == (
        "officer",
        "safety_officer",
        None,
    )
    with pytest.raises(CredentialError, match="no credential named 'nobody'"):
        runtime.credentials.rotate("nobody")


def test_rotating_a_revoked_credential_issues_it_again(runtime: Runtime) -> None:
    runtime.credentials.add(SH, "site", SH)
    runtime.credentials.revoke(SH)
    token = runtime.credentials.rotate(SH)
    principal = runtime.credentials.authenticate(token)
    assert principal is not None and principal.site_id == SH


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_an_expired_token_is_refused_by_the_api(sqlite_url: str) -> None:
    runtime = build_runtime(Settings(db=sqlite_url))
    try:
        past = datetime.now(UTC) - timedelta(days=2)
        issued_then = SqlCredentials(runtime.store.engine, lambda: past)  # type: ignore[attr-defined]
        token = issued_then.add("officer", "safety_officer", None, past + timedelta(days=1))
        assert issued_then.authenticate(token) is not None  # valid back then
        assert client(runtime).get("/v1/rules", headers=bearer(token)).status_code == 401
    finally:
        runtime.close()


# --- board sessions end with their credential ---------------------------------------------------


def login(api: TestClient, token: str) -> None:
    response = api.post("/board/login", data={"token": token, "next": "/board"}, headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/board"
    assert api.get("/board").status_code == 200


@pytest.mark.parametrize("change", ["revoke", "rotate"])
def test_a_changed_credential_ends_its_open_board_session(runtime: Runtime, change: str) -> None:
    officer = runtime.credentials.add("officer", "safety_officer", None)
    dsmb = runtime.credentials.add("dsmb", "dsmb", None)
    board, other = client(runtime), client(runtime)
    login(board, officer)
    login(other, dsmb)
    if change == "revoke":
        runtime.credentials.revoke("officer")
    else:
        runtime.credentials.rotate("officer")
    page = board.get("/board")
    assert page.status_code == 303 and page.headers["location"] == "/board/login"
    assert board.get("/board/panels").status_code == 401
    assert other.get("/board").status_code == 200  # another credential's session goes on


def test_an_expired_credential_ends_its_open_board_session() -> None:
    clock = Clock()
    runtime = build_memory_runtime()
    runtime.credentials = InMemoryCredentials(clock)
    try:
        token = runtime.credentials.add("officer", "safety_officer", None,
                                        expires_at=clock.now + timedelta(hours=1))  # fmt: skip
        board = client(runtime)
        login(board, token)
        clock.now += timedelta(hours=1)
        assert board.get("/board").status_code == 303
    finally:
        runtime.close()


# --- the credentials' history ------------------------------------------------------------------


def test_the_credential_history_is_chained_and_an_edit_is_detected(sqlite_url: str) -> None:
    store = open_store(sqlite_url, create=True)
    try:
        credentials = SqlCredentials(store.engine)
        credentials.add(SH, "site", SH, actor="alice")
        credentials.add("officer", "safety_officer", None, actor="alice")
        credentials.rotate(SH, expires_at=datetime.now(UTC) + timedelta(days=90), actor="bob")
        credentials.revoke("officer", actor="bob")
        changes = credentials.changes()
        assert [(c.id, c.name, c.action, c.actor) for c in changes] == [
            (1, SH, "added", "alice"),
            (2, "officer", "added", "alice"),
            (3, SH, "rotated", "bob"),
            (4, "officer", "revoked", "bob"),
        ]
        assert changes[2].expires_at is not None and changes[0].expires_at is None
        assert verify_credential_changes(store.engine) is None
        with store.engine.begin() as connection:  # someone hides who issued the token
            connection.execute(
                update(CredentialChangeRow).where(CredentialChangeRow.id == 3).values(role="admin")
            )
        broken = verify_credential_changes(store.engine)
        assert broken is not None and "row 3" in broken and "rotated" in broken
        with store.engine.begin() as connection:  # ... or deletes the row
            connection.execute(delete(CredentialChangeRow).where(CredentialChangeRow.id == 3))
        broken = verify_credential_changes(store.engine)
        assert broken is not None and "row 4" in broken
    finally:
        store.close()


def test_migration_0007_upgrades_a_store_at_0006(sqlite_url: str) -> None:
    from alembic import command

    from safety_stream.store.migrate import alembic_config, upgrade

    store = open_store(sqlite_url, create=True)
    try:
        command.downgrade(alembic_config(store.engine), "0006")
        with store.engine.begin() as connection:  # a credential issued before 0007
            connection.execute(
                text(
                    "INSERT INTO credentials (name, role, site_id, token_hash, created_at) "
                    "VALUES (:name, 'site', :name, :hash, '2025-01-01 00:00:00.000000')"
                ),
                {"name": SH, "hash": token_hash("sst_old")},
            )
        upgrade(store.engine)
        credentials = SqlCredentials(store.engine)
        principal = credentials.authenticate("sst_old")
        assert principal is not None and principal.site_id == SH
        (listed,) = credentials.listing()
        assert (listed.expires_at, listed.revoked_at) == (None, None)
        assert credentials.changes() == []
        credentials.revoke(SH)
        assert credentials.authenticate("sst_old") is None
        assert verify_credential_changes(store.engine) is None
    finally:
        store.close()


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAFETY_STREAM_DB", raising=False)
    return f"sqlite:///{tmp_path / 'trial.db'}"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the command as a user would see them."""
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own exits
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def token_of(out: str) -> str:
    return out.strip().splitlines()[-1]


def assert_one_line(err: str, command: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"safety-stream {command}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_list_shows_names_roles_and_dates_but_never_a_secret(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["sites", "add", SH, "--expires", "2099-06-30", "--db", db], capsys)
    assert status == 0 and "expires 2099-07-01 00:00:00Z" in out
    site_token = token_of(out)
    status, out, _ = run(["readers", "add", "officer", "--role", "dsmb", "--db", db], capsys)
    reader_token = token_of(out)
    assert run(["readers", "revoke", "officer", "--db", db], capsys)[0] == 0

    status, sites, _ = run(["sites", "list", "--db", db], capsys)
    assert status == 0
    header, row = sites.strip().splitlines()
    assert header.split() == ["NAME", "ROLE", "SITE", "CREATED", "EXPIRES", "REVOKED"]
    assert row.split()[:3] == [SH, "site", SH] and "2099-07-01 00:00:00Z" in row
    assert row.split()[-1] == "-"  # not revoked
    status, readers, _ = run(["readers", "list", "--db", db], capsys)
    (row,) = readers.strip().splitlines()[1:]
    assert row.split()[:3] == ["officer", "dsmb", "-"] and row.split()[-1] != "-"
    for secret in (site_token, reader_token, token_hash(site_token), token_hash(reader_token)):
        assert secret not in sites + readers


def test_rotate_and_revoke_on_the_command_line(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = token_of(run(["sites", "add", SH, "--db", db], capsys)[1])
    status, out, _ = run(["sites", "rotate", SH, "--expires", "2099-01-01T08:00", "--db", db],
                         capsys)  # fmt: skip
    assert status == 0 and "shown only once" in out and "expires 2099-01-01 08:00:00Z" in out
    new = token_of(out)
    assert new.startswith("sst_") and new != old
    store = SqlEventStore.open(db)
    try:
        credentials = SqlCredentials(store.engine)
        assert credentials.authenticate(old) is None
        assert credentials.authenticate(new) is not None
        assert run(["sites", "revoke", SH, "--db", db], capsys)[0] == 0
        assert credentials.authenticate(new) is None
        assert [c.action for c in credentials.changes()] == ["added", "rotated", "revoked"]
        assert verify_credential_changes(store.engine) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "command", "fragments"),
    [
        (["sites", "add", "bad site id!"], "sites add", ["site id 'bad site id!'", "identifier"]),
        (["sites", "add", "x" * 65], "sites add", ["is not an identifier"]),
        (["readers", "add", "Dr Who", "--role", "dsmb"], "readers add", ["reader name"]),
        (["sites", "add", "CN-BJ-02", "--expires", "2001-01-01"], "sites add", ["in the past"]),
        (["sites", "add", "CN-BJ-02", "--expires", "soon"], "sites add", ["not an ISO date"]),
        (["sites", "revoke", "nobody"], "sites revoke", ["no site credential named 'nobody'"]),
        (["sites", "rotate", "nobody"], "sites rotate", ["no site credential named 'nobody'"]),
        (["readers", "revoke", SH], "readers revoke", ["is a site credential"]),
        (["sites", "revoke", "gone"], "sites revoke", ["already revoked"]),
        (["sites", "add", SH], "sites add", ["already exists"]),
        (["sites", "rotate", SH, "--expires", "2001-01-01T00:00"], "sites rotate", ["past"]),
    ],
)
def test_credential_commands_refuse_bad_input_with_one_line(
    db: str,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    command: str,
    fragments: list[str],
) -> None:
    assert run(["sites", "add", SH, "--db", db], capsys)[0] == 0
    assert run(["sites", "add", "gone", "--db", db], capsys)[0] == 0
    assert run(["sites", "revoke", "gone", "--db", db], capsys)[0] == 0
    status, _, err = run([*args, "--db", db], capsys)
    assert status == 2
    assert_one_line(err, command, *fragments)
    listed = run(["sites", "list", "--db", db], capsys)[1].strip().splitlines()[1:]
    assert [row.split()[0] for row in listed] == [SH, "gone"]  # nothing added, nothing lost


def test_list_does_not_create_a_store(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["sites", "list", "--db", db], capsys)
    assert status == 2 and "no store at" in err
    assert not Path(db.removeprefix("sqlite:///")).exists()
