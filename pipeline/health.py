"""What ``/healthz`` reports: one probe per component, each answering within a deadline.

A process that answers ``ok`` while its engine no longer ticks is worse than one that is
down: the NOC trusts it (issue 15). So health is not "the HTTP server answers" but a probe
per component (engine, database, bus, gateway, bridge), each run with a timeout so that a
paused dependency (a stopped PostgreSQL accepts TCP connections and then says nothing)
shows as down instead of hanging the endpoint. The report is down when any probe is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

#: A probe returns a one-line detail when the component is fine and raises when it is not.
Probe = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class Health:
    """Named probes, run concurrently; ``timeout`` bounds each one."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._probes: dict[str, Probe] = {}

    def add(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    @property
    def names(self) -> list[str]:
        return list(self._probes)

    async def _run(self, name: str, probe: Probe) -> ComponentHealth:
        try:
            async with asyncio.timeout(self.timeout):
                return ComponentHealth(name, True, await probe())
        except TimeoutError:
            return ComponentHealth(name, False, f"no answer within {self.timeout:g} s")
        except Exception as exc:  # any failure of a probe is the component being down
            text = str(exc).strip().splitlines()
            return ComponentHealth(name, False, text[0] if text else type(exc).__name__)

    async def check(self) -> list[ComponentHealth]:
        return list(await asyncio.gather(*(self._run(n, p) for n, p in self._probes.items())))

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """``(ok, body)``: body is ``{"status": "ok"|"down", "components": {...}}``."""
        results = await self.check()
        ok = all(r.ok for r in results)
        return ok, {
            "status": "ok" if ok else "down",
            "components": {r.name: r.as_dict() for r in results},
        }


def age_probe(last: Callable[[], float | None], stale_after: float, what: str) -> Probe:
    """A probe that is down when ``last()`` (a ``time.monotonic()`` stamp) is too old.

    ``None`` means the component has not done it yet (the engine catching up on the bus
    at start): down, with that said, since nothing it computes can be trusted yet.
    """

    async def probe() -> str:
        stamp = last()
        if stamp is None:
            raise RuntimeError(f"no {what} yet")
        age = time.monotonic() - stamp
        if age > stale_after:
            raise RuntimeError(f"last {what} {age:.1f} s ago (stale after {stale_after:g} s)")
        return f"last {what} {age:.1f} s ago"

    return probe
