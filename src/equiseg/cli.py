"""The `equiseg` command line: `equiseg audit` (also `python -m equiseg audit`).

Defaults come from `equiseg.config.SweepConfig`, so the command and the rotation_sweep stage
sweep the same angles and levels unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from equiseg.analysis.audit import AuditOptions, run_audit
from equiseg.analysis.perturbations import FAMILIES
from equiseg.config import SweepConfig
from equiseg.errors import EquisegError, exit_on_user_error

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

EXAMPLE = """example:
  equiseg audit --model my_project.models:build_unet --weights unet.pth \\
      --images photos/ --masks masks/ --out audit/ --angle-step 15
  equiseg audit --model scripted.pt --images photos/ --out audit/ --perturb rotate,flip
"""


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _levels(values: list[list[float]] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return default if values is None else tuple(v for group in values for v in group)


def build_parser() -> argparse.ArgumentParser:
    defaults = SweepConfig()
    parser = argparse.ArgumentParser(prog="equiseg", description="Equivariance tools for "
                                     "segmentation models.")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE,
        help="how equivariant is a segmentation model? (rotations, flips, photometric changes)",
        description="Perturb every image of a folder, undo the perturbation on the prediction, "
                    "and measure how far it is from the prediction on the original (label-free) "
                    "and from the masks (if given). Writes CSV, JSON, figures and an HTML report.")
    commands.add_parser(
        "plots-template", help="make `dvc plots show` draw offline (writes .dvc/plots_offline.html)",
        description="Build DVC's plots page template with Vega bundled in (from vl-convert), so "
                    "`dvc plots show` renders without a network; run it in the project root.")
    model = audit.add_argument_group("model")
    model.add_argument("--model", required=True, metavar="SPEC",
                       help="MODULE:FACTORY, path/to/file.py:FACTORY (a callable returning a "
                            "torch.nn.Module), or a TorchScript / equiseg .pt file")
    model.add_argument("--weights", type=Path, help="state dict to load into a FACTORY's model")
    model.add_argument("--output", choices=("logits", "probs"), default="logits",
                       help="what the model returns (default: logits)")
    model.add_argument("--classes", type=int, default=1,
                       help="output channels: 1 = foreground (sigmoid, > 0.5); K > 1 = "
                            "exclusive classes (softmax, argmax) (default: 1)")
    model.add_argument("--normalise", choices=("imagenet", "none"), default="imagenet",
                       help="input normalisation of pixel values in [0, 1] (default: imagenet)")
    model.add_argument("--mean", type=_numbers, help="per-channel mean, e.g. 0.5,0.5,0.5 "
                       "(overrides --normalise)")
    model.add_argument("--std", type=_numbers, help="per-channel std (overrides --normalise)")
    data = audit.add_argument_group("images")
    data.add_argument("--images", type=Path, required=True, help="folder of PNG/JPEG images")
    data.add_argument("--masks", type=Path, help="folder of masks named like their images "
                      "(<stem>.png or <stem>_seg0.png); optional")
    data.add_argument("--size", type=int, default=0, help="resize so the longest side is this "
                      "(0 = keep sizes; default: 0)")
    data.add_argument("--pad-size", type=int, default=0, help="square canvas side the image is "
                      "centred on (0 = longest side rounded up to --multiple; default: 0)")
    data.add_argument("--multiple", type=int, default=16,
                      help="canvas sides are multiples of this (default: 16)")
    data.add_argument("--max-images", type=int, default=defaults.max_images,
                      help="audit at most this many images, spread over the folder (0 = all)")
    sweep = audit.add_argument_group("perturbations")
    sweep.add_argument("--perturb", type=_names, default=FAMILIES,
                       help=f"comma-separated, from {','.join(FAMILIES)} (default: all)")
    sweep.add_argument("--angle-step", type=float, default=defaults.angle_step,
                       help=f"degrees between rotation angles (default: {defaults.angle_step:g})")
    for name in ("brightness", "contrast", "noise"):
        levels = ",".join(f"{v:g}" for v in getattr(defaults, name))
        sweep.add_argument(f"--{name}", type=_numbers, nargs="+", metavar="LEVELS",
                           help=f"levels, comma- or space-separated (default: {levels})")
    run = audit.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder (replaced whole)")
    run.add_argument("--batch-size", type=int, default=defaults.batch_size,
                     help=f"perturbed copies per forward pass (default: {defaults.batch_size})")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--channels-last", action="store_true",
                     help="run the model on NHWC tensors: faster for convolutional nets, but a "
                          "model that reshapes with .view may refuse it (the rotation_sweep stage "
                          "uses it for our U-Nets)")
    run.add_argument("--atol", type=float, default=defaults.exact_atol,
                     help="largest probability difference still called exact "
                          f"(default: {defaults.exact_atol:g})")
    run.add_argument("--worst", type=int, default=3, help="least consistent images to show")
    return parser


def _device(requested: str) -> str:
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        torch.empty(0, device=requested)
    except (RuntimeError, AssertionError) as err:
        raise EquisegError(f"--device {requested}: not available here ({str(err).splitlines()[0]}); "
                           "use auto or cpu") from None
    return requested


def options_from_args(args: argparse.Namespace) -> AuditOptions:
    """Check the parsed arguments and turn them into AuditOptions."""
    defaults = SweepConfig()
    for flag, value, low in (("--classes", args.classes, 1), ("--batch-size", args.batch_size, 1),
                             ("--multiple", args.multiple, 1), ("--size", args.size, 0),
                             ("--pad-size", args.pad_size, 0), ("--max-images", args.max_images, 0),
                             ("--worst", args.worst, 0)):
        if value < low:
            raise EquisegError(f"{flag} is {value}; it must be at least {low}")
    if not 0 < args.angle_step <= 360:
        raise EquisegError(f"--angle-step is {args.angle_step:g}; give a number in (0, 360]")
    mean, std = IMAGENET if args.normalise == "imagenet" else ((0.0,) * 3, (1.0,) * 3)
    std = tuple(args.std) if args.std else std
    if any(s <= 0 for s in std):
        raise EquisegError(f"--std has a value <= 0 ({std}); give positive numbers")
    return AuditOptions(
        model=args.model, weights=args.weights, images=args.images, masks=args.masks,
        out=args.out, perturb=args.perturb, angle_step=args.angle_step,
        brightness=_levels(args.brightness, defaults.brightness),
        contrast=_levels(args.contrast, defaults.contrast),
        noise=_levels(args.noise, defaults.noise),
        size=args.size, pad_size=args.pad_size, multiple=args.multiple,
        mean=tuple(args.mean) if args.mean else mean, std=std,
        output=args.output, classes=args.classes, batch_size=args.batch_size,
        device=_device(args.device), channels_last=args.channels_last,
        max_images=args.max_images, atol=args.atol, worst=args.worst)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "plots-template":
        from equiseg.report.offline_plots import ensure_offline_plots_template

        written = ensure_offline_plots_template(Path.cwd())
        print(written if written else "no .dvc folder here: run in the project root")
        return 0
    if args.command == "audit":
        summary = run_audit(options_from_args(args))
        rotate = summary["perturbations"].get("rotate", {})
        print(json.dumps({"out": str(args.out), "images": summary["images"],
                          "images_per_second": summary["images_per_second"],
                          "exact_at_90_multiples": rotate.get("exact_at_90_multiples"),
                          "worst_rotation": rotate.get("worst_level")}))
    return 0

