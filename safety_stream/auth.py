"""Credentials: one bearer token per site (and per reader), stored only as a SHA-256 hash.

Roles: ``site`` writes and reads its own site's data only; ``safety_officer`` and ``dsmb`` read
everything and write nothing; ``admin`` may write for any site (operators' tooling).
Tokens are 256-bit random strings, so a plain SHA-256 is enough to make a stolen table useless.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from safety_stream.errors import SafetyStreamError
from safety_stream.store.tables import SiteRow

Role = Literal["site", "safety_officer", "dsmb", "admin"]
ROLES: tuple[Role, ...] = ("site", "safety_officer", "dsmb", "admin")


TOKEN_PREFIX = "sst_"


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe, prefixed so it never starts with '-' (a
    command line would read it as an option) and secret scanners can recognise it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class CredentialError(SafetyStreamError):
    """A credential cannot be created (e.g. the name is taken)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a credential's name, role and (for sites) its site."""

    name: str
    role: Role
    site_id: str | None

    @property
    def can_write(self) -> bool:
        return self.role in ("site", "admin")

    @property
    def sees_site(self) -> str | None:
        """The one site this principal may see, or None for all sites."""
        return self.site_id if self.role == "site" else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Credentials(Protocol):
    def add(self, name: str, role: Role, site_id: str | None) -> str:
        """Create a credential; returns the token (shown once, never stored)."""
        ...

    def authenticate(self, token: str) -> Principal | None: ...


class InMemoryCredentials:
    def __init__(self) -> None:
        self._by_hash: dict[str, Principal] = {}

    def add(self, name: str, role: Role, site_id: str | None) -> str:
        if any(p.name == name for p in self._by_hash.values()):
            raise CredentialError(f"a credential named {name!r} already exists")
        token = new_token()
        self._by_hash[token_hash(token)] = Principal(name, role, site_id)
        return token

    def authenticate(self, token: str) -> Principal | None:
        return self._by_hash.get(token_hash(token))


class SqlCredentials:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, name: str, role: Role, site_id: str | None) -> str:
        token = new_token()
        row = {
            "name": name,
            "role": role,
            "site_id": site_id,
            "token_hash": token_hash(token),
            "created_at": datetime.now(UTC),
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(SiteRow).values(row))
        except IntegrityError as error:
            raise CredentialError(f"a credential named {name!r} already exists") from error
        return token

    def authenticate(self, token: str) -> Principal | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(SiteRow.name, SiteRow.role, SiteRow.site_id).where(
                    SiteRow.token_hash == token_hash(token)
                )
            ).first()
        if row is None or row[1] not in ROLES:
            return None
        return Principal(row[0], row[1], row[2])
