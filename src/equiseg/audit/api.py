"""`audit(model, images)`: the audit as a Python function, the one `equiseg audit` is a shell over.

For a user's own tests and notebooks: no command line, no JSON to parse. The model may be a
module, any function of a batch, or the command line's `--model` spec; the images a folder, a
list of files, a tensor or NumPy arrays (see `equiseg.audit.images`). The result holds the
summary and the per-image frame in memory, answers the CI gate, and writes the same folder the
command does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from equiseg.audit.images import audit_images
from equiseg.audit.models import load_model, model_name
from equiseg.audit.options import FLAG_NAMES, AuditOptions, options_from, resolve_device
from equiseg.audit.result import AuditResult
from equiseg.audit.run import run_audit
from equiseg.errors import settings_named

__all__ = ["audit"]

Model = nn.Module | Callable[[torch.Tensor], Any] | str | Path
Images = (str | Path | Sequence[str | Path] | torch.Tensor | np.ndarray
          | Sequence[torch.Tensor | np.ndarray])


def audit(model: Model, images: Images, masks: Images | None = None, *,
          weights: str | Path | None = None, model_kwargs: Mapping[str, Any] | None = None,
          seed: int = 0, **options: Any) -> AuditResult:
    """How equivariant is `model`? Perturb each image, undo the perturbation on the prediction,
    and compare with the prediction on the original (label-free; against `masks` too if given).

    `model`: a `torch.nn.Module` (run in eval mode, on its own device unless `device=` says
    otherwise), a function from a batch (B, C, H, W) to scores, or a spec as `--model` takes
    ('my_project.models:build', 'model.pt2', 'model.onnx', ...; `weights`, `model_kwargs` and
    `seed` as `--weights`, `--model-kwargs` and `--seed`). `images`: a folder, a list of files,
    a tensor (B, 3, H, W) or (3, H, W) in [0, 1], or NumPy arrays (H, W, 3), uint8 or floats in
    [0, 1]; `masks` likewise, (H, W) per image. `options` are `AuditOptions`' fields, the
    command line's flags in snake case (`angle_step=90`, `perturb="rotate,flip"`, `size=256`,
    `classes=2`, `device="auto"`, ...). Bad input raises `EquisegError` naming the flag.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from equiseg.audit import audit
        >>> _ = torch.manual_seed(0)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> pixelwise = nn.Conv2d(3, 1, kernel_size=1)  # each pixel alone: turns with the image
        >>> result = audit(pixelwise, images, perturb="rotate,flip", angle_step=90)
        >>> result.summary["images"], result.summary["verdict"]
        (2, 'judged')
        >>> result.summary["perturbations"]["rotate"]["exact_at_90_multiples"]
        True
        >>> result.passed(require_exact="p4m", fail_under={"consistency": 0.99})
        True

        A 3x3 kernel with random weights sees its neighbours in one orientation only:

        >>> smeared = nn.Conv2d(3, 1, kernel_size=3, padding=1)
        >>> failed = audit(smeared, images, perturb="rotate", angle_step=90)
        >>> failed.gate_failures(require_exact="p4")  # doctest: +ELLIPSIS
        ['not exact at 90-degree multiples (largest relative raw difference ...)']
        >>> failed.frame.columns[:3].tolist(), len(failed.frame)  # results.csv: 2 images x 4
        (['image', 'perturbation', 'level'], 8)
    """
    return audit_with(model, images, masks, options_from(options), weights, model_kwargs, seed)


@settings_named(**FLAG_NAMES)
def audit_with(model: Model, images: Images, masks: Images | None, settings: AuditOptions,
               weights: str | Path | None = None, model_kwargs: Mapping[str, Any] | None = None,
               seed: int = 0) -> AuditResult:
    """`audit` with its options already gathered (what the command line calls)."""
    settings.validate()  # unknown perturbations and bad levels refused before any work
    device = resolve_device(settings.device) if settings.device else None
    found = audit_images(images, masks, settings)
    loaded = load_model(model, weights, device, model_kwargs, seed)
    if device is None:
        parameter = next(iter(loaded.module.parameters()), None)
        device = str(parameter.device) if parameter is not None else "cpu"
    facts = {"model": model_name(model), "weights": weights, "model_kwargs": model_kwargs,
             "seed": seed}
    return run_audit(loaded, found, replace(settings, device=device), facts)
