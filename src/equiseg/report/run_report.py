"""The pipeline's report: the run's setting, findings, tables and figures of every trained run.

Reads the stage outputs of the contract's layout under `root` for the params' models x
augments, draws the figures into `out_dir/figures`, and writes `out_dir/report.md` and the
self-contained `out_dir/report.html`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from equiseg.config import Params
from equiseg.report import figures
from equiseg.report.document import Document
from equiseg.report.findings import findings_markdown
from equiseg.report.run_results import RunResults, load_runs, read_data_info
from equiseg.report.tables import (
    EQUIVARIANCE_BEST,
    EQUIVARIANCE_FORMATS,
    FINAL_EPOCH_BEST,
    FLIP_BEST,
    QUARTER_TURN_BEST,
    equivariance_table,
    final_epoch_table,
    flip_table,
    quarter_turn_table,
)

TITLE = "equiseg report: segmentation accuracy and rotation equivariance"
class AngleFigure(NamedTuple):
    mean: str
    std: str | None
    low: str | None
    ylabel: str
    file: str
    title: str
    caption: str


ANGLE_FIGURES = (
    AngleFigure("set_iou_gt_mean", "set_iou_gt_std", "set_iou_gt_min", "IoU vs ground truth",
                "rotation_iou.png", "Accuracy against rotation angle",
                "Accuracy: validation IoU against ground truth at each rotation angle."),
    AngleFigure("set_iou_consistency_mean", "set_iou_consistency_std", "set_iou_consistency_min",
                "consistency IoU", "rotation_consistency.png", "Consistency against rotation angle",
                "Consistency: IoU between the prediction on the rotated image, turned back, and "
                "the upright prediction (needs no labels); 1 means exactly equivariant."),
    AngleFigure("set_psnr_db_mean", None, None, "PSNR (dB)", "rotation_psnr.png",
                "Agreement in decibels against rotation angle",
                "Agreement of the probability maps in decibels (PSNR; higher is closer, "
                "identical maps are infinite)."),
)
TRAIN_FIGURES = (("train_loss", "training loss"), ("train_iou", "training IoU"),
                 ("val_loss", "validation loss"), ("val_iou", "validation IoU"))


def setting_markdown(params: Params, data_info: dict[str, Any]) -> str:
    """What was run: data, profile and the key parameters, one bullet each."""
    source = data_info.get("source", params.data.source)
    pairs = data_info.get("n_pairs")
    split = ""
    if "n_train" in data_info and "n_val" in data_info:
        split = f": {data_info['n_train']} train / {data_info['n_val']} validation"
    data = f"{source}" + (f", {pairs} image/mask pairs{split}" if pairs is not None else "")
    if "n_species" in data_info:
        data += f", {data_info['n_species']} species"
    train = params.train
    images = params.sweep.max_images or "all"
    return "\n".join([
        f"- **Data:** {data}",
        f"- **Profile:** `{params.profile}`, seed {params.seed}",
        f"- **Runs:** {', '.join(params.models)} × {', '.join(params.augments)} augmentation",
        (f"- **Training:** {train.epochs} epochs, batch {train.batch_size}, learning rate "
         f"{train.lr:g}, weight decay {train.weight_decay:g}, images "
         f"{params.data.image_size} px padded to {params.data.pad_size} px"),
        (f"- **Rotation sweep:** every {params.sweep.angle_step:g}° over {images} validation "
         "images"),
    ])


def setting_caveat(params: Params, data_info: dict[str, Any]) -> str | None:
    """A warning when this is not the paper's setting (Leeds data, `paper` profile), else None."""
    source = data_info.get("source", params.data.source)
    caveats = []
    if source != "leeds":
        caveats.append(f"the data are `{source}`, not the Leeds Butterfly images")
    if params.profile != "paper":
        caveats.append(f"the profile is `{params.profile}`, not `paper`")
    if not caveats:
        return None
    return ("**Not the paper's setting:** " + "; ".join(caveats)
            + ". Compare these numbers only with runs of the same setting.")


def _add_training_curves(doc: Document, runs: list[RunResults], fig_dir: Path,
                         colors: dict) -> None:
    curves = {r.label: r.train_curve for r in runs if r.train_curve is not None}
    if not curves:
        return
    doc.heading("Training curves")
    for column, name in TRAIN_FIGURES:
        path = figures.training_curve_figure(curves, column, fig_dir / f"{column}.png",
                                             ylabel=name, title=f"{name} per epoch", colors=colors)
        doc.figure(path, f"{name[0].upper()}{name[1:]} per epoch, all runs.")


def _add_rotation(doc: Document, runs: list[RunResults], fig_dir: Path, colors: dict) -> None:
    curves = {r.label: r.rotation for r in runs if r.rotation is not None}
    if not curves:
        return
    doc.heading("Rotation sweep")
    doc.paragraph("Each validation image is rotated by every angle, segmented, and the prediction "
                  "rotated back. Lines are validation-set means, bands mean ± std, dashed lines "
                  "the worst image; dotted verticals mark the 90° multiples.")
    for spec in ANGLE_FIGURES:
        path = figures.angle_figure(curves, spec.mean, fig_dir / spec.file, ylabel=spec.ylabel,
                                    title=spec.title, std_column=spec.std, min_column=spec.low,
                                    clip=(0.0, 1.0) if spec.std else None, colors=colors)
        doc.figure(path, spec.caption)


def _add_perturbations(doc: Document, runs: list[RunResults], fig_dir: Path,
                       colors: dict) -> None:
    tables = {r.label: r.perturb for r in runs if r.perturb is not None}
    if not tables:
        return
    doc.heading("Flips and photometric changes")
    flips = flip_table(runs)
    if flips is not None:
        doc.paragraph("Validation-set mean IoU against ground truth, and consistency IoU with the "
                      "unflipped prediction, under horizontal and vertical mirror flips.")
        doc.table(flips, bold_best=FLIP_BEST)
    path = figures.photometric_figure(tables, fig_dir / "photometric.png", colors=colors)
    if path is not None:
        doc.figure(path, "Brightness, contrast and noise: IoU against ground truth (top) and "
                         "consistency with the unperturbed prediction (bottom); bands are ± std.")


def _add_equivariance(doc: Document, runs: list[RunResults]) -> None:
    table = equivariance_table(runs)
    if table is None:
        return
    doc.heading("Equivariance")
    exact = [f"`{r.label}`" for r in runs
             if r.equivariance is not None and r.equivariance.get("exact_at_90_multiples")]
    inexact = [f"`{r.label}`" for r in runs
               if r.equivariance is not None and not r.equivariance.get("exact_at_90_multiples")]
    doc.paragraph(f"**Exact at 90° multiples:** {', '.join(exact) or 'none'}. "
                  f"**Not exact:** {', '.join(inexact) or 'none'}. Off the 90° grid no model is "
                  "exact, since rotating the pixel grid itself interpolates.")
    doc.table(table, bold_best=EQUIVARIANCE_BEST, floatfmt=EQUIVARIANCE_FORMATS)


def _add_predictions(doc: Document, runs: list[RunResults]) -> None:
    if not any(r.gif or r.samples for r in runs):
        return
    doc.heading("Predictions")
    for run in runs:
        if run.gif or run.samples:
            doc.heading(run.label, level=3)
        if run.gif:
            doc.figure(run.gif, f"`{run.label}`: predictions as the input turns through 360°.")
        if run.samples:
            doc.figure(run.samples, f"`{run.label}`: sample validation predictions.")


def build_run_report(params: Params, root: str | Path, out_dir: str | Path) -> Path:
    """Write report.md, report.html and figures/*.png into `out_dir`; return the HTML path."""
    root, out_dir = Path(root), Path(out_dir)
    runs = load_runs(root, params.models, params.augments, expect_gif=params.sweep.gif)
    colors = figures.run_colors([r.label for r in runs])
    fig_dir = out_dir / "figures"
    doc = Document(TITLE)
    data_info = read_data_info(root)
    doc.paragraph(setting_markdown(params, data_info))
    if caveat := setting_caveat(params, data_info):
        doc.note(caveat)
    doc.heading("Findings")
    doc.paragraph(findings_markdown(runs))
    doc.heading("Final epoch")
    doc.paragraph("Best value per column in bold (highest IoU, lowest loss).")
    doc.table(final_epoch_table(runs), bold_best=FINAL_EPOCH_BEST)
    quarter = quarter_turn_table(runs)
    if quarter is not None:
        doc.paragraph("Validation IoU with every image turned by the same multiple of 90°; "
                      "the first column is the seed's protocol (a random turn per image).")
        doc.table(quarter, bold_best=QUARTER_TURN_BEST)
    _add_training_curves(doc, runs, fig_dir, colors)
    _add_rotation(doc, runs, fig_dir, colors)
    _add_perturbations(doc, runs, fig_dir, colors)
    _add_equivariance(doc, runs)
    _add_predictions(doc, runs)
    missing = [path for run in runs for path in run.missing]
    if missing:
        doc.heading("Missing inputs")
        doc.paragraph("These files were not found, so their parts are left out:\n"
                      + "\n".join(f"- `{path}`" for path in missing))
    html_path = out_dir / "report.html"
    doc.write(out_dir / "report.md", html_path)
    return html_path
