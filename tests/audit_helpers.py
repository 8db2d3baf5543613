"""Small folders and models shared by the audit's tests: tiny images so each audit takes ~1 s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from equiseg.cli import main

FAST = ["--perturb", "rotate", "--angle-step", "90", "--device", "cpu", "--worst", "1"]


def save_rgb(path: Path, height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def tiny_folder(root: Path, count: int = 2, size: int = 16) -> Path:
    images = root / "images"
    images.mkdir()
    for i in range(count):
        save_rgb(images / f"img{i}.png", size, size, i)
    return images


def disc_masks(root: Path, names: list[str], size: int = 16) -> Path:
    masks = root / "masks"
    masks.mkdir()
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(np.uint8)
    for name in names:
        Image.fromarray(255 * disc).save(masks / f"{name}.png")
    return masks


def write_models(root: Path, source: str, name: str = "audit_models") -> Path:
    path = root / f"{name}.py"
    path.write_text(source)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `equiseg ARGS`, whether it returns or exits."""
    try:
        code = main(list(args))
    except SystemExit as done:
        code = done.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def audit_ok(capsys, out: Path, *args: str) -> dict:
    code, _, err = run_cli(capsys, "audit", "--out", str(out), *FAST, *args)
    assert code == 0, err
    return json.loads((out / "summary.json").read_text())


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


