"""The fenced code blocks of the README and docs/, with their `docs-test` notes.

A note is an HTML comment on the line before a fence (blank lines between are allowed):

    <!-- docs-test: key=pro:filings:write sorted="companies.nodes.ticker" -->

Its words are `name=value` (quote values with spaces) or bare flags; `NOTES` lists them all.
"""

import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("docs/*.md"))]

# what each note means: tests/test_docs.py acts on them
NOTES = {
    "skip": "not run here; the value says why (required)",
    "key": "send an API key: `TIER` or `TIER:SCOPE,...`; `unknown` for a key no one issued",
    "name": "remember this block's response under this name",
    "variables": "`var=NAME:PATH,...`: variables taken from a named block's data",
    "equals": "`NAME:PATH`: the value at PATH equals the named block's",
    "sorted": "`PATH` or `PATH desc`: the values at PATH are in this order",
    "error": "the response carries this error code (and is otherwise not checked)",
    "status": "the HTTP status expected (default 200)",
    "events": "a subscription: this many events arrive (default 1)",
    "response": "a JSON block: a part of the previous block's response",
    "vary": "`key,...`: in a `response` block, keys whose values are not compared",
    "until": "a shell line that runs until stopped: wait for this text in its output",
    "output": "a shell block: its output matches this regular expression (`.` matches newlines)",
}
RUN_LANGUAGES = {"graphql", "sh", "json"}  # json: only as a `response`
PROSE_LANGUAGES = {"text"}  # diagrams and file trees, never run
NOTE = re.compile(r"<!--\s*docs-test:(?P<words>.*?)-->")
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    document: str  # path relative to the repository
    line: int  # of the opening fence
    language: str
    text: str
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def parse_notes(words: str, where: str) -> dict[str, str]:
    notes = {}
    for word in shlex.split(words):
        name, _, value = word.partition("=")
        if name not in NOTES:
            raise ValueError(f"{where}: unknown docs-test note {name!r}; known: {sorted(NOTES)}")
        notes[name] = value
    if "skip" in notes and not notes["skip"]:
        raise ValueError(f'{where}: `skip` needs a reason: skip="..."')
    return notes


def blocks_of(document: str) -> list[Block]:
    """Every fenced block of a document of the repository, in order."""
    return blocks_in((REPO / document).read_text(), document)


def blocks_in(markdown: str, document: str) -> list[Block]:
    lines = markdown.splitlines()
    blocks, notes, index = [], {}, 0
    while index < len(lines):
        line = lines[index]
        if found := NOTE.search(line):
            notes = parse_notes(found["words"], f"{document}:{index + 1}")
        elif fence := FENCE.match(line):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            text = textwrap.dedent("\n".join(lines[index + 1 : end]))
            blocks.append(Block(document, index + 1, fence["language"], text, notes))
            notes, index = {}, end
        elif line.strip() and notes:
            raise ValueError(
                f"{document}:{index + 1}: a docs-test note must come right before a block"
            )
        index += 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks_of(document)]
