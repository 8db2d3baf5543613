"""How a sweep scores each restored prediction: the columns of its frame (what they mean:
`equiseg.analysis.sweep`), the mask decision, and degenerate predictions.

One channel: foreground = p > THRESHOLD. Several channels are mutually exclusive classes: the
mask of class k is argmax == k, IoUs are per class and averaged over classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from equiseg.metrics import (
    max_abs_difference,
    max_abs_value,
    mean_abs_difference,
    mean_squared_difference,
    per_class_iou,
    psnr_from_mse,
    valid_count,
)

THRESHOLD = 0.5
# A prediction is degenerate when its foreground covers less than EMPTY_FRACTION or more than
# FULL_FRACTION of the valid pixels, or when more than NEAR_THRESHOLD_SHARE of them lie within
# THRESHOLD_MARGIN of the decision boundary (|p - 0.5|, or half the top-two gap for K classes).
EMPTY_FRACTION = 0.005
FULL_FRACTION = 0.995
THRESHOLD_MARGIN = 0.05
NEAR_THRESHOLD_SHARE = 0.5


def class_masks(probs: Tensor) -> Tensor:
    """Boolean masks (B, K, H, W): p > 0.5 for one channel, one-hot argmax for several."""
    if probs.shape[1] == 1:
        return probs > THRESHOLD
    return F.one_hot(probs.argmax(dim=1), probs.shape[1]).permute(0, 3, 1, 2).bool()


def target_masks(target: Tensor, classes: int) -> Tensor:
    """A target (1, H, W) as boolean masks (1, K, H, W) matching `class_masks`."""
    if classes == 1:
        return target.bool().unsqueeze(0)
    return F.one_hot(target.long()[0], classes).permute(2, 0, 1).unsqueeze(0).bool()


def foreground_shares(probs: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Per prediction (B, K, S, S): the share of the valid pixels that are foreground, and the
    share within THRESHOLD_MARGIN of the decision, both (B,) float64.

    Foreground is p > 0.5 for one channel, any class but 0 for several; the margin to the
    decision is |p - 0.5|, or half the gap between the two most likely classes.
    """
    inside = valid.expand(len(probs), 1, *probs.shape[-2:])[:, 0].double()
    count = inside.flatten(1).sum(dim=1).clamp(min=1)
    if probs.shape[1] == 1:
        foreground = probs[:, 0] > THRESHOLD
        margin = (probs[:, 0] - THRESHOLD).abs()
    else:
        foreground = probs.argmax(dim=1) != 0
        top = probs.topk(2, dim=1).values
        margin = (top[:, 0] - top[:, 1]) / 2
    share = (foreground.double() * inside).flatten(1).sum(dim=1) / count
    hovering = ((margin < THRESHOLD_MARGIN).double() * inside).flatten(1).sum(dim=1) / count
    return share, hovering


def raw_range(raw: Tensor, valid: Tensor) -> Tensor:
    """Per output (B, K, S, S): the largest max - min of a channel inside `valid`, (B,); 0 for
    a constant output, which every transform leaves identical."""
    inside = valid.bool().expand_as(raw)
    high = raw.masked_fill(~inside, float("-inf")).amax(dim=(-2, -1))
    low = raw.masked_fill(~inside, float("inf")).amin(dim=(-2, -1))
    return (high - low).amax(dim=1).clamp(min=0.0)


def reference_facts(reference: Tensor, reference_raw: Tensor, footprint: Tensor) -> dict:
    """The columns describing the unperturbed prediction (1, K, S, S) over the image's pixels."""
    share, _ = foreground_shares(reference, footprint.unsqueeze(0))
    return {"reference_foreground_share": float(share[0]),
            "reference_raw_range": float(raw_range(reference_raw, footprint.unsqueeze(0))[0])}


def degenerate_reasons(probs: Tensor, valid: Tensor) -> list[str]:
    """Per prediction (B, K, S, S): '' when fine, else 'empty', 'everywhere' or 'at threshold'
    (shares as in `foreground_shares`)."""
    share, hovering = foreground_shares(probs, valid)
    reasons = []
    for fraction, near in zip(share.tolist(), hovering.tolist()):
        if near > NEAR_THRESHOLD_SHARE:
            reasons.append("at threshold")
        elif fraction < EMPTY_FRACTION:
            reasons.append("empty")
        elif fraction > FULL_FRACTION:
            reasons.append("everywhere")
        else:
            reasons.append("")
    return reasons


def score_restored(restored: Tensor, reference: Tensor, valid: Tensor, target: Tensor | None,
                   footprint: Tensor, restored_raw: Tensor, reference_raw: Tensor) -> dict:
    """The frame's columns for a batch of restored predictions (B, K, S, S) against the
    reference prediction (1, K, S, S), inside `valid`; `target` (1, S, S) or None, and the
    image's `footprint` (1, S, S)."""
    masks, reference_masks = class_masks(restored), class_masks(reference).expand_as(restored)
    per_class = per_class_iou(masks, reference_masks, valid)
    mse = mean_squared_difference(restored, reference, valid)
    scores = {"iou_consistency": per_class.mean(dim=1),
              "mad": mean_abs_difference(restored, reference, valid),
              "psnr_db": psnr_from_mse(mse),
              "max_abs_diff": max_abs_difference(restored, reference, valid),
              "max_abs_diff_raw": max_abs_difference(restored_raw, reference_raw, valid),
              "raw_scale": max_abs_value(reference_raw.expand_as(restored_raw), valid),
              "mse": mse, "valid_pixels": valid_count(restored[:, :1], valid)}
    classes = restored.shape[1]
    if target is not None:
        truth = target_masks(target, classes).expand_as(masks)
        gt_per_class = per_class_iou(masks, truth, valid)  # valid lies inside the footprint
        scores["iou_gt"] = gt_per_class.mean(dim=1)
    else:
        scores["iou_gt"] = torch.full((len(restored),), float("nan"), dtype=torch.float64)
    if classes > 1:
        for k in range(classes):
            scores[f"iou_consistency_class{k}"] = per_class[:, k]
            if target is not None:
                scores[f"iou_gt_class{k}"] = gt_per_class[:, k]
    columns = {name: value.cpu().numpy() for name, value in scores.items()}
    reference_reason = degenerate_reasons(reference, footprint.unsqueeze(0))[0]
    own = degenerate_reasons(restored, valid)
    columns["degenerate_reason"] = [reference_reason or reason for reason in own]
    return columns
