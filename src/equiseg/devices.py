"""Where the loop runs, and which speed-ups apply there.

bf16 autocast and channels_last are requested in params.yaml but applied only where they help:
bf16 on CUDA (`train.bf16`, on by default) and, only when asked (`train.bf16_cpu`), on CPUs with
native bf16 instructions (AVX512-BF16 or AMX), where it measured 1.3-1.6x faster training steps;
off by default there because it makes CPU results depend on which CPU ran them;
channels_last on CUDA and on CPU, where oneDNN's NHWC convolutions measured slightly faster for
these U-Nets (see README), but not on MPS (unmeasured). Asking for either is harmless anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from equiseg.errors import InvalidValue


def _available(kind: str) -> bool:
    kind = torch.device(kind).type  # 'cuda:1' is a cuda device
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return kind == "cpu"


def select_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit choice that is unavailable is an error.

    Used by the stages and by `equiseg audit --device` alike; 'cuda:N' names one GPU.
    """
    if requested == "auto":
        requested = next(kind for kind in ("cuda", "mps", "cpu") if _available(kind))
    elif not _available(requested):
        raise InvalidValue("device", f"is {requested!r} but no such device is available here",
                           "auto, or a device this machine has")
    if requested == "cuda":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware; emulated bf16 would be slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def use_bf16(requested: bool, device: torch.device, *, on_cpu: bool = False) -> bool:
    """bf16 autocast on CUDA GPUs that support it when `requested`, on CPUs with native bf16 when
    `on_cpu`; a no-op request elsewhere."""
    if device.type == "cuda":
        return bool(requested) and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(on_cpu) and cpu_has_native_bf16()


def use_channels_last(requested: bool, device: torch.device) -> bool:
    """NHWC layout on CUDA (tensor cores want it) and CPU (measured 2-7% faster per epoch)."""
    return bool(requested) and device.type in ("cuda", "cpu")


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def pin_memory(device: torch.device) -> bool:
    """Page-locked host batches make host-to-GPU copies asynchronous; useless without CUDA."""
    return device.type == "cuda"


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool) -> Iterator[None]:
    """Mixed precision for the forward pass when `bf16` is on, plain fp32 otherwise."""
    if not bf16:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
