"""Everything the pipeline wrote about each trained run, read from the contract's file layout.

Runs come from the params' `models` x `augments`, never from a glob of the output folders, so a
narrowed model list never shows results of models trained earlier. `metrics/summary.json` is the
one required input; any other missing file is listed in `RunResults.missing`, and the report says
so instead of failing or silently leaving it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from equiseg.errors import EquisegError

SUMMARY_KEYS = ("train_iou", "train_loss", "val_iou", "val_loss")
TRAIN_COLUMNS = ("epoch", "train_loss", "train_iou", "val_loss", "val_iou")
ROTATION_COLUMNS = ("angle", "set_iou_gt_mean", "set_iou_gt_std", "set_iou_gt_min",
                    "set_iou_consistency_mean", "set_iou_consistency_std",
                    "set_iou_consistency_min", "set_psnr_db_mean")
PERTURB_COLUMNS = ("perturbation", "level", "set_iou_gt_mean", "set_iou_gt_std",
                   "set_iou_consistency_mean", "set_iou_consistency_std")


@dataclass
class RunResults:
    """One `<model>-<augment>` run: its summary row and whatever else the pipeline wrote."""

    model: str
    augment: str
    summary: dict[str, float]
    train_curve: pd.DataFrame | None = None
    evaluate: dict[str, Any] | None = None
    rotation: pd.DataFrame | None = None
    perturb: pd.DataFrame | None = None
    equivariance: dict[str, Any] | None = None
    gif: Path | None = None
    samples: Path | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model}-{self.augment}"


def read_json(path: Path) -> Any:
    """A JSON file; a broken one is a one-line `EquisegError` naming it."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise EquisegError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); "
                           "rerun the stage that writes it") from None


def read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV that must have `columns`; a missing column is named in the error."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise EquisegError(f"{path}: not a readable CSV ({str(err).splitlines()[0]}); "
                           "rerun the stage that writes it") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EquisegError(f"{path}: missing column(s) {', '.join(missing)}; "
                           "rerun the stage that writes it")
    return frame


def read_summary(root: Path) -> dict[str, dict[str, float]]:
    path = root / "metrics" / "summary.json"
    if not path.is_file():
        raise EquisegError(f"{path}: not found; run the evaluate stage first (dvc repro evaluate)")
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise EquisegError(f"{path}: expected an object keyed by '<model>-<augment>'")
    return summary


def load_run(root: Path, model: str, augment: str, summary: dict[str, dict[str, float]],
             expect_gif: bool = True) -> RunResults:
    """Read one run's files; the summary entry is required, the rest is optional.

    `expect_gif=False` (sweep.gif off) neither looks for the GIF nor lists it as missing.
    """
    label = f"{model}-{augment}"
    summary_path = root / "metrics" / "summary.json"
    if label not in summary:
        raise EquisegError(f"{summary_path}: no entry for '{label}' (models x augments in params); "
                           "run the train and evaluate stages for it")
    row = summary[label]
    absent = [k for k in SUMMARY_KEYS if k not in row]
    if absent:
        raise EquisegError(f"{summary_path}: '{label}' lacks {', '.join(absent)}; "
                           "rerun the evaluate stage")
    run = RunResults(model, augment, {k: float(row[k]) for k in SUMMARY_KEYS})

    def optional(path: Path) -> Path | None:
        if path.is_file():
            return path
        run.missing.append(path.relative_to(root).as_posix())
        return None

    if path := optional(root / "plots" / "train" / f"{label}.csv"):
        run.train_curve = read_csv(path, TRAIN_COLUMNS)
    if path := optional(root / "metrics" / "evaluate" / f"{label}.json"):
        run.evaluate = read_json(path)
    if path := optional(root / "plots" / "rotation" / f"{label}.csv"):
        run.rotation = read_csv(path, ROTATION_COLUMNS).sort_values("angle", ignore_index=True)
    if path := optional(root / "plots" / "perturb" / f"{label}.csv"):
        run.perturb = read_csv(path, PERTURB_COLUMNS)
    if path := optional(root / "metrics" / "equivariance" / f"{label}.json"):
        run.equivariance = read_json(path)
    if expect_gif:
        run.gif = optional(root / "plots" / "rotation" / f"{label}.gif")
    run.samples = optional(root / "plots" / "samples" / f"{label}.png")
    return run


def load_runs(root: str | Path, models: tuple[str, ...], augments: tuple[str, ...],
              expect_gif: bool = True) -> list[RunResults]:
    """All runs of `models` x `augments`, in that order."""
    root = Path(root)
    summary = read_summary(root)
    return [load_run(root, m, a, summary, expect_gif) for m in models for a in augments]


def read_data_info(root: str | Path) -> dict[str, Any]:
    """`metrics/data.json` (source, n_pairs, ...) if the data stages wrote it, else {}."""
    path = Path(root) / "metrics" / "data.json"
    if not path.is_file():
        return {}
    info = read_json(path)
    return info if isinstance(info, dict) else {}
