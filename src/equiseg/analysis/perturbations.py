"""Named perturbations with levels, applied and undone through the registry of families.

`equiseg.analysis.families` says what each family does (and documents every family's levels);
this module builds the list of perturbations a sweep asks for and applies a batch of them to one
image (`perturb`), undoes them on the predictions (`restore`) and gives each one's valid region
(`valid_regions`), each family on its own part of the batch in one call.
Images are in pixel units [0, 1] on a square canvas (see `equiseg.geometry`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from equiseg.analysis.families import (
    REGISTRY,
    Family,
    family_names,
    family_of,
    setting_families,
)
from equiseg.errors import EquisegError

__all__ = [
    "IDENTITY",
    "Perturbation",
    "build_perturbations",
    "noise_field",
    "perturb",
    "restore",
    "valid_regions",
]


@dataclass(frozen=True)
class Perturbation:
    """One perturbation at one level, e.g. Perturbation("rotate", 45.0)."""

    name: str
    level: float

    @property
    def family(self) -> Family:
        return family_of(self.name)

    @property
    def is_identity(self) -> bool:
        """True when it changes nothing (rotate 0, brightness 0, contrast 1, scale 1, ...)."""
        return self.family.identity == self.level


IDENTITY = Perturbation("rotate", 0.0)


def build_perturbations(families: Sequence[str], **settings: object) -> list[Perturbation]:
    """The perturbations of each family asked for, in the registry's order, each at the levels
    of its setting, given by name: `angle_step=5.0` for rotate, `brightness=[...]`, `shift=[...]`
    (`family_settings(sweep_config)` gives them all). A family asked for without its setting,
    or a setting no family has, is an error: no family is silently swept at no levels.
    """
    unknown = [name for name in families if name not in REGISTRY]
    if unknown:
        raise EquisegError(f"unknown perturbation {unknown[0]!r}; choose from "
                           f"{', '.join(family_names())}")
    known = setting_families()
    stray = [key for key in settings if key not in known]
    if stray:
        raise TypeError(f"build_perturbations() got {stray[0]!r}, no family's setting; settings "
                        f"are {', '.join(known)}")
    chosen: list[Perturbation] = []
    for family in REGISTRY.values():
        if family.name not in families:
            continue
        if family.setting is not None and family.setting not in settings:
            raise TypeError(f"build_perturbations() needs {family.setting}= for the "
                            f"{family.name!r} family")
        value = settings[family.setting] if family.setting is not None else None
        chosen += [Perturbation(m, level) for m, level in family.levels(value)]
    return chosen


def noise_field(name: str, shape: Sequence[int]) -> Tensor:
    """Standard normal noise seeded by the image's name: the same for the stage and the audit."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(*shape, generator=generator)


def _by_family(perturbations: Sequence[Perturbation],
               skip_identity: bool = False) -> dict[str, list[int]]:
    """Positions in `perturbations` of each family's members (identities left out if asked)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(perturbations):
        if not (skip_identity and p.is_identity):
            groups.setdefault(p.family.name, []).append(i)
    return groups


def _parts(perturbations: Sequence[Perturbation], chosen: list[int]) -> tuple[list, list]:
    return ([perturbations[i].name for i in chosen],
            [float(perturbations[i].level) for i in chosen])


def perturb(perturbations: Sequence[Perturbation], image: Tensor, footprint: Tensor,
            noise: Tensor | None = None) -> Tensor:
    """A batch (N, C, S, S): `image` (C, S, S) under each perturbation (each family in one call)."""
    batch = image.unsqueeze(0).repeat(len(perturbations), 1, 1, 1)
    for name, chosen in _by_family(perturbations, skip_identity=True).items():
        members, levels = _parts(perturbations, chosen)
        batch[chosen] = REGISTRY[name].forward(batch[chosen], members, levels, footprint, noise)
    return batch


def restore(perturbations: Sequence[Perturbation], outputs: Tensor) -> Tensor:
    """Undo the geometric part of each perturbation on the model's outputs (N, K, S, S)."""
    outputs = outputs.clone()
    for name, chosen in _by_family(perturbations, skip_identity=True).items():
        inverse = REGISTRY[name].inverse
        if inverse is not None:
            outputs[chosen] = inverse(outputs[chosen], *_parts(perturbations, chosen))
    return outputs


def valid_regions(perturbations: Sequence[Perturbation], footprint: Tensor) -> Tensor:
    """(N, 1, S, S): where each restored output can be compared with the unperturbed one.

    Photometric changes and flips keep the whole footprint; rotations, shifts and zooms lose
    what left the canvas (and what resampling blurred into the border).
    """
    regions = footprint.reshape(1, 1, *footprint.shape[-2:]).repeat(len(perturbations), 1, 1, 1)
    for name, chosen in _by_family(perturbations, skip_identity=True).items():
        valid = REGISTRY[name].valid
        if valid is not None:
            regions[chosen] = valid(footprint, *_parts(perturbations, chosen)).to(regions.dtype)
    return regions
