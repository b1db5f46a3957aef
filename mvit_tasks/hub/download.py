"""Weights files into the torch hub cache: mirror lookup, download, hash check, atomic rename.

Where a file is looked for, in order:

1. each folder of ``$MVIT_TASKS_WEIGHTS_MIRROR`` (``os.pathsep``-separated), by file name
   (offline use: copy the files, or a whole cache folder, there);
2. the cache ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``);
3. the address (``https://``, ``http://``, ``file://``), downloaded with a progress bar.

A download goes to a temporary file in the cache folder, is hashed while it is written, is
checked (size against ``Content-Length``, sha256 or published sha256 prefix), and only then
renamed to its name, so an interrupted, truncated or corrupt download never leaves a file
under that name. Next to each file, ``<file>.sha256`` (``sha256sum`` format) records its
sha256; files whose page publishes no hash are accepted with a WARNING that says so, and the
sidecar then holds the sha256 of that first download (``tools/download_weights.py --verify``
re-hashes files against it).
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from typing import BinaryIO, Iterable, List, Optional

logger = logging.getLogger(__name__)

MIRROR_ENV = "MVIT_TASKS_WEIGHTS_MIRROR"
_CHUNK = 1 << 20


class WeightsDownloadError(RuntimeError):
    """A weights file could not be fetched whole."""


class HashMismatchError(WeightsDownloadError):
    """A weights file's sha256 differs from the published one."""


def cache_dir() -> str:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME`` respected), where downloads go."""
    import torch.hub

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def mirror_dirs() -> List[str]:
    """The folders of ``$MVIT_TASKS_WEIGHTS_MIRROR``, in order."""
    value = os.environ.get(MIRROR_ENV, "")
    return [d for d in value.split(os.pathsep) if d]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(path: str) -> str:
    return path + ".sha256"


def read_sidecar(path: str) -> Optional[str]:
    """The sha256 recorded next to ``path``, or None."""
    try:
        with open(sidecar_path(path), encoding="utf-8") as f:
            text = f.read().split()
    except OSError:
        return None
    return text[0].lower() if text else None


def write_sidecar(path: str, digest: str) -> None:
    """Write ``<path>.sha256`` atomically (several processes may record the same file)."""
    side = sidecar_path(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(side) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(side)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{digest}  {os.path.basename(path)}\n")
        os.replace(tmp, side)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_hash(digest: str, name: str, sha256: Optional[str] = None,
               hash_prefix: Optional[str] = None) -> None:
    """Raise :class:`HashMismatchError` unless ``digest`` matches the published hash."""
    if sha256 and digest != sha256.lower():
        raise HashMismatchError(f"'{name}': sha256 {digest} differs from the published "
                                f"{sha256.lower()}")
    if hash_prefix and not digest.startswith(hash_prefix.lower()):
        raise HashMismatchError(f"'{name}': sha256 {digest} does not start with the published "
                                f"prefix {hash_prefix.lower()} (torch.hub file-name hash)")


def _digest(path: str, record: bool = True) -> str:
    """Recorded sha256 of a cached / mirrored file; an unrecorded one is hashed (and, with
    ``record``, the sidecar written: the cache, not a user's mirror folder)."""
    digest = read_sidecar(path)
    if digest is None:
        digest = sha256_file(path)
        if record:
            try:
                write_sidecar(path, digest)
            except OSError:
                pass
    return digest


def _unverified(name: str, digest: str, where: str) -> None:
    logger.warning("weights '%s' (%s): UNVERIFIED - its page publishes no hash; sha256 %s is "
                   "recorded in %s.sha256", name, where, digest, name)


def find_local(names: Iterable[str], folders: Iterable[str]) -> Optional[str]:
    """The first ``folder/name`` that is a file."""
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def fetch(url: str, file_name: str, sha256: Optional[str] = None,
          hash_prefix: Optional[str] = None, progress: bool = True,
          directory: Optional[str] = None) -> str:
    """Local path of the file ``url`` names: from a mirror, the cache, or downloaded.

    Args:
        url: ``https://``, ``http://`` or ``file://`` address.
        file_name: name of the file in the cache and in mirror folders.
        sha256 / hash_prefix: published hash (full / torch.hub prefix); None: unverified.
        directory: cache folder (default :func:`cache_dir`).
    """
    mirrored = find_local([file_name], mirror_dirs())
    if mirrored:
        digest = _digest(mirrored, record=False)
        check_hash(digest, mirrored, sha256, hash_prefix)
        if not (sha256 or hash_prefix):
            _unverified(file_name, digest, f"mirror {os.path.dirname(mirrored)}")
        return mirrored
    directory = directory or cache_dir()
    dest = os.path.join(directory, file_name)
    if os.path.isfile(dest):
        digest = _digest(dest)
        try:
            check_hash(digest, dest, sha256, hash_prefix)
        except HashMismatchError as e:
            raise HashMismatchError(f"{e}; the cached file is not the published one: delete "
                                    f"it (and its .sha256) to download it again") from None
        return dest
    os.makedirs(directory, exist_ok=True)
    logger.info("downloading %s to %s", url, dest)
    digest = download(url, dest, sha256, hash_prefix, progress)
    if not (sha256 or hash_prefix):
        _unverified(file_name, digest, f"first download from {url}")
    return dest


def _copy(src: BinaryIO, dst: BinaryIO, total: Optional[int], progress: bool,
          desc: str) -> tuple:
    """Copy in chunks; returns ``(bytes, sha256 hex)``."""
    h = hashlib.sha256()
    done = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)
    try:
        while True:
            block = src.read(_CHUNK)
            if not block:
                break
            dst.write(block)
            h.update(block)
            done += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return done, h.hexdigest()


def download(url: str, dest: str, sha256: Optional[str] = None,
             hash_prefix: Optional[str] = None, progress: bool = True,
             timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` atomically; returns the sha256 (also written to the
    sidecar). On any failure (network, short body, hash) nothing is left under ``dest``."""
    folder = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".partial",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "mvit-tasks"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    done, digest = _copy(resp, out, total, progress, os.path.basename(dest))
            except OSError as e:  # URLError, HTTPError, timeouts, resets
                raise WeightsDownloadError(f"download of {url} failed: {e}") from None
            except Exception as e:  # http.client.IncompleteRead and the like
                raise WeightsDownloadError(f"download of {url} failed: "
                                           f"{type(e).__name__}: {e}") from None
        if total is not None and done != total:
            raise WeightsDownloadError(f"download of {url} interrupted: got {done} of {total} "
                                       "bytes")
        if done == 0:
            raise WeightsDownloadError(f"download of {url} gave an empty file")
        check_hash(digest, url, sha256, hash_prefix)
        os.replace(tmp, dest)
        write_sidecar(dest, digest)
        return digest
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
