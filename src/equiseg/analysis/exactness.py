"""Whether a model is exact under a transform, and where on the circle a sweep can tell.

*exact*: every image's raw model output (logits, or probabilities for a model that returns
them), undone and compared with the unperturbed one, satisfies
max|raw_restored - raw_reference| <= atol + rtol * max|raw_reference| inside the valid region.
Judging the raw output rather than thresholded masks or saturated probabilities keeps a model
whose logits differ from being called exact because sigmoid(30) == sigmoid(20) in float32.

The pixel grid decides where exactness can be verified: a turn by a multiple of 90 degrees (and a
flip) moves whole pixels, any other angle resamples the input, so no model is exact there and a
sweep can only measure how close it comes (consistency).
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.families import REGISTRY

FLIPS = REGISTRY["flip"].member_names


def at_quarter_turns(levels: pd.Series) -> pd.Series:
    """Rotations by a non-zero multiple of 90 degrees: the ones the pixel grid makes exact."""
    return (levels % 90 == 0) & (levels % 360 != 0)


def within_tolerance(rows: pd.DataFrame, atol: float, rtol: float) -> pd.Series:
    """Per row: the raw output, undone, equals the reference within atol + rtol * its scale.

    Frames without raw columns (probability-only predict functions) fall back to probabilities.
    """
    if "max_abs_diff_raw" in rows and "raw_scale" in rows:
        return rows["max_abs_diff_raw"] <= atol + rtol * rows["raw_scale"]
    return rows["max_abs_diff"] <= atol


def exactness(rows: pd.DataFrame, atol: float, rtol: float) -> dict:
    """`exact`, and the largest differences behind the verdict, over `rows` (None: no rows)."""
    if rows.empty:
        return {"exact": None, "max_abs_diff": None, "max_rel_diff_raw": None}
    relative = None
    if "max_abs_diff_raw" in rows and "raw_scale" in rows:
        scale = rows["raw_scale"].where(rows["raw_scale"] > 0)
        largest = (rows["max_abs_diff_raw"] / scale).max()
        relative = None if pd.isna(largest) else float(largest)
    return {"exact": bool(within_tolerance(rows, atol, rtol).all()),
            "max_abs_diff": float(rows["max_abs_diff"].max()), "max_rel_diff_raw": relative}


def outputs_identical_under_group(frame: pd.DataFrame, atol: float, rtol: float) -> dict:
    """Whether every image's raw output, undone, equals the unperturbed one within tolerance:
    {"p4": at rotations by 90-degree multiples, "p4m": and both flips}, for what was swept.

    A fact about the outputs over all images, not a verdict: a constant output is identical
    under every transform, so `True` here is no evidence of equivariance (see `judgeable`).
    """
    rotations = frame[(frame["perturbation"] == "rotate") & at_quarter_turns(frame["level"])]
    if rotations.empty:
        return {}
    identical = {"p4": bool(within_tolerance(rotations, atol, rtol).all())}
    flips = frame[frame["perturbation"].isin(FLIPS)]
    if set(flips["perturbation"]) == set(FLIPS):
        identical["p4m"] = identical["p4"] and bool(within_tolerance(flips, atol, rtol).all())
    return identical
