"""`equiseg audit`: the pipeline's equivariance analysis on any model and any folder of images.

Runs `equiseg.analysis.sweep` (the same code as the rotation_sweep stage), summarises it with
`equiseg.analysis.summary.summarize` (the stage's summary too), and writes, into a temporary folder
renamed onto `out` at the very end (nothing half-written):

- `results.csv`: tidy, one row per image, perturbation and level (see `equiseg.analysis.sweep`),
  with `degenerate` / `degenerate_reason` per row and `judgeable` / `not_judgeable_reason` per
  image;
- `rotation.csv`, `perturb.csv`: the set statistics in the pipeline's formats;
- `summary.json`: per perturbation the worst level, the spread over levels, exactness at
  90-degree multiples and for flips, the least consistent images, degenerate images, what was
  loaded (`weights_loaded`), how the output was read (`output`), and with `symmetrize` the same
  figures for the symmetrized model (`symmetrized`, and `results_symmetrized.csv`);
  the figures cover the judgeable images only (`judgeable_images` of `images`, the `verdict`,
  see `equiseg.analysis.judgeable`), and `outputs_identical_under_group` says, over every
  image, whether the raw outputs are identical under p4 / p4m (a fact, not a pass);
- `figures/*.png` and `report.md` / `report.html` (self-contained), with the worst images shown;
- `.equiseg-audit.json`: the list of the files above. `out` is replaced only when it is absent,
  empty, or holds exactly the files its own list names, so an audit never deletes a file it did
  not write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from equiseg.analysis.adapters import AdaptedModel, OutputAdapter
from equiseg.analysis.inputs import ImageFile, folder_images, load_image, pair_files, spread_indices
from equiseg.analysis.judgeable import (
    judge_frame,
)
from equiseg.analysis.perturbations import (
    IDENTITY,
    Perturbation,
    build_perturbations,
    restore,
)
from equiseg.analysis.summary import (
    identity_rows,
    perturbation_table,
    rotation_table,
    summarize,
)
from equiseg.analysis.sweep import Predictor, make_predictor, run_sweep, sweep_image
from equiseg.audit.gates import check_gates
from equiseg.audit.models import LoadedModel, load_model_info
from equiseg.audit.options import AuditOptions
from equiseg.audit.report import write_report
from equiseg.errors import EquisegError
from equiseg.io import atomic_dir, write_csv, write_json
from equiseg.report.overlays import labels_from_probs, paint, to_rgb

SUMMARY_FILE = "summary.json"
MANIFEST_FILE = ".equiseg-audit.json"
# what summary.json records of the symmetrized model's own summary
SYMMETRIZED_KEYS = ("degenerate_images", "judgeable_images", "not_judgeable_reasons", "verdict",
                    "scored_images", "outputs_identical_under_group", "perturbations")


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
    options.judgeability.validate()
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
    summary = summarize(frame, options.atol, options.rtol, options.worst, options.judgeability)
    summary.update(_run_facts(options, loaded, predict, seconds, summary["images"]))
    frame, scored = _mark_judgeable(frame, options)
    sym_frame = sym_scored = None
    if options.symmetrize:
        sym_predict = _symmetrized_predictor(loaded, options)
        sym_frame, sym_seconds = _timed_sweep(sym_predict, entries, perturbations, options)
        sym = summarize(sym_frame, options.atol, options.rtol, options.worst,
                        options.judgeability)
        summary["symmetrized"] = {
            "group": options.symmetrize, "seconds": round(sym_seconds, 3),
            "images_per_second": round(sym["images"] / sym_seconds, 4),
            **{key: sym[key] for key in SYMMETRIZED_KEYS}}
        sym_frame, sym_scored = _mark_judgeable(sym_frame, options)
    with atomic_dir(options.out) as tmp:
        write_csv(tmp / "results.csv", frame)
        if sym_frame is not None:
            write_csv(tmp / "results_symmetrized.csv", sym_frame)
        # tables, curves and worst cases over the images the figures cover (the judgeable ones)
        rotation = rotation_table(scored) if (scored["perturbation"] == "rotate").any() else None
        perturb = perturbation_table(scored)
        if rotation is not None:
            write_csv(tmp / "rotation.csv", rotation)
        write_csv(tmp / "perturb.csv", perturb)
        write_json(tmp / SUMMARY_FILE, summary)
        worst = worst_cases(scored, summary)
        panels = _worst_panels(predict, entries, worst, options) if worst else None
        write_report(tmp, scored, summary, options, panels, sym_scored, rotation, perturb)
        _write_manifest(tmp, _version())
    return summary


def _mark_judgeable(frame: pd.DataFrame,
                    options: AuditOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every row, with per-image `judgeable` and `not_judgeable_reason` columns for
    results.csv; the rows the figures cover), by `equiseg.analysis.judgeable`."""
    scored, not_judgeable = judge_frame(frame, options.judgeability, options.atol, options.rtol)
    names = frame["image"].astype(str)
    return frame.assign(judgeable=~names.isin(list(not_judgeable)),
                        not_judgeable_reason=[not_judgeable.get(n, "") for n in names]), scored


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
    moved = frame[~identity_rows(frame)]
    for entry in summary["least_consistent_images"]:
        rows = moved[moved["image"] == entry["image"]]
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
