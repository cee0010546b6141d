"""Render the published tables of README.md and docs/ from the JSON records in docs/records/.

A table in a Markdown file sits between two markers naming its record::

    <!-- table: headline -->
    ...generated, never edited by hand...
    <!-- /table -->

``python scripts/render_tables.py`` rewrites every such block from ``docs/records/NAME.json``;
``--check`` writes nothing and exits 1 listing each block that differs from its record (the
test suite runs it, like a lock-file check). A record is a ``edgerep.docs-table`` object:
``title``, ``caption``, ``machine`` (CPU and its int8-relevant flags, once per table), ``date``,
``source`` (the run records it was read from), ``columns``, ``rows`` (cells as text),
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from edgerep.errors import RecordError

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "docs" / "records"
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
SCHEMA = "edgerep.docs-table"


def load(name: str, records: Path = RECORDS) -> dict:
    """The record ``records/NAME.json``.

    Raises:
        RecordError: missing file, invalid JSON, another schema, or a row whose length differs
            from the columns'.
    """
    path = records / f"{name}.json"
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from None
    if rec.get("schema") != SCHEMA:
        raise RecordError(f"{path}: schema {rec.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("title", "caption", "machine", "date", "source", "columns", "rows"):
        if key not in rec:
            raise RecordError(f"{path}: field {key!r} missing")
    for k, row in enumerate(rec["rows"]):
        if len(row) != len(rec["columns"]):
            raise RecordError(f"{path}: rows[{k}] has {len(row)} cells, columns has {len(rec['columns'])}")
    return rec


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+( \*)?|–", cell.strip()))


def render(rec: dict) -> str:
    """The Markdown of one record: title line, table (numeric columns right-aligned, bold rows),
    caption with machine, date and source, notes."""
    cols, rows, bold = rec["columns"], rec["rows"], set(rec.get("bold_rows", ()))
    right = [all(_numeric(r[j]) for r in rows) for j in range(len(cols))]
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [f"**{rec['title']}**", "", "| " + " | ".join(map(esc, cols)) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    for k, row in enumerate(rows):
        cells = [esc(c) if k not in bold or c in ("–", "") else f"**{esc(c)}**" for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{rec['caption']} Machine: {rec['machine']}. Date: {rec['date']}. Source: `{rec['source']}`."]
    for note in rec.get("notes", ()):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def markdown_files(root: Path = REPO) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def update(text: str, records: Path = RECORDS) -> str:
    """``text`` with every table block rendered again from its record."""
    return BLOCK.sub(lambda m: m.group(1) + render(load(m.group("name"), records)) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a rendered table differs from its record")
    args = parser.parse_args(argv)
    stale = []
    try:
        for path in markdown_files():
            text = path.read_text(encoding="utf-8")
            new = update(text)
            if new != text:
                stale.append(path.relative_to(REPO))
                if not args.check:
                    path.write_text(new, encoding="utf-8")
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check and stale:
        print("tables differ from docs/records/ in: " + ", ".join(map(str, stale)) + "; run python scripts/render_tables.py", file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(map(str, stale))) if stale and not args.check else "tables match their records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
