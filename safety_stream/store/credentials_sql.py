"""Credentials on SQL (SQLite or PostgreSQL), one implementation of
:class:`~safety_stream.auth.Credentials`.

``credentials`` holds one row per credential (the token's hash, never the token);
``credential_changes`` its hash-chained history. A change and its history row commit together;
two writers appending at once take the same history id, and the second one's insert fails
and is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from safety_stream.auth import (
    Action,
    Clock,
    CredentialChange,
    CredentialInfo,
    Principal,
    Role,
    already_exists,
    already_revoked,
    changed_meanwhile,
    check_new,
    check_revocable,
    check_rotatable,
    new_token,
    next_change,
    principal_of,
    token_hash,
    utc_now,
    verify_changes,
)
from safety_stream.store.tables import CredentialChangeRow, SiteRow

_INFO_COLUMNS = (
    SiteRow.name,
    SiteRow.role,
    SiteRow.site_id,
    SiteRow.created_at,
    SiteRow.expires_at,
    SiteRow.revoked_at,
)
_ATTEMPTS = (1, 2, 3)


def _info(row: Sequence[object]) -> CredentialInfo:
    # the query selects CredentialInfo's fields in its order; SQLAlchemy rows are untyped
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
        now = self._clock()
        check_new(name, expires_at, now)
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
                        raise already_exists(name)
                    connection.execute(insert(SiteRow).values(row))
                    _append_change(connection, now, name, "added", role, site_id, expires_at, actor)
                return token
            except IntegrityError:  # the same name, or a change appended at the same time
                if attempt == _ATTEMPTS[-1]:
                    raise changed_meanwhile(name) from None
        raise AssertionError("unreachable")

    def authenticate(self, token: str) -> Principal | None:
        return self.current(token_hash(token))

    def current(self, credential: str) -> Principal | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*_INFO_COLUMNS).where(SiteRow.token_hash == credential)
            ).first()
        if row is None:
            return None
        info = _info(row)
        return principal_of(
            info.name, info.role, info.site_id, info.valid_at(self._clock()), credential
        )

    def listing(self) -> list[CredentialInfo]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(*_INFO_COLUMNS).order_by(SiteRow.name)).all()
        return [_info(row) for row in rows]

    def revoke(self, name: str, actor: str = "cli") -> CredentialInfo:
        for attempt in _ATTEMPTS:
            try:
                with self._engine.begin() as connection:
                    found = check_revocable(name, self._find(connection, name))
                    now = self._clock()
                    done = connection.execute(
                        update(SiteRow)
                        .where(SiteRow.name == name, SiteRow.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
                    if done.rowcount != 1:  # revoked by someone else meanwhile
                        raise already_revoked(name)
                    _append_change(
                        connection, now, name, "revoked", found.role, found.site_id,
                        found.expires_at, actor,
                    )  # fmt: skip
                return CredentialInfo(
                    found.name, found.role, found.site_id, found.created_at, found.expires_at, now
                )
            except IntegrityError:
                if attempt == _ATTEMPTS[-1]:
                    raise changed_meanwhile(name) from None
        raise AssertionError("unreachable")

    def rotate(self, name: str, expires_at: datetime | None = None, actor: str = "cli") -> str:
        token = new_token()
        for attempt in _ATTEMPTS:
            try:
                with self._engine.begin() as connection:
                    found = self._find(connection, name)
                    now = self._clock()
                    found = check_rotatable(name, found, expires_at, now)
                    connection.execute(
                        update(SiteRow)
                        .where(SiteRow.name == name)
                        .values(
                            token_hash=token_hash(token), expires_at=expires_at, revoked_at=None
                        )
                    )
                    _append_change(
                        connection, now, name, "rotated", found.role, found.site_id, expires_at,
                        actor,
                    )  # fmt: skip
                return token
            except IntegrityError:
                if attempt == _ATTEMPTS[-1]:
                    raise changed_meanwhile(name) from None
        raise AssertionError("unreachable")

    def changes(self) -> list[CredentialChange]:
        """The credentials' history, oldest first."""
        return _changes(self._engine)

    @staticmethod
    def _find(connection: Connection, name: str) -> CredentialInfo | None:
        row = connection.execute(select(*_INFO_COLUMNS).where(SiteRow.name == name)).first()
        return None if row is None else _info(row)


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
    change = next_change(
        (last[0], last[1]) if last is not None else None,
        at, name, action, role, site_id, expires_at, actor,
    )  # fmt: skip
    connection.execute(
        insert(CredentialChangeRow).values(
            id=change.id,
            at=change.at,
            name=change.name,
            action=change.action,
            role=change.role,
            site_id=change.site_id,
            expires_at=change.expires_at,
            actor=change.actor,
            chain_hash=change.chain_hash,
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
    return verify_changes(_changes(engine))
