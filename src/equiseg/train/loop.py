"""The training loop: AdamW on per-image BCE, per-epoch metrics, checkpoints, resume, DDP.

`fit` trains a model for `epochs` epochs, evaluating on the validation set after each
one. At the end of every epoch rank 0 writes a checkpoint (weights, optimiser, learning-rate
schedule, RNG states, epoch, history); if one for the same run exists when `fit` starts, it
resumes after that epoch and ends with exactly the numbers an uninterrupted run would give (on
CPU; see README for GPUs).
A non-finite training loss stops the run at the end of its epoch, before that epoch's
checkpoint, so the last good one is kept.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from equiseg.devices import autocast, memory_format, pin_memory, use_bf16, use_channels_last
from equiseg.errors import EquisegError, InvalidValue
from equiseg.train.checkpoints import file_sha256, load_checkpoint, save_checkpoint
from equiseg.train.distributed import SINGLE_PROCESS, DistContext
from equiseg.train.evaluation import (
    LossFn,
    MetricTotals,
    bce_per_image,
    evaluate,
    quarter_turn_figures,
)
from equiseg.train.loaders import evaluation_loader, training_loader
from equiseg.train.seeding import capture_rng_state, deterministic_kernels, restore_rng_state

# train_*: running totals over the epoch's augmented training batches, in training mode, as the
# weights change (the seed's "train" figures); val_*: after the epoch, eval mode, fp32, every
# validation image at all four quarter turns (`quarter_turn_figures`): val_iou expected under
# uniform turns, val_iou_seed under the seed's RandomRotate90(p=0.5).
HISTORY_COLUMNS = ("epoch", "train_loss", "train_iou", "train_iou_per_image",
                   "val_loss", "val_iou", "val_iou_seed", "val_iou_per_image")


class NonFiniteLossError(EquisegError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]]  # one row per epoch, HISTORY_COLUMNS
    epoch_seconds: list[float] = field(default_factory=list)
    resumed_after_epoch: int = 0

    @property
    def seconds(self) -> float:
        """Time spent in completed epochs, including those before a resume."""
        return sum(self.epoch_seconds)

    def final_metrics(self) -> dict[str, float]:
        """The metrics/train JSON: the last epoch's row plus `seconds`."""
        return {**self.history[-1], "seconds": round(self.seconds, 3)}


def per_process_batch_size(batch_size: int, world_size: int) -> int:
    """`batch_size` is the global batch; each of `world_size` processes takes an equal part."""
    if batch_size % world_size:
        raise InvalidValue("batch_size", f"is {batch_size}, which {world_size} processes "
                           "cannot share equally", f"a multiple of {world_size}")
    return batch_size // world_size


# TrainConfig fields that are `fit` keywords of the same name: what the train stage passes on.
FIT_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "bf16", "bf16_cpu",
               "channels_last", "deterministic", "workers")


def fit(model: nn.Module, train_set: Any, val_sets: Sequence[Any], *, device: torch.device, epochs: int,
        batch_size: int, lr: float, weight_decay: float = 0.0, schedule: str = "constant",
        bf16: bool = False, bf16_cpu: bool = False, channels_last: bool = False,
        deterministic: bool = True, workers: int = 0, seed: int = 0,
        checkpoint: Path | None = None, fingerprint: str = "",
        context: DistContext = SINGLE_PROCESS, loss_fn: LossFn = bce_per_image,
        progress: bool = True, description: str = "train") -> TrainResult:
    """Train `model` (built and seeded by the caller) and return it with its per-epoch history.

    `val_sets`: the validation images at 0, 90, 180 and 270 degrees (`quarter_turn_sets`).

    AdamW(`lr`, `weight_decay`) for `epochs` epochs of global batch `batch_size` (split over
    `context.world_size` processes), with a constant or `onecycle` `schedule`; `bf16` autocast
    where the device has it (on CPUs only with `bf16_cpu`), `channels_last` where it helps,
    `deterministic` kernels, `workers` loader processes.
    `seed`: the run's training seed (shuffling and augmentation draws derive from it).
    `checkpoint`: where to resume from and save to (rank 0 saves); None disables both.
    `loss_fn(logits, masks)` returns the loss of each image, shape (B,).
    """
    with deterministic_kernels(deterministic, device):
        return _train(model, train_set, val_sets, device=device, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, schedule=schedule,
                      bf16=use_bf16(bf16, device, on_cpu=bf16_cpu),
                      channels_last=use_channels_last(channels_last, device), workers=workers,
                      seed=seed, checkpoint=checkpoint, fingerprint=fingerprint, context=context,
                      loss_fn=loss_fn, progress=progress, description=description)


def _train(model: nn.Module, train_set: Any, val_sets: Sequence[Any], *, device: torch.device, epochs: int,
           batch_size: int, lr: float, weight_decay: float, schedule: str, bf16: bool,
           channels_last: bool, workers: int, seed: int, checkpoint: Path | None,
           fingerprint: str, context: DistContext, loss_fn: LossFn, progress: bool,
           description: str) -> TrainResult:
    batch_size = per_process_batch_size(batch_size, context.world_size)
    model.to(device, memory_format=memory_format(channels_last))
    loader_options = {"rank": context.rank, "world_size": context.world_size,
                      "workers": workers, "pin_memory": pin_memory(device)}
    train_loader, sampler = training_loader(train_set, batch_size=batch_size, seed=seed,
                                            **loader_options)
    val_loaders = [evaluation_loader(v, batch_size=batch_size, **loader_options) for v in val_sets]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = learning_rate_schedule(optimizer, schedule, lr=lr, epochs=epochs,
                                       steps_per_epoch=len(train_loader))

    result = TrainResult(model=model, history=[])
    state = load_checkpoint(checkpoint, fingerprint) if checkpoint else None
    if state is not None:
        _resume(state, result, optimizer, scheduler, train_loader.generator)
        if context.is_main and progress:
            print(f"resuming {description} from {checkpoint} after epoch {state['epoch']} "
                  f"of {epochs}", file=sys.stderr)

    network: nn.Module = model
    if context.is_distributed:  # GroupNorm only, no buffers to sync: skip the per-step broadcast
        network = DistributedDataParallel(model, device_ids=[device.index] if device.index is not None
                                          else None, broadcast_buffers=False)
    steps = len(train_loader)
    bar = tqdm(total=epochs * steps, initial=result.resumed_after_epoch * steps,
               desc=description, unit="batch", disable=not (progress and context.is_main),
               dynamic_ncols=True)
    try:
        for epoch in range(result.resumed_after_epoch + 1, epochs + 1):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            totals, step_losses = _train_one_epoch(network, train_loader, optimizer, scheduler,
                                                   loss_fn, device, bf16=bf16,
                                                   channels_last=channels_last, bar=bar)
            _stop_if_not_finite(step_losses, epoch, context, checkpoint)
            train = totals.reduce(context).result()
            val = quarter_turn_figures([evaluate(model, loader, device,
                                                 channels_last=channels_last, context=context,
                                                 loss_fn=loss_fn) for loader in val_loaders])
            if not math.isfinite(val["loss"]):
                raise NonFiniteLossError(f"validation loss is {val['loss']} after epoch {epoch}; "
                                         f"{_advice(checkpoint)}")
            result.history.append({"epoch": epoch, **{f"train_{k}": train[k] for k in
                                                     ("loss", "iou", "iou_per_image")},
                                   **{f"val_{k}": v for k, v in val.items()}})
            result.epoch_seconds.append(time.perf_counter() - started)
            bar.set_postfix(epoch=epoch, train_loss=f"{train['loss']:.4f}",
                            val_loss=f"{val['loss']:.4f}", val_iou=f"{val['iou']:.3f}")
            if checkpoint is not None and context.is_main:
                snapshot = _checkpoint_state(fingerprint, model, optimizer, scheduler,
                                             train_loader.generator, result)
                save_checkpoint(checkpoint, snapshot)
    finally:
        bar.close()  # before any error message, so that it starts on its own line
    return result


def _resume(state: dict, result: TrainResult, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler | None,
            generator: torch.Generator) -> None:
    """Put a checkpoint's weights, optimiser, schedule, random states and history back.

    The state is loaded on CPU: the RNG states must stay there; load_state_dict moves the rest to
    the model's device."""
    result.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"], generator)
    result.history, result.epoch_seconds = list(state["history"]), list(state["epoch_seconds"])
    result.resumed_after_epoch = state["epoch"]


def learning_rate_schedule(optimizer: torch.optim.Optimizer, schedule: str, *, lr: float,
                           epochs: int, steps_per_epoch: int
                           ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """None for the seed's `constant` rate; for `onecycle`, a per-step warm-up to `lr` then cosine
    annealing to near zero over the whole run (more accuracy per epoch when epochs are few). The
    schedule spans `epochs`, so a run's epoch count is part of its result."""
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                               steps_per_epoch=steps_per_epoch)


def _checkpoint_state(fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                      generator: torch.Generator, result: TrainResult) -> dict[str, Any]:
    """Everything needed to continue after the last finished epoch as if never stopped."""
    return {"fingerprint": fingerprint, "epoch": result.history[-1]["epoch"],
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": capture_rng_state(generator), "history": result.history,
            "epoch_seconds": result.epoch_seconds}


def _train_one_epoch(network: nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler | None, loss_fn: LossFn,
                     device: torch.device, *, bf16: bool, channels_last: bool,
                     bar: tqdm) -> tuple[MetricTotals, list[torch.Tensor]]:
    """One pass over this process's shard; metric sums and step losses stay on the device."""
    network.train()
    totals, step_losses = MetricTotals(device), []
    for images, masks in loader:
        images = images.to(device, non_blocking=True).contiguous(
            memory_format=memory_format(channels_last))
        masks = masks.to(device, non_blocking=True)
        with autocast(device, bf16):
            logits = network(images)
        per_image = loss_fn(logits, masks)
        loss = per_image.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        totals.add(logits, masks, per_image)
        step_losses.append(loss.detach())
        bar.update()
    return totals, step_losses


def _stop_if_not_finite(step_losses: list[torch.Tensor], epoch: int, context: DistContext,
                        checkpoint: Path | None) -> None:
    """Raise if any step's loss (on any process) was NaN/inf: one host sync per epoch, not per step."""
    if not step_losses:
        return
    finite = torch.isfinite(torch.stack(step_losses))
    positions = torch.arange(1, len(step_losses) + 1, device=finite.device, dtype=torch.float32)
    first_bad = torch.where(finite, torch.full_like(positions, math.inf), positions).min()
    first_bad = float(context.all_reduce(first_bad.reshape(1), op="min")[0])
    if math.isfinite(first_bad):
        raise NonFiniteLossError(f"training loss became non-finite at epoch {epoch}, step "
                                 f"{int(first_bad)}; {_advice(checkpoint)}")


def _advice(checkpoint: Path | None) -> str:
    kept = (f"the last good checkpoint is kept at {checkpoint}"
            if checkpoint is not None and checkpoint.exists() else "no checkpoint was written")
    return f"{kept}; lower `lr` or check the data"


def run_settings(model: str, augment: str, seed: int, world_size: int, device: torch.device, *,
                 architecture: dict[str, Any], data: dict[str, Any], train: dict[str, Any],
                 full_augment: dict[str, Any]) -> dict[str, Any]:
    """Everything that changes a training run's result: what its checkpoint fingerprint hashes.

    The whole `data` settings and the content of their `split_file` (the images, their geometry
    and the split), the `architecture`, the `full_augment` settings, seeds, the `train` settings
    except those that only change speed or place (workers, checkpoint_dir; `device` enters as the
    device actually used), and the number of processes (it changes the order of floating-point
    sums). The settings come as plain dicts, as the train stage reads them from params.yaml.
    """
    kept = {k: v for k, v in train.items() if k not in ("workers", "checkpoint_dir", "device")}
    return {"model": model, "augment": augment, "architecture": dict(architecture),
            "data": dict(data), "split_sha256": file_sha256(data["split_file"]),
            "train": kept, "seed": seed, "validation": "quarter_turns",
            "full_augment": dict(full_augment), "world_size": world_size,
            "device": device.type}
