"""Request bodies the API can afford to read: bounded in size and in nesting.

A 100 MB body was read in full before anything looked at it, and a 100k-deep JSON array
took the parser down (RecursionError, HTTP 500). Both are refused before any work: the
size by :class:`BodyLimit` (413, counted while the body streams in, whatever
Content-Length said), the depth by :func:`load_json` (422 naming the body).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dr_bridge.errors import SignalInvalid

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Deepest nesting a request body may have; a signal is 1 level, a stations list 2.
MAX_DEPTH = 32
#: A signal is a few hundred bytes.
MAX_SIGNAL_BYTES = 64 * 1024
#: A stations import of 10,000 stations is about 3 MB: room for some 50,000 in one request.
MAX_BODY_BYTES = 16 * 1024 * 1024


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body over the limit of its path."""

    def __init__(self, app: Callable[..., Awaitable[None]], limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    def limit(self, path: str) -> int:
        return self.limits.get(path.rstrip("/"), MAX_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def load_json(body: bytes) -> Any:
    """Parse a request body, or raise :class:`SignalInvalid` on ``body`` (-> 422).

    ``NaN`` and ``Infinity`` parse (Python's json takes them) so that the field they are
    in is named by the field's own check, which refuses non-finite numbers.
    """
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise SignalInvalid([("body", f"nested deeper than {MAX_DEPTH} levels")]) from exc
    except ValueError as exc:
        raise SignalInvalid([("body", f"not JSON: {exc}")]) from exc
    if _depth(data) > MAX_DEPTH:
        raise SignalInvalid([("body", f"nested deeper than {MAX_DEPTH} levels")])
    return data


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest
