"""Credentials: one bearer token per site (and per reader), stored only as a SHA-256 hash.

Roles: ``site`` writes and reads its own site's data only; ``safety_officer`` and ``dsmb`` read
everything and write nothing; ``admin`` may write for any site (operators' tooling).
Tokens are 256-bit random strings, so a plain SHA-256 is enough to make a stolen table useless.

A credential may expire (``expires_at``: from then on its token is refused), be revoked (kept,
for the audit, but its token refused) or be rotated (a new token for the same name, role and
site; the old token is refused at once). Every change is appended to ``credential_changes``,
whose rows are hash-chained (:func:`verify_credential_changes` finds an edited row).

A :class:`Principal` remembers which token it was authenticated by (``credential``, the token's
hash), so a board session can ask :meth:`Credentials.current` on every request whether that
token is still good: revoking, rotating or expiring a credential ends its sessions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from safety_stream.errors import UsageError
from safety_stream.events.base import IDENTIFIER_PATTERN
from safety_stream.store.tables import CredentialChangeRow, SiteRow

Role = Literal["site", "safety_officer", "dsmb", "admin"]
ROLES: tuple[Role, ...] = ("site", "safety_officer", "dsmb", "admin")
Action = Literal["added", "rotated", "revoked"]

TOKEN_PREFIX = "sst_"
GENESIS = "0" * 64
Clock = Callable[[], datetime]


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe, prefixed so it never starts with '-' (a
    command line would read it as an option) and secret scanners can recognise it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def utc_now() -> datetime:
    return datetime.now(UTC)


class CredentialError(UsageError):
    """A credential cannot be created or changed (the name is taken or unknown, it is already
    revoked, its expiry has passed, the name is not an identifier): exit status 2."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a credential's name, role and (for sites) its site.

    ``credential`` is the hash of the token it was authenticated by (None: made by hand, e.g.
    in a test), so a session can check later that this very token is still valid."""

    name: str
    role: Role
    site_id: str | None
    credential: str | None = field(default=None, compare=False, repr=False)

    @property
    def can_write(self) -> bool:
        return self.role in ("site", "admin")

    @property
    def sees_site(self) -> str | None:
        """The one site this principal may see, or None for all sites."""
        return self.site_id if self.role == "site" else None


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about a credential: never its token or the token's hash."""

    name: str
    role: Role
    site_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class CredentialChange:
    """One row of the credentials' history (``credential_changes``)."""

    id: int
    at: datetime
    name: str
    action: Action
    role: str
    site_id: str | None
    expires_at: datetime | None
    actor: str
    chain_hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def change_hash(
    previous: str,
    id: int,
    at: datetime,
    name: str,
    action: str,
    role: str,
    site_id: str | None,
    expires_at: datetime | None,
) -> str:
    """SHA-256 of (previous row's hash | id | at | name | action | role | site | expiry)."""
    fields = [previous, str(id), _iso(at), name, action, role, site_id or "", _iso(expires_at)]
    return hashlib.sha256("|".join(fields).encode("utf-8")).hexdigest()


def check_name(name: str, what: str = "credential name") -> None:
    """Names (and site ids) follow the events' identifier rule, so a site's credential names
    the site its events carry."""
    if not re.fullmatch(IDENTIFIER_PATTERN, name):
        raise CredentialError(
            f"{what} {name!r} is not an identifier (1-64 characters: letters, digits, '.', '_' "
            "or '-', starting with a letter or digit)"
        )


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise CredentialError("an expiry needs a time zone (UTC is assumed on the command line)")
    if expires_at <= now:
        raise CredentialError(
            f"the expiry {_iso(expires_at)} is in the past (now {_iso(now)}): give a later one"
        )


def _unknown(name: str) -> CredentialError:
    return CredentialError(f"no credential named {name!r} (see the list command)")


def _already_revoked(name: str, revoked_at: datetime) -> CredentialError:
    return CredentialError(f"credential {name!r} was already revoked at {_iso(revoked_at)}")


class Credentials(Protocol):
    def add(
        self,
        name: str,
        role: Role,
        site_id: str | None,
        expires_at: datetime | None = None,
        actor: str = "cli",
    ) -> str:
        """Create a credential; returns the token (shown once, never stored)."""
        ...

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a token that is known, not revoked and not expired."""
        ...

    def current(self, credential: str) -> Principal | None:
        """Like :meth:`authenticate`, by the token's hash (a Principal's ``credential``)."""
        ...

    def listing(self) -> list[CredentialInfo]:
        """Every credential, revoked and expired ones too, by name."""
        ...

    def revoke(self, name: str, actor: str = "cli") -> CredentialInfo:
        """Refuse the credential's token from now on (the credential is kept)."""
        ...

    def rotate(self, name: str, expires_at: datetime | None = None, actor: str = "cli") -> str:
        """A new token for the credential (same name, role, site); the old one is refused at
        once. A revoked credential is issued again. Returns the new token."""
        ...


@dataclass
class _Entry:
    role: Role
    site_id: str | None
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def info(self, name: str) -> CredentialInfo:
        return CredentialInfo(
            name, self.role, self.site_id, self.created_at, self.expires_at, self.revoked_at
        )


class InMemoryCredentials:
    """The same credentials, kept in this process (the memory runtime)."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_hash: dict[str, str] = {}  # the current token's hash -> name
        self.changes: list[CredentialChange] = []

    def add(
        self,
        name: str,
        role: Role,
        site_id: str | None,
        expires_at: datetime | None = None,
        actor: str = "cli",
    ) -> str:
        check_name(name)
        now = self._clock()
        _check_expiry(expires_at, now)
        if name in self._entries:
            raise CredentialError(f"a credential named {name!r} already exists")
        token = new_token()
        self._entries[name] = _Entry(role, site_id, token_hash(token), now, expires_at)
        self._by_hash[token_hash(token)] = name
        self._record(now, name, "added", actor)
        return token

    def authenticate(self, token: str) -> Principal | None:
        return self.current(token_hash(token))

    def current(self, credential: str) -> Principal | None:
        name = self._by_hash.get(credential)
        if name is None:
            return None
        entry = self._entries[name]
        if not entry.info(name).valid_at(self._clock()):
            return None
        return Principal(name, entry.role, entry.site_id, credential)

    def listing(self) -> list[CredentialInfo]:
        return [self._entries[name].info(name) for name in sorted(self._entries)]

    def revoke(self, name: str, actor: str = "cli") -> CredentialInfo:
        entry = self._entries.get(name)
        if entry is None:
            raise _unknown(name)
        if entry.revoked_at is not None:
            raise _already_revoked(name, entry.revoked_at)
        entry.revoked_at = self._clock()
        self._record(entry.revoked_at, name, "revoked", actor)
        return entry.info(name)

    def rotate(self, name: str, expires_at: datetime | None = None, actor: str = "cli") -> str:
        entry = self._entries.get(name)
        if entry is None:
            raise _unknown(name)
        now = self._clock()
        _check_expiry(expires_at, now)
        token = new_token()
        del self._by_hash[entry.token_hash]
        entry.token_hash, entry.expires_at, entry.revoked_at = token_hash(token), expires_at, None
        self._by_hash[entry.token_hash] = name
        self._record(now, name, "rotated", actor)
        return token

    def _record(self, at: datetime, name: str, action: Action, actor: str) -> None:
        entry = self._entries[name]
        previous = self.changes[-1].chain_hash if self.changes else GENESIS
        id = len(self.changes) + 1
        chain = change_hash(
            previous, id, at, name, action, entry.role, entry.site_id, entry.expires_at
        )
        self.changes.append(
            CredentialChange(
                id, at, name, action, entry.role, entry.site_id, entry.expires_at, actor[:64], chain
            )
        )


_INFO_COLUMNS = (
    SiteRow.name,
    SiteRow.role,
    SiteRow.site_id,
    SiteRow.created_at,
    SiteRow.expires_at,
    SiteRow.revoked_at,
)


def _info(row: Sequence[object]) -> CredentialInfo:
    return CredentialInfo(*row)  # type: ignore[arg-type]


class SqlCredentials:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def add(
        self,
        name: str,
        role: Role,
        site_id: str | None,
        expires_at: datetime | None = None,
        actor: str = "cli",
    ) -> str:
        check_name(name)
        now = self._clock()
        _check_expiry(expires_at, now)
        token = new_token()
        row = {
            "name": name,
            "role": role,
            "site_id": site_id,
            "token_hash": token_hash(token),
            "created_at": now,
            "expires_at": expires_at,
        }
        for attempt in _ATTEMPTS:
            try:
                with self._engine.begin() as connection:
                    if self._find(connection, name) is not None:
                        raise CredentialError(f"a credential named {name!r} already exists")
                    connection.execute(insert(SiteRow).values(row))
                    _append_change(connection, now, name, "added", role, site_id, expires_at, actor)
                return token
            except IntegrityError:  # the same name, or a change appended at the same time
                if attempt == _ATTEMPTS[-1]:
                    raise CredentialError(
                        f"credential {name!r} was changed at the same time: try again"
                    ) from None
        raise AssertionError("unreachable")

    def authenticate(self, token: str) -> Principal | None:
        return self.current(token_hash(token))

    def current(self, credential: str) -> Principal | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*_INFO_COLUMNS).where(SiteRow.token_hash == credential)
            ).first()
        if row is None or row[1] not in ROLES:
            return None
        if not _info(row).valid_at(self._clock()):
            return None
        return Principal(row[0], row[1], row[2], credential)

    def listing(self) -> list[CredentialInfo]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(*_INFO_COLUMNS).order_by(SiteRow.name)).all()
        return [_info(row) for row in rows]

    def revoke(self, name: str, actor: str = "cli") -> CredentialInfo:
        for attempt in _ATTEMPTS:
            try:
                with self._engine.begin() as connection:
                    found = self._find(connection, name)
                    if found is None:
                        raise _unknown(name)
                    if found.revoked_at is not None:
                        raise _already_revoked(name, found.revoked_at)
                    now = self._clock()
                    done = connection.execute(
                        update(SiteRow)
                        .where(SiteRow.name == name, SiteRow.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
                    if done.rowcount != 1:  # revoked by someone else meanwhile
                        raise CredentialError(f"credential {name!r} was already revoked")
                    _append_change(
                        connection,
                        now,
                        name,
                        "revoked",
                        found.role,
                        found.site_id,
                        found.expires_at,
                        actor,
                    )
                return CredentialInfo(
                    found.name, found.role, found.site_id, found.created_at, found.expires_at, now
                )
            except IntegrityError:
                if attempt == _ATTEMPTS[-1]:
                    raise CredentialError(
                        f"credential {name!r} was changed at the same time: try again"
                    ) from None
        raise AssertionError("unreachable")

    def rotate(self, name: str, expires_at: datetime | None = None, actor: str = "cli") -> str:
        token = new_token()
        for attempt in _ATTEMPTS:
            try:
                with self._engine.begin() as connection:
                    found = self._find(connection, name)
                    if found is None:
                        raise _unknown(name)
                    now = self._clock()
                    _check_expiry(expires_at, now)
                    connection.execute(
                        update(SiteRow)
                        .where(SiteRow.name == name)
                        .values(
                            token_hash=token_hash(token), expires_at=expires_at, revoked_at=None
                        )
                    )
                    _append_change(
                        connection,
                        now,
                        name,
                        "rotated",
                        found.role,
                        found.site_id,
                        expires_at,
                        actor,
                    )
                return token
            except IntegrityError:
                if attempt == _ATTEMPTS[-1]:
                    raise CredentialError(
                        f"credential {name!r} was changed at the same time: try again"
                    ) from None
        raise AssertionError("unreachable")

    def changes(self) -> list[CredentialChange]:
        """The credentials' history, oldest first."""
        return _changes(self._engine)

    @staticmethod
    def _find(connection: Connection, name: str) -> CredentialInfo | None:
        row = connection.execute(select(*_INFO_COLUMNS).where(SiteRow.name == name)).first()
        return None if row is None else _info(row)


_ATTEMPTS = (1, 2, 3)


def _append_change(
    connection: Connection,
    at: datetime,
    name: str,
    action: Action,
    role: str,
    site_id: str | None,
    expires_at: datetime | None,
    actor: str,
) -> None:
    """Append one row to the history, chained to the last one. Two writers appending at once
    take the same id: the second one's insert fails (IntegrityError) and is retried."""
    last = connection.execute(
        select(CredentialChangeRow.id, CredentialChangeRow.chain_hash)
        .order_by(CredentialChangeRow.id.desc())
        .limit(1)
    ).first()
    id, previous = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
    connection.execute(
        insert(CredentialChangeRow).values(
            id=id,
            at=at,
            name=name,
            action=action,
            role=role,
            site_id=site_id,
            expires_at=expires_at,
            actor=actor[:64],
            chain_hash=change_hash(previous, id, at, name, action, role, site_id, expires_at),
        )
    )


def _changes(engine: Engine) -> list[CredentialChange]:
    table = CredentialChangeRow
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                table.id,
                table.at,
                table.name,
                table.action,
                table.role,
                table.site_id,
                table.expires_at,
                table.actor,
                table.chain_hash,
            ).order_by(table.id)
        ).all()
    return [CredentialChange(*row) for row in rows]  # type: ignore[arg-type]  # action: str


def verify_credential_changes(engine: Engine) -> str | None:
    """None when the credentials' history is intact, else what is wrong with its first broken
    row (an edited row breaks its own hash, a deleted one the next row's)."""
    previous = GENESIS
    for change in _changes(engine):
        expected = change_hash(
            previous,
            change.id,
            change.at,
            change.name,
            change.action,
            change.role,
            change.site_id,
            change.expires_at,
        )
        if change.chain_hash != expected:
            return (
                f"credential_changes row {change.id} ({change.action} {change.name!r}) does not "
                "match the hash chain: the credentials' history was edited"
            )
        previous = change.chain_hash
    return None
