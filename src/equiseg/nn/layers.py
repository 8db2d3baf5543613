"""Group-equivariant layers on flat `(B, C*|G|, H, W)` feature maps (layout: see `equiseg.nn.groups`).

Each convolution is ONE `conv2d` over a filter bank that is rebuilt from the learned filters at
every forward pass by a single gather: for output orientation g, the filter is the learned one
moved by g in space and with its input orientations permuted by h -> g^-1 h (Cohen & Welling 2016):

    bank[o, g, i, h](p) = W[o, i, g^-1 h](g^-1 p)

With the trivial group these layers are ordinary convolutions, so one U-Net skeleton serves all.
Over C8/D8 the convolution is `cyclic.SteerableGroupConv2d` (`group_conv` picks it); GroupNorm and
GroupPool read only the group's order and serve both kinds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

from equiseg.nn.cyclic import RotationGroup, SteerableGroupConv2d
from equiseg.nn.groups import Group, NetworkGroup, act_on_image


def filter_bank_index(group: Group, input_order: int, kernel_size: int) -> Tensor:
    """Gather index (|G|, input_order * k * k) into a filter flattened over (input orientation, p).

    `input_order` is |G| for a group convolution and 1 for a lifting convolution (the image
    carries no orientation axis, so only the spatial part of g acts).
    """
    taps = kernel_size * kernel_size
    spatial = torch.arange(taps).reshape(kernel_size, kernel_size)
    rows = []
    for g, element in enumerate(group.elements):
        moved = act_on_image(spatial, element).reshape(-1)  # bank tap p reads W at g^-1 p
        orientations = group.fibre_permutation(g) if input_order > 1 else [0]
        rows.append(torch.cat([h * taps + moved for h in orientations]))
    return torch.stack(rows)


class GroupConv2d(nn.Module):
    """Convolution from `in_channels` fibres of `input_order` orientations to `out_channels` fibres.

    `lifting=True` takes a plain image (input_order 1) to group feature maps.
    """

    def __init__(self, in_channels: int, out_channels: int, group: Group, kernel_size: int = 3,
                 lifting: bool = False, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd so that rotations keep the filter's centre")
        self.group, self.kernel_size = group, kernel_size
        self.input_order = 1 if lifting else group.order
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, self.input_order * kernel_size * kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("bank_index", filter_bank_index(group, self.input_order, kernel_size),
                             persistent=False)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def filter_bank(self) -> Tensor:
        bank = self.weight[:, :, self.bank_index]  # (o, i, g, h*kh*kw)
        return rearrange(bank, "o i g (h kh kw) -> (o g) (i h) kh kw",
                         h=self.input_order, kh=self.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group.order)
        return F.conv2d(x, self.filter_bank(), bias, padding=self.kernel_size // 2)


def group_conv(in_channels: int, out_channels: int, group: NetworkGroup, kernel_size: int = 3,
               lifting: bool = False, bias: bool = True) -> GroupConv2d | SteerableGroupConv2d:
    """The convolution over `group`: free filters moved by exact pixel permutations for the p4
    family (`GroupConv2d`), steerable filters turned by 360/N degrees for C_N / D_N."""
    if isinstance(group, RotationGroup):
        return SteerableGroupConv2d(in_channels, out_channels, group, kernel_size, lifting, bias)
    return GroupConv2d(in_channels, out_channels, group, kernel_size, lifting, bias)


class GroupNorm(nn.Module):
    """GroupNorm whose groups hold whole orientation fibres and whose affine is shared across them.

    A per-channel affine over C*|G| channels would pass an equivariance test at initialisation and
    break it once trained; here each fibre has one scale and one shift.
    """

    def __init__(self, num_groups: int, channels: int, group: NetworkGroup,
                 eps: float = 1e-5) -> None:
        super().__init__()
        if channels % num_groups:
            raise ValueError(f"norm_groups={num_groups} must divide the fibre count {channels}")
        self.num_groups, self.order, self.eps = num_groups, group.order, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        # channels of fibre c are c*|G| .. c*|G|+|G|-1, so contiguous GroupNorm groups of whole
        # fibres are exactly torch's groups when num_groups divides the fibre count
        return F.group_norm(x, self.num_groups, self.weight.repeat_interleave(self.order),
                            self.bias.repeat_interleave(self.order), self.eps)


class GroupPool(nn.Module):
    """Pool each fibre over its orientations: group feature maps -> ordinary (invariant) channels."""

    def __init__(self, group: NetworkGroup, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"group pooling {mode!r} unknown (allowed: mean, max)")
        self.order, self.mode = group.order, mode

    def forward(self, x: Tensor) -> Tensor:
        return reduce(x, "b (c g) h w -> b c h w", self.mode, g=self.order)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and ReLU, plus a 1x1 projection of the block's input."""

    def __init__(self, in_channels: int, out_channels: int, group: Group, norm_groups: int,
                 lifting: bool = False) -> None:
        super().__init__()
        self.conv1 = GroupConv2d(in_channels, out_channels, group, 3, lifting=lifting, bias=False)
        self.norm1 = GroupNorm(norm_groups, out_channels, group)
        self.conv2 = GroupConv2d(out_channels, out_channels, group, 3, bias=False)
        self.norm2 = GroupNorm(norm_groups, out_channels, group)
        self.project = GroupConv2d(in_channels, out_channels, group, 1, lifting=lifting)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.project(x))
