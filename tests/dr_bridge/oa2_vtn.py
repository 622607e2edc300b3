"""A real openleadr VTN in-process, plain HTTP on loopback, for the OpenADR 2.0b tests.

Runs without certificates: unsigned messages over HTTP, fine for loopback tests only.
It asks for a one-hour poll period, so tests drive polls themselves (``poll_now()``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from openleadr import OpenADRServer, objects, utils
from openleadr.service.opt_service import OptService

VEN_ID = "ven-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Vtn:
    server: OpenADRServer
    url: str
    opts: dict[str, str] = field(default_factory=dict)
    #: oadrCreateOpt payloads received
    created_opts: list[dict] = field(default_factory=list)

    def callback(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts[event_id] = opt_type

    def event(self, event_id: str) -> objects.Event:
        return utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)

    def modify(self, event_id: str, payload: float) -> None:
        event = self.event(event_id)
        for interval in event.event_signals[0].intervals:
            interval["signal_payload"] = payload
        utils.increment_event_modification_number(event)
        self.server.events_updated[VEN_ID] = True

    def drop(self, event_id: str) -> None:
        """Remove an event silently (implied cancellation)."""
        self.server.events[VEN_ID].remove(self.event(event_id))
        self.server.events_updated[VEN_ID] = True


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    port = free_port()
    server = OpenADRServer(
        vtn_id="TestVTN",
        http_port=port,
        http_host="127.0.0.1",
        requested_poll_freq=timedelta(hours=1),  # tests poll explicitly
    )

    async def on_create_party_registration(info: dict) -> tuple[str, str]:
        return VEN_ID, "reg-1"

    server.add_handler("on_create_party_registration", on_create_party_registration)
    vtn = Vtn(server, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b")
    # openleadr's VTN serves no EiOpt (its OptService is unfinished and not mounted):
    # mount that class here, answering oadrCreateOpt and keeping what the VEN sent.
    opt = OptService("TestVTN")

    async def created_opt(payload: dict) -> tuple[str, dict]:
        vtn.created_opts.append(payload)
        return "oadrCreatedOpt", {"opt_id": payload["opt_id"]}

    opt.handlers["oadrCreateOpt"] = created_opt
    server.app.add_routes([web.post(f"{server.http_path_prefix}/EiOpt", opt.handler)])
    await server.run_async()
    yield vtn
    await server.stop()


def add_simple(vtn: Vtn, event_id: str, level: float, targets: list[dict], **kw) -> datetime:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    vtn.server.add_event(
        ven_id=VEN_ID,
        signal_name="SIMPLE",
        signal_type="level",
        intervals=[{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": level}],
        targets=targets,
        callback=vtn.callback,
        event_id=event_id,
        **kw,
    )
    return start
