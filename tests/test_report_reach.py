"""The report shows how far each group reaches: consistency against angle for the plain net and
every group net on one figure with the quarter and eighth turns marked, and a line in the
Findings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from equiseg.report.reach import REACH_FIGURE, draw_reach_figure, eighth_turn_finding
from equiseg.report.run_report import build_run_report
from equiseg.report.run_results import RunResults
from tests.report_fixtures import fake_params, write_fake_outputs
from tests.test_report import setting

MODELS = ("unet", "gunet", "gunet_p4m", "gunet_c8", "gunet_d8")
GROUPS = {"unet-minimal": "trivial", "gunet-minimal": "p4", "gunet_p4m-minimal": "p4m",
          "gunet_c8-minimal": "c8", "gunet_d8-minimal": "d8"}


def run(model: str, step: float = 15.0) -> RunResults:
    """A run whose consistency at angle a is 1 - a/1000 (so every angle reads back)."""
    angles = np.arange(0, 360, step)
    curve = pd.DataFrame({"angle": angles, "set_iou_consistency_mean": 1 - angles / 1000,
                          "set_iou_consistency_mean_sd": 0.01})
    return RunResults(model, "minimal", pd.DataFrame(), rotation=curve)


def vertical_lines(figure) -> set[tuple[float, str]]:
    ax = figure.axes[0]
    return {(float(line.get_xdata()[0]), line.get_linestyle()) for line in ax.lines
            if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]}


def test_the_figure_draws_every_group_and_marks_quarter_and_eighth_turns():
    figure = draw_reach_figure([run(m) for m in MODELS], GROUPS)
    ax = figure.axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert {f"{m}-minimal" for m in MODELS} <= set(legend)
    assert {"quarter turns (every group net)", "eighth turns (C8 and D8 only)"} <= set(legend)
    marks = vertical_lines(figure)
    assert {(90.0, "--"), (180.0, "--"), (270.0, "--")} <= marks
    assert {(45.0, ":"), (135.0, ":"), (225.0, ":"), (315.0, ":")} <= marks
    assert not {(45.0, "--"), (90.0, ":")} & marks  # two styles, never mixed up


def test_without_a_rotation_sweep_there_is_no_figure():
    unswept = RunResults("gunet_c8", "minimal", pd.DataFrame(), rotation=None)
    assert draw_reach_figure([unswept], GROUPS) is None
    assert draw_reach_figure([], GROUPS) is None


def test_the_finding_ranks_the_runs_at_the_eighth_turns_and_says_when_the_sweep_misses_them():
    runs = [run("unet"), run("gunet_c8"), run("gunet_d8")]
    line = eighth_turn_finding(runs, GROUPS)
    assert "**At the eighth turns** (45°, 135°, 225°, 315°" in line
    # 1 - mean(45, 135, 225, 315) / 1000 = 0.820 for all: ties keep the order given
    assert ("`unet-minimal` 0.820 (plain), `gunet_c8-minimal` 0.820 (C8), "
            "`gunet_d8-minimal` 0.820 (D8).") in line
    missed = eighth_turn_finding([run("unet", step=30.0)], GROUPS)
    assert "cannot be compared" in missed and "`unet-minimal`" not in missed


def test_the_pipeline_report_shows_the_figure_and_the_line(tmp_path):
    models = ("unet", "gunet", "gunet_c8")
    write_fake_outputs(tmp_path, models=models, augments=("minimal",), angle_step=15.0,
                       images=False)
    ran = setting(fake_params(models, ("minimal",), sweep={"angle_step": 15.0}))
    build_run_report(ran, tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "figures" / REACH_FIGURE).stat().st_size > 5000
    assert f"(figures/{REACH_FIGURE})" in md
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert ("`gunet_c8-minimal` 0.990 (C8), `gunet-minimal` 0.960 (p4), `unet-minimal` 0.900 "
            "(plain).") in findings
