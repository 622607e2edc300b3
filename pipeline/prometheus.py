"""Prometheus collectors created once per process, whoever asks first.

Tests and replay start several engines and buses in one process, and prometheus_client
refuses a second registration of the same name: every module that owns metrics gets them
through :func:`metric`, which returns the collector already registered under that name.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter


def metric(kind: type, name: str, doc: str, **kwargs: Any) -> Any:
    """The collector registered as ``name``, created as ``kind(name, doc, **kwargs)`` if new."""
    known = getattr(REGISTRY, "_names_to_collectors", {})
    existing = known.get(name)
    if existing is None and kind is Counter:
        existing = known.get(name.removesuffix("_total"))
    if existing is not None:
        return existing
    return kind(name, doc, **kwargs)
