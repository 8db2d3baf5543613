"""Report figures: each helper takes DataFrames keyed by run label and writes one PNG.

Figures are drawn on a bare `matplotlib.figure.Figure` (the Agg canvas, no pyplot), so nothing
depends on a display or changes matplotlib's global backend. Every helper takes an optional
`colors` mapping so one run keeps one colour across all figures of a report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from equiseg.analysis.families import REGISTRY
from equiseg.errors import EquisegError
from equiseg.io import atomic_path

DPI = 110
# vertical marks on an angle figure: the angles, their line style, and a legend label (or None)
Mark = tuple[Sequence[float], str, str | None]
QUARTER_MARKS: tuple[Mark, ...] = (((90, 180, 270), ":", None),)


def run_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """One colour per run label, stable for the order given (tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Lay `fig` out and write it as a PNG, atomically."""
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _require(frame: pd.DataFrame, columns: Sequence[str], label: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EquisegError(f"{label}: missing column(s) {', '.join(missing)}; "
                           "regenerate it with the stage that writes it")


def _close_circle(frame: pd.DataFrame) -> pd.DataFrame:
    """Repeat the 0-degree row at 360 degrees (the same rotation) so curves span the full turn."""
    upright = frame[frame["angle"] == 0]
    if upright.empty or frame["angle"].max() >= 360:
        return frame
    return pd.concat([frame, upright.assign(angle=360.0)], ignore_index=True)


def training_curve_figure(curves: Mapping[str, pd.DataFrame], column: str, path: str | Path,
                          ylabel: str, title: str | None = None,
                          colors: Mapping[str, tuple] | None = None,
                          sd_column: str | None = None) -> Path:
    """`column` against `epoch`, one line per run; with `sd_column`, a band of ± that (e.g. the
    sd over seeds, drawn where it is known)."""
    colors = colors or run_colors(list(curves))
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    for label, frame in curves.items():
        _require(frame, ("epoch", column) + ((sd_column,) if sd_column else ()), label)
        ax.plot(frame["epoch"], frame[column], marker="o", markersize=3, label=label,
                color=colors[label])
        if sd_column:
            _band(ax, frame["epoch"], frame[column], frame[sd_column], colors[label])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _band(ax, x: Sequence[float], mean: Sequence[float], sd: Sequence[float], color: tuple,
          clip: tuple[float, float] | None = None) -> bool:
    """Shade mean ± sd where sd is known; whether anything was drawn."""
    x, mean, sd = (np.asarray(v, dtype=float) for v in (x, mean, sd))
    if not np.isfinite(sd).any():
        return False
    low, high = mean - sd, mean + sd
    if clip:
        low, high = np.clip(low, *clip), np.clip(high, *clip)
    ax.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
    return True


def angle_figure(curves: Mapping[str, pd.DataFrame], mean_column: str, path: str | Path,
                 ylabel: str, title: str, std_column: str | None = None,
                 min_column: str | None = None, clip: tuple[float, float] | None = None,
                 colors: Mapping[str, tuple] | None = None, band_label: str = "mean ± std",
                 min_label: str = "minimum", marks: Sequence[Mark] = QUARTER_MARKS) -> Path:
    """A metric against rotation angle, one colour per run (`draw_angle_figure`), as a PNG."""
    return save_figure(draw_angle_figure(curves, mean_column, ylabel, title, std_column, min_column,
                                   clip, colors, band_label, min_label, marks), path)


def draw_angle_figure(curves: Mapping[str, pd.DataFrame], mean_column: str, ylabel: str,
                      title: str, std_column: str | None = None, min_column: str | None = None,
                      clip: tuple[float, float] | None = None,
                      colors: Mapping[str, tuple] | None = None, band_label: str = "mean ± std",
                      min_label: str = "minimum", marks: Sequence[Mark] = QUARTER_MARKS) -> Figure:
    """A metric against rotation angle, one colour per run.

    Solid line: the mean; shaded band: ± `std_column` (named `band_label` in the legend; left
    out where unknown); dashed line: `min_column` (the worst image, `min_label`); grey vertical
    lines: `marks` (angles, line style, legend label or None), the quarter turns by default.
    """
    colors = colors or run_colors(list(curves))
    fig = Figure(figsize=(8.6, 4.2))
    ax = fig.add_subplot()
    for label, frame in curves.items():
        _require(frame, ["angle", mean_column] + [c for c in (std_column, min_column) if c], label)
    banded = False
    for label, frame in curves.items():
        frame = _close_circle(frame)
        angle = frame["angle"].to_numpy(float)
        mean = frame[mean_column].to_numpy(float)
        color = colors[label]
        ax.plot(angle, mean, color=color, label=label, linewidth=1.6)
        if std_column:
            banded |= _band(ax, angle, mean, frame[std_column], color, clip)
        if min_column:
            ax.plot(angle, frame[min_column], color=color, linestyle="--", linewidth=0.9)
    for angles, style, _ in marks:
        for angle in angles:
            ax.axvline(angle, color="0.6", linewidth=0.6, linestyle=style)
    ax.set_xticks(np.arange(0, 361, 45))
    ax.set_xlim(0, 360)
    ax.set_xlabel("rotation angle (degrees)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if banded:
        handles.append(Line2D([], [], color="0.4", linewidth=6, alpha=0.25))
        labels.append(band_label)
    if min_column:
        handles.append(Line2D([], [], color="0.4", linestyle="--", linewidth=0.9))
        labels.append(min_label)
    for _, style, mark_label in marks:
        if mark_label:
            handles.append(Line2D([], [], color="0.6", linewidth=0.9, linestyle=style))
            labels.append(mark_label)
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def level_figure(tables: Mapping[str, pd.DataFrame], members: Sequence[str], path: str | Path,
                 colors: Mapping[str, tuple] | None = None,
                 band_columns: tuple[str, str] = ("set_iou_gt_std",
                                                  "set_iou_consistency_std")) -> Path | None:
    """IoU against ground truth (top) and consistency IoU (bottom) against the level.

    One column of panels per perturbation of `members` found in the tidy perturb tables, titled
    and labelled by its family's `Plot` (`equiseg.analysis.families`); None if there is none.
    Bands are ± `band_columns` (the std over images by default; the report passes the sd over
    seeds), left out where unknown.
    """
    colors = colors or run_colors(list(tables))
    present = [p for p in members if any((t["perturbation"] == p).any() for t in tables.values())]
    if not present:
        return None
    fig = Figure(figsize=(3.6 * max(len(present), 1.5), 6.0))
    axes = fig.subplots(2, len(present), squeeze=False)
    rows = (("set_iou_gt_mean", band_columns[0], "IoU vs ground truth"),
            ("set_iou_consistency_mean", band_columns[1], "consistency IoU"))
    for col, perturbation in enumerate(present):
        for row, (mean_column, std_column, ylabel) in enumerate(rows):
            ax = axes[row][col]
            for label, table in tables.items():
                _require(table, ("perturbation", "level", mean_column, std_column), label)
                part = table[table["perturbation"] == perturbation].sort_values("level")
                if part.empty:
                    continue
                ax.plot(part["level"], part[mean_column], marker="o", markersize=3,
                        color=colors[label], label=label)
                _band(ax, part["level"], part[mean_column], part[std_column], colors[label],
                      clip=(0.0, 1.0))
            ax.grid(alpha=0.3)
            plot = REGISTRY[perturbation].plot if perturbation in REGISTRY else None
            if row == 0:
                ax.set_title(plot.title if plot else perturbation)
            else:
                ax.set_xlabel(plot.axis if plot else "level")
            if col == 0:
                ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)
