"""The audit as a CI gate: gates checked before any work, and what a finished audit failed.

A gate never passes what it cannot judge (`equiseg.analysis.judgeable`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from equiseg.analysis.exactness import FLIPS
from equiseg.analysis.families import rotation_angles
from equiseg.analysis.gate_figures import GATE_METRICS, GATE_NEEDS, gate_value
from equiseg.analysis.judgeable import CANNOT_JUDGE, not_judgeable_text
from equiseg.audit.options import EXACT_GROUPS, AuditOptions
from equiseg.errors import EquisegError


@dataclass(frozen=True)
class GateSpec:
    """What must hold for the gate to pass: figures at least these values, exactness."""

    fail_under: tuple[tuple[str, float], ...] = ()
    require_exact: str | None = None


def gate_spec(fail_under: Mapping[str, float] | Sequence[tuple[str, float]] = (),
              require_exact: str | None = None) -> GateSpec:
    """A GateSpec from a dict {name: value} or (name, value) pairs."""
    pairs = fail_under.items() if isinstance(fail_under, Mapping) else fail_under
    return GateSpec(tuple((str(name), float(value)) for name, value in pairs), require_exact)


def check_gates(gate: GateSpec, options: AuditOptions, has_masks: bool) -> None:
    """Gates name known figures that this audit's perturbations and masks can produce."""
    for name, _ in gate.fail_under:
        if name not in GATE_METRICS:
            raise EquisegError(f"--fail-under {name}: unknown figure; choose from "
                               f"{', '.join(GATE_METRICS)}")
        needs = GATE_NEEDS[name]
        if not set(needs) & set(options.perturb):
            raise EquisegError(f"--fail-under {name}: needs --perturb with {' or '.join(needs)}")
        if name == "iou_gt" and not has_masks:
            raise EquisegError("--fail-under iou_gt: needs --masks")
    if gate.require_exact is not None:
        if gate.require_exact not in EXACT_GROUPS:
            raise EquisegError(f"--require-exact {gate.require_exact}: choose p4 (rotations "
                               "by 90 degrees) or p4m (and flips)")
        needed = ["rotate"] + (["flip"] if gate.require_exact == "p4m" else [])
        missing = [family for family in needed if family not in options.perturb]
        if missing:
            raise EquisegError(f"--require-exact {gate.require_exact}: needs --perturb with "
                               f"{' and '.join(missing)}")
        angles = rotation_angles(options.angle_step)
        if not any(angle % 90 == 0 and angle % 360 for angle in angles):
            raise EquisegError(f"--require-exact: --angle-step {options.angle_step:g} never "
                               "lands on 90 degrees; use a divisor of 90")


def gate_failures(summary: dict, gate: GateSpec, allow_degenerate: bool = False) -> list[str]:
    """What a CI gate found wrong, one phrase each (empty: the gate passes).

    A gate never passes what it cannot judge: when most images get no judgeable prediction, the
    gate fails unless `allow_degenerate` (then its figures cover every image).
    """
    if not gate.fail_under and gate.require_exact is None:
        return []
    if summary["verdict"] == CANNOT_JUDGE and not allow_degenerate:
        return [(f"cannot judge: {not_judgeable_text(summary)}; pass --allow-degenerate to "
                 "gate anyway")]
    failures = []
    for name, threshold in gate.fail_under:
        value = gate_value(summary, name)
        if value is None:
            failures.append(f"{name} could not be measured")
        elif value < threshold:
            failures.append(f"{name} {value:.4f} < {threshold:g}")
    if gate.require_exact is not None:
        found = summary["perturbations"]
        rotate = found.get("rotate", {})
        if not rotate.get("exact_at_90_multiples"):
            largest = rotate.get("max_rel_diff_raw_at_90_multiples")
            failures.append("not exact at 90-degree multiples (largest relative raw difference "
                            f"{'–' if largest is None else format(largest, '.2e')})")
        if gate.require_exact == "p4m":
            for flip in FLIPS:
                if not found.get(flip, {}).get("exact"):
                    failures.append(f"{flip} not exact")
    return failures
