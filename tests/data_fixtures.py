"""Builders for the data tests: Leeds-like archives made on the spot and a local HTTP server.

Nothing here touches the network: the server listens on 127.0.0.1 and serves bytes from memory,
with HTTP Range support (for resumed downloads) and an optional dropped connection.
"""

from __future__ import annotations

import http.server
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from equiseg.data.layout import LEEDS_PALETTE

SHARED_LEEDS_ZIP = (Path(__file__).resolve().parents[2] / "shared" / "leeds"
                    / "leedsbutterfly-256.zip")
SHARED_LEEDS_SHA256 = "0c31c2defac169a97cd7c80587024121c1e90fa0bc10616dd18995d7194fe155"


def palette_mask_png(indices: np.ndarray) -> bytes:
    """A mode "P" PNG holding `indices` with the Leeds palette (index 2 red, 3 green)."""
    image = Image.fromarray(indices.astype(np.uint8))
    image.putpalette(LEEDS_PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def leeds_indices(height: int, width: int, seed: int) -> np.ndarray:
    """A Leeds-like label map: background 0, a blob of 1 with a patch of 3, and a band of 2."""
    rng = np.random.default_rng(seed)
    indices = np.zeros((height, width), np.uint8)
    cy, cx = rng.integers(height // 3, 2 * height // 3), rng.integers(width // 3, 2 * width // 3)
    cv2.ellipse(indices, (int(cx), int(cy)), (width // 4, height // 5), 0, 0, 360, 1, -1)
    indices[cy - 2:cy + 2, cx - 2:cx + 2] = 3
    indices[:3, :] = 2  # index 2 is background, whatever its red colour says
    return indices


def png_bytes(image_rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()


@dataclass
class LeedsArchiveSpec:
    """What a test archive holds; the defaults make a small, valid, official-layout archive."""

    ids: tuple[str, ...] = ("0010001", "0010002", "0010003", "0020001", "0020002", "0030001")
    size: tuple[int, int] = (24, 32)  # height, width
    corrupt_image: str | None = None  # id whose image bytes are garbage
    missing_mask: str | None = None  # id without a mask
    mask_size_off: str | None = None  # id whose mask is one row short
    extra_members: dict[str, bytes] = field(default_factory=dict)


def leeds_members(spec: LeedsArchiveSpec) -> dict[str, bytes]:
    """Member name -> bytes of an archive in the official layout (top folder `leedsbutterfly/`)."""
    height, width = spec.size
    members = {"leedsbutterfly/README.txt": b"LEEDS BUTTERFLY DATASET (test copy)\n",
               "leedsbutterfly/descriptions/001.txt": b"Danaus plexippus\nMonarch\nbig, orange\n"}
    for n, image_id in enumerate(spec.ids):
        rng = np.random.default_rng(n)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        members[f"leedsbutterfly/images/{image_id}.png"] = (
            b"this is not a png" if image_id == spec.corrupt_image else png_bytes(image))
        if image_id != spec.missing_mask:
            rows = height - 1 if image_id == spec.mask_size_off else height
            members[f"leedsbutterfly/segmentations/{image_id}_seg0.png"] = palette_mask_png(
                leeds_indices(rows, width, n))
    members.update(spec.extra_members)
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("leedsbutterfly/", b"")  # the official zip has folder entries too
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def make_leeds_zip(path: Path, spec: LeedsArchiveSpec | None = None) -> Path:
    return write_zip(path, leeds_members(spec or LeedsArchiveSpec()))


@dataclass
class ServedFile:
    """State of the test server: what it serves and what it was asked."""

    payload: bytes
    drop_first_after: int | None = None  # first GET sends only this many bytes, then hangs up
    range_headers: list[str | None] = field(default_factory=list)
    url: str = ""


@contextmanager
def serve_bytes(payload: bytes, name: str = "leedsbutterfly_dataset_v1.0.zip",
                drop_first_after: int | None = None) -> Iterator[ServedFile]:
    """Serve `payload` at http://127.0.0.1:<port>/<name>, honouring `Range: bytes=N-`."""
    served = ServedFile(payload, drop_first_after)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/{name}":
                self.send_error(404)
                return
            requested = self.headers.get("Range")
            served.range_headers.append(requested)
            start = 0
            if requested and (match := re.fullmatch(r"bytes=(\d+)-", requested)):
                start = int(match[1])
                if start >= len(served.payload):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(served.payload) - 1}/"
                                                  f"{len(served.payload)}")
            else:
                self.send_response(200)
            body = served.payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if served.drop_first_after is not None:
                body, served.drop_first_after = body[:served.drop_first_after], None
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(name: str = "leedsbutterfly_dataset_v1.0.zip") -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
