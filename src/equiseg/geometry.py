"""Rotations, flips, padding and valid regions of image batches, under one convention.

Convention (the same as `equiseg.nn.groups` and `torch.rot90(x, 1, dims=(-2, -1))`): rotating by a
positive angle turns the picture COUNTER-clockwise as displayed (row 0 at the top), about the
centre of the canvas. Images are square canvases `(B, C, S, S)`; what falls outside the canvas is
lost and what comes in from outside is zero.

Multiples of 90 degrees go through `torch.rot90` and are exact (a permutation of pixels), so an
exactly equivariant model shows as exact. Other angles resample with `affine_grid`/`grid_sample`
(`align_corners=False`, zeros outside): bilinear for images and probability maps; masks are
rotated as 0/1 images and thresholded at 0.5 ("thresholded bilinear"). Rotating by +a then -a
returns the original inside `round_trip_valid(...)`, up to the blur of interpolating twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Angles = float | Sequence[float] | Tensor

# A pixel is valid when at least this fraction of its round trip came from inside the footprint.
VALID_FRACTION = 1.0 - 1e-3


def _angle_vector(angles: Angles, batch: int, device: torch.device) -> Tensor:
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles.numel() == 1:
        angles = angles.expand(batch)
    if angles.numel() != batch:
        raise ValueError(f"got {angles.numel()} angles for a batch of {batch} images")
    return angles.remainder(360.0)


def _require_square_batch(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected square images (B, C, S, S), got shape {tuple(x.shape)}; "
                         "pad them with pad_to_square first")


def rotation_theta(angles: Tensor) -> Tensor:
    """`affine_grid` matrices (B, 2, 3): output pixel q samples the input at R(-a) q.

    In normalised coordinates (x right, y down) a counter-clockwise turn by a maps
    (x, y) -> (x cos a + y sin a, -x sin a + y cos a); its inverse is the sampling matrix.
    """
    radians = angles * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)


def rotate_batch(x: Tensor, angles: Angles, mode: str = "bilinear") -> Tensor:
    """Rotate each image of `x` (B, C, S, S) counter-clockwise by its angle in degrees.

    `angles` is one number for the whole batch or one per image. Multiples of 90 degrees are exact.
    """
    _require_square_batch(x)
    angles = _angle_vector(angles, x.shape[0], x.device)
    quarter = torch.round(angles / 90.0)
    exact = (angles - 90.0 * quarter).abs() < 1e-9
    quarter = quarter.long().remainder(4)
    if bool(exact.all()) and bool((quarter == quarter[0]).all()):
        k = int(quarter[0])
        return torch.rot90(x, k, dims=(-2, -1)) if k else x.clone()
    out = torch.empty_like(x)
    for k in range(4):
        chosen = (exact & (quarter == k)).to(x.device)
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
    resample = (~exact).to(x.device)
    if resample.any():
        source = x[resample]
        work = source if source.is_floating_point() else source.float()
        theta = rotation_theta(angles[~exact]).to(device=x.device, dtype=work.dtype)
        grid = F.affine_grid(theta, list(work.shape), align_corners=False)
        out[resample] = F.grid_sample(work, grid, mode=mode, padding_mode="zeros",
                                      align_corners=False).to(x.dtype)
    return out


def flip_batch(x: Tensor, axis: str) -> Tensor:
    """Mirror images: axis 'h' flips left-right (the horizontal flip), 'v' flips top-bottom."""
    if axis not in ("h", "v"):
        raise ValueError(f"flip axis must be 'h' or 'v', got {axis!r}")
    return torch.flip(x, dims=(-1,) if axis == "h" else (-2,))


def pad_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of an image of this size centred on a square canvas of side `size`."""
    if height > size or width > size:
        raise ValueError(f"a {height}x{width} image does not fit a {size}x{size} canvas")
    return (size - height) // 2, (size - width) // 2


def pad_to_square(x: Tensor, size: int, value: float = 0.0) -> Tensor:
    """Centre `x` (..., H, W) on a square canvas of side `size`, filling with `value`."""
    height, width = x.shape[-2:]
    top, left = pad_offsets(height, width, size)
    return F.pad(x, (left, size - width - left, top, size - height - top), value=value)


def footprint(height: int, width: int, size: int, device: torch.device | str = "cpu") -> Tensor:
    """Boolean (1, size, size): where an image of this size lies on its canvas."""
    return pad_to_square(torch.ones(1, height, width, dtype=torch.bool, device=device), size,
                         value=False)


def round_trip_valid(footprint: Tensor, angles: Angles) -> Tensor:
    """Where rotating by +a and back by -a brings back content from inside the footprint.

    `footprint` is (1, S, S) or (B, 1, S, S) boolean; returns (B, 1, S, S) boolean, one per angle.
    A pixel p is valid when p lies in the footprint and its rotated position R(a) p stayed on the
    canvas, so the prediction read back at p was made from the image's own content at p.
    """
    count = torch.as_tensor(angles).numel()
    base = footprint.reshape(-1, 1, *footprint.shape[-2:]).float().expand(count, -1, -1, -1)
    angles = _angle_vector(angles, count, footprint.device)
    back = rotate_batch(rotate_batch(base, angles), -angles)
    return (back >= VALID_FRACTION) & base.bool()
