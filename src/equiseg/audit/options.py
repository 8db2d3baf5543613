"""What `equiseg audit` was asked to do: the command line, parsed, in one frozen object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from equiseg.analysis.judgeable import JUDGEABLE_MAX_SHARE, JUDGEABLE_MIN_SHARE, Judgeability
from equiseg.analysis.perturbations import FAMILIES
from equiseg.config import SweepConfig
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.nn.symmetrize import SYMMETRY_GROUPS

EXACT_GROUPS = SYMMETRY_GROUPS  # --require-exact: rotations by 90 degrees; p4m also the flips


@dataclass(frozen=True)
class AuditOptions:
    """Everything `equiseg audit` was asked to do (the command line, parsed)."""

    model: str
    images: Path
    out: Path
    weights: Path | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    masks: Path | None = None
    perturb: tuple[str, ...] = FAMILIES
    angle_step: float = 5.0
    brightness: tuple[float, ...] = ()
    contrast: tuple[float, ...] = ()
    noise: tuple[float, ...] = ()
    size: int = 0
    pad_size: int = 0
    multiple: int = 16
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    output: str = "logits"
    output_key: str | None = None
    upsample: bool = False
    classes: int = 1
    foreground_classes: tuple[int, ...] | None = None
    batch_size: int = 16
    device: str = "cpu"
    channels_last: bool = False
    max_images: int = 0
    atol: float = SweepConfig.exact_atol
    rtol: float = SweepConfig.exact_rtol
    worst: int = 3
    symmetrize: str | None = None
    fail_under: tuple[tuple[str, float], ...] = ()
    require_exact: str | None = None
    judgeable_min_share: float = JUDGEABLE_MIN_SHARE
    judgeable_max_share: float = JUDGEABLE_MAX_SHARE
    allow_degenerate: bool = False

    @property
    def judgeability(self) -> Judgeability:
        return Judgeability(self.judgeable_min_share, self.judgeable_max_share,
                            self.allow_degenerate)
