"""Shifts and zooms of image batches, and where a round trip through them is valid.

Convention (the one of `equiseg.geometry`): images are square canvases `(B, C, S, S)`, row 0 at
the top; what leaves the canvas is lost and what comes in from outside is zero.

- `shift_batch(x, d)` moves the picture by `d` pixels right AND `d` pixels down (along the
  main diagonal; a negative `d` moves it up-left). Whole-pixel shifts are exact (a copy of
  pixels); fractional ones resample bilinearly.
- `zoom_batch(x, f)` magnifies the picture by the factor `f` about the canvas centre: `f > 1`
  zooms in (the border leaves the canvas), `f < 1` zooms out (a black border comes in).
  `f = 1` is exact; other factors resample bilinearly.

Resampling is `affine_grid`/`grid_sample` with `align_corners=False` and zeros outside, as for
rotations off the 90-degree grid. `round_trip_valid_for` is `geometry.round_trip_valid` for any
warp: the footprint, as a float mask, goes there and back the same way, and a pixel is valid
where the round trip still covers it fully (>= `geometry.VALID_FRACTION`) and it lay in the
footprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from equiseg.geometry import VALID_FRACTION

Warp = Callable[[Tensor, Sequence[float]], Tensor]


def _levels(levels: float | Sequence[float], batch: int) -> list[float]:
    levels = [float(levels)] * batch if isinstance(levels, (int, float)) else list(levels)
    if len(levels) != batch:
        raise ValueError(f"got {len(levels)} levels for a batch of {batch} images")
    return levels


def _resample(x: Tensor, theta: Tensor) -> Tensor:
    """`grid_sample` of `x` at `affine_grid(theta)`: bilinear, zeros outside."""
    work = x if x.is_floating_point() else x.float()
    grid = F.affine_grid(theta.to(device=x.device, dtype=work.dtype), list(work.shape),
                         align_corners=False)
    return F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False).to(x.dtype)


def _shift_whole(x: Tensor, d: int) -> Tensor:
    """Exact shift by whole pixels: content at (i, j) moves to (i + d, j + d), zeros come in."""
    size = x.shape[-1]
    out = torch.zeros_like(x)
    if abs(d) >= size:
        return out
    src = slice(max(-d, 0), size - max(d, 0))
    dst = slice(max(d, 0), size - max(-d, 0))
    out[..., dst, dst] = x[..., src, src]
    return out


def shift_batch(x: Tensor, shifts: float | Sequence[float]) -> Tensor:
    """Move each image of `x` (B, C, S, S) by its shift in pixels, right and down."""
    out = torch.empty_like(x)
    for i, d in enumerate(_levels(shifts, x.shape[0])):
        if float(d).is_integer():
            out[i] = _shift_whole(x[i], int(d))
            continue
        # output pixel q samples the input at q - d; normalised units are 2 / S per pixel
        offset = -2.0 * d / x.shape[-1]
        theta = torch.tensor([[[1.0, 0.0, offset], [0.0, 1.0, offset]]], dtype=torch.float64)
        out[i] = _resample(x[i:i + 1], theta)[0]
    return out


def zoom_batch(x: Tensor, factors: float | Sequence[float]) -> Tensor:
    """Magnify each image of `x` (B, C, S, S) by its factor about the canvas centre."""
    factors = _levels(factors, x.shape[0])
    if any(f <= 0 for f in factors):
        raise ValueError(f"zoom factors must be > 0, got {factors}")
    out = torch.empty_like(x)
    for i, f in enumerate(factors):
        if f == 1.0:
            out[i] = x[i]
            continue
        # output pixel q samples the input at q / f (coordinates about the centre)
        theta = torch.tensor([[[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0]]], dtype=torch.float64)
        out[i] = _resample(x[i:i + 1], theta)[0]
    return out


def round_trip_valid_for(footprint: Tensor, levels: Sequence[float], forward: Warp,
                         inverse: Warp) -> Tensor:
    """(B, 1, S, S) boolean: where `inverse(forward(footprint))` at each level still covers the
    pixel fully and the pixel lies in `footprint` ((1, S, S) or (B, 1, S, S) boolean)."""
    levels = list(levels)
    base = footprint.reshape(-1, 1, *footprint.shape[-2:]).float().expand(len(levels), -1, -1, -1)
    back = inverse(forward(base.contiguous(), levels), levels)
    return (back >= VALID_FRACTION) & base.bool()
