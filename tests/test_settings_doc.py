"""docs/configuration.md is made from the Settings object: it must match what it would be now."""

from graph.settings import Settings
from graph.settings_doc import render
from tests.doc_blocks import REPO


def test_every_setting_is_described() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undescribed == [], "give these settings a docstring in graph/settings.py"


def test_configuration_page_is_current() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), (
        "docs/configuration.md is stale: python -m graph.settings_doc > docs/configuration.md"
    )
