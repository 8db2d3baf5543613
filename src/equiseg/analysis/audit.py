"""`equiseg audit`: the pipeline's equivariance analysis on any model and any folder of images.

Runs `equiseg.analysis.sweep` (the same code as the rotation_sweep stage), summarises it with
`equiseg.analysis.summary.summarize` (the stage's summary too), and writes, into a temporary folder
renamed onto `out` at the very end (nothing half-written):

- `results.csv`: tidy, one row per image, perturbation and level (see `equiseg.analysis.sweep`),
  with `degenerate` / `degenerate_reason` per row;
- `rotation.csv`, `perturb.csv`: the set statistics in the pipeline's formats;
- `summary.json`: per perturbation the worst level, the spread over levels, exactness at
  90-degree multiples and for flips, the least consistent images, degenerate images, what was
  loaded (`weights_loaded`), how the output was read (`output`), and with `symmetrize` the same
  figures for the symmetrized model (`symmetrized`, and `results_symmetrized.csv`);
- `figures/*.png` and `report.md` / `report.html` (self-contained), with the worst images shown;
- `.equiseg-audit.json`: the list of the files above. `out` is replaced only when it is absent,
  empty, or holds exactly the files its own list names, so an audit never deletes a file it did
  not write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from equiseg.analysis.adapters import AdaptedModel, OutputAdapter
from equiseg.analysis.inputs import ImageFile, folder_images, load_image, pair_files, spread_indices
from equiseg.analysis.model_loading import LoadedModel, load_model_info
from equiseg.analysis.perturbations import (
    FAMILIES,
    IDENTITY,
    Perturbation,
    build_perturbations,
    restore,
)
from equiseg.analysis.summary import (
    GATE_METRICS,
    GATE_NEEDS,
    gate_value,
    identity_rows,
    perturbation_table,
    rotation_table,
    summarize,
)
from equiseg.analysis.sweep import Predictor, make_predictor, run_sweep, sweep_image
from equiseg.config import SweepConfig
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.errors import EquisegError
from equiseg.io import atomic_dir, write_csv, write_json
from equiseg.report import Document
from equiseg.report.figures import angle_figure, photometric_figure
from equiseg.report.findings import symmetry_sentences
from equiseg.report.overlays import labels_from_probs, paint, to_rgb, write_grid

SUMMARY_FILE = "summary.json"
MANIFEST_FILE = ".equiseg-audit.json"
EXACT_GROUPS = ("p4", "p4m")  # --require-exact: rotations by 90 degrees; and the flips


@dataclass(frozen=True)
class AuditOptions:
    """Everything `equiseg audit` was asked to do (the command line, parsed)."""

    model: str
    images: Path
    out: Path
    weights: Path | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    masks: Path | None = None
    perturb: tuple[str, ...] = FAMILIES
    angle_step: float = 5.0
    brightness: tuple[float, ...] = ()
    contrast: tuple[float, ...] = ()
    noise: tuple[float, ...] = ()
    size: int = 0
    pad_size: int = 0
    multiple: int = 16
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    output: str = "logits"
    output_key: str | None = None
    upsample: bool = False
    classes: int = 1
    foreground_classes: tuple[int, ...] | None = None
    batch_size: int = 16
    device: str = "cpu"
    channels_last: bool = False
    max_images: int = 0
    atol: float = SweepConfig.exact_atol
    rtol: float = SweepConfig.exact_rtol
    worst: int = 3
    symmetrize: str | None = None
    fail_under: tuple[tuple[str, float], ...] = ()
    require_exact: str | None = None


# -- the output folder: never delete what this command did not write ------------------------------

def _files_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def check_out(out: Path) -> None:
    """Refuse an `out` that is not absent, empty, or exactly an earlier audit's own files."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise EquisegError(f"--out {out}: exists and is not a folder; pass a new or empty folder")
    found = _files_below(out)
    if not found:
        return
    manifest = out / MANIFEST_FILE
    if not manifest.is_file():
        raise EquisegError(f"--out {out}: holds files equiseg audit did not write (e.g. "
                           f"{found[0]}); pass a new or empty folder")
    try:
        listed = set(json.loads(manifest.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise EquisegError(f"--out {out}: its {MANIFEST_FILE} cannot be read; pass a new or "
                           "empty folder") from None
    extra = [name for name in found if name not in listed and name != MANIFEST_FILE]
    parents = {str(parent) for name in listed for parent in Path(name).parents}
    extra += sorted(str(p.relative_to(out)) for p in out.rglob("*")
                    if p.is_dir() and str(p.relative_to(out)) not in parents)
    if extra:
        raise EquisegError(f"--out {out}: holds {extra[0]}, which the earlier audit there did "
                           "not write; move it away or pass a new or empty folder")


def _write_manifest(folder: Path, version: str) -> None:
    files = [name for name in _files_below(folder) if name != MANIFEST_FILE]
    write_json(folder / MANIFEST_FILE, {"written_by": "equiseg audit", "version": version,
                                        "files": files})


def _version() -> str:
    from equiseg import __version__

    return __version__


# -- checks made before any work ------------------------------------------------------------------

def check_gates(options: AuditOptions) -> None:
    """Gates name known figures that this audit's perturbations and masks can produce."""
    for name, _ in options.fail_under:
        if name not in GATE_METRICS:
            raise EquisegError(f"--fail-under {name}: unknown figure; choose from "
                               f"{', '.join(GATE_METRICS)}")
        needs = GATE_NEEDS[name]
        if not any(family in options.perturb for family in needs.split(", ")
                   for family in family.split(" or ")):
            raise EquisegError(f"--fail-under {name}: needs --perturb with {needs}")
        if name == "iou_gt" and options.masks is None:
            raise EquisegError("--fail-under iou_gt: needs --masks")
    if options.require_exact is not None:
        if options.require_exact not in EXACT_GROUPS:
            raise EquisegError(f"--require-exact {options.require_exact}: choose p4 (rotations "
                               "by 90 degrees) or p4m (and flips)")
        needed = ["rotate"] + (["flip"] if options.require_exact == "p4m" else [])
        missing = [family for family in needed if family not in options.perturb]
        if missing:
            raise EquisegError(f"--require-exact {options.require_exact}: needs --perturb with "
                               f"{' and '.join(missing)}")
        angles = [p.level for p in build_perturbations(["rotate"], options.angle_step)]
        if not any(angle % 90 == 0 and angle % 360 for angle in angles):
            raise EquisegError(f"--require-exact: --angle-step {options.angle_step:g} never "
                               "lands on 90 degrees; use a divisor of 90")


def gate_failures(summary: dict, options: AuditOptions) -> list[str]:
    """What a CI gate found wrong, one phrase each (empty: the gate passes)."""
    failures = []
    for name, threshold in options.fail_under:
        value = gate_value(summary, name)
        if value is None:
            failures.append(f"{name} could not be measured")
        elif value < threshold:
            failures.append(f"{name} {value:.4f} < {threshold:g}")
    if options.require_exact is not None:
        found = summary["perturbations"]
        rotate = found.get("rotate", {})
        if not rotate.get("exact_at_90_multiples"):
            failures.append("not exact at 90-degree multiples (largest relative raw difference "
                            f"{_fmt(rotate.get('max_rel_diff_raw_at_90_multiples'), '.2e')})")
        if options.require_exact == "p4m":
            for flip in ("flip_h", "flip_v"):
                if not found.get(flip, {}).get("exact"):
                    failures.append(f"{flip} not exact")
    return failures


# -- the audit ------------------------------------------------------------------------------------

def _predictor(loaded: LoadedModel, options: AuditOptions) -> Predictor:
    return make_predictor(loaded.module, options.mean, options.std, options.output,
                          options.classes, options.channels_last, options.output_key,
                          options.upsample, options.foreground_classes)


def _symmetrized_predictor(loaded: LoadedModel, options: AuditOptions) -> Predictor:
    from equiseg.nn.symmetrize import symmetrize

    adapted = AdaptedModel(loaded.module, OutputAdapter(options.output_key, options.upsample))
    return make_predictor(symmetrize(adapted, options.symmetrize), options.mean, options.std,
                          options.output, options.classes, options.channels_last,
                          foreground_classes=options.foreground_classes)


def _timed_sweep(predict: Predictor, entries: Sequence[ImageFile], perturbations: list,
                 options: AuditOptions) -> tuple[pd.DataFrame, float]:
    images = folder_images(entries, _mask_classes(options), options.size, options.pad_size,
                           options.multiple)
    start = time.perf_counter()
    frame = run_sweep(predict, images, perturbations, options.batch_size, options.device).frame
    return frame, time.perf_counter() - start


def _mask_classes(options: AuditOptions) -> int:
    """Masks are binary when foreground classes reduce the model to one channel."""
    return 1 if options.foreground_classes else options.classes


def run_audit(options: AuditOptions) -> dict:
    """Audit the model on the folder; returns the summary also written to `summary.json`."""
    check_out(options.out)
    perturbations = build_perturbations(options.perturb, options.angle_step, options.brightness,
                                        options.contrast, options.noise)
    check_gates(options)
    if len(options.mean) != len(options.std):
        raise EquisegError(f"--mean has {len(options.mean)} values but --std has "
                           f"{len(options.std)}; give one of each per input channel")
    entries = pair_files(options.images, options.masks)
    entries = [entries[i] for i in spread_indices(len(entries), options.max_images, 0)]
    loaded = load_model_info(options.model, options.weights, options.device,
                             options.model_kwargs, options.seed)
    predict = _predictor(loaded, options)
    frame, seconds = _timed_sweep(predict, entries, perturbations, options)
    if frame.empty:
        raise EquisegError(f"{options.images}: no image could be decoded; pass a folder of "
                           "readable PNG or JPEG files")
    summary = summarize(frame, options.atol, options.rtol, options.worst)
    summary.update(_run_facts(options, loaded, predict, seconds, summary["images"]))
    sym_frame = None
    if options.symmetrize:
        sym_predict = _symmetrized_predictor(loaded, options)
        sym_frame, sym_seconds = _timed_sweep(sym_predict, entries, perturbations, options)
        sym = summarize(sym_frame, options.atol, options.rtol, options.worst)
        summary["symmetrized"] = {
            "group": options.symmetrize, "seconds": round(sym_seconds, 3),
            "images_per_second": round(sym["images"] / sym_seconds, 4),
            "degenerate_images": sym["degenerate_images"],
            "perturbations": sym["perturbations"]}
    with atomic_dir(options.out) as tmp:
        write_csv(tmp / "results.csv", frame)
        if sym_frame is not None:
            write_csv(tmp / "results_symmetrized.csv", sym_frame)
        if (frame["perturbation"] == "rotate").any():
            write_csv(tmp / "rotation.csv", rotation_table(frame))
        write_csv(tmp / "perturb.csv", perturbation_table(frame))
        write_json(tmp / SUMMARY_FILE, summary)
        worst = worst_cases(frame, summary)
        panels = _worst_panels(predict, entries, worst, options) if worst else None
        write_report(tmp, frame, summary, options, panels, sym_frame)
        _write_manifest(tmp, _version())
    return summary


def _run_facts(options: AuditOptions, loaded: LoadedModel, predict: Predictor, seconds: float,
               images: int) -> dict:
    return {
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 4) if seconds > 0 else None,
        "model": options.model,
        "model_kind": loaded.kind,
        "weights_loaded": loaded.weights_loaded,
        "weights": None if options.weights is None else str(options.weights),
        "model_kwargs": dict(options.model_kwargs),
        "seed": options.seed,
        "output": {"kind": options.output, "classes": options.classes,
                   "foreground_classes": None if options.foreground_classes is None
                   else list(options.foreground_classes), **predict.adapter.describe()},
        "device": str(options.device),
        "version": _version(),
    }


def worst_cases(frame: pd.DataFrame, summary: dict) -> list[tuple[str, Perturbation]]:
    """The least consistent images, each with its own least consistent perturbation (never one
    that changes nothing)."""
    cases = []
    for entry in summary["least_consistent_images"]:
        rows = frame[(frame["image"] == entry["image"]) & ~identity_rows(frame)]
        if rows.empty:
            continue
        row = rows.loc[rows["iou_consistency"].idxmin()]
        cases.append((entry["image"], Perturbation(row["perturbation"], float(row["level"]))))
    return cases


def _worst_panels(predict: Predictor, entries: Sequence[ImageFile],
                  cases: list[tuple[str, Perturbation]],
                  options: AuditOptions) -> list[list[tuple]]:
    """Re-predict the worst cases (two forward passes each) and draw them as panels; a ground
    truth panel only for images that have a mask."""
    by_name = {entry.name: entry for entry in entries}
    rows = []
    with torch.inference_mode():
        for name, perturbation in cases:
            item = load_image(by_name[name], _mask_classes(options), options.size,
                              options.pad_size, options.multiple).to(options.device)
            _, kept = sweep_image(predict, item, [IDENTITY, perturbation], options.batch_size,
                                  keep=True)
            restored = restore([perturbation], kept.probs[1:])[0]
            label = f"{perturbation.name} {perturbation.level:g}"
            inside = item.footprint[0].cpu()  # paint only the image, not the padding
            image = item.image.cpu()
            row = [(to_rgb(image), name),
                   (paint(image, labels_from_probs(kept.reference) * inside), "prediction"),
                   (paint(kept.inputs[1], labels_from_probs(kept.probs[1])), label),
                   (paint(image, labels_from_probs(restored) * inside), f"{label}, undone")]
            if item.target is not None:
                row.append((paint(image, item.target[0].long().cpu()), "ground truth"))
            rows.append(row)
    return rows


# -- the report -----------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _exact_text(entry: dict) -> str:
    exact = entry.get("exact_at_90_multiples", entry.get("exact"))
    return "" if exact is None else ("yes" if exact else "no")


def _perturbation_table(summary: dict) -> pd.DataFrame:
    rows = []
    for name, entry in summary["perturbations"].items():
        rows.append({"perturbation": name, "worst level": entry["worst_level"],
                     "worst consistency IoU": entry["worst_consistency_iou"],
                     "spread": entry["consistency_iou_spread"],
                     "mean consistency IoU": entry["mean_consistency_iou"],
                     "mean abs diff": entry["mean_mad"], "mean dB": entry["mean_psnr_db"],
                     "pooled dB": entry["pooled_psnr_db"],
                     "mean IoU vs masks": entry["mean_iou_gt"],
                     "exact": _exact_text(entry)})
    return pd.DataFrame(rows)


def _warnings(summary: dict, options: AuditOptions) -> list[str]:
    """What a reader must know before trusting any number below."""
    lines = []
    if not summary["weights_loaded"]:
        lines.append(f"**No weights were loaded**: `{options.model}` was built by its factory "
                     f"with random initial weights (seed {summary['seed']}); these numbers "
                     "describe an untrained network. Pass `--weights FILE` to audit a trained one.")
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


def _findings(summary: dict) -> str:
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
                     f"{_fmt(rotate['max_rel_diff_raw_at_90_multiples'], '.2e')}; tolerance "
                     f"atol {summary['atol']:g} + rtol {summary['rtol']:g} x scale; largest "
                     f"probability difference {rotate['max_abs_diff_at_90_multiples']:.2e}).")
    if "rotate" in found and found["rotate"]["worst_level"] is not None:
        rotate = found["rotate"]
        lines.append(f"- Worst rotation: {rotate['worst_level']:g} degrees, mean consistency IoU "
                     f"{rotate['worst_consistency_iou']:.3f}; spread over angles "
                     f"{rotate['consistency_iou_spread']:.3f}.")
    for flip in ("flip_h", "flip_v"):
        if flip in found:
            entry = found[flip]
            lines.append(f"- {flip}: consistency IoU {_fmt(entry['worst_consistency_iou'])}, "
                         f"{'exact' if entry['exact'] else 'not exact'} "
                         f"(largest probability difference {entry['max_abs_diff']:.2e}).")
    for name in ("brightness", "contrast", "noise"):
        if name in found and found[name]["worst_level"] is not None:
            entry = found[name]
            lines.append(f"- {name}: worst level {entry['worst_level']:g}, consistency IoU "
                         f"{entry['worst_consistency_iou']:.3f}.")
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
                     "exact at 90s": _exact_text(rotate) if rotate else "",
                     "mean IoU vs masks": rotate.get("mean_iou_gt"),
                     "images/s": ips})
    return pd.DataFrame(rows)


def write_report(folder: Path, frame: pd.DataFrame, summary: dict, options: AuditOptions,
                 worst_rows: list | None, symmetrized: pd.DataFrame | None = None) -> None:
    """Figures and the Markdown/HTML report of an audit, inside `folder`."""
    figures = folder / "figures"
    label = Path(options.model.split(":")[0]).stem or "model"
    doc = Document(f"Equivariance audit: {options.model}")
    for warning in _warnings(summary, options):
        doc.note(warning)
    doc.paragraph(
        f"{summary['images']} image(s) from `{options.images}`"
        + (f" with masks from `{options.masks}`" if options.masks else " (no masks)")
        + f"; {frame.groupby(['perturbation', 'level'], sort=False).ngroups} perturbation levels; "
        f"{summary['images_per_second']:.2f} images/s on {options.device}; output read as "
        f"{summary['output']['found']}.")
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
        "atol + rtol x its largest magnitude, for every image.")
    if symmetrized is not None:
        doc.heading("Symmetrized model")
        doc.paragraph(f"`equiseg.symmetrize(model, '{summary['symmetrized']['group']}')` averages "
                      "the model's raw outputs over the group, each undone by its inverse "
                      "transform: exactly equivariant by construction, at |G| times the cost.")
        doc.table(_comparison_table(summary))
    if (frame["perturbation"] == "rotate").any():
        curves = {label: rotation_table(frame)}
        if symmetrized is not None:
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
    photometric = photometric_figure({label: perturbation_table(frame)},
                                     figures / "photometric.png")
    if photometric is not None:
        doc.heading("Photometric changes")
        caption = "IoU against masks (top) and consistency IoU (bottom)" if options.masks \
            else "Consistency IoU"
        doc.figure(photometric, f"{caption} per level, mean ± std over images.")
    if worst_rows:
        doc.heading("Least consistent images")
        truth = ", and the ground truth for images with a mask" if options.masks else ""
        doc.figure(write_grid(figures / "worst_images.png", worst_rows),
                   "Each row: an image, its prediction, its least consistent perturbation with "
                   f"the prediction on it, and that prediction with the perturbation undone{truth}.")
    doc.heading("Files")
    doc.paragraph("`results.csv`: one row per image, perturbation and level; `rotation.csv` and "
                  "`perturb.csv`: statistics over images per level; `summary.json`: the "
                  "figures above; `figures/`: the PNGs; `.equiseg-audit.json`: the list of "
                  "files this audit wrote (so a later audit may replace them).")
    doc.write(folder / "report.md", folder / "report.html")
