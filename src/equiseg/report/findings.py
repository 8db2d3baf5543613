"""The report's "Findings": which run is most accurate, which most consistent, by how much, and
which differences exceed the seed-to-seed spread.

Every sentence is computed from the metrics (no hard-coded claims), so a run in which the plain
U-Net happens to win says so. Figures are means over the run's seeds. Accuracy is the eval-mode
validation IoU of the evaluate stage (expected under uniform turns); exactness and consistency
come from the sweep's per-seed equivariance summaries (the numbers of the equivariance table);
accuracy under rotation comes from the IoU-versus-angle curves. `symmetry_sentences` is also
what `equiseg audit` says about rotations by 90-degree multiples and mirror flips.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

from equiseg.analysis.replicates import SD_SUFFIX, differs_beyond_spread
from equiseg.analysis.summary import FLIP_CONSISTENCY
from equiseg.report.reach import eighth_turn_finding
from equiseg.report.run_results import RunResults
from equiseg.report.tables import PROTOCOL_NAMES

TIE = 0.0005  # below this difference two IoUs print the same at 3 decimals


def _name(run: RunResults) -> str:
    return f"`{run.label}`"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _names(runs: list[RunResults]) -> str:
    return _join([_name(r) for r in runs])


def _val(run: RunResults) -> float:
    return float(run.evaluated["val_iou"])


def _with_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def _leaders(ranked: list[RunResults], value) -> list[RunResults]:
    """The runs tied with the best (within `TIE`) of a list sorted best first."""
    return [r for r in ranked if abs(value(r) - value(ranked[0])) < TIE]


def _lead_text(ranked: list[RunResults], value) -> tuple[str, RunResults | None]:
    """'`a`' or '`a` and `b` (tied)', and the best run that is not a leader (None if all are)."""
    leaders = _leaders(ranked, value)
    rest = ranked[len(leaders):]
    names = _names(leaders) + (" (tied)" if len(leaders) > 1 else "")
    return names, rest[0] if rest else None


def _basis(runs: list[RunResults]) -> str:
    seeds = sorted({int(r.evaluated["n"]) for r in runs})
    n = "/".join(str(s) for s in seeds)
    return (f" (validation images under {PROTOCOL_NAMES['uniform']}, expected over the draw; "
            f"mean over n={n} seed{'s' if seeds != [1] else ''})")


def accuracy_finding(runs: list[RunResults]) -> str:
    ranked = sorted(runs, key=_val, reverse=True)
    best, worst = ranked[0], ranked[-1]
    names, runner_up = _lead_text(ranked, _val)
    sd = float(best.evaluated["val_iou" + SD_SUFFIX])
    text = f"**Most accurate:** {names}, validation IoU {_with_sd(_val(best), sd)}"
    if len(ranked) == 1:
        return text + " (the only run)" + _basis(runs) + "."
    if runner_up is not None:
        text += (f", +{_val(best) - _val(runner_up):.3f} over the runner-up {_name(runner_up)} "
                 f"({_val(runner_up):.3f})")
        if worst is not runner_up:
            text += (f" and +{_val(best) - _val(worst):.3f} over the weakest, {_name(worst)} "
                     f"({_val(worst):.3f})")
    return text + _basis(runs) + "."


def model_finding(runs: list[RunResults]) -> str | None:
    """Each model at its best augmentation, best first, when there is more than one model."""
    best: dict[str, RunResults] = {}
    for run in runs:
        if run.model not in best or _val(run) > _val(best[run.model]):
            best[run.model] = run
    if len(best) < 2:
        return None
    ranked = sorted(best.values(), key=_val, reverse=True)
    return "**Per model, at its best augmentation:** " + ", ".join(
        f"{r.model} {_val(r):.3f} (`{r.augment}`)" for r in ranked) + "."


def _compared_pairs(runs: list[RunResults]) -> list[tuple[RunResults, RunResults]]:
    """Models compared at the same augmentation; with one model, its augmentations."""
    by_augment = [[r for r in runs if r.augment == a] for a in dict.fromkeys(r.augment for r in runs)]
    pairs = [pair for group in by_augment for pair in itertools.combinations(group, 2)]
    return pairs or list(itertools.combinations(runs, 2))


def spread_finding(runs: list[RunResults]) -> str | None:
    """Which differences between runs exceed the seed-to-seed spread (the rule of
    `equiseg.analysis.replicates`: |mean_a - mean_b| > sd_a + sd_b, sample sd over seeds)."""
    pairs = _compared_pairs(runs)
    if not pairs:
        return None
    if min(int(r.evaluated["n"]) for r in runs) < 2:
        return ("**Seed-to-seed spread:** with one seed per run (n=1) no spread can be estimated, "
                "so no difference between runs can be said to exceed it; list more seeds "
                "(`seeds: [0, 1, 2]`) to judge.")
    figures = [("validation IoU", lambda r: r.evaluated, "val_iou"),
               ("off-grid consistency IoU", lambda r: r.equivariant, "consistency_iou_off_grid")]
    beyond, within = [], []
    for a, b in pairs:
        for figure, stats_of, column in figures:
            sa, sb = stats_of(a), stats_of(b)
            if sa is None or sb is None:
                continue
            ma, mb = float(sa[column]), float(sb[column])
            da, db = float(sa[column + SD_SUFFIX]), float(sb[column + SD_SUFFIX])
            text = (f"{figure} {_name(a)} {_with_sd(ma, da)} vs {_name(b)} {_with_sd(mb, db)} "
                    f"({ma - mb:+.3f})")
            (beyond if differs_beyond_spread(ma, da, mb, db) else within).append(text)
    return ("**Beyond the seed-to-seed spread** (|mean difference| > sd_a + sd_b, sample sd over "
            "seeds): " + ("; ".join(beyond) or "none") + ". **Within it:** "
            + ("; ".join(within) or "none") + ".")


def symmetry_sentences(consistency_90: Mapping[str, float | None], exact_90: Mapping[str, bool],
                       flips: Mapping[str, Mapping[str, float | None]] | None = None) -> list[str]:
    """What the report and `equiseg audit` say about exact symmetries, one sentence each.

    `consistency_90` and `exact_90` map a subject as it should read (a run's `` `label` ``, or
    "the model") to its mean consistency IoU at 90, 180 and 270 degrees and whether it is exact
    there; `flips` maps a flip (flip_h, flip_v) to subject -> consistency IoU under it.
    """
    sentences = []
    measured = [s for s in consistency_90 if consistency_90[s] is not None]
    exact = [s for s in measured if exact_90.get(s)]
    inexact = sorted((s for s in measured if not exact_90.get(s)), key=consistency_90.get)
    if exact:
        floor = min(consistency_90[s] for s in exact)
        verb = "is" if len(exact) == 1 else "are"
        text = (f"**Exact at 90° multiples:** {_join(exact)} {verb} exactly consistent: an image "
                f"turned by 90°, 180° or 270° gets the same mask, turned back "
                f"(consistency IoU {floor:.3f})")
        if inexact:
            drops = [f"{inexact[0]} drops to {consistency_90[inexact[0]]:.3f}"]
            drops += [f"{s} to {consistency_90[s]:.3f}" for s in inexact[1:]]
            text += f", while {_join(drops)}"
        sentences.append(text + ".")
    elif inexact:
        best, worst = inexact[-1], inexact[0]
        text = (f"**Exact at 90° multiples:** {best} is not" if len(inexact) == 1 else
                f"**Exact at 90° multiples:** no run is; the most consistent is {best}")
        text += f" (consistency IoU {consistency_90[best]:.3f})"
        if len(inexact) > 1:
            text += f", the least {worst} ({consistency_90[worst]:.3f})"
        sentences.append(text + ".")
    parts = []
    for flip, values in (flips or {}).items():
        shown = [f"{s} {v:.3f}" for s, v in values.items() if v is not None]
        if shown:
            parts.append(f"{flip.replace('_', '-')}: " + ", ".join(shown))
    if parts:
        sentences.append("**Mirror flips** (consistency IoU with the unflipped prediction, "
                         "1.000 = unchanged): " + "; ".join(parts) + ".")
    return sentences


def _symmetry_findings(runs: list[RunResults]) -> list[str]:
    measured = [(r, r.equivariant) for r in runs if r.equivariance is not None]
    if not measured:
        return []

    def figure(stats, column: str) -> float | None:
        value = stats.get(column)
        return None if value is None or math.isnan(float(value)) else float(value)

    return symmetry_sentences(
        {_name(r): figure(s, "consistency_iou_at_90_multiples") for r, s in measured},
        {_name(r): bool(s["exact_at_90_multiples"]) for r, s in measured},
        {flip: {_name(r): figure(s, column) for r, s in measured}
         for flip, column in FLIP_CONSISTENCY.items()})


def consistency_finding(runs: list[RunResults]) -> str | None:
    def off_grid(run: RunResults) -> float:
        return float(run.equivariant["consistency_iou_off_grid"])

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
    """(IoU upright, worst IoU over angles, the worst angle) of the validation-set mean curve."""
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


def findings_markdown(runs: list[RunResults], groups: Mapping[str, str] | None = None) -> str:
    """The Findings list, one bullet per question the report answers; `groups` (run label ->
    its model's group) adds the line at the eighth turns (`equiseg.report.reach`)."""
    sentences = [accuracy_finding(runs), model_finding(runs), spread_finding(runs),
                 *_symmetry_findings(runs), consistency_finding(runs),
                 eighth_turn_finding(runs, groups or {}), rotation_accuracy_finding(runs)]
    return "\n".join(f"- {s}" for s in sentences if s)
