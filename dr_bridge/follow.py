"""The bridge's topic followers share the bus's (:mod:`pipeline.bus.follow`)."""

from pipeline.bus.follow import TopicFollower

__all__ = ["TopicFollower"]
