"""The audit's computation: sweep, summary and judgeability, with no file written.

Runs `equiseg.analysis.sweep` (the same code as the rotation_sweep stage) and summarises it with
`equiseg.analysis.summary.summarize` (the stage's summary too). The result is an `AuditResult`
(`equiseg.audit.result`); writing it is `equiseg.audit.output`'s job.

`summary.json` holds, per perturbation, the worst level, the spread over levels, exactness at
90-degree multiples and for flips, the least consistent images, degenerate images, what was
loaded (`weights_loaded`), how the output was read (`output`), every setting that shapes the
numbers (`settings`, with the canvas sides the images were placed on), and with `symmetrize` the
same figures for the symmetrized model (`symmetrized`). The figures cover the judgeable images
only (`judgeable_images` of `images`, the `verdict`, see `equiseg.analysis.judgeable`), and
`outputs_identical_under_group` says, over every image, whether the raw outputs are identical
under p4 / p4m (a fact, not a pass).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd

from equiseg.analysis.judgeable import judge_frame
from equiseg.analysis.perturbations import Perturbation
from equiseg.analysis.predictor import Predictor, make_predictor
from equiseg.analysis.summary import summarize
from equiseg.analysis.sweep import SweepImage, run_sweep
from equiseg.audit.adapters import AdaptedModel, OutputAdapter
from equiseg.audit.images import AuditImages
from equiseg.audit.models import LoadedModel
from equiseg.audit.options import AuditOptions, version
from equiseg.audit.result import AuditResult
from equiseg.errors import EquisegError

# what summary.json records of the symmetrized model's own summary
SYMMETRIZED_KEYS = ("degenerate_images", "judgeable_images", "not_judgeable_reasons", "verdict",
                    "scored_images", "outputs_identical_under_group", "perturbations")


def predictor(loaded: LoadedModel, options: AuditOptions) -> Predictor:
    return make_predictor(loaded.module, options.mean, options.std, options.output,
                          options.classes, options.channels_last,
                          OutputAdapter(options.output_key, options.upsample),
                          options.foreground_classes)


def _symmetrized_predictor(loaded: LoadedModel, options: AuditOptions) -> Predictor:
    from equiseg.nn.symmetrize import symmetrize

    adapted = AdaptedModel(loaded.module, OutputAdapter(options.output_key, options.upsample))
    return make_predictor(symmetrize(adapted, options.symmetrize), options.mean, options.std,
                          options.output, options.classes, options.channels_last,
                          foreground_classes=options.foreground_classes)


def _recording_sides(images: AuditImages, sides: set[int]) -> Iterator[SweepImage]:
    for item in images:
        sides.add(int(item.image.shape[-1]))
        yield item


def _timed_sweep(predict: Predictor, images: AuditImages, perturbations: list[Perturbation],
                 options: AuditOptions, sides: set[int]) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    frame = run_sweep(predict, _recording_sides(images, sides), perturbations,
                      options.batch_size, options.device or "cpu").frame
    return frame, time.perf_counter() - start


def run_audit(loaded: LoadedModel, images: AuditImages, options: AuditOptions,
              facts: dict) -> AuditResult:
    """Sweep the loaded model over the images and summarise; `facts` (model, weights,
    model_kwargs, seed) go into the summary as they are."""
    perturbations = options.perturbations()
    predict = predictor(loaded, options)
    sides: set[int] = set()
    frame, seconds = _timed_sweep(predict, images, perturbations, options, sides)
    if frame.empty:
        raise EquisegError(f"{images.source}: no image could be decoded; pass readable PNG or "
                           "JPEG files")
    summary = summarize(frame, options.atol, options.rtol, options.worst, options.judgeability)
    summary.update(_run_facts(options, loaded, predict, seconds, summary["images"], facts))
    summary["settings"] = {**options.record(), "images": images.source,
                           "masks": images.masks, "canvas_sides": sorted(sides)}
    frame, scored = _mark_judgeable(frame, options)
    result = AuditResult(summary, frame, scored, options, predict, images)
    if options.symmetrize:
        sym_predict = _symmetrized_predictor(loaded, options)
        sym_frame, sym_seconds = _timed_sweep(sym_predict, images, perturbations, options, sides)
        sym = summarize(sym_frame, options.atol, options.rtol, options.worst,
                        options.judgeability)
        summary["symmetrized"] = {
            "group": options.symmetrize, "seconds": round(sym_seconds, 3),
            "images_per_second": round(sym["images"] / sym_seconds, 4),
            **{key: sym[key] for key in SYMMETRIZED_KEYS}}
        result.symmetrized_frame, result.symmetrized_scored = _mark_judgeable(sym_frame, options)
    return result


def _mark_judgeable(frame: pd.DataFrame,
                    options: AuditOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every row, with per-image `judgeable` and `not_judgeable_reason` columns for
    results.csv; the rows the figures cover), by `equiseg.analysis.judgeable`."""
    scored, not_judgeable = judge_frame(frame, options.judgeability, options.atol, options.rtol)
    names = frame["image"].astype(str)
    return frame.assign(judgeable=~names.isin(list(not_judgeable)),
                        not_judgeable_reason=[not_judgeable.get(n, "") for n in names]), scored


def _run_facts(options: AuditOptions, loaded: LoadedModel, predict: Predictor, seconds: float,
               images: int, facts: dict) -> dict:
    return {
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 4) if seconds > 0 else None,
        "model": facts["model"],
        "model_kind": loaded.kind,
        "weights_loaded": loaded.weights_loaded,
        "weights": None if facts.get("weights") is None else str(facts["weights"]),
        "model_kwargs": dict(facts.get("model_kwargs") or {}),
        "seed": facts.get("seed", 0),
        "output": {"kind": options.output, "classes": options.classes,
                   "foreground_classes": None if options.foreground_classes is None
                   else list(options.foreground_classes), **predict.adapter.describe()},
        "device": str(options.device),
        "version": version(),
    }
