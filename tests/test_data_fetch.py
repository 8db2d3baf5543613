"""Downloading the archive from a local HTTP server: verified, resumable, retried, falling back."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import yaml

from equiseg.config import ConfigError, DataConfig
from equiseg.data import FetchError, fetch_archive, list_pair_ids, prepare_leeds
from tests.data_fixtures import (
    LeedsArchiveSpec,
    closed_port_url,
    leeds_members,
    serve_bytes,
    write_zip,
)

ROOT = Path(__file__).resolve().parents[1]
NAME = "leedsbutterfly_dataset_v1.0.zip"


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("archive") / NAME
    return write_zip(path, leeds_members(LeedsArchiveSpec())).read_bytes()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def web_config(tmp_path, urls, checksum) -> dict:
    """prepare_leeds's arguments for a download from `urls`."""
    return {"raw_dir": tmp_path / "data" / "raw", "urls": tuple(urls), "checksum": checksum,
            "download_dir": tmp_path / "cache", "retries": 2, "timeout_s": 5}


def test_download_verify_extract_then_reuse_the_cache(tmp_path, archive_bytes):
    with serve_bytes(archive_bytes) as served:
        config = web_config(tmp_path, [served.url], sha256(archive_bytes))
        summary = prepare_leeds(**config, backoff_s=0)
        assert summary["n_pairs"] == 6
        assert (tmp_path / "cache" / NAME).read_bytes() == archive_bytes
        assert not (tmp_path / "cache" / f"{NAME}.part").exists()
        prepare_leeds(**config, backoff_s=0)
        assert len(served.range_headers) == 1  # the verified copy in the cache was used
    assert len(list_pair_ids(tmp_path / "data" / "raw")) == 6


def test_md5_checksums_work_too(tmp_path, archive_bytes):
    md5 = "md5:" + hashlib.md5(archive_bytes).hexdigest()
    with serve_bytes(archive_bytes) as served:
        path = fetch_archive((served.url,), md5, tmp_path / "cache", backoff_s=0)
    assert path.read_bytes() == archive_bytes


def test_truncated_download_resumes_with_a_range_request(tmp_path, archive_bytes):
    half = len(archive_bytes) // 2
    with serve_bytes(archive_bytes, drop_first_after=half) as served:
        path = fetch_archive((served.url,), sha256(archive_bytes), tmp_path / "cache", retries=2,
                             backoff_s=0)
    assert path.read_bytes() == archive_bytes
    assert served.range_headers == [None, f"bytes={half}-"]


def test_a_partial_file_left_by_an_earlier_run_is_continued(tmp_path, archive_bytes):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{NAME}.part").write_bytes(archive_bytes[:1000])
    with serve_bytes(archive_bytes) as served:
        fetch_archive((served.url,), sha256(archive_bytes), tmp_path / "cache", backoff_s=0)
    assert served.range_headers == ["bytes=1000-"]


def test_the_mirror_is_used_when_the_first_url_fails(tmp_path, archive_bytes):
    with serve_bytes(archive_bytes) as served:
        urls = (closed_port_url(), served.url.replace(NAME, "missing.zip"), served.url)
        path = fetch_archive(urls, sha256(archive_bytes), tmp_path / "cache", retries=1,
                             backoff_s=0)
    assert path.read_bytes() == archive_bytes
    assert served.range_headers == [None]  # the 404 was not retried; the mirror sent it once


def test_wrong_checksum_stops_before_anything_is_extracted(tmp_path, archive_bytes):
    wrong = "sha256:" + "0" * 64
    with serve_bytes(archive_bytes) as served, pytest.raises(FetchError) as caught:
        prepare_leeds(**web_config(tmp_path, [served.url], wrong), backoff_s=0)
    message = str(caught.value)
    assert "\n" not in message and "`checksum`" in message
    assert hashlib.sha256(archive_bytes).hexdigest() in message  # what the file really is
    assert not (tmp_path / "data").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # the bad download is not kept


def test_unreachable_url_without_archive_says_how_to_run_offline(tmp_path):
    config = web_config(tmp_path, [closed_port_url()], "md5:" + "0" * 32)
    with pytest.raises(FetchError) as caught:
        prepare_leeds(**config, backoff_s=0)
    message = str(caught.value)
    assert "\n" not in message
    assert "local copy as `archive`" in message and "synthetic" in message
    assert not (tmp_path / "data").exists()


def test_a_local_archive_is_verified_and_needs_no_network(tmp_path, archive_bytes):
    local = tmp_path / "copy.zip"
    local.write_bytes(archive_bytes)
    assert prepare_leeds(tmp_path / "raw", archive=local, checksum=sha256(archive_bytes),
                         urls=(closed_port_url(),))["n_pairs"] == 6
    actual_md5 = hashlib.md5(archive_bytes).hexdigest()
    with pytest.raises(FetchError, match=f"set `checksum` to md5:{actual_md5}"):
        prepare_leeds(tmp_path / "raw2", archive=local, checksum="md5:" + "0" * 32)
    assert not (tmp_path / "raw2").exists()


def test_a_missing_local_archive_is_named(tmp_path):
    with pytest.raises(FetchError, match=r"`archive`: .*nope\.zip does not exist"):
        fetch_archive((), "md5:00", tmp_path, archive=tmp_path / "nope.zip")


def _params_file(tmp_path, data: dict) -> Path:
    """The project's params.yaml with some `data` keys replaced."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_download_stage_offline_fails_with_one_line_and_writes_nothing(tmp_path):
    params = _params_file(tmp_path, {"source": "leeds", "urls": [closed_port_url()],
                                     "download_retries": 0, "checksum": "md5:" + "0" * 32})
    script = ROOT / "src" / "download.py"
    result = subprocess.run([sys.executable, str(script), "--params", str(params)],
                            cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "`data.archive`" in lines[0] and "`data.checksum`" in lines[0]  # keys, not arguments
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_a_host_that_does_not_resolve_is_not_retried(tmp_path, monkeypatch):
    calls = []

    def offline(request, timeout):
        calls.append(request.full_url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr("equiseg.data.fetch.urllib.request.urlopen", offline)
    with pytest.raises(FetchError, match="Name or service not known"):
        fetch_archive(("http://a.invalid/x.zip", "http://b.invalid/x.zip"), "md5:00",
                      tmp_path, retries=3, backoff_s=60)  # a retry would sleep a minute
    assert calls == ["http://a.invalid/x.zip", "http://b.invalid/x.zip"]


def test_connection_failures_are_retried_with_growing_waits(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr("equiseg.data.fetch.time.sleep", waits.append)
    with pytest.raises(FetchError, match="refused"):
        fetch_archive((closed_port_url(),), "md5:00", tmp_path, retries=3, backoff_s=0.5)
    assert waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("field, value", [("download_retries", -1), ("download_timeout_s", 0),
                                          ("max_archive_gb", 0), ("max_compression_ratio", -5)])
def test_download_params_are_validated_by_name(field, value):
    with pytest.raises(ConfigError, match=f"data.{field}"):
        DataConfig(**{field: value}).validate()
