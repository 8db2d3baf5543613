"""The parameter schema: every parameter of the pipeline, its type, default and allowed values.

`params.yaml` (composed by Hydra from `conf/`) is read here and nowhere else, and only the stages
(`check_params` among them) import this package; the `equiseg` command does not. It parses the
file into the library's own types, all plain Python without torch or albumentations (the presets
of `equiseg.presets`, `equiseg.data.augment_settings.FullAugmentConfig`, `SweepConfig`), and its
own sections, and the stages hand plain values on. A wrong value raises `ConfigError` with a one-line
message that names the key, what was wrong and the allowed values, before any work starts.
`checks`: the error format and shared checks; `sections`: each section and its checks;
`params`: the whole file.
"""

import importlib
from typing import Any

# Each public name and its module, imported on first use: the guard around every stage needs
# only `checks`, and the sections import OpenCV and pandas through `equiseg.data`.
_HOMES = {
    "ConfigError": "checks", "check_choice": "checks", "param_error": "checks",
    "params_keys": "checks", "stage_parser": "checks",
    "Params": "params", "load_params": "params", "parse_params": "params",
    "ArchitectureConfig": "sections", "DataConfig": "sections", "EvaluateConfig": "sections",
    "SyntheticConfig": "sections", "TrainConfig": "sections",
}
__all__ = [
    "ArchitectureConfig", "ConfigError", "DataConfig", "EvaluateConfig", "Params",
    "SyntheticConfig", "TrainConfig", "check_choice", "load_params", "param_error",
    "params_keys", "parse_params", "stage_parser",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'equiseg.config' has no attribute {name!r}")
    return getattr(importlib.import_module(f"equiseg.config.{_HOMES[name]}"), name)
