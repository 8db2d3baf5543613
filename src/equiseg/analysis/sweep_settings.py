"""The settings of a perturbation sweep and their defaults: what the rotation_sweep stage reads
from params.yaml's `sweep` section and what `equiseg audit` starts from, so the two sweep the same
angles and levels unless told otherwise. One level list per family of `equiseg.analysis.families`
that has one (its `setting`). Plain Python, no torch: the parameter schema reads it.
"""

from __future__ import annotations  # field types stay strings: the schema finds the level lists

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SweepConfig:
    """The perturbation sweeps of the rotation_sweep stage (and the defaults of `equiseg audit`)."""

    angle_step: float = 5.0
    image_index: int = 0
    batch_size: int = 16
    flips: bool = True
    brightness: tuple[float, ...] = (-0.4, -0.2, 0.0, 0.2, 0.4)
    contrast: tuple[float, ...] = (0.4, 0.7, 1.0, 1.3, 1.6)
    noise: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    # pixels right and down (whole and fractional); zoom factors about the centre (> 1 zooms in)
    shift: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 8.0)
    scale: tuple[float, ...] = field(default=(0.8, 0.9, 1.0, 1.1, 1.25),
                                     metadata={"positive": True})
    max_images: int = 0  # 0 = the whole validation set
    gif: bool = True
    samples: int = 4  # validation images in the sample grid
    # "exactly equivariant": every raw output within exact_atol + exact_rtol * (largest |raw
    # output|) of the reference's, for every image (judged on logits, not thresholded masks)
    exact_atol: float = 1e-4
    exact_rtol: float = 1e-4
    channels_last: bool = True  # NHWC inference: faster for our U-Nets on CPU and GPU
