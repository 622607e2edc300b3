"""Bearer-token check, in constant time against every configured token, with a back-off.

A client (by address) that fails authentication ``limit`` times within ``window`` seconds
gets 429 for every request until its oldest failure ages out, before its token is even
looked at: guessing then costs a window per ``limit`` tries, and a correct guess during
the back-off is not confirmed.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="the API token (see `gridctl run`)")


class FailureLimiter:
    """Failed attempts per client in a sliding window; bounded memory."""

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait (0: it may try)."""
        failures = self._failures.get(client)
        if not failures:
            return 0.0
        now = self._clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window - now

    def failed(self, client: str) -> None:
        failures = self._failures.pop(client, None) or deque(maxlen=self.limit)
        failures.append(self._clock())
        self._failures[client] = failures
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


def require_token(
    tokens: Sequence[str], limiter: FailureLimiter | None = None
) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency refusing requests without one of ``tokens`` (401), and
    clients that failed too often (429)."""
    encoded = [t.encode() for t in tokens if t]
    limiter = limiter or FailureLimiter()

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        client = request.client.host if request.client else "?"
        wait = limiter.retry_after(client)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many failed authentications; retry later",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        offered = credentials.credentials.encode() if credentials else b""
        # Compare against every token, without stopping early, so timing says nothing.
        ok = False
        for token in encoded:
            ok |= hmac.compare_digest(offered, token)
        if not ok or not offered:
            limiter.failed(client)
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
