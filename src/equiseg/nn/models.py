"""The U-Nets: `unet`, `gunet`, `gunet_p4m`, `gunet_c8` and `gunet_d8` are the seed's network over
different groups.

`UNet` is the seed's skeleton (dogeplusplus/group-unet, `res_block=True`; described in the README's
fidelity table): a 3x3 lifting convolution, then one `ResConvBlock` per consecutive pair of
`filters` ([32, 32, 64, 64] -> three levels), each followed by 2x2 average pooling with its output
kept as a skip; the decoder mirrors it with nearest-neighbour upsampling, `cat([skip, x])` and a
block per level; a final 3x3 convolution, then the mean over the group axis. With the trivial group
it is the seed's plain U-Net; with p4 or p4m it is exactly equivariant to 90-degree rotations (and
mirrors): average pooling, nearest upsampling and zero padding commute with them when the size is
divisible by 2^levels. With c8 or d8 the convolutions are steerable (`layers.group_conv`): still
exact at the quarter turns (and mirrors), and close to equivariant at the eighth turns, where
the pixel grid (filters, 2x2 pooling, nearest upsampling) allows only approximation.

`FourLevelUNet` is this project's earlier design (four residual blocks with 1x1 projections and max
pooling, a bottleneck, bilinear upsampling, group pooling then a 1x1 head), kept as `unet_4level`
and `gunet_4level` so that the change of network can be measured rather than argued.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiseg.errors import EquisegError
from equiseg.nn.blocks import ResConvBlock
from equiseg.nn.groups import get_group, get_network_group
from equiseg.nn.layers import GroupPool, ResidualBlock, group_conv
from equiseg.presets import MODEL_PRESETS
from equiseg.runs import run_name


class InputSizeError(EquisegError, ValueError):
    """The input's height or width is not divisible by the network's total downsampling."""


def check_input_size(x: Tensor, divisor: int) -> None:
    height, width = x.shape[-2:]
    if height % divisor or width % divisor:
        raise InputSizeError(
            f"input is {height}x{width}; height and width must be divisible by {divisor} "
            "(resize or pad the image)")


class UNet(nn.Module):
    """The seed's U-Net over the group `group`; input (B, C, H, W), output (B, out, H, W) logits.
    No architecture defaults of its own: `build_model` fills them from `MODEL_PRESETS`."""

    def __init__(self, group: str, filters: tuple[int, ...], norm_groups: int, group_pool: str,
                 in_channels: int = 3, out_channels: int = 1) -> None:
        super().__init__()
        g = get_network_group(group)
        self.group_name = group
        widths = list(filters)
        pairs = list(itertools.pairwise(widths))
        self.lift = group_conv(in_channels, widths[0], g, 3, lifting=True, bias=g.order == 1)
        self.down = nn.ModuleList(ResConvBlock(a, b, g, norm_groups) for a, b in pairs)
        self.up = nn.ModuleList(ResConvBlock(2 * b, a, g, norm_groups) for a, b in reversed(pairs))
        self.final = group_conv(widths[0], out_channels, g, 3, bias=g.order == 1)
        self.pool_group = GroupPool(g, group_pool)
        self.divisor = 2 ** len(pairs)

    def forward(self, x: Tensor) -> Tensor:
        check_input_size(x, self.divisor)
        x = self.lift(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([skip, x], dim=1))
        return self.pool_group(self.final(x))


class FourLevelUNet(nn.Module):
    """This project's earlier residual U-Net over the group `group` (see the module docstring);
    the p4 family only (trivial, p4, p4m); its presets are `unet_4level` and `gunet_4level`."""

    def __init__(self, group: str, filters: tuple[int, ...], norm_groups: int, group_pool: str,
                 in_channels: int = 3, out_channels: int = 1) -> None:
        super().__init__()
        g = get_group(group)
        self.group_name = group
        widths = list(filters)
        self.down = nn.ModuleList()
        previous, lifting = in_channels, True
        for width in widths:
            self.down.append(ResidualBlock(previous, width, g, norm_groups, lifting=lifting))
            previous, lifting = width, False
        self.bottleneck = ResidualBlock(previous, widths[-1], g, norm_groups)
        self.up = nn.ModuleList()
        for width in reversed(widths):
            self.up.append(ResidualBlock(previous + width, width, g, norm_groups))
            previous = width
        self.pool_group = GroupPool(g, group_pool)
        self.head = nn.Conv2d(previous, out_channels, kernel_size=1)
        self.divisor = 2 ** len(widths)

    def forward(self, x: Tensor) -> Tensor:
        check_input_size(x, self.divisor)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(self.pool_group(x))


NETWORKS = {"seed": UNet, "four_level": FourLevelUNet}  # by skeleton (`presets.SKELETONS`)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """The model called `name` (a key of `MODEL_PRESETS`), its preset updated by `overrides`."""
    if name not in MODEL_PRESETS:
        raise EquisegError(f"unknown model {name!r} (allowed: {', '.join(MODEL_PRESETS)})")
    settings = {**MODEL_PRESETS[name], **overrides}
    settings["filters"] = tuple(settings["filters"])
    return NETWORKS[settings.pop("skeleton")](**settings)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_trained(path: str | Path, model: nn.Module, name: str, architecture: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> None:
    """Save weights with what it takes to rebuild the model, atomically; the same weights and
    metadata give the same bytes (so DVC sees an unchanged output)."""
    from equiseg.io import write_bytes

    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"name": name, "architecture": dict(architecture), "extra": dict(extra or {}),
               "state_dict": state}
    # torch.save names the zip's top folder after the file it writes to: a random temporary name
    # would differ on every run, so serialise to memory (folder "archive") and write the bytes.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def load_trained(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by `save_trained`; returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise EquisegError(f"{path}: trained model not found; run `dvc repro` (or the train stage)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
        model = build_model(payload["name"], **payload["architecture"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, EOFError) as err:
        raise EquisegError(f"{path}: not a model saved by equiseg ({str(err).splitlines()[0]}); "
                           "retrain it with `dvc repro`") from None
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(map_location).eval(), meta


def load_replicates(models: Sequence[str], augments: Sequence[str], seeds: Sequence[int],
                    folder: str | Path = "models", map_location: str | torch.device = "cpu",
                    ) -> dict[tuple[str, str, int], tuple[nn.Module, dict]]:
    """Every trained replicate `<folder>/<model>-<augment>-seed<N>.pt`, keyed by (model, augment,
    seed): all loaded (or one missing named) before a stage does any work."""
    folder = Path(folder)
    return {(model, augment, seed):
            load_trained(folder / f"{run_name(model, augment, seed)}.pt", map_location=map_location)
            for model in models for augment in augments for seed in seeds}

