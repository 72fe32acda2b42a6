"""What the CLI tells a person while it works: one-line notes and progress bars, on stderr
(stdout carries results a script may read, such as the key `apikey create` prints)."""

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

Advance = Callable[[int, int], None]  # (done, total)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def bar() -> "Progress":
    # imported here: most commands show no bar
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True))


@contextmanager
def progress_bar(label: str) -> Iterator[Advance]:
    """A bar for work counted in items: `advance(done, total)` as it goes."""
    with bar() as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def step_bar(label: str, names: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A bar over named steps: `begin(name)` as each one starts."""
    with bar() as progress:
        task = progress.add_task(label, total=len(names))

        def begin(name: str) -> None:
            done = names.index(name)
            progress.update(task, completed=done, description=f"{label}: {name}")

        yield begin
        progress.update(task, completed=len(names), description=label)
