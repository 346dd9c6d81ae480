"""Credentials: one bearer token per site (and per reader), stored only as a SHA-256 hash.

Roles: ``site`` writes and reads its own site's data only; ``safety_officer`` and ``dsmb`` read
everything and write nothing; ``admin`` may write for any site (operators' tooling).
Tokens are 256-bit random strings, so a plain SHA-256 is enough to make a stolen table useless.

A credential may expire (``expires_at``: from then on its token is refused), be revoked (kept,
for the audit, but its token refused) or be rotated (a new token for the same name, role and
site; the old token is refused at once). Every change is appended to ``credential_changes``,
whose rows are hash-chained (:func:`verify_changes` finds an edited row).

A :class:`Principal` remembers which token it was authenticated by (``credential``, the token's
hash), so a board session can ask :meth:`Credentials.current` on every request whether that
token is still good: revoking, rotating or expiring a credential ends its sessions.

This module holds the port (:class:`Credentials`) and the checks both of its implementations
make (``safety_stream.store.credentials_memory`` and ``safety_stream.store.credentials_sql``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from safety_stream.errors import UsageError
from safety_stream.events.base import IDENTIFIER_PATTERN

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


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise CredentialError("an expiry needs a time zone (UTC is assumed on the command line)")
    if expires_at <= now:
        raise CredentialError(
            f"the expiry {_iso(expires_at)} is in the past (now {_iso(now)}): give a later one"
        )


def unknown(name: str) -> CredentialError:
    return CredentialError(f"no credential named {name!r} (see the list command)")


def already_exists(name: str) -> CredentialError:
    return CredentialError(f"a credential named {name!r} already exists")


def already_revoked(name: str, revoked_at: datetime | None = None) -> CredentialError:
    when = f" at {_iso(revoked_at)}" if revoked_at is not None else ""
    return CredentialError(f"credential {name!r} was already revoked{when}")


def changed_meanwhile(name: str) -> CredentialError:
    return CredentialError(f"credential {name!r} was changed at the same time: try again")


# -- the checks both stores make, before they change anything ----------------------------------


def check_new(name: str, expires_at: datetime | None, now: datetime) -> None:
    """Before adding a credential: its name is an identifier and its expiry (if any) is later."""
    check_name(name)
    check_expiry(expires_at, now)


def check_revocable(name: str, found: CredentialInfo | None) -> CredentialInfo:
    """Before revoking: the credential exists and is not revoked yet."""
    if found is None:
        raise unknown(name)
    if found.revoked_at is not None:
        raise already_revoked(name, found.revoked_at)
    return found


def check_rotatable(
    name: str, found: CredentialInfo | None, expires_at: datetime | None, now: datetime
) -> CredentialInfo:
    """Before rotating: the credential exists (revoked or not) and the new expiry is later."""
    if found is None:
        raise unknown(name)
    check_expiry(expires_at, now)
    return found


def principal_of(
    name: str,
    role: str,
    site_id: str | None,
    valid: bool,
    credential: str,
) -> Principal | None:
    """The principal a stored credential stands for, if it is valid and its role is known."""
    if not valid or role not in ROLES:
        return None
    return Principal(name, role, site_id, credential)


def next_change(
    last: CredentialChange | tuple[int, str] | None,
    at: datetime,
    name: str,
    action: Action,
    role: str,
    site_id: str | None,
    expires_at: datetime | None,
    actor: str,
) -> CredentialChange:
    """The history row appended after ``last`` (the last row, or its id and chain hash)."""
    if isinstance(last, CredentialChange):
        last = (last.id, last.chain_hash)
    id, previous = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
    chain = change_hash(previous, id, at, name, action, role, site_id, expires_at)
    return CredentialChange(id, at, name, action, role, site_id, expires_at, actor[:64], chain)


def verify_changes(changes: Iterable[CredentialChange]) -> str | None:
    """None when the credentials' history is intact, else what is wrong with its first broken
    row (an edited row breaks its own hash, a deleted one the next row's)."""
    previous = GENESIS
    for change in changes:
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

    def changes(self) -> list[CredentialChange]:
        """The credentials' history (added, rotated, revoked), oldest first."""
        ...
