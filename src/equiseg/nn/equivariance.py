"""How far any model is from equivariance (or invariance) under each element of a group.

Works on any callable mapping (B, C, H, W) to a tensor: our U-Nets, a user's model, or a single
layer (pass `output_action` to say how the group acts on its output, e.g. `Group.act_on_features`).
The exact elements (quarter turns, mirrors) move whole pixels; for turns off the pixel grid
(C8/D8's 45 degrees, any angle) `layer_equivariance_error` and `rotation_equivariance_error`
resample, and measure over a central disc of a smooth input (`smooth_random_field`,
`disc_window`) so that what the turn loses at the canvas border does not count.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from equiseg.geometry import rotate_batch
from equiseg.nn.cyclic import RotatedFilterConv2d
from equiseg.nn.groups import Group, act_on_image, get_group

Action = Callable[[Tensor, int], Tensor]


def _errors(reference: Tensor, candidate: Tensor) -> dict[str, float]:
    diff = (candidate - reference).double()
    scale = reference.double().norm().clamp(min=1e-12)
    return {"max_abs": float(diff.abs().max()), "relative": float(diff.norm() / scale)}


def equivariance_errors(model: Callable[[Tensor], Tensor], x: Tensor, group: str | Group = "p4",
                        output_action: Action | None = None,
                        input_action: Action | None = None) -> dict[str, dict[str, float]]:
    """For each non-identity element g: compare model(g x) with g model(x).

    Returns {element name: {"max_abs": ..., "relative": ||diff|| / ||g model(x)||}}.
    By default g acts on input and output images by rot90/flip of the last two axes.
    """
    group = get_group(group) if isinstance(group, str) else group
    act_in = input_action or (lambda t, i: act_on_image(t, group.elements[i]))
    act_out = output_action or (lambda t, i: act_on_image(t, group.elements[i]))
    with torch.no_grad():
        direct = model(x)
        return {
            group.element_name(i): _errors(act_out(direct, i), model(act_in(x, i)))
            for i in range(1, group.order)
        }


def invariance_errors(model: Callable[[Tensor], Tensor], x: Tensor,
                      group: str | Group = "p4") -> dict[str, dict[str, float]]:
    """For each non-identity element g: compare model(g x) with model(x) (e.g. a classifier)."""
    return equivariance_errors(model, x, group, output_action=lambda t, i: t)


def worst_relative_error(errors: dict[str, dict[str, float]]) -> float:
    return max(e["relative"] for e in errors.values())


def smooth_random_field(batch: int, channels: int, size: int, blur: float,
                        generator: torch.Generator | None = None) -> Tensor:
    """(B, C, size, size) white noise blurred by a Gaussian of `blur` pixels, unit variance.

    Drawn on a larger canvas and cropped, so the blur has no border effects."""
    half = math.ceil(3 * blur)
    taps = torch.arange(-half, half + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / blur) ** 2)
    kernel = (kernel / kernel.sum()).float()
    noise = torch.randn(batch * channels, 1, size + 2 * half, size + 2 * half, generator=generator)
    field = F.conv2d(F.conv2d(noise, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    field = field.reshape(batch, channels, size, size)
    return field / field.std()


def central_disc(size: int, radius: float) -> Tensor:
    """Boolean (size, size): pixels within `radius` of the centre pixel (size odd)."""
    c = (size - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (rows - c) ** 2 + (cols - c) ** 2 <= radius**2


def disc_window(size: int, radius: float, fade: float) -> Tensor:
    """(size, size): 1 within `radius` of the centre, then a Gaussian fade of width `fade` pixels.

    A field multiplied by it keeps its content on the canvas under any rotation, so a model
    sees the same picture turned rather than a picture that lost its corners."""
    c = (size - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    beyond = (torch.hypot(rows - c, cols - c) - radius).clamp(min=0)
    return torch.exp(-0.5 * (beyond / fade) ** 2)


def disc_relative_error(reference: Tensor, candidate: Tensor, disc_radius: float) -> float:
    """||candidate - reference|| / ||reference|| over the central disc, all channels, float64."""
    disc = central_disc(reference.shape[-1], disc_radius).to(reference.device)
    diff = (candidate - reference)[..., disc].double()
    return float(diff.norm() / reference[..., disc].double().norm())


def layer_equivariance_error(layer: RotatedFilterConv2d, x: Tensor, index: int,
                             disc_radius: float, mode: str = "bilinear") -> float:
    """||layer(g x) - g layer(x)|| / ||g layer(x)|| over the central disc, all channels.

    g = element `index` of `layer.group`; it acts on the input as an image (lifting layer) or a
    group feature map, and on the output as a group feature map, resampling with `mode` when
    its angle is not a multiple of 90 degrees. x is (B, C, S, S) with S odd, so the centre of
    rotation is a pixel centre.
    """
    group = layer.group
    act_in = group.act_on_image if layer.input_order == 1 else group.act_on_features
    with torch.no_grad():
        moved_after = group.act_on_features(layer(x), index, mode)
        moved_before = layer(act_in(x, index, mode))
    return disc_relative_error(moved_after, moved_before, disc_radius)


def rotation_equivariance_error(model: Callable[[Tensor], Tensor], x: Tensor, angle: float,
                                disc_radius: float, mode: str = "bilinear") -> float:
    """||model(R x) - R model(x)|| / ||R model(x)|| over the central disc, for a model from
    images to images (a U-Net's logits), R the turn by `angle` degrees (`rotate_batch`).

    x is (B, C, S, S) with S divisible by the model's downsampling; fade it out towards the
    border (`disc_window`) so that the turn loses nothing off the canvas.
    """
    with torch.no_grad():
        moved_after = rotate_batch(model(x), angle, mode)
        moved_before = model(rotate_batch(x, angle, mode))
    return disc_relative_error(moved_after, moved_before, disc_radius)
