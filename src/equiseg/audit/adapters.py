"""What a model returns, turned into the per-pixel scores (B, K, H, W) the sweep measures.

Segmentation libraries wrap their scores differently: a plain tensor (most models, MONAI,
TorchScript, ONNX with one output), a dict (torchvision: `out`; others: `logits`), an object with
`.logits` (Hugging Face, e.g. SegFormer), or a tuple/list whose first element is the main output
(deep supervision, auxiliary heads). `OutputAdapter` finds the tensor the same way for every
batch and records which route it took, so the audit's summary and report can say so. It is the
`adapter` the audit hands the sweep's `Predictor` (whose own default takes a plain tensor only).

Scores smaller than the input by a whole factor (SegFormer predicts at a quarter of the input's
size) are upsampled bilinearly to the input's size only when asked (`upsample=True`, the audit's
`--upsample`): the upsampling is part of what is then measured, and the user should know it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from equiseg.analysis.predictor import ModelOutputError

DICT_KEYS = ("out", "logits")  # tried in this order when the model returns a mapping


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict with keys {', '.join(map(str, value))}"
    return f"a {type(value).__name__}"


def find_scores(output: Any, key: str | None = None) -> tuple[Tensor, str]:
    """The score tensor in a model's output and how it was found ('tensor', "dict['out']", ...).

    `key` names a dict key or an attribute to take (the audit's `output_key`); without it a
    tensor is taken as it is, a dict's `out` or `logits`, an object's `.logits`, a tuple's first
    element.
    """
    if key is not None:
        if isinstance(output, Mapping):
            if key not in output:
                raise ModelOutputError(f"`output_key` {key}: the model returned a dict with keys "
                                       f"{', '.join(map(str, output))}; name one of them")
            value, route = output[key], f"dict[{key!r}]"
        elif hasattr(output, key):
            value, route = getattr(output, key), f".{key}"
        else:
            raise ModelOutputError(f"`output_key` {key}: the model returned {_describe(output)} "
                                   f"without a key or attribute {key!r}")
    elif isinstance(output, Tensor):
        value, route = output, "tensor"
    elif isinstance(output, Mapping):
        found = next((k for k in DICT_KEYS if k in output), None)
        if found is None:
            raise ModelOutputError(f"the model returned {_describe(output)}; give "
                                   "`output_key` to say which holds the per-pixel scores")
        value, route = output[found], f"dict[{found!r}]"
    elif isinstance(getattr(output, "logits", None), Tensor):
        value, route = output.logits, ".logits"
    elif isinstance(output, (tuple, list)) and output:
        value, route = output[0], "first element"
    else:
        raise ModelOutputError(f"the model returned {_describe(output)}; expected a tensor, a "
                               "dict, an object with .logits or a tuple (see `output_key`)")
    if not isinstance(value, Tensor):
        raise ModelOutputError(f"the model's output {route} is {_describe(value)}, not a tensor; "
                               "give `output_key` to choose another")
    return value, route


def upsample_factor(scores: Tensor, height: int, width: int) -> int | None:
    """The whole factor f with scores f times smaller than (height, width) on both sides, or None."""
    h, w = scores.shape[-2:]
    if h == 0 or w == 0 or height % h or width % w or height // h != width // w:
        return None
    return height // h


@dataclass
class OutputAdapter:
    """Scores (B, K, H, W) at the input's size from whatever the model returned.

    `route` and `upsampled_from` record what was seen on the last batch, for the summary.
    """

    key: str | None = None
    upsample: bool = False
    route: str | None = None
    upsampled_from: tuple[int, int] | None = field(default=None)

    def __call__(self, output: Any, height: int, width: int) -> Tensor:
        scores, self.route = find_scores(output, self.key)
        if scores.ndim != 4:
            raise ModelOutputError(f"the model returned {_describe(scores)} ({self.route}); "
                                   "expected a (B, K, H, W) tensor of per-pixel scores")
        if scores.shape[-2:] == (height, width):
            return scores
        factor = upsample_factor(scores, height, width)
        size = f"{scores.shape[-2]}x{scores.shape[-1]}"
        if factor is None:
            raise ModelOutputError(f"the model's output is {size} pixels for a {height}x{width} "
                                   "input; a segmentation model must keep the spatial size (or "
                                   "shrink it by a whole factor, with `upsample`)")
        if not self.upsample:
            raise ModelOutputError(f"the model's output is {size} pixels for a {height}x{width} "
                                   f"input ({factor}x smaller); turn on `upsample` to resize it "
                                   "bilinearly to the input, or give a model that keeps the size")
        self.upsampled_from = (int(scores.shape[-2]), int(scores.shape[-1]))
        return F.interpolate(scores.float(), size=(height, width), mode="bilinear",
                             align_corners=False)

    def describe(self) -> dict:
        """What summary.json records about the output."""
        return {"found": self.route, "output_key": self.key, "upsample": self.upsample,
                "upsampled_from": None if self.upsampled_from is None
                else list(self.upsampled_from)}


class AdaptedModel(nn.Module):
    """A model whose forward returns the adapted score tensor: what `symmetrize` can wrap."""

    def __init__(self, model: nn.Module, adapter: OutputAdapter) -> None:
        super().__init__()
        self.model = model
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.model(x), x.shape[-2], x.shape[-1])
