"""Batches for the training loop: sharded across processes, seeded per sample, cheap on CPU.

A training item is addressed as (epoch, index). The sampler tags each index with the epoch, and
`SeededAugmentation` seeds torch from (seed, epoch, index) while the dataset draws it, so the
augmented sample is the same whichever process, worker or resumed run draws it (and the number
of workers does not change the result). Tagging the index, rather than setting an epoch attribute,
also works with persistent workers, which never see attributes set in the main process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from equiseg.train.seeding import derive_seed, seed_worker


class SeededAugmentation(Dataset):
    """Wrap a dataset so that item (epoch, index) is drawn with torch seeded from (seed, epoch, index).

    `equiseg.data.datasets` draws each item's augmentation seed from torch's generator, so this fixes
    the augmentation of every item; torch's own state outside the item is left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derive_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochTaggedSampler(Sampler):
    """Yield (epoch, index) pairs from a sampler that shuffles by epoch (e.g. DistributedSampler)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self.sampler)


class ShardSampler(Sampler):
    """Every `world_size`-th item from `rank`, in order, without the padding DistributedSampler adds.

    Evaluation uses it so that each item is counted exactly once across processes.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def _loader_options(workers: int, pin: bool, generator: torch.Generator) -> dict[str, Any]:
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin, "generator": generator}
    if workers:
        # persistent workers keep each worker's decoded-image cache across epochs
        options.update(worker_init_fn=seed_worker, persistent_workers=True, prefetch_factor=4)
    return options


def training_loader(dataset: Dataset, *, batch_size: int, seed: int, rank: int = 0,
                    world_size: int = 1, workers: int = 0, pin_memory: bool = False
                    ) -> tuple[DataLoader, EpochTaggedSampler]:
    """Shuffled, per-sample-seeded batches of this process's shard; call `sampler.set_epoch(e)`.

    `batch_size` is per process. With world_size processes the k-th batches of all ranks together
    are exactly the k-th global batch a single process would draw.
    """
    shuffler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                  seed=seed, drop_last=False)
    sampler = EpochTaggedSampler(shuffler)
    generator = torch.Generator().manual_seed(derive_seed(seed, "loader"))
    loader = DataLoader(SeededAugmentation(dataset, seed), batch_size=batch_size, sampler=sampler,
                        **_loader_options(workers, pin_memory, generator))
    return loader, sampler


def evaluation_loader(dataset: Dataset, *, batch_size: int, rank: int = 0, world_size: int = 1,
                      workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """In-order batches of this process's share of `dataset`, each item exactly once overall."""
    generator = torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=ShardSampler(len(dataset), rank, world_size),  # type: ignore[arg-type]
                      **_loader_options(workers, pin_memory, generator))
