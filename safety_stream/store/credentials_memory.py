"""Credentials kept in this process (the memory runtime), one implementation of
:class:`~safety_stream.auth.Credentials`.

The same checks, errors and hash-chained history as the SQL credentials, under one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from safety_stream.auth import (
    Action,
    Clock,
    CredentialChange,
    CredentialInfo,
    Principal,
    Role,
    already_exists,
    check_new,
    check_revocable,
    check_rotatable,
    new_token,
    next_change,
    principal_of,
    token_hash,
    utc_now,
)


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
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._by_hash: dict[str, str] = {}  # the current token's hash -> name
        self._changes: list[CredentialChange] = []

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
        with self._lock:
            if name in self._entries:
                raise already_exists(name)
            self._entries[name] = _Entry(role, site_id, token_hash(token), now, expires_at)
            self._by_hash[token_hash(token)] = name
            self._record(now, name, "added", actor)
        return token

    def authenticate(self, token: str) -> Principal | None:
        return self.current(token_hash(token))

    def current(self, credential: str) -> Principal | None:
        with self._lock:
            name = self._by_hash.get(credential)
            if name is None:
                return None
            info = self._entries[name].info(name)
        return principal_of(
            info.name, info.role, info.site_id, info.valid_at(self._clock()), credential
        )

    def listing(self) -> list[CredentialInfo]:
        with self._lock:
            return [self._entries[name].info(name) for name in sorted(self._entries)]

    def revoke(self, name: str, actor: str = "cli") -> CredentialInfo:
        with self._lock:
            entry = self._entries.get(name)
            check_revocable(name, entry.info(name) if entry is not None else None)
            assert entry is not None
            entry.revoked_at = self._clock()
            self._record(entry.revoked_at, name, "revoked", actor)
            return entry.info(name)

    def rotate(self, name: str, expires_at: datetime | None = None, actor: str = "cli") -> str:
        token = new_token()
        with self._lock:
            entry = self._entries.get(name)
            now = self._clock()
            check_rotatable(name, entry.info(name) if entry is not None else None, expires_at, now)
            assert entry is not None
            del self._by_hash[entry.token_hash]
            entry.token_hash, entry.expires_at, entry.revoked_at = (
                token_hash(token),
                expires_at,
                None,
            )
            self._by_hash[entry.token_hash] = name
            self._record(now, name, "rotated", actor)
        return token

    def changes(self) -> list[CredentialChange]:
        with self._lock:
            return list(self._changes)

    def _record(self, at: datetime, name: str, action: Action, actor: str) -> None:
        """Append to the history (the caller holds the lock)."""
        entry = self._entries[name]
        last = self._changes[-1] if self._changes else None
        self._changes.append(
            next_change(last, at, name, action, entry.role, entry.site_id, entry.expires_at, actor)
        )
