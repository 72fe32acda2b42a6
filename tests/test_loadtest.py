"""The k6 load scenarios (ops/k6/scenarios.js) through `corpgraph loadtest`, briefly."""

import json
from pathlib import Path

from typer.testing import CliRunner

from graph.app import create_app
from graph.cli.commands import app as cli
from graph.settings import Settings
from tests.servers import threaded


def test_the_baseline_scenario_runs_with_no_failed_checks(
    settings: Settings, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    with threaded(create_app(settings), "/health/ready") as base:
        result = CliRunner().invoke(
            cli,
            ["loadtest", "baseline", "--url", f"{base}/graphql", "--scale", "0.03",
             "--duration", "10s", "--summary", str(summary)],
        )  # fmt: skip
    assert result.exit_code in (0, 99), result.output  # 99: a latency threshold crossed here
    data = json.loads(summary.read_text())
    checks = data["metrics"]["checks"]["values"]
    assert checks["fails"] == 0 and checks["passes"] > 20, checks
    passed = {check["name"]: check["passes"] for check in data["root_group"]["checks"]}
    # all three kinds of request, and the subscription, were made and answered
    for name in ("light persisted: no errors", "light: no errors", "heavy: no errors"):
        assert passed.get(name, 0) > 0, passed
    assert passed["subscription: connection acknowledged"] >= 1, passed
    assert data["metrics"]["http_req_failed"]["values"]["rate"] == 0


def test_unknown_scenarios_are_refused() -> None:
    result = CliRunner().invoke(cli, ["loadtest", "soak"])
    assert result.exit_code == 2 and "baseline, normal, peak, stress" in result.output
