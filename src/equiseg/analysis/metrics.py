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


# -- agreement between two predictions (label-free consistency) ----------------------------------
#
# `valid` (B, 1, H, W) or None restricts every figure to the pixels where both predictions saw
# the image's own content. Probability maps are (B, K, H, W) in [0, 1]; a figure averages over
# the K channels too. An image without a single valid pixel gets NaN (nothing was compared).

PSNR_CAP_DB = 100.0  # identical maps (MSE 0) score this instead of infinity; float noise lands here


def consistency_iou(mask_a: Tensor, mask_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """IoU (B,) between two predictions' masks, e.g. de-rotated vs direct; 1.0 if both are empty."""
    return per_image_iou(mask_a, mask_b, valid)


def per_class_iou(mask_a: Tensor, mask_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """IoU (B, K) of each channel of two one-mask-per-class tensors (B, K, H, W)."""
    return torch.stack([per_image_iou(mask_a[:, k], mask_b[:, k],
                                      None if valid is None else valid[:, 0])
                        for k in range(mask_a.shape[1])], dim=1)


def _valid_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over channels and valid pixels of (B, K, H, W) values, as (B,) float64."""
    values = values.double()
    if valid is None:
        return values.flatten(1).mean(dim=1)
    weight = valid.expand_as(values).double()
    count = weight.flatten(1).sum(dim=1)
    total = (values * weight).flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(count, float("nan")))


def mean_abs_difference(probs_a: Tensor, probs_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean absolute difference (B,) of two probability maps inside `valid`."""
    return _valid_mean((probs_a - probs_b).abs(), valid)


def max_abs_difference(probs_a: Tensor, probs_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """Largest absolute difference (B,) inside `valid` (0 where nothing is valid): the exactness test."""
    diff = (probs_a - probs_b).abs().double()
    if valid is not None:
        diff = diff * valid.expand_as(diff)
    return diff.flatten(1).amax(dim=1)


def psnr_db(probs_a: Tensor, probs_b: Tensor, valid: Tensor | None = None, peak: float = 1.0,
            cap: float = PSNR_CAP_DB) -> Tensor:
    """PSNR (B,) in dB between two probability maps inside `valid`, capped at `cap`.

    10 log10(peak^2 / MSE), the figure of StyleGAN3's EQ-T/EQ-R: higher is more equivariant;
    20 dB is a mean squared difference of 0.01, `cap` (100 dB) means identical to float noise.
    """
    mse = _valid_mean((probs_a - probs_b).square(), valid)
    db = 10.0 * torch.log10(peak**2 / mse.clamp(min=peak**2 * 10.0 ** (-cap / 10.0)))
    return torch.where(torch.isnan(mse), mse, db.clamp(max=cap))
