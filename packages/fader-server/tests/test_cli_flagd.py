"""`fader flagd import|export`: offline conversion between formats."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import fader_engine
from fader_server.cli.main import app

runner = CliRunner()

FADER_DOC = {
    "format": "fader/v1",
    "flags": {
        "f": {
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "offVariant": "off",
            "rules": [
                {
                    "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                    "variant": "on",
                }
            ],
            "default": {
                "split": {
                    "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]
                }
            },
        }
    },
}


def test_export_then_import_keeps_every_evaluation(tmp_path: Path) -> None:
    source = tmp_path / "fader.json"
    source.write_text(json.dumps(FADER_DOC))
    exported = tmp_path / "flagd.json"
    result = runner.invoke(app, ["flagd", "export", str(source), "--output", str(exported)])
    assert result.exit_code == 0, result.output
    assert "fractional" in exported.read_text()
    imported = runner.invoke(app, ["flagd", "import", str(exported)])
    assert imported.exit_code == 0, imported.output
    back = fader_engine.load(json.loads(imported.stdout))
    native = fader_engine.load(FADER_DOC)
    for i in range(500):
        ctx = {"targetingKey": f"u{i}", "plan": "pro" if i % 3 else "free"}
        assert back.evaluate("f", ctx).variant == native.evaluate("f", ctx).variant


def test_unconvertible_documents_say_where_and_exit_2(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(FADER_DOC))
    doc["flags"]["f"]["rules"][0]["clauses"][0] = {
        "attribute": "email",
        "op": "matches",
        "values": ["^a"],
    }
    source = tmp_path / "regex.json"
    source.write_text(json.dumps(doc))
    result = runner.invoke(app, ["flagd", "export", str(source)])
    assert result.exit_code == 2
    assert "/flags/f/rules/0/clauses/0/op" in result.stderr

    flagd = tmp_path / "neg.json"
    flagd.write_text(
        json.dumps(
            {
                "flags": {
                    "g": {
                        "state": "ENABLED",
                        "variants": {"on": True, "off": False},
                        "defaultVariant": "off",
                        "targeting": {"if": [{"!": {"var": "beta"}}, "on"]},
                    }
                }
            }
        )
    )
    refused = runner.invoke(app, ["flagd", "import", str(flagd)])
    assert refused.exit_code == 2
    assert "/flags/g/targeting/if/0" in refused.stderr


def test_import_rejects_invalid_flagd_documents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flags": {"g": {"state": "ON", "variants": {}}}}))
    result = runner.invoke(app, ["flagd", "import", str(bad)])
    assert result.exit_code == 2
    assert "/flags/g" in result.stderr
