"""Atomic file output: a reader sees the old file or the whole new one, never half of it.

Convention: the temporary file or folder for `dir/name` is `dir/.name.<random>.tmp`, beside its
target so that the final rename stays on one filesystem. A write killed half-way leaves it behind;
the next write of the same target removes it, and `.gitignore`/`.dvcignore` hide it meanwhile.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from equiseg.errors import EquisegError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EquisegError(f"{folder}: cannot create output folder ({err.strerror}); "
                           "check the path and its permissions") from None


def _remove_leftovers(path: Path) -> None:
    """Delete what a killed earlier write of `path` left beside it (its `.tmp` and `.old`)."""
    for leftover in [*path.parent.glob(glob.escape(f".{path.name}.") + "*.tmp"), path.with_name(f".{path.name}.old")]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    _check_writable_dir(path.parent)
    _remove_leftovers(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise EquisegError(f"{path.parent}: cannot write there ({err.strerror}); "
                           "check permissions and free disk space") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; outputs follow the umask
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        raise EquisegError(f"{path}: could not be written ({err.strerror}); "
                           "check free disk space and permissions") from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` whole only if the block succeeds."""
    path = Path(path)
    _check_writable_dir(path.parent)
    _remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Pretty, key-ordered JSON so that `dvc metrics diff` and git diffs stay readable."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
