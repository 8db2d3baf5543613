"""How the report's blocks look in each format: the Markdown inline subset (`**bold**`,
`*italic*`, `` `code` ``, `[text](url)`, `- ` lists) converted to HTML here so the report needs
no Markdown library, the page's stylesheet, and tables and figures as Markdown and as HTML
(figures embedded as base64 data URIs, so the page opens with no other file).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from equiseg.errors import EquisegError

IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg",
               ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class TableBlock:
    """A table's cells as text, which to bold, and which columns are numeric (right-aligned)."""

    columns: list[str]
    cells: list[list[str]]
    bold: list[list[bool]]
    numeric: list[bool]


@dataclass(frozen=True)
class FigureBlock:
    """An image file and its caption; read only when the page is written."""

    path: Path
    caption: str


def slug(text: str) -> str:
    """A heading as an HTML anchor: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def inline_html(text: str) -> str:
    """The Markdown inline subset as HTML; code spans are left literal."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                      lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        out.append(part)
    return "".join(out)


def paragraph_html(text: str) -> str:
    """Plain lines become one <p>; a run of `- ` lines becomes a <ul>."""
    chunks, items, lines = [], [], []

    def flush() -> None:
        if lines:
            chunks.append(f"<p>{inline_html(' '.join(lines))}</p>")
            lines.clear()
        if items:
            chunks.append("<ul>" + "".join(f"<li>{inline_html(x)}</li>" for x in items) + "</ul>")
            items.clear()

    for line in text.strip().splitlines():
        line = line.strip()
        if line.startswith("- "):
            if lines:
                flush()
            items.append(line[2:])
        elif not line:
            flush()
        else:
            if items:
                flush()
            lines.append(line)
    flush()
    return "\n".join(chunks)


STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.8em; border-bottom: 2px solid #d0d7de; padding-bottom: .2em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d7de; padding-bottom: .15em;
     margin-top: 1.8em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
nav.toc { font-size: .9em; color: #59636e; }
nav.toc a { color: #0969da; text-decoration: none; margin-right: .8em; }
code { background: #f2f4f6; padding: .1em .3em; border-radius: 4px; font-size: .92em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .35em .7em; }
th { background: #f6f8fa; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
div.note { border-left: 4px solid #bf8700; background: #fff8c5; padding: .1em 1em;
           margin: 1em 0; border-radius: 4px; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: .9em; margin-top: .3em; }
"""


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|")


def table_markdown(table: TableBlock) -> str:
    header = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---:" if n else "---" for n in table.numeric) + " |"
    rows = []
    for cells, bold in zip(table.cells, table.bold):
        shown = [f"**{_md_cell(c)}**" if b else _md_cell(c) for c, b in zip(cells, bold)]
        rows.append("| " + " | ".join(shown) + " |")
    return "\n".join([header, rule, *rows])


def table_html(table: TableBlock) -> str:
    def cls(numeric: bool) -> str:
        return ' class="num"' if numeric else ""

    head = "".join(f"<th{cls(n)}>{html.escape(c)}</th>"
                   for c, n in zip(table.columns, table.numeric))
    rows = []
    for cells, bold in zip(table.cells, table.bold):
        tds = []
        for text, is_bold, numeric in zip(cells, bold, table.numeric):
            shown = f"<strong>{html.escape(text)}</strong>" if is_bold else html.escape(text)
            tds.append(f"<td{cls(numeric)}>{shown}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


def figure_html(figure: FigureBlock) -> str:
    try:
        data = figure.path.read_bytes()
    except OSError as err:
        raise EquisegError(f"{figure.path}: cannot read figure ({err.strerror})") from None
    uri = f"data:{IMAGE_TYPES[figure.path.suffix.lower()]};base64,{base64.b64encode(data).decode()}"
    caption = inline_html(figure.caption)
    alt = html.escape(figure.caption)
    return f'<figure><img src="{uri}" alt="{alt}">\n<figcaption>{caption}</figcaption></figure>'
