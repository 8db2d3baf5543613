"""The whole of params.yaml: read, built into typed sections (unknown keys refused by name),
each model's architecture over its preset, and validated before any work starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from equiseg.analysis.sweep_settings import SweepConfig
from equiseg.config.checks import ConfigError, check_choice, check_seed, fail
from equiseg.config.sections import (
    ArchitectureConfig,
    DataConfig,
    EvaluateConfig,
    SyntheticConfig,
    TrainConfig,
    validate_full_augment,
    validate_sweep,
)
from equiseg.data.augment_settings import AUGMENT_NAMES, FullAugmentConfig
from equiseg.presets import MODEL_NAMES, MODEL_PRESETS


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml, validated."""

    profile: str = "quick"
    seeds: tuple[int, ...] = (0,)  # training replicates: the train matrix runs each
    models: tuple[str, ...] = ("unet", "gunet")
    augments: tuple[str, ...] = AUGMENT_NAMES
    data: DataConfig = field(default_factory=DataConfig)
    architectures: dict[str, ArchitectureConfig] = field(default_factory=dict)
    full_augment: FullAugmentConfig = field(default_factory=FullAugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def validate(self) -> None:
        """The lists of seeds, models and augmentations, then every section."""
        if isinstance(self.seeds, (str, int)) or not self.seeds:
            fail("seeds", f"is {self.seeds!r}", "a non-empty list of whole numbers >= 0, e.g. [0, 1, 2]")
        for i, seed in enumerate(self.seeds):
            check_seed(f"seeds[{i}]", seed)
        if len(set(self.seeds)) < len(self.seeds):
            fail("seeds", f"is {list(self.seeds)}, which repeats a seed", "distinct seeds")
        if isinstance(self.models, str) or not self.models:
            fail("models", f"is {self.models!r}", "a non-empty list of " + ", ".join(MODEL_NAMES))
        for i, name in enumerate(self.models):
            check_choice(f"models[{i}]", name, MODEL_NAMES)
            if name not in self.architectures:
                fail(f"architectures.{name}", "is missing", "a section for every model in `models`")
        if isinstance(self.augments, str) or not self.augments:
            fail("augments", f"is {self.augments!r}", "a non-empty list of " + ", ".join(AUGMENT_NAMES))
        for i, name in enumerate(self.augments):
            check_choice(f"augments[{i}]", name, AUGMENT_NAMES)
        for name, arch in self.architectures.items():
            check_choice("architectures", name, MODEL_NAMES)
            arch.validate(f"architectures.{name}")
        self.data.validate()
        validate_full_augment(self.full_augment)
        self.train.validate()
        self.evaluate.validate()
        validate_sweep(self.sweep)

    def architecture(self, model: str) -> ArchitectureConfig:
        """`model`'s section, refused by name when it is not a model or has no section."""
        check_choice("model", model, MODEL_NAMES)
        if model not in self.architectures:
            fail(f"architectures.{model}", "is missing", "add a section for this model")
        return self.architectures[model]


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys by name."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        fail(prefix or "params", f"must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        fail(key, "is not a known parameter", ", ".join(known))
    values = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        if (cls, name) in _NESTED:
            values[name] = _build(_NESTED[cls, name], value, key)
        elif name == "architectures" and cls is Params:
            if not isinstance(value, dict):
                fail(key, "must be a mapping of model name to settings")
            values[name] = {m: _build(ArchitectureConfig, _preset(m, v, f"{key}.{m}"), f"{key}.{m}")
                            for m, v in value.items()}
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def _preset(model: str, settings: Any, key: str) -> dict:
    """A model's architecture section over its preset (so a section may set only what changes)."""
    if model not in MODEL_PRESETS:
        fail(key, "is not a known model", ", ".join(MODEL_NAMES))
    if settings is not None and not isinstance(settings, dict):
        fail(key, f"must be a mapping, got {type(settings).__name__}")
    return {**MODEL_PRESETS[model], **(settings or {})}


_NESTED = {
    (Params, "data"): DataConfig,
    (Params, "train"): TrainConfig,
    (Params, "sweep"): SweepConfig,
    (Params, "evaluate"): EvaluateConfig,
    (Params, "full_augment"): FullAugmentConfig,
    (DataConfig, "synthetic"): SyntheticConfig,
}


def parse_params(raw: dict) -> Params:
    """Typed, validated parameters from an already loaded mapping."""
    params = _build(Params, raw, "")
    params.validate()
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; every problem is a one-line `ConfigError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the project root or pass --params") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return parse_params(raw or {})
