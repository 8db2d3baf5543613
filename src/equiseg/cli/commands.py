"""The `equiseg` commands, their parser and what each does; `equiseg.cli.main` runs them.
The audit's flags: `equiseg.cli.audit_flags`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from equiseg import __version__
from equiseg.audit.api import audit_with
from equiseg.audit.gates import check_gates, gate_failures
from equiseg.audit.output import check_out
from equiseg.cli.audit_flags import EXAMPLE, add_audit_flags, options_from_args
from equiseg.errors import EquisegError, exit_on_user_error


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one `error:` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The `equiseg` command and its subcommands (`audit`'s flags: `audit_flags`)."""
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
    add_audit_flags(audit)
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
    return parser


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
def run_command(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process's arguments) and run that command; the exit code."""
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
