"""Training-step speed of each model against this machine's float32 matmul rate (not a test).

    python benchmarks/models.py [--sizes 64 128 256] [--batch 16] [--models unet gunet gunet_c8]
        [--no-channels-last] [--compile] [--device cpu]

Every preset by default, the C8/D8 nets included (their step costs about 2.5x and 5x gunet's).

For every model and size: parameters, forward GFLOPs (torch.utils.flop_counter), training-step time
(forward, backward, AdamW step; median after warm-up), images/s, and achieved GFLOP/s of the whole
step as a fraction of a float32 matmul measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from equiseg.nn.models import build_model, count_parameters
from equiseg.runtime import keep_freed_memory


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def count_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(forward GFLOPs, training-step GFLOPs) for one batch."""
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        model(x)
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return forward.get_total_flops() / 1e9, step.get_total_flops() / 1e9


def step_seconds(model, x, y, device, warmup: int, repeats: int) -> float:
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

    def step():
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimiser.step()

    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256],
                        help="square image sides in pixels, each divisible by 16 (the four-level models)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--models", nargs="+",
                        default=["unet", "gunet", "gunet_p4m", "gunet_c8", "gunet_d8",
                                 "unet_4level", "gunet_4level"])
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast for the step (pays only on CPUs with native bf16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC memory layout (default on: 1.2-1.4x faster here on CPU)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = matmul_gflops(device)
    print(f"device={device} threads={torch.get_num_threads()} channels_last={args.channels_last} "
          f"bf16={args.bf16} compile={args.compile} float32 matmul: {peak:.1f} GFLOP/s")
    print(f"{'model':<12} {'px':>4} {'params':>9} {'fwd GFLOP':>9} {'step ms':>8} {'img/s':>7} "
          f"{'GFLOP/s':>8} {'of matmul':>9}")
    for size in args.sizes:
        for name in args.models:
            model = build_model(name).to(device).train()
            fmt = torch.channels_last if args.channels_last else torch.contiguous_format
            model = model.to(memory_format=fmt)
            x = torch.randn(args.batch, 3, size, size, device=device).to(memory_format=fmt)
            y = (torch.rand(args.batch, 1, size, size, device=device) > 0.5).float()
            forward_gflop, step_gflop = count_flops(model, x, y)
            runner = torch.compile(model) if args.compile else model
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                seconds = step_seconds(runner, x, y, device, args.warmup, args.repeats)
            rate = step_gflop / seconds
            print(f"{name:<12} {size:>4} {count_parameters(model):>9,} {forward_gflop:>9.2f} "
                  f"{seconds * 1e3:>8.0f} {args.batch / seconds:>7.1f} {rate:>8.1f} "
                  f"{rate / peak:>8.0%}")


if __name__ == "__main__":
    main()
