"""Weights downloads: hash checks, interrupted / corrupt downloads leave nothing, the cache,
the offline mirror, file:// addresses and TORCH_HOME (all on this machine: a 127.0.0.1 server
or files)."""
from __future__ import annotations

import hashlib
import logging
import os

import pytest

from mvit_tasks.hub import download as dl
from mvit_tasks.hub.download import HashMismatchError, WeightsDownloadError, fetch

DATA = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
DIGEST = hashlib.sha256(DATA).hexdigest()


def _listing(folder: str) -> list:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_cache_dir_follows_torch_home(torch_home):
    assert dl.cache_dir() == torch_home


def test_http_download_checks_sha256_and_records_it(weights_server, torch_home):
    url = weights_server.serve("/w/model.pth", DATA)
    path = fetch(url, "model.pth", sha256=DIGEST, progress=True)
    assert path == os.path.join(torch_home, "model.pth")
    with open(path, "rb") as f:
        assert f.read() == DATA
    assert dl.read_sidecar(path) == DIGEST
    assert _listing(torch_home) == ["model.pth", "model.pth.sha256"]
    # cached: no second request
    assert fetch(url, "model.pth", sha256=DIGEST) == path
    assert weights_server.requests == ["/w/model.pth"]


def test_hash_prefix_is_checked_like_torch_hub(weights_server, torch_home):
    url = weights_server.serve("/w/mvit-abc.pth", DATA)
    assert os.path.isfile(fetch(url, "ok.pth", hash_prefix=DIGEST[:8], progress=False))
    wrong = ("0" if DIGEST[0] != "0" else "1") + DIGEST[1:8]
    with pytest.raises(HashMismatchError, match="does not start with the published prefix"):
        fetch(url, "bad.pth", hash_prefix=wrong, progress=False)
    assert _listing(torch_home) == ["ok.pth", "ok.pth.sha256"]


def test_wrong_sha256_fails_and_leaves_nothing(weights_server, torch_home):
    url = weights_server.serve("/w/model.pth", DATA)
    with pytest.raises(HashMismatchError, match="differs from the published"):
        fetch(url, "model.pth", sha256="0" * 64, progress=False)
    assert _listing(torch_home) == []


def test_corrupt_download_fails_and_leaves_nothing(weights_server, torch_home):
    corrupt = bytearray(DATA)
    corrupt[12345] ^= 0xFF
    url = weights_server.serve("/w/model.pth", bytes(corrupt))
    with pytest.raises(HashMismatchError):
        fetch(url, "model.pth", sha256=DIGEST, progress=False)
    assert _listing(torch_home) == []


def test_interrupted_download_leaves_nothing(weights_server, torch_home):
    url = weights_server.serve("/w/model.pth", DATA, truncate_at=len(DATA) // 3)
    with pytest.raises(WeightsDownloadError, match="interrupted"):
        fetch(url, "model.pth", progress=False)  # even with no hash to check
    assert _listing(torch_home) == []


def test_http_error_leaves_nothing(weights_server, torch_home):
    url = weights_server.serve("/w/other.pth", DATA).replace("other", "missing")
    with pytest.raises(WeightsDownloadError, match="404"):
        fetch(url, "missing.pth", progress=False)
    assert _listing(torch_home) == []


def test_unverified_download_warns_and_records_the_first_sha256(weights_server, torch_home,
                                                                caplog):
    url = weights_server.serve("/w/model.pth", DATA)
    with caplog.at_level(logging.WARNING, logger="mvit_tasks.hub.download"):
        path = fetch(url, "model.pth", progress=False)
    assert dl.read_sidecar(path) == DIGEST
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "UNVERIFIED" in text and DIGEST in text


def test_file_url_and_cached_file_with_another_hash(tmp_path, torch_home):
    src = tmp_path / "served" / "model.pth"
    src.parent.mkdir()
    src.write_bytes(DATA)
    path = fetch(src.as_uri(), "model.pth", sha256=DIGEST, progress=False)
    src.unlink()  # the cache answers from now on
    assert fetch(src.as_uri(), "model.pth", sha256=DIGEST, progress=False) == path
    with pytest.raises(HashMismatchError, match="delete it"):
        fetch(src.as_uri(), "model.pth", sha256="f" * 64, progress=False)


def test_cached_file_without_sidecar_is_hashed_once(tmp_path, torch_home):
    os.makedirs(torch_home)
    with open(os.path.join(torch_home, "placed.pth"), "wb") as f:
        f.write(DATA)  # e.g. put there by torch.hub or by hand
    path = fetch("http://127.0.0.1:9/never", "placed.pth", hash_prefix=DIGEST[:8])
    assert dl.read_sidecar(path) == DIGEST


def test_mirror_is_used_before_any_download(tmp_path, torch_home, monkeypatch):
    mirror_a, mirror_b = tmp_path / "a", tmp_path / "b"
    mirror_a.mkdir()
    mirror_b.mkdir()
    (mirror_b / "model.pth").write_bytes(DATA)
    monkeypatch.setenv(dl.MIRROR_ENV, os.pathsep.join([str(mirror_a), str(mirror_b)]))
    # an address that cannot answer: only the mirror can
    path = fetch("http://127.0.0.1:9/model.pth", "model.pth", sha256=DIGEST)
    assert path == str(mirror_b / "model.pth")
    assert _listing(torch_home) == [] and _listing(str(mirror_b)) == ["model.pth"]
    with pytest.raises(HashMismatchError):
        fetch("http://127.0.0.1:9/model.pth", "model.pth", sha256="0" * 64)
