"""The report of `equiseg audit`: warnings first (no weights loaded, cannot judge, degenerate
predictions, upsampled outputs), findings, the per-perturbation table, the original beside the
symmetrized model, figures and the least consistent images, as Markdown and self-contained HTML.

Its sentences about exact symmetries are the pipeline report's (`equiseg.report.findings`).
Figures cover the judgeable images only (`equiseg.analysis.judgeable`); when the verdict is
"cannot judge", no sentence or table cell calls the model exact or consistent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equiseg.analysis.exactness import FLIPS
from equiseg.analysis.families import curve_figures, member_names
from equiseg.analysis.judgeable import CANNOT_JUDGE, not_judgeable_text
from equiseg.analysis.set_tables import rotation_table
from equiseg.report.document import Document
from equiseg.report.figures import angle_figure, level_figure
from equiseg.report.findings import symmetry_sentences
from equiseg.report.overlays import write_grid


def format_value(value: float | None, spec: str = ".3f") -> str:
    """A number for a sentence or table cell; an en dash where there is none."""
    return "–" if value is None else format(value, spec)


def model_label(model: str) -> str:
    """A model's name for a figure legend, whole: `monai.networks.nets:UNet` stays so (not
    `monai.networks`); a file spec keeps its file's name and factory, not its folders."""
    target, colon, factory = model.rpartition(":")
    if colon and target.endswith(".py"):
        return f"{Path(target).name}:{factory}"
    return Path(model).name if not colon and Path(model).suffix else model


def _judged(summary: dict) -> bool:
    return summary.get("verdict") != CANNOT_JUDGE


def _exact_text(entry: dict, judged: bool = True) -> str:
    if not judged:
        return "not judged"
    exact = entry.get("exact_at_90_multiples", entry.get("exact"))
    return "" if exact is None else ("yes" if exact else "no")


def _perturbation_table(summary: dict) -> pd.DataFrame:
    rows = []
    judged = _judged(summary)
    for name, entry in summary["perturbations"].items():
        rows.append({"perturbation": name, "worst level": entry["worst_level"],
                     "worst consistency IoU": entry["worst_consistency_iou"],
                     "spread": entry["consistency_iou_spread"],
                     "mean consistency IoU": entry["mean_consistency_iou"],
                     "mean abs diff": entry["mean_mad"], "mean dB": entry["mean_psnr_db"],
                     "pooled dB": entry["pooled_psnr_db"],
                     "mean IoU vs masks": entry["mean_iou_gt"],
                     "exact": _exact_text(entry, judged)})
    return pd.DataFrame(rows)


def _warnings(summary: dict) -> list[str]:
    """What a reader must know before trusting any number below."""
    lines = []
    if summary["weights_loaded"] is False:
        lines.append(f"**No weights were loaded**: `{summary['model']}` was built by its factory "
                     f"with random initial weights (seed {summary['seed']}); these numbers "
                     "describe an untrained network. Pass `--weights FILE` to audit a trained one.")
    if not _judged(summary):
        lines.append(f"**Cannot judge**: {not_judgeable_text(summary)}. An image is "
                     "judgeable when the prediction on it has both classes in a meaningful "
                     "share, so that a perturbation could change it. Whether this model is "
                     "equivariant cannot be told from these predictions, and `--require-exact` "
                     "/ `--fail-under` fail (unless `--allow-degenerate`). Check the input "
                     "normalisation, --output and the weights, or set --judgeable-min-share / "
                     "--judgeable-max-share for objects this small or this large.")
    if summary["mostly_degenerate"]:
        reasons = ", ".join(f"{count} {reason}" for reason, count in
                            summary["degenerate_reasons"].items())
        lines.append(f"**Most predictions are degenerate** ({summary['degenerate_images']} of "
                     f"{summary['images']} images: {reasons}): an empty or full mask agrees with "
                     "itself under every perturbation, so high consistency here says nothing "
                     "about equivariance. Check the input normalisation, --output and the "
                     "weights.")
    output = summary["output"]
    if output["upsampled_from"]:
        height, width = output["upsampled_from"]
        lines.append(f"The model's output ({height}x{width}) was smaller than its input and was "
                     "upsampled bilinearly to the input's size (`--upsample`); the upsampling is "
                     "part of what was measured.")
    return lines


def _cannot_judge_findings(summary: dict) -> list[str]:
    """No figure sentence: nothing here may read as a verdict on the model."""
    scored = summary["scored_images"]
    scope = ("no figure below covers any image" if not scored else
             f"figures below cover {scored} image(s) and give no verdict on the model")
    lines = [(f"- **Cannot judge**: {summary['judgeable_images']} of {summary['images']} images "
              f"get a judgeable prediction; {scope}.")]
    identical = summary["outputs_identical_under_group"]
    if identical:
        facts = ", ".join(f"{group} {'yes' if same else 'no'}" for group, same in identical.items())
        lines.append(f"- Raw outputs identical under the group, over every image: {facts}. A "
                     "fact about the outputs, not a pass: a constant output is identical under "
                     "every turn and flip.")
    return lines


def _figure_findings(summary: dict) -> list[str]:
    lines = []
    found = summary["perturbations"]
    if "rotate" in found and found["rotate"].get("max_abs_diff_at_90_multiples") is not None:
        rotate = found["rotate"]
        subject = "the model"
        lines += [f"- {sentence}" for sentence in symmetry_sentences(
            {subject: rotate["consistency_iou_at_90_multiples"]},
            {subject: rotate["exact_at_90_multiples"]})]
        lines.append("- Exactness is judged on raw outputs: largest "
                     "difference relative to the largest output "
                     f"{format_value(rotate['max_rel_diff_raw_at_90_multiples'], '.2e')}; tolerance "
                     f"atol {summary['atol']:g} + rtol {summary['rtol']:g} x scale; largest "
                     f"probability difference {rotate['max_abs_diff_at_90_multiples']:.2e}).")
    if "rotate" in found and found["rotate"]["worst_level"] is not None:
        rotate = found["rotate"]
        lines.append(f"- Worst rotation: {rotate['worst_level']:g} degrees, mean consistency IoU "
                     f"{rotate['worst_consistency_iou']:.3f}; spread over angles "
                     f"{rotate['consistency_iou_spread']:.3f}.")
    for flip in FLIPS:
        if flip in found and found[flip]["exact"] is not None:
            entry = found[flip]
            lines.append(f"- {flip}: consistency IoU {format_value(entry['worst_consistency_iou'])}, "
                         f"{'exact' if entry['exact'] else 'not exact'} "
                         f"(largest probability difference {entry['max_abs_diff']:.2e}).")
    for name in member_names(kind="curve"):  # brightness, contrast, noise, shift, scale
        if name in found and found[name]["worst_level"] is not None:
            entry = found[name]
            lines.append(f"- {name}: worst level {entry['worst_level']:g}, consistency IoU "
                         f"{entry['worst_consistency_iou']:.3f}.")
    return lines


def _findings(summary: dict) -> str:
    lines = _figure_findings(summary) if _judged(summary) else _cannot_judge_findings(summary)
    left_out = summary["images"] - summary["judgeable_images"]
    if left_out and _judged(summary):
        scope = ("left out of every figure" if summary["scored_images"] < summary["images"]
                 else "kept in the figures by --allow-degenerate")
        lines.append(f"- {not_judgeable_text(summary)}: {scope} (see `not_judgeable_reason` "
                     "in results.csv).")
    if summary["degenerate_images"] and not summary["mostly_degenerate"]:
        lines.append(f"- {summary['degenerate_images']} of {summary['images']} images get a "
                     "degenerate prediction (see `degenerate_reason` in results.csv).")
    return "\n".join(lines)


def _comparison_table(summary: dict) -> pd.DataFrame:
    """The original and the symmetrized model side by side."""
    rows = []
    for label, part, ips in (("original", summary, summary["images_per_second"]),
                             (f"symmetrized ({summary['symmetrized']['group']})",
                              summary["symmetrized"], summary["symmetrized"]["images_per_second"])):
        rotate = part["perturbations"].get("rotate", {})
        rows.append({"model": label,
                     "worst rotation consistency IoU": rotate.get("worst_consistency_iou"),
                     "consistency IoU at 90s": rotate.get("consistency_iou_at_90_multiples"),
                     "judgeable images": part["judgeable_images"],
                     "exact at 90s": _exact_text(rotate, _judged(part)) if rotate else "",
                     "mean IoU vs masks": rotate.get("mean_iou_gt"),
                     "images/s": ips})
    return pd.DataFrame(rows)


def _what_was_audited(summary: dict) -> str:
    settings = summary["settings"]
    levels = sum(len(entry["levels"]) for entry in summary["perturbations"].values())
    return (f"{summary['images']} image(s) from `{settings['images']}`"
            + (f" with masks from `{settings['masks']}`" if settings["masks"] else " (no masks)")
            + f", {summary['judgeable_images']} of them judgeable (foreground "
            f"{summary['judgeable_min_share']:g}-{summary['judgeable_max_share']:g} of the "
            f"pixels, output not constant); figures over {summary['scored_images']}; {levels} "
            f"perturbation levels; {summary['images_per_second']:.2f} images/s on "
            f"{summary['device']}; output read as {summary['output']['found']}.")


def _add_level_figures(doc: Document, figures: Path, label: str, perturb: pd.DataFrame,
                       masks: bool) -> None:
    """One figure per group of families drawn against their level (photometric changes; shift;
    scale), as `equiseg.analysis.families` groups them."""
    caption = "IoU against masks (top) and consistency IoU (bottom)" if masks \
        else "Consistency IoU"
    for figure, families in curve_figures().items():
        path = level_figure({label: perturb}, [f.name for f in families],
                            figures / f"{figure}.png")
        if path is None:
            continue
        if all(not f.geometric for f in families):
            doc.heading("Photometric changes")
            doc.figure(path, f"{caption} per level, mean ± std over images.")
            continue
        doc.heading(" and ".join(f.plot.title for f in families).capitalize())
        doc.figure(path, f"{caption} against the {', '.join(f.plot.axis for f in families)}, "
                         "the perturbation undone on the prediction and scored where the round "
                         "trip kept the image's own content; mean ± std over images.")


def _add_rotation_figures(doc: Document, figures: Path, label: str, frame: pd.DataFrame,
                          rotation: pd.DataFrame, symmetrized: pd.DataFrame | None) -> None:
    """Consistency, dB and (with masks) accuracy against the angle, the symmetrized model's
    curve beside the model's."""
    curves = {label: rotation}
    if symmetrized is not None and (symmetrized["perturbation"] == "rotate").any():
        curves[f"{label} symmetrized"] = rotation_table(symmetrized)
    doc.heading("Rotations")
    doc.figure(angle_figure(curves, "set_iou_consistency_mean",
                            figures / "rotation_consistency.png", "consistency IoU",
                            "Consistency under rotation", std_column="set_iou_consistency_std",
                            min_column="set_iou_consistency_min", clip=(0.0, 1.0)),
               "Consistency IoU against rotation angle: mean over images, ± std, and the "
               "worst image (dashed).")
    doc.figure(angle_figure(curves, "set_psnr_db_pooled", figures / "rotation_psnr.png",
                            "PSNR (dB, pooled)", "Equivariance error in decibels"),
               "PSNR between de-rotated and direct probability maps, squared differences "
               "pooled over images (higher is better; 100 dB = identical).")
    if frame["iou_gt"].notna().any():
        doc.figure(angle_figure(curves, "set_iou_gt_mean", figures / "rotation_iou_gt.png",
                                "IoU vs masks", "Accuracy under rotation",
                                std_column="set_iou_gt_std", min_column="set_iou_gt_min",
                                clip=(0.0, 1.0)),
                   "IoU against the given masks at each angle.")


def write_report(folder: Path, frame: pd.DataFrame, summary: dict, worst_rows: list | None, symmetrized: pd.DataFrame | None,
                 rotation: pd.DataFrame | None, perturb: pd.DataFrame) -> None:
    """Figures and the Markdown/HTML report of an audit, inside `folder`; `frame` and
    `symmetrized` are the rows the figures cover (the judgeable images'), `rotation` and
    `perturb` the audit's own rotation and perturbation tables (None: no rotations)."""
    figures = folder / "figures"
    label = model_label(summary["model"])
    doc = Document(f"Equivariance audit: {summary['model']}")
    for warning in _warnings(summary):
        doc.note(warning)
    doc.paragraph(_what_was_audited(summary))
    doc.heading("Findings")
    doc.paragraph(_findings(summary))
    doc.table(_perturbation_table(summary))
    doc.paragraph(
        "*Consistency IoU*: IoU between the prediction on the perturbed image (the perturbation "
        "undone on the output where it moves pixels) and the prediction on the original, inside "
        "the region both saw; 1.0 = perfectly equivariant (invariant for photometric changes). "
        "*mean dB*: mean over images of each image's PSNR between the two probability maps; "
        "*pooled dB*: PSNR of the squared differences pooled over all images (StyleGAN3's EQ-R); "
        "identical maps score the cap, 100 dB. *Spread*: max - min of the mean consistency over "
        "the levels that change the image. *Exact*: every raw output (logits) within "
        "atol + rtol x its largest magnitude, for every image the figures cover (the judgeable "
        "ones, unless --allow-degenerate).")
    if symmetrized is not None:
        doc.heading("Symmetrized model")
        doc.paragraph(f"`equiseg.symmetrize(model, '{summary['symmetrized']['group']}')` averages "
                      "the model's raw outputs over the group, each undone by its inverse "
                      "transform: exactly equivariant by construction, at |G| times the cost.")
        doc.table(_comparison_table(summary))
    if rotation is not None:
        _add_rotation_figures(doc, figures, label, frame, rotation, symmetrized)
    _add_level_figures(doc, figures, label, perturb, bool(summary["settings"]["masks"]))
    if worst_rows:
        doc.heading("Least consistent images")
        truth = ", and the ground truth for images with a mask" if summary["settings"]["masks"] \
            else ""
        doc.figure(write_grid(figures / "worst_images.png", worst_rows),
                   "Each row: an image, its prediction, its least consistent perturbation with "
                   f"the prediction on it, and that prediction with the perturbation undone{truth}.")
    doc.heading("Files")
    doc.paragraph("`results.csv`: one row per image, perturbation and level, with whether the "
                  "image is judgeable (`judgeable`, `not_judgeable_reason`); `rotation.csv` and "
                  "`perturb.csv`: statistics over images per level; `summary.json`: the "
                  "figures above; `figures/`: the PNGs; `.equiseg-audit.json`: the list of "
                  "files this audit wrote (so a later audit may replace them).")
    doc.write(folder / "report.md", folder / "report.html")
