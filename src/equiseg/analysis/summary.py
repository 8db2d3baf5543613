"""The one summary of a sweep: per perturbation its worst level, spread, exactness and means,
and the degenerate predictions (the figures a CI gate tests are read off it in
`equiseg.analysis.gate_figures`).

Both the rotation_sweep stage (`equivariance_summary`) and `equiseg audit` (`summarize`) read
their numbers from here, so the stage and the audit cannot call the same model exact in one place
and not in the other. It reads the per-level statistics of `equiseg.analysis.set_tables`; what
*exact* means is decided in `equiseg.analysis.exactness`.

Decisions made here, once:
- *worst level*: the level that changes the image with the lowest mean over images (consistency
  IoU, or IoU against masks for `worst_iou_gt_level`); a level that changes nothing (angle 0,
  brightness 0, contrast 1, noise 0) is never the worst level.
- *spread*: max - min of the mean consistency IoU over the levels that change the image; of the
  mean IoU against masks over all levels (the upright accuracy is a real point of that curve).
- *exact*: at every rotation by a non-zero multiple of 90 degrees (flips: at the flip).
- *the group's reach* (with the model's `group_turn`): its angles are the multiples of the turn;
  exact there only where every one of them is a quarter turn and was swept, else False if a
  swept quarter turn fails, else None (cannot judge); consistency at its angles off the
  90-degree grid (c8/d8's eighth turns), never called exact, and off its angles.
- *judgeable* (the audit's `summarize(..., judge=...)`): figures, exactness and gates cover
  only the images whose unperturbed prediction can show equivariance (see
  `equiseg.analysis.judgeable`); `outputs_identical_under_group` keeps raw-output exactness over
  every image as a separate fact (true for a constant model). The stage judges every image.
- *dB*: `mean_psnr_db` averages per-image PSNRs, `pooled_psnr_db` pools squared errors (EQ-R);
  see `equiseg.analysis.set_tables`.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.exactness import (
    FLIPS,
    at_quarter_turns,
    exact_at_group_angles,
    exactness,
    in_group,
    outputs_identical_under_group,
)
from equiseg.analysis.judgeable import Judgeability, judge_frame, verdict
from equiseg.analysis.set_tables import identity_rows, pooled_db, set_statistics

# the columns of `equivariance_summary` with each mirror flip's worst consistency IoU
FLIP_CONSISTENCY = {flip: f"{flip}_consistency_iou" for flip in FLIPS}
# what a rotation's figures add when the model's group is known (`_group_figures`)
GROUP_KEYS = ("group_turn", "exact_at_group_angles", "consistency_iou_at_group_angles_off_grid",
              "consistency_iou_off_group_angles")


def _mean_or_none(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else float(values.mean())


def _float_or_none(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _worst(part: pd.DataFrame, column: str) -> pd.Series | None:
    values = part[column].dropna()
    return None if values.empty else part.loc[values.idxmin()]


def _rotation_figures(rows: pd.DataFrame, stats: pd.DataFrame, atol: float, rtol: float) -> dict:
    """Exactness at the quarter turns, and consistency and dB on and off the 90-degree grid."""
    quarter_stats = at_quarter_turns(stats["level"])
    off_grid = ~in_group(stats["level"], 90)
    exact = exactness(rows[at_quarter_turns(rows["level"])], atol, rtol)
    return {
        "exact_at_90_multiples": bool(exact["exact"]),
        "max_abs_diff_at_90_multiples": exact["max_abs_diff"],
        "max_rel_diff_raw_at_90_multiples": exact["max_rel_diff_raw"],
        "consistency_iou_at_90_multiples": _mean_or_none(
            stats.loc[quarter_stats, "set_iou_consistency_mean"]),
        "consistency_iou_off_grid": _mean_or_none(
            stats.loc[off_grid, "set_iou_consistency_mean"]),
        "psnr_db_off_grid": _mean_or_none(stats.loc[off_grid, "set_psnr_db_mean"]),
        "psnr_db_pooled_off_grid": _float_or_none(pooled_db(rows[~in_group(rows["level"], 90)]))
        if off_grid.any() else None,
    }


def _group_figures(rows: pd.DataFrame, stats: pd.DataFrame, atol: float, rtol: float,
                   group_turn: float) -> dict:
    """The model's group's reach: the angles it covers (multiples of `group_turn` degrees),
    exactness there where the grid can verify it, and consistency at its angles off the 90-degree
    grid (c8/d8's eighth turns; judged by consistency only) and off its angles."""
    levels, consistency = stats["level"], stats["set_iou_consistency_mean"]
    own = in_group(levels, group_turn) & ~in_group(levels, 360)
    return {
        "group_turn": float(group_turn),
        "exact_at_group_angles": exact_at_group_angles(rows, group_turn, atol, rtol),
        "consistency_iou_at_group_angles_off_grid": _mean_or_none(
            consistency[own & ~in_group(levels, 90)]),
        "consistency_iou_off_group_angles": _mean_or_none(
            consistency[~in_group(levels, group_turn)]),
    }


def _entry(name: str, rows: pd.DataFrame, stats: pd.DataFrame, atol: float, rtol: float,
           group_turn: float | None = None) -> dict:
    """One perturbation's figures: `rows` are its per-image rows, `stats` its set statistics;
    rotations add their group's reach when `group_turn` names it."""
    moved_stats = stats[~identity_rows(stats)]
    moved_rows = rows[~identity_rows(rows)]
    worst = _worst(moved_stats, "set_iou_consistency_mean")
    worst_gt = _worst(moved_stats, "set_iou_gt_mean")
    consistency = moved_stats["set_iou_consistency_mean"]
    accuracy = stats["set_iou_gt_mean"].dropna()
    entry = {
        "levels": [float(v) for v in stats["level"]],
        "worst_level": None if worst is None else float(worst["level"]),
        "worst_consistency_iou": None if worst is None
        else float(worst["set_iou_consistency_mean"]),
        "consistency_iou_spread": float(consistency.max() - consistency.min())
        if len(consistency) else 0.0,
        "mean_consistency_iou": _mean_or_none(consistency),
        "mean_mad": _mean_or_none(moved_stats["set_mad_mean"]),
        "mean_psnr_db": _mean_or_none(moved_stats["set_psnr_db_mean"]),
        "pooled_psnr_db": _float_or_none(pooled_db(moved_rows)) if len(moved_rows) else None,
        "mean_iou_gt": _mean_or_none(stats["set_iou_gt_mean"]),
        "worst_iou_gt": _float_or_none(stats["set_iou_gt_min"].min()),
        "worst_iou_gt_level": None if worst_gt is None else float(worst_gt["level"]),
        "worst_mean_iou_gt": None if worst_gt is None else float(worst_gt["set_iou_gt_mean"]),
        "iou_gt_spread": float(accuracy.max() - accuracy.min()) if len(accuracy) else None,
    }
    if name == "rotate":
        entry.update(_rotation_figures(rows, stats, atol, rtol))
        if group_turn is not None:
            entry.update(_group_figures(rows, stats, atol, rtol, group_turn))
    elif name in FLIPS:
        exact = exactness(rows, atol, rtol)
        entry.update({"exact": exact["exact"], "max_abs_diff": exact["max_abs_diff"],
                      "max_rel_diff_raw": exact["max_rel_diff_raw"]})
    return entry


def degenerate_images(frame: pd.DataFrame) -> dict[str, str]:
    """Images whose prediction on the unperturbed image is degenerate, with the reason."""
    if "degenerate" not in frame:
        return {}
    reference = frame[identity_rows(frame) & frame["degenerate"].astype(bool)]
    reference = reference.drop_duplicates("image")
    return dict(zip(reference["image"].astype(str), reference["degenerate_reason"].astype(str)))


def _figures(frame: pd.DataFrame, atol: float, rtol: float, worst_images: int,
             group_turn: float | None = None) -> dict:
    """Per perturbation its figures, and the least consistent images, over `frame`'s rows."""
    stats = set_statistics(frame)
    per_perturbation = {}
    for name in stats["perturbation"].unique():
        per_perturbation[str(name)] = _entry(name, frame[frame["perturbation"] == name],
                                             stats[stats["perturbation"] == name], atol, rtol,
                                             group_turn)
    perturbed = frame[~identity_rows(frame)]
    by_image = perturbed.groupby("image", sort=False)["iou_consistency"].mean().sort_values()
    return {"perturbations": per_perturbation,
            "least_consistent_images": [{"image": str(name), "mean_consistency_iou": float(value)}
                                        for name, value in by_image.head(worst_images).items()]}


def _no_figures(frame: pd.DataFrame, atol: float, rtol: float,
                group_turn: float | None = None) -> dict:
    """The figures' keys with no values: nothing could be judged (the levels and the group's
    turn, which are settings, stay)."""
    figures = _figures(frame, atol, rtol, 0, group_turn)
    return {"perturbations": {name: {key: value if key in ("levels", "group_turn") else None
                                     for key, value in entry.items()}
                              for name, entry in figures["perturbations"].items()},
            "least_consistent_images": []}


def _counts(reasons: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in reasons.values():
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _judged_figures(frame: pd.DataFrame, atol: float, rtol: float, worst_images: int,
                    judge: Judgeability, group_turn: float | None = None) -> dict:
    """The figures over the judgeable images only (see `equiseg.analysis.judgeable`), and how
    many there were, the verdict, and the raw outputs' own fact over every image."""
    scored, not_judgeable = judge_frame(frame, judge, atol, rtol)
    images = int(frame["image"].nunique())
    figures = (_figures(scored, atol, rtol, worst_images, group_turn) if len(scored)
               else _no_figures(frame, atol, rtol, group_turn))
    return {
        "judgeable_min_share": judge.min_share,
        "judgeable_max_share": judge.max_share,
        "allow_degenerate": judge.allow_degenerate,
        "judgeable_images": images - len(not_judgeable),
        "not_judgeable_reasons": _counts(not_judgeable),
        "verdict": verdict(images, len(not_judgeable)),
        "scored_images": int(scored["image"].nunique()),
        "outputs_identical_under_group": outputs_identical_under_group(frame, atol, rtol),
        **figures,
    }


def summarize(frame: pd.DataFrame, atol: float, rtol: float, worst_images: int = 3,
              judge: Judgeability | None = None, group_turn: float | None = None) -> dict:
    """The summary of a sweep: per perturbation its figures (see the module's decisions), the
    degenerate images, and the least consistent images.

    With `judge`, the figures cover the judgeable images only and the summary says how many
    there were and gives the verdict ("judged" or "cannot judge"); without it, every image.
    With `group_turn` (`equiseg.nn.groups.group_turn` of the model's group), the rotations add
    the group's reach: `group_turn`, `exact_at_group_angles`,
    `consistency_iou_at_group_angles_off_grid`, `consistency_iou_off_group_angles`.
    """
    degenerate = degenerate_images(frame)
    images = int(frame["image"].nunique())
    summary = {
        "images": images,
        "atol": atol,
        "rtol": rtol,
        "degenerate_images": len(degenerate),
        "degenerate_reasons": _counts(degenerate),
        "mostly_degenerate": bool(images and len(degenerate) > images / 2),
    }
    if judge is None:
        return {**summary, **_figures(frame, atol, rtol, worst_images, group_turn)}
    return {**summary, **_judged_figures(frame, atol, rtol, worst_images, judge, group_turn)}


def equivariance_summary(frame: pd.DataFrame, atol: float, rtol: float,
                         group_turn: float | None = None) -> dict:
    """One seed's row of `plots/equivariance/*.csv` of the rotation_sweep stage (and the source of
    its `metrics/equivariance/*.json`), read off `summarize`.

    worst_angle: the rotation (not 0) with the lowest mean IoU against ground truth (consistency
    IoU when the images have no ground truth); iou_spread: max - min of that mean over angles;
    consistency at 90-degree multiples averages 90, 180 and 270; exact_at_90_multiples: as in
    `summarize` (raw outputs within atol + rtol * scale, every image). The group's reach keys
    (see `summarize`) are None when `group_turn` is not given.
    """
    summary = summarize(frame, atol, rtol, worst_images=0, group_turn=group_turn)
    rotate = summary["perturbations"]["rotate"]
    by_gt = rotate["worst_iou_gt_level"] is not None
    found = summary["perturbations"]
    return {
        "worst_angle": rotate["worst_iou_gt_level"] if by_gt else rotate["worst_level"],
        "worst_angle_iou": rotate["worst_mean_iou_gt"] if by_gt else rotate["worst_consistency_iou"],
        "iou_spread": rotate["iou_gt_spread"] if by_gt else rotate["consistency_iou_spread"],
        "consistency_iou_at_90_multiples": rotate["consistency_iou_at_90_multiples"],
        "consistency_iou_off_grid": rotate["consistency_iou_off_grid"],
        "psnr_db_off_grid": rotate["psnr_db_off_grid"],
        "psnr_db_pooled_off_grid": rotate["psnr_db_pooled_off_grid"],
        "exact_at_90_multiples": rotate["exact_at_90_multiples"],
        **{key: rotate.get(key) for key in GROUP_KEYS},
        **{column: found.get(flip, {}).get("worst_consistency_iou")
           for flip, column in FLIP_CONSISTENCY.items()},
        "degenerate_images": summary["degenerate_images"],
    }
