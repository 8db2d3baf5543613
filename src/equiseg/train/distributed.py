"""One process or many: the same loop runs alone or under `torchrun` with DistributedDataParallel.

`torchrun` sets WORLD_SIZE, RANK and LOCAL_RANK; without them this is a world of one and every
collective is a no-op. NCCL joins CUDA processes, Gloo CPU ones. Rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from equiseg.devices import select_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce `tensor` in place over all processes (sum, min or max) and return it."""
        if self.is_distributed:
            dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                                        "max": dist.ReduceOp.MAX}[op])
        return tensor

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()


SINGLE_PROCESS = DistContext()


def context_from_environment() -> DistContext:
    """The rank and world size torchrun put in the environment (a world of one without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    return DistContext(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                       world_size=world_size)


@contextlib.contextmanager
def distributed_session(device_request: str = "auto") -> Iterator[tuple[DistContext, torch.device]]:
    """Join the process group torchrun describes (if any) on this rank's device; leave it after."""
    context = context_from_environment()
    device = select_device(device_request, context.local_rank)
    if not context.is_distributed:
        yield context, device
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            rank=context.rank, world_size=context.world_size)
    try:
        yield context, device
    finally:
        dist.destroy_process_group()
