"""Read a dataset archive without trusting it: a zip file, or a folder that is already extracted.

A zip is checked whole before a single byte is extracted: no absolute paths or `..` (zip-slip),
no symbolic links or other special files, and no more uncompressed data than a dataset of this
kind could hold (a total limit, and a compression-ratio limit that catches zip bombs). Copies
stream to disk, and a full disk or an unwritable folder is reported as such.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from equiseg.errors import EquisegError
from equiseg.image_files import DataError

if TYPE_CHECKING:
    from typing import Self


class UnsafeArchiveError(EquisegError):
    """The archive could write outside its folder, holds links, or is absurdly large."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What a dataset archive may hold; far above Leeds (under 1 GB), far below a zip bomb."""

    max_total_bytes: int = 4 * 1024**3
    max_ratio: float = 100.0  # uncompressed / compressed, per large entry and overall
    ratio_min_bytes: int = 1024**2  # tiny entries may compress well without being bombs


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this zip entry would be unsafe, or None."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in parts:
        return "has '..' in its path (zip-slip)"
    kind = stat.S_IFMT(info.external_attr >> 16)  # unix file type; 0 when the zip does not say
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file"
    return None


def check_zip(archive: zipfile.ZipFile, label: str, limits: ArchiveLimits) -> None:
    """Refuse the whole archive if any entry is unsafe or the sizes are absurd."""
    total, compressed = 0, 0
    for info in archive.infolist():
        reason = unsafe_reason(info)
        if reason:
            raise UnsafeArchiveError(f"{label}: entry {info.filename!r} {reason}; refusing to "
                                     "extract this archive, get a clean copy")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= limits.ratio_min_bytes and ratio > limits.max_ratio:
            raise UnsafeArchiveError(f"{label}: entry {info.filename!r} expands {ratio:.0f}x "
                                     f"(limit {limits.max_ratio:.0f}x, `max_compression_ratio`); refusing a likely zip bomb")
        total += info.file_size
        compressed += info.compress_size
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(f"{label}: would expand to {total / 1e9:.1f} GB, more than the "
                                 f"{limits.max_total_bytes / 1e9:.1f} GB limit "
                                 "(`max_archive_gb`); is this the right archive?")
    if total >= limits.ratio_min_bytes and total / max(compressed, 1) > limits.max_ratio:
        raise UnsafeArchiveError(f"{label}: expands {total / max(compressed, 1):.0f}x overall "
                                 f"(limit {limits.max_ratio:.0f}x, `max_compression_ratio`); refusing a likely zip bomb")


class ArchiveSource:
    """Files of a zip (checked safe on opening) or of a folder, by relative posix name."""

    def __init__(self, path: str | Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self._sizes = {p.relative_to(self.path).as_posix(): p.stat().st_size
                           for p in sorted(self.path.rglob("*")) if p.is_file()}
            return
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise DataError(f"{self.path}: archive not found; check `archive`") from None
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{self.path}: not a readable zip archive ({err}); "
                            "download it again or point `archive` at the right file") from None
        check_zip(self._zip, str(self.path), limits)
        self._sizes = {i.filename: i.file_size for i in self._zip.infolist() if not i.is_dir()}

    def names(self) -> list[str]:
        return list(self._sizes)

    def size(self, name: str) -> int:
        return self._sizes[name]

    def label(self, name: str) -> str:
        """How error messages name a member: where it lives, as the user would look for it."""
        return f"{self.path}:{name}" if self._zip else str(self.path / name)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        try:
            with (self._zip.open(name) if self._zip else open(self.path / name, "rb")) as stream:
                yield stream
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as err:
            raise DataError(f"{self.label(name)}: cannot be extracted ({err}); the archive is "
                            "damaged, download it again") from None

    def copy(self, name: str, dest: Path) -> None:
        """Stream one member to `dest`; a full disk or a read-only folder is a clear error."""
        with self.open(name) as stream:
            try:
                with open(dest, "wb") as out:
                    shutil.copyfileobj(stream, out, 1024**2)
            except OSError as err:
                raise_write_error(dest, err)

    def close(self) -> None:
        if self._zip:
            self._zip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raise_write_error(path: Path, err: OSError) -> NoReturn:
    """Turn an OSError from writing `path` into a one-line user error."""
    if err.errno == errno.ENOSPC:
        raise EquisegError(f"{path}: no space left on the device; free some disk space "
                           "or set `raw_dir` to a roomier disk") from None
    raise EquisegError(f"{path}: cannot be written ({err.strerror or err}); "
                       "check the folder's permissions and free space") from None


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Fail before extracting when the disk clearly cannot hold the result."""
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise EquisegError(f"{folder}: needs {needed_bytes / 1e6:.0f} MB but only "
                           f"{free / 1e6:.0f} MB are free; free some disk space or set "
                           "`raw_dir` elsewhere")


def ensure_dirs(*folders: Path) -> None:
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise_write_error(folder, err)
