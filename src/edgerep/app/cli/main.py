"""The ``edgerep`` command line: a thin typed layer over the library.

Results go to stdout (a table, or JSON with ``--json``); logs and progress to stderr. Every
user mistake ends as one ``error:`` line on stderr and exit code 1 (set ``EDGEREP_DEBUG=1``
for the traceback). Other libraries' warnings, log lines and progress bars are silenced unless
``--verbose`` (or ``EDGEREP_DEBUG=1``). Heavy libraries are imported inside the commands that
need them, so ``--help`` and ``classify`` start fast and never load torch. Every list of valid
names in a help text comes from :mod:`edgerep.registry`.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

# Importing the command modules registers their commands, in this order in --help.
# isort: off
from edgerep.app.cli import training, device, measuring, conversion, data  # noqa: F401

# isort: on
from edgerep.app.cli.options import app, err
from edgerep.errors import EdgerepError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the error funnel around the typer app.

    Returns the process exit code: 0 success, 1 a user-facing error, 2 bad usage (click),
    130 interrupted.
    """
    debug = os.environ.get("EDGEREP_DEBUG") == "1"
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int):
            return rc
    except EdgerepError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted; finished stages and checkpoints are kept — re-run the same command to resume")
        return 130
    except Exception as exc:  # click usage errors and OS errors
        # typer vendors click; recognise its usage errors by their interface
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):  # click.ClickException
            show()
            return code
        if isinstance(exc, OSError) and not debug:
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[red]error:[/] {escape(where + str(exc.strerror or exc))}", highlight=False)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
