"""equiseg: equivariant segmentation models and label-free equivariance audits.

`equiseg.symmetrize(model, "p4")` makes any model exactly rotation-equivariant (see
`equiseg.nn.symmetrize`); `equiseg.audit(model, images)` (and the command `equiseg audit`)
measures how equivariant a model is (see `equiseg.audit`).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:  # the version lives in pyproject.toml only; installed metadata carries it here
    __version__ = metadata.version("equiseg")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Symmetrized", "__version__", "audit", "symmetrize"]


def __getattr__(name: str) -> Any:
    # lazy, so `import equiseg` (and `equiseg --version`) does not import torch
    if name in ("symmetrize", "Symmetrized"):
        return getattr(importlib.import_module("equiseg.nn.symmetrize"), name)
    if name == "audit":  # the package, callable: equiseg.audit(model, images)
        return importlib.import_module("equiseg.audit")
    raise AttributeError(f"module 'equiseg' has no attribute {name!r}")
