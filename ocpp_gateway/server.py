"""The websocket endpoint: ``ws(s)://HOST:PORT/ocpp/{station_id}``, both OCPP versions.

Everything that can be refused is refused before the upgrade, in ``process_request``,
with an HTTP status and a one-line reason (and a log line naming the station): wrong path
(404), no OCPP subprotocol we speak (400), unknown station (404), no/wrong credentials
(401, also for an unknown station, see :mod:`.auth`), too many failures (429), wrong
security profile (403). ``/metrics`` (Prometheus text; it names signal ids, so it needs
``Authorization: Bearer <API token>``) and ``/healthz`` are served on the same port.
Frames above ``max_size`` close the connection with 1009.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from ocpp_gateway.auth import StationRegistry
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import AuthError
from ocpp_gateway.keepalive import Keepalive
from ocpp_gateway.logsafe import Warnings, clean
from ocpp_gateway.metrics import GatewayMetrics

# ours, in order of preference: websockets picks the first one the charger also offers
from ocpp_gateway.versions import SUBPROTOCOLS
from pipeline.contracts import STATION_ID_MAX, STATION_ID_PATTERN

__all__ = ["SUBPROTOCOLS", "OcppServer", "station_id_from_path"]

log = logging.getLogger("ocpp_gateway.server")

_STATION_ID = re.compile(STATION_ID_PATTERN)

Handler = Callable[[str, str, ServerConnection], Awaitable[None]]


def station_id_from_path(path: str) -> str | None:
    """The station id of ``/ocpp/{id}`` (percent-decoded), or None if the path is wrong."""
    parts = urlsplit(path).path.split("/")
    if len(parts) != 3 or parts[0] != "" or parts[1] != "ocpp":
        return None
    station_id = unquote(parts[2])
    # The contract's rule (<= 48 chars, no ':' '/' or control characters): an id that no
    # record could carry is not served, and never reaches a log line.
    if len(station_id) > STATION_ID_MAX or not _STATION_ID.match(station_id):
        return None
    return station_id


def _peer(connection: ServerConnection) -> str | None:
    address = connection.remote_address
    return str(address[0]) if address else None


def offered_subprotocols(request: Request) -> list[str]:
    return [
        p.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


class OcppServer:
    """Accepts chargers and hands each connection to ``handler(station_id, version, ws)``."""

    def __init__(
        self,
        config: GatewayConfig,
        registry: StationRegistry,
        metrics: GatewayMetrics,
        handler: Handler,
    ) -> None:
        self.config = config
        self.registry = registry
        self.metrics = metrics
        self._handler = handler
        self._server: Server | None = None
        self._refusals = Warnings(log, "handshake refused: ", burst=20)
        #: one task pings every connection (ocpp_gateway.keepalive), not one per connection
        self._keepalive: Keepalive | None = None
        if config.ping_interval is not None:
            self._keepalive = Keepalive(config.ping_interval, config.ping_timeout)

    async def start(self) -> None:
        ctx = None
        if self.config.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security profile 2
            ctx.load_cert_chain(self.config.certfile, self.config.keyfile)  # type: ignore[arg-type]
        self._server = await serve(
            self._serve,
            self.config.host,
            self.config.port,
            ssl=ctx,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._process_request,
            # our Keepalive pings instead, with the same interval and timeout
            ping_interval=None,
            ping_timeout=None,
            max_size=self.config.max_size,
            close_timeout=self.config.close_timeout,
            # websockets drops a handshake after 10 s by default, with no answer at all;
            # ours may queue for a password check for verify_wait_s and then hash
            open_timeout=self.config.verify_wait_s + 20.0,
            server_header="gridctl-ocpp",
            reuse_port=self.config.reuse_port or None,
        )
        if self._keepalive is not None:
            self._keepalive.start()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> set[ServerConnection]:
        return set(self._server.connections) if self._server else set()

    async def stop(self, idle: Callable[[], bool]) -> None:
        """Stop accepting, let in-flight calls finish (up to the grace), close with 1001."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        deadline = time.monotonic() + self.config.shutdown_grace
        while not idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        conns = list(self._server.connections)
        await asyncio.gather(
            *(c.close(1001, "gateway shutting down") for c in conns), return_exceptions=True
        )
        await self._server.wait_closed()
        self._server = None
        if self._keepalive is not None:
            await self._keepalive.stop()

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/metrics":
            return self._metrics(connection, request)
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        station_id = station_id_from_path(request.path)
        if station_id is None:
            reason = (
                f"no OCPP endpoint at {clean(unquote(path), 80)} (/ocpp/<station id>: at most "
                f"{STATION_ID_MAX} characters, no ':', '/' or control characters)"
            )
            return self._refuse(connection, 404, "?", reason)
        offered = offered_subprotocols(request)
        if not any(p in SUBPROTOCOLS for p in offered):
            reason = (
                f"no supported OCPP subprotocol offered (got {offered or 'none'}; "
                f"this server speaks {', '.join(SUBPROTOCOLS)})"
            )
            return self._refuse(connection, 400, station_id, reason)
        try:
            await self.registry.check(
                station_id,
                request.headers.get("Authorization"),
                tls=self.config.tls,
                allow_unknown=self.config.allow_unknown_stations,
                source=_peer(connection),
            )
        except AuthError as exc:
            return self._refuse(
                connection, exc.status, station_id, exc.reason, exc.retry_after, exc.log_reason
            )
        return None

    def _metrics(self, connection: ServerConnection, request: Request) -> Response:
        """The gateway's metrics, for a bearer of one of ``config.metrics_tokens``."""
        scheme, _, offered = (request.headers.get("Authorization") or "").partition(" ")
        tokens = self.config.metrics_tokens
        allowed = tokens() if callable(tokens) else tokens
        ok = False
        for token in allowed:  # every token compared, so timing says nothing
            ok |= bool(token) and hmac.compare_digest(offered.encode(), token.encode())
        if scheme.lower() != "bearer" or not ok:
            response = connection.respond(
                HTTPStatus.UNAUTHORIZED, "/metrics needs Authorization: Bearer <API token>\n"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        response = connection.respond(HTTPStatus.OK, self.metrics.render().decode())
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response

    def _refuse(
        self,
        connection: ServerConnection,
        status: int,
        station_id: str,
        reason: str,
        retry_after: int | None = None,
        log_reason: str | None = None,
    ) -> Response:
        self._refusals.warning(
            "station %s from %s (%d): %s", station_id, _peer(connection), status,
            log_reason or reason,
        )  # fmt: skip
        response = connection.respond(HTTPStatus(status), reason + "\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="gridctl", charset="UTF-8"'
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def _serve(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = station_id_from_path(connection.request.path)
        # The handshake's headers are not needed past this point (websockets reads them
        # only during the handshake): ~2.6 KB per connection for its whole life
        # (bench/gateway_memory.py), and they carry the charger's Basic-auth password,
        # which should not stay in memory for days either. Emptied in place: websockets'
        # frame parser (a generator) holds the same request, and a request that is None
        # means "handshake not yet received" to the connection.
        connection.request.headers.clear()
        version = connection.subprotocol
        if station_id is None or version is None:  # process_request already refused these
            await connection.close(1002, "no OCPP subprotocol")
            return
        keepalive = self._keepalive
        if keepalive is None:
            await self._handler(station_id, str(version), connection)
            return
        keepalive.add(connection)
        try:
            await self._handler(station_id, str(version), connection)
        finally:
            keepalive.discard(connection)
