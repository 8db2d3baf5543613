"""Loss and IoU of a segmentation model over a dataset: the training loop's per-epoch metrics and
the evaluate stage's figures.

Everything is summed on the device (no host sync per batch) and, under DDP, summed across
processes, so the numbers are exact rather than averages of per-process averages:
loss = mean over images of the per-image mean BCE; `iou` = pooled (all intersections over all
unions); `iou_per_image` = mean of each image's IoU. The prediction is sigmoid(logit) > 0.5.

Validation protocols are derived, not drawn: every validation image is scored at all four quarter
turns, and a protocol's figure is the expectation over its draw of turns (expected intersections
over expected unions, `protocol_iou`), so it carries no draw noise and needs no retraining.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from equiseg.data.datasets import SegmentationDataset, rot90_turns, turn_probabilities
from equiseg.data.transforms import build_transform
from equiseg.devices import memory_format
from equiseg.metrics import iou_counts, iou_from_counts, pooled_iou
from equiseg.train.distributed import SINGLE_PROCESS, DistContext
from equiseg.train.loaders import evaluation_loader

LossFn = Callable[[Tensor, Tensor], Tensor]
_criterion = nn.BCEWithLogitsLoss(reduction="none")


def bce_per_image(logits: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy of each image, shape (B,), computed in fp32."""
    return _criterion(logits.float(), target.float()).flatten(1).mean(1)


class MetricTotals:
    """Running sums over an epoch: loss, images, intersection, union, sum of per-image IoU."""

    def __init__(self, device: torch.device) -> None:
        # float64 sums keep pixel counts exact; MPS has no float64, so its batches are counted on CPU
        self.device = torch.device("cpu") if device.type == "mps" else device
        self.sums = torch.zeros(5, dtype=torch.float64, device=self.device)

    def add(self, logits: Tensor, target: Tensor, loss_per_image: Tensor) -> None:
        logits, target = logits.detach().to(self.device), target.to(self.device)
        inter, union = iou_counts(logits > 0, target > 0.5)  # sigmoid(z) > 0.5  <=>  z > 0
        self.sums += torch.stack([
            loss_per_image.detach().to(self.device, torch.float64).sum(),
            torch.full((), float(len(logits)), dtype=torch.float64, device=self.device),
            inter.sum(), union.sum(), iou_from_counts(inter, union).sum()])

    def reduce(self, context: DistContext) -> MetricTotals:
        context.all_reduce(self.sums)
        return self

    def result(self) -> dict[str, float]:
        loss, images, _, _, iou_sum = self.sums.tolist()
        images = max(images, 1.0)
        return {"loss": loss / images, "iou": pooled_iou(self.sums[2], self.sums[3]),
                "iou_per_image": iou_sum / images, "intersection": float(self.sums[2]),
                "union": float(self.sums[3])}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, *,
             channels_last: bool = False, context: DistContext = SINGLE_PROCESS,
             loss_fn: LossFn = bce_per_image) -> dict[str, float]:
    """{'loss', 'iou', 'iou_per_image'} of `model` over `loader` (this rank's share, then summed).

    Always in fp32, also when training uses bf16: reported metrics must not depend on mixed
    precision, and a Group U-Net must score the same at each quarter turn to fp32 precision."""
    was_training = model.training
    model.eval()
    totals = MetricTotals(device)
    layout = memory_format(channels_last)
    for images, masks in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=layout)
        masks = masks.to(device, non_blocking=True)
        logits = model(images)
        totals.add(logits, masks, loss_fn(logits, masks))
    model.train(was_training)
    return totals.reduce(context).result()


def protocol_iou(per_turn: Sequence[Mapping[str, float]], protocol: str) -> float:
    """Expected pooled IoU under `protocol` from the totals at 0, 90, 180 and 270 degrees."""
    weights = turn_probabilities(protocol)
    inter = sum(w * turn["intersection"] for w, turn in zip(weights, per_turn))
    union = sum(w * turn["union"] for w, turn in zip(weights, per_turn))
    return pooled_iou(torch.tensor(inter), torch.tensor(union))


def quarter_turn_sets(val_rows: pd.DataFrame, *, image_size: int, pad_size: int,
                      cache: bool) -> list[Dataset]:
    """Every validation image turned by 0, 90, 180 and 270 degrees: the one fixed validation set
    of training's per-epoch curve and of the evaluate stage."""
    plain = build_transform("minimal", image_size, pad_size)
    return [SegmentationDataset(val_rows, plain, cache=cache, fixed_rot90=k) for k in range(4)]


def quarter_turn_figures(per_turn: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Training's per-epoch validation figures: loss and per-image IoU averaged over the four
    turns; `iou` expected under uniform turns, `iou_seed` under the seed's RandomRotate90."""
    return {"loss": sum(t["loss"] for t in per_turn) / 4,
            "iou": protocol_iou(per_turn, "uniform"), "iou_seed": protocol_iou(per_turn, "seed"),
            "iou_per_image": sum(t["iou_per_image"] for t in per_turn) / 4}


def unaugmented_set(rows: pd.DataFrame, *, image_size: int, pad_size: int,
                    cache: bool) -> Dataset:
    """Images as the model sees them at validation: resized and padded, nothing else."""
    return SegmentationDataset(rows, build_transform("minimal", image_size, pad_size), cache=cache)


@torch.no_grad()
def image_scores(model: nn.Module, dataset: Dataset, device: torch.device, *, batch_size: int,
                 channels_last: bool = False, loss_fn: LossFn = bce_per_image) -> dict[str, Tensor]:
    """Each image's intersection, union and loss (eval mode, fp32), in dataset order, on the CPU."""
    model.to(device, memory_format=memory_format(channels_last)).eval()
    layout = memory_format(channels_last)
    scores: dict[str, list[Tensor]] = {"intersection": [], "union": [], "loss": []}
    for images, masks in evaluation_loader(dataset, batch_size=batch_size):
        images = images.to(device).contiguous(memory_format=layout)
        masks = masks.to(device)
        logits = model(images)
        inter, union = iou_counts(logits > 0, masks > 0.5)
        for key, value in zip(scores, (inter, union, loss_fn(logits, masks).double())):
            scores[key].append(value.cpu())
    return {key: torch.cat(values) for key, values in scores.items()}


def _totals(scores: Mapping[str, Tensor]) -> dict[str, float]:
    return {"loss": float(scores["loss"].mean()), "intersection": float(scores["intersection"].sum()),
            "union": float(scores["union"].sum()),
            "iou": pooled_iou(scores["intersection"], scores["union"])}


def drawn_iou(per_turn: Sequence[Mapping[str, Tensor]], protocol: str, seed: int) -> float:
    """Pooled IoU of one draw of turns, as the seed's code scores: image i at the turn
    `rot90_turns(seed, i, protocol)`."""
    turns = torch.tensor([rot90_turns(seed, i, protocol)
                          for i in range(len(per_turn[0]["intersection"]))])
    picked = {key: torch.stack([t[key] for t in per_turn]).gather(0, turns[None])[0]
              for key in ("intersection", "union")}
    return pooled_iou(picked["intersection"], picked["union"])


def evaluation_record(train: Mapping[str, Tensor], per_turn: Sequence[Mapping[str, Tensor]], *,
                      draw_seed: int) -> dict[str, float]:
    """The evaluate stage's figures of one trained model from its `image_scores` on the
    unaugmented training set and on the validation set at each quarter turn.

    val_iou / val_iou_seed: expected pooled IoU under uniform turns / the seed's RandomRotate90
    (no draw noise); *_draw: the single draw under `draw_seed`; rot<k>_*: every image at k degrees.
    """
    turns = [_totals(t) for t in per_turn]
    train_totals = _totals(train)
    record = {"train_loss": train_totals["loss"], "train_iou": train_totals["iou"],
              "val_loss": sum(t["loss"] for t in turns) / 4}
    for protocol, suffix in (("uniform", ""), ("seed", "_seed")):
        record[f"val_iou{suffix}"] = protocol_iou(turns, protocol)
        record[f"val_iou_{protocol}_draw"] = drawn_iou(per_turn, protocol, draw_seed)
    for k, t in enumerate(turns):
        record[f"rot{90 * k}_val_iou"], record[f"rot{90 * k}_val_loss"] = t["iou"], t["loss"]
    ious = [t["iou"] for t in turns]
    record["val_iou_turn_spread"] = max(ious) - min(ious)
    return record
