"""Safe extraction: hostile or absurd archives are refused whole, before anything is written."""

from __future__ import annotations

import errno
import stat
import zipfile
from collections import namedtuple

import pytest

from equiseg.data import ArchiveLimits, ArchiveSource, UnsafeArchiveError, prepare_leeds
from equiseg.data.leeds import extract_leeds
from equiseg.errors import EquisegError
from tests.data_fixtures import (
    LeedsArchiveSpec,
    leeds_members,
    make_leeds_zip,
    sha256_of,
    write_zip,
)


def hostile_zip(tmp_path, name: str, info: zipfile.ZipInfo | None = None, data: bytes = b"x"):
    """A valid Leeds archive plus one extra entry."""
    path = write_zip(tmp_path / name, leeds_members(LeedsArchiveSpec()))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(info, data)
    return path


def prepare_from(archive, raw_dir, **overrides) -> dict:
    return prepare_leeds(raw_dir, archive=archive, checksum=f"sha256:{sha256_of(archive)}",
                         **overrides)


def run_prepare(tmp_path, archive):
    return prepare_from(archive, tmp_path / "out" / "raw")


@pytest.mark.parametrize("entry, reason", [
    ("leedsbutterfly/../../evil.txt", "zip-slip"),
    ("../evil.txt", "zip-slip"),
    ("/tmp/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
    ("leedsbutterfly\\..\\..\\evil.txt", "zip-slip"),
])
def test_paths_leaving_the_folder_are_refused(tmp_path, entry, reason):
    archive = hostile_zip(tmp_path, "slip.zip", zipfile.ZipInfo(entry))
    with pytest.raises(UnsafeArchiveError, match=reason):
        run_prepare(tmp_path, archive)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_symbolic_links_are_refused(tmp_path):
    link = zipfile.ZipInfo("leedsbutterfly/images/0090001.png")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = hostile_zip(tmp_path, "link.zip", link, b"/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        run_prepare(tmp_path, archive)
    assert not (tmp_path / "out").exists()


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path):
    entry = zipfile.ZipInfo("leedsbutterfly/README2.txt")
    entry.compress_type = zipfile.ZIP_DEFLATED
    archive = hostile_zip(tmp_path, "bomb.zip", entry, bytes(8 * 1024**2))  # deflates to ~8 kB
    archive_info = zipfile.ZipFile(archive).getinfo("leedsbutterfly/README2.txt")
    assert archive_info.compress_type == zipfile.ZIP_DEFLATED
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        run_prepare(tmp_path, archive)
    assert not (tmp_path / "out").exists()


def test_an_archive_too_large_for_the_dataset_is_refused(tmp_path):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    with pytest.raises(UnsafeArchiveError, match="GB limit"):
        ArchiveSource(archive, ArchiveLimits(max_total_bytes=1000))


def test_the_limits_are_the_callers_and_the_refusal_names_the_argument(tmp_path):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    with pytest.raises(UnsafeArchiveError, match="`max_archive_gb`"):
        prepare_from(archive, tmp_path / "raw", max_archive_gb=1e-6)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    archive = make_leeds_zip(tmp_path / "leeds.zip")

    def disk_full(source, dest, length=0):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("equiseg.data.archive.shutil.copyfileobj", disk_full)
    with pytest.raises(EquisegError, match="no space left on the device"):
        run_prepare(tmp_path, archive)
    assert list((tmp_path / "out").iterdir()) == []


def test_too_little_free_space_is_caught_before_extracting(tmp_path, monkeypatch):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("equiseg.data.archive.shutil.disk_usage", lambda _: usage(10, 10, 0))
    with ArchiveSource(archive) as source, pytest.raises(EquisegError, match="are free"):
        extract_leeds(source, tmp_path / "raw")
    assert not list((tmp_path / "raw" / "images").iterdir())


def test_an_unwritable_output_folder_is_a_clear_error(tmp_path):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(EquisegError, match="a_file: cannot create output folder"):
        prepare_from(archive, tmp_path / "a_file" / "raw")


def test_a_damaged_member_is_named(tmp_path):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("leedsbutterfly/images/0010002.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    data[start:start + 20] = bytes(20)  # scramble the compressed bytes: the CRC check fails
    archive.write_bytes(bytes(data))
    with ArchiveSource(archive) as source, pytest.raises(EquisegError, match=r"0010002\.png"):
        extract_leeds(source, tmp_path / "raw")
