"""Seeds, deterministic kernels, and the random state a checkpoint must carry.

Every random draw of a training run is a function of (train.seed, epoch, sample index): shuffling
comes from `DistributedSampler(seed, epoch)`, each sample's augmentation from
`derive_seed(seed, epoch, index)` (see `equiseg.train.loaders`). So an epoch does not depend on what
happened in earlier epochs, which makes resuming from a checkpoint exact by construction; the
global RNG states are saved and restored as well for anything else that draws.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int | str) -> int:
    """A 32-bit seed from a tuple, stable across runs, processes and Python versions."""
    digest = hashlib.sha256(repr(tuple(parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) at once; call before building the model."""
    random.seed(seed)
    np.random.seed(derive_seed(seed, "numpy"))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: each worker's numpy/python RNGs follow its torch seed.

    torch gives worker i the seed base + i, with base drawn from the loader's generator; without
    this hook every worker would share the parent's numpy state.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


@contextlib.contextmanager
def deterministic_kernels(enabled: bool, device: torch.device) -> Iterator[None]:
    """Within the block, ask torch for deterministic kernels (and no cuDNN autotuning) if `enabled`.

    The previous global settings come back afterwards, so a library call leaves no trace. On CUDA
    some kernels have no deterministic version (the bilinear upsampling backward of our U-Nets
    uses atomic adds); they warn instead of failing, so GPU runs are close but not bitwise equal.
    """
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled and device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=device.type != "cpu")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every global RNG state (and a DataLoader generator's), in a form `torch.load` trusts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    random.setstate(_as_python_state(state["python"]))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def _as_python_state(state: Any) -> tuple:
    """random.setstate wants tuples; a checkpoint round trip may hand back lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss
