"""Shared fixtures: real PostgreSQL, a real Kafka-protocol broker, RisingWave when reachable."""

from tests.fixtures.kafka import any_bus, kafka, own_tansu  # noqa: F401
from tests.fixtures.postgres import postgres, postgres_server  # noqa: F401
from tests.fixtures.risingwave import risingwave  # noqa: F401
