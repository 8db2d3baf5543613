"""One error type for everything a user can get wrong, and one way to report it."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class EquisegError(Exception):
    """A problem the user can fix; its message is one line naming the file or setting and what to do.

    A library message names a setting by its own argument, in backticks (`checksum`); a caller
    that knows where the value came from renames it (`settings_named`: a flag, a params key)."""


def describe_value(name: str, problem: str, allowed: str = "") -> str:
    """The one format of a refused value: `'name' <problem> (allowed: ...)`."""
    hint = f" (allowed: {allowed})" if allowed else ""
    return f"'{name}' {problem}{hint}"


class InvalidValue(EquisegError, ValueError):
    """A library function refused a value; `name` is its own argument's name. The caller that knows
    where the value came from (a params.yaml key, a flag) may name that instead
    (`equiseg.config.params_keys`)."""

    def __init__(self, name: str, problem: str = "", allowed: str = "") -> None:
        self.name, self.problem, self.allowed = name, problem, allowed
        super().__init__(describe_value(name, problem, allowed))


_SETTING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def rename_settings(err: EquisegError, names: Mapping[str, str]) -> None:
    """Change `err` in place: each setting it names by an argument in `names` (an
    `InvalidValue`'s `name`, any `name` in backticks) named `names[name]` instead."""
    if isinstance(err, InvalidValue) and err.name in names:
        err.name = names[err.name]
        err.args = (describe_value(err.name, err.problem, err.allowed),)
    else:
        err.args = (_SETTING.sub(lambda m: f"`{names.get(m[1], m[1])}`", str(err)),)


@contextlib.contextmanager
def settings_named(**names: str) -> Iterator[None]:
    """Errors raised inside name each setting as the caller knows it (`rename_settings`): e.g.
    the audit's flags (`pad_size` is `--pad-size`). Also a decorator."""
    try:
        yield
    except EquisegError as err:
        rename_settings(err, names)
        raise


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Refuse `value` unless it is one of `allowed`."""
    if value not in allowed:
        raise InvalidValue(name, f"is {value!r}", ", ".join(allowed))


def exit_on_user_error(main: F) -> F:
    """Run a command's `main`, turning an `EquisegError` into one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except EquisegError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
