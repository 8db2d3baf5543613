"""The settings of a perturbation sweep and their defaults: what the rotation_sweep stage reads
from params.yaml's `sweep` section and what `equiseg audit` starts from, so the two sweep the same
angles and levels unless told otherwise. One level list per family of `equiseg.analysis.families`
that has one (its `setting`), in `LevelLists`, built from the registry. Plain Python, no torch: the
parameter schema reads it, so the rules on a level list and on the exactness tolerance live here,
one function each, which the schema and the audit's options both call (`check_levels`,
`check_tolerance`).
"""

from __future__ import annotations  # field types stay strings: the schema finds the level lists

import math
from dataclasses import dataclass, field, make_dataclass

from equiseg.analysis.families import REGISTRY, level_settings
from equiseg.errors import InvalidValue

# Level lists whose levels must be > 0 (zoom factors), as the registry says.
POSITIVE_LEVELS = frozenset(f.setting for f in REGISTRY.values() if f.positive)

# One level list per family with one (its `setting`), with the registry's default levels: the
# stage's `SweepConfig` and the audit's `AuditOptions` both inherit these fields, so a new
# family's level list is its `Family(...)` entry alone (and conf/config.yaml, for `-S`).
LevelLists = make_dataclass(
    "LevelLists",
    [(f.setting, "tuple[float, ...]", field(default=f.default_levels))
     for f in REGISTRY.values() if f.setting in level_settings()],
    frozen=True)
LevelLists.__module__ = __name__
LevelLists.__doc__ = "The level list of each perturbation family that has one (registry order)."


@dataclass(frozen=True)
class SweepConfig(LevelLists):
    """The perturbation sweeps of the rotation_sweep stage (and the defaults of `equiseg audit`)."""

    angle_step: float = 5.0
    image_index: int = 0
    batch_size: int = 16
    flips: bool = True
    max_images: int = 0  # 0 = the whole validation set
    gif: bool = True
    samples: int = 4  # validation images in the sample grid
    # "exactly equivariant": every raw output within exact_atol + exact_rtol * (largest |raw
    # output|) of the reference's, for every image (judged on logits, not thresholded masks)
    exact_atol: float = 1e-4
    exact_rtol: float = 1e-4
    channels_last: bool = True  # NHWC inference: faster for our U-Nets on CPU and GPU


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_levels(setting: str, levels: object) -> None:
    """Refuse `levels` as the level list `setting` (brightness, ..., shift, scale) unless it is a
    list of finite numbers, each > 0 where the setting is in `POSITIVE_LEVELS`; `InvalidValue`
    names `setting`."""
    positive = setting in POSITIVE_LEVELS
    if (isinstance(levels, (str, bytes)) or not isinstance(levels, (list, tuple))
            or not all(_number(v) for v in levels) or (positive and any(v <= 0 for v in levels))):
        shown = list(levels) if isinstance(levels, tuple) else levels
        raise InvalidValue(setting, f"is {shown!r}",
                           "a list of numbers > 0" if positive else "a list of finite numbers")


def check_tolerance(atol: object, rtol: object) -> None:
    """Refuse an exactness tolerance (`equiseg.analysis.exactness`: exact when every |raw
    difference| <= atol + rtol x the largest |raw output|) unless `atol` is a finite number >= 0
    and `rtol` a number in [0, 1). Both 0 ask for bitwise-equal outputs, a legitimate strict
    check; rtol >= 1 would call an output of zeros exact (|0 - reference| <= max |reference|)."""
    if not _number(atol) or atol < 0:
        raise InvalidValue("atol", f"is {atol!r}", "a finite number >= 0")
    if not _number(rtol) or not 0 <= rtol < 1:
        raise InvalidValue("rtol", f"is {rtol!r}", "a number in [0, 1)")
