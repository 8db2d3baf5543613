"""End-of-epoch checkpoints that survive an interrupted `dvc repro` and resume only the same run.

A checkpoint lives outside DVC's outputs (DVC deletes those before rerunning a stage) at
`<checkpoint_dir>/<run>-<fingerprint>.ckpt` (run: e.g. `unet-minimal-seed0`). The fingerprint
hashes every setting that changes the result (see `run_fingerprint`), so rerunning with the same
settings resumes and changing any of them starts afresh. Writes are atomic: a kill mid-write leaves the previous one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from equiseg.io import atomic_path

# Bump when the checkpoint's layout or the loop's semantics change, so old checkpoints are ignored.
FORMAT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings (any JSON-able mapping), independent of key order."""
    canonical = json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True, default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def checkpoint_path(checkpoint_dir: str | Path, run: str, fingerprint: str) -> Path:
    """Where run `run` (e.g. unet-minimal-seed0) with these settings keeps its checkpoint."""
    return Path(checkpoint_dir) / f"{run}-{fingerprint}.ckpt"


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) atomically."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at `path` (on CPU) if it exists, is readable and belongs to this run; else None.

    An unreadable checkpoint is not fatal: training says so and starts from scratch.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file means "no usable checkpoint"
        print(f"warning: {path}: unreadable checkpoint ({str(err).splitlines()[0]}); "
              "starting from scratch", file=sys.stderr)
        return None
    if state.get("fingerprint") != fingerprint:
        return None
    return state
