"""Throughput of the default `equiseg audit` and its fixed cost (not a test).

    python benchmarks/audit.py [--images DIR] [--models gunet gunet_4level] [--repeats 1]

The default audit is the command a user types first: native size, every perturbation family at
its default levels (rotations every 5 degrees, flips, photometric changes, shifts, zooms: 96
forward passes per image with the unchanged one), random weights (the rate does not depend on
them). Each model runs in a fresh process with glibc as it comes (`EQUISEG_MALLOC=default`) and
with `equiseg.runtime.keep_freed_memory`; the table gives the median images/s, user and system CPU
seconds, and the rate of the forward passes in GFLOP/s (FLOPs counted by torch at the image's
canvas). The fixed cost is a whole command that does almost no work (one 32 px image, quarter
turns): start-up, model loading and the report. Without `--images`, six synthetic 256 px images.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def audit_command(model: str, images: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "equiseg", "audit", "--model", "equiseg.nn.models:build_model",
            "--model-kwargs", f'{{"name": "{model}"}}', "--images", str(images), "--out", str(out),
            *extra]


def timed(command: list[str], allocator: str) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "EQUISEG_MALLOC": allocator}, check=True,
                   capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall s": wall, "user s": after.ru_utime - before.ru_utime,
            "system s": after.ru_stime - before.ru_stime}


def forward_gflop(model: str, entries: list) -> float:
    """GFLOP of the forward passes of the default audit over the images `entries` (from
    `pair_files`), each on the canvas the audit gives it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from equiseg.audit.canvas import canvas_side
    from equiseg.audit.options import AuditOptions
    from equiseg.image_files import header_size
    from equiseg.nn.models import build_model

    net, total, options = build_model(model).eval(), 0.0, AuditOptions()
    passes = 1 + sum(not p.is_identity for p in options.perturbations())
    for entry in entries:
        width, height = header_size(entry.image)
        side = canvas_side(height, width, options.pad_size, options.multiple)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, side, side))
        total += counter.get_total_flops() * passes
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: 6 synthetic)")
    parser.add_argument("--models", nargs="+", default=["gunet", "gunet_4level"])
    parser.add_argument("--allocators", nargs="+", default=["default", "tuned"],
                        choices=["default", "tuned"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from equiseg.audit.folders import pair_files  # the audit's own choice of images

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        images = args.images
        if images is None:
            from benchmarks.allocator import write_images
            images = scratch / "images"
            write_images(images, 6, 256)
        entries = pair_files(images)  # readable images only, not masks or other files
        count = len(entries)
        print(f"{'model':<13} {'allocator':<9} {'images/s':>9} {'user s':>7} {'system s':>8} "
              f"{'GFLOP/s':>8}   ({count} images, {images})")
        for model in args.models:
            gflop = forward_gflop(model, entries)
            for allocator in args.allocators:
                runs = [timed(audit_command(model, images, scratch / f"out{i}-{allocator}"),
                              allocator) for i in range(args.repeats)]
                median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{model:<13} {allocator:<9} {count / median['wall s']:>9.4f} "
                      f"{median['user s']:>7.1f} {median['system s']:>8.1f} "
                      f"{gflop / median['wall s']:>8.1f}", flush=True)
        one = scratch / "one"
        one.mkdir()
        first = entries[0].image
        (one / first.name).write_bytes(first.read_bytes())
        fixed = [timed(audit_command("unet", one, scratch / f"fixed{i}", "--size", "32",
                                     "--angle-step", "90"), "tuned")["wall s"]
                 for i in range(max(args.repeats, 3))]
        print(f"fixed cost of a whole command (start-up, model, report): "
              f"{statistics.median(fixed):.1f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
