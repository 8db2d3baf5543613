"""C_N and D_N group convolutions (C8, D8: filters turned by 45 degrees) on flat group feature maps.

Convention (extends `equiseg.nn.groups`): an element is g = r^k m^f, k in 0..N-1, f in {0, 1}:
first mirror left-right if f = 1, then rotate by k * 360/N degrees counter-clockwise as displayed
(`torch.rot90(x, 1, dims=(-2, -1))` is r^(N/4)). Its index is k + N*f, so C4 and D4 list their
elements in the order of p4 and p4m. Feature maps are `(B, C*|G|, H, W)` with the group axis
innermost, exactly as p4/p4m's, so `layers.GroupNorm`, `layers.GroupPool`, pooling, upsampling and
skip concatenation work on them unchanged (they read only `group.order`).

A filter W under g is (g . W)(p) = W(g^-1 p). Only the turns by less than 90 degrees,
r^b for b < N/4, are computed, by a steerable basis (`SteerableGroupConv2d`) or by bilinear
resampling of free pixels as the seed does (`InterpolatedGroupConv2d`); every other element is an
exact pixel permutation of one of them:

    r^(q N/4 + b) . W = rot90^q (r^b . W)        r^k m . W = m r^-k . W = flip(r^(-k mod N) . W)

so the p4 (p4m) sub-group acts on filters by permuting pixels and stays exactly equivariant.

The steerable filters are sums of circular harmonics times Gaussian rings
(`equiseg.nn.harmonics`), turned by rotating their coefficients: the same continuous function
sampled again, at any angle. How close a layer or a network comes to equivariance at 45 degrees
is measured by `equiseg.nn.equivariance.layer_equivariance_error` (benchmarks/layer_equivariance.py).
"""

from __future__ import annotations

import abc
import math
import re
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from equiseg.geometry import rotate_batch, rotation_theta
from equiseg.nn.harmonics import Harmonic, default_harmonics, sample_harmonics

# --------------------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class RotationGroup:
    """C_N (`mirrors=False`) or D_N: N rotations by 360/N degrees, and mirrors; N divisible by 4."""

    rotations: int
    mirrors: bool

    def __post_init__(self) -> None:
        if self.rotations < 4 or self.rotations % 4:
            raise ValueError(f"rotations={self.rotations}: must be a multiple of 4 (4, 8, 12, 16, "
                             "...) so that the quarter turns are group elements")

    @property
    def name(self) -> str:
        return f"{'d' if self.mirrors else 'c'}{self.rotations}"

    @property
    def order(self) -> int:
        return self.rotations * (2 if self.mirrors else 1)

    @property
    def elements(self) -> tuple[tuple[int, int], ...]:
        """(k, f) for index k + N f: r^k m^f."""
        return tuple((k, f) for f in range(2 if self.mirrors else 1) for k in range(self.rotations))

    def index(self, k: int, f: int = 0) -> int:
        return k % self.rotations + self.rotations * f

    def angle(self, index: int) -> float:
        """The rotation part of element `index`, in degrees counter-clockwise."""
        return 360.0 * self.elements[index][0] / self.rotations

    def element_name(self, index: int) -> str:
        mirrored = self.elements[index][1]
        return f"rot{self.angle(index):g}" + ("_flip_h" if mirrored else "")

    @cached_property
    def product(self) -> tuple[tuple[int, ...], ...]:
        """product[a][b] = index of a*b: r^k1 m^f1 r^k2 m^f2 = r^(k1 + (-1)^f1 k2) m^(f1 + f2)."""
        return tuple(
            tuple(self.index(k1 + (-1) ** f1 * k2, f1 ^ f2) for k2, f2 in self.elements)
            for k1, f1 in self.elements)

    @cached_property
    def inverse(self) -> tuple[int, ...]:
        return tuple(row.index(0) for row in self.product)

    def fibre_permutation(self, index: int) -> list[int]:
        """perm[h] = a^-1 h: where each output orientation of g=a reads its input from."""
        a_inv = self.inverse[index]
        return [self.product[a_inv][h] for h in range(self.order)]

    def act_on_image(self, x: Tensor, index: int, mode: str = "bilinear") -> Tensor:
        """Mirror, then rotate the last two axes: exact at multiples of 90 degrees, otherwise
        resampled with `mode` about the centre of the (square) canvas (`rotate_batch`)."""
        if self.elements[index][1]:
            x = torch.flip(x, dims=(-1,))
        angle = self.angle(index)
        if angle % 90 == 0:
            k = int(angle // 90)
            return torch.rot90(x, k, dims=(-2, -1)) if k else x
        return rotate_batch(x, angle, mode=mode)

    def act_on_features(self, x: Tensor, index: int, mode: str = "bilinear") -> Tensor:
        """Act on a flat group feature map (B, C*|G|, H, W): permute each fibre, move each pixel."""
        fibres = rearrange(x, "b (c g) h w -> b c g h w", g=self.order)
        fibres = fibres[:, :, self.fibre_permutation(index)]
        return self.act_on_image(rearrange(fibres, "b c g h w -> b (c g) h w"), index, mode)


def get_rotation_group(name: str) -> RotationGroup:
    """'c8' (rotations by 45 degrees), 'd8' (and mirrors); any 'cN'/'dN' with N divisible by 4."""
    match = re.fullmatch(r"([cd])(\d+)", name)
    if match is None:
        raise ValueError(f"unknown rotation group {name!r} (expected 'c8', 'd8', 'c16', ...)")
    return RotationGroup(int(match[2]), match[1] == "d")


def orbit(turned: Tensor, group: RotationGroup) -> Tensor:
    """Every g . W, stacked on a new axis -3, from `turned` (..., N/4, k, k) = r^b . W, b < N/4.

    Uses only rot90 and flip (see the module docstring), so the result is exact wherever the
    element is a quarter turn or a mirror of one of the given filters.
    """
    quarter = group.rotations // 4
    if turned.shape[-3] != quarter:
        raise ValueError(f"expected {quarter} turned filters on axis -3, got {turned.shape[-3]}")
    out = []
    for k, f in group.elements:
        source = (-k) % group.rotations if f else k
        q, b = divmod(source, quarter)
        filt = turned[..., b, :, :]
        filt = torch.rot90(filt, q, dims=(-2, -1)) if q else filt
        out.append(torch.flip(filt, dims=(-1,)) if f else filt)
    return torch.stack(out, dim=-3)


# ------------------------------------------------------------------------------------- layers


class RotatedFilterConv2d(nn.Module, abc.ABC):
    """Convolution from `in_channels` fibres of `input_order` orientations to `out_channels` fibres
    of |G| orientations; `lifting=True` takes a plain image (input_order 1).

    The filter bank is rebuilt from the learned filters at every forward pass (Cohen & Welling
    2016), with the spatial part of g applied by the subclass's `moved_filters`:

        bank[o, g, i, h](p) = (g . W[o, i, g^-1 h])(p) = W[o, i, g^-1 h](g^-1 p)
    """

    def __init__(self, in_channels: int, out_channels: int, group: RotationGroup,
                 kernel_size: int = 3, lifting: bool = False, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: must be odd so that rotations keep the "
                             "filter's centre on a pixel")
        self.group, self.kernel_size = group, kernel_size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_order = 1 if lifting else group.order
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # gather over the flattened (input orientation h, element g) axis of the orbit
        order = group.order
        index = [[(group.fibre_permutation(g)[h] if self.input_order > 1 else 0) * order + g
                  for h in range(self.input_order)] for g in range(order)]
        self.register_buffer("bank_index", torch.tensor(index).reshape(-1), persistent=False)

    @abc.abstractmethod
    def moved_filters(self) -> Tensor:
        """(out, in, input_order, |G|, k, k): g . W[o, i, h] for every element g; each
        construction (steerable, interpolated) turns its filters its own way."""

    def filter_bank(self) -> Tensor:
        """The conv2d weight ((out |G|), (in input_order), k, k)."""
        moved = rearrange(self.moved_filters(), "o i h g kh kw -> o i (h g) kh kw")
        return rearrange(moved[:, :, self.bank_index], "o i (g h) kh kw -> (o g) (i h) kh kw",
                         h=self.input_order)

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group.order)
        return F.conv2d(x, self.filter_bank(), bias, padding=self.kernel_size // 2)


class SteerableGroupConv2d(RotatedFilterConv2d):
    """C_N / D_N convolution whose filters are sums of circular harmonics (`default_harmonics`),
    turned exactly by rotating their coefficients. Parameters: out * in * input_order * J
    (J = 6 for 3x3, 11 for 5x5, against 9 and 25 free pixels)."""

    def __init__(self, in_channels: int, out_channels: int, group: RotationGroup,
                 kernel_size: int = 3, lifting: bool = False, bias: bool = True,
                 harmonics: tuple[Harmonic, ...] | None = None) -> None:
        super().__init__(in_channels, out_channels, group, kernel_size, lifting, bias)
        self.harmonics = harmonics or default_harmonics(kernel_size)
        steps = [360.0 * b / group.rotations for b in range(group.rotations // 4)]
        turned = torch.stack([sample_harmonics(self.harmonics, kernel_size, a) for a in steps], 1)
        # (J, |G|, k, k): g . psi_j, built in float64 by the exact rot90/flip of `orbit`
        self.register_buffer("basis", orbit(turned, group).float(), persistent=False)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, self.input_order, len(self.harmonics)))
        # unit-norm basis: kaiming_uniform(a=sqrt(5)) over the J coefficients gives each pixel
        # the variance GroupConv2d's free filters start with, 1 / (3 * in * input_order * k*k)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def moved_filters(self) -> Tensor:
        return torch.einsum("oihj,jgxy->oihgxy", self.weight, self.basis)


def bilinear_turn(filters: Tensor, angle: float) -> Tensor:
    """Filters (..., k, k) turned counter-clockwise by `angle` degrees by bilinear resampling of
    their pixels about the centre pixel, zeros outside (the seed's grid_sample construction)."""
    k = filters.shape[-1]
    if k == 1:
        return filters.clone()
    flat = filters.reshape(-1, 1, k, k)
    theta = rotation_theta(torch.tensor([angle], dtype=torch.float64)).to(filters)
    grid = F.affine_grid(theta, [1, 1, k, k], align_corners=True).expand(flat.shape[0], -1, -1, -1)
    turned = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return turned.reshape(filters.shape)


class InterpolatedGroupConv2d(RotatedFilterConv2d):
    """C_N / D_N convolution over free k x k filters turned by bilinear interpolation (the seed's
    `CyclicGroup` kernels; the comparison for `SteerableGroupConv2d`)."""

    def __init__(self, in_channels: int, out_channels: int, group: RotationGroup,
                 kernel_size: int = 3, lifting: bool = False, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, group, kernel_size, lifting, bias)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, self.input_order, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def moved_filters(self) -> Tensor:
        steps = [360.0 * b / self.group.rotations for b in range(self.group.rotations // 4)]
        turned = [bilinear_turn(self.weight, a) if a else self.weight for a in steps]
        return orbit(torch.stack(turned, -3), self.group)
