"""Authentication of API callers: a bearer token maps to a principal (site or reader)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from safety_stream.auth import Credentials, Principal

bearer = HTTPBearer(auto_error=False)


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The authenticated caller (401 without a known bearer token)."""
    known: Credentials = request.app.state.runtime.credentials
    found = known.authenticate(credentials.credentials) if credentials else None
    if found is None:
        raise HTTPException(401, "missing or unknown bearer token", {"WWW-Authenticate": "Bearer"})
    return found


Caller = Annotated[Principal, Depends(principal)]


def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """The caller if a known bearer token came with the request, else None (no 401)."""
    known: Credentials = request.app.state.runtime.credentials
    return known.authenticate(credentials.credentials) if credentials else None


MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
