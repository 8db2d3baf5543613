"""Per (perturbation, level) statistics of a sweep's frame over its images, and the tables the
stage and the audit write from them (`plots/rotation/*.csv`, `plots/perturb/*.csv`).

*dB*: `set_psnr_db_mean` is the mean of per-image PSNRs; `set_psnr_db_pooled` is StyleGAN3's
EQ-R, the PSNR of the mean squared error over all valid pixels of all images (see
`metrics.pooled_psnr_db`). Both cap at `metrics.PSNR_CAP_DB` for identical maps.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.perturbations import Perturbation
from equiseg.metrics import pooled_psnr_db

SET_COLUMNS = ("set_iou_gt_mean", "set_iou_gt_std", "set_iou_gt_min", "set_iou_consistency_mean",
               "set_iou_consistency_std", "set_iou_consistency_min", "set_mad_mean",
               "set_psnr_db_mean", "set_psnr_db_pooled")
# One seed's tables, each row keyed by its first column(s) (`ROTATION_KEYS`, `PERTURB_KEYS`); the
# stage writes their statistics over seeds (`replicate_stats(..., by=keys)`), which the report reads.
ROTATION_KEYS = ("angle",)
ROTATION_COLUMNS = (*ROTATION_KEYS, "iou_gt", "iou_consistency", "mad", "psnr_db", *SET_COLUMNS)
PERTURB_KEYS = ("perturbation", "level")
PERTURB_COLUMNS = (*PERTURB_KEYS, *SET_COLUMNS)


def identity_rows(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose perturbation changes nothing (rotate 0, brightness 0, ...)."""
    return pd.Series([Perturbation(name, float(level)).is_identity
                      for name, level in zip(frame["perturbation"], frame["level"])],
                     index=frame.index, dtype=bool)


def pooled_db(part: pd.DataFrame) -> float:
    """The pooled dB (EQ-R) of `part`'s rows; NaN for a frame without squared errors."""
    if "mse" not in part or "valid_pixels" not in part:
        return float("nan")
    return pooled_psnr_db(part["mse"].to_numpy(), part["valid_pixels"].to_numpy())


def set_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (perturbation, level) over images, rows in the frame's order: mean, std (population)
    and min of the IoUs; mean MAD; mean of per-image dB and pooled dB; the worst `max_abs_diff`."""
    grouped = frame.groupby(["perturbation", "level"], sort=False)
    stats = pd.DataFrame({
        "set_iou_gt_mean": grouped["iou_gt"].mean(),
        "set_iou_gt_std": grouped["iou_gt"].std(ddof=0),
        "set_iou_gt_min": grouped["iou_gt"].min(),
        "set_iou_consistency_mean": grouped["iou_consistency"].mean(),
        "set_iou_consistency_std": grouped["iou_consistency"].std(ddof=0),
        "set_iou_consistency_min": grouped["iou_consistency"].min(),
        "set_mad_mean": grouped["mad"].mean(),
        "set_psnr_db_mean": grouped["psnr_db"].mean(),
        "set_psnr_db_pooled": grouped.apply(pooled_db, include_groups=False),
        "set_max_abs_diff": grouped["max_abs_diff"].max(),
    })
    return stats.reset_index()


def rotation_table(frame: pd.DataFrame, chosen: str | None = None) -> pd.DataFrame:
    """Per angle, the set's statistics (what angle figures plot) and, when `chosen` names an image,
    that image's own metrics (one seed's `plots/rotation/*.csv`, in ROTATION_COLUMNS)."""
    rotations = frame[frame["perturbation"] == "rotate"]
    if rotations.empty:
        raise ValueError("the sweep has no rotations")
    table = set_statistics(rotations).set_index("level")
    if chosen is None:
        return table.reset_index().rename(columns={"level": "angle"})
    single = rotations[rotations["image"] == chosen].set_index("level")
    if single.empty:
        raise ValueError(f"image {chosen!r} is not in the sweep")
    for column in ("iou_gt", "iou_consistency", "mad", "psnr_db"):
        table[column] = single[column]
    return table.reset_index().rename(columns={"level": "angle"})[list(ROTATION_COLUMNS)]


def perturbation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One seed's `plots/perturb/*.csv` (PERTURB_COLUMNS): per non-rotation perturbation and
    level, the set's statistics."""
    others = frame[frame["perturbation"] != "rotate"]
    if others.empty:
        return pd.DataFrame(columns=list(PERTURB_COLUMNS))
    return set_statistics(others)[list(PERTURB_COLUMNS)]
