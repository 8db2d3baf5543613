"""What loading a user's model yields, and the failures every loader shares.

Kept apart from `models` (specs and factories) and `model_files` (.pt2, ONNX, TorchScript) so
that both build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from equiseg.errors import EquisegError


class ModelLoadError(EquisegError):
    """The model spec, its factory or its weights cannot be turned into a module."""


@dataclass
class LoadedModel:
    """The module, what kind of file or factory it came from, and whether trained weights were
    loaded (False: a factory's random initialisation)."""

    module: nn.Module
    kind: str  # 'factory', 'torch.export', 'onnx', 'torchscript', 'equiseg', 'module', ...
    weights_loaded: bool | None  # None: a module passed in, which may or may not be trained


def first_line(err: BaseException) -> str:
    """The exception's type and the first line of its message, for a one-line error."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_state_dict(weights: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    """A state dict of tensors from `weights`, unwrapped from common checkpoint layouts."""
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: weights file not found; check --weights")
    try:
        payload = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise ModelLoadError(f"{weights}: not a loadable state dict ({first_line(err)}); save "
                             "it with torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ModelLoadError(f"{weights}: does not hold a state dict of tensors; save it with "
                             "torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in payload.items()}
