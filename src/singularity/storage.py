"""Atomic file writes: a temporary file in the same directory, fsync, rename.

A crash or Ctrl-C at any point leaves either the old file or the new one, never a mix; a
process killed mid-write leaves its temporary file (``.NAME.RANDOM.tmp``) behind, which
``sweep_temp_files`` removes (callers run it under the lock that serialises writers of the
file, where no live writer can own one). Files get the mode an ordinary ``open()`` would give
them (0666 less the umask), not ``mkstemp``'s private 0600: another user's dashboard or CLI
must be able to read the store.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new regular file under the current umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, sync_dir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed over it.
    ``sync_dir=False`` leaves the directory's fsync (which makes the rename durable) to the
    caller: a writer of many files in one directory syncs it once, before its commit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        # The writer may have replaced the file (some libraries write a new one): set it last.
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
        if sync_dir:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_with(path: str | Path, writer: Callable[[Path], None], *, sync_dir: bool = True) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path, sync_dir=sync_dir) as tmp:
        writer(tmp)


def sweep_temp_files(directory: str | Path, name: str | None = None, *,
                     older_than_s: float = 0.0) -> list[Path]:
    """Remove temporary files that killed writers left in ``directory``: those of file
    ``name`` only, or all when ``name`` is None; only those older than ``older_than_s``.

    Call it under the lock that serialises the writers concerned (then every such file is
    stale, ``older_than_s=0``), or with an age no live write can reach."""
    directory = Path(directory)
    pattern = f".{name}.*{TEMP_SUFFIX}" if name is not None else f".*{TEMP_SUFFIX}"
    cutoff = time.time() - older_than_s
    removed = []
    for p in directory.glob(pattern):
        try:
            if p.is_file() and p.stat().st_mtime <= cutoff:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            continue
    return removed


def fsync_dir(directory: str | Path) -> None:
    """Make the renames into ``directory`` durable (see ``atomic_path(sync_dir=False)``)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
