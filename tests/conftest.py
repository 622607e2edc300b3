"""Shared fixtures: real PostgreSQL, a real Kafka-protocol broker, RisingWave when reachable."""

from tests.fixtures.postgres import postgres, postgres_server  # noqa: F401
