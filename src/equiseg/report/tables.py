"""The report's tables as DataFrames, each with the rule that bolds its best values.

Every figure is the mean over the run's seeds; its sample sd over seeds sits in a hidden column
named by `SPREAD` (shown as `mean ± sd` by `Document.table(spread=...)`, nothing for one seed)
and `n` counts the seeds. Column names say which rot90 protocol a validation figure was
measured under: both protocols are expectations over the draw of turns (`protocol_name`), and
the seed's single draw stands beside them.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.convergence import converged, last_quarter_gain
from equiseg.analysis.exactness import FLIPS
from equiseg.analysis.families import family_of
from equiseg.analysis.replicates import SD_SUFFIX, replicate_stats
from equiseg.analysis.summary import FLIP_CONSISTENCY
from equiseg.report.run_results import RunResults

QUARTER_TURNS = (("0°", "rot0_val_iou"), ("90°", "rot90_val_iou"), ("180°", "rot180_val_iou"),
                 ("270°", "rot270_val_iou"))
EQUIVARIANCE_FORMATS = {"pooled dB off grid": ".1f"}


PROTOCOL_NAMES = {"uniform": "uniform 90° turns", "seed": "seed's RandomRotate90"}
# (shown name, column) of the validation IoU under each protocol, expected over the draw
VALIDATION_PROTOCOLS = [(f"val IoU ({PROTOCOL_NAMES['uniform']})", "val_iou"),
                        (f"val IoU ({PROTOCOL_NAMES['seed']})", "val_iou_seed")]


def _ids(run: RunResults, n: object) -> dict:
    return {"model": run.model, "augmentation": run.augment, "n": int(n)}


def _shown(member: str) -> str:
    """A perturbation's name as a column heading shows it (`flip-h`)."""
    return member.replace("_", "-")


def _pick(stats: pd.Series, pairs: list[tuple[str, str]]) -> dict:
    """{shown name: mean, shown name + SD_SUFFIX: sd} for (shown name, statistic) pairs."""
    row = {}
    for shown, source in pairs:
        row[shown] = stats.get(source, float("nan"))
        row[shown + SD_SUFFIX] = stats.get(source + SD_SUFFIX, float("nan"))
    return row


def spread(frame: pd.DataFrame) -> dict[str, str]:
    """`Document.table(spread=...)` for a frame of this module: each figure -> its sd column."""
    return {c: c + SD_SUFFIX for c in frame.columns if c + SD_SUFFIX in frame.columns}


def seed_final_epoch_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict] | None:
    """The seed's table, the seed's quantities: train IoU and loss are the running values over
    the last epoch's augmented training batches (train mode), validation after that epoch under
    each protocol."""
    rows = []
    for run in runs:
        stats = run.final_epoch
        if stats is None:
            continue
        rows.append({**_ids(run, stats["n"]), **_pick(stats, [
            ("train IoU (last epoch, augmented)", "train_iou"),
            ("train loss (last epoch, augmented)", "train_loss"),
            *VALIDATION_PROTOCOLS, ("val loss (4 turns)", "val_loss")])})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    best = {c: ("max" if "IoU" in c else "min") for c in spread(frame)}
    return frame, best


def eval_mode_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict]:
    """The final models re-scored by the evaluate stage: eval mode, fp32, training images
    without augmentation, validation under each protocol (expected) and the seed's single draw."""
    rows = []
    for run in runs:
        stats = run.evaluated
        rows.append({**_ids(run, stats["n"]), **_pick(stats, [
            ("train IoU (eval mode, unaugmented)", "train_iou"),
            ("train loss (eval mode, unaugmented)", "train_loss"),
            *VALIDATION_PROTOCOLS, ("val IoU (seed's single draw)", "val_iou_seed_draw"),
            ("val loss (4 turns)", "val_loss")])})
    frame = pd.DataFrame(rows)
    return frame, {c: ("max" if "IoU" in c else "min") for c in spread(frame)}


def quarter_turn_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict]:
    """Validation IoU under each protocol and with every image turned by 0, 90, 180, 270
    degrees, and the spread (max - min) of those four per seed."""
    rows = []
    for run in runs:
        stats = run.evaluated
        rows.append({**_ids(run, stats["n"]),
                     **_pick(stats, [*VALIDATION_PROTOCOLS, *QUARTER_TURNS,
                                     ("spread", "val_iou_turn_spread")])})
    frame = pd.DataFrame(rows)
    return frame, {c: ("min" if c == "spread" else "max") for c in spread(frame)}


def convergence_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict]:
    """Each run's validation IoU after its last epoch and its gain over the last quarter of its
    epochs under both protocols (per seed, then over seeds), with the verdict on the mean."""
    rows = []
    for run in runs:
        if not run.train_curves:
            continue
        gains = pd.DataFrame([{column: last_quarter_gain(curve[column].tolist())
                               for column in ("val_iou", "val_iou_seed") if column in curve}
                              for curve in run.train_curves.values()])
        stats = replicate_stats(gains).iloc[0]
        verdict = converged(float(stats["val_iou"]))
        rows.append({**_ids(run, stats["n"]), "epochs": len(next(iter(run.train_curves.values()))),
                     **_pick(stats, [("gain, last quarter (uniform turns)", "val_iou"),
                                     ("gain, last quarter (seed's RandomRotate90)", "val_iou_seed")]),
                     "verdict": {True: "converged", False: "still learning",
                                 None: "cannot tell"}[verdict]})
    return pd.DataFrame(rows), {}


def equivariance_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict] | None:
    """Exactness (every seed) and the rotation and flip figures of the sweep, over seeds."""
    rows = []
    for run in runs:
        stats = run.equivariant
        if stats is None:
            continue
        rows.append({**_ids(run, stats["n"]),
                     "exact at 90° multiples": bool(stats["exact_at_90_multiples"]),
                     **_pick(stats, [
                         ("consistency IoU at 90° multiples", "consistency_iou_at_90_multiples"),
                         ("consistency IoU off grid", "consistency_iou_off_grid"),
                         ("pooled dB off grid", "psnr_db_pooled_off_grid"),
                         ("worst-angle IoU", "worst_angle_iou"), ("IoU spread", "iou_spread"),
                         *[(f"{_shown(flip)} consistency", column)
                           for flip, column in FLIP_CONSISTENCY.items()]])})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    return frame, {c: ("min" if c == "IoU spread" else "max") for c in spread(frame)}


def flip_table(runs: list[RunResults]) -> tuple[pd.DataFrame, dict] | None:
    """Validation-set IoU against ground truth and consistency IoU under each mirror flip."""
    rows = []
    for run in runs:
        if run.perturb is None:
            continue
        flips = run.perturb.set_index("perturbation")
        row = _ids(run, run.perturb["n"].max())
        for flip in FLIPS:
            stats = flips.loc[flip] if flip in flips.index else pd.Series(dtype=float)
            if isinstance(stats, pd.DataFrame):
                stats = stats.iloc[0]
            name = _shown(flip)
            row.update(_pick(stats, [(f"{name} IoU", "set_iou_gt_mean"),
                                     (f"{name} consistency", "set_iou_consistency_mean")]))
        rows.append(row)
    frame = pd.DataFrame(rows)
    figures = list(spread(frame)) if rows else []
    if not rows or not frame[figures].notna().any().any():
        return None
    return frame, {c: "max" for c in figures}


def level_table(runs: list[RunResults], member: str) -> tuple[pd.DataFrame, dict] | None:
    """Per run, under one perturbation drawn against its level (shift, scale, ...): the worst
    level (lowest mean consistency IoU over the levels that change the image), its consistency
    and IoU against ground truth, and the mean consistency over those levels."""
    identity = family_of(member).identity
    rows = []
    for run in runs:
        if run.perturb is None:
            continue
        part = run.perturb[(run.perturb["perturbation"] == member)
                           & (run.perturb["level"] != identity)]
        if part.empty or not part["set_iou_consistency_mean"].notna().any():
            continue
        worst = part.loc[part["set_iou_consistency_mean"].idxmin()]
        rows.append({**_ids(run, part["n"].max()), "worst level": float(worst["level"]),
                     **_pick(worst, [("consistency IoU at worst", "set_iou_consistency_mean"),
                                     ("IoU at worst", "set_iou_gt_mean")]),
                     "mean consistency IoU": float(part["set_iou_consistency_mean"].mean())})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    return frame, {c: "max" for c in ("consistency IoU at worst", "IoU at worst",
                                      "mean consistency IoU")}
