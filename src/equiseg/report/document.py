"""A report as a list of blocks, written once as Markdown and once as self-contained HTML.

The Markdown links figures by relative path (to read beside the files, e.g. on GitHub); the HTML
embeds every image as a base64 data URI and carries its own stylesheet, so the one file opens
anywhere with no network and no other files. Paragraphs take a small Markdown subset (`**bold**`,
`*italic*`, `` `code` ``, `[text](url)`, lines starting with `- ` as a list), converted here so the
report needs no Markdown library.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from equiseg.errors import EquisegError
from equiseg.io import write_text

IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg",
               ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
BEST_RULES = ("max", "min")


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _Note:
    text: str


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    cells: list[list[str]]
    bold: list[list[bool]]
    numeric: list[bool]


@dataclass(frozen=True)
class _Figure:
    path: Path
    caption: str


def format_cell(value: object, floatfmt: str = ".3f") -> str:
    """One table cell as text: floats by `floatfmt`, infinities as ∞, missing values as –."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return format(value, floatfmt)
    return str(value)


def _best_mask(column: pd.Series, rule: str, floatfmt: str) -> list[bool]:
    """Which cells show the best value; ties at the displayed precision are all best."""
    numeric = pd.to_numeric(column, errors="coerce").astype(float)
    finite_or_inf = numeric.dropna()
    if finite_or_inf.empty:
        return [False] * len(column)
    best = finite_or_inf.max() if rule == "max" else finite_or_inf.min()
    best_text = format_cell(best, floatfmt)
    return [not math.isnan(v) and format_cell(v, floatfmt) == best_text for v in numeric]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _inline_html(text: str) -> str:
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


def _paragraph_html(text: str) -> str:
    """Plain lines become one <p>; a run of `- ` lines becomes a <ul>."""
    chunks, items, lines = [], [], []

    def flush() -> None:
        if lines:
            chunks.append(f"<p>{_inline_html(' '.join(lines))}</p>")
            lines.clear()
        if items:
            chunks.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in items) + "</ul>")
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


class Document:
    """Headings, paragraphs, tables and figures, written as Markdown and self-contained HTML."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[_Heading | _Paragraph | _Note | _Table | _Figure] = []

    def heading(self, text: str, level: int = 2) -> None:
        if not 1 <= level <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        self._blocks.append(_Heading(text, level))

    def paragraph(self, markdown_text: str) -> None:
        self._blocks.append(_Paragraph(markdown_text))

    def note(self, markdown_text: str) -> None:
        """A paragraph set apart (a boxed callout in HTML, a quote in Markdown), for warnings."""
        self._blocks.append(_Note(markdown_text))

    def table(self, df: pd.DataFrame, bold_best: dict[str, str] | None = None,
              floatfmt: str | dict[str, str] = ".3f", spread: dict[str, str] | None = None) -> None:
        """A table of `df` (index ignored); `bold_best` maps a column to "max" or "min".

        `floatfmt` is one format for every float, or a mapping of column to format (others ".3f").
        `spread` maps a column to the column of its spread (e.g. the sd over seeds): that column is
        not shown, its value follows the other's as `mean ± sd` (nothing when it is missing/NaN).
        Best values are judged on the column itself.
        """
        bold_best, spread = bold_best or {}, spread or {}
        formats = ({str(c): floatfmt for c in df.columns} if isinstance(floatfmt, str)
                   else {str(c): floatfmt.get(str(c), ".3f") for c in df.columns})
        for column, rule in bold_best.items():
            if column not in df.columns:
                raise ValueError(f"bold_best names column {column!r}, not in {list(df.columns)}")
            if rule not in BEST_RULES:
                raise ValueError(f"bold_best[{column!r}] is {rule!r}; use 'max' or 'min'")
        for column, sd_column in spread.items():
            if column not in df.columns or sd_column not in df.columns:
                raise ValueError(f"spread names {column!r} -> {sd_column!r}, not both in "
                                 f"{list(df.columns)}")
        shown = [c for c in df.columns if c not in spread.values()]

        def cell(column: str, row: int) -> str:
            text = format_cell(df[column].iloc[row], formats[str(column)])
            if column in spread:
                sd = format_cell(df[spread[column]].iloc[row], formats[str(column)])
                text += "" if sd == "–" else f" ± {sd}"
            return text

        cells = [[cell(c, r) for c in shown] for r in range(len(df))]
        bold_by_column = {c: _best_mask(df[c], rule, formats[str(c)])
                          for c, rule in bold_best.items()}
        bold = [[bold_by_column[c][r] if c in bold_by_column else False for c in shown]
                for r in range(len(df))]
        numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                   for c in shown]
        self._blocks.append(_Table([str(c) for c in shown], cells, bold, numeric))

    def figure(self, path: str | Path, caption: str) -> None:
        """An image (PNG, GIF, JPEG or SVG) that must exist now; it is read when writing."""
        path = Path(path)
        if path.suffix.lower() not in IMAGE_TYPES:
            raise EquisegError(f"{path}: not a figure type the report embeds "
                               f"({', '.join(IMAGE_TYPES)}); save it as PNG")
        if not path.is_file():
            raise EquisegError(f"{path}: figure not found; "
                               "create it before adding it to the report")
        self._blocks.append(_Figure(path.resolve(), caption))

    # -- writing --------------------------------------------------------------------------------

    def to_markdown(self, base_dir: str | Path) -> str:
        """Markdown with figures linked relative to `base_dir` (the folder of the .md file)."""
        base_dir = Path(base_dir).resolve()
        parts = [f"# {self.title}"]
        for block in self._blocks:
            if isinstance(block, _Heading):
                parts.append(f"{'#' * block.level} {block.text}")
            elif isinstance(block, _Paragraph):
                parts.append(block.text.strip())
            elif isinstance(block, _Note):
                lines = block.text.strip().splitlines()
                parts.append("\n".join(f"> {line}".rstrip() for line in lines))
            elif isinstance(block, _Table):
                parts.append(_table_markdown(block))
            else:
                link = Path(os.path.relpath(block.path, base_dir)).as_posix()
                parts.append(f"![{block.caption}]({link})\n\n*{block.caption}*")
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        """One HTML page with inline CSS and every image as a data URI: no external resources."""
        body = []
        toc = [b for b in self._blocks if isinstance(b, _Heading) and b.level == 2]
        if len(toc) > 2:
            links = "".join(f'<a href="#{_slug(h.text)}">{html.escape(h.text)}</a>' for h in toc)
            body.append(f'<nav class="toc">{links}</nav>')
        for block in self._blocks:
            if isinstance(block, _Heading):
                body.append(f'<h{block.level} id="{_slug(block.text)}">'
                            f"{_inline_html(block.text)}</h{block.level}>")
            elif isinstance(block, _Paragraph):
                body.append(_paragraph_html(block.text))
            elif isinstance(block, _Note):
                body.append(f'<div class="note">{_paragraph_html(block.text)}</div>')
            elif isinstance(block, _Table):
                body.append(_table_html(block))
            else:
                body.append(_figure_html(block))
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n"
                f"<body>\n<h1>{html.escape(self.title)}</h1>\n" + "\n".join(body)
                + "\n</body>\n</html>\n")

    def write(self, md_path: str | Path, html_path: str | Path) -> None:
        """Write both files atomically; the Markdown links figures relative to its own folder."""
        md_path, html_path = Path(md_path), Path(html_path)
        write_text(md_path, self.to_markdown(md_path.parent))
        write_text(html_path, self.to_html())


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|")


def _table_markdown(table: _Table) -> str:
    header = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---:" if n else "---" for n in table.numeric) + " |"
    rows = []
    for cells, bold in zip(table.cells, table.bold):
        shown = [f"**{_md_cell(c)}**" if b else _md_cell(c) for c, b in zip(cells, bold)]
        rows.append("| " + " | ".join(shown) + " |")
    return "\n".join([header, rule, *rows])


def _table_html(table: _Table) -> str:
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


def _figure_html(figure: _Figure) -> str:
    try:
        data = figure.path.read_bytes()
    except OSError as err:
        raise EquisegError(f"{figure.path}: cannot read figure ({err.strerror})") from None
    uri = f"data:{IMAGE_TYPES[figure.path.suffix.lower()]};base64,{base64.b64encode(data).decode()}"
    caption = _inline_html(figure.caption)
    alt = html.escape(figure.caption)
    return f'<figure><img src="{uri}" alt="{alt}">\n<figcaption>{caption}</figcaption></figure>'
