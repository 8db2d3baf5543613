"""Whether a model is exact under a transform, and where on the circle a sweep can tell.

*exact*: every image's raw model output (logits, or probabilities for a model that returns
them), undone and compared with the unperturbed one, satisfies
max|raw_restored - raw_reference| <= atol + rtol * max|raw_reference| inside the valid region.
Judging the raw output rather than thresholded masks or saturated probabilities keeps a model
whose logits differ from being called exact because sigmoid(30) == sigmoid(20) in float32.

The pixel grid decides where exactness can be verified: a turn by a multiple of 90 degrees (and a
flip) moves whole pixels, any other angle resamples the input, so no model is exact there and a
sweep can only measure how close it comes (consistency). A model's group covers the multiples of
its `group_turn` (degrees: 90 for p4/p4m, 45 for c8/d8, 360 for the plain net; the one mapping
from a group's name is `equiseg.nn.groups.group_turn`); `exact_at_group_angles` says True only
where it verified every one of them, and None (cannot judge) where it could not.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.families import REGISTRY

FLIPS = REGISTRY["flip"].member_names
ANGLE_TOL = 1e-6  # degrees: sweep levels are multiples of a step, stored as floats


def in_group(levels: pd.Series, group_turn: float) -> pd.Series:
    """Rotation angles (degrees) that are multiples of `group_turn`, within `ANGLE_TOL`: the
    group's own angles. The one rule for "is a multiple of": 90 gives the grid, 360 the identity."""
    remainder = levels % group_turn
    return (remainder < ANGLE_TOL) | (group_turn - remainder < ANGLE_TOL)


def at_quarter_turns(levels: pd.Series) -> pd.Series:
    """Rotations by a non-zero multiple of 90 degrees: the ones the pixel grid makes exact."""
    return in_group(levels, 90) & ~in_group(levels, 360)


def group_angles(group_turn: float) -> list[float]:
    """The group's rotations other than the identity, in degrees (none for the plain net)."""
    return [k * group_turn for k in range(1, round(360 / group_turn))]


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


def exact_at_group_angles(rows: pd.DataFrame, group_turn: float, atol: float,
                          rtol: float) -> bool | None:
    """Whether the raw outputs are exact at every rotation of the group but the identity, as far
    as the grid lets a sweep verify it; `rows` are a sweep's rotation rows.

    False as soon as one is verifiably not (a quarter turn of the group outside the tolerance).
    True only when every rotation of the group is a quarter turn and was swept. Otherwise None,
    cannot judge: the group has no rotation but the identity (the plain net), or has rotations
    off the 90-degree grid (c8/d8's 45 degrees: judged by consistency, never called exact), or
    the sweep missed some of its angles.
    """
    angles = group_angles(group_turn)
    own = rows[in_group(rows["level"], group_turn) & ~in_group(rows["level"], 360)]
    on_grid = own[at_quarter_turns(own["level"])]  # the same rule as `own` and `missed`
    if len(on_grid) and not within_tolerance(on_grid, atol, rtol).all():
        return False
    swept = pd.Series(sorted(set(own["level"])), dtype=float)
    missed = [a for a in angles if not ((swept - a).abs() < ANGLE_TOL).any()]
    if not angles or missed or not at_quarter_turns(pd.Series(angles, dtype=float)).all():
        return None
    return True


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
