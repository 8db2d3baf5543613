"""Get the dataset archive onto this disk, verified: a local copy, the download cache, or the web.

Downloads go to `<cache_dir>/<name>.part` (outside DVC's outputs, so an interrupted download
survives a failed stage) and resume from where they stopped with an HTTP Range request; each URL
is retried with exponential back-off, then the next URL (the mirror) is tried. Only a file whose
checksum matches `checksum` is renamed to `<cache_dir>/<name>` and handed on; a mismatch
deletes the partial file, so the next attempt starts clean.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from tqdm import tqdm

from equiseg.data.archive import raise_write_error
from equiseg.errors import EquisegError

OFFLINE_HINT = ("to work offline, give a local copy as `archive` (the zip or its extracted folder) "
                "with its `checksum` (md5:<hex> or sha256:<hex>), or use the synthetic data")
CHUNK_BYTES = 1 << 16


class FetchError(EquisegError):
    """The archive could not be obtained or did not match its checksum."""


class _TransferError(Exception):
    """One URL failed for good (after its retries); the next URL may still work."""


def parse_checksum(spec: str) -> tuple[str, str]:
    """'md5:<hex>' or 'sha256:<hex>' -> (algorithm, lower-case hex digest)."""
    algo, _, digest = spec.partition(":")
    if algo not in ("md5", "sha256") or not re.fullmatch(r"[0-9a-fA-F]+", digest):
        raise FetchError(f"`checksum` is {spec!r}; write it as 'md5:<hex>' or 'sha256:<hex>'")
    return algo, digest.lower()


def file_digest(path: Path, algo: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, algo).hexdigest()


def verify_checksum(path: Path, spec: str) -> None:
    """Raise `FetchError` naming the file, both digests and the key to change, on a mismatch."""
    algo, expected = parse_checksum(spec)
    actual = file_digest(path, algo)
    if actual != expected:
        raise FetchError(f"{path}: {algo} is {actual} but `checksum` expects {expected}; "
                         f"if this copy is the one you trust, set `checksum` to {algo}:{actual}")


def _open_for_writing(part: Path, append: bool) -> BinaryIO:
    """The partial file, opened; a disk or permission problem is a user error, not a retry."""
    try:
        return part.open("ab" if append else "wb")
    except OSError as err:
        raise_write_error(part, err)


def _download_once(url: str, part: Path, timeout_s: float) -> None:
    """Fetch `url` into `part`, continuing a partial file; raise on any short or failed transfer."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "equiseg", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the partial file is whole
            return
        raise
    with response:
        resumed = response.status == 206 and response.headers.get(
            "Content-Range", "").startswith(f"bytes {offset}-")
        offset = offset if resumed else 0  # a server that ignores Range sends it all again
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        received = 0
        total = None if expected is None else offset + expected
        with _open_for_writing(part, append=resumed) as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=part.name,
                mininterval=0.5) as bar:
            while chunk := response.read(CHUNK_BYTES):
                try:
                    out.write(chunk)
                except OSError as err:
                    raise_write_error(part, err)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise http.client.IncompleteRead(b"", expected - received)


def _download_with_retries(url: str, part: Path, retries: int, backoff_s: float,
                           timeout_s: float) -> None:
    last = ""
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout_s)
            return
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code} {err.reason}"
            if 400 <= err.code < 500 and err.code not in (408, 429):
                break  # the server says no; asking again will not help
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None)
            last = str(reason or err) or type(err).__name__
            if isinstance(reason, socket.gaierror):
                break  # the host name does not resolve (offline?): waiting will not help
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise _TransferError(last)


def download(urls: tuple[str, ...], dest: Path, checksum: str, retries: int = 3,
             backoff_s: float = 1.0, timeout_s: float = 30.0) -> Path:
    """Download the first URL that works into `dest`, verified against `checksum`."""
    algo, expected = parse_checksum(checksum)
    part = dest.with_name(dest.name + ".part")
    failures, mismatch = [], ""
    for url in urls:
        try:
            _download_with_retries(url, part, retries, backoff_s, timeout_s)
        except _TransferError as err:
            failures.append(f"{url}: {err}")
            continue
        actual = file_digest(part, algo)
        if actual == expected:
            os.replace(part, dest)
            return dest
        part.unlink()
        mismatch = (f"the file from {url} has {algo} {actual} but `checksum` expects "
                    f"{expected}; check `checksum` and `urls`")
    if mismatch:
        raise FetchError(f"{dest.name}: {mismatch}")
    detail = "; ".join(failures) or "`urls` is empty"
    raise FetchError(f"{dest.name}: could not be downloaded ({detail}); {OFFLINE_HINT}")


def fetch_archive(urls: tuple[str, ...], checksum: str, cache_dir: str | Path,
                  archive: str | Path | None = None, retries: int = 3, backoff_s: float = 1.0,
                  timeout_s: float = 30.0) -> Path:
    """A local, verified archive: `archive` if given (no network), else the cache or a download.

    A folder given as `archive` is taken as already extracted; it has no checksum to verify.
    """
    if archive:
        path = Path(archive).expanduser()
        if not path.exists():
            raise FetchError(f"`archive`: {path} does not exist; give the path of the zip "
                             "or of its extracted folder")
        if path.is_file():
            verify_checksum(path, checksum)
        return path
    if not urls:
        raise FetchError(f"`urls` is empty and `archive` is not set; {OFFLINE_HINT}")
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise_write_error(cache_dir, err)
    dest = cache_dir / (Path(urlparse(urls[0]).path).name or "archive.zip")
    if dest.exists():
        algo, expected = parse_checksum(checksum)
        if file_digest(dest, algo) == expected:
            return dest
        dest.unlink()  # a stale or damaged copy: fetch it again
    return download(urls, dest, checksum, retries, backoff_s, timeout_s)
