"""One error type for everything a user can get wrong, and one way to report it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class EquisegError(Exception):
    """A problem the user can fix; its message is one line naming the file or setting and what to do.

    A library message names a setting by its own argument, in backticks (`checksum`); a caller
    that knows where the value came from renames it (`equiseg.config.params_keys`)."""


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
