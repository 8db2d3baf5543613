"""Overlap and agreement between masks or probability maps.

Convention: the IoU of two empty masks is 1.0 (they agree perfectly), so a model that rightly
predicts nothing on an empty image is not punished. Pooled IoU sums intersections and unions over
all pixels of all images before dividing ("dataset IoU"); per-image IoU averages each image's own
IoU ("mean IoU"). Both are reported, named as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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

PSNR_CAP_DB = 100.0  # identical maps (MSE 0) score this, not infinity; float noise lands here too


def per_class_iou(mask_a: Tensor, mask_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """IoU (B, K) of each channel of two one-mask-per-class tensors (B, K, H, W)."""
    return torch.stack([per_image_iou(mask_a[:, k], mask_b[:, k],
                                      None if valid is None else valid[:, 0])
                        for k in range(mask_a.shape[1])], dim=1)


def _valid_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over channels and valid pixels of (B, K, H, W) values, as (B,) float64."""
    values = values.double()
    count = valid_count(values, valid)
    if valid is None:
        return values.flatten(1).mean(dim=1)
    total = (values * valid.expand_as(values).double()).flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(count, float("nan")))


def valid_count(values: Tensor, valid: Tensor | None) -> Tensor:
    """How many (channel, pixel) entries of each image (B,) a valid-region mean averages over."""
    if valid is None:
        return torch.full((values.shape[0],), float(values[0].numel()), dtype=torch.float64,
                          device=values.device)
    return valid.expand_as(values).double().flatten(1).sum(dim=1)


def mean_abs_difference(probs_a: Tensor, probs_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean absolute difference (B,) of two probability maps inside `valid`."""
    return _valid_mean((probs_a - probs_b).abs(), valid)


def mean_squared_difference(probs_a: Tensor, probs_b: Tensor,
                            valid: Tensor | None = None) -> Tensor:
    """Mean squared difference (B,) of two probability maps inside `valid` (NaN if none valid)."""
    return _valid_mean((probs_a - probs_b).square(), valid)


def max_abs_difference(probs_a: Tensor, probs_b: Tensor, valid: Tensor | None = None) -> Tensor:
    """Largest absolute difference (B,) inside `valid` (0 where nothing is valid): the exactness test."""
    diff = (probs_a - probs_b).abs().double()
    if valid is not None:
        diff = diff * valid.expand_as(diff)
    return diff.flatten(1).amax(dim=1)


def max_abs_value(values: Tensor, valid: Tensor | None = None) -> Tensor:
    """Largest magnitude (B,) inside `valid`: the scale a relative tolerance is taken of."""
    return max_abs_difference(values, torch.zeros_like(values), valid)


def psnr_from_mse(mse: Tensor | float, peak: float = 1.0, cap: float = PSNR_CAP_DB) -> Tensor:
    """10 log10(peak^2 / MSE) in dB, at most `cap` (so MSE 0 gives `cap`); NaN stays NaN."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    db = 10.0 * torch.log10(peak**2 / mse.clamp(min=peak**2 * 10.0 ** (-cap / 10.0)))
    return torch.where(torch.isnan(mse), mse, db.clamp(max=cap))


def pooled_psnr_db(mse: Sequence[float] | Tensor, counts: Sequence[float] | Tensor,
                   peak: float = 1.0, cap: float = PSNR_CAP_DB) -> float:
    """Set-level PSNR as StyleGAN3's EQ-T/EQ-R: 10 log10(peak^2 / MSE over all valid pixels of
    all images), from each image's MSE and its count of valid pixels; capped at `cap`.

    Two images of equal size at MSE 1e-2 and 1e-4: 23.0 dB pooled, where the mean of their
    PSNRs is 30.0 dB (the pooled figure is dominated by the worst image).
    Images without a valid pixel (NaN MSE) are left out; NaN if none is left.
    """
    mse = torch.as_tensor(np.array(mse, dtype=np.float64)).reshape(-1)
    counts = torch.as_tensor(np.array(counts, dtype=np.float64)).reshape(-1)
    keep = ~torch.isnan(mse) & (counts > 0)
    if not bool(keep.any()):
        return float("nan")
    pooled = (mse[keep] * counts[keep]).sum() / counts[keep].sum()
    return float(psnr_from_mse(pooled, peak, cap))
