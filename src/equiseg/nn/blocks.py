"""The seed's building blocks (dogeplusplus/group-unet, `res_block=True`), over any group.

`ConvBlock(in, out)`: conv(in->out) GroupNorm ReLU conv(out->out) GroupNorm ReLU, 3x3 "same".
`ResConvBlock(in, out)`: `ConvBlock(in, in)(x) + x`, then a 3x3 projection conv(in->out), GroupNorm,
ReLU. Convolutions carry a bias only over the trivial group (the seed's lifting and group
convolutions have none); GroupNorm's affine is per fibre, shared by its orientations, as the seed's
`GroupNorm(4, c)` on a (b, c, g, h, w) tensor is. Over C8/D8 the convolutions are steerable
(`layers.group_conv`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from equiseg.nn.groups import NetworkGroup
from equiseg.nn.layers import GroupNorm, group_conv


class ConvNormReLU(nn.Module):
    """One 3x3 group convolution, GroupNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, group: NetworkGroup, norm_groups: int,
                 lifting: bool = False) -> None:
        super().__init__()
        self.conv = group_conv(in_channels, out_channels, group, 3, lifting=lifting,
                               bias=group.order == 1)
        self.norm = GroupNorm(norm_groups, out_channels, group)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class ConvBlock(nn.Sequential):
    """The seed's `Block`: two ConvNormReLU."""

    def __init__(self, in_channels: int, out_channels: int, group: NetworkGroup,
                 norm_groups: int) -> None:
        super().__init__(
            ConvNormReLU(in_channels, out_channels, group, norm_groups),
            ConvNormReLU(out_channels, out_channels, group, norm_groups))


class ResConvBlock(nn.Module):
    """The seed's `ResBlock`: a residual ConvBlock at the input width, then a projection."""

    def __init__(self, in_channels: int, out_channels: int, group: NetworkGroup,
                 norm_groups: int) -> None:
        super().__init__()
        self.residual = ConvBlock(in_channels, in_channels, group, norm_groups)
        self.project = ConvNormReLU(in_channels, out_channels, group, norm_groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.residual(x) + x)
