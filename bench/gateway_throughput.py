"""Gateway throughput, ack latency and memory per connection; prints figures, asserts nothing.

Usage::

    .venv/bin/python bench/gateway_throughput.py                   # everything, default sizes
    .venv/bin/python bench/gateway_throughput.py --only throughput --chargers 200 --seconds 10
    .venv/bin/python bench/gateway_throughput.py --only rate --rate 5000
    .venv/bin/python bench/gateway_throughput.py --only rss --rss-steps 1000,5000,10000
    .venv/bin/python bench/gateway_throughput.py --only throughput --gateway-workers 2
    .venv/bin/python bench/gateway_throughput.py --only throughput --no-kafka --servers ours/wal \
        --profile /tmp/prof

The server under test runs in its own process (so its event loop does not share a core
with the load); the load is a light raw-websocket client in this process: N chargers in
closed loops, each sending an OCPP 1.6 MeterValues of a 3-phase charger (power and current
per phase, voltage, energy register, SoC: 9 sampled values) and timing until the
CallResult. Servers compared in one run:

- ``ours/local``: :class:`ocpp_gateway.Gateway` on ``LocalBus`` (memory), validation on;
- ``ours/wal``: the same on ``LocalBus(path)``, fsynced write-ahead log (``gridctl run``);
- ``ours/kafka``: the same on ``KafkaBus`` against the Tansu broker (a third process);
- ``ours/kafka xN`` (``--gateway-workers N``): N such gateway processes on one port with
  SO_REUSEPORT, as ``gridctl run --gateway-workers N`` runs them (CPU summed over them);
- ``stock``: a central system written with the ocpp library's defaults (jsonschema
  validation in a thread, library routing), answering MeterValues with an empty result;
- ``echo``: the floor in Python, a raw ``websockets`` server parsing each frame as JSON
  and answering an empty CallResult (no validation, no routing, no bus);
- ``node``: what a user might pick instead, a Node central system on ``ocpp-rpc`` with
  ``strictMode`` (every call and answer checked against the OCPP schemas), answering
  with an empty result (``bench/ocpp_rpc/server.js``; ocpp-rpc is ``npm install``-ed into
  ``bench/ocpp_rpc/node_modules`` on first use, not committed; without node or the
  registry the line says ``node: unavailable (why)``).

``--servers echo,node,ours/wal`` runs a subset; ``--profile DIR`` records each server with
py-spy over its measured seconds (read with ``bench/pyspy_top.py DIR/*.txt``).

``rate`` paces the load at a fixed MeterValues/s (open loop per charger) and reports the
ack latency distribution; ``rss`` opens 1k..10k connections sending heartbeats and reads
the server's VmRSS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: stamped when a process imports this module (each load client does): the gateway
#: replaces timestamps more than --max-clock-skew (300 s) off, a path a fixed old date
#: would take on every message; a run lasts a few minutes at most
_NOW = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
METER_PAYLOAD = {
    "connectorId": 1,
    "transactionId": 17,
    "meterValue": [
        {
            "timestamp": _NOW,
            "sampledValue": [
                *(
                    {"value": "3680.0", "measurand": "Power.Active.Import", "phase": p,
                     "unit": "W", "context": "Sample.Periodic", "location": "Outlet"}
                    for p in ("L1", "L2", "L3")
                ),
                *(
                    {"value": "16.0", "measurand": "Current.Import", "phase": p, "unit": "A"}
                    for p in ("L1", "L2", "L3")
                ),
                {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                {"value": "12345.6", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"},
            ],
        }
    ],
}  # fmt: skip
_METRICS_TOKEN = "bench-metrics"  # our gateway's /metrics needs a bearer token
PAYLOAD_JSON = json.dumps(METER_PAYLOAD, separators=(",", ":"))
#: the same sample as a 2.0.1 TransactionEvent (Updated), numbers instead of strings
TX_EVENT_PAYLOAD = {
    "eventType": "Updated",
    "timestamp": _NOW,
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 1,
    "transactionInfo": {"transactionId": "tx-bench-0001"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [
        {
            "timestamp": _NOW,
            "sampledValue": [
                {
                    "value": float(sv["value"]),
                    **{k: v for k, v in sv.items() if k in ("measurand", "phase", "context",
                                                            "location")},
                    "unitOfMeasure": {"unit": sv["unit"]},
                }
                for sv in METER_PAYLOAD["meterValue"][0]["sampledValue"]  # type: ignore[index]
            ],
        }
    ],
}  # fmt: skip


def ocpp_version() -> str:
    """Chosen with ``--ocpp``; an environment variable so spawned processes see it too."""
    return os.environ.get("GW_BENCH_OCPP", "1.6")


def frame_parts() -> tuple[str, str]:
    """(action, payload JSON) of the message under test for the chosen OCPP version."""
    if ocpp_version() == "2.0.1":
        return "TransactionEvent", json.dumps(TX_EVENT_PAYLOAD, separators=(",", ":"))
    return "MeterValues", PAYLOAD_JSON


# -- servers (child process) ------------------------------------------------------------
def _serve(
    kind: str, bootstrap: str | None, port_q: mp.Queue, stop: mp.Event, port: int = 0,
    index: int = 0, workers: int = 1,
) -> None:  # fmt: skip
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve_async(kind, bootstrap, port_q, stop, port, index, workers))


async def _serve_async(
    kind: str, bootstrap: str | None, port_q: mp.Queue, stop: mp.Event, port: int = 0,
    index: int = 0, workers: int = 1,
) -> None:  # fmt: skip
    if kind == "stock":
        _server, port, close = await _stock_server()
    elif kind == "echo":
        _server, port, close = await _echo_server()
    else:
        from ocpp_gateway import Gateway, GatewayConfig
        from pipeline.bus import LocalBus

        if kind.startswith("ours/kafka"):
            from pipeline.bus import KafkaBus

            bus = KafkaBus(bootstrap, config={"consumer.session.timeout.ms": 1500})  # type: ignore[arg-type]
        elif kind == "ours/wal":
            import tempfile

            # what `gridctl run` uses by default: the fsynced write-ahead log (group commit)
            bus = LocalBus(tempfile.mkdtemp(prefix="gw-bench-wal-"))
        else:
            bus = LocalBus()
        await bus.start()
        gw = Gateway(
            bus, GatewayConfig(port=port, reuse_port=workers > 1, worker_index=index,
                               workers=workers, report_offline=workers == 1,
                               allow_unknown_stations=True, max_size=1 << 20,
                               ping_interval=None, metrics_tokens=(_METRICS_TOKEN,),
                               # the closed loop sends ~20-40 calls/s per charger: the
                               # budget is checked on every frame but must not throttle
                               budget_msgs_per_s=10_000, budget_msgs_burst=10_000,
                               budget_bytes_per_s=1e9, budget_bytes_burst=1e9)
        )  # fmt: skip
        await gw.start()
        port = gw.port

        async def close() -> None:
            await gw.stop()
            await bus.stop()

    port_q.put((port, os.getpid()))
    while not stop.is_set():
        await asyncio.sleep(0.2)
    await close()


async def _stock_server():
    """A central system as the ocpp library's README writes it (defaults throughout)."""
    import websockets
    from ocpp.routing import on

    if ocpp_version() == "2.0.1":
        from ocpp.v201 import ChargePoint, call_result
        from ocpp.v201.enums import Action

        class StockCP(ChargePoint):
            @on(Action.transaction_event)
            async def on_transaction_event(self, **kwargs):
                return call_result.TransactionEvent()

            @on(Action.heartbeat)
            async def on_heartbeat(self):
                return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    else:
        from ocpp.v16 import ChargePoint, call_result  # type: ignore[assignment]
        from ocpp.v16.enums import Action  # type: ignore[assignment]

        class StockCP(ChargePoint):  # type: ignore[no-redef]
            @on(Action.meter_values)
            async def on_meter_values(self, connector_id, meter_value, **kwargs):
                return call_result.MeterValues()

            @on(Action.heartbeat)
            async def on_heartbeat(self):
                return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    async def handler(ws):
        cp = StockCP(ws.request.path.strip("/").split("/")[-1], ws)
        with contextlib.suppress(websockets.ConnectionClosed):
            await cp.start()

    return await _websockets_server(handler)


async def _websockets_server(handler):
    """A plain ``websockets`` server on a free loopback port: (server, port, close)."""
    import websockets

    server = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=[f"ocpp{ocpp_version()}"])
    port = server.sockets[0].getsockname()[1]

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return server, port, close


async def _echo_server():
    """The floor in Python: websockets parsing each frame as JSON and answering an empty
    CallResult, no validation, no routing, no bus."""
    import websockets

    async def handler(ws):
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in ws:
                await ws.send(json.dumps([3, json.loads(text)[1], {}]))

    return await _websockets_server(handler)


class Server:
    """The server under test: one process, or ``workers`` gateway processes sharing one
    port with SO_REUSEPORT (what ``gridctl run --gateway-workers`` runs)."""

    def __init__(self, kind: str, bootstrap: str | None = None, workers: int = 1) -> None:
        self.ctx = mp.get_context("spawn")
        self.q: mp.Queue = self.ctx.Queue()
        self.stop_ev = self.ctx.Event()
        self.kind, self.bootstrap, self.workers = kind, bootstrap, workers
        self.procs: list[Any] = []
        self.pids: list[int] = []

    def _start(self, port: int, index: int) -> None:
        args = (self.kind, self.bootstrap, self.q, self.stop_ev, port, index, self.workers)
        proc = self.ctx.Process(target=_serve, args=args)
        proc.start()
        self.procs.append(proc)
        got, pid = self.q.get(timeout=60)
        self.pids.append(pid)
        self.port = got

    def __enter__(self) -> Server:
        if self.kind == "node":
            return self._start_node()
        self._start(0, 0)
        for index in range(1, self.workers):
            self._start(self.port, index)
        self.pid = self.pids[0]
        return self

    def _start_node(self) -> Server:
        """``node bench/ocpp_rpc/server.js`` (ocpp-rpc, strict validation)."""
        env = {**os.environ, "GW_BENCH_OCPP": ocpp_version()}
        proc = subprocess.Popen(
            ["node", str(NODE_DIR / "server.js")], cwd=NODE_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.node = proc
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("port "):
            proc.kill()
            raise RuntimeError(f"node server did not start: {proc.stderr.read()[:300]}")  # type: ignore[union-attr]
        self.port = int(line.split()[1])
        self.pid = proc.pid
        self.pids = [proc.pid]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kind == "node":
            self.node.terminate()
            _, err = self.node.communicate(timeout=20)
            if "failures: 0" not in err:
                print(f"(node: {err.strip()[:200]})")
            return
        self.stop_ev.set()
        for proc in self.procs:
            proc.join(20)
            if proc.is_alive():
                proc.terminate()

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server processes (all their threads)."""
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


NODE_DIR = Path(__file__).resolve().parent / "ocpp_rpc"


def node_unavailable() -> str | None:
    """Why the Node central system cannot run here, or None once ocpp-rpc is installed
    (``npm install`` into ``bench/ocpp_rpc/node_modules``, not committed)."""
    import shutil

    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not on PATH"
    if not (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir():
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"]
        try:
            done = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"npm install failed: {exc}"
        if done.returncode != 0:
            return f"npm install failed: {(done.stderr or done.stdout).strip()[-200:]}"
    return None


# -- load (this process) ----------------------------------------------------------------
class RawWS:
    """A minimal websocket client (RFC 6455 text frames) so the load side stays cheap.

    The masking key is all zeros (legal, XOR is a no-op): the server unmasks as usual, and
    the client spends no CPU on masking. Pings are answered; anything else is ignored.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, station: str) -> RawWS:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (f"GET /ocpp/{station} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Sec-WebSocket-Protocol: ocpp{ocpp_version()}\r\n\r\n").encode()
        )  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        return cls(reader, writer)

    def _frame(self, opcode: int, data: bytes) -> bytes:
        n = len(data)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
        return head + b"\0\0\0\0" + data

    async def send(self, text: str) -> None:
        self.writer.write(self._frame(1, text.encode()))

    async def recv(self) -> str:
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(n)
            opcode = b0 & 0x0F
            if opcode == 1:
                return payload.decode()
            if opcode == 9:
                self.writer.write(self._frame(10, payload))
            elif opcode == 8:
                raise ConnectionError("closed by server")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(self._frame(8, (1000).to_bytes(2, "big")))
            self.writer.close()
            await self.writer.wait_closed()


async def _connect(port: int, station: str) -> RawWS:
    return await RawWS.connect(port, station)


async def _charger_loop(ws, idx: int, until: float, lat: list[float], interval: float | None,
                        errors: list[int]) -> None:  # fmt: skip
    n = 0
    action, payload = frame_parts()
    next_at = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now >= until:
            return
        if interval is not None:
            if now < next_at:
                await asyncio.sleep(next_at - now)
            next_at += interval
        n += 1
        t0 = time.perf_counter()
        await ws.send(f'[2,"{idx}-{n}","{action}",{payload}]')
        answer = await ws.recv()
        lat.append(time.perf_counter() - t0)
        if not answer.startswith("[3"):
            errors.append(1)


async def _load_part(
    port: int, ids: range, seconds: float, interval: float | None, start_wall: float
) -> tuple[list[float], int]:
    """One client process's share: connect, warm up, wait for the common start, run."""
    conns = await asyncio.gather(*(_connect(port, f"BENCH-{i}") for i in ids))
    warm: list[float] = []
    await asyncio.gather(*(_charger_loop(ws, i, time.perf_counter() + 0.5, warm, None, [])
                           for i, ws in zip(ids, conns, strict=True)))  # fmt: skip
    await asyncio.sleep(max(0.0, start_wall - time.time()))
    lat: list[float] = []
    errors: list[int] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _charger_loop(ws, i, until, lat, interval, errors)
            for i, ws in zip(ids, conns, strict=True)
        )
    )
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return lat, len(errors)


def _ack_buckets(port: int, action: str) -> dict[float, float] | None:
    """Cumulative buckets of our gateway's server-side ack histogram (None: not ours)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {_METRICS_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return None
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gridctl_ocpp_ack_seconds_bucket" and (
                sample.labels.get("action") == action
            ):
                out[float(sample.labels["le"])] = sample.value
    return out or None


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound (ms) of the bucket holding quantile ``q`` of what arrived in between."""
    diff = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = diff[float("inf")]
    for le, count in diff.items():
        if total and count >= q * total:
            return le * 1000
    return float("nan")


def _spy(pid: int, seconds: float, out: Path, k: int) -> subprocess.Popen[bytes]:
    """py-spy recording server process ``pid`` for ``seconds`` (100 Hz, raw format)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f"{out.name}.{k}.txt")
    cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
           "--rate", "100", "--format", "raw", "--output", str(path),
           "--duration", str(max(1, int(seconds)))]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _load_proc(port, ids, seconds, interval, start_wall, q) -> None:  # type: ignore[no-untyped-def]
    q.put(asyncio.run(_load_part(port, ids, seconds, interval, start_wall)))


def load(
    port: int,
    chargers: int,
    seconds: float,
    rate: float | None = None,
    srv: Server | None = None,
    clients: int = 2,
    profile: Path | None = None,
) -> dict:
    """Run the load from ``clients`` processes and merge their latencies.

    ``profile``: a py-spy raw profile of the server over the measured seconds is written
    there (``bench/pyspy_top.py`` reads it).
    """
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    interval = chargers / rate if rate else None
    start_wall = time.time() + 3.0 + chargers / 1000  # after every connect and warm-up
    per = -(-chargers // clients)
    procs = [
        ctx.Process(
            target=_load_proc,
            args=(
                port,
                range(k * per, min(chargers, (k + 1) * per)),
                seconds,
                interval,
                start_wall,
                q,
            ),
        )
        for k in range(clients)
        if k * per < chargers
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_wall - time.time()))
    action = frame_parts()[0]
    hist0 = _ack_buckets(port, action)
    cpu0 = srv.cpu_s() if srv else 0.0
    spies = [_spy(pid, seconds, profile, k) for k, pid in enumerate(srv.pids)] if (
        srv and profile) else []  # fmt: skip
    time.sleep(seconds)
    cpu = (srv.cpu_s() - cpu0) if srv else float("nan")
    hist1 = _ack_buckets(port, action)
    for spy in spies:
        spy.wait(30)
    lat: list[float] = []
    errors = 0
    for _ in procs:
        part, err = q.get(timeout=120)
        lat.extend(part)
        errors += err
    for p in procs:
        p.join(10)
    lat.sort()
    return {
        "msgs": len(lat),
        "rate": len(lat) / seconds,
        "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
        "errors": errors,
        "cpu_us": cpu / len(lat) * 1e6 if lat else float("nan"),
        "cpu_pct": cpu / seconds * 100,
        "srv_p50_ms": _bucket_quantile(hist0, hist1, 0.5) if hist0 and hist1 else float("nan"),
        "srv_p99_ms": _bucket_quantile(hist0, hist1, 0.99) if hist0 and hist1 else float("nan"),
    }


async def rss_run(server: Server, steps: list[int], heartbeat_s: float) -> list[tuple[int, float]]:
    conns = []
    out = []
    base = server.rss_mib()
    out.append((0, base))
    stop = asyncio.Event()

    async def beat(ws, i: int) -> None:
        n = 0
        with contextlib.suppress(Exception):
            while not stop.is_set():
                n += 1
                await ws.send(f'[2,"h{i}-{n}","Heartbeat",{{}}]')
                await ws.recv()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), heartbeat_s)

    tasks = []
    for target in steps:
        while len(conns) < target:
            batch = min(500, target - len(conns))
            new = await asyncio.gather(
                *(_connect(server.port, f"RSS-{len(conns) + k}") for k in range(batch))
            )
            for ws in new:
                tasks.append(asyncio.create_task(beat(ws, len(conns))))
                conns.append(ws)
        await asyncio.sleep(max(2.0, heartbeat_s))  # a full heartbeat round on every socket
        out.append((target, server.rss_mib()))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return out


# -- main ---------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["throughput", "rate", "rss"], action="append")
    ap.add_argument("--chargers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--rate-chargers", type=int, default=1000)
    ap.add_argument("--rss-steps", default="1000,2500,5000,10000")
    ap.add_argument("--heartbeat", type=float, default=5.0)
    ap.add_argument("--no-kafka", action="store_true")
    ap.add_argument("--clients", type=int, default=2, help="load client processes")
    ap.add_argument("--gateway-workers", type=int, default=1,
                    help="also measure N gateway processes on one port (Kafka)")  # fmt: skip
    ap.add_argument("--profile", type=Path, default=None,
                    help="directory: py-spy each server while it is measured")  # fmt: skip
    ap.add_argument(
        "--servers",
        default=None,
        help="comma-separated subset of the servers to run (default: all)",
    )
    ap.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6",
                    help="1.6 MeterValues or 2.0.1 TransactionEvent")  # fmt: skip
    args = ap.parse_args()
    os.environ["GW_BENCH_OCPP"] = args.ocpp
    parts = args.only or ["throughput", "rate", "rss"]
    chosen = set(args.servers.split(",")) if args.servers else None

    broker = None
    if not args.no_kafka and ("throughput" in parts or "rate" in parts):
        try:
            from pipeline.bus.tansu import TansuBroker

            broker = TansuBroker()
            broker.start()
        except Exception as exc:  # report and go on without Kafka
            print(f"(no Tansu broker: {exc}; skipping KafkaBus)")
            broker = None
    kinds = ["stock", "ours/local", "ours/wal"] + (["ours/kafka"] if broker else [])
    workers = args.gateway_workers
    many = f"ours/kafka x{workers}"
    if workers > 1 and broker:
        kinds.append(many)
    print(f"# host: {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f} at start; "
          f"payload: {args.ocpp} {frame_parts()[0]}, 9 sampled values, "
          f"{len(frame_parts()[1])} bytes")  # fmt: skip
    try:
        if "throughput" in parts:
            print(f"\n## closed loop: {args.chargers} chargers, {args.seconds:.0f} s each")
            per_s = f"{frame_parts()[0]}/s"
            print(f"{'server':<12} {per_s:>14} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
                  f" {'server CPU µs/msg':>18} {'server CPU %':>13}")  # fmt: skip
            results = {}
            why_not = node_unavailable() if not chosen or "node" in chosen else "not chosen"
            if why_not:
                print(f"{'node':<12} unavailable ({why_not})")
            for kind in ["echo", *([] if why_not else ["node"]), *kinds]:
                if chosen and kind not in chosen:
                    continue
                n = workers if kind == many else 1
                spy_to = args.profile / kind.replace("/", "-").replace(" ", "") if (
                    args.profile) else None  # fmt: skip
                with Server(kind, broker.bootstrap if broker else None, n) as srv:
                    r = load(srv.port, args.chargers, args.seconds, srv=srv,
                             clients=args.clients, profile=spy_to)  # fmt: skip
                results[kind] = r
                print(f"{kind:<12} {r['rate']:>14.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                      f"{r['errors']:>7} {r['cpu_us']:>18.0f} {r['cpu_pct']:>13.0f}")  # fmt: skip
            for kind in kinds[1:]:
                if not {kind, "stock", "echo"} <= results.keys():
                    continue
                ratio = results[kind]["rate"] / results["stock"]["rate"]
                cpu_ratio = results["stock"]["cpu_us"] / results[kind]["cpu_us"]
                floor = results[kind]["cpu_us"] / results["echo"]["cpu_us"]
                print(f"{kind} vs stock: {ratio:.2f}x {per_s}, "
                      f"{cpu_ratio:.2f}x less server CPU per message; "
                      f"{floor:.2f}x the raw websockets echo's CPU")  # fmt: skip
            if "node" in results and "echo" in results:
                node, echo = results["node"]["cpu_us"], results["echo"]["cpu_us"]
                for kind in ("ours/local", "ours/wal"):
                    if kind not in results:
                        continue
                    ours = results[kind]["cpu_us"]
                    fewer = results["node"]["rate"] / results[kind]["rate"]
                    print(f"{kind} vs node (ocpp-rpc, strict): {ours / node:.2f}x node's server "
                          f"CPU per message ({ours:.0f} µs against {node:.0f} µs), "
                          f"{fewer:.2f}x fewer {per_s}")  # fmt: skip
                print(f"  of that gap, the raw websockets echo alone (Python frame I/O, no OCPP "
                      f"work) costs {echo:.0f} µs = {echo / node:.2f}x node's whole path; "
                      "the rest is OCPP work in Python (validation, normalising, bus)")  # fmt: skip
                print("  what would close it: a websocket transport in C behind "
                      "ocpp_gateway/connection.py (the echo's cost); of the OCPP work, "
                      "normalisation is the largest part left (bench/gateway_core.py)")  # fmt: skip
            if many in results:
                r1, rn = results["ours/kafka"], results[many]
                print(f"{many} vs one worker: {rn['rate'] / r1['rate']:.2f}x {per_s} "
                      f"(the load generator shares these {os.cpu_count()} cores)")  # fmt: skip
        if "rate" in parts:
            print(f"\n## paced: {args.rate:.0f} MeterValues/s over {args.rate_chargers} chargers, "
                  f"{args.seconds:.0f} s")  # fmt: skip
            print(f"{'server':<12} {'achieved/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
                  f" {'server CPU %':>13}  server-side ack p50/p99 (bucket bound, ms)")  # fmt: skip
            for kind in kinds[1:]:
                with Server(kind, broker.bootstrap if broker else None) as srv:
                    r = load(
                        srv.port, args.rate_chargers, args.seconds, args.rate, srv, args.clients
                    )
                print(f"{kind:<12} {r['rate']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                      f"{r['errors']:>7} {r['cpu_pct']:>13.0f}  "
                      f"<= {r['srv_p50_ms']:g} / <= {r['srv_p99_ms']:g}")  # fmt: skip
        if "rss" in parts:
            steps = [int(s) for s in args.rss_steps.split(",")]
            print(f"\n## connected chargers vs server RSS (heartbeat every {args.heartbeat:.0f} s)")
            with Server("ours/local") as srv:
                for n, rss in asyncio.run(rss_run(srv, steps, args.heartbeat)):
                    print(f"{n:>6} chargers  {rss:8.1f} MiB")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
