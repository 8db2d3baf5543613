"""`equiseg audit`: the pipeline's equivariance analysis on any model and any folder of images.

Runs `equiseg.analysis.sweep` (the same code as the rotation_sweep stage) and writes, into a temporary
folder renamed onto `out` at the very end (nothing half-written):

- `results.csv`: tidy, one row per image, perturbation and level (see `equiseg.analysis.sweep`);
- `rotation.csv`, `perturb.csv`: the set statistics in the pipeline's formats;
- `summary.json`: per perturbation the worst level, the spread over levels, exactness at
  90-degree multiples and for flips, and the least consistent images;
- `figures/*.png` and `report.md` / `report.html` (self-contained), with the worst images shown.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from equiseg.analysis.inputs import ImageFile, folder_images, load_image, pair_files, spread_indices
from equiseg.analysis.model_loading import load_model
from equiseg.analysis.perturbations import IDENTITY, Perturbation, build_perturbations, restore
from equiseg.analysis.sweep import (
    Predict,
    audit_summary,
    identity_rows,
    make_predictor,
    perturbation_table,
    rotation_curves,
    run_sweep,
    sweep_image,
)
from equiseg.errors import EquisegError
from equiseg.io import atomic_dir, write_csv, write_json
from equiseg.report import Document
from equiseg.report.figures import angle_figure, photometric_figure
from equiseg.report.overlays import labels_from_probs, paint, to_rgb, write_grid

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class AuditOptions:
    """Everything `equiseg audit` was asked to do (the command line, parsed)."""

    model: str
    images: Path
    out: Path
    weights: Path | None = None
    masks: Path | None = None
    perturb: tuple[str, ...] = ("rotate", "flip", "brightness", "contrast", "noise")
    angle_step: float = 5.0
    brightness: tuple[float, ...] = ()
    contrast: tuple[float, ...] = ()
    noise: tuple[float, ...] = ()
    size: int = 0
    pad_size: int = 0
    multiple: int = 16
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    output: str = "logits"
    classes: int = 1
    batch_size: int = 16
    device: str = "cpu"
    channels_last: bool = False
    max_images: int = 0
    atol: float = 1e-4
    worst: int = 3


def check_out(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier audit's output (it could be anything)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / SUMMARY_FILE).is_file())):
        raise EquisegError(f"{out}: exists and is not an earlier audit's output; pass a new "
                           "or empty --out folder")


def run_audit(options: AuditOptions) -> dict:
    """Audit the model on the folder; returns the summary also written to `summary.json`."""
    check_out(options.out)
    perturbations = build_perturbations(options.perturb, options.angle_step, options.brightness,
                                        options.contrast, options.noise)
    if len(options.mean) != len(options.std):
        raise EquisegError(f"--mean has {len(options.mean)} values but --std has "
                           f"{len(options.std)}; give one of each per input channel")
    entries = pair_files(options.images, options.masks)
    entries = [entries[i] for i in spread_indices(len(entries), options.max_images, 0)]
    model = load_model(options.model, options.weights, map_location=options.device)
    predict = make_predictor(model, options.mean, options.std, options.output, options.classes,
                             options.channels_last)
    images = folder_images(entries, options.classes, options.size, options.pad_size,
                           options.multiple)
    with atomic_dir(options.out) as tmp:
        start = time.perf_counter()
        frame = run_sweep(predict, images, perturbations, options.batch_size,
                          options.device).frame
        seconds = time.perf_counter() - start
        if frame.empty:
            raise EquisegError(f"{options.images}: no image could be decoded; pass a folder of "
                               "readable PNG or JPEG files")
        summary = audit_summary(frame, options.atol, options.worst)
        summary["seconds"] = round(seconds, 3)
        summary["images_per_second"] = round(summary["images"] / seconds, 4)
        summary["model"] = options.model
        write_csv(tmp / "results.csv", frame)
        if (frame["perturbation"] == "rotate").any():
            write_csv(tmp / "rotation.csv", rotation_curves(frame))
        write_csv(tmp / "perturb.csv", perturbation_table(frame))
        write_json(tmp / SUMMARY_FILE, summary)
        worst = worst_cases(frame, summary)
        panels = _worst_panels(predict, entries, worst, options) if worst else None
        write_report(tmp, frame, summary, options, panels)
    return summary


def worst_cases(frame: pd.DataFrame, summary: dict) -> list[tuple[str, Perturbation]]:
    """The least consistent images, each with its own least consistent perturbation."""
    cases = []
    for entry in summary["least_consistent_images"]:
        rows = frame[(frame["image"] == entry["image"]) & ~identity_rows(frame)]
        row = rows.loc[rows["iou_consistency"].idxmin()]
        cases.append((entry["image"], Perturbation(row["perturbation"], float(row["level"]))))
    return cases


def _worst_panels(predict: Predict, entries: Sequence[ImageFile],
                  cases: list[tuple[str, Perturbation]],
                  options: AuditOptions) -> list[list[tuple]]:
    """Re-predict the worst cases (two forward passes each) and draw them as panels."""
    by_name = {entry.name: entry for entry in entries}
    rows = []
    with torch.inference_mode():
        for name, perturbation in cases:
            item = load_image(by_name[name], options.classes, options.size, options.pad_size,
                              options.multiple).to(options.device)
            _, kept = sweep_image(predict, item, [IDENTITY, perturbation], options.batch_size,
                                  keep=True)
            restored = restore([perturbation], kept.probs[1:])[0]
            label = f"{perturbation.name} {perturbation.level:g}"
            inside = item.footprint[0]  # paint only the image, not the padding
            row = [(to_rgb(item.image), name),
                   (paint(item.image, labels_from_probs(kept.reference) * inside), "prediction"),
                   (paint(kept.inputs[1], labels_from_probs(kept.probs[1])), label),
                   (paint(item.image, labels_from_probs(restored) * inside), f"{label}, undone")]
            if item.target is not None:
                row.append((paint(item.image, item.target[0].long()), "ground truth"))
            rows.append(row)
    return rows


def _perturbation_table(summary: dict) -> pd.DataFrame:
    rows = []
    for name, entry in summary["perturbations"].items():
        exact = entry.get("exact_at_90_multiples", entry.get("exact"))
        rows.append({"perturbation": name, "worst level": entry["worst_level"],
                     "worst consistency IoU": entry["worst_consistency_iou"],
                     "spread": entry["consistency_iou_spread"],
                     "mean consistency IoU": entry["mean_consistency_iou"],
                     "mean abs diff": entry["mean_mad"], "mean dB": entry["mean_psnr_db"],
                     "mean IoU vs masks": entry["mean_iou_gt"],
                     "exact": "" if exact is None else ("yes" if exact else "no")})
    return pd.DataFrame(rows)


def _findings(summary: dict) -> str:
    lines = []
    found = summary["perturbations"]
    if "rotate" in found and found["rotate"].get("max_abs_diff_at_90_multiples") is not None:
        rotate = found["rotate"]
        verdict = "**exactly equivariant**" if rotate["exact_at_90_multiples"] else \
            "**not exactly equivariant**"
        lines.append(f"- Rotations by 90, 180 and 270 degrees: {verdict} (largest probability "
                     f"difference {rotate['max_abs_diff_at_90_multiples']:.2e}, tolerance "
                     f"{summary['atol']:g}).")
        lines.append(f"- Worst rotation: {rotate['worst_level']:g} degrees, mean consistency IoU "
                     f"{rotate['worst_consistency_iou']:.3f}; spread over angles "
                     f"{rotate['consistency_iou_spread']:.3f}.")
    for flip in ("flip_h", "flip_v"):
        if flip in found:
            entry = found[flip]
            lines.append(f"- {flip}: consistency IoU {entry['worst_consistency_iou']:.3f}, "
                         f"{'exact' if entry['exact'] else 'not exact'} "
                         f"(largest difference {entry['max_abs_diff']:.2e}).")
    for name in ("brightness", "contrast", "noise"):
        if name in found:
            entry = found[name]
            lines.append(f"- {name}: worst level {entry['worst_level']:g}, consistency IoU "
                         f"{entry['worst_consistency_iou']:.3f}.")
    return "\n".join(lines)


def write_report(folder: Path, frame: pd.DataFrame, summary: dict, options: AuditOptions,
                 worst_rows: list | None) -> None:
    """Figures and the Markdown/HTML report of an audit, inside `folder`."""
    figures = folder / "figures"
    label = Path(options.model.split(":")[0]).stem or "model"
    doc = Document(f"Equivariance audit: {options.model}")
    doc.paragraph(
        f"{summary['images']} image(s) from `{options.images}`"
        + (f" with masks from `{options.masks}`" if options.masks else " (no masks)")
        + f"; {frame.groupby(['perturbation', 'level'], sort=False).ngroups} perturbation levels; "
        f"{summary['images_per_second']:.2f} images/s on {options.device}.")
    doc.heading("Findings")
    doc.paragraph(_findings(summary))
    doc.table(_perturbation_table(summary))
    doc.paragraph(
        "*Consistency IoU*: IoU between the prediction on the perturbed image (the perturbation "
        "undone on the output where it moves pixels) and the prediction on the original, inside "
        "the region both saw; 1.0 = perfectly equivariant (invariant for photometric changes). "
        "*dB*: PSNR of the two probability maps (100 = identical). *Spread*: max - min of the "
        "mean consistency over the levels that change the image.")
    if (frame["perturbation"] == "rotate").any():
        curves = {label: rotation_curves(frame)}
        doc.heading("Rotations")
        doc.figure(angle_figure(curves, "set_iou_consistency_mean", figures / "rotation_consistency.png",
                                "consistency IoU", "Consistency under rotation",
                                std_column="set_iou_consistency_std",
                                min_column="set_iou_consistency_min", clip=(0.0, 1.0)),
                   "Consistency IoU against rotation angle: mean over images, ± std, and the "
                   "worst image (dashed).")
        doc.figure(angle_figure(curves, "set_psnr_db_mean", figures / "rotation_psnr.png",
                                "PSNR (dB)", "Equivariance error in decibels"),
                   "PSNR between de-rotated and direct probability maps (higher is better).")
        if frame["iou_gt"].notna().any():
            doc.figure(angle_figure(curves, "set_iou_gt_mean", figures / "rotation_iou_gt.png",
                                    "IoU vs masks", "Accuracy under rotation",
                                    std_column="set_iou_gt_std", min_column="set_iou_gt_min",
                                    clip=(0.0, 1.0)),
                       "IoU against the given masks at each angle.")
    photometric = photometric_figure({label: perturbation_table(frame)},
                                     figures / "photometric.png")
    if photometric is not None:
        doc.heading("Photometric changes")
        doc.figure(photometric, "IoU against masks (top, if given) and consistency IoU (bottom) "
                                "per level, mean ± std over images.")
    if worst_rows:
        doc.heading("Least consistent images")
        doc.figure(write_grid(figures / "worst_images.png", worst_rows),
                   "Each row: an image, its prediction, its least consistent perturbation with "
                   "the prediction on it, that prediction with the perturbation undone, and the "
                   "ground truth when given.")
    doc.heading("Files")
    doc.paragraph("`results.csv`: one row per image, perturbation and level; `rotation.csv` and "
                  "`perturb.csv`: statistics over images per level; `summary.json`: the "
                  "figures above; `figures/`: the PNGs.")
    doc.write(folder / "report.md", folder / "report.html")
