"""Rich progress and summary helpers shared by the subcommands."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


@contextmanager
def stage_progress(title: str, stages: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """Show one bar advancing through named stages; yield the callback that moves it."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task(title, total=len(stages))
    seen: list[str] = []

    def on_stage(name: str) -> None:
        if seen:
            progress.advance(task)
        seen.append(name)
        progress.update(task, description=f"{title}: {name}")

    with progress:
        yield on_stage
        progress.update(task, completed=len(stages), description=f"{title}: done")


def key_value_table(title: str, rows: Sequence[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    # Folded, never cut: paths and ids in a summary must stay whole to be copied.
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table
