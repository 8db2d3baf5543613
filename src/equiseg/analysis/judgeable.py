"""Which images can show whether a model is equivariant: the audit's verdict is drawn from these.

A prediction that covers (almost) nothing or (almost) everything agrees with itself under every
perturbation, and a constant output is identical to any transform of itself, so their
consistency and exactness say nothing about the model. An image is *judgeable* when the
prediction on the unperturbed image (read off the sweep's `reference_*` columns)

- is not constant: its raw output varies over the image by more than the exactness tolerance
  (atol + rtol x its largest magnitude: below that every transform of it counts as identical);
- has a foreground share of the image's pixels in [min_share, max_share].

A prediction hovering at the decision threshold (the sweep's 'at threshold', typical of random
weights) stays judgeable: its masks flip with small changes, which lowers consistency rather
than inflating it, and its varying raw output still tests exactness.

Defaults, 0.05 and 0.90:
- *max_share 0.90*: two masks that each cover a share p of the image overlap on at least 2p - 1
  of it, so their IoU is at least 2p - 1 however the prediction moves: 0.80 at p = 0.90, 0.86
  at 0.93 (the FCN of issue 16). Above 0.90 a consistency gate would test little.
- *min_share 0.05*: a mask of a few pixels is all boundary, and two empty ones agree perfectly;
  the smp FPN of issue 16 predicted 0.2%-1.9% of its pixels, so the floor sits well above 1.9%.
- Both keep real objects in: the 832 Leeds butterfly masks cover 1.9%-67% of their images,
  99% of them at least 5.1%, so a model that predicts the truth stays judgeable on ~99% of them.
Lower `min_share` for small objects (lesions, cells) and raise `max_share` for images an object
fills.

The verdict is "cannot judge" when more than half of the images are not judgeable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from equiseg.errors import EquisegError

JUDGEABLE_MIN_SHARE = 0.05
JUDGEABLE_MAX_SHARE = 0.90
JUDGED = "judged"
CANNOT_JUDGE = "cannot judge"


@dataclass(frozen=True)
class Judgeability:
    """The judgeable foreground shares, and whether figures may use every image anyway
    (`allow_degenerate`: the audit's `--allow-degenerate`)."""

    min_share: float = JUDGEABLE_MIN_SHARE
    max_share: float = JUDGEABLE_MAX_SHARE
    allow_degenerate: bool = False

    def validate(self) -> None:
        """0 <= min_share < max_share <= 1."""
        if not 0.0 <= self.min_share < self.max_share <= 1.0:
            raise EquisegError(f"`min_share` {self.min_share:g} and "
                               f"`max_share` {self.max_share:g}: give "
                               "0 <= min < max <= 1 (shares of the image's pixels)")


def not_judgeable_images(frame: pd.DataFrame, judge: Judgeability, atol: float,
                         rtol: float) -> dict[str, str]:
    """Images whose unperturbed prediction cannot show equivariance, each with its reason:
    'constant', 'too little foreground' or 'too much foreground'."""
    first = frame.drop_duplicates("image").set_index("image")
    # raw_scale is max|reference raw| over a row's valid region; every sweep has a row whose
    # valid region is the whole image (angle 0, a flip, a photometric level), so an image's
    # largest raw_scale is its reference's magnitude over the image
    scale = frame.groupby("image", sort=False)["raw_scale"].max()
    reasons = {}
    for name, row in first.iterrows():
        share = row["reference_foreground_share"]
        if row["reference_raw_range"] <= atol + rtol * scale[name]:
            reasons[str(name)] = "constant"
        elif share < judge.min_share:
            reasons[str(name)] = "too little foreground"
        elif share > judge.max_share:
            reasons[str(name)] = "too much foreground"
    return reasons


def verdict(images: int, not_judgeable: int) -> str:
    """"cannot judge" when more than half of the images are not judgeable, else "judged"."""
    return CANNOT_JUDGE if images and not_judgeable > images / 2 else JUDGED


def judge_frame(frame: pd.DataFrame, judge: Judgeability, atol: float,
                rtol: float) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the rows that figures and gates are computed over, the images that are not judgeable
    with their reasons): the judgeable images' rows, or every row with `allow_degenerate`."""
    not_judgeable = not_judgeable_images(frame, judge, atol, rtol)
    if judge.allow_degenerate or not not_judgeable:
        return frame, not_judgeable
    return frame[~frame["image"].astype(str).isin(list(not_judgeable))], not_judgeable


def not_judgeable_text(summary: dict) -> str:
    """How many of a summary's images are not judgeable, why, and what judgeable means."""
    reasons = ", ".join(f"{count} {reason}" for reason, count in
                        summary["not_judgeable_reasons"].items())
    return (f"{summary['images'] - summary['judgeable_images']} of {summary['images']} images "
            f"get no judgeable prediction ({reasons or 'none'}; judgeable: foreground "
            f"{summary['judgeable_min_share']:g}-{summary['judgeable_max_share']:g} of the "
            "pixels, output not constant)")
