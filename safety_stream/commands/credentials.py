"""``safety-stream sites|readers add|list|revoke|rotate``: issue, show, revoke and renew bearer
tokens.

A token is printed once (by ``add`` and ``rotate``), alone on the last line, and only its hash
is stored. ``list`` shows names, roles, sites and dates, never a token or its hash. ``revoke``
keeps the credential (for the audit) but refuses its token; ``rotate`` issues a new token for
the same name, role and site and refuses the old one at once (a revoked credential is issued
again). ``--expires DATE`` (an ISO date, valid through that day in UTC, or an ISO date and
time, UTC unless it says otherwise) refuses the token from then on. ``sites`` commands act on
site credentials, ``readers`` commands on the others.
"""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime, time, timedelta

from safety_stream.auth import CredentialError, CredentialInfo, Role, check_name
from safety_stream.errors import UsageError
from safety_stream.store.credentials_sql import SqlCredentials
from safety_stream.store.opening import open_store


def parse_expiry(text: str) -> datetime:
    """``--expires``: a date (the token works through that day, UTC) or a date and time."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1), time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--expires {text!r} is not an ISO date or date and time "
            "(e.g. 2026-06-30 or 2026-06-30T18:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def actor() -> str:
    """Who ran the command, for the credentials' history: the OS user, else "cli"."""
    try:
        return getpass.getuser() or "cli"
    except (OSError, KeyError):  # no user name in this environment (a bare container)
        return "cli"


def add(db: str, name: str, role: Role, site_id: str | None, expires: str | None = None) -> int:
    expires_at = parse_expiry(expires) if expires is not None else None
    check_name(name, "site id" if role == "site" else "reader name")
    store = open_store(db, create=True)
    try:
        token = SqlCredentials(store.engine).add(name, role, site_id, expires_at, actor())
    finally:
        store.close()
    scope = f"site {site_id}" if site_id else "all sites"
    until = f", expires {_shown(expires_at)}" if expires_at else ""
    print(
        f"created credential {name!r} (role {role}, {scope}{until}); the token is shown only once:"
    )
    print(token)
    return 0


def list_credentials(db: str, sites: bool) -> int:
    store = open_store(db, create=False)
    try:
        found = [c for c in SqlCredentials(store.engine).listing() if _mine(c, sites)]
    finally:
        store.close()
    if not found:
        print("no site credentials" if sites else "no reader credentials")
        return 0
    now = datetime.now(UTC)
    header = ("NAME", "ROLE", "SITE", "CREATED", "EXPIRES", "REVOKED")
    rows = [header] + [
        (
            c.name,
            c.role,
            c.site_id or "-",
            _shown(c.created_at),
            _shown(c.expires_at) + (" (expired)" if c.expires_at and c.expires_at <= now else ""),
            _shown(c.revoked_at),
        )
        for c in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def revoke(db: str, name: str, sites: bool) -> int:
    store = open_store(db, create=False)
    try:
        credentials = SqlCredentials(store.engine)
        _check_kind(credentials, name, sites)
        revoked = credentials.revoke(name, actor())
    finally:
        store.close()
    print(f"revoked credential {name!r} at {_shown(revoked.revoked_at)}: its token is refused")
    return 0


def rotate(db: str, name: str, sites: bool, expires: str | None = None) -> int:
    expires_at = parse_expiry(expires) if expires is not None else None
    store = open_store(db, create=False)
    try:
        credentials = SqlCredentials(store.engine)
        _check_kind(credentials, name, sites)
        token = credentials.rotate(name, expires_at, actor())
    finally:
        store.close()
    until = f", expires {_shown(expires_at)}" if expires_at else ""
    print(
        f"rotated credential {name!r}{until}: the old token is refused from now on; "
        "the new token is shown only once:"
    )
    print(token)
    return 0


def _mine(credential: CredentialInfo, sites: bool) -> bool:
    return (credential.role == "site") == sites


def _check_kind(credentials: SqlCredentials, name: str, sites: bool) -> None:
    """``sites`` commands change site credentials only, ``readers`` commands the others."""
    found = next((c for c in credentials.listing() if c.name == name), None)
    if found is None or not _mine(found, sites):
        what, command = ("site", "sites") if sites else ("reader", "readers")
        also = ""
        if found is not None:
            other = "readers" if sites else "sites"
            also = f"; {name!r} is a {found.role} credential: use `safety-stream {other}`"
        raise CredentialError(
            f"no {what} credential named {name!r}{also} (see `safety-stream {command} list`)"
        )


def _shown(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
