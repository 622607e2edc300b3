"""docs/contracts/*.schema.json: equal to the generated schemas, and they describe records.

Regenerate after changing a model: ``gridctl contracts --write docs/contracts``.
"""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema
import pytest
from typer.testing import CliRunner

from cli.contracts_cmd import schema_path, schema_text, write_schemas
from pipeline import contracts
from pipeline.contracts import decode, encode
from tests.pipeline.test_contracts import VALID

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts"
TOPICS = list(contracts.MODELS)


@pytest.mark.parametrize("topic", TOPICS)
def test_checked_in_schema_is_current(topic: str) -> None:
    path = schema_path(DOCS, topic)
    assert path.exists(), f"missing {path}: run gridctl contracts --write docs/contracts"
    assert path.read_text(encoding="utf-8") == schema_text(topic), (
        f"{path} is stale: run gridctl contracts --write docs/contracts"
    )


def test_no_schema_for_an_unknown_topic() -> None:
    names = {p.name for p in DOCS.glob("*.schema.json")}
    assert names == {f"{t}.schema.json" for t in TOPICS}


@pytest.mark.parametrize("topic", TOPICS)
def test_schema_accepts_encoded_records_and_rejects_broken_ones(topic: str) -> None:
    model = contracts.MODELS[topic]
    validate = fastjsonschema.compile(json.loads(schema_text(topic)))
    record = decode(model, json.dumps(VALID[model]))
    validate(json.loads(encode(record)))
    broken = json.loads(encode(record))
    required = next(f for f in msgspec_required(model))
    del broken[required]
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate(broken)


def msgspec_required(model: type) -> list[str]:
    import msgspec

    info = msgspec.inspect.type_info(model)
    return [f.name for f in info.fields if f.required]  # type: ignore[attr-defined]


def test_write_schemas_writes_every_topic(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{t}.schema.json" for t in TOPICS)
    for topic in TOPICS:
        assert schema_path(tmp_path, topic).read_text(encoding="utf-8") == schema_text(topic)


def test_cli_prints_one_topic_and_writes_files(tmp_path: Path) -> None:
    from cli.main import build

    app = build(["contracts"])
    runner = CliRunner()
    one = runner.invoke(app, ["contracts", "ocpp.meter_values"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["title"] == "ocpp.meter_values"

    every = runner.invoke(app, ["contracts"])
    assert every.exit_code == 0, every.output
    assert set(json.loads(every.stdout)) == set(TOPICS)

    wrote = runner.invoke(app, ["contracts", "--write", str(tmp_path)])
    assert wrote.exit_code == 0, wrote.output
    assert len(list(tmp_path.glob("*.schema.json"))) == len(TOPICS)

    bad = runner.invoke(app, ["contracts", "no.such.topic"])
    assert bad.exit_code == 2
    assert "unknown topic 'no.such.topic'" in bad.output
