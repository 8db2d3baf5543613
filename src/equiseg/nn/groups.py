"""The point groups C4 (p4) and D4 (p4m) and how they act on images and on group feature maps.

An element is g = r^k m^f: first mirror left-right if f = 1, then rotate by k * 90 degrees
counter-clockwise (`torch.rot90(x, k, dims=(-2, -1))`). The trivial group {e} makes the plain U-Net
the same skeleton as the group U-Nets.

Group feature maps are laid out flat as `(B, C*|G|, H, W)` with the group axis innermost,
`rearrange(x, "b (c g) h w -> b c g h w", g=|G|)`, so plain `conv2d`, pooling, upsampling and skip
concatenation work on them unchanged. g acts on such a map by moving each pixel (spatial action) and
permuting each fibre: (g . f)(c, h) = g_spatial( f(c, g^-1 h) ).

A network may also work over C8 or D8 (`equiseg.nn.cyclic.RotationGroup`: turns by 45 degrees,
same flat layout); `get_network_group` names either kind, and `group_turn` the rotations it
covers. `get_group` stays the p4 family, whose elements (k, f) count quarter turns, as
`act_on_image` reads them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from equiseg.nn.cyclic import RotationGroup, get_rotation_group

_ELEMENTS = {
    "trivial": ((0, 0),),
    "p4": ((0, 0), (1, 0), (2, 0), (3, 0)),
    "p4m": ((0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1)),
}
# Names a user reads in reports: rotations are counter-clockwise; the four mirrors of D4.
_NAMES = {
    (0, 0): "identity", (1, 0): "rot90", (2, 0): "rot180", (3, 0): "rot270",
    (0, 1): "flip_h", (1, 1): "transpose", (2, 1): "flip_v", (3, 1): "anti_transpose",
}


def act_on_image(x: Tensor, element: tuple[int, int]) -> Tensor:
    """Apply r^k m^f to the last two (spatial) axes of `x`: mirror left-right, then rotate."""
    k, f = element
    if f:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x


@dataclass(frozen=True)
class Group:
    """A finite group of rotations and mirrors of the pixel grid, with its Cayley table."""

    name: str
    elements: tuple[tuple[int, int], ...]
    product: tuple[tuple[int, ...], ...]  # product[a][b] = index of (a * b)
    inverse: tuple[int, ...]

    @property
    def order(self) -> int:
        return len(self.elements)

    @property
    def rotations(self) -> int:
        """How many rotations it holds (its elements without a mirror): 1, or 4 for p4/p4m."""
        return sum(1 for _, mirrored in self.elements if not mirrored)

    def element_name(self, index: int) -> str:
        return _NAMES[self.elements[index]]

    def fibre_permutation(self, index: int) -> list[int]:
        """perm[h] = a^-1 h: where each output orientation of g=a reads its input from."""
        a_inv = self.inverse[index]
        return [self.product[a_inv][h] for h in range(self.order)]

    def act_on_features(self, x: Tensor, index: int) -> Tensor:
        """Act on a flat group feature map (B, C*|G|, H, W) by the element with this index."""
        fibres = rearrange(x, "b (c g) h w -> b c g h w", g=self.order)
        fibres = fibres[:, :, self.fibre_permutation(index)]
        return act_on_image(rearrange(fibres, "b c g h w -> b (c g) h w"), self.elements[index])


def _cayley_table(elements: tuple[tuple[int, int], ...]) -> tuple[tuple[int, ...], ...]:
    """Find a*b by acting on an asymmetric probe image: act(act(x, b), a) == act(x, a*b)."""
    probe = torch.arange(9.0).reshape(3, 3)
    images = [act_on_image(probe, e) for e in elements]

    def index_of(image: Tensor) -> int:
        return next(i for i, candidate in enumerate(images) if torch.equal(candidate, image))

    return tuple(
        tuple(index_of(act_on_image(act_on_image(probe, b), a)) for b in elements) for a in elements
    )


@functools.cache
def get_group(name: str) -> Group:
    """The group called `name`: 'trivial', 'p4' (C4 rotations) or 'p4m' (D4, rotations and mirrors)."""
    if name not in _ELEMENTS:
        raise ValueError(f"unknown group {name!r} (allowed: {', '.join(_ELEMENTS)})")
    elements = _ELEMENTS[name]
    product = _cayley_table(elements)
    inverse = tuple(row.index(0) for row in product)
    return Group(name=name, elements=elements, product=product, inverse=inverse)


# The groups a network's convolutions work over: the p4 family permutes free filters' pixels
# (exact at every element); C_N / D_N turn steerable filters (exact at the quarter turns and
# mirrors, as close as the pixel grid allows in between).
NetworkGroup = Group | RotationGroup


def get_network_group(name: str) -> NetworkGroup:
    """The group a network over `name` convolves with: 'trivial', 'p4', 'p4m' (`get_group`), or
    'c8', 'd8' (any 'cN'/'dN' with N divisible by 4; `cyclic.get_rotation_group`)."""
    if name in _ELEMENTS:
        return get_group(name)
    try:
        return get_rotation_group(name)
    except ValueError:
        raise ValueError(f"unknown group {name!r} (allowed: {', '.join(_ELEMENTS)}, c8, d8, or "
                         "any cN/dN with N a multiple of 4)") from None


def group_turn(name: str) -> float:
    """The smallest rotation of the group `name`, in degrees: a network over it covers exactly the
    rotations by multiples of it (90 for p4/p4m, 45 for c8/d8, 360 for the trivial group, whose
    only rotation is the full turn). The one place a model's group becomes its angles."""
    return 360.0 / get_network_group(name).rotations
