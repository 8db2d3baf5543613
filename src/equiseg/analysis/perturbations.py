"""Named perturbations with levels: what each does to an input image and how to undo it on the output.

A geometric perturbation (rotate, flip_h, flip_v) moves pixels, so a perfect model's output moves
with them: it is undone on the output before comparing (equivariance). A photometric one
(brightness, contrast, noise) leaves the mask where it was: nothing to undo (invariance).
Images are in pixel units [0, 1] on a square canvas (see `equiseg.geometry`); photometric changes
touch only the image's footprint, so the black padding stays black.

Levels: rotate = degrees counter-clockwise; flip_h/flip_v = 1 (one level); brightness = a shift
added to every channel; contrast = a factor about the image's mean grey; noise = the standard
deviation of Gaussian noise (fixed per image name, so every run sees the same noise).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from equiseg.geometry import flip_batch, rotate_batch, round_trip_valid
from equiseg.errors import EquisegError

FAMILIES = ("rotate", "flip", "brightness", "contrast", "noise")  # what a user asks for
GEOMETRIC = ("rotate", "flip_h", "flip_v")
PHOTOMETRIC = ("brightness", "contrast", "noise")
_IDENTITY_LEVEL = {"rotate": 0.0, "brightness": 0.0, "contrast": 1.0, "noise": 0.0}


@dataclass(frozen=True)
class Perturbation:
    """One perturbation at one level, e.g. Perturbation("rotate", 45.0)."""

    name: str
    level: float

    @property
    def is_identity(self) -> bool:
        """True when it changes nothing (rotate 0, brightness 0, contrast 1, noise 0)."""
        return _IDENTITY_LEVEL.get(self.name) == self.level

    @property
    def geometric(self) -> bool:
        return self.name in GEOMETRIC


IDENTITY = Perturbation("rotate", 0.0)


def rotation_angles(step: float) -> list[float]:
    """Angles 0, step, 2 step, ... below 360 degrees (72 angles for a step of 5)."""
    count = math.ceil(360.0 / step - 1e-9)
    return [round(i * step, 6) for i in range(count)]


def build_perturbations(families: Sequence[str], angle_step: float,
                        brightness: Sequence[float] = (), contrast: Sequence[float] = (),
                        noise: Sequence[float] = ()) -> list[Perturbation]:
    """The perturbations of each family asked for, in the order of FAMILIES."""
    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise EquisegError(f"unknown perturbation {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    levels = {"brightness": brightness, "contrast": contrast, "noise": noise}
    chosen: list[Perturbation] = []
    for family in FAMILIES:
        if family not in families:
            continue
        if family == "rotate":
            chosen += [Perturbation("rotate", angle) for angle in rotation_angles(angle_step)]
        elif family == "flip":
            chosen += [Perturbation("flip_h", 1.0), Perturbation("flip_v", 1.0)]
        else:
            chosen += [Perturbation(family, float(level)) for level in levels[family]]
    return chosen


def noise_field(name: str, shape: Sequence[int]) -> Tensor:
    """Standard normal noise seeded by the image's name: the same for the stage and the audit."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(*shape, generator=generator)


def _photometric(p: Perturbation, image: Tensor, inside: Tensor, noise: Tensor) -> Tensor:
    if p.name == "brightness":
        changed = image + p.level
    elif p.name == "contrast":
        grey = image[inside.expand_as(image)].mean() if inside.any() else image.mean()
        changed = (image - grey) * p.level + grey
    else:
        changed = image + p.level * noise
    return torch.where(inside, changed.clamp(0.0, 1.0), image)


def _angles(perturbations: Sequence[Perturbation]) -> list[float]:
    return [p.level if p.name == "rotate" else 0.0 for p in perturbations]


def _flip_each(x: Tensor, perturbations: Sequence[Perturbation]) -> Tensor:
    for axis in ("h", "v"):
        chosen = [i for i, p in enumerate(perturbations) if p.name == f"flip_{axis}"]
        if chosen:
            x[chosen] = flip_batch(x[chosen], axis)
    return x


def perturb(perturbations: Sequence[Perturbation], image: Tensor, footprint: Tensor,
            noise: Tensor | None = None) -> Tensor:
    """A batch (N, C, S, S): `image` (C, S, S) under each perturbation (rotations in one call)."""
    batch = image.unsqueeze(0).repeat(len(perturbations), 1, 1, 1)
    for i, p in enumerate(perturbations):
        if p.name in PHOTOMETRIC and not p.is_identity:
            if p.name == "noise" and noise is None:
                raise ValueError("a noise perturbation needs the image's noise field")
            batch[i] = _photometric(p, image, footprint, noise)
    return _flip_each(rotate_batch(batch, _angles(perturbations)), perturbations)


def restore(perturbations: Sequence[Perturbation], outputs: Tensor) -> Tensor:
    """Undo the geometric part of each perturbation on the model's outputs (N, K, S, S)."""
    outputs = _flip_each(outputs.clone(), perturbations)  # flips are their own inverse
    return rotate_batch(outputs, [-a for a in _angles(perturbations)])


def valid_regions(perturbations: Sequence[Perturbation], footprint: Tensor) -> Tensor:
    """(N, 1, S, S): where each restored output can be compared with the unperturbed one.

    Flips and photometric changes keep the whole footprint; rotations lose what left the canvas.
    """
    return round_trip_valid(footprint, _angles(perturbations))
