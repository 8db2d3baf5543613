"""The one registry of perturbation families: what each does to an image, how to undo it on the
prediction, where the undone prediction can be scored, and how the reports draw it.

A family is what `--perturb` names (`rotate`, `flip`, `brightness`, ..., `shift`, `scale`); its
members are the names its rows carry in a sweep's frame (`flip` has two, `flip_h` and `flip_v`;
the others one, their own name). The sweep (`equiseg.analysis.perturbations`, `.sweep`), the
summary, the audit, both reports and the command line read this registry, so a new family is
one `Family(...)` entry here and its test. A family with a level list names its `setting`, its
`default_levels` and whether they must be `positive`: `equiseg.analysis.sweep_settings` builds the
level lists of the stage's `SweepConfig` and the audit's `AuditOptions` from them, so params.yaml,
`--<setting>` and `audit(<setting>=...)` take it; conf/config.yaml repeats the default so that
`-S` reaches it (a test checks the two agree). This module loads no torch until a transform
runs: the parameter schema reads it.

A geometric family moves pixels: a perfect model's prediction moves with them, so it is undone
on the prediction before scoring (equivariance), and scored only where the round trip kept
content from inside the image. A photometric family leaves the mask where it was: nothing to
undo, the whole image is scored (invariance). Photometric changes touch only the image's
footprint, so the padding stays black.

Levels: rotate = degrees counter-clockwise (every `angle_step`); flip = 1 (one level per
mirror); brightness = a shift added to every channel; contrast = a factor about the image's mean
grey; noise = the sd of Gaussian noise (fixed per image name); shift = pixels right and down
(along the diagonal, so both axes; fractions resample bilinearly); scale = a zoom factor about the
canvas centre (> 1 zooms in). See `equiseg.analysis.warps` for shifts and zooms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the transforms import torch when called: the parameter schema reads this
    from torch import Tensor  # module (names, settings, default levels) and must not load torch

# forward(images (N, C, S, S), members, levels, footprint (1, S, S), noise (C, S, S) | None)
Forward = Callable[["Tensor", list[str], list[float], "Tensor", "Tensor | None"], "Tensor"]
# inverse(predictions (N, K, S, S), members, levels); valid(footprint, members, levels) -> (N,1,S,S)
Inverse = Callable[["Tensor", list[str], list[float]], "Tensor"]
Valid = Callable[["Tensor", list[str], list[float]], "Tensor"]


@dataclass(frozen=True)
class Plot:
    """How the reports draw a family.

    kind: "angle" (a curve over the full turn, the rotation figures), "curve" (IoU and
    consistency against the level, one panel per member) or "table" (one figure per member, in
    a table: the flips). Families with the same `figure` share one figure file (`<figure>.png`);
    `axis` labels the level with its unit, `title` names the panel.
    """

    kind: str
    figure: str
    axis: str
    title: str


@dataclass(frozen=True)
class Family:
    """One perturbation family; see the module's docstring."""

    name: str
    geometric: bool
    forward: Forward
    plot: Plot
    inverse: Inverse | None = None  # None: nothing to undo (photometric)
    valid: Valid | None = None  # None: the whole footprint
    setting: str | None = None  # the SweepConfig field and audit option/flag of its levels
    default_levels: tuple[float, ...] = ()  # of its level list (`LevelLists`, params, the audit)
    positive: bool = False  # its levels must be > 0 (zoom factors: a zoom by f is undone by 1/f)
    identity: float | None = None  # the level that changes nothing
    members: tuple[str, ...] = ()  # () = (name,)
    fixed_levels: tuple[tuple[str, float], ...] = ()  # (member, level) when it has no setting
    levels_from: Callable[[object], list[tuple[str, float]]] | None = field(default=None)

    @property
    def member_names(self) -> tuple[str, ...]:
        return self.members or (self.name,)

    def levels(self, value: object = None) -> list[tuple[str, float]]:
        """(member, level) pairs for the setting's value (a level list, or angle_step)."""
        if self.levels_from is not None:
            return self.levels_from(value)
        if self.setting is None:
            return list(self.fixed_levels)
        return [(self.name, float(v)) for v in (value or ())]


def rotation_angles(step: float) -> list[float]:
    """Angles 0, step, 2 step, ... below 360 degrees (72 angles for a step of 5)."""
    count = math.ceil(360.0 / step - 1e-9)
    return [round(i * step, 6) for i in range(count)]


# -- the transforms ------------------------------------------------------------------------------

def _rotate(x: Tensor, members: list[str], levels: list[float], *_: object) -> Tensor:
    from equiseg.geometry import rotate_batch
    return rotate_batch(x, levels)


def _unrotate(y: Tensor, members: list[str], levels: list[float]) -> Tensor:
    from equiseg.geometry import rotate_batch
    return rotate_batch(y, [-a for a in levels])


def _rotation_valid(footprint: Tensor, members: list[str], levels: list[float]) -> Tensor:
    from equiseg.geometry import round_trip_valid
    return round_trip_valid(footprint, levels)


def _flip(x: Tensor, members: list[str], levels: list[float], *_: object) -> Tensor:
    from equiseg.geometry import flip_batch
    out = x.clone()
    for axis in ("h", "v"):
        chosen = [i for i, m in enumerate(members) if m == f"flip_{axis}"]
        if chosen:
            out[chosen] = flip_batch(x[chosen], axis)
    return out


def _photometric(change: Callable[[Tensor, float, Tensor, Tensor | None], Tensor]) -> Forward:
    """A forward that applies `change(image, level, inside, noise)` inside the footprint only."""
    def forward(x: Tensor, members: list[str], levels: list[float], footprint: Tensor,
                noise: Tensor | None) -> Tensor:
        import torch
        out = x.clone()
        for i, level in enumerate(levels):
            out[i] = torch.where(footprint, change(x[i], level, footprint, noise).clamp(0.0, 1.0),
                                 x[i])
        return out
    return forward


def _contrast(image: Tensor, level: float, inside: Tensor, noise: Tensor | None) -> Tensor:
    grey = image[inside.expand_as(image)].mean() if inside.any() else image.mean()
    return (image - grey) * level + grey


def _noise(image: Tensor, level: float, inside: Tensor, noise: Tensor | None) -> Tensor:
    if noise is None:
        raise ValueError("a noise perturbation needs the image's noise field")
    return image + level * noise


def _shift(x: Tensor, members: list[str], levels: list[float], *_: object) -> Tensor:
    from equiseg.analysis.warps import shift_batch
    return shift_batch(x, levels)


def _unshift(y: Tensor, members: list[str], levels: list[float]) -> Tensor:
    from equiseg.analysis.warps import shift_batch
    return shift_batch(y, [-d for d in levels])


def _zoom(x: Tensor, members: list[str], levels: list[float], *_: object) -> Tensor:
    from equiseg.analysis.warps import zoom_batch
    return zoom_batch(x, levels)


def _unzoom(y: Tensor, members: list[str], levels: list[float]) -> Tensor:
    from equiseg.analysis.warps import zoom_batch
    return zoom_batch(y, [1.0 / f for f in levels])


def _round_trip(forward: Forward, inverse: Inverse) -> Valid:
    def valid(footprint: Tensor, members: list[str], levels: list[float]) -> Tensor:
        from equiseg.analysis.warps import round_trip_valid_for
        return round_trip_valid_for(footprint, levels, lambda x, v: forward(x, members, v),
                                    lambda y, v: inverse(y, members, v))
    return valid


# -- the registry, in the order sweeps, tables and reports list families -------------------------

REGISTRY: dict[str, Family] = {family.name: family for family in (
    Family("rotate", True, _rotate, Plot("angle", "rotation", "rotation angle (degrees)",
                                         "rotation"),
           inverse=_unrotate, valid=_rotation_valid, setting="angle_step", identity=0.0,
           levels_from=lambda step: [("rotate", a) for a in rotation_angles(float(step))]),
    Family("flip", True, _flip, Plot("table", "flip", "mirror", "flip"), inverse=_flip,
           members=("flip_h", "flip_v"), fixed_levels=(("flip_h", 1.0), ("flip_v", 1.0))),
    Family("brightness", False, _photometric(lambda image, level, *_: image + level),
           Plot("curve", "photometric", "brightness shift", "brightness"), setting="brightness",
           default_levels=(-0.4, -0.2, 0.0, 0.2, 0.4), identity=0.0),
    Family("contrast", False, _photometric(_contrast),
           Plot("curve", "photometric", "contrast factor", "contrast"), setting="contrast",
           default_levels=(0.4, 0.7, 1.0, 1.3, 1.6), identity=1.0),
    Family("noise", False, _photometric(_noise), Plot("curve", "photometric", "noise std", "noise"),
           setting="noise", default_levels=(0.0, 0.05, 0.1, 0.2, 0.3), identity=0.0),
    Family("shift", True, _shift,
           Plot("curve", "shift", "shift (pixels right and down)", "shift"),
           inverse=_unshift, valid=_round_trip(_shift, _unshift), setting="shift",
           default_levels=(0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 8.0), identity=0.0),
    Family("scale", True, _zoom, Plot("curve", "scale", "zoom factor (> 1 zooms in)", "scale"),
           inverse=_unzoom, valid=_round_trip(_zoom, _unzoom), setting="scale",
           default_levels=(0.8, 0.9, 1.0, 1.1, 1.25), positive=True, identity=1.0),
)}


def family_names() -> tuple[str, ...]:
    """What `--perturb` accepts, in the registry's order."""
    return tuple(REGISTRY)


def family_of(member: str) -> Family:
    """The family a frame's perturbation name (`flip_h`, `shift`, ...) belongs to."""
    for family in REGISTRY.values():
        if member in family.member_names:
            return family
    raise KeyError(f"no perturbation family has a member {member!r}")


def member_names(geometric: bool | None = None, kind: str | None = None) -> tuple[str, ...]:
    """Every member name, optionally only geometric (or photometric) ones, or of one plot kind."""
    return tuple(m for f in REGISTRY.values()
                 if (geometric is None or f.geometric == geometric)
                 and (kind is None or f.plot.kind == kind) for m in f.member_names)


def level_settings() -> tuple[str, ...]:
    """The settings holding level lists (not angle_step): `SweepConfig` and `AuditOptions` fields
    and `--<setting>` flags of the same name."""
    return tuple(f.setting for f in REGISTRY.values()
                 if f.setting is not None and f.levels_from is None)


def setting_families() -> dict[str, str]:
    """Each setting (`angle_step` and the level lists) and the family whose levels it gives."""
    return {f.setting: f.name for f in REGISTRY.values() if f.setting is not None}


def family_settings(source: object) -> dict[str, object]:
    """Every family's setting (`angle_step` and each level list) read off `source`, a
    `SweepConfig` or `AuditOptions`, by name: what `build_perturbations` takes. A family whose
    setting `source` lacks is an error, never a family silently swept at no levels."""
    settings = setting_families()
    missing = [setting for setting in settings if not hasattr(source, setting)]
    if missing:
        raise AttributeError(f"{type(source).__name__} has no {missing[0]!r}, the setting of the "
                             f"{settings[missing[0]]!r} perturbation family; add the field")
    return {setting: getattr(source, setting) for setting in settings}


def curve_figures() -> dict[str, list[Family]]:
    """The families drawn as curves against their level, grouped by figure, in registry order."""
    groups: dict[str, list[Family]] = {}
    for family in REGISTRY.values():
        if family.plot.kind == "curve":
            groups.setdefault(family.plot.figure, []).append(family)
    return groups
