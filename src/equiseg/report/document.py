"""A report as a list of blocks, written once as Markdown and once as self-contained HTML.

The Markdown links figures by relative path (to read beside the files, e.g. on GitHub); the HTML
embeds every image as a base64 data URI and carries its own stylesheet, so the one file opens
anywhere with no network and no other files. Paragraphs take a small Markdown subset (`**bold**`,
`*italic*`, `` `code` ``, `[text](url)`, lines starting with `- ` as a list); how each block
looks in each format is `equiseg.report.markup`'s.
"""

from __future__ import annotations

import html
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from equiseg.errors import EquisegError
from equiseg.io import write_text
from equiseg.report.markup import (
    IMAGE_TYPES,
    STYLE,
    FigureBlock,
    TableBlock,
    figure_html,
    inline_html,
    paragraph_html,
    slug,
    table_html,
    table_markdown,
)

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




class Document:
    """Headings, paragraphs, tables and figures, written as Markdown and self-contained HTML."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[_Heading | _Paragraph | _Note | TableBlock | FigureBlock] = []

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
        self._blocks.append(TableBlock([str(c) for c in shown], cells, bold, numeric))

    def figure(self, path: str | Path, caption: str) -> None:
        """An image (PNG, GIF, JPEG or SVG) that must exist now; it is read when writing."""
        path = Path(path)
        if path.suffix.lower() not in IMAGE_TYPES:
            raise EquisegError(f"{path}: not a figure type the report embeds "
                               f"({', '.join(IMAGE_TYPES)}); save it as PNG")
        if not path.is_file():
            raise EquisegError(f"{path}: figure not found; "
                               "create it before adding it to the report")
        self._blocks.append(FigureBlock(path.resolve(), caption))

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
            elif isinstance(block, TableBlock):
                parts.append(table_markdown(block))
            else:
                link = Path(os.path.relpath(block.path, base_dir)).as_posix()
                parts.append(f"![{block.caption}]({link})\n\n*{block.caption}*")
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        """One HTML page with inline CSS and every image as a data URI: no external resources."""
        body = []
        toc = [b for b in self._blocks if isinstance(b, _Heading) and b.level == 2]
        if len(toc) > 2:
            links = "".join(f'<a href="#{slug(h.text)}">{html.escape(h.text)}</a>' for h in toc)
            body.append(f'<nav class="toc">{links}</nav>')
        for block in self._blocks:
            if isinstance(block, _Heading):
                body.append(f'<h{block.level} id="{slug(block.text)}">'
                            f"{inline_html(block.text)}</h{block.level}>")
            elif isinstance(block, _Paragraph):
                body.append(paragraph_html(block.text))
            elif isinstance(block, _Note):
                body.append(f'<div class="note">{paragraph_html(block.text)}</div>')
            elif isinstance(block, TableBlock):
                body.append(table_html(block))
            else:
                body.append(figure_html(block))
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
