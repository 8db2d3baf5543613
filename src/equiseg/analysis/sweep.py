"""Perturbation sweeps of any predict function over any images.

One code path serves the `rotation_sweep` stage and `equiseg audit`, so their numbers cannot drift
apart. For every image: predict on the image itself (the reference) and on each perturbed copy
(many copies per forward pass), undo geometric perturbations on the output, then score

- `iou_consistency`: IoU of the restored mask and the reference mask inside the valid region
  (label-free: a perfectly equivariant/invariant model scores 1.0);
- `mad`, `psnr_db`, `max_abs_diff`: mean absolute difference, PSNR (dB, capped at
  `metrics.PSNR_CAP_DB`) and largest difference of the probability maps, inside the valid region;
  `mse` and `valid_pixels` let the summary pool squared errors over a set (EQ-R);
- `max_abs_diff_raw`, `raw_scale`: the same largest difference on the model's raw output (logits)
  and the largest raw magnitude, for the exactness test with a relative tolerance;
- `iou_gt`: IoU of the restored mask and the ground truth over the image where it stayed on the
  canvas (the valid region: at 0 and at multiples of 90 degrees the whole unpadded image, as in
  the seed's protocol; at other angles the corners that left a tight canvas are not scored,
  since no model could predict them) (NaN without a ground truth);
- `degenerate`, `degenerate_reason`: the prediction on this image, or on this perturbed copy, is
  (nearly) empty, (nearly) everywhere, or mostly hovering at the decision threshold, so its
  consistency says little (two empty masks agree perfectly);
- `reference_foreground_share`, `reference_raw_range`: facts about the prediction on the
  unperturbed image (the same on every row of an image): the share of the image's pixels that
  are foreground, and the largest max - min of its raw output over them (0 for a constant
  output).
  `equiseg.analysis.judgeable` decides from them whether the image can show equivariance.

Outputs are probabilities (B, K, H, W). One channel: foreground = p > 0.5. Several channels are
mutually exclusive classes (softmax): the mask of class k is argmax == k, IoUs are per class and
averaged over classes (background included, 1.0 for a class absent from both masks).
Restored probability maps are de-rotated (shifted back, zoomed back: each family's inverse in
`equiseg.analysis.families`) bilinearly and thresholded afterwards (thresholded bilinear), the
seed's "rotate the mask back" up to boundary pixels; exact at multiples of 90 and whole-pixel
shifts.

How a row is scored lives in `equiseg.analysis.frame_scores`; the set statistics, tables and
summaries of its frames in `equiseg.analysis.summary`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor

from equiseg.analysis.families import REGISTRY, family_settings
from equiseg.analysis.frame_scores import reference_facts, score_restored
from equiseg.analysis.perturbations import (
    IDENTITY,
    Perturbation,
    build_perturbations,
    noise_field,
    perturb,
    restore,
    valid_regions,
)
from equiseg.analysis.predictor import Predict
from equiseg.analysis.sweep_settings import SweepConfig

METRICS = ("iou_gt", "iou_consistency", "mad", "psnr_db", "max_abs_diff")


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


def _predict(predict: Predict, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """(raw, probabilities) from a Predictor; a plain predict function's raw output is its
    probabilities."""
    scores = getattr(predict, "scores", None)
    if scores is not None:
        return scores(inputs)
    probs = predict(inputs)
    return probs, probs


def sweep_image(predict: Predict, item: SweepImage, perturbations: Sequence[Perturbation],
                batch_size: int, keep: bool = False) -> tuple[list[dict], Kept | None]:
    """Rows (one per perturbation, in order) for one image, and its predictions if `keep`."""
    noise = noise_field(item.name, item.image.shape).to(item.image.device)
    to_predict = [IDENTITY] + [p for p in perturbations if not p.is_identity]
    reference = reference_raw = None
    facts: dict = {}
    scored: dict[Perturbation, dict] = {}
    kept_inputs, kept_probs = {}, {}
    for start in range(0, len(to_predict), batch_size):
        chunk = to_predict[start:start + batch_size]
        inputs = perturb(chunk, item.image, item.footprint, noise)
        raw, probs = _predict(predict, inputs)
        if reference is None:
            reference, reference_raw = probs[:1], raw[:1]
            facts = reference_facts(reference, reference_raw, item.footprint)
        scores = score_restored(restore(chunk, probs), reference,
                                valid_regions(chunk, item.footprint), item.target, item.footprint,
                                restore(chunk, raw), reference_raw)
        for i, p in enumerate(chunk):
            row = {name: float(values[i]) for name, values in scores.items()
                   if name != "degenerate_reason"}
            reason = scores["degenerate_reason"][i]
            scored[p] = {**row, "degenerate": bool(reason), "degenerate_reason": reason, **facts}
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


def sweep_perturbations(sweep: SweepConfig) -> list[Perturbation]:
    """The perturbations a SweepConfig asks for: every family of the registry
    (`equiseg.analysis.families`; flips only if `sweep.flips`), each at the levels of its
    setting (`sweep.angle_step`, `sweep.<level list>`)."""
    families = [f for f in REGISTRY if f != "flip" or sweep.flips]
    return build_perturbations(families, **family_settings(sweep))
