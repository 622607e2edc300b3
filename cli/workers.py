"""N gateway processes on one port: what ``gridctl run --gateway-workers N`` starts.

One Python process handles OCPP on one core; to use the others, ``run`` starts N
``gridctl gateway`` processes bound to the same port with SO_REUSEPORT (the kernel spreads
new connections among them). Each holds its own chargers and applies commands only to
them; they and the engine meet on a Kafka-protocol bus (the one given with ``--bus kafka``,
else the embedded Tansu broker ``run`` starts), never on an IPC of our own.

A worker that dies is started again (its chargers reconnect, to any worker); the others
keep running. ``stop()`` sends SIGTERM (graceful: in-flight calls finish, chargers get
1001) and kills what is still there after the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("gridctl.workers")

#: how long a worker may take to say READY (imports, Kafka metadata, the command topic)
READY_TIMEOUT_S = 60.0


@dataclass
class WorkerSpec:
    """What every worker is told (the same for all but the index)."""

    count: int
    port: int
    bootstrap: str
    data_dir: Path
    host: str = "127.0.0.1"
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    topic_prefix: str = ""
    allow_unknown_stations: bool = False
    #: GatewayConfig fields (budgets, TLS files, clock skew ...), as ``run`` builds them
    options: Mapping[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"
    log_format: str = "text"

    def argv(self, index: int) -> list[str]:
        args = [
            sys.executable, "-m", "cli.main", "gateway",
            "--kafka-bootstrap", self.bootstrap,
            "--host", self.host,
            "--ocpp-port", str(self.port),
            "--reuse-port",
            "--worker-index", str(index),
            "--workers", str(self.count),
            "--data-dir", str(self.data_dir),
            "--topic-prefix", self.topic_prefix,
            "--log-level", self.log_level,
            "--log-format", self.log_format,
        ]  # fmt: skip
        if self.allow_unknown_stations:
            args.append("--allow-unknown-stations")
        for name, value in self.kafka_config.items():
            args += ["--kafka-config", f"{name}={value}"]
        for name, value in self.options.items():
            args += ["--gateway-option", f"{name}={json.dumps(value)}"]
        return args


class GatewayWorkers:
    """Start, watch and stop the worker processes."""

    def __init__(self, spec: WorkerSpec, api_tokens: Sequence[str] = ()) -> None:
        self.spec = spec
        self._tokens = ",".join(api_tokens)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._drains: set[asyncio.Task[None]] = set()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values()]

    async def start(self) -> None:
        """Start every worker and return once each listens; any failure stops them all."""
        try:
            await asyncio.gather(*(self._spawn(i) for i in range(self.spec.count)))
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self._watch_loop(), name="gateway-workers")

    async def _spawn(self, index: int) -> None:
        # The API tokens (for /metrics) go through the environment, never argv: the
        # command line of a process is readable by every user of the machine.
        env = {**os.environ, "GRIDCTL_API_TOKENS": self._tokens}
        env.pop("GRIDCTL_KAFKA_BOOTSTRAP", None)  # argv says which broker
        proc = await asyncio.create_subprocess_exec(
            *self.spec.argv(index), stdout=asyncio.subprocess.PIPE, env=env
        )
        self._procs[index] = proc
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while line := await proc.stdout.readline():
                    if line.startswith(b"READY"):
                        self._drains.add(asyncio.create_task(_drain(proc.stdout)))
                        return
        except TimeoutError:
            raise RuntimeError(
                f"gateway worker {index} not listening after {READY_TIMEOUT_S:g} s"
            ) from None
        code = await proc.wait()
        raise RuntimeError(f"gateway worker {index} exited with code {code} before listening")

    async def _watch_loop(self) -> None:
        """Start a worker again when it dies (its chargers reconnect meanwhile)."""
        while not self._stopping:
            waits = {asyncio.ensure_future(p.wait()): i for i, p in self._procs.items()}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if self._stopping:
                return
            for task in done:
                index = waits[task]
                log.error("gateway worker %d exited (code %s); starting it again",
                          index, task.result())  # fmt: skip
                await asyncio.sleep(1.0)
                with contextlib.suppress(RuntimeError):
                    await self._spawn(index)

    async def stop(self, grace: float = 15.0) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        procs = [p for p in self._procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._procs.clear()
        for task in self._drains:
            task.cancel()
        self._drains.clear()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read what a worker still writes on stdout, so a full pipe never blocks it."""
    while await stream.readline():
        pass
