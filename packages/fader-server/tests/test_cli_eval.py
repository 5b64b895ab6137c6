"""`fader eval`: evaluating documents from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fader_server.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "examples" / "demo.json"
DEMO_CONTEXTS = ROOT / "examples" / "demo-contexts.jsonl"
TESTKIT = ROOT.parent / "shared" / "conformance" / "flagd-testbed" / "evaluator" / "flags"

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["eval", *args])


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_single_flag_and_context_prints_the_resolution() -> None:
    result = run(
        str(DEMO),
        "--flag",
        "new-checkout",
        "--context",
        '{"targetingKey": "u1", "email": "dev@example.com"}',
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {
        "flag": "new-checkout",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "error_code": None,
    }


def test_contexts_file_gives_one_json_line_per_flag_and_context() -> None:
    result = run(str(DEMO), "--contexts", str(DEMO_CONTEXTS))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    contexts = [line for line in DEMO_CONTEXTS.read_text().splitlines() if line.strip()]
    flags = json.loads(DEMO.read_text())["flags"]
    assert len(rows) == len(contexts) * len(flags)
    assert {tuple(sorted(row)) for row in rows} <= {
        ("context_index", "error_code", "flag", "reason", "value", "variant"),
        ("context_index", "error_code", "error_message", "flag", "reason", "value", "variant"),
    }
    assert {row["context_index"] for row in rows} == set(range(len(contexts)))


def test_contexts_file_with_one_flag(tmp_path: Path) -> None:
    contexts = write(tmp_path, "c.jsonl", '{"targetingKey": "a"}\n\n{"targetingKey": "b"}\n')
    result = run(str(DEMO), "--flag", "search-page-size", "--contexts", str(contexts))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["flag"], r["context_index"]) for r in rows] == [
        ("search-page-size", 0),
        ("search-page-size", 1),
    ]


@pytest.mark.skipif(not TESTKIT.exists(), reason="flagd test-bed not found beside the repository")
def test_flagd_documents_are_detected_and_evaluated(tmp_path: Path) -> None:
    testkit = json.loads((TESTKIT / "testkit-flags.json").read_text())
    # The test kit also holds deliberately broken flags, which strict loading rejects.
    flagd = {"flags": {"fractional-flag-shorthand": testkit["flags"]["fractional-flag-shorthand"]}}
    result = run(
        str(write(tmp_path, "flagd.json", flagd)),
        "--flag",
        "fractional-flag-shorthand",
        "--context",
        '{"targetingKey": "jon@company.com"}',
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["value"] == "heads"
    whole_kit = run(str(TESTKIT / "testkit-flags.json"))
    assert whole_kit.exit_code == 2
    assert "ref-to-nonexistent-evaluator-flag" in whole_kit.stderr


def test_invalid_document_prints_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    bad = {
        "format": "fader/v1",
        "flags": {
            "f": {
                "type": "boolean",
                "variants": {"on": True, "off": "no"},
                "offVariant": "of",
                "default": {"split": {"weights": [{"variant": "on", "weight": 60}]}},
            }
        },
    }
    result = run(str(write(tmp_path, "bad.json", bad)), "--flag", "f")
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr
    assert "/flags/f/variants/off" in message
    assert "/flags/f/offVariant" in message
    assert "100" in message  # the weights must sum to 100%


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--flag", "nope"], "flag 'nope' is not in"),
        (["--context", "{not json"], "--context is not valid JSON"),
        (["--context", "[1]"], "must be a JSON object"),
        (["--format", "yaml"], "--format must be auto, fader or flagd"),
        (["--bucketing", "v9"], "--bucketing must be v2 or v3"),
        (["--context", "{}", "--contexts", "x.jsonl"], "either --context or --contexts"),
    ],
)
def test_bad_arguments_are_explained(args: list[str], expected: str) -> None:
    result = run(str(DEMO), *args)
    assert result.exit_code == 2
    assert expected in result.stderr


def test_unreadable_and_malformed_files_are_explained(tmp_path: Path) -> None:
    missing = run(str(tmp_path / "absent.json"))
    assert missing.exit_code == 2
    assert "cannot read flag document" in missing.stderr
    broken = run(str(write(tmp_path, "broken.json", '{"flags": ')))
    assert broken.exit_code == 2
    assert "is not valid JSON" in broken.stderr
    assert "line 1" in broken.stderr
    unknown = run(str(write(tmp_path, "other.json", {"hello": "world"})))
    assert unknown.exit_code == 2
    assert "cannot tell the document's format" in unknown.stderr


def test_bad_line_in_contexts_file_names_the_line_and_prints_nothing(tmp_path: Path) -> None:
    contexts = write(tmp_path, "c.jsonl", '{"targetingKey": "a"}\n{oops}\n')
    result = run(str(DEMO), "--contexts", str(contexts))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "c.jsonl:2" in result.stderr


def test_fader_command_is_installed_and_exits_non_zero_on_errors(tmp_path: Path) -> None:
    fader = Path(sys.executable).parent / "fader"
    ok = subprocess.run(
        [str(fader), "eval", str(DEMO), "--flag", "new-checkout", "--context", "{}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [str(fader), "eval", str(write(tmp_path, "x.json", {"format": "fader/v1"}))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "/flags" in bad.stderr
