"""Loss and IoU of a segmentation model over a dataset: the one computation the training loop's
per-epoch metrics and the evaluate stage share.

Everything is summed on the device (no host sync per batch) and, under DDP, summed across
processes, so the numbers are exact rather than averages of per-process averages:
loss = mean over images of the per-image mean BCE; `iou` = pooled (all intersections over all
unions); `iou_per_image` = mean of each image's IoU. The prediction is sigmoid(logit) > 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from equiseg.analysis.metrics import iou_counts, iou_from_counts, pooled_iou
from equiseg.data.datasets import SegmentationDataset
from equiseg.data.transforms import build_transform
from equiseg.train.devices import memory_format
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
                "iou_per_image": iou_sum / images}


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


def validation_set(val_rows: pd.DataFrame, *, image_size: int, pad_size: int, cache: bool,
                   seed: int, protocol: str = "uniform") -> Dataset:
    """The validation protocol: each image turned by k*90 degrees, k drawn from (seed, i) under
    `protocol` ('uniform': k uniform in 0..3; 'seed': albumentations 1.x RandomRotate90(p=0.5))."""
    return SegmentationDataset(val_rows, build_transform("minimal", image_size, pad_size),
                               cache=cache, rot90_seed=seed, rot90_protocol=protocol)


def evaluation_sets(train_rows: pd.DataFrame, val_rows: pd.DataFrame, *, image_size: int,
                    pad_size: int, cache: bool, seed: int,
                    protocol: str = "uniform") -> dict[str, Dataset]:
    """'val' (`validation_set` under `protocol`), 'rot0'..'rot270' (every image turned by k*90
    degrees) and 'train' (training images without augmentation)."""
    plain = build_transform("minimal", image_size, pad_size)
    sets = {"val": validation_set(val_rows, image_size=image_size, pad_size=pad_size, cache=cache,
                                  seed=seed, protocol=protocol)}
    for k in range(4):
        sets[f"rot{90 * k}"] = SegmentationDataset(val_rows, plain, cache=cache, fixed_rot90=k)
    sets["train"] = SegmentationDataset(train_rows, plain, cache=cache)
    return sets


def evaluate_trained(model: nn.Module, datasets: Mapping[str, Dataset], device: torch.device, *,
                     batch_size: int, channels_last: bool = False) -> dict[str, dict[str, float]]:
    """Metrics of one model on each named dataset, with the loop's own settings and batching."""
    model.to(device, memory_format=memory_format(channels_last))
    return {name: evaluate(model, evaluation_loader(data, batch_size=batch_size), device,
                           channels_last=channels_last)
            for name, data in datasets.items()}


def evaluation_record(results: Mapping[str, Mapping[str, float]]) -> dict:
    """The metrics/evaluate JSON: protocol val, no-augmentation train, and each rot90 k."""
    record = {"train_loss": results["train"]["loss"], "train_iou": results["train"]["iou"],
              "val_loss": results["val"]["loss"], "val_iou": results["val"]["iou"],
              "val_iou_per_image": results["val"]["iou_per_image"]}
    for k in range(4):
        rotated = results[f"rot{90 * k}"]
        record[f"rot{90 * k}"] = {"val_loss": rotated["loss"], "val_iou": rotated["iou"]}
    return record
