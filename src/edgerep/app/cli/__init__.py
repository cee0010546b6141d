"""The ``edgerep`` command line (:mod:`.main`) and its terminal tables (:mod:`.tables`)."""

from edgerep.app.cli.main import app, main

__all__ = ["app", "main"]
