"""``gridctl run --gateway-workers 2`` killed with -9: nothing it started keeps running.

A real ``gridctl run`` child process with two gateway workers on the embedded Tansu
broker. No shutdown code runs after SIGKILL: the workers end by ``--watch-parent``, the
broker by the kernel (``PR_SET_PDEATHSIG``, armed when ``run`` spawned it). Before, the
broker outlived ``run`` and kept its port; the embedded PostgreSQL is stopped by the
fixture, as after any kill -9 (it is restarted on the same data dir by the next ``run``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench._common import GridctlProcess, _cmdline, children

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG"),
]


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GridctlProcess]:
    proc = GridctlProcess(tmp_path / "data", gateway_workers=2)
    try:
        yield proc
    finally:
        await proc.stop()


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_kill9_of_run_ends_the_broker_and_the_workers(gw: GridctlProcess) -> None:
    await gw.start()
    kids = children(gw.pid)
    brokers = [p for p in kids if os.path.basename(_cmdline(p).split(b"\0")[0]) == b"tansu"]
    workers = gw.gateway_pids()
    assert len(brokers) == 1, [_cmdline(p) for p in kids]
    assert len(workers) == 2
    gw.kill9()
    left = brokers + workers
    for _ in range(300):  # the workers look for their parent once a second
        left = [p for p in left if alive(p)]
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == [], [_cmdline(p) for p in left]
