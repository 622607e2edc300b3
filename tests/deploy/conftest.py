"""Fixtures of the deployment tests: compose.yaml parsed once per module."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.compose_file import load_compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]
