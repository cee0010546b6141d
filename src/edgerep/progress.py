"""Progress bars and logging to stderr (stdout is kept for results)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

#: All human-facing logs and bars go to stderr.
console = Console(stderr=True, soft_wrap=True)


def log(message: str) -> None:
    """Print one log line to stderr."""
    console.print(message, highlight=False)


def progress() -> Progress:
    """A rich progress bar on stderr (transient-free, so logs of CI keep the last state)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
