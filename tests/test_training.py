"""The training library: exact epoch metrics, sharded batches, seeds, checkpoints, resume, NaN stop."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from equiseg import devices
from equiseg.config import TrainConfig, parse_params
from equiseg.devices import select_device, use_bf16, use_channels_last
from equiseg.errors import InvalidValue
from equiseg.nn.models import build_model
from equiseg.train.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from equiseg.train.evaluation import MetricTotals, bce_per_image, evaluate
from equiseg.train.loaders import ShardSampler, evaluation_loader, training_loader
from equiseg.train.loop import (
    FIT_OPTIONS,
    NonFiniteLossError,
    fit,
    learning_rate_schedule,
    per_process_batch_size,
    run_settings,
)
from equiseg.train.seeding import capture_rng_state, derive_seed, restore_rng_state, seed_everything

CPU = torch.device("cpu")
TINY = {"filters": (4, 4, 8, 8), "norm_groups": 2}


def tiny_data(n: int, size: int = 32, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    return TensorDataset(images, (images[:, :1] > 0.3).float())


def tiny_val(n: int = 8, seed: int = 1) -> list[TensorDataset]:
    """A validation set at 0, 90, 180 and 270 degrees, as `quarter_turn_sets` gives the loop."""
    images, masks = tiny_data(n, seed=seed).tensors
    return [TensorDataset(torch.rot90(images, k, (2, 3)), torch.rot90(masks, k, (2, 3)))
            for k in range(4)]


def tiny_options(**changes) -> dict:
    """`fit`'s training keywords, translated from a TrainConfig as the train stage does."""
    config = dataclasses.replace(TrainConfig(epochs=2, batch_size=4, lr=0.01, device="cpu"),
                                 **changes)
    return {key: getattr(config, key) for key in FIT_OPTIONS}


def tiny_model() -> nn.Module:
    seed_everything(0)
    return build_model("unet", **TINY)


class FirstChannel(nn.Module):
    """Logits = 2 * the first input channel - 0.5: each image's prediction depends on it alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x[:, :1] - 0.5


# --- metrics -------------------------------------------------------------------------------------

def test_pooled_and_per_image_iou_and_loss_match_hand_computation():
    target = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0, :] = 1  # image 0: 2 foreground pixels
    logits = torch.full((2, 1, 2, 2), -5.0)
    logits[0, 0, 0, 0] = 5.0  # image 0: predicts 1 of its 2 pixels -> IoU 1/2
    logits[1, 0, 1, 1] = 5.0  # image 1: empty target, 1 false positive -> IoU 0/1
    totals = MetricTotals(CPU)
    totals.add(logits, target, bce_per_image(logits, target))
    result = totals.result()
    assert result["iou"] == pytest.approx(1 / 3)  # pooled: (1 + 0) / (2 + 1)
    assert result["iou_per_image"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["loss"] == pytest.approx(float(nn.BCEWithLogitsLoss()(logits, target)))


def test_two_empty_masks_count_as_perfect_agreement():
    totals = MetricTotals(CPU)
    empty = torch.zeros(1, 1, 4, 4)
    totals.add(empty - 3, empty, bce_per_image(empty - 3, empty))
    assert totals.result()["iou"] == 1.0 and totals.result()["iou_per_image"] == 1.0


def test_epoch_metrics_do_not_depend_on_batch_size():
    data = tiny_data(10)
    model = FirstChannel()
    results = [evaluate(model, evaluation_loader(data, batch_size=b), CPU) for b in (1, 3, 10)]
    for other in results[1:]:  # pixel counts are exact; the fp32 per-image loss nearly so
        assert other["iou"] == results[0]["iou"]
        assert other["iou_per_image"] == pytest.approx(results[0]["iou_per_image"], rel=1e-12)
        assert other["loss"] == pytest.approx(results[0]["loss"], rel=1e-6)


def test_shards_of_an_evaluation_cover_every_item_exactly_once():
    shards = [list(ShardSampler(10, rank, 3)) for rank in range(3)]
    assert sorted(itertools.chain(*shards)) == list(range(10))


# --- batches and seeds ---------------------------------------------------------------------------

class RandomItems(Dataset):
    """Each item draws from torch's generator, as equiseg.data.datasets' augmentation does."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([index, int(torch.randint(0, 10**6, ()))])


def _epoch_items(world_size: int, epoch: int, workers: int = 0) -> list[list[tuple[int, int]]]:
    """Per batch position, the (index, random draw) pairs of all ranks together."""
    batches = []
    for rank in range(world_size):
        loader, sampler = training_loader(RandomItems(), batch_size=4 // world_size, seed=7,
                                          rank=rank, world_size=world_size, workers=workers)
        sampler.set_epoch(epoch)
        for k, batch in enumerate(loader):
            if len(batches) <= k:
                batches.append([])
            batches[k] += [tuple(row) for row in batch.tolist()]
    return [sorted(b) for b in batches]


def test_two_processes_together_draw_the_same_batches_and_augmentations_as_one():
    assert _epoch_items(2, epoch=3) == _epoch_items(1, epoch=3)


def test_loader_workers_do_not_change_what_is_drawn():
    assert _epoch_items(1, epoch=2, workers=2) == _epoch_items(1, epoch=2)


def test_each_epoch_is_reshuffled_and_reaugmented_but_reproducible():
    assert _epoch_items(1, epoch=1) == _epoch_items(1, epoch=1)
    assert _epoch_items(1, epoch=1) != _epoch_items(1, epoch=2)


def test_item_draws_leave_the_global_generator_alone():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    loader, sampler = training_loader(RandomItems(), batch_size=4, seed=0)
    sampler.set_epoch(1)
    list(loader)
    assert torch.equal(torch.rand(3), expected)


def test_rng_state_round_trip_replays_the_same_numbers():
    import random

    import numpy as np
    generator = torch.Generator().manual_seed(3)
    state = capture_rng_state(generator)
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=generator))
    restore_rng_state(state, generator)
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=generator))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2]) and torch.equal(first[3], again[3])


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
    assert 0 <= derive_seed("x") < 2**32


# --- devices and settings ------------------------------------------------------------------------

def test_auto_device_falls_back_to_cpu_and_gpu_options_are_harmless_there():
    if not torch.cuda.is_available():
        assert select_device("auto").type in ("cpu", "mps")
    assert select_device("cpu") == CPU
    assert not use_bf16(True, CPU)
    assert use_channels_last(False, CPU) is False and use_channels_last(True, CPU) is True



def test_bf16_on_cpu_only_when_asked_and_only_where_the_cpu_has_it(monkeypatch):
    assert not use_bf16(True, CPU, on_cpu=False)  # train.bf16 alone is about CUDA
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert not use_bf16(True, CPU, on_cpu=True)  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert use_bf16(False, CPU, on_cpu=True)


@pytest.mark.skipif(not devices.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_cpu_training_is_mixed_precision_and_still_deterministic():
    train, val = tiny_data(16), tiny_val()
    fp32 = fit(tiny_model(), train, val, device=CPU, **tiny_options(), progress=False)
    bf16 = [fit(tiny_model(), train, val, device=CPU, **tiny_options(bf16_cpu=True),
                progress=False)
            for _ in range(2)]
    assert bf16[0].history == bf16[1].history
    assert bf16[0].history != fp32.history
    assert bf16[0].history[-1]["train_loss"] == pytest.approx(fp32.history[-1]["train_loss"],
                                                              rel=0.1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_names_the_argument():
    with pytest.raises(InvalidValue, match="'device' is 'cuda'"):
        select_device("cuda")


def test_global_batch_must_split_evenly_over_processes():
    assert per_process_batch_size(16, 2) == 8
    with pytest.raises(InvalidValue, match="'batch_size' is 16"):
        per_process_batch_size(16, 3)


# --- checkpoints ---------------------------------------------------------------------------------

def _settings(tmp_path, seed=0, **train):
    split = tmp_path / "split.csv"
    if not split.exists():
        split.write_text("id,species,split,image,mask\n")
    params = parse_params({"architectures": {"unet": {}, "gunet": {"group": "p4"}},
                           "data": {"split_file": str(split)}, "train": train})
    return run_settings("unet", "full", seed, 1, CPU,
                        architecture=dataclasses.asdict(params.architecture("unet")),
                        data=dataclasses.asdict(params.data), train=dataclasses.asdict(params.train),
                        full_augment=dataclasses.asdict(params.full_augment))


def test_fingerprint_changes_with_what_changes_the_result_only(tmp_path):
    base = run_fingerprint(_settings(tmp_path))
    assert run_fingerprint(_settings(tmp_path, lr=0.002)) != base
    assert run_fingerprint(_settings(tmp_path, seed=1)) != base
    assert run_fingerprint(_settings(tmp_path, workers=3, checkpoint_dir="elsewhere")) == base
    (tmp_path / "split.csv").write_text("id,species,split,image,mask\n0010001,001,val,a,b\n")
    assert run_fingerprint(_settings(tmp_path)) != base


def test_checkpoint_of_another_run_or_a_corrupt_one_is_not_resumed(tmp_path, capsys):
    path = checkpoint_path(tmp_path, "unet-full-seed0", "abc")
    assert path.name == "unet-full-seed0-abc.ckpt"
    assert load_checkpoint(path, "abc") is None  # none yet
    save_checkpoint(path, {"fingerprint": "abc", "epoch": 1})
    assert load_checkpoint(path, "abc")["epoch"] == 1
    assert load_checkpoint(path, "other") is None
    path.write_bytes(b"not a checkpoint")
    assert load_checkpoint(path, "abc") is None
    assert "starting from scratch" in capsys.readouterr().err


# --- the loop ------------------------------------------------------------------------------------

class FrozenFirstChannel(FirstChannel):
    """FirstChannel with one parameter for the optimiser (trained with lr 0, it never changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0 * self.unused


class ShiftedFirstChannel(Dataset):
    """An augmentation: every image's first channel raised by 1 (so its prediction changes)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, mask = self.base[index]
        return image + torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1), mask


def test_history_train_figures_are_running_values_over_the_augmented_batches():
    """What the report's "seed's quantities" table relies on: train_loss and train_iou are
    summed over the epoch's (augmented) training batches, not a re-scoring of plain images."""
    plain = tiny_data(16)
    augmented = ShiftedFirstChannel(plain)
    model = FrozenFirstChannel()
    result = fit(model, augmented, tiny_val(), device=CPU,
                 **tiny_options(epochs=1, lr=0.0, weight_decay=0.0), progress=False)
    on_augmented = evaluate(model, evaluation_loader(augmented, batch_size=4), CPU)
    on_plain = evaluate(model, evaluation_loader(plain, batch_size=4), CPU)
    row = result.history[-1]
    assert row["train_loss"] == pytest.approx(on_augmented["loss"], rel=1e-6)
    assert row["train_iou"] == pytest.approx(on_augmented["iou"], rel=1e-6)
    assert row["train_iou"] != pytest.approx(on_plain["iou"], rel=1e-3)


def test_training_lowers_the_loss_and_reports_one_row_per_epoch():
    before = torch.are_deterministic_algorithms_enabled()
    result = fit(tiny_model(), tiny_data(16), tiny_val(), device=CPU,
                 **tiny_options(epochs=3),
                 progress=False)
    assert torch.are_deterministic_algorithms_enabled() == before  # global flags restored
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert set(result.final_metrics()) == {*result.history[0], "seconds"}


def test_resuming_from_a_checkpoint_gives_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    train, val = tiny_data(16), tiny_val()
    straight = fit(tiny_model(), train, val, device=CPU, **tiny_options(epochs=3), progress=False)
    checkpoint = tmp_path / "run.ckpt"
    fit(tiny_model(), train, val, device=CPU, **tiny_options(epochs=1), checkpoint=checkpoint,
        fingerprint="run", progress=False)  # as if stopped after epoch 1
    resumed = fit(tiny_model(), train, val, device=CPU, **tiny_options(epochs=3),
                  checkpoint=checkpoint,
                  fingerprint="run", progress=False)
    assert resumed.resumed_after_epoch == 1
    assert resumed.history == straight.history
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)


def test_onecycle_warms_up_to_train_lr_then_anneals_to_near_zero_over_the_whole_run():
    optimizer = torch.optim.AdamW(tiny_model().parameters(), lr=0.01)
    schedule = learning_rate_schedule(optimizer, "onecycle", lr=0.01, epochs=3, steps_per_epoch=10)
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    peak = rates.index(max(rates))
    assert max(rates) == pytest.approx(0.01) and 0 < peak < 29
    assert rates[0] < 0.01 / 10 and rates[-1] < 0.01 / 100
    assert all(a <= b for a, b in itertools.pairwise(rates[:peak + 1]))  # up, then down
    assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert learning_rate_schedule(optimizer, "constant", lr=0.01, epochs=3,
                                  steps_per_epoch=10) is None


class Interrupted(Exception):
    pass


def test_an_interrupted_onecycle_run_resumes_its_schedule_exactly(tmp_path):
    train, val = tiny_data(16), tiny_val()
    config = tiny_options(epochs=3, schedule="onecycle")
    straight = fit(tiny_model(), train, val, device=CPU, **config, progress=False)
    calls = {"n": 0}

    def loss_stopping_in_epoch_2(logits, masks):
        calls["n"] += 1  # 4 training steps and 4 turns x 2 validation batches per epoch
        if calls["n"] == 12 + 2:
            raise Interrupted
        return bce_per_image(logits, masks)

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        fit(tiny_model(), train, val, device=CPU, **config, checkpoint=checkpoint,
            fingerprint="run",
            loss_fn=loss_stopping_in_epoch_2, progress=False)
    resumed = fit(tiny_model(), train, val, device=CPU, **config, checkpoint=checkpoint,
                  fingerprint="run",
                  progress=False)
    assert resumed.resumed_after_epoch == 1
    assert resumed.history == straight.history


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss_nan_at_epoch_2_step_3(logits, masks):
        calls["n"] += 1
        loss = bce_per_image(logits, masks)
        # 16 items / batch 4 = 4 training steps, then 4 turns x 2 validation batches per epoch
        return loss * math.nan if calls["n"] == 4 + 8 + 3 else loss

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3.*last good checkpoint"):
        fit(tiny_model(), tiny_data(16), tiny_val(), device=CPU,
            **tiny_options(epochs=3),
            checkpoint=checkpoint, fingerprint="run", loss_fn=loss_nan_at_epoch_2_step_3,
            progress=False)
    assert load_checkpoint(checkpoint, "run")["epoch"] == 1
