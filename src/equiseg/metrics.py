"""Overlap and agreement between masks or probability maps.

Convention: the IoU of two empty masks is 1.0 (they agree perfectly), so a model that rightly
predicts nothing on an empty image is not punished. Pooled IoU sums intersections and unions over
all pixels of all images before dividing ("dataset IoU"); per-image IoU averages each image's own
IoU ("mean IoU"). Both are reported, named as such.
"""

from __future__ import annotations

import torch
from torch import Tensor


def iou_counts(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-image intersection and union pixel counts of two boolean masks of the same shape.

    The first axis is the image; `valid`, if given, restricts the count to True pixels.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    pred, target = pred.bool(), target.bool()
    inter, union = pred & target, pred | target
    if valid is not None:
        valid = valid.bool().expand_as(pred)
        inter, union = inter & valid, union & valid
    dims = tuple(range(1, pred.ndim))
    return inter.sum(dim=dims).double(), union.sum(dim=dims).double()


def iou_from_counts(inter: Tensor, union: Tensor) -> Tensor:
    """IoU per entry, 1.0 where the union is empty."""
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def pooled_iou(inter: Tensor, union: Tensor) -> float:
    """Dataset IoU: all intersections over all unions (1.0 if every mask is empty)."""
    return float(iou_from_counts(inter.sum(), union.sum()))


def per_image_iou(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """IoU of each image's masks, shape (B,)."""
    return iou_from_counts(*iou_counts(pred, target, valid))
