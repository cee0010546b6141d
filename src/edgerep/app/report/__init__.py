"""``edgerep report``: collection of the records (:mod:`.build`), figures (:mod:`.figures`),
Markdown/HTML rendering (:mod:`.render`) and row formatting shared with the CLI (:mod:`.tables`)."""

from edgerep.app.report.build import Records, build_report, build_sections, collect

__all__ = ["Records", "build_report", "build_sections", "collect"]
