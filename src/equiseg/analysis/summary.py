"""The one summary of a sweep: per perturbation its worst level, spread, exactness and means,
the degenerate predictions, and the named figures a CI gate can test.

Both the rotation_sweep stage (`equivariance_summary`) and `equiseg audit` (`summarize`) read
their numbers from here, so the stage and the audit cannot call the same model exact in one place
and not in the other. The per-level statistics it reads are `equiseg.analysis.set_tables`'; what
*exact* means is `equiseg.analysis.exactness`'.

Decisions made here, once:
- *worst level*: the level that changes the image with the lowest mean over images (consistency
  IoU, or IoU against masks for `worst_iou_gt_level`); a level that changes nothing (angle 0,
  brightness 0, contrast 1, noise 0) is never the worst level.
- *spread*: max - min of the mean consistency IoU over the levels that change the image; of the
  mean IoU against masks over all levels (the upright accuracy is a real point of that curve).
- *exact*: at every rotation by a non-zero multiple of 90 degrees (flips: at the flip).
- *judgeable* (the audit's `summarize(..., judge=...)`): figures, exactness and gates cover
  only the images whose unperturbed prediction can show equivariance (see
  `equiseg.analysis.judgeable`); `outputs_identical_under_group` keeps raw-output exactness over
  every image as a separate fact (true for a constant model). The stage judges every image.
- *dB*: `mean_psnr_db` averages per-image PSNRs, `pooled_psnr_db` pools squared errors (EQ-R);
  see `equiseg.analysis.set_tables`.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from equiseg.analysis.exactness import (
    FLIPS,
    at_quarter_turns,
    exactness,
    outputs_identical_under_group,
)
from equiseg.analysis.families import REGISTRY, member_names
from equiseg.analysis.judgeable import Judgeability, judge_frame, verdict
from equiseg.analysis.set_tables import identity_rows, pooled_db, set_statistics


def _mean_or_none(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else float(values.mean())


def _float_or_none(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _worst(part: pd.DataFrame, column: str) -> pd.Series | None:
    values = part[column].dropna()
    return None if values.empty else part.loc[values.idxmin()]


def _entry(name: str, rows: pd.DataFrame, stats: pd.DataFrame, atol: float, rtol: float) -> dict:
    """One perturbation's figures: `rows` are its per-image rows, `stats` its set statistics."""
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
        quarter_stats = at_quarter_turns(stats["level"])
        off_grid = stats["level"] % 90 != 0
        exact = exactness(rows[at_quarter_turns(rows["level"])], atol, rtol)
        entry.update({
            "exact_at_90_multiples": bool(exact["exact"]),
            "max_abs_diff_at_90_multiples": exact["max_abs_diff"],
            "max_rel_diff_raw_at_90_multiples": exact["max_rel_diff_raw"],
            "consistency_iou_at_90_multiples": _mean_or_none(
                stats.loc[quarter_stats, "set_iou_consistency_mean"]),
            "consistency_iou_off_grid": _mean_or_none(
                stats.loc[off_grid, "set_iou_consistency_mean"]),
            "psnr_db_off_grid": _mean_or_none(stats.loc[off_grid, "set_psnr_db_mean"]),
            "psnr_db_pooled_off_grid": _float_or_none(pooled_db(rows[rows["level"] % 90 != 0]))
            if off_grid.any() else None,
        })
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


def _figures(frame: pd.DataFrame, atol: float, rtol: float, worst_images: int) -> dict:
    """Per perturbation its figures, and the least consistent images, over `frame`'s rows."""
    stats = set_statistics(frame)
    per_perturbation = {}
    for name in stats["perturbation"].unique():
        per_perturbation[str(name)] = _entry(name, frame[frame["perturbation"] == name],
                                             stats[stats["perturbation"] == name], atol, rtol)
    perturbed = frame[~identity_rows(frame)]
    by_image = perturbed.groupby("image", sort=False)["iou_consistency"].mean().sort_values()
    return {"perturbations": per_perturbation,
            "least_consistent_images": [{"image": str(name), "mean_consistency_iou": float(value)}
                                        for name, value in by_image.head(worst_images).items()]}


def _no_figures(frame: pd.DataFrame, atol: float, rtol: float) -> dict:
    """The figures' keys with no values: nothing could be judged (the levels stay)."""
    figures = _figures(frame, atol, rtol, 0)
    return {"perturbations": {name: {key: value if key == "levels" else None
                                     for key, value in entry.items()}
                              for name, entry in figures["perturbations"].items()},
            "least_consistent_images": []}


def _counts(reasons: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in reasons.values():
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _judged_figures(frame: pd.DataFrame, atol: float, rtol: float, worst_images: int,
                    judge: Judgeability) -> dict:
    """The figures over the judgeable images only (see `equiseg.analysis.judgeable`), and how
    many there were, the verdict, and the raw outputs' own fact over every image."""
    scored, not_judgeable = judge_frame(frame, judge, atol, rtol)
    images = int(frame["image"].nunique())
    figures = (_figures(scored, atol, rtol, worst_images) if len(scored)
               else _no_figures(frame, atol, rtol))
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


def summarize(frame: pd.DataFrame, atol: float, rtol: float,
              worst_images: int = 3, judge: Judgeability | None = None) -> dict:
    """The summary of a sweep: per perturbation its figures (see the module's decisions), the
    degenerate images, and the least consistent images.

    With `judge`, the figures cover the judgeable images only and the summary says how many
    there were and gives the verdict ("judged" or "cannot judge"); without it, every image.
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
        return {**summary, **_figures(frame, atol, rtol, worst_images)}
    return {**summary, **_judged_figures(frame, atol, rtol, worst_images, judge)}


def equivariance_summary(frame: pd.DataFrame, atol: float, rtol: float) -> dict:
    """`metrics/equivariance/*.json` of the rotation_sweep stage, read off `summarize`.

    worst_angle: the rotation (not 0) with the lowest mean IoU against ground truth (consistency
    IoU when the images have no ground truth); iou_spread: max - min of that mean over angles;
    consistency at 90-degree multiples averages 90, 180 and 270; exact_at_90_multiples: as in
    `summarize` (raw outputs within atol + rtol * scale, every image).
    """
    summary = summarize(frame, atol, rtol, worst_images=0)
    rotate = summary["perturbations"]["rotate"]
    by_gt = rotate["worst_iou_gt_level"] is not None
    flips = summary["perturbations"]
    return {
        "worst_angle": rotate["worst_iou_gt_level"] if by_gt else rotate["worst_level"],
        "worst_angle_iou": rotate["worst_mean_iou_gt"] if by_gt else rotate["worst_consistency_iou"],
        "iou_spread": rotate["iou_gt_spread"] if by_gt else rotate["consistency_iou_spread"],
        "consistency_iou_at_90_multiples": rotate["consistency_iou_at_90_multiples"],
        "consistency_iou_off_grid": rotate["consistency_iou_off_grid"],
        "psnr_db_off_grid": rotate["psnr_db_off_grid"],
        "psnr_db_pooled_off_grid": rotate["psnr_db_pooled_off_grid"],
        "exact_at_90_multiples": rotate["exact_at_90_multiples"],
        "flip_h_consistency_iou": flips.get("flip_h", {}).get("worst_consistency_iou"),
        "flip_v_consistency_iou": flips.get("flip_v", {}).get("worst_consistency_iou"),
        "degenerate_images": summary["degenerate_images"],
    }


# -- named figures for a CI gate (`equiseg audit --fail-under NAME=VALUE`) --------------------------

def _worst_of(summary: dict, names: tuple[str, ...]) -> float | None:
    values = [summary["perturbations"][n]["worst_consistency_iou"] for n in names
              if n in summary["perturbations"]]
    values = [v for v in values if v is not None]
    return min(values) if values else None


# geometric families drawn as curves against their level (shift, scale): a gate each, by name
_CURVED = tuple(f.name for f in REGISTRY.values() if f.geometric and f.plot.kind == "curve")
GATE_METRICS: dict[str, tuple[str, Callable[[dict], float | None]]] = {
    "consistency": ("worst-rotation mean consistency IoU",
                    lambda s: s["perturbations"].get("rotate", {}).get("worst_consistency_iou")),
    "consistency_90": ("mean consistency IoU at 90, 180 and 270 degrees",
                       lambda s: s["perturbations"].get("rotate", {}).get(
                           "consistency_iou_at_90_multiples")),
    "iou_gt": ("worst-rotation mean IoU against the masks (needs --masks)",
               lambda s: s["perturbations"].get("rotate", {}).get("worst_mean_iou_gt")),
    "psnr_db": ("pooled dB (EQ-R) of the rotations off the 90-degree grid",
                lambda s: s["perturbations"].get("rotate", {}).get("psnr_db_pooled_off_grid")),
    "flip": ("worst flip's mean consistency IoU", lambda s: _worst_of(s, FLIPS)),
    "photometric": ("worst photometric level's mean consistency IoU",
                    lambda s: _worst_of(s, member_names(geometric=False))),
    **{name: (f"worst {name} level's mean consistency IoU",
              lambda s, members=REGISTRY[name].member_names: _worst_of(s, members))
       for name in _CURVED},
}
# the --perturb families a gate's figure needs (any one of them)
GATE_NEEDS: dict[str, tuple[str, ...]] = {
    "consistency": ("rotate",), "consistency_90": ("rotate",), "iou_gt": ("rotate",),
    "psnr_db": ("rotate",), "flip": ("flip",),
    "photometric": tuple(f.name for f in REGISTRY.values() if not f.geometric),
    **{name: (name,) for name in _CURVED}}


def gate_value(summary: dict, name: str) -> float | None:
    """The figure a gate named `name` tests (see GATE_METRICS); None if the sweep lacks it."""
    return GATE_METRICS[name][1](summary)
