"""An audit's output folder: what `equiseg audit --out` and `AuditResult.write` write, and the
rule that keeps it safe.

Written into a temporary folder renamed onto `out` at the very end (nothing half-written):

- `results.csv`: tidy, one row per image, perturbation and level (see `equiseg.analysis.sweep`),
  with `degenerate` / `degenerate_reason` per row and `judgeable` / `not_judgeable_reason` per
  image; `results_symmetrized.csv` likewise with `symmetrize`;
- `rotation.csv`, `perturb.csv`: the set statistics in the pipeline's formats;
- `summary.json`: see `equiseg.audit.run`;
- `figures/*.png` and `report.md` / `report.html` (self-contained), with the worst images shown;
- `.equiseg-audit.json`: the list of the files above. `out` is replaced only when it is absent,
  empty, or holds exactly the files its own list names, so an audit never deletes a file it did
  not write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from equiseg.analysis.perturbations import IDENTITY, Perturbation, restore
from equiseg.analysis.set_tables import identity_rows, perturbation_table, rotation_table
from equiseg.analysis.sweep import sweep_image
from equiseg.audit.options import version
from equiseg.audit.report import write_report
from equiseg.errors import EquisegError
from equiseg.io import atomic_dir, write_csv, write_json
from equiseg.report.overlays import labels_from_probs, paint, to_rgb

if TYPE_CHECKING:
    from equiseg.audit.result import AuditResult

SUMMARY_FILE = "summary.json"
MANIFEST_FILE = ".equiseg-audit.json"


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


def _write_manifest(folder: Path) -> None:
    files = [name for name in _files_below(folder) if name != MANIFEST_FILE]
    write_json(folder / MANIFEST_FILE, {"written_by": "equiseg audit", "version": version(),
                                        "files": files})


def write_audit(out: Path, result: AuditResult) -> Path:
    """Write the audit into `out` (see the module's docstring); returns `out`."""
    check_out(out)
    scored, summary = result.scored, result.summary
    with atomic_dir(out) as tmp:
        write_csv(tmp / "results.csv", result.frame)
        if result.symmetrized_frame is not None:
            write_csv(tmp / "results_symmetrized.csv", result.symmetrized_frame)
        # tables, curves and worst cases over the images the figures cover (the judgeable ones)
        rotation = rotation_table(scored) if (scored["perturbation"] == "rotate").any() else None
        perturb = perturbation_table(scored)
        if rotation is not None:
            write_csv(tmp / "rotation.csv", rotation)
        write_csv(tmp / "perturb.csv", perturb)
        write_json(tmp / SUMMARY_FILE, summary)
        worst = worst_cases(scored, summary)
        panels = worst_panels(result, worst) if worst else None
        write_report(tmp, scored, summary, panels, result.symmetrized_scored, rotation, perturb)
        _write_manifest(tmp)
    return out


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


def worst_panels(result: AuditResult, cases: list[tuple[str, Perturbation]]) -> list[list[tuple]]:
    """Re-predict the worst cases (two forward passes each) and draw them as panels; a ground
    truth panel only for images that have a mask."""
    options, rows = result.options, []
    with torch.inference_mode():
        for name, perturbation in cases:
            item = result.images.load(name)
            if item is None:
                continue
            item = item.to(options.device or "cpu")
            _, kept = sweep_image(result.predictor, item, [IDENTITY, perturbation],
                                  options.batch_size, keep=True)
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
