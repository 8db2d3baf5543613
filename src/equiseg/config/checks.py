"""The one format of a parameter error, the checks every section of params.yaml shares, and the
command line every stage shares. Light (no torch): the guard around every stage imports it alone.

A wrong value raises `ConfigError` with a one-line message that names the key, what was wrong and
the allowed values. A library error names a setting by its own argument (`InvalidValue.name`, or
the argument in backticks in any `EquisegError`'s message); `params_keys` puts the params.yaml key
in its place, so key names are added at the edge only.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from equiseg import errors
from equiseg.errors import EquisegError, InvalidValue, describe_value, rename_settings


class ConfigError(EquisegError):
    """A parameter is missing or has a wrong value; the message names the key."""


def param_error(key: str, problem: str, allowed: str = "") -> ConfigError:
    """The one format of a parameter error: `params: 'key' <problem> (allowed: ...)`."""
    return ConfigError(f"params: {describe_value(key, problem, allowed)}")


@contextlib.contextmanager
def params_keys(**keys: str) -> Iterator[None]:
    """Name the params.yaml key behind a setting a library error names by its argument: an
    `InvalidValue` about `name` becomes a parameter error about `keys[name]`, and any other
    `EquisegError` names the key where it named the argument (`errors.rename_settings`).
    Also a decorator: `@params_keys(device="train.device")` on a stage's `main`."""
    try:
        yield
    except EquisegError as err:
        if isinstance(err, InvalidValue) and err.name in keys:
            raise param_error(keys[err.name], err.problem, err.allowed) from None
        rename_settings(err, keys)
        raise


def fail(key: str, problem: str, allowed: str = "") -> None:
    """Raise the parameter error for `key`."""
    raise param_error(key, problem, allowed)


def check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    """`key` must be one of `allowed` (the library's own check, named by the key)."""
    with params_keys(**{key: key}):
        errors.check_choice(key, value, allowed)


def check_positive(key: str, value: Any, kind: type = int) -> None:
    """`key` must be a positive whole number (`kind` float: any positive number; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        fail(key, f"must be a {'number' if kind is float else 'whole number'}, got {value!r}")
    if value <= 0:
        fail(key, f"must be positive, got {value!r}")


def check_seed(key: str, value: Any) -> None:
    """`key` must be a whole number >= 0 (what numpy and torch accept as a seed)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fail(key, f"is {value!r}", "a whole number >= 0")


def check_divisible_by_16(key: str, value: Any) -> None:
    """An image side: positive and divisible by 16, so every U-Net's pooling divides it."""
    check_positive(key, value)
    if value % 16:
        fail(key, f"is {value}, which is not divisible by 16 (the U-Nets pool four times)")


def stage_parser(doc: str) -> argparse.ArgumentParser:
    """The command line every stage script shares: described by the first line of the stage's
    docstring, with `--params` (so it reads the same everywhere)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--params", default="params.yaml",
                        help="parameters file (default: %(default)s)")
    return parser
