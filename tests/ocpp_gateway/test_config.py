"""Settings that cannot work are refused when the config is built, not at first use."""

from __future__ import annotations

import pytest

from ocpp_gateway import ConfigError, GatewayConfig


def test_defaults_are_generous_for_chargers() -> None:
    config = GatewayConfig()
    assert (config.ping_interval, config.ping_timeout) == (60.0, 60.0)
    assert not config.tls and not config.allow_unknown_stations


@pytest.mark.parametrize(
    "kwargs", [{"certfile": "c.pem"}, {"keyfile": "k.pem"}, {"ack_timeout": 0}]
)
def test_impossible_settings_raise(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        GatewayConfig(**kwargs)


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_a_command_log_interval_that_would_spin_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="outcome_log_s"):
        GatewayConfig(outcome_log_s=value)
