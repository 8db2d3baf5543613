"""glibc's allocator churn, before and after `equiseg.runtime.keep_freed_memory` (not a test).

    python benchmarks/allocator.py [--paths train evaluate sweep audit] [--repeats 3]

Each CPU path runs in a fresh process per repeat, three ways: as it comes (`EQUISEG_MALLOC=default`:
glibc maps and unmaps big buffers around every forward pass), with glibc told to keep freed
memory (what the stages do), and also with transparent huge pages for torch's big buffers (what
`equiseg audit` does). The table gives the median images/s, user and system CPU seconds and minor
page faults of each. The paths: train (Group U-Net training steps, batch 16 at 64 px), evaluate
(`image_scores`-style forward passes, batch 16 at 64 px), sweep (the stage's rotation sweep over 4
images at 64 px) and audit (the whole `equiseg audit` command, start-up included, of a Group U-Net
with random weights on `--audit-images` synthetic 256 px images, 8 angles).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATHS = ("train", "evaluate", "sweep", "audit")
MODES = {"as it comes": {"EQUISEG_MALLOC": "default"},
         "keep freed": {"THP_MEM_ALLOC_ENABLE": "0"},
         "+ huge pages": {"THP_MEM_ALLOC_ENABLE": "1"}}


def workload(path: str) -> float:
    """Run one path in this process; return images per second."""
    import torch

    from equiseg.nn.models import build_model
    from equiseg.runtime import keep_freed_memory

    keep_freed_memory()
    torch.manual_seed(0)
    model = build_model("gunet").to(memory_format=torch.channels_last)
    x = torch.randn(16, 3, 64, 64).to(memory_format=torch.channels_last)
    start, images = time.perf_counter(), 0
    if path == "train":
        optimiser = torch.optim.AdamW(model.parameters())
        y = (torch.rand(16, 1, 64, 64) > 0.5).float()
        for _ in range(8):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            images += 16
    elif path == "evaluate":
        with torch.no_grad():
            for _ in range(16):
                model.eval()(x)
                images += 16
    else:  # sweep
        from benchmarks.sweep import butterflies
        from equiseg.analysis.perturbations import build_perturbations
        from equiseg.analysis.predictor import make_predictor
        from equiseg.analysis.sweep import run_sweep
        from equiseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        items = butterflies(4, 64)
        predict = make_predictor(model.eval(), IMAGENET_MEAN, IMAGENET_STD, channels_last=True)
        start = time.perf_counter()
        run_sweep(predict, items, build_perturbations(["rotate"], angle_step=5.0), 16, torch.device("cpu"))
        images = len(items)
    return images / (time.perf_counter() - start)


def write_images(folder: Path, count: int, size: int) -> None:
    import cv2

    from equiseg.data.synthetic import generate_synthetic

    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb, _ in generate_synthetic(count, size, 5, "uniform", seed=0):
        cv2.imwrite(str(folder / f"{name}.png"), np.ascontiguousarray(rgb[:, :, ::-1]))


def measure(path: str, mode: str, scratch: Path, images: int) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("EQUISEG_MALLOC", "THP_MEM_ALLOC_ENABLE")}
    env.update(MODES[mode])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if path == "audit":
        command = [sys.executable, "-m", "equiseg", "audit", "--model",
                   "equiseg.nn.models:build_model", "--model-kwargs", '{"name": "gunet"}',
                   "--images", str(scratch / "images"), "--out", str(scratch / "out"),
                   "--perturb", "rotate", "--angle-step", "45"]
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        rate = images / (time.perf_counter() - start)
        shutil.rmtree(scratch / "out")
    else:
        done = subprocess.run([sys.executable, __file__, "--child", path], env=env, check=True,
                              capture_output=True, text=True)
        rate = float(done.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"images/s": rate, "user s": after.ru_utime - before.ru_utime,
            "system s": after.ru_stime - before.ru_stime,
            "minor faults": after.ru_minflt - before.ru_minflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--audit-images", type=int, default=8,
                        help="images the audit path reads (its start-up is shared by them)")
    parser.add_argument("--child", choices=PATHS[:3], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(workload(args.child))
        return
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if "audit" in args.paths:
            write_images(scratch / "images", args.audit_images, 256)
        print(f"{'path':<9} {'allocator':<13} {'images/s':>9} {'user s':>7} {'system s':>8} "
              f"{'minor faults':>12}")
        for path in args.paths:
            runs = {mode: [measure(path, mode, scratch, args.audit_images)
                           for _ in range(args.repeats)] for mode in MODES}
            for mode, results in runs.items():
                median = {k: statistics.median(r[k] for r in results) for k in results[0]}
                print(f"{path:<9} {mode:<13} {median['images/s']:>9.3f} "
                      f"{median['user s']:>7.1f} {median['system s']:>8.1f} "
                      f"{median['minor faults']:>12,.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
