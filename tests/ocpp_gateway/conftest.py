"""Fixtures of the gateway tests: a bus per backend and a running gateway on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import Bus, LocalBus

#: the bearer token that reads /metrics of the ``gateway`` fixture
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = LocalBus()
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def gateway_config() -> GatewayConfig:
    return GatewayConfig(
        port=0, allow_unknown_stations=True, ack_timeout=2.0, metrics_tokens=(METRICS_TOKEN,)
    )


@pytest.fixture
async def gateway(bus: Bus, gateway_config: GatewayConfig) -> AsyncIterator[Gateway]:
    gw = Gateway(bus, gateway_config)
    await gw.start()
    yield gw
    await gw.stop()
