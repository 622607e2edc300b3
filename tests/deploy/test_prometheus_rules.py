"""deploy/prometheus/alerts.yml: parses, names only metrics gridctl exports, says what to do.

promtool is not available here. PromQL syntax is checked with the ``promql-parser`` package
(Python bindings of the Rust promql-parser crate), and the five alerts of issue 6 item 7
are found by the metric and the threshold their expression compares against. Whether an
expression fires on the right data is not evaluated: that needs a Prometheus.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pipeline import metrics_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

#: Series Prometheus itself provides, and RisingWave's (job risingwave) that we rely on.
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
RISINGWAVE = {"meta_barrier_duration_seconds"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    """Every metric name pipeline/metrics_names.py spells (its string constants)."""
    return {
        value
        for name, value in vars(metrics_names).items()
        if name.isupper() and isinstance(value, str) and value.startswith("gridctl_")
    }


def known_metric(name: str) -> bool:
    """A name gridctl exports (or RisingWave), a histogram series of one, or a built-in."""
    names = exported_names() | RISINGWAVE
    if name in names or name in BUILTIN:
        return True
    return any(name.endswith(s) and name.removesuffix(s) in names for s in HISTOGRAM_SUFFIXES)


def metric_names(expr: str) -> list[str]:
    """Metric names an expression selects; raises ValueError when it does not parse."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _comparison(expr: str) -> tuple[str, float]:
    """The top-level comparison of an alert expression: operator and number compared to.

    ``a > 1 and on () b == 0`` gives the left side's comparison, the alert's condition.
    """
    node = promql_parser.parse(expr)
    while isinstance(node, promql_parser.BinaryExpr) and str(node.op) in ("and", "or"):
        node = node.lhs
    assert isinstance(node, promql_parser.BinaryExpr), expr
    assert isinstance(node.rhs, promql_parser.NumberLiteral), expr
    return str(node.op), node.rhs.val


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alert_using(rules: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    matching = [r for r in rules if metric in metric_names(r["expr"])]
    assert matching, f"no alert reads {metric}"
    return matching[0]


def test_rules_file_shape(rules: list[dict[str, Any]]) -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert all(set(g) >= {"name", "rules"} for g in doc["groups"])
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]


def test_expressions_parse_and_read_only_exported_metrics(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = [n for n in names if not known_metric(n)]
        assert not unknown, f"{rule['alert']} reads {unknown}, not in pipeline/metrics_names.py"


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(gridctl_readings_ingested_total[5m])")


def test_every_alert_says_what_it_means_and_where_the_runbook_is(
    rules: list[dict[str, Any]],
) -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in rules:
        notes = rule["annotations"]
        assert len(notes["summary"]) > 20, rule["alert"]
        assert len(notes["description"]) > 120, rule["alert"]
        for text in notes.values():
            assert text.count("{{") == text.count("}}"), rule["alert"]
        path, _, anchor = notes["runbook"].partition("#")
        assert path == "docs/operations.md" and anchor in headings, notes["runbook"]


def test_meter_data_age_over_15_minutes(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.METER_DATA_AGE_SECONDS + "_bucket")
    assert _comparison(rule["expr"]) == (">", 900.0)
    assert rule["labels"]["severity"] == "critical"


def test_meter_data_missing_while_stations_connected(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.OCPP_CONNECTED_STATIONS)
    assert metrics_names.READINGS_INGESTED in metric_names(rule["expr"])


def test_readings_dropped_over_a_tenth_of_a_percent(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.READINGS_REFUSED)
    assert metrics_names.READINGS_INGESTED in metric_names(rule["expr"])
    assert _comparison(rule["expr"]) == (">", 0.001)


def test_command_ack_rate_under_90_percent(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.COMMAND_ACK_RATE)
    assert _comparison(rule["expr"]) == ("<", 0.9)
    assert "signal_id" in rule["expr"] and "signal_id" in rule["annotations"]["summary"]


def test_ingest_p99_over_5_seconds(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.INGEST_LATENCY_SECONDS + "_bucket")
    assert "histogram_quantile(0.99" in rule["expr"].replace(" ", "").replace("\n", "")
    assert _comparison(rule["expr"]) == (">", 5.0)


def test_engine_lag_behind_the_bus(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.ENGINE_LAG_RECORDS)
    op, threshold = _comparison(rule["expr"])
    assert op == ">" and threshold > 0


def test_gridctl_down_is_alerted(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, "up")
    assert 'job=~"gridctl|gridctl-ocpp"' in rule["expr"]
    assert _comparison(rule["expr"]) == ("==", 0.0)


def test_risingwave_pipeline_lag_is_alerted(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, "meta_barrier_duration_seconds_bucket")
    assert _comparison(rule["expr"]) == (">", 10.0)
