"""What the whole-system benchmarks and the reliability drills share.

Why a module: ``bench/dr_latency.py``, ``bench/ingest.py`` and ``tests/drills/`` all run
``gridctl run`` in a child process (so the load generator does not share the GIL with the
gateway, the engine and the API), import stations through the API, read figures from the
process (CPU, RSS, ``/metrics``) and print percentiles. Written once here.

    gw = GridctlProcess(tmp / "data", bus="local", tick=0.5)
    await gw.start()                       # returns when the API and the OCPP port answer
    await gw.import_stations(fleet.specs, password="pw")
    ...
    gw.kill9(); await gw.start()           # same data dir, same ports
    await gw.stop()                        # SIGTERM, then the embedded PostgreSQL is stopped
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.bus.tansu import CLIENT_CONFIG  # noqa: E402  (after ROOT is on the path)

TOKEN = "bench-token"


class BenchError(RuntimeError):
    """The system under test did not start, or a peer misbehaved; the message says how."""


# -- figures ------------------------------------------------------------------------------
def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``samples``; NaN when empty."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def p50_p99_max(samples: Sequence[float]) -> tuple[float, float, float]:
    return pct(samples, 50), pct(samples, 99), (max(samples) if samples else float("nan"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children and its live descendants (Linux /proc).

    PostgreSQL starts a backend per connection and reaps it when it ends: its CPU then
    lands in the postmaster's ``cutime``/``cstime``, so nothing spent is missed.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_s(child) for child in children(pid))


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc); NaN if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def machine() -> str:
    """One line for the report: cores, memory, load right now."""
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores, {mem} RAM, load avg {load:.2f}, python {sys.version.split()[0]}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format to ``{"name{labels}": value}`` (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str) -> float:
    """Sum of every series of ``name`` (all label sets)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


# -- gridctl run in a child process -----------------------------------------------------------
@dataclass
class GridctlProcess:
    """``gridctl run`` as a child process on loopback ports fixed for its whole life.

    ``database_url=None`` lets it start its embedded PostgreSQL under ``data_dir``; a URL
    (e.g. the tests' ``postgres`` fixture) skips initdb. The ports stay the same across
    ``kill9()`` / ``start()`` so reconnecting chargers find it again.
    """

    data_dir: Path
    bus: str = "local"
    engine: str = "embedded"
    kafka_bootstrap: str | None = None
    kafka_config: dict[str, Any] = field(default_factory=dict)
    tick: float = 1.0
    database_url: str | None = None
    allow_unknown_stations: bool = False
    log_level: str = "WARNING"
    gateway_workers: int | None = None  # None: run's default
    token: str = TOKEN
    ocpp_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def ocpp_url(self) -> str:
        """The base URL chargers append their station id to."""
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dsn(self) -> str:
        """gridctl's own role (the engine's tables are writable with it)."""
        if self.database_url:
            return self.database_url
        from pipeline.embedded_pg_auth import OWNER, dsn

        return dsn(self.data_dir / "postgres", OWNER, "127.0.0.1", self.pg_port)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("gridctl is not running")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-gridctl.log"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "cli.main", "run",
            "--data-dir", str(self.data_dir),
            "--bus", self.bus,
            "--engine", self.engine,
            "--ocpp-port", str(self.ocpp_port),
            "--api-port", str(self.api_port),
            "--pg-port", str(self.pg_port),
            "--tick", str(self.tick),
            "--api-tokens", self.token,
            "--log-level", self.log_level,
        ]  # fmt: skip
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        if self.kafka_bootstrap:
            cmd += ["--kafka-bootstrap", self.kafka_bootstrap]
        for key, value in self.kafka_config.items():
            cmd += ["--kafka-config", f"{key}={value}"]
        if self.allow_unknown_stations:
            cmd.append("--allow-unknown-stations")
        if self.gateway_workers is not None:
            cmd += ["--gateway-workers", str(self.gateway_workers)]
        return cmd

    def gateway_pids(self) -> list[int]:
        """The gateway worker processes ``run`` started; empty: the gateway runs inside it."""
        return [pid for pid in children(self.pid) if b"\0gateway\0" in _cmdline(pid)]

    async def start(self, timeout: float = 180.0) -> None:
        """Start (or restart after ``kill9``) and wait until the API and OCPP port answer."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts + 1} at {time.time():.3f}\n".encode())
            self.proc = subprocess.Popen(
                self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.starts += 1
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise BenchError(
                        f"gridctl exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    ok = (await client.get(f"{self.api_url}/healthz")).status_code == 200
                    gw = await client.get(f"http://127.0.0.1:{self.ocpp_port}/healthz")
                    if ok and gw.status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise BenchError(f"gridctl not ready within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs (the embedded PostgreSQL keeps running)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    async def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait; then make sure the embedded PostgreSQL is down too."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self.database_url is None and self.engine == "embedded":
            from pipeline.embedded_pg import EmbeddedPostgres

            pg = EmbeddedPostgres(self.data_dir / "postgres", port=self.pg_port)
            if (pg.data_dir / "pgdata" / "postmaster.pid").exists():
                await asyncio.get_running_loop().run_in_executor(None, pg.stop)

    # -- API --------------------------------------------------------------------------
    def api(self) -> Any:
        import httpx

        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60.0,
        )

    async def import_stations(
        self, specs: Iterable[Any], password: str, password_hash: str | None = None
    ) -> int:
        """POST every simulated station with one shared password hash (as the demo does)."""
        from pipeline.secrets import hash_password
        from simulator.stations import api_rows

        rows = api_rows(specs, password_hash or hash_password(password))
        async with self.api() as api:
            for i in range(0, len(rows), 1000):
                response = await api.post("/v1/stations", json=rows[i : i + 1000])
                if response.status_code != 201:
                    raise BenchError(f"station import: {response.status_code} {response.text}")
        return len(rows)

    def remember_passwords(
        self,
        station_ids: Iterable[str],
        password: str,
        password_hash: str,
        workers: int = 1,
        instances: Sequence[str] = (),
    ) -> None:
        """Before ``start``: the gateway's store of verified passwords, as after a restart.

        A fresh gateway checks each station's password with scrypt (~40 ms of CPU by
        design), so 10,000 chargers need minutes to connect on 2 cores; a gateway that
        ran before remembers them (:mod:`ocpp_gateway.verified`) and lets them in at ~1 ms
        each. Benchmarks that measure something other than the first connect write that
        store for every worker's state directory (a charger may land on any worker).
        """
        from ocpp_gateway.verified import VerifiedStore

        dirs = [self.data_dir / "gateway"]
        dirs += [self.data_dir / "gateway" / f"w{i}" for i in range(workers)]
        dirs += [self.data_dir / "gateway" / name for name in instances]
        first = VerifiedStore(dirs[0])
        for sid in station_ids:
            first.remember(sid, password, password_hash)
        for d in dirs:
            store = VerifiedStore(d)
            store.digests = first.digests
            store.save()

    def postgres_pid(self) -> int | None:
        """The embedded PostgreSQL's postmaster (None: an external database)."""
        path = self.data_dir / "postgres" / "pgdata" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(path.read_text().split()[0])
        return None

    async def metrics(self) -> dict[str, float]:
        """The API's ``/metrics`` (process-wide registry: engine and bridge)."""
        async with self.api() as api:
            response = await api.get("/metrics")
            response.raise_for_status()
            return parse_metrics(response.text)

    async def gateway_metrics(self) -> dict[str, float]:
        """The gateway's own ``/metrics`` on the OCPP port."""
        import httpx

        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(
                f"http://127.0.0.1:{self.ocpp_port}/metrics",
                headers={"Authorization": f"Bearer {self.token}"},  # the API's token
            )
            response.raise_for_status()
            return parse_metrics(response.text)


@dataclass
class LoneGateway:
    """One ``gridctl gateway`` process of its own, as on a machine of its own.

    The deployment of docs/operations.md ("Several machines"): ``gridctl run --bus kafka``
    (engine, API and its own workers) and, elsewhere, a ``gridctl gateway`` on the same
    brokers that the chargers reach. Started with the argv ``run`` gives its workers
    (:class:`cli.workers.WorkerSpec`), as index ``workers - 1`` of ``workers`` under the
    name ``instance``: it never reports a station offline (worker 0 of ``run`` does, after
    asking the status topic who holds it), so the memory of one process holding the whole
    fleet is measured on the real worker, with the real engine behind it.
    """

    gridctl: GridctlProcess
    bootstrap: str
    instance: str = "lone"
    workers: int = 3
    ocpp_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the lone gateway is not running")
        return self.proc.pid

    async def start(self, timeout: float = 60.0) -> None:
        from cli.workers import WorkerSpec

        g = self.gridctl
        spec = WorkerSpec(
            count=self.workers, port=self.ocpp_port, bootstrap=self.bootstrap,
            data_dir=g.data_dir, kafka_config=dict(g.kafka_config), log_level=g.log_level,
        )  # fmt: skip
        argv = [*spec.argv(self.workers - 1), "--instance", self.instance]
        log = open(g.data_dir.parent / f"gateway-{self.instance}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, "GRIDCTL_API_TOKENS": g.token},
        )  # fmt: skip
        log.close()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline), timeout
        )
        if not line.startswith(b"READY"):
            raise BenchError(f"lone gateway did not start: {line!r} (see its log)")

    async def stop(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def start_tansu(log_dir: Path | None = None) -> Any:
    """A Tansu broker on a free loopback port (the test fixture's launcher)."""
    from pipeline.bus.tansu import TansuBroker

    broker = TansuBroker(log_path=log_dir / "tansu.log" if log_dir else None)
    broker.start()
    return broker


#: Group joins on Tansu take session.timeout.ms / 2 (see pipeline/bus/tansu.py).
TANSU_CLIENT_CONFIG = CLIENT_CONFIG
