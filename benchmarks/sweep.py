"""How long the perturbation sweeps take on this device (not a test).

    python benchmarks/sweep.py [--models unet gunet] [--device cpu] [--threads 2]
        [--single-size 384] [--set-images 40] [--set-size 64] [--audit-size 128]
        [--batch-sizes 4 8 16 32] [--skip single set audit]

Three measurements, each with the architectures of params.yaml and random weights (the time of a
forward pass does not depend on the weights), on synthetic butterflies:
- single: one image at `--single-size` px, 72 angles (the seed's protocol at paper size);
- set: the rotation_sweep stage's whole sweep (72 angles, flips, photometric levels of
  params.yaml) over `--set-images` images at `--set-size` px, per model;
- audit: `equiseg audit`'s throughput (images/s) for a 72-angle rotation sweep at
  `--audit-size` px with the Group U-Net, for each batch size.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from equiseg.analysis.perturbations import build_perturbations
from equiseg.analysis.predictor import make_predictor
from equiseg.analysis.sweep import SweepImage, run_sweep, sweep_perturbations
from equiseg.config import load_params
from equiseg.data.synthetic import generate_synthetic
from equiseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from equiseg.geometry import footprint
from equiseg.nn.models import build_model


def butterflies(count: int, size: int) -> list[SweepImage]:
    items = []
    for name, rgb, mask in generate_synthetic(count, size, 5, "uniform", seed=0):
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
        items.append(SweepImage(name, image, footprint(size, size, size),
                                torch.from_numpy(mask).unsqueeze(0)))
    return items


def timed(predict, items, perturbations, batch_size, device) -> float:
    run_sweep(predict, items[:1], perturbations[:batch_size], batch_size, device)  # warm up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run_sweep(predict, items, perturbations, batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", nargs="+", default=["unet", "gunet"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--single-size", type=int, default=384)
    parser.add_argument("--set-images", type=int, default=40)
    parser.add_argument("--set-size", type=int, default=64)
    parser.add_argument("--audit-size", type=int, default=128)
    parser.add_argument("--audit-images", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--skip", nargs="*", default=[], choices=["single", "set", "audit"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = load_params(args.params)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")

    def predictor(name: str):
        torch.manual_seed(0)
        model = build_model(name, **dataclasses.asdict(params.architecture(name))).to(device)
        return make_predictor(model, IMAGENET_MEAN, IMAGENET_STD,
                              channels_last=params.sweep.channels_last)

    rotations = build_perturbations(["rotate"], angle_step=5.0)
    batch = params.sweep.batch_size
    if "single" not in args.skip:
        item = butterflies(1, args.single_size)
        for name in args.models:
            seconds = timed(predictor(name), item, rotations, batch, device)
            print(f"single  {name:6s} 72 angles, one {args.single_size} px image, batch {batch}: "
                  f"{seconds:.2f} s")
    if "set" not in args.skip:
        items = butterflies(args.set_images, args.set_size)
        everything = sweep_perturbations(params.sweep)
        for name in args.models:
            seconds = timed(predictor(name), items, everything, batch, device)
            print(f"set     {name:6s} {len(items)} images x {len(everything)} perturbations at "
                  f"{args.set_size} px, batch {batch}: {seconds:.1f} s "
                  f"({len(items) / seconds:.2f} images/s)")
    if "audit" not in args.skip:
        items = butterflies(args.audit_images, args.audit_size)
        predict = predictor("gunet")
        for size in args.batch_sizes:
            seconds = timed(predict, items, rotations, size, device)
            print(f"audit   gunet  72 angles at {args.audit_size} px, batch {size:3d}: "
                  f"{len(items) / seconds:.3f} images/s ({72 * len(items) / seconds:.1f} "
                  "forward passes/s)")


if __name__ == "__main__":
    main()
