"""The credentials port's contract, held by every implementation: in memory, SQLite, PostgreSQL.

Each test runs once per backend against :class:`safety_stream.auth.Credentials` only: adding,
authenticating, listing, revoking, rotating and expiring credentials, the errors, and the
hash-chained history of changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from safety_stream.auth import (
    TOKEN_PREFIX,
    CredentialError,
    Credentials,
    token_hash,
    verify_changes,
)
from safety_stream.store.credentials_memory import InMemoryCredentials
from safety_stream.store.credentials_sql import SqlCredentials
from safety_stream.store.opening import open_store
from safety_stream.store.sql import SqlEventStore

SH, BJ = "CN-SH-01", "CN-BJ-02"
BACKENDS = ["memory", "sqlite", "postgres"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, SqlEventStore | None]]:
    if request.param == "memory":
        yield request.param, None
        return
    store = open_store(request.getfixturevalue(f"{request.param}_url"), create=True)
    try:
        yield request.param, store
    finally:
        store.close()


@pytest.fixture
def credentials(backend: tuple[str, SqlEventStore | None], clock: Clock) -> Credentials:
    _, store = backend
    if store is None:
        return InMemoryCredentials(clock)
    return SqlCredentials(store.engine, clock)


# --- adding and authenticating ------------------------------------------------------------------


def test_an_added_credential_authenticates_by_its_token_and_by_the_token_hash(
    credentials: Credentials,
) -> None:
    token = credentials.add(SH, "site", SH)
    reader = credentials.add("officer", "safety_officer", None)
    assert token.startswith(TOKEN_PREFIX) and token != reader
    principal = credentials.authenticate(token)
    assert principal is not None
    assert (principal.name, principal.role, principal.site_id) == (SH, "site", SH)
    assert principal.credential == token_hash(token)
    assert principal.can_write and principal.sees_site == SH
    assert credentials.current(token_hash(token)) == principal
    officer = credentials.authenticate(reader)
    assert officer is not None and (officer.role, officer.site_id) == ("safety_officer", None)
    assert not officer.can_write and officer.sees_site is None
    assert credentials.authenticate("sst_unknown") is None
    assert credentials.authenticate(token_hash(token)) is None  # the hash is not a token
    assert credentials.current(token_hash("sst_unknown")) is None


def test_the_listing_is_by_name_with_dates_and_never_a_secret(
    credentials: Credentials, clock: Clock
) -> None:
    expiry = clock.now + timedelta(days=30)
    credentials.add(SH, "site", SH, expires_at=expiry)
    clock.advance(minutes=1)
    credentials.add("admin", "admin", None)
    credentials.add(BJ, "site", BJ)
    listed = credentials.listing()
    assert [c.name for c in listed] == sorted(["admin", SH, BJ])
    by_name = {c.name: c for c in listed}
    assert by_name[SH].created_at == clock.now - timedelta(minutes=1)
    assert by_name[SH].expires_at == expiry
    assert (by_name["admin"].role, by_name["admin"].site_id) == ("admin", None)
    assert all(c.revoked_at is None for c in listed)
    fields = {f.name for f in dataclasses.fields(listed[0])}
    assert not {"token", "token_hash"} & fields


def test_a_name_is_taken_once_and_must_be_an_identifier(credentials: Credentials) -> None:
    first = credentials.add(SH, "site", SH, actor="alice")
    with pytest.raises(CredentialError, match=f"a credential named '{SH}' already exists"):
        credentials.add(SH, "dsmb", None, actor="mallory")
    for bad in ("bad site id!", "x" * 65, "-starts-with-a-dash", ""):
        with pytest.raises(CredentialError, match="is not an identifier"):
            credentials.add(bad, "dsmb", None)
    # nothing was added or changed: the first credential stands as it was
    assert [c.name for c in credentials.listing()] == [SH]
    principal = credentials.authenticate(first)
    assert principal is not None and principal.role == "site"
    assert [(c.name, c.action, c.actor) for c in credentials.changes()] == [(SH, "added", "alice")]


# --- revoking and rotating ----------------------------------------------------------------------


def test_a_revoked_credential_is_refused_but_kept(credentials: Credentials, clock: Clock) -> None:
    officer = credentials.add("officer", "safety_officer", None)
    site = credentials.add(SH, "site", SH)
    clock.advance(hours=1)
    revoked = credentials.revoke("officer", actor="test")
    assert (revoked.name, revoked.role, revoked.revoked_at) == (
        "officer",
        "safety_officer",
        clock.now,
    )
    assert credentials.authenticate(officer) is None
    assert credentials.current(token_hash(officer)) is None
    assert credentials.authenticate(site) is not None  # only that one credential
    (listed,) = [c for c in credentials.listing() if c.name == "officer"]
    assert listed == revoked
    with pytest.raises(CredentialError, match="'officer' was already revoked at 2026-01-01"):
        credentials.revoke("officer")
    with pytest.raises(CredentialError, match="no credential named 'nobody'"):
        credentials.revoke("nobody")


def test_rotating_refuses_the_old_token_at_once_and_keeps_name_role_and_site(
    credentials: Credentials,
) -> None:
    old = credentials.add(SH, "site", SH)
    created = credentials.listing()[0].created_at
    new = credentials.rotate(SH)
    assert new != old and new.startswith(TOKEN_PREFIX)
    assert credentials.authenticate(old) is None
    principal = credentials.authenticate(new)
    assert principal is not None and (principal.name, principal.role, principal.site_id) == (
        SH,
        "site",
        SH,
    )
    assert credentials.listing()[0].created_at == created
    with pytest.raises(CredentialError, match="no credential named 'nobody'"):
        credentials.rotate("nobody")


def test_rotating_a_revoked_credential_issues_it_again(credentials: Credentials) -> None:
    old = credentials.add(SH, "site", SH)
    credentials.revoke(SH)
    token = credentials.rotate(SH)
    assert credentials.authenticate(old) is None
    principal = credentials.authenticate(token)
    assert principal is not None and principal.site_id == SH
    assert credentials.listing()[0].revoked_at is None


# --- expiry -------------------------------------------------------------------------------------


def test_a_token_is_refused_from_its_expiry_on(credentials: Credentials, clock: Clock) -> None:
    token = credentials.add(SH, "site", SH, expires_at=clock.now + timedelta(hours=1))
    clock.advance(minutes=59)
    assert credentials.authenticate(token) is not None
    clock.advance(minutes=1)
    assert credentials.authenticate(token) is None
    assert credentials.current(token_hash(token)) is None
    (listed,) = credentials.listing()
    assert listed.revoked_at is None and not listed.valid_at(clock.now)  # expired, not revoked
    renewed = credentials.rotate(SH, expires_at=clock.now + timedelta(days=30))
    assert credentials.authenticate(renewed) is not None
    assert credentials.rotate(SH) is not None  # no expiry: valid until revoked
    clock.advance(days=3650)
    (listed,) = credentials.listing()
    assert listed.expires_at is None and listed.valid_at(clock.now)


def test_an_expiry_must_be_later_and_have_a_time_zone(
    credentials: Credentials, clock: Clock
) -> None:
    with pytest.raises(CredentialError, match="in the past"):
        credentials.add("late", "dsmb", None, expires_at=clock.now - timedelta(seconds=1))
    with pytest.raises(CredentialError, match="in the past"):
        credentials.add("now", "dsmb", None, expires_at=clock.now)
    with pytest.raises(CredentialError, match="time zone"):
        credentials.add("naive", "dsmb", None, expires_at=datetime(2099, 1, 1))
    old = credentials.add(SH, "site", SH)
    with pytest.raises(CredentialError, match="in the past"):
        credentials.rotate(SH, expires_at=clock.now)
    assert credentials.authenticate(old) is not None  # a refused rotation changes nothing
    assert [c.name for c in credentials.listing()] == [SH]
    assert [c.action for c in credentials.changes()] == ["added"]


# --- the history of changes ---------------------------------------------------------------------


def test_every_change_is_recorded_in_a_hash_chain(credentials: Credentials, clock: Clock) -> None:
    credentials.add(SH, "site", SH, actor="alice")
    clock.advance(minutes=1)
    credentials.add("officer", "safety_officer", None, actor="alice")
    clock.advance(minutes=1)
    expiry = clock.now + timedelta(days=90)
    credentials.rotate(SH, expires_at=expiry, actor="bob")
    clock.advance(minutes=1)
    credentials.revoke("officer", actor="b" * 100)
    changes = credentials.changes()
    assert [(c.id, c.name, c.action, c.role, c.site_id) for c in changes] == [
        (1, SH, "added", "site", SH),
        (2, "officer", "added", "safety_officer", None),
        (3, SH, "rotated", "site", SH),
        (4, "officer", "revoked", "safety_officer", None),
    ]
    assert [c.actor for c in changes] == ["alice", "alice", "bob", "b" * 64]  # cut to 64
    assert [c.expires_at for c in changes] == [None, None, expiry, None]
    start = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert [c.at for c in changes] == [start + timedelta(minutes=n) for n in range(4)]
    assert len({c.chain_hash for c in changes}) == 4
    assert verify_changes(changes) is None
    edited = [*changes[:2], dataclasses.replace(changes[2], role="admin"), changes[3]]
    assert (broken := verify_changes(edited)) is not None
    assert "row 3" in broken and "rotated" in broken
    assert (broken := verify_changes([*changes[:2], changes[3]])) is not None  # one removed
    assert "row 4" in broken


def test_a_fresh_store_has_no_credentials_and_no_history(credentials: Credentials) -> None:
    assert credentials.listing() == []
    assert credentials.changes() == []
    assert verify_changes(credentials.changes()) is None
