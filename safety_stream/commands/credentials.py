"""``safety-stream sites add SITE`` / ``readers add NAME --role ROLE``: issue bearer tokens.

The token is printed once, alone on the last line, and only its hash is stored.
"""

from __future__ import annotations

import sys

from safety_stream.auth import CredentialError, Role, SqlCredentials
from safety_stream.store.sql import SqlEventStore


def add(db: str, name: str, role: Role, site_id: str | None) -> int:
    store = SqlEventStore.open(db)
    try:
        token = SqlCredentials(store.engine).add(name, role, site_id)
    except CredentialError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        store.close()
    scope = f"site {site_id}" if site_id else "all sites"
    print(f"created credential {name!r} (role {role}, {scope}); the token is shown only once:")
    print(token)
    return 0
