"""A throwaway project folder for stage tests: a few 32-px image/mask pairs, split.csv, params.yaml.

The pairs follow the on-disk contract (RGB PNG, palette mask with foreground index 1) and are
drawn here, so the training tests do not depend on the data stages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"

TINY_PARAMS = {
    "seeds": [0],
    "models": ["unet", "gunet"],
    "augments": ["minimal", "full"],
    "data": {"source": "synthetic", "image_size": 32, "pad_size": 32, "cache_images": True},
    "architectures": {
        "unet": {"group": "trivial", "filters": [4, 4, 8, 8], "norm_groups": 2},
        "gunet": {"group": "p4", "filters": [2, 2, 4, 4], "norm_groups": 2},
    },
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "weight_decay": 0.01, "device": "cpu",
              "workers": 0, "deterministic": True, "checkpoint_dir": ".cache/checkpoints"},
}


def write_pairs(root: Path, n_train: int, n_val: int, size: int = 32, seed: int = 0) -> None:
    """Ellipses on noise (foreground = palette index 1) and data/split.csv listing them."""
    rng = np.random.default_rng(seed)
    (root / "data/raw/images").mkdir(parents=True, exist_ok=True)
    (root / "data/raw/segmentations").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    lines = ["id,species,split,image,mask"]
    for i in range(n_train + n_val):
        image_id = f"{1 + i % 2:03d}{i + 1:04d}"
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        ry, rx = rng.uniform(size * 0.15, size * 0.3, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        image[inside] = rng.integers(140, 255, 3, dtype=np.uint8)
        image_file = f"data/raw/images/{image_id}.png"
        mask_file = f"data/raw/segmentations/{image_id}_seg0.png"
        Image.fromarray(image, "RGB").save(root / image_file)
        mask = Image.fromarray(inside.astype(np.uint8), "P")
        mask.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        mask.save(root / mask_file)
        split = "train" if i < n_train else "val"
        lines.append(f"{image_id},{image_id[:3]},{split},{image_file},{mask_file}")
    (root / "data/split.csv").write_text("\n".join(lines) + "\n")


def write_params(root: Path, **sections: dict) -> Path:
    """params.yaml = TINY_PARAMS with each given section's keys updated."""
    params = {key: (dict(value) if isinstance(value, dict) else value)
              for key, value in TINY_PARAMS.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            params[key] = {**params.get(key, {}), **value}
        else:
            params[key] = value
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(SRC / script), *args]


def stage_env() -> dict[str, str]:
    """One thread per process (the CI machine has two cores) and no albumentations phone-home."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
            "PYTHONHASHSEED": "0"}


def run_stage(root: Path, script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(stage_command(script, *args), check=False, cwd=root,
                          env=stage_env(), capture_output=True, text=True, timeout=timeout)
