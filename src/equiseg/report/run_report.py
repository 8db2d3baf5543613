"""The pipeline's report: the run's setting, findings, tables and figures of every trained run.

Reads the stage outputs of the contract's layout under `root` for the setting's models x
augments x seeds, draws the figures into `out_dir/figures`, and writes `out_dir/report.md` and
the self-contained `out_dir/report.html`. Every figure is a mean over seeds with its sample sd
(ddof=1) and n; every validation figure names the rot90 protocol it was measured under.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from equiseg.analysis.convergence import CONVERGED_GAIN
from equiseg.analysis.families import curve_figures
from equiseg.metrics import PSNR_CAP_DB
from equiseg.report import figures
from equiseg.report.document import Document
from equiseg.report.findings import findings_markdown
from equiseg.report.reach import CAPTION as REACH_CAPTION
from equiseg.report.reach import REACH_FIGURE, reach_figure
from equiseg.report.run_results import RunResults, load_runs, read_data_info
from equiseg.report.setting import ReportSetting, setting_caveat, setting_markdown
from equiseg.report.tables import (
    EQUIVARIANCE_FORMATS,
    convergence_table,
    equivariance_table,
    eval_mode_table,
    flip_table,
    level_table,
    quarter_turn_table,
    seed_final_epoch_table,
    spread,
)

TITLE = "equiseg report: segmentation accuracy and rotation equivariance"


class AngleFigure(NamedTuple):
    mean: str
    sd: str | None
    low: str | None
    ylabel: str
    file: str
    title: str
    caption: str


ANGLE_FIGURES = (
    AngleFigure("set_iou_gt_mean", "set_iou_gt_mean_sd", "set_iou_gt_min", "IoU vs ground truth",
                "rotation_iou.png", "Accuracy against rotation angle",
                "Accuracy: validation-set mean IoU against ground truth at each rotation angle."),
    AngleFigure("set_iou_consistency_mean", "set_iou_consistency_mean_sd",
                "set_iou_consistency_min", "consistency IoU", "rotation_consistency.png",
                "Consistency against rotation angle",
                "Consistency: IoU between the prediction on the rotated image, turned back, and "
                "the upright prediction (needs no labels); 1 means exactly equivariant."),
    AngleFigure("set_psnr_db_pooled", "set_psnr_db_pooled_sd", None, "pooled PSNR (dB)",
                "rotation_psnr.png", "Agreement in decibels against rotation angle",
                "Agreement of the probability maps in decibels: the pooled PSNR of the set, "
                "10·log10(1 / MSE) with the squared differences pooled over all valid pixels of "
                "all validation images (StyleGAN3's EQ-R); higher is closer. Identical maps score "
                f"the cap, {PSNR_CAP_DB:g} dB, not infinity."),
)
TRAIN_FIGURES = (("train_loss", "training loss (augmented batches, running)"),
                 ("train_iou", "training IoU (augmented batches, running)"),
                 ("val_loss", "validation loss (4 turns)"),
                 ("val_iou", "validation IoU (uniform 90° turns)"),
                 ("val_iou_seed", "validation IoU (seed's RandomRotate90)"))
SEEDS_NOTE = ("Figures are means over the seeds; ± gives the sample standard deviation across "
              "seeds (ddof=1), left out when only one seed ran; n counts the seeds.")


def _add_training_curves(doc: Document, runs: list[RunResults], fig_dir: Path,
                         colors: dict) -> None:
    curves = {r.label: r.training for r in runs if r.training is not None}
    if not curves:
        return
    doc.heading("Training curves")
    doc.paragraph("Per epoch, mean over seeds with a band of ± sd across seeds (none for one "
                  "seed). Training figures are running values over the epoch's augmented "
                  "batches; validation figures are measured after each epoch, in eval mode, on "
                  "every validation image at all four quarter turns, each protocol's IoU as its "
                  "expectation over the draw of turns.")
    frame, best = convergence_table(runs)
    doc.paragraph(f"Convergence: each run's gain in validation IoU over its last quarter of "
                  f"epochs (mean over seeds); below {CONVERGED_GAIN} it has stopped learning.")
    doc.table(frame, bold_best=best, spread=spread(frame))
    for column, name in TRAIN_FIGURES:
        path = figures.training_curve_figure(curves, column, fig_dir / f"{column}.png",
                                             ylabel=name, title=f"{name} per epoch",
                                             colors=colors, sd_column=column + "_sd")
        doc.figure(path, f"{name[0].upper()}{name[1:]} per epoch, all runs, ± sd over seeds.")


def _add_rotation(doc: Document, runs: list[RunResults], fig_dir: Path, colors: dict,
                  groups: dict[str, str]) -> None:
    curves = {r.label: r.rotation for r in runs if r.rotation is not None}
    if not curves:
        return
    doc.heading("Rotation sweep")
    doc.paragraph("Each validation image is rotated by every angle, segmented, and the prediction "
                  "rotated back. Lines are validation-set figures averaged over seeds, bands ± sd "
                  "across seeds (none for one seed), dashed lines the worst image (mean over "
                  "seeds); dotted verticals mark the 90° multiples.")
    for spec in ANGLE_FIGURES:
        path = figures.angle_figure(curves, spec.mean, fig_dir / spec.file, ylabel=spec.ylabel,
                                    title=spec.title, std_column=spec.sd, min_column=spec.low,
                                    clip=(0.0, 1.0) if spec.low else None, colors=colors,
                                    band_label="± sd over seeds", min_label="worst image")
        doc.figure(path, spec.caption)
    if path := reach_figure(runs, groups, fig_dir / REACH_FIGURE, colors):
        doc.figure(path, REACH_CAPTION)


def _add_perturbations(doc: Document, runs: list[RunResults], fig_dir: Path,
                       colors: dict) -> None:
    tables = {r.label: r.perturb for r in runs if r.perturb is not None}
    if not tables:
        return
    doc.heading("Flips and photometric changes")
    flips = flip_table(runs)
    if flips is not None:
        doc.paragraph("Validation-set mean IoU against ground truth, and consistency IoU with the "
                      "unflipped prediction, under horizontal and vertical mirror flips. "
                      + SEEDS_NOTE)
        doc.table(flips[0], bold_best=flips[1], spread=spread(flips[0]))
    for figure, families in curve_figures().items():  # the photometric families' figures
        if any(f.geometric for f in families):
            continue
        path = figures.level_figure(tables, [f.name for f in families], fig_dir / f"{figure}.png",
                                    colors=colors, band_columns=("set_iou_gt_mean_sd",
                                                                 "set_iou_consistency_mean_sd"))
        if path is not None:
            doc.figure(path, f"{_listed([f.plot.title for f in families]).capitalize()}: IoU "
                             "against ground truth (top) and consistency with the unperturbed "
                             "prediction (bottom); bands are ± sd over seeds.")


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _add_level_curves(doc: Document, runs: list[RunResults], fig_dir: Path,
                      colors: dict) -> None:
    """One figure per geometric family drawn against its level (shift, scale: see
    `equiseg.analysis.families`), all runs on it, and each run's worst level in a table."""
    tables = {r.label: r.perturb for r in runs if r.perturb is not None}
    groups = {figure: families for figure, families in curve_figures().items()
              if all(f.geometric for f in families)}
    if not tables or not groups:
        return
    heading = False
    for figure, families in groups.items():
        names = [f.name for f in families]
        path = figures.level_figure(tables, names, fig_dir / f"{figure}.png", colors=colors,
                                    band_columns=("set_iou_gt_mean_sd",
                                                  "set_iou_consistency_mean_sd"))
        if path is None:
            continue
        if not heading:
            doc.heading(_listed([f.plot.title for fs in groups.values() for f in fs])
                        .capitalize())
            doc.paragraph("Each validation image is moved (or zoomed), segmented, and the "
                          "prediction moved back; both are scored only where the round trip kept "
                          "the image's own content (the valid region, as for rotations). A "
                          "network with strides or pooling is not equivariant to shifts that "
                          "are not multiples of its stride, nor is any network to zooms on a "
                          "pixel grid. " + SEEDS_NOTE)
            heading = True
        for family in families:
            table = level_table(runs, family.name)
            if table is not None:
                doc.paragraph(f"*{family.plot.axis.capitalize()}*: each run's worst level, "
                              "the one with the lowest mean consistency IoU.")
                doc.table(table[0], bold_best=table[1], floatfmt={"worst level": "g"},
                          spread=spread(table[0]))
        doc.figure(path, f"{', '.join(f.plot.axis for f in families).capitalize()}: IoU "
                         "against ground truth (top) and consistency with the unperturbed "
                         "prediction, undone (bottom); bands are ± sd over seeds.")


def _add_equivariance(doc: Document, runs: list[RunResults]) -> None:
    table = equivariance_table(runs)
    if table is None:
        return
    frame, best = table
    doc.heading("Equivariance")
    exact = [f"`{r.label}`" for r in runs
             if r.equivariance is not None and r.equivariant["exact_at_90_multiples"]]
    inexact = [f"`{r.label}`" for r in runs
               if r.equivariance is not None and not r.equivariant["exact_at_90_multiples"]]
    doc.paragraph(f"**Exact at 90° multiples** (every seed): {', '.join(exact) or 'none'}. "
                  f"**Not exact:** {', '.join(inexact) or 'none'}. Off the 90° grid no model is "
                  "exact, since rotating the pixel grid itself interpolates. *Pooled dB off "
                  "grid*: the pooled PSNR of the set (EQ-R style, squared differences pooled over "
                  "all valid pixels of all images) averaged over the angles off the 90° grid; "
                  f"identical maps score {PSNR_CAP_DB:g} dB. " + SEEDS_NOTE)
    doc.table(frame, bold_best=best, floatfmt=EQUIVARIANCE_FORMATS, spread=spread(frame))


def _add_predictions(doc: Document, runs: list[RunResults], first_seed: int) -> None:
    if not any(r.gif or r.samples for r in runs):
        return
    doc.heading("Predictions")
    for run in runs:
        if run.gif or run.samples:
            doc.heading(run.label, level=3)
        if run.gif:
            doc.figure(run.gif, f"`{run.label}` (seed {first_seed}): predictions as the input "
                                "turns through 360°.")
        if run.samples:
            doc.figure(run.samples, f"`{run.label}` (seed {first_seed}): sample validation "
                                    "predictions.")


def _add_accuracy_tables(doc: Document, runs: list[RunResults]) -> None:
    seed_table = seed_final_epoch_table(runs)
    doc.heading("Final epoch: the seed's quantities")
    if seed_table is not None:
        doc.paragraph("As the seed reports them: *train* IoU and loss are running values over the "
                      "last epoch's augmented training batches (train mode, weights changing), "
                      "*val* figures are measured after that epoch under the protocol named in "
                      "the column (expected over the draw of turns). Best value per column in bold (highest IoU, lowest loss). "
                      + SEEDS_NOTE)
        doc.table(seed_table[0], bold_best=seed_table[1], spread=spread(seed_table[0]))
    else:
        doc.paragraph("No training curves were found (see Missing inputs).")
    doc.heading("Eval-mode figures of the final models", level=3)
    frame, best = eval_mode_table(runs)
    doc.paragraph("The evaluate stage's re-scoring of the saved models: eval mode, fp32, training "
                  "images *without* augmentation, validation under each protocol (expected) and "
                  "the seed's single draw (`evaluate.rot90_seed`). Not the "
                  "seed's quantities; shown beside them so the two are not confused.")
    doc.table(frame, bold_best=best, spread=spread(frame))
    frame, best = quarter_turn_table(runs)
    doc.paragraph("Validation IoU under each protocol, then with every image turned by the same "
                  "multiple of 90° (eval mode); *spread* is max - min of the four turns per seed.")
    doc.table(frame, bold_best=best, spread=spread(frame))


def build_run_report(setting: ReportSetting, root: str | Path, out_dir: str | Path) -> Path:
    """Write report.md, report.html and figures/*.png into `out_dir`; return the HTML path."""
    root, out_dir = Path(root), Path(out_dir)
    runs = load_runs(root, setting.models, setting.augments, setting.seeds,
                     expect_gif=setting.gif)
    colors = figures.run_colors([r.label for r in runs])
    fig_dir = out_dir / "figures"
    doc = Document(TITLE)
    data_info = read_data_info(root)
    doc.paragraph(setting_markdown(setting, data_info))
    if caveat := setting_caveat(setting, data_info):
        doc.note(caveat)
    doc.heading("Findings")
    groups = {r.label: setting.model_groups[r.model] for r in runs}
    doc.paragraph(findings_markdown(runs, groups))
    _add_accuracy_tables(doc, runs)
    _add_training_curves(doc, runs, fig_dir, colors)
    _add_rotation(doc, runs, fig_dir, colors, groups)
    _add_perturbations(doc, runs, fig_dir, colors)
    _add_level_curves(doc, runs, fig_dir, colors)
    _add_equivariance(doc, runs)
    _add_predictions(doc, runs, setting.seeds[0])
    missing = [path for run in runs for path in run.missing]
    if missing:
        doc.heading("Missing inputs")
        doc.paragraph("These files were not found, so their parts are left out:\n"
                      + "\n".join(f"- `{path}`" for path in missing))
    html_path = out_dir / "report.html"
    doc.write(out_dir / "report.md", html_path)
    return html_path
