"""``safety-stream sites add SITE`` / ``readers add NAME --role ROLE``: issue bearer tokens.

The token is printed once, alone on the last line, and only its hash is stored.
"""

from __future__ import annotations

from safety_stream.auth import Role, SqlCredentials
from safety_stream.store.opening import open_store


def add(db: str, name: str, role: Role, site_id: str | None) -> int:
    store = open_store(db, create=True)
    try:
        token = SqlCredentials(store.engine).add(name, role, site_id)
    finally:
        store.close()
    scope = f"site {site_id}" if site_id else "all sites"
    print(f"created credential {name!r} (role {role}, {scope}); the token is shown only once:")
    print(token)
    return 0
