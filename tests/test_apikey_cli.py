"""`corpgraph apikey create --expires-in-days`: a key expires at least a day from now."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph.cli.commands import app


@pytest.mark.parametrize("days", ["0", "-3"])
def test_an_expiry_below_one_day_is_refused(days: str, tmp_path: Path) -> None:
    # refused before any server starts: 0 used to mean "never expires"
    arguments = ["apikey", "create", "--tier", "free", "--expires-in-days", days]
    result = CliRunner().invoke(app, [*arguments, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())  # unboxed, unwrapped
    assert "--expires-in-days" in said and "greater than or equal to 1" in said, said
    assert not (tmp_path / "postgres").exists()
