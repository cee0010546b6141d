"""The report's document model and its two renderings: GitHub-flavoured Markdown (written here,
the one Markdown table writer of edgerep) and HTML (that Markdown rendered by markdown-it-py,
raw HTML disabled so no record text can inject markup; figures embedded as PNG data URIs).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

_NUMBER = re.compile(r"^[+-]?[\d,]*\.?\d+(%|x)?$")


@dataclass
class Table:
    """A table: ``header`` and ``rows`` of already formatted cells; numeric columns align right."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    """A PNG figure: ``name`` (file name under ``figures/``), ``png`` bytes, ``caption``."""

    name: str
    png: bytes
    caption: str


@dataclass
class Section:
    """A titled section of paragraphs (Markdown strings), tables and figures."""

    title: str
    blocks: list[str | Table | Figure] = field(default_factory=list)


def _cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _numeric(column: list[str]) -> bool:
    values = [c.strip("* ") for c in column if c.strip() not in ("", "–", "-")]
    return bool(values) and all(_NUMBER.match(v) for v in values)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table; columns whose cells are all numbers (or –) align right."""
    align = ["---:" if _numeric([r[i] for r in rows if i < len(r)]) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section], embed_figures: bool = False) -> str:
    """The report as Markdown; figures link to ``figures/NAME`` or, with ``embed_figures``, are data URIs."""
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                if b.caption:
                    out += [b.caption, ""]
                out += [markdown_table(b.header, b.rows), ""]
            elif isinstance(b, Figure):
                src = f"data:image/png;base64,{base64.b64encode(b.png).decode('ascii')}" if embed_figures else f"figures/{b.name}"
                alt = b.caption.replace("[", "(").replace("]", ")")
                out += [f"![{alt}]({src})", "", f"*{b.caption}*", ""]
            else:
                out += [b, ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f2f2f2}
img{max-width:100%}p em{font-size:.85em;color:#555}code{font-size:.95em}
"""


def to_html(title: str, sections: list[Section]) -> str:
    """A self-contained HTML page: :func:`to_markdown` (figures embedded) rendered by markdown-it-py
    (CommonMark + GFM tables, raw HTML off)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = md.render(to_markdown(title, sections, embed_figures=True))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n{body}</body></html>"
    )
