"""One error type for everything a user can get wrong, and one way to report it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class EquisegError(Exception):
    """A problem the user can fix; its message is one line naming the file or key and what to do."""


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
