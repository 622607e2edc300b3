"""``gridctl run --gateway-workers`` and ``gridctl gateway``: what is refused before anything
starts, and the default number of workers (the loop itself: tests/test_whole_loop_workers.py).
"""

from __future__ import annotations

import os

import pytest
import typer

from cli.run_cmd import _gateway_workers
from tests.cli.test_cli_habits import gridctl


def test_one_worker_per_core_on_kafka_and_one_on_the_in_process_bus() -> None:
    assert _gateway_workers(None, "kafka") == (os.cpu_count() or 1)
    assert _gateway_workers(None, "local") == 1  # its log on disk makes readings durable
    assert _gateway_workers(3, "kafka") == 3


def test_zero_workers_is_refused() -> None:
    with pytest.raises(typer.BadParameter, match="at least 1"):
        _gateway_workers(0, "kafka")


def test_run_refuses_zero_workers_naming_the_flag() -> None:
    result = gridctl("run", "--gateway-workers", "0")
    assert result.returncode == 2 and "--gateway-workers" in result.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--worker-index", "2", "--workers", "2"], "--worker-index"),
        (["--workers", "0"], "--workers"),
        (["--gateway-option", "max_size=10"], "--gateway-option"),  # below one MeterValues
        (["--gateway-option", "no_such_field=1"], "--gateway-option"),
    ],
)
def test_gateway_refuses_bad_settings_naming_the_flag(args: list[str], flag: str) -> None:
    result = gridctl("gateway", "--kafka-bootstrap", "127.0.0.1:1", *args)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr
