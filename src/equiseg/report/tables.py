"""The report's tables as DataFrames, each with the rule that bolds its best values."""

from __future__ import annotations

import pandas as pd

from equiseg.report.run_results import RunResults

FINAL_EPOCH_BEST = {"train IoU": "max", "train loss": "min",
                    "validation IoU": "max", "validation loss": "min"}
QUARTER_TURNS = ("rot0", "rot90", "rot180", "rot270")
QUARTER_TURN_BEST = {"val IoU (random 90° turns)": "max", "0°": "max", "90°": "max",
                     "180°": "max", "270°": "max", "spread": "min"}
EQUIVARIANCE_BEST = {"consistency IoU at 90° multiples": "max",
                     "consistency IoU off grid": "max", "PSNR off grid (dB)": "max",
                     "worst-angle IoU": "max", "IoU spread": "min",
                     "flip-h consistency": "max", "flip-v consistency": "max"}
EQUIVARIANCE_FORMATS = {"PSNR off grid (dB)": ".1f", "worst angle (°)": "g"}
FLIP_BEST = {"flip-h IoU": "max", "flip-h consistency": "max",
             "flip-v IoU": "max", "flip-v consistency": "max"}


def _ids(run: RunResults) -> dict[str, str]:
    return {"model": run.model, "augmentation": run.augment}


def final_epoch_table(runs: list[RunResults]) -> pd.DataFrame:
    """The seed's table: final-epoch train/validation IoU and loss per run."""
    return pd.DataFrame([{**_ids(r), "train IoU": r.summary["train_iou"],
                          "train loss": r.summary["train_loss"],
                          "validation IoU": r.summary["val_iou"],
                          "validation loss": r.summary["val_loss"]} for r in runs])


def quarter_turn_table(runs: list[RunResults]) -> pd.DataFrame | None:
    """Validation IoU with every image turned by 0, 90, 180, 270 degrees, and their spread."""
    rows = []
    for run in runs:
        if run.evaluate is None:
            continue
        turns = [run.evaluate.get(k, {}).get("val_iou", float("nan")) for k in QUARTER_TURNS]
        rows.append({**_ids(run), "val IoU (random 90° turns)": run.evaluate.get("val_iou"),
                     "0°": turns[0], "90°": turns[1], "180°": turns[2], "270°": turns[3],
                     "spread": max(turns) - min(turns)})
    return pd.DataFrame(rows) if rows else None


def equivariance_table(runs: list[RunResults]) -> pd.DataFrame | None:
    rows = []
    for run in runs:
        eq = run.equivariance
        if eq is None:
            continue
        rows.append({**_ids(run), "exact at 90° multiples": bool(eq.get("exact_at_90_multiples")),
                     "consistency IoU at 90° multiples": eq.get("consistency_iou_at_90_multiples"),
                     "consistency IoU off grid": eq.get("consistency_iou_off_grid"),
                     "PSNR off grid (dB)": eq.get("psnr_db_off_grid"),
                     "worst angle (°)": eq.get("worst_angle"),
                     "worst-angle IoU": eq.get("worst_angle_iou"),
                     "IoU spread": eq.get("iou_spread"),
                     "flip-h consistency": eq.get("flip_h_consistency_iou"),
                     "flip-v consistency": eq.get("flip_v_consistency_iou")})
    return pd.DataFrame(rows) if rows else None


def flip_table(runs: list[RunResults]) -> pd.DataFrame | None:
    """Validation-set IoU against ground truth and consistency IoU under each mirror flip."""
    rows = []
    for run in runs:
        if run.perturb is None:
            continue
        row = _ids(run)
        for flip in ("flip_h", "flip_v"):
            part = run.perturb[run.perturb["perturbation"] == flip]
            name = flip.replace("_", "-")
            row[f"{name} IoU"] = part["set_iou_gt_mean"].mean() if len(part) else float("nan")
            row[f"{name} consistency"] = (part["set_iou_consistency_mean"].mean()
                                          if len(part) else float("nan"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if rows and frame.drop(columns=["model", "augmentation"]).notna().any().any() \
        else None
