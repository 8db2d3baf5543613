"""Pictures of predictions: masks painted over images, grids of panels, animated GIFs.

Used by the rotation_sweep stage (the rotation GIF and the sample grid) and by `equiseg audit`
(the least consistent images). Arrays are RGB uint8 (H, W, 3); masks are label maps (H, W) with
0 = background and k = class k (one colour per class).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from equiseg.analysis.frame_scores import class_masks
from equiseg.analysis.sweep import Kept, SweepImage
from equiseg.io import atomic_path

# label k > 0 is painted with colour k (cycled); chosen to read on butterflies and leaves alike
CLASS_COLOURS = np.array([(0, 0, 0), (255, 40, 90), (40, 160, 255), (255, 200, 0), (60, 220, 120),
                          (190, 90, 255), (255, 130, 40)], dtype=np.float32)


def labels_from_probs(probs: Tensor) -> Tensor:
    """Label map (H, W) from probabilities (K, H, W), by the sweep's own decision
    (`analysis.frame_scores.class_masks`: p > 0.5 for one channel, argmax for more)."""
    masks = class_masks(probs.unsqueeze(0))[0]
    if masks.shape[0] == 1:
        return masks[0].long()
    return masks.long().argmax(dim=0)


def to_rgb(image: Tensor) -> np.ndarray:
    """(3, H, W) float image in [0, 1] -> (H, W, 3) uint8."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def paint(image: Tensor, labels: Tensor, alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """`image` (3, H, W) with every labelled pixel tinted by its class colour (and outlined)."""
    rgb = to_rgb(image).astype(np.float32)
    labels = labels.cpu().numpy().astype(np.int64)
    colours = CLASS_COLOURS[np.where(labels > 0, (labels - 1) % (len(CLASS_COLOURS) - 1) + 1, 0)]
    inside = labels[..., None] > 0
    rgb = np.where(inside, (1 - alpha) * rgb + alpha * colours, rgb)
    if outline:
        edge = np.zeros_like(labels, dtype=bool)
        edge[1:] |= labels[1:] != labels[:-1]
        edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        rgb = np.where(edge[..., None] & inside, colours, rgb)
    return rgb.round().clip(0, 255).astype(np.uint8)


def enlarge(picture: np.ndarray, min_side: int = 192) -> np.ndarray:
    """Scale small pictures up by a whole factor (nearest), so 64 px images stay legible."""
    factor = max(1, -(-min_side // max(picture.shape[:2])))
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1) if factor > 1 else picture


def caption(picture: np.ndarray, text: str) -> np.ndarray:
    """Write `text` in the top-left corner on a dark band."""
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((3, 2), text)
    draw.rectangle((0, 0, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(image)


def write_gif(path: str | Path, frames: Sequence[np.ndarray], frame_ms: int = 80) -> Path:
    """An endlessly looping animated GIF of RGB frames."""
    pictures = [Image.fromarray(frame) for frame in frames]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=frame_ms, loop=0, optimize=False)
    return Path(path)


def write_grid(path: str | Path, rows: Sequence[Sequence[tuple[np.ndarray, str]]],
               gap: int = 4) -> Path:
    """A PNG grid of captioned panels, one list of (picture, caption) per row."""
    panels = [[caption(enlarge(picture), text) for picture, text in row] for row in rows]
    height = max(p.shape[0] for row in panels for p in row)
    width = max(p.shape[1] for row in panels for p in row)
    columns = max(len(row) for row in panels)
    canvas = np.full((len(panels) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255,
                     np.uint8)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            canvas[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
    return Path(path)


def write_rotation_gif(path: str | Path, kept: Kept, frame_ms: int = 80) -> Path:
    """The seed's animation: each rotated input with the model's prediction painted on it."""
    frames = [caption(enlarge(paint(image, labels_from_probs(probs))), f"{p.level:g} deg")
              for p, image, probs in zip(kept.perturbations, kept.inputs, kept.probs)
              if p.name == "rotate"]
    return write_gif(path, frames, frame_ms)


def write_sample_grid(path: str | Path, items: Sequence[SweepImage], kept: dict[str, Kept]) -> Path:
    """One row per image: the image, its ground truth and the prediction painted on it."""
    rows = []
    for item in items:
        prediction = labels_from_probs(kept[item.name].reference) * item.footprint[0]
        row = [(to_rgb(item.image), item.name)]
        if item.target is not None:
            row.append((paint(item.image, item.target[0].long()), "ground truth"))
        row.append((paint(item.image, prediction), "prediction"))
        rows.append(row)
    return write_grid(path, rows)
