"""The reader of docs-test notes (a mistake in a note fails loudly instead of skipping a check),
and the links between the documents."""

import re
from pathlib import Path

import pytest

from tests.doc_blocks import DOCUMENTS, REPO, Block, blocks_in

MARKDOWN = """# A page

<!-- docs-test: key=pro:filings:write sorted="filings.nodes.filedAt desc" -->

```graphql
{ a }
```

1. A step:

   ```sh
   corpgraph --help
   ```
"""


def test_blocks_with_their_notes_and_lines() -> None:
    assert blocks_in(MARKDOWN, "page.md") == [
        Block("page.md", 5, "graphql", "{ a }", {"key": "pro:filings:write",
              "sorted": "filings.nodes.filedAt desc"}),
        Block("page.md", 11, "sh", "corpgraph --help"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("<!-- docs-test: sortd=x -->\n```graphql\n{ a }\n```", "unknown docs-test note 'sortd'"),
        ("<!-- docs-test: skip -->\n```sh\nls\n```", "`skip` needs a reason"),
        ("<!-- docs-test: name=a -->\nSome text.\n```sh\nls\n```", "right before a block"),
    ],
)
def test_a_bad_note_is_an_error(markdown: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        blocks_in(markdown, "page.md")


LINK = re.compile(r"\]\((?!https?:)(?P<path>[^)#]*)(?:#(?P<anchor>[^)]*))?\)")


def anchors(document: Path) -> set[str]:
    """GitHub's anchors of a document's headings."""
    headings = re.findall(r"^#+ (.*)$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", [*DOCUMENTS, "ops/bench/README.md"])
def test_links_between_documents_resolve(document: str) -> None:
    source = REPO / document
    for link in LINK.finditer(source.read_text()):
        target = (source.parent / link["path"]).resolve() if link["path"] else source
        assert target.exists(), f"{document}: {link[0]} leads nowhere"
        if link["anchor"]:
            assert link["anchor"] in anchors(target), f"{document}: no heading for {link[0]}"
