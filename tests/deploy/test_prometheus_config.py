"""deploy/prometheus/prometheus.yml: what Prometheus scrapes, with which credentials."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.compose_file import DEPLOY, command_flags, volume_mounts


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_prometheus_scrapes_gridctl_and_risingwave(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert volume_mounts(services["prometheus"])["./deploy/prometheus"] == "/etc/prometheus"
    jobs = _scrape_jobs()
    flags = command_flags(services["gridctl"]["command"])
    api, ocpp = jobs["gridctl"], jobs["gridctl-ocpp"]
    assert api["static_configs"][0]["targets"] == [f"gridctl:{flags['--api-port']}"]
    assert ocpp["static_configs"][0]["targets"] == [f"gridctl:{flags['--ocpp-port']}"]
    assert api.get("metrics_path", "/metrics") == ocpp.get("metrics_path", "/metrics") == "/metrics"
    rw = jobs["risingwave"]
    listen = services["risingwave"]["environment"]["RW_SINGLE_NODE_PROMETHEUS_LISTENER_ADDR"]
    assert rw["static_configs"][0]["targets"] == [f"risingwave:{listen.rsplit(':', 1)[1]}"]


def test_prometheus_presents_a_token_gridctl_accepts(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Both ports' /metrics need a bearer token: the compose secret is one gridctl accepts."""
    jobs = _scrape_jobs()
    auth = jobs["gridctl"]["authorization"]
    assert jobs["gridctl-ocpp"]["authorization"] == auth  # the OCPP port takes the API's
    secret = Path(auth["credentials_file"]).name
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"] == f"/run/secrets/{secret}"
    assert secret in services["prometheus"]["secrets"]
    variable = compose["secrets"][secret]["environment"]
    assert "${" + variable in services["gridctl"]["environment"]["GRIDCTL_API_TOKENS"]


def _relabel_regex(job: dict[str, Any], action: str) -> re.Pattern[str]:
    (rule,) = [r for r in job["metric_relabel_configs"] if r["action"] == action]
    assert rule["source_labels"] == ["__name__"]
    return re.compile(rule["regex"])  # Prometheus anchors relabel regexes: use fullmatch


def _sample_names(text: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_each_gridctl_series_is_scraped_from_exactly_one_port() -> None:
    """The relabel regex against what the real gateway and bridge export."""
    from prometheus_client import REGISTRY, generate_latest

    import dr_bridge.metrics  # noqa: F401  (registers the bridge's metrics)
    from ocpp_gateway.metrics import GatewayMetrics

    jobs = _scrape_jobs()
    keep = _relabel_regex(jobs["gridctl-ocpp"], "keep")
    drop = _relabel_regex(jobs["gridctl"], "drop")
    assert keep.pattern == drop.pattern
    gateway = GatewayMetrics()
    gateway.commands.labels("Accepted").inc()
    gateway.messages.labels("MeterValues", "1.6").inc()
    gateway.frame_errors.labels("FormatViolation").inc()
    gateway_names = _sample_names(gateway.render().decode())
    assert gateway_names and all(keep.fullmatch(n) for n in gateway_names)
    process_names = _sample_names(generate_latest(REGISTRY).decode())
    bridge = {n for n in process_names if n.startswith("gridctl_")} - gateway_names
    assert bridge and not any(drop.fullmatch(n) for n in bridge)
