"""How an audit measures: every setting that shapes its numbers, in one frozen, checked object.

`equiseg.audit.audit(model, images, **options)` and `equiseg audit` (its flags, parsed) both build
an `AuditOptions`; its defaults are the rotation_sweep stage's (`SweepConfig`, in
`equiseg.analysis.sweep_settings`), so the two sweep the same angles and levels unless told
otherwise. What the model is, where the
images come from, and where the results go are not options: they are the audit's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from equiseg.analysis.families import REGISTRY, family_names, family_settings, level_settings
from equiseg.analysis.frame_scores import THRESHOLD
from equiseg.analysis.judgeable import JUDGEABLE_MAX_SHARE, JUDGEABLE_MIN_SHARE, Judgeability
from equiseg.analysis.perturbations import Perturbation, build_perturbations
from equiseg.analysis.sweep_settings import LevelLists, SweepConfig, check_levels, check_tolerance
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.errors import EquisegError, InvalidValue
from equiseg.nn.symmetrize import SYMMETRY_GROUPS

EXACT_GROUPS = ("p4", "p4m")  # --require-exact: rotations by 90 degrees; p4m also the flips


@dataclass(frozen=True)
class AuditOptions(LevelLists):
    """Every setting of an audit (the command line's flags, less --model, --images and --out).

    Errors name the command-line flag (`size` is `--size`), the one spelling both faces share.
    The level lists (`--brightness`, ..., `--scale`) are `LevelLists`' fields, the stage's too.
    """

    perturb: tuple[str, ...] = family_names()
    angle_step: float = SweepConfig.angle_step
    size: int = 0
    pad_size: int = 0
    multiple: int = 16
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    output: str = "logits"
    output_key: str | None = None
    upsample: bool = False
    classes: int = 1
    foreground_classes: tuple[int, ...] | None = None
    batch_size: int = SweepConfig.batch_size
    device: str | None = None  # None: a module's own device, else the CPU; "auto": the fastest
    channels_last: bool = False
    max_images: int = SweepConfig.max_images
    atol: float = SweepConfig.exact_atol
    rtol: float = SweepConfig.exact_rtol
    worst: int = 3
    symmetrize: str | None = None
    judgeable_min_share: float = JUDGEABLE_MIN_SHARE
    judgeable_max_share: float = JUDGEABLE_MAX_SHARE
    allow_degenerate: bool = False

    @property
    def judgeability(self) -> Judgeability:
        return Judgeability(self.judgeable_min_share, self.judgeable_max_share,
                            self.allow_degenerate)

    def perturbations(self) -> list[Perturbation]:
        """The perturbations this audit sweeps (the families of `perturb` at their levels)."""
        return build_perturbations(self.perturb, **family_settings(self))

    @property
    def mask_classes(self) -> int:
        """Masks are binary when foreground classes reduce the model to one channel."""
        return 1 if self.foreground_classes else self.classes

    def validate(self) -> None:
        """Refuse settings no audit can run with, before any work (one line naming the flag)."""
        for flag, value, low in (("--classes", self.classes, 1),
                                 ("--batch-size", self.batch_size, 1),
                                 ("--multiple", self.multiple, 1), ("--size", self.size, 0),
                                 ("--pad-size", self.pad_size, 0),
                                 ("--max-images", self.max_images, 0), ("--worst", self.worst, 0)):
            if not isinstance(value, int) or value < low:
                raise EquisegError(f"{flag} is {value}; it must be a whole number, at least {low}")
        unknown = [name for name in self.perturb if name not in REGISTRY]
        if unknown:
            raise EquisegError(f"--perturb: unknown perturbation {unknown[0]!r}; choose from "
                               f"{','.join(family_names())}")
        try:  # the sweep's own rules (the params.yaml check calls the same two)
            settings = family_settings(self)
            for key in level_settings():
                check_levels(key, settings[key])
            check_tolerance(self.atol, self.rtol)
        except InvalidValue as err:
            raise EquisegError(f"--{err.name} {err.problem}; give {err.allowed}") from None
        if not 0 < self.angle_step <= 360:
            raise EquisegError(f"--angle-step is {self.angle_step:g}; give a number in (0, 360]")
        if any(s <= 0 for s in self.std):
            raise EquisegError(f"--std has a value <= 0 ({self.std}); give positive numbers")
        if len(self.mean) != len(self.std):
            raise EquisegError(f"--mean has {len(self.mean)} values but --std has "
                               f"{len(self.std)}; give one of each per input channel")
        if self.symmetrize is not None and self.symmetrize not in SYMMETRY_GROUPS:
            raise EquisegError(f"--symmetrize {self.symmetrize}: choose "
                               f"{' or '.join(SYMMETRY_GROUPS)}")
        self.judgeability.validate()

    def record(self) -> dict:
        """What summary.json records of the settings: everything that shapes its numbers."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record = {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}
        return {**record, "threshold": THRESHOLD}


def options_from(given: dict) -> AuditOptions:
    """`AuditOptions(**given)`, with a misspelt name answered by the list of real ones."""
    names = [f.name for f in fields(AuditOptions)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise TypeError(f"audit() got unknown option(s) {', '.join(unknown)}; options are "
                        f"{', '.join(names)}")
    tuples = {k: tuple(v) for k, v in given.items()
              if isinstance(v, list) or (k == "perturb" and isinstance(v, str))}
    if isinstance(given.get("perturb"), str):  # "rotate,flip" as on the command line
        tuples["perturb"] = tuple(p.strip() for p in given["perturb"].split(",") if p.strip())
    return AuditOptions(**{**given, **tuples})


def resolve_device(requested: str) -> str:
    """The device for `--device` (auto: cuda, then mps, then cpu), via the training's choice."""
    import torch

    from equiseg.devices import select_device

    try:
        device = select_device(requested)
        torch.empty(0, device=device)
    except EquisegError:
        raise EquisegError(f"--device {requested}: not available here; use auto or cpu") from None
    except (RuntimeError, AssertionError, ValueError) as err:
        raise EquisegError(f"--device {requested}: not available here "
                           f"({str(err).splitlines()[0]}); use auto or cpu") from None
    return str(device)


def version() -> str:
    """equiseg's version, recorded beside every audit (read lazily: the package imports us)."""
    from equiseg import __version__

    return __version__


# The flag behind each setting that an error from the analysis names by its argument.
FLAG_NAMES = {**{field.name: "--" + field.name.replace("_", "-") for field in fields(AuditOptions)},
              "images": "--images", "masks": "--masks",
              "min_share": "--judgeable-min-share", "max_share": "--judgeable-max-share"}
