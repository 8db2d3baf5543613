"""The report's "Findings": which run is most accurate, which most consistent, by how much.

Every sentence is computed from the metrics (no hard-coded claims), so a run in which the plain
U-Net happens to win says so. Accuracy is the validation IoU of `metrics/summary.json`;
exactness and consistency come from `metrics/equivariance/*.json` (the numbers of the
equivariance table); accuracy under rotation comes from the IoU-versus-angle curves.
"""

from __future__ import annotations

from equiseg.report.run_results import RunResults

TIE = 0.0005  # below this difference two IoUs print the same at 3 decimals


def _name(run: RunResults) -> str:
    return f"`{run.label}`"


def _names(runs: list[RunResults]) -> str:
    names = [_name(r) for r in runs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _leaders(ranked: list[RunResults], value) -> list[RunResults]:
    """The runs tied with the best (within `TIE`) of a list sorted best first."""
    return [r for r in ranked if abs(value(r) - value(ranked[0])) < TIE]


def _lead_text(ranked: list[RunResults], value) -> tuple[str, RunResults | None]:
    """'`a`' or '`a` and `b` (tied)', and the best run that is not a leader (None if all are)."""
    leaders = _leaders(ranked, value)
    rest = ranked[len(leaders):]
    names = _names(leaders) + (" (tied)" if len(leaders) > 1 else "")
    return names, rest[0] if rest else None


def accuracy_finding(runs: list[RunResults]) -> str:
    def val(run: RunResults) -> float:
        return run.summary["val_iou"]

    ranked = sorted(runs, key=val, reverse=True)
    best, worst = ranked[0], ranked[-1]
    names, runner_up = _lead_text(ranked, val)
    text = f"**Most accurate:** {names}, validation IoU {val(best):.3f}"
    if len(ranked) == 1:
        return text + " (the only run)."
    if runner_up is None:
        return text + "."
    text += (f", +{val(best) - val(runner_up):.3f} over the runner-up {_name(runner_up)} "
             f"({val(runner_up):.3f})")
    if worst is not runner_up:
        text += (f" and +{val(best) - val(worst):.3f} over the weakest, {_name(worst)} "
                 f"({val(worst):.3f})")
    return text + "."


def model_finding(runs: list[RunResults]) -> str | None:
    """Each model at its best augmentation, best first, when there is more than one model."""
    best: dict[str, RunResults] = {}
    for run in runs:
        if run.model not in best or run.summary["val_iou"] > best[run.model].summary["val_iou"]:
            best[run.model] = run
    if len(best) < 2:
        return None
    ranked = sorted(best.values(), key=lambda r: r.summary["val_iou"], reverse=True)
    return "**Per model, at its best augmentation:** " + ", ".join(
        f"{r.model} {r.summary['val_iou']:.3f} (`{r.augment}`)" for r in ranked) + "."


def exactness_finding(runs: list[RunResults]) -> str | None:
    measured = [r for r in runs if r.equivariance is not None]
    if not measured:
        return None
    exact = [r for r in measured if r.equivariance.get("exact_at_90_multiples")]
    inexact = sorted((r for r in measured if r not in exact),
                     key=lambda r: r.equivariance["consistency_iou_at_90_multiples"])
    if exact:
        floor = min(r.equivariance["consistency_iou_at_90_multiples"] for r in exact)
        verb = "is" if len(exact) == 1 else "are"
        text = (f"**Exact at 90° multiples:** {_names(exact)} {verb} exactly consistent: an image "
                f"turned by 90°, 180° or 270° gets the same mask, turned back "
                f"(consistency IoU {floor:.3f})")
        if not inexact:
            return text + "."
        values = [r.equivariance["consistency_iou_at_90_multiples"] for r in inexact]
        drops = [f"{_name(inexact[0])} drops to {values[0]:.3f}"]
        drops += [f"{_name(r)} to {v:.3f}" for r, v in zip(inexact[1:], values[1:])]
        joined = drops[0] if len(drops) == 1 else ", ".join(drops[:-1]) + " and " + drops[-1]
        return f"{text}, while {joined}."
    best, worst = inexact[-1], inexact[0]
    return (f"**Exact at 90° multiples:** no run is; the most consistent is {_name(best)} "
            f"(consistency IoU {best.equivariance['consistency_iou_at_90_multiples']:.3f}), the "
            f"least {_name(worst)} ({worst.equivariance['consistency_iou_at_90_multiples']:.3f}).")


def consistency_finding(runs: list[RunResults]) -> str | None:
    def off_grid(run: RunResults) -> float:
        return run.equivariance["consistency_iou_off_grid"]

    ranked = sorted((r for r in runs if r.equivariance is not None), key=off_grid, reverse=True)
    if not ranked:
        return None
    best, worst = ranked[0], ranked[-1]
    names, _ = _lead_text(ranked, off_grid)
    text = (f"**Most consistent at other angles:** {names}, mean consistency IoU "
            f"{off_grid(best):.3f} between the prediction on a rotated image and the rotated "
            "prediction")
    if off_grid(best) - off_grid(worst) < TIE:
        return text + "."
    return text + (f", +{off_grid(best) - off_grid(worst):.3f} over the least consistent, "
                   f"{_name(worst)} ({off_grid(worst):.3f}).")


def rotation_drop(run: RunResults) -> tuple[float, float, float]:
    """(IoU upright, worst IoU over angles, the worst angle) of the validation-set mean."""
    curve = run.rotation
    upright = curve.loc[curve["angle"] % 360 == 0, "set_iou_gt_mean"]
    upright_iou = float(upright.iloc[0] if len(upright) else curve["set_iou_gt_mean"].iloc[0])
    worst = curve["set_iou_gt_mean"].idxmin()
    return upright_iou, float(curve.loc[worst, "set_iou_gt_mean"]), float(curve.loc[worst, "angle"])


def rotation_accuracy_finding(runs: list[RunResults]) -> str | None:
    measured = [r for r in runs if r.rotation is not None and len(r.rotation)]
    if not measured:
        return None
    drops = {r.label: rotation_drop(r) for r in measured}
    ranked = sorted(measured, key=lambda r: drops[r.label][0] - drops[r.label][1], reverse=True)

    def describe(run: RunResults) -> str:
        upright, worst, angle = drops[run.label]
        return (f"{_name(run)} goes from IoU {upright:.3f} upright to {worst:.3f} at {angle:g}° "
                f"({worst - upright:+.3f})")

    text = "**Accuracy under rotation** (validation-set mean): " + describe(ranked[0])
    if len(ranked) > 1:
        text += "; the smallest loss: " + describe(ranked[-1])
    return text + "."


def findings_markdown(runs: list[RunResults]) -> str:
    """The Findings list, one bullet per question the report answers."""
    sentences = [accuracy_finding(runs), model_finding(runs), exactness_finding(runs),
                 consistency_finding(runs), rotation_accuracy_finding(runs)]
    return "\n".join(f"- {s}" for s in sentences if s)
