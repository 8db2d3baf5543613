"""A model as the sweep sees it: pixel images in [0, 1] -> probabilities, with its raw output kept
for the exactness check, and its output checked on every call (channels, range, spatial size).

How a model's output becomes a score tensor is the `Adapter`'s business: by default a plain
(B, K, H, W) tensor at the input's size (`plain_scores`, what the pipeline's U-Nets return); the
audit passes `equiseg.audit.adapters.OutputAdapter` for other libraries' outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from equiseg.errors import EquisegError

Predict = Callable[[Tensor], Tensor]  # pixel images (B, 3, S, S) in [0, 1] -> probabilities


class ModelOutputError(EquisegError):
    """The model's output does not have the shape or range the sweep was told to expect."""


# (model output, input height, input width) -> scores (B, K, H, W); the audit's OutputAdapter
# reads other libraries' outputs (dicts, `.logits`, tuples, smaller maps)
Adapter = Callable[[Any, int, int], Tensor]


def plain_scores(output: Any, height: int, width: int) -> Tensor:
    """The default `Adapter`: the output must already be a (B, K, H, W) tensor at the input's
    size, as the pipeline's U-Nets return."""
    if not isinstance(output, Tensor) or output.ndim != 4:
        shown = (f"tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor)
                 else type(output).__name__)
        raise ModelOutputError(f"the model returned a {shown}; expected a (B, K, H, W) tensor of "
                               "per-pixel scores")
    if output.shape[-2:] != (height, width):
        raise ModelOutputError(f"the model's output is {output.shape[-2]}x{output.shape[-1]} "
                               f"pixels for a {height}x{width} input; a segmentation model must "
                               "keep the spatial size")
    return output


class Predictor:
    """Pixel images (B, C, S, S) in [0, 1] -> probabilities (B, K, S, S), checking every output.

    Calling it returns probabilities; `scores` returns (raw output, probabilities), the raw output
    being what exactness is judged on (logits, or the probabilities a model returns itself).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float],
                 output: str = "logits", classes: int = 1, channels_last: bool = False,
                 adapter: Adapter | None = None,
                 foreground_classes: Sequence[int] | None = None) -> None:
        if output not in ("logits", "probs"):
            raise EquisegError(f"`output` is {output!r}; choose logits or probs")
        if foreground_classes is not None:
            foreground_classes = sorted(set(foreground_classes))
            if classes < 2 or not foreground_classes or foreground_classes[0] < 0 \
                    or foreground_classes[-1] >= classes or len(foreground_classes) == classes:
                raise EquisegError(f"`foreground_classes` {foreground_classes}: give some, not all, "
                                   f"of the classes 0..{classes - 1} of a `classes` K > 1 model")
        self.model, self.output, self.classes = model, output, classes
        self.foreground_classes = foreground_classes
        self.adapter = adapter or plain_scores
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        eval_mode(model)
        if channels_last and not is_exported(model):
            model.to(memory_format=self.layout)
        parameter = next(iter(model.parameters()), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)

    @property
    def out_channels(self) -> int:
        """Channels of the probabilities: 1 when foreground classes reduce K classes to one."""
        return 1 if self.foreground_classes else self.classes

    def _forward(self, x: Tensor) -> Tensor:
        try:
            y = self.model(x)
        except EquisegError:
            raise
        except Exception as err:  # noqa: BLE001 - a user's model can fail in any way; say how
            text = str(err).strip().splitlines()
            raise ModelOutputError(f"the model failed on a batch of shape {tuple(x.shape)} "
                                   f"({type(err).__name__}: {text[0] if text else ''}); check "
                                   "`size`/`pad_size` and the model's expected input") from None
        return self.adapter(y, x.shape[-2], x.shape[-1])

    def scores(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(raw output, probabilities) of the model on `images`, both (B, K, S, S) float32."""
        x = ((images.to(self.device, torch.float32) - self.mean) / self.std).contiguous(
            memory_format=self.layout)
        y = self._forward(x)
        if y.shape[1] != self.classes:
            raise ModelOutputError(f"the model returned {y.shape[1]} channel(s), expected "
                                   f"{self.classes}; set `classes` to {y.shape[1]}")
        y = y.float()
        if self.output == "probs" and (y.min() < -1e-4 or y.max() > 1 + 1e-4):
            raise ModelOutputError("the model's outputs leave [0, 1], so they are not "
                                   "probabilities; set `output` to logits")
        if self.foreground_classes:
            # log-probability margin of the best foreground class over the best other class:
            # p > 0.5 exactly where the argmax lies in the set (for K = 2, this is softmax p1)
            logp = y.clamp(min=1e-12).log() if self.output == "probs" else y.log_softmax(dim=1)
            inside = torch.zeros(self.classes, dtype=torch.bool, device=y.device)
            inside[self.foreground_classes] = True
            y = (logp[:, inside].amax(dim=1, keepdim=True)
                 - logp[:, ~inside].amax(dim=1, keepdim=True))
            return y, torch.sigmoid(y)
        if self.output == "probs":
            return y, y.clamp(0.0, 1.0)
        return y, torch.sigmoid(y) if self.classes == 1 else torch.softmax(y, dim=1)

    def __call__(self, images: Tensor) -> Tensor:
        return self.scores(images)[1]


def is_exported(model: nn.Module) -> bool:
    """A `torch.export` program's module: it refuses `.eval()` and `.train()`."""
    return any(cls.__name__ == "_StatefulGraphModule" for cls in type(model).__mro__)


def eval_mode(model: nn.Module) -> None:
    """Put `model` in eval mode, leaving alone exported programs inside it (they refuse
    `.eval()`, and run in the mode they were exported in)."""
    exported = {id(m) for part in model.modules() if is_exported(part) for m in part.modules()}
    if not exported:
        model.eval()
        return
    for module in model.modules():
        if id(module) not in exported:
            module.training = False


def make_predictor(model: nn.Module, mean: Sequence[float], std: Sequence[float],
                   output: str = "logits", classes: int = 1, channels_last: bool = False,
                   adapter: Adapter | None = None,
                   foreground_classes: Sequence[int] | None = None) -> Predictor:
    """Wrap `model` into pixel images -> probabilities, checking its output on every call.

    `output` says what the model returns: 'logits' (sigmoid for one channel, softmax for more)
    or 'probs' (used as they are). Inputs are normalised with `mean` and `std` first.
    `adapter` reads the model's output (default `plain_scores`; the audit passes
    `equiseg.audit.adapters.OutputAdapter`); `foreground_classes` turns a K-class model into one
    foreground channel (foreground = argmax in the set), to score it against binary masks.
    `channels_last` runs the model on NHWC tensors: 1.3-1.5x faster inference for our U-Nets
    on CPU, but a model that calls `.view` on its activations may not accept it.
    """
    return Predictor(model, mean, std, output, classes, channels_last, adapter,
                     foreground_classes)
