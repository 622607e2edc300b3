"""One bus interface, two transports: in-process (`LocalBus`) and Kafka (`KafkaBus`)."""

from pipeline.bus.base import Bus, BusClosed, BusError, Message, PublishError, Record, Subscription
from pipeline.bus.local import LocalBus

__all__ = [
    "Bus",
    "BusClosed",
    "BusError",
    "KafkaBus",
    "LocalBus",
    "Message",
    "PublishError",
    "Record",
    "Subscription",
]


def __getattr__(name: str) -> object:
    # confluent-kafka loads librdkafka; import it only when a Kafka bus is asked for.
    if name == "KafkaBus":
        from pipeline.bus.kafka import KafkaBus

        return KafkaBus
    raise AttributeError(name)
