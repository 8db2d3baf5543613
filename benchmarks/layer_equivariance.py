"""Equivariance error of the C8/D8 layers at 45 and 90 degrees: steerable basis against the seed's
bilinear kernel interpolation, side by side (not a test; prints markdown tables).

    python benchmarks/layer_equivariance.py [--size 129] [--blur 2] [--kernels 3 5] [--seeds 3]
        [--margin 12] [--mode bilinear] [--blur-sweep 1 2 4]

For each group (c8, d8), layer (lifting: 3 channels -> 4 fibres; group conv: 4 -> 4 fibres),
kernel size and construction, with random weights (the layer's initialisation, one per seed): a
smooth random input (white noise blurred by a Gaussian of `--blur` pixels, `--size` odd so that
the centre of rotation is a pixel centre) is turned by g, and the layer's output on it is compared
with the output on the original turned by g (pixels resampled with `--mode`, fibres permuted),
over the disc of radius (size-1)/2 - margin: ||layer(g x) - g layer(x)|| / ||g layer(x)||, the
mean over seeds. Both constructions see the same inputs and the same resampling.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess

import torch

from equiseg.nn.cyclic import (
    InterpolatedGroupConv2d,
    RotatedFilterConv2d,
    SteerableGroupConv2d,
    get_rotation_group,
)
from equiseg.nn.equivariance import layer_equivariance_error, smooth_random_field

CONSTRUCTIONS = {"steerable": SteerableGroupConv2d, "interpolated": InterpolatedGroupConv2d}
IN_CHANNELS, FIBRES = 3, 4


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def build(construction: str, group_name: str, kernel_size: int, lifting: bool,
          seed: int) -> RotatedFilterConv2d:
    torch.manual_seed(seed)
    in_channels = IN_CHANNELS if lifting else FIBRES
    return CONSTRUCTIONS[construction](in_channels, FIBRES, get_rotation_group(group_name),
                                       kernel_size, lifting=lifting)


def mean_error(construction: str, group_name: str, kernel_size: int, lifting: bool, index: int,
               args: argparse.Namespace, blur: float, mode: str) -> float:
    errors = []
    for seed in range(args.seeds):
        layer = build(construction, group_name, kernel_size, lifting, seed)
        channels = IN_CHANNELS if lifting else FIBRES * layer.group.order
        x = smooth_random_field(1, channels, args.size, blur,
                                torch.Generator().manual_seed(1000 + seed))
        radius = (args.size - 1) / 2 - args.margin
        errors.append(layer_equivariance_error(layer, x, index, radius, mode))
    return statistics.mean(errors)


def main_table(args: argparse.Namespace) -> list[str]:
    lines = [f"Relative L2 error, blur {args.blur:g} px, {args.mode} resampling of input and "
             f"output, {args.size}x{args.size}, disc radius {(args.size - 1) / 2 - args.margin:g}, "
             f"mean of {args.seeds} seeds:", "",
             "| group | layer | kernel | params steerable / interpolated | 45 deg steerable | "
             "45 deg interpolated | ratio | 90 deg steerable | 90 deg interpolated | "
             "mirror steerable | mirror interpolated |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group_name in ("c8", "d8"):
        group = get_rotation_group(group_name)
        for lifting in (True, False):
            for k in args.kernels:
                params = [sum(p.numel() for p in build(c, group_name, k, lifting, 0).parameters())
                          for c in CONSTRUCTIONS]
                elements = {"45": group.index(1), "90": group.index(2),
                            "mirror": group.index(0, 1) if group.mirrors else None}
                cells = {(c, label): "-" if index is None else f"{mean_error(c, group_name, k, lifting, index, args, args.blur, args.mode):.2e}"
                    for c in CONSTRUCTIONS for label, index in elements.items()}
                ratio = float(cells["interpolated", "45"]) / float(cells["steerable", "45"])
                lines.append(
                    f"| {group_name} | {'lifting' if lifting else 'group conv'} | {k}x{k} | "
                    f"{params[0]} / {params[1]} | {cells['steerable', '45']} | "
                    f"{cells['interpolated', '45']} | {ratio:.0f}x | {cells['steerable', '90']} | "
                    f"{cells['interpolated', '90']} | {cells['steerable', 'mirror']} | "
                    f"{cells['interpolated', 'mirror']} |")
    return lines


def blur_table(args: argparse.Namespace) -> list[str]:
    modes = ("bilinear", "bicubic")
    lines = ["45-degree error of the C8 group conv against the input's smoothness and the "
             "resampling (same protocol):", "",
             "| kernel | construction | " + " | ".join(
                 f"blur {b:g} {m}" for b in args.blur_sweep for m in modes) + " |",
             "| --- | --- |" + " --- |" * (len(args.blur_sweep) * len(modes))]
    for k in args.kernels:
        for c in CONSTRUCTIONS:
            cells = [f"{mean_error(c, 'c8', k, False, 1, args, b, m):.2e}"
                     for b in args.blur_sweep for m in modes]
            lines.append(f"| {k}x{k} | {c} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=129, help="odd image side")
    parser.add_argument("--blur", type=float, default=2.0, help="Gaussian blur of the input (px)")
    parser.add_argument("--kernels", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--margin", type=float, default=12.0,
                        help="pixels between the compared disc and the inscribed circle")
    parser.add_argument("--mode", default="bilinear", choices=["bilinear", "bicubic"])
    parser.add_argument("--blur-sweep", type=float, nargs="*", default=[1.0, 2.0, 4.0])
    args = parser.parse_args()
    if args.size % 2 == 0:
        parser.error(f"--size {args.size}: must be odd so that the centre of rotation is a pixel")
    torch.set_num_threads(1)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, 1 thread\n")
    print("\n".join(main_table(args)))
    if args.blur_sweep:
        print()
        print("\n".join(blur_table(args)))


if __name__ == "__main__":
    main()
