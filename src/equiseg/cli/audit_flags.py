"""The flags of `equiseg audit` and their translation into the audit's options and gate.

Defaults come from `equiseg.analysis.sweep_settings.SweepConfig`, so the command and the
rotation_sweep stage sweep the same angles and levels unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from equiseg.analysis.families import REGISTRY, family_names, level_settings
from equiseg.analysis.gate_figures import GATE_METRICS
from equiseg.analysis.judgeable import JUDGEABLE_MAX_SHARE, JUDGEABLE_MIN_SHARE
from equiseg.analysis.sweep_settings import SweepConfig
from equiseg.audit.gates import GateSpec
from equiseg.audit.options import EXACT_GROUPS, AuditOptions
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.nn.symmetrize import SYMMETRY_GROUPS

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


def _levels(values: list[list[float]] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return default if values is None else tuple(v for group in values for v in group)


def add_audit_flags(audit: argparse.ArgumentParser) -> None:
    """Every flag of `equiseg audit`, in its help's groups."""
    defaults = SweepConfig()
    _model_flags(audit.add_argument_group("model"))
    _image_flags(audit.add_argument_group("images"), defaults)
    _perturbation_flags(audit.add_argument_group("perturbations"), defaults)
    _run_flags(audit.add_argument_group("run"), defaults)
    _gate_flags(audit.add_argument_group("CI gate (exit code 1 when failed)"))
    _judgeable_flags(audit.add_argument_group(
        "judgeable images (figures, exactness and gates cover only these)"))


def _model_flags(model: argparse._ArgumentGroup) -> None:
    """What the model is, how to call it and read its output."""
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


def _image_flags(data: argparse._ArgumentGroup, defaults: SweepConfig) -> None:
    """Where the images come from and how they are sized."""
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


def _perturbation_flags(sweep: argparse._ArgumentGroup, defaults: SweepConfig) -> None:
    """Which perturbations, at which angles and levels."""
    sweep.add_argument("--perturb", type=_names, default=family_names(),
                       help=f"comma-separated, from {','.join(family_names())} (default: all)")
    sweep.add_argument("--angle-step", type=float, default=defaults.angle_step,
                       help=f"degrees between rotation angles (default: {defaults.angle_step:g})")
    for name in level_settings():  # one flag per family with a level list
        levels = ",".join(f"{v:g}" for v in getattr(defaults, name))
        axis = next(f.plot.axis for f in REGISTRY.values() if f.setting == name)
        sweep.add_argument(f"--{name}", type=_numbers, nargs="+", metavar="LEVELS",
                           help=f"{axis}: levels, comma- or space-separated (default: {levels})")


def _run_flags(run: argparse._ArgumentGroup, defaults: SweepConfig) -> None:
    """Where the results go and how the model runs; the exactness tolerance."""
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
    run.add_argument("--worst", type=int, default=3, help="least consistent images to show")


def _gate_flags(gate: argparse._ArgumentGroup) -> None:
    """The CI gate: figures that must reach a value, exactness required."""
    gate.add_argument("--fail-under", type=_gate, action="append", default=[],
                      metavar="NAME=VALUE", help="fail when the figure NAME is below VALUE; "
                      f"repeatable; NAME from {', '.join(GATE_METRICS)} (see below)")
    gate.add_argument("--require-exact", nargs="?", const="p4", choices=EXACT_GROUPS,
                      help="fail unless exact at 90-degree multiples (p4, the default) and also "
                           "for flips (p4m)")
    gate.add_argument("--allow-degenerate", action="store_true",
                      help="gate even when most images get no judgeable prediction (see "
                           "--judgeable-min-share), on figures over every image")


def _judgeable_flags(judge: argparse._ArgumentGroup) -> None:
    """Which images can show equivariance (see `analysis.judgeable`)."""
    judge.add_argument("--judgeable-min-share", type=float, default=JUDGEABLE_MIN_SHARE,
                       metavar="SHARE", help="an image is judgeable when the prediction on it "
                       "is not constant and its foreground covers at least this share of the "
                       f"image's pixels (default: {JUDGEABLE_MIN_SHARE:g})")
    judge.add_argument("--judgeable-max-share", type=float, default=JUDGEABLE_MAX_SHARE,
                       metavar="SHARE", help="... and at most this share (default: "
                       f"{JUDGEABLE_MAX_SHARE:g}); when more than half of the images are not "
                       "judgeable the verdict is 'cannot judge' and every gate fails (unless "
                       "--allow-degenerate)")


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
