"""Everything the pipeline wrote about each trained run, read from the contract's file layout.

Runs come from the params' `models` x `augments` (and `seeds`), never from a glob of the output
folders, so a narrowed model list never shows results of models trained earlier.
`plots/evaluate/<run>.csv` (one row per seed) is the one required input; any other missing file
is listed in `RunResults.missing`, and the report says so instead of failing or silently leaving
it out. Figures over seeds come from `equiseg.analysis.replicates`: `<figure>` is the mean over
seeds, `<figure>_sd` the sample sd (NaN for one seed), `n` the number of seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from equiseg.analysis.replicates import replicate_stats, stats_columns
from equiseg.analysis.set_tables import (
    PERTURB_COLUMNS,
    PERTURB_KEYS,
    ROTATION_COLUMNS,
    ROTATION_KEYS,
)
from equiseg.errors import EquisegError
from equiseg.runs import run_name

EVALUATE_COLUMNS = ("seed", "train_loss", "train_iou", "val_loss", "val_iou", "val_iou_seed",
                    "val_iou_seed_draw", "val_iou_uniform_draw", "rot0_val_iou", "rot90_val_iou",
                    "rot180_val_iou", "rot270_val_iou", "val_iou_turn_spread")
TRAIN_COLUMNS = ("epoch", "train_loss", "train_iou", "val_loss", "val_iou", "val_iou_seed")
# The rotation_sweep stage's tables over seeds: `replicate_stats` of one seed's tables (whose
# columns `equiseg.analysis.set_tables` defines), grouped by their keys.
ROTATION_OVER_SEEDS = stats_columns(ROTATION_COLUMNS[len(ROTATION_KEYS):], by=ROTATION_KEYS)
PERTURB_OVER_SEEDS = stats_columns(PERTURB_COLUMNS[len(PERTURB_KEYS):], by=PERTURB_KEYS)
EQUIVARIANCE_COLUMNS = ("seed", "exact_at_90_multiples", "consistency_iou_at_90_multiples",
                        "consistency_iou_off_grid", "psnr_db_pooled_off_grid")


@dataclass
class RunResults:
    """One `<model>-<augment>` run over its seeds: per-seed tables, their statistics over seeds
    (computed once, on first use), and whatever else the pipeline wrote."""

    model: str
    augment: str
    evaluate: pd.DataFrame  # one row per seed, eval-mode figures (plots/evaluate)
    train_curves: dict[int, pd.DataFrame] = field(default_factory=dict)  # seed -> history
    rotation: pd.DataFrame | None = None  # per angle, over seeds
    perturb: pd.DataFrame | None = None  # per perturbation and level, over seeds
    equivariance: pd.DataFrame | None = None  # one row per seed
    gif: Path | None = None
    samples: Path | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return run_name(self.model, self.augment)

    @cached_property
    def evaluated(self) -> pd.Series:
        """Eval-mode figures over seeds (mean, `_sd`, `n`)."""
        return replicate_stats(self.evaluate).iloc[0]

    @cached_property
    def final_epoch(self) -> pd.Series | None:
        """The seed's final-epoch figures over seeds: train_* running over the last epoch's
        augmented batches, val_* after it; None without training curves."""
        if not self.train_curves:
            return None
        last = pd.DataFrame([curve.iloc[-1] for curve in self.train_curves.values()])
        return replicate_stats(last.drop(columns="epoch")).iloc[0]

    @cached_property
    def training(self) -> pd.DataFrame | None:
        """Training curves over seeds, per epoch."""
        if not self.train_curves:
            return None
        return replicate_stats(pd.concat(self.train_curves.values()), by=["epoch"])

    @cached_property
    def equivariant(self) -> pd.Series | None:
        """Equivariance summaries over seeds; `exact_at_90_multiples` is True if every seed is."""
        if self.equivariance is None:
            return None
        stats = replicate_stats(self.equivariance).iloc[0].astype(object)
        stats["exact_at_90_multiples"] = bool(self.equivariance["exact_at_90_multiples"].all())
        return stats


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


def load_run(root: Path, model: str, augment: str, seeds: tuple[int, ...],
             expect_gif: bool = True) -> RunResults:
    """Read one run's files; the evaluate table is required (with a row for every seed), the rest
    is optional. `expect_gif=False` (sweep.gif off) neither looks for the GIF nor lists it."""
    label = run_name(model, augment)
    evaluate_path = root / "plots" / "evaluate" / f"{label}.csv"
    if not evaluate_path.is_file():
        raise EquisegError(f"{evaluate_path}: not found; run the train and evaluate stages for "
                           f"'{label}' (dvc repro evaluate)")
    evaluate = read_csv(evaluate_path, EVALUATE_COLUMNS)
    absent = sorted(set(seeds) - set(evaluate["seed"]))
    if absent:
        raise EquisegError(f"{evaluate_path}: no row for seed(s) {absent} of params' seeds; "
                           "rerun the evaluate stage (dvc repro evaluate)")
    run = RunResults(model, augment, evaluate[evaluate["seed"].isin(seeds)].reset_index(drop=True))

    def optional(path: Path) -> Path | None:
        if path.is_file():
            return path
        run.missing.append(path.relative_to(root).as_posix())
        return None

    for seed in seeds:
        if path := optional(root / "plots" / "train" / f"{run_name(model, augment, seed)}.csv"):
            run.train_curves[seed] = read_csv(path, TRAIN_COLUMNS)
    if path := optional(root / "plots" / "rotation" / f"{label}.csv"):
        run.rotation = read_csv(path, ROTATION_OVER_SEEDS).sort_values("angle", ignore_index=True)
    if path := optional(root / "plots" / "perturb" / f"{label}.csv"):
        run.perturb = read_csv(path, PERTURB_OVER_SEEDS)
    if path := optional(root / "plots" / "equivariance" / f"{label}.csv"):
        run.equivariance = read_csv(path, EQUIVARIANCE_COLUMNS)
    if expect_gif:
        run.gif = optional(root / "plots" / "rotation" / f"{label}.gif")
    run.samples = optional(root / "plots" / "samples" / f"{label}.png")
    return run


def load_runs(root: str | Path, models: tuple[str, ...], augments: tuple[str, ...],
              seeds: tuple[int, ...] = (0,), expect_gif: bool = True) -> list[RunResults]:
    """All runs of `models` x `augments`, in that order, over `seeds`."""
    return [load_run(Path(root), m, a, tuple(seeds), expect_gif) for m in models for a in augments]


def read_data_info(root: str | Path) -> dict[str, Any]:
    """`metrics/data.json` (source, n_pairs, ...) if the data stages wrote it, else {}."""
    path = Path(root) / "metrics" / "data.json"
    if not path.is_file():
        return {}
    info = read_json(path)
    return info if isinstance(info, dict) else {}
