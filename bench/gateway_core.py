"""CPU of the gateway's OCPP core without sockets; prints figures, asserts nothing.

Usage::

    .venv/bin/python bench/gateway_core.py [--n 20000]

Receive path: a 1.6 MeterValues frame (the 9 sampled values of
``bench/gateway_throughput.py``) through ``OcppProtocol.receive``, the station's handler
(normalisation, contract check, publish on an in-memory ``LocalBus``) and the answer's
text; then the same from 200 stations at once on ``LocalBus(path)``, the fsynced
write-ahead log, each answer only once its reading is durable (what ``gridctl run`` does;
no sockets, so this is the OCPP and bus work the websocket echo does not have).

Send path: one SetChargingProfile built, validated and serialised by our protocol,
against the way the ocpp library's ``ChargePoint.call()`` serialises the same call
(``call.SetChargingProfile`` dataclass, ``dataclasses.asdict``, camelCase conversion,
``Call.to_json``), both validated with the same compiled validator. One process, one
core: the figures are µs of CPU per message, the best of ``--repeat`` runs (the machine
is shared: the best is the least disturbed); compare them within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call
from ocpp.v16 import call

from bench.gateway_throughput import PAYLOAD_JSON
from ocpp_gateway.auth import StationRegistry
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.metrics import GatewayMetrics
from ocpp_gateway.profiles import UNKNOWN
from ocpp_gateway.protocol import OcppProtocol
from ocpp_gateway.routing import to_snake
from ocpp_gateway.station import StationContext
from ocpp_gateway.v16 import DIALECT
from pipeline.bus import LocalBus
from pipeline.contracts import SetChargingProfileCommand


def cpu_us(fn, n: int) -> float:
    t0 = time.process_time()
    fn(n)
    return (time.process_time() - t0) / n * 1e6


async def receive_path(n: int) -> float:
    bus = LocalBus()
    await bus.start()
    config = GatewayConfig(allow_unknown_stations=True, max_clock_skew_s=3600)
    ctx = StationContext(bus, config, GatewayMetrics(), StationRegistry())
    station = DIALECT.station("CP-BENCH", DIALECT, ctx)
    protocol = OcppProtocol(DIALECT, station.handled())
    frame = f'[2,"UID","MeterValues",{PAYLOAD_JSON}]'
    t0 = time.process_time()
    for _ in range(n):
        event = protocol.receive(frame)
        answer = await station.handle(event.action, event.payload)  # type: ignore[union-attr]
        protocol.send_result(event.unique_id, answer)  # type: ignore[union-attr, arg-type]
        protocol.data_to_send()
    spent = time.process_time() - t0
    await bus.stop()
    return spent / n * 1e6


async def receive_path_wal(n: int, chargers: int = 200) -> float:
    """The same, on ``LocalBus(path)`` (the fsynced write-ahead log of ``gridctl run``),
    ``chargers`` stations each sending its next MeterValues once the last was answered, so
    the group commit batches as it does under load; CPU of every thread (fsync included)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gw-core-wal-") as tmp:
        bus = LocalBus(tmp)
        await bus.start()
        config = GatewayConfig(allow_unknown_stations=True, max_clock_skew_s=3600)
        ctx = StationContext(bus, config, GatewayMetrics(), StationRegistry())
        frame = f'[2,"UID","MeterValues",{PAYLOAD_JSON}]'

        async def charger(i: int, count: int) -> None:
            station = DIALECT.station(f"CP-{i}", DIALECT, ctx)
            protocol = OcppProtocol(DIALECT, station.handled())
            for _ in range(count):
                event = protocol.receive(frame)
                answer = await station.handle(event.action, event.payload)  # type: ignore[union-attr]
                protocol.send_result(event.unique_id, answer)  # type: ignore[union-attr, arg-type]
                protocol.data_to_send()

        per = n // chargers
        t0 = time.process_time()
        await asyncio.gather(*(charger(i, per) for i in range(chargers)))
        spent = time.process_time() - t0
        await bus.stop()
    return spent / (per * chargers) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, repeat = args.n, args.repeat
    now = datetime.now(UTC)
    cmd = SetChargingProfileCommand(
        station_id="CP-BENCH", target_power_kw=7.4, signal_id="s", priority=2,
        dr_end_ts=now + timedelta(hours=1), command_ts=now,
    )  # fmt: skip
    protocol = OcppProtocol(DIALECT, frozenset())
    validate = DIALECT.schemas.compile("SetChargingProfile")

    def ours(k: int) -> None:
        for _ in range(k):
            payload = DIALECT.set_profile(cmd, None, "TxDefaultProfile", now, 60, UNKNOWN)
            uid = protocol.send_call("SetChargingProfile", payload)
            protocol.data_to_send()
            protocol.abandon(uid)

    def library_way(k: int) -> None:
        for i in range(k):
            payload = DIALECT.set_profile(cmd, None, "TxDefaultProfile", now, 60, UNKNOWN)
            kwargs = to_snake(payload)  # what the old profile builder produced
            request = call.SetChargingProfile(**kwargs)
            body = snake_to_camel_case(remove_nones(serialize_as_dict(request)))
            validate(body)
            Call(str(i), "SetChargingProfile", body).to_json()

    print(f"# one process; load avg {Path('/proc/loadavg').read_text().split()[0]} at start")
    mem_us = min(asyncio.run(receive_path(n)) for _ in range(repeat))
    print(f"receive path, 1.6 MeterValues (9 values): {mem_us:7.1f} µs/msg")
    wal_us = min(asyncio.run(receive_path_wal(n)) for _ in range(repeat))
    print(f"  the same on the WAL, 200 chargers at once: {wal_us:6.1f} µs/msg (fsync included)")
    a = min(cpu_us(ours, n) for _ in range(repeat))
    b = min(cpu_us(library_way, n) for _ in range(repeat))
    print(f"send path, SetChargingProfile, ours:       {a:7.1f} µs/call")
    print(f"send path, the library's serialisation:    {b:7.1f} µs/call ({b / a:.1f}x ours)")


if __name__ == "__main__":
    main()
