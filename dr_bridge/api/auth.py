"""Bearer-token check, in constant time against every configured token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="the API token (see `gridctl run`)")


def require_token(tokens: Sequence[str]) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency refusing requests without one of ``tokens`` (401)."""
    encoded = [t.encode() for t in tokens if t]

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        offered = credentials.credentials.encode() if credentials else b""
        # Compare against every token, without stopping early, so timing says nothing.
        ok = False
        for token in encoded:
            ok |= hmac.compare_digest(offered, token)
        if not ok or not offered:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
