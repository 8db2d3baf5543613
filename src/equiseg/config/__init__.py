"""The parameter schema: every parameter of the pipeline, its type, default and allowed values.

`params.yaml` (composed by Hydra from `conf/`) is read here and nowhere else, and only the stages,
the command line and `check_params` import this package: it parses the file into the library's
own types (the presets of `equiseg.nn.presets`, `FullAugmentConfig`, `SweepConfig`) and its own
sections, and the stages hand plain values on. A wrong value raises `ConfigError` with a one-line
message that names the key, what was wrong and the allowed values, before any work starts.
`checks`: the error format and shared checks; `sections`: each section and its checks;
`params`: the whole file.
"""

from equiseg.config.checks import ConfigError, check_choice, param_error, params_keys
from equiseg.config.params import Params, load_params, parse_params, stage_parser
from equiseg.config.sections import (
    ArchitectureConfig,
    DataConfig,
    EvaluateConfig,
    SyntheticConfig,
    TrainConfig,
)

__all__ = [
    "ArchitectureConfig", "ConfigError", "DataConfig", "EvaluateConfig", "Params",
    "SyntheticConfig", "TrainConfig", "check_choice", "load_params", "param_error",
    "params_keys", "parse_params", "stage_parser",
]
