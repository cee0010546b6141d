"""``edgerep data``: the corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgerep.app.cli import tables
from edgerep.app.cli.options import JsonFlag, _print_json, data_app, out

# ----------------------------------------------------------------------------- data


@data_app.command("stats")
def data_stats(
    root: Annotated[Path, typer.Argument(help="RepLab 2013 corpus root.")],
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer.json for token lengths (default: packaged all-MiniLM-L6-v2).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Counts per split, class and domain, token-length percentiles, and the data defects handled.

    \b
    Example: edgerep data stats ../shared/data/replab2013
    """
    from edgerep.data.stats import corpus_stats

    stats = corpus_stats(root, tokenizer)
    if as_json:
        _print_json(stats)
        return
    for item in tables.data_stats_tables(stats, root):
        out.print(item)
