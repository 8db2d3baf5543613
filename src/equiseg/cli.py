"""The `equiseg` command line: `equiseg audit` (also `python -m equiseg audit`).

Defaults come from `equiseg.config.SweepConfig`, so the command and the rotation_sweep stage
sweep the same angles and levels unless told otherwise.

Exit codes: 0 done (and every gate passed); 1 a gate (`--fail-under`, `--require-exact`) failed,
with one line on stderr naming what; 2 bad input, with one `error:` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from equiseg import __version__
from equiseg.analysis.families import REGISTRY, family_names, level_settings
from equiseg.analysis.gate_figures import GATE_METRICS
from equiseg.analysis.judgeable import JUDGEABLE_MAX_SHARE, JUDGEABLE_MIN_SHARE
from equiseg.audit.api import audit_with
from equiseg.audit.gates import GateSpec, check_gates, gate_failures
from equiseg.audit.options import EXACT_GROUPS, AuditOptions
from equiseg.audit.output import check_out
from equiseg.config import SweepConfig
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.errors import EquisegError, exit_on_user_error
from equiseg.nn.symmetrize import SYMMETRY_GROUPS
from equiseg.runtime import keep_freed_memory

EXAMPLE = """example:
  equiseg sample-images samples/      # a few synthetic images and masks to try it on
  equiseg audit --model equiseg.nn.models:build_model --model-kwargs '{"name": "gunet"}' \\
      --images samples/images --masks samples/masks --out audit/ --angle-step 15
  equiseg audit --model my_project.models:build_unet --weights unet.pth \\
      --images photos/ --masks masks/ --out audit/ --angle-step 15
  equiseg audit --model scripted.pt --images photos/ --out audit/ --perturb rotate,flip
  equiseg audit --model scripted.pt --images photos/ --out audit/ --perturb shift,scale \\
      --shift 0.5,1,2,3 --scale 0.8,1.25
  equiseg audit --model monai.networks.nets:UNet --model-kwargs '{"spatial_dims": 2, \\
      "in_channels": 3, "out_channels": 1, "channels": [8, 16, 32], "strides": [2, 2]}' \\
      --weights unet.pth --images photos/ --out audit/ --fail-under consistency=0.95
  equiseg audit --model segformer.pt2 --upsample --classes 2 --foreground-classes 1 ...
  equiseg audit --model transformers:SegformerForSemanticSegmentation \\
      --model-kwargs '{"config": {"num_labels": 2}}' --upsample --classes 2 ...

gate figures (--fail-under NAME=VALUE):
""" + "\n".join(f"  {name:15s} {text}" for name, (text, _) in GATE_METRICS.items()) + """

exit codes: 0 done, every gate passed; 1 a gate failed (one line on stderr says which), or
the verdict is "cannot judge" (most images get a constant, near-empty or near-full prediction)
and a gate was asked for without --allow-degenerate; 2 bad input (one `error:` line on stderr).
"""


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _gate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. consistency=0.95"
                                         ) from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object like '{{\"classes\": 1}}'")
    return value


def _integers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of class "
                                         "indices") from None


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one `error:` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def _levels(values: list[list[float]] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return default if values is None else tuple(v for group in values for v in group)


def build_parser() -> argparse.ArgumentParser:
    defaults = SweepConfig()
    parser = _Parser(prog="equiseg", description="Equivariance tools for segmentation models.")
    parser.add_argument("--version", action="version", version=f"equiseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    audit = commands.add_parser(
        "audit", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE,
        help="how equivariant is a segmentation model? (rotations, flips, photometric changes, "
             "shifts, scale)",
        description="Perturb every image of a folder, undo the perturbation on the prediction, "
                    "and measure how far it is from the prediction on the original (label-free) "
                    "and from the masks (if given). Writes CSV, JSON, figures and an HTML report.")
    commands.add_parser(
        "plots-template", help="make `dvc plots show` draw offline (writes .dvc/plots_offline.html)",
        description="Build DVC's plots page template with Vega bundled in (from vl-convert), so "
                    "`dvc plots show` renders without a network; run it in the project root.")
    samples = commands.add_parser(
        "sample-images", help="write a few synthetic images and masks to try the audit on",
        description="Write DIR/images/*.png and DIR/masks/*.png: synthetic butterflies from "
                    "the pipeline's generator (seeded, no download), e.g. for "
                    "`equiseg audit --images DIR/images --masks DIR/masks ...`.")
    samples.add_argument("folder", type=Path, metavar="DIR", help="a new or empty folder")
    samples.add_argument("--count", type=int, default=6, help="images (default: 6)")
    samples.add_argument("--size", type=int, default=128, help="side in pixels (default: 128)")
    samples.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    model = audit.add_argument_group("model")
    model.add_argument("--model", required=True, metavar="SPEC",
                       help="MODULE:FACTORY, path/to/file.py:FACTORY (a callable returning a "
                            "torch.nn.Module), a torch.export .pt2, an .onnx (needs onnxruntime), "
                            "or a TorchScript / equiseg .pt file")
    model.add_argument("--weights", type=Path, help="state dict to load into a FACTORY's model "
                       "(without it the model keeps its random initial weights, and the report "
                       "says so)")
    model.add_argument("--model-kwargs", type=_json_object, default={}, metavar="JSON",
                       help="keyword arguments for the FACTORY, a JSON object, e.g. "
                            "'{\"encoder_weights\": null, \"classes\": 1}'")
    model.add_argument("--seed", type=int, default=0,
                       help="seed for a FACTORY's random initialisation (default: 0)")
    model.add_argument("--output", choices=("logits", "probs"), default="logits",
                       help="what the model returns (default: logits)")
    model.add_argument("--output-key", metavar="NAME",
                       help="dict key or attribute holding the scores (default: a tensor as it "
                            "is, a dict's 'out' or 'logits', an object's .logits, a tuple's "
                            "first element)")
    model.add_argument("--upsample", action="store_true",
                       help="resize outputs smaller than the input by a whole factor (e.g. "
                            "SegFormer's quarter size) bilinearly to the input's size")
    model.add_argument("--classes", type=int, default=1,
                       help="output channels: 1 = foreground (sigmoid, > 0.5); K > 1 = "
                            "exclusive classes (softmax, argmax) (default: 1)")
    model.add_argument("--foreground-classes", type=_integers, metavar="K[,K...]",
                       help="score a --classes K model as foreground/background: foreground = "
                            "argmax in these classes; masks are then binary (or Leeds)")
    model.add_argument("--symmetrize", choices=SYMMETRY_GROUPS,
                       help="also audit the model averaged over p4 (4 rotations), p4m (and "
                            "mirrors) or c8 (8 turns by 45 degrees, the odd ones resampled; "
                            "square inputs), side by side with the original")
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
    sweep.add_argument("--perturb", type=_names, default=family_names(),
                       help=f"comma-separated, from {','.join(family_names())} (default: all)")
    sweep.add_argument("--angle-step", type=float, default=defaults.angle_step,
                       help=f"degrees between rotation angles (default: {defaults.angle_step:g})")
    for name in level_settings():  # one flag per family with a level list
        levels = ",".join(f"{v:g}" for v in getattr(defaults, name))
        axis = next(f.plot.axis for f in REGISTRY.values() if f.setting == name)
        sweep.add_argument(f"--{name}", type=_numbers, nargs="+", metavar="LEVELS",
                           help=f"{axis}: levels, comma- or space-separated (default: {levels})")
    run = audit.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True,
                     help="output folder: new, empty, or an earlier audit's (replaced whole); "
                          "anything else is refused")
    run.add_argument("--batch-size", type=int, default=defaults.batch_size,
                     help=f"perturbed copies per forward pass (default: {defaults.batch_size})")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--channels-last", action="store_true",
                     help="run the model on NHWC tensors: faster for convolutional nets, but a "
                          "model that reshapes with .view may refuse it (the rotation_sweep stage "
                          "uses it for our U-Nets)")
    run.add_argument("--atol", type=float, default=defaults.exact_atol,
                     help="absolute part of the exactness tolerance on raw outputs "
                          f"(default: {defaults.exact_atol:g})")
    run.add_argument("--rtol", type=float, default=defaults.exact_rtol,
                     help="relative part: exact when every |raw difference| <= atol + rtol x the "
                          f"largest |raw output| (default: {defaults.exact_rtol:g})")
    gate = audit.add_argument_group("CI gate (exit code 1 when failed)")
    gate.add_argument("--fail-under", type=_gate, action="append", default=[],
                      metavar="NAME=VALUE", help="fail when the figure NAME is below VALUE; "
                      f"repeatable; NAME from {', '.join(GATE_METRICS)} (see below)")
    gate.add_argument("--require-exact", nargs="?", const="p4", choices=EXACT_GROUPS,
                      help="fail unless exact at 90-degree multiples (p4, the default) and also "
                           "for flips (p4m)")
    gate.add_argument("--allow-degenerate", action="store_true",
                      help="gate even when most images get no judgeable prediction (see "
                           "--judgeable-min-share), on figures over every image")
    judge = audit.add_argument_group(
        "judgeable images (figures, exactness and gates cover only these)")
    judge.add_argument("--judgeable-min-share", type=float, default=JUDGEABLE_MIN_SHARE,
                       metavar="SHARE", help="an image is judgeable when the prediction on it "
                       "is not constant and its foreground covers at least this share of the "
                       f"image's pixels (default: {JUDGEABLE_MIN_SHARE:g})")
    judge.add_argument("--judgeable-max-share", type=float, default=JUDGEABLE_MAX_SHARE,
                       metavar="SHARE", help="... and at most this share (default: "
                       f"{JUDGEABLE_MAX_SHARE:g}); when more than half of the images are not "
                       "judgeable the verdict is 'cannot judge' and every gate fails (unless "
                       "--allow-degenerate)")
    run.add_argument("--worst", type=int, default=3, help="least consistent images to show")
    return parser


def options_from_args(args: argparse.Namespace) -> tuple[AuditOptions, GateSpec]:
    """The parsed arguments as the audit's options and its gate, checked."""
    defaults = SweepConfig()
    imagenet = (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))
    mean, std = imagenet if args.normalise == "imagenet" else ((0.0,) * 3, (1.0,) * 3)
    options = AuditOptions(
        perturb=args.perturb, angle_step=args.angle_step,
        **{key: _levels(getattr(args, key), getattr(defaults, key)) for key in level_settings()},
        size=args.size, pad_size=args.pad_size, multiple=args.multiple,
        mean=tuple(args.mean) if args.mean else mean,
        std=tuple(args.std) if args.std else std,
        output=args.output, output_key=args.output_key, upsample=args.upsample,
        classes=args.classes, foreground_classes=args.foreground_classes,
        batch_size=args.batch_size, device=args.device,
        channels_last=args.channels_last, max_images=args.max_images, atol=args.atol,
        rtol=args.rtol, worst=args.worst, symmetrize=args.symmetrize,
        judgeable_min_share=args.judgeable_min_share,
        judgeable_max_share=args.judgeable_max_share, allow_degenerate=args.allow_degenerate)
    options.validate()
    return options, GateSpec(tuple(args.fail_under), args.require_exact)


def _audit(args: argparse.Namespace) -> int:
    """Check everything that can be checked before any work, audit, write, gate."""
    options, gate = options_from_args(args)
    check_out(args.out)
    options.perturbations()  # unknown names and bad levels refused before any work
    check_gates(gate, options, has_masks=args.masks is not None)
    result = audit_with(args.model, args.images, args.masks, options, args.weights,
                        args.model_kwargs, args.seed)
    result.write(args.out)
    summary = result.summary
    rotate = summary["perturbations"].get("rotate", {})
    failures = gate_failures(summary, gate, options.allow_degenerate)
    print(json.dumps({"out": str(args.out), "images": summary["images"],
                      "images_per_second": summary["images_per_second"],
                      "judgeable_images": summary["judgeable_images"],
                      "verdict": summary["verdict"],
                      "exact_at_90_multiples": rotate.get("exact_at_90_multiples"),
                      "outputs_identical_under_group": summary["outputs_identical_under_group"],
                      "worst_rotation": rotate.get("worst_level"),
                      "degenerate_images": summary["degenerate_images"],
                      "weights_loaded": summary["weights_loaded"],
                      "gate": "failed" if failures else "passed"}))
    if failures:
        print(f"gate failed: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    args = build_parser().parse_args(argv)
    if args.command == "plots-template":
        from equiseg.report.offline_plots import ensure_offline_plots_template

        written = ensure_offline_plots_template(Path.cwd())
        if written is None:
            raise EquisegError("no .dvc folder here; run `equiseg plots-template` in the "
                               "project root")
        print(f"wrote {written}; `dvc plots show` now renders offline")
        return 0
    if args.command == "sample-images":
        from equiseg.audit.samples import write_samples

        folder = write_samples(args.folder, args.count, args.size, args.seed)
        print(f"wrote {args.count} images to {folder / 'images'} and their masks to "
              f"{folder / 'masks'}")
        return 0
    return _audit(args)
