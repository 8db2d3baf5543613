"""How far each model's group reaches, in the pipeline's report: consistency against angle for the
plain net and every group net (p4, p4m, C8, D8) on one figure, the quarter turns (every group's)
and the eighth turns (C8's and D8's alone) marked, and the Findings' line at the eighth turns.

The turns come from `equiseg.nn.groups.group_turn`, the one mapping from a group to its angles.
Off the quarter turns the input is resampled, so no model is exact there: the eighth turns are
compared by consistency alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from equiseg.analysis.exactness import group_angles, in_group
from equiseg.nn.groups import group_turn
from equiseg.report.figures import Mark, draw_angle_figure, save_figure
from equiseg.report.run_results import RunResults

REACH_FIGURE = "rotation_group_reach.png"
# the groups drawn, and how the report names them
REACH_GROUPS = {"trivial": "plain", "p4": "p4", "p4m": "p4m", "c8": "C8", "d8": "D8"}
QUARTER_TURNS = tuple(group_angles(group_turn("p4")))
EIGHTH_TURNS = tuple(a for a in group_angles(group_turn("c8")) if a not in QUARTER_TURNS)
# the drawn groups that hold the eighth turns ("C8 and D8"), and the group nets that stop at the
# quarter turns ("p4 and p4m"), as `group_turn` says
_EIGHTHS_HELD = " and ".join(n for g, n in REACH_GROUPS.items() if group_turn(g) <= 45)
_QUARTERS_ONLY = " and ".join(n for g, n in REACH_GROUPS.items() if group_turn(g) == 90)
REACH_MARKS: tuple[Mark, ...] = ((QUARTER_TURNS, "--", "quarter turns (every group net)"),
                                 (EIGHTH_TURNS, ":", f"eighth turns ({_EIGHTHS_HELD} only)"))
CAPTION = ("The reach of each group: consistency IoU against rotation angle for the plain net "
           "and each group net (mean over seeds, band ± sd), dashed verticals at the quarter "
           f"turns (in every group), dotted ones at the eighth turns (in {_EIGHTHS_HELD} alone). "
           f"Turning the input by an eighth turn resamples it, so there {_EIGHTHS_HELD} can be "
           "close but never exact.")


def reach_runs(runs: list[RunResults], groups: Mapping[str, str]) -> list[RunResults]:
    """The runs with a rotation curve whose model's group (`groups`: label -> group) is drawn."""
    return [r for r in runs if r.rotation is not None and groups.get(r.label) in REACH_GROUPS]


def draw_reach_figure(runs: list[RunResults], groups: Mapping[str, str],
                      colors: Mapping[str, tuple] | None = None) -> Figure | None:
    """The figure, or None when the run has no model whose group is drawn."""
    shown = reach_runs(runs, groups)
    if not shown:
        return None
    return draw_angle_figure({r.label: r.rotation for r in shown}, "set_iou_consistency_mean",
                             ylabel="consistency IoU", title="Consistency against angle by group",
                             std_column="set_iou_consistency_mean_sd", clip=(0.0, 1.0),
                             colors=colors, band_label="± sd over seeds", marks=REACH_MARKS)


def reach_figure(runs: list[RunResults], groups: Mapping[str, str], path: str | Path,
                 colors: Mapping[str, tuple] | None = None) -> Path | None:
    """`draw_reach_figure` written to `path` as a PNG; None when there is nothing to draw."""
    figure = draw_reach_figure(runs, groups, colors)
    return None if figure is None else save_figure(figure, path)


def eighth_turn_consistency(curve: pd.DataFrame) -> float | None:
    """Mean consistency IoU of a rotation curve over the eighth turns it swept (None: none)."""
    angles = curve["angle"]
    eighth = in_group(angles, group_turn("c8")) & ~in_group(angles, group_turn("p4"))
    values = curve.loc[eighth, "set_iou_consistency_mean"].dropna()
    return None if values.empty else float(values.mean())


def eighth_turn_finding(runs: list[RunResults], groups: Mapping[str, str]) -> str | None:
    """The Findings' line: each drawn run's consistency at the eighth turns, best first."""
    shown = reach_runs(runs, groups)
    if not shown:
        return None
    turns = ", ".join(f"{a:g}°" for a in EIGHTH_TURNS)
    head = (f"**At the eighth turns** ({turns}, which {_EIGHTHS_HELD} cover and {_QUARTERS_ONLY} "
            "do not; mean IoU, judged by consistency alone since turning the input there "
            "resamples it)")
    values = {r.label: eighth_turn_consistency(r.rotation) for r in shown}
    measured = sorted((r for r in shown if values[r.label] is not None),
                      key=lambda r: values[r.label], reverse=True)
    if not measured:
        return (f"{head}: the sweep's angles miss them, so they cannot be compared (use a "
                "`sweep.angle_step` that divides 45).")
    return head + ": " + ", ".join(f"`{r.label}` {values[r.label]:.3f} "
                                   f"({REACH_GROUPS[groups[r.label]]})" for r in measured) + "."
