"""Perturbation sweeps of any predict function over any images, and their summaries.

One code path serves the `rotation_sweep` stage and `equiseg audit`, so their numbers cannot drift
apart. For every image: predict on the image itself (the reference) and on each perturbed copy
(many copies per forward pass), undo geometric perturbations on the output, then score

- `iou_consistency`: IoU of the restored mask and the reference mask inside the valid region
  (label-free: a perfectly equivariant/invariant model scores 1.0);
- `mad`, `psnr_db`, `max_abs_diff`: mean absolute difference, PSNR (dB, capped at
  `metrics.PSNR_CAP_DB`) and largest difference of the probability maps, inside the valid region;
- `iou_gt`: IoU of the restored mask and the ground truth over the whole (unpadded) image, as in
  the seed's protocol (NaN without a ground truth).

Outputs are probabilities (B, K, H, W). One channel: foreground = p > 0.5. Several channels are
mutually exclusive classes (softmax): the mask of class k is argmax == k, IoUs are per class and
averaged over classes (background included, 1.0 for a class absent from both masks).
Restored probability maps are de-rotated bilinearly and thresholded afterwards (thresholded
bilinear), the seed's "rotate the mask back" up to boundary pixels; exact at multiples of 90.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiseg.analysis.metrics import max_abs_difference, mean_abs_difference, per_class_iou, psnr_db
from equiseg.analysis.perturbations import (
    IDENTITY,
    Perturbation,
    build_perturbations,
    noise_field,
    perturb,
    restore,
    valid_regions,
)
from equiseg.config import SweepConfig
from equiseg.errors import EquisegError

Predict = Callable[[Tensor], Tensor]  # pixel images (B, 3, S, S) in [0, 1] -> probabilities
THRESHOLD = 0.5
METRICS = ("iou_gt", "iou_consistency", "mad", "psnr_db", "max_abs_diff")


class ModelOutputError(EquisegError):
    """The model's output does not have the shape or range the sweep was told to expect."""


@dataclass(frozen=True)
class SweepImage:
    """One image on its square canvas, with where it lies there and (optionally) its labels."""

    name: str
    image: Tensor  # (3, S, S) float in [0, 1]
    footprint: Tensor  # (1, S, S) bool
    target: Tensor | None = None  # (1, S, S): bool foreground, or class indices for K > 1

    def to(self, device: torch.device | str) -> SweepImage:
        return SweepImage(self.name, self.image.to(device), self.footprint.to(device),
                          None if self.target is None else self.target.to(device))


@dataclass(frozen=True)
class Kept:
    """Perturbed inputs (N, 3, S, S), the model's raw probabilities (N, K, S, S) on them, and its
    probabilities (K, S, S) on the unperturbed image."""

    perturbations: list[Perturbation]
    inputs: Tensor
    probs: Tensor
    reference: Tensor


@dataclass
class SweepResult:
    """The tidy frame (one row per image and perturbation) and the predictions kept for figures."""

    frame: pd.DataFrame
    kept: dict[str, Kept] = field(default_factory=dict)


def make_predictor(model: nn.Module, mean: Sequence[float], std: Sequence[float],
                   output: str = "logits", classes: int = 1,
                   channels_last: bool = False) -> Predict:
    """Wrap `model` into pixel images -> probabilities, checking its output on every call.

    `output` says what the model returns: 'logits' (sigmoid for one channel, softmax for more)
    or 'probs' (used as they are). Inputs are normalised with `mean` and `std` first.
    `channels_last` runs the model on NHWC tensors: 1.3-1.5x faster inference for our U-Nets
    on CPU, but a model that calls `.view` on its activations may not accept it.
    """
    if output not in ("logits", "probs"):
        raise EquisegError(f"--output is {output!r}; choose logits or probs")
    model.eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=layout)
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)

    def predict(images: Tensor) -> Tensor:
        x = ((images.to(device, torch.float32) - mean_t) / std_t).contiguous(memory_format=layout)
        try:
            y = model(x)
        except EquisegError:
            raise
        except Exception as err:  # noqa: BLE001 - a user's model can fail in any way; say how
            raise ModelOutputError(f"the model failed on a batch of shape {tuple(x.shape)} "
                                   f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                                   "; check --size/--pad-size and the model's expected input") from None
        if not isinstance(y, Tensor) or y.ndim != 4:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ModelOutputError(f"the model returned {shape}; expected a (B, K, H, W) tensor "
                                   "of per-pixel scores")
        if y.shape[-2:] != x.shape[-2:]:
            raise ModelOutputError(f"the model's output is {y.shape[-2]}x{y.shape[-1]} pixels for "
                                   f"a {x.shape[-2]}x{x.shape[-1]} input; a segmentation model must "
                                   "keep the spatial size")
        if y.shape[1] != classes:
            raise ModelOutputError(f"the model returned {y.shape[1]} channel(s), expected "
                                   f"{classes}; set --classes {y.shape[1]}")
        y = y.float()
        if output == "probs":
            if y.min() < -1e-4 or y.max() > 1 + 1e-4:
                raise ModelOutputError("the model's outputs leave [0, 1], so they are not "
                                       "probabilities; use --output logits")
            return y.clamp(0.0, 1.0)
        return torch.sigmoid(y) if classes == 1 else torch.softmax(y, dim=1)

    return predict


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


def _score(restored: Tensor, reference: Tensor, valid: Tensor, item: SweepImage) -> dict:
    """Metric columns for a batch of restored predictions against the reference prediction."""
    masks, reference_masks = class_masks(restored), class_masks(reference).expand_as(restored)
    per_class = per_class_iou(masks, reference_masks, valid)
    scores = {"iou_consistency": per_class.mean(dim=1),
              "mad": mean_abs_difference(restored, reference, valid),
              "psnr_db": psnr_db(restored, reference, valid),
              "max_abs_diff": max_abs_difference(restored, reference, valid)}
    classes = restored.shape[1]
    if item.target is not None:
        truth = target_masks(item.target, classes).expand_as(masks)
        gt_per_class = per_class_iou(masks, truth, item.footprint.unsqueeze(0))
        scores["iou_gt"] = gt_per_class.mean(dim=1)
    else:
        scores["iou_gt"] = torch.full((len(restored),), float("nan"), dtype=torch.float64)
    if classes > 1:
        for k in range(classes):
            scores[f"iou_consistency_class{k}"] = per_class[:, k]
            if item.target is not None:
                scores[f"iou_gt_class{k}"] = gt_per_class[:, k]
    return {name: value.cpu().numpy() for name, value in scores.items()}


def sweep_image(predict: Predict, item: SweepImage, perturbations: Sequence[Perturbation],
                batch_size: int, keep: bool = False) -> tuple[list[dict], Kept | None]:
    """Rows (one per perturbation, in order) for one image, and its predictions if `keep`."""
    noise = noise_field(item.name, item.image.shape).to(item.image.device)
    to_predict = [IDENTITY] + [p for p in perturbations if not p.is_identity]
    reference = None
    scored: dict[Perturbation, dict] = {}
    kept_inputs, kept_probs = {}, {}
    for start in range(0, len(to_predict), batch_size):
        chunk = to_predict[start:start + batch_size]
        inputs = perturb(chunk, item.image, item.footprint, noise)
        probs = predict(inputs)
        if reference is None:
            reference = probs[:1]
        restored = restore(chunk, probs)
        scores = _score(restored, reference, valid_regions(chunk, item.footprint), item)
        for i, p in enumerate(chunk):
            scored[p] = {name: float(values[i]) for name, values in scores.items()}
            if keep:
                kept_inputs[p], kept_probs[p] = inputs[i].cpu(), probs[i].cpu()
    rows = [{"image": item.name, "perturbation": p.name, "level": p.level,
             **scored[IDENTITY if p.is_identity else p]} for p in perturbations]
    if not keep:
        return rows, None
    pick = [IDENTITY if p.is_identity else p for p in perturbations]
    return rows, Kept(list(perturbations), torch.stack([kept_inputs[p] for p in pick]),
                      torch.stack([kept_probs[p] for p in pick]), reference[0].cpu())


def run_sweep(predict: Predict, images: Iterable[SweepImage],
              perturbations: Sequence[Perturbation], batch_size: int = 16,
              device: torch.device | str = "cpu", keep: Iterable[str] = ()) -> SweepResult:
    """Sweep every image; `keep` names the images whose predictions come back for figures."""
    keep = set(keep)
    rows: list[dict] = []
    kept: dict[str, Kept] = {}
    with torch.inference_mode():
        for item in images:
            image_rows, image_kept = sweep_image(predict, item.to(device), perturbations,
                                                 batch_size, keep=item.name in keep)
            rows += image_rows
            if image_kept is not None:
                kept[item.name] = image_kept
    frame = pd.DataFrame(rows)
    first = ["image", "perturbation", "level", *METRICS]
    return SweepResult(frame[first + [c for c in frame.columns if c not in first]], kept)


def sweep_perturbations(sweep: SweepConfig, families: Sequence[str] | None = None,
                        angle_step: float | None = None) -> list[Perturbation]:
    """The perturbations a SweepConfig asks for (flips only if `sweep.flips`)."""
    if families is None:
        families = ["rotate", "flip", "brightness", "contrast", "noise"]
        if not sweep.flips:
            families.remove("flip")
    return build_perturbations(families, angle_step or sweep.angle_step, sweep.brightness,
                               sweep.contrast, sweep.noise)


# -- aggregation into the pipeline's and the audit's formats --------------------------------------

SET_COLUMNS = ("set_iou_gt_mean", "set_iou_gt_std", "set_iou_gt_min", "set_iou_consistency_mean",
               "set_iou_consistency_std", "set_iou_consistency_min", "set_mad_mean",
               "set_psnr_db_mean")
ROTATION_COLUMNS = ("angle", "iou_gt", "iou_consistency", "mad", "psnr_db", *SET_COLUMNS)
PERTURB_COLUMNS = ("perturbation", "level", *SET_COLUMNS)


def set_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (perturbation, level) over images: mean, std (population) and min of the IoUs, means of
    MAD and dB, and the worst `max_abs_diff`; rows in the frame's order."""
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
        "set_max_abs_diff": grouped["max_abs_diff"].max(),
    })
    return stats.reset_index()


def rotation_table(frame: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """`plots/rotation/*.csv`: per angle, the chosen image's metrics and the set's statistics."""
    rotations = frame[frame["perturbation"] == "rotate"]
    if rotations.empty:
        raise ValueError("the sweep has no rotations")
    single = rotations[rotations["image"] == chosen].set_index("level")
    if single.empty:
        raise ValueError(f"image {chosen!r} is not in the sweep")
    table = set_statistics(rotations).set_index("level")
    for column in ("iou_gt", "iou_consistency", "mad", "psnr_db"):
        table[column] = single[column]
    return table.reset_index().rename(columns={"level": "angle"})[list(ROTATION_COLUMNS)]


def perturbation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`plots/perturb/*.csv`: per non-rotation perturbation and level, the set's statistics."""
    others = frame[frame["perturbation"] != "rotate"]
    if others.empty:
        return pd.DataFrame(columns=list(PERTURB_COLUMNS))
    return set_statistics(others)[list(PERTURB_COLUMNS)]


def _at_quarter_turns(levels: pd.Series) -> pd.Series:
    quarter = levels % 90 == 0
    return quarter & (levels % 360 != 0)


def _mean_or_none(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else float(values.mean())


def equivariance_summary(frame: pd.DataFrame, atol: float) -> dict:
    """`metrics/equivariance/*.json`: the rotation figures a reader wants first.

    worst_angle: the angle of the lowest mean IoU against ground truth (consistency IoU when the
    images have no ground truth); iou_spread: max - min of that mean over angles;
    consistency at 90-degree multiples averages 90, 180 and 270; exact_at_90_multiples: every
    probability within `atol` of the reference there, for every image.
    """
    rotations = set_statistics(frame[frame["perturbation"] == "rotate"])
    key = "set_iou_gt_mean" if rotations["set_iou_gt_mean"].notna().any() else \
        "set_iou_consistency_mean"
    worst = rotations.loc[rotations[key].idxmin()]
    quarter = _at_quarter_turns(rotations["level"])
    off_grid = rotations["level"] % 90 != 0
    flips = set_statistics(frame[frame["perturbation"].isin(["flip_h", "flip_v"])])
    flip_iou = dict(zip(flips["perturbation"], flips["set_iou_consistency_mean"]))
    return {
        "worst_angle": float(worst["level"]),
        "worst_angle_iou": float(worst[key]),
        "iou_spread": float(rotations[key].max() - rotations[key].min()),
        "consistency_iou_at_90_multiples": _mean_or_none(
            rotations.loc[quarter, "set_iou_consistency_mean"]),
        "consistency_iou_off_grid": _mean_or_none(rotations.loc[off_grid, "set_iou_consistency_mean"]),
        "psnr_db_off_grid": _mean_or_none(rotations.loc[off_grid, "set_psnr_db_mean"]),
        "exact_at_90_multiples": bool(quarter.any()
                                      and (rotations.loc[quarter, "set_max_abs_diff"] <= atol).all()),
        "flip_h_consistency_iou": None if "flip_h" not in flip_iou else float(flip_iou["flip_h"]),
        "flip_v_consistency_iou": None if "flip_v" not in flip_iou else float(flip_iou["flip_v"]),
    }


def identity_rows(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose perturbation changes nothing (rotate 0, brightness 0, ...)."""
    return pd.Series([Perturbation(name, level).is_identity
                      for name, level in zip(frame["perturbation"], frame["level"])],
                     index=frame.index, dtype=bool)


def audit_summary(frame: pd.DataFrame, atol: float, worst_images: int = 3) -> dict:
    """`summary.json` of `equiseg audit`: per perturbation, the worst level, the spread over
    levels, means over the levels that change the image, exactness where the model could be
    exact (rotations by 90-degree multiples, flips), and the least consistent images. Spreads
    (max - min of the mean consistency IoU) leave out levels that change nothing."""
    stats = set_statistics(frame)
    stats["identity"] = identity_rows(stats).to_numpy()
    per_perturbation = {}
    for name, part in stats.groupby("perturbation", sort=False):
        moved = part[~part["identity"]]
        worst = part.loc[part["set_iou_consistency_mean"].idxmin()]
        entry = {
            "levels": [float(v) for v in part["level"]],
            "worst_level": float(worst["level"]),
            "worst_consistency_iou": float(worst["set_iou_consistency_mean"]),
            "consistency_iou_spread": float(moved["set_iou_consistency_mean"].max()
                                            - moved["set_iou_consistency_mean"].min())
            if len(moved) else 0.0,
            "mean_consistency_iou": _mean_or_none(moved["set_iou_consistency_mean"]),
            "mean_mad": _mean_or_none(moved["set_mad_mean"]),
            "mean_psnr_db": _mean_or_none(moved["set_psnr_db_mean"]),
            "mean_iou_gt": _mean_or_none(part["set_iou_gt_mean"]),
            "worst_iou_gt": None if part["set_iou_gt_min"].isna().all()
            else float(part["set_iou_gt_min"].min()),
        }
        if name == "rotate":
            quarter = _at_quarter_turns(part["level"])
            entry["exact_at_90_multiples"] = bool(
                quarter.any() and (part.loc[quarter, "set_max_abs_diff"] <= atol).all())
            entry["max_abs_diff_at_90_multiples"] = (
                float(part.loc[quarter, "set_max_abs_diff"].max()) if quarter.any() else None)
        elif name in ("flip_h", "flip_v"):
            entry["exact"] = bool((part["set_max_abs_diff"] <= atol).all())
            entry["max_abs_diff"] = float(part["set_max_abs_diff"].max())
        per_perturbation[name] = entry
    perturbed = frame[~identity_rows(frame)]
    by_image = perturbed.groupby("image", sort=False)["iou_consistency"].mean().sort_values()
    return {
        "images": int(frame["image"].nunique()),
        "atol": atol,
        "perturbations": per_perturbation,
        "least_consistent_images": [{"image": str(name), "mean_consistency_iou": float(value)}
                                    for name, value in by_image.head(worst_images).items()],
    }


def rotation_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Set statistics of the rotations with `angle` for a level: what angle figures plot."""
    rotations = frame[frame["perturbation"] == "rotate"]
    return set_statistics(rotations).rename(columns={"level": "angle"})

