"""Paths in user files, and writing files so that a crash never leaves a half-written one in
place of a good one."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def resolve_path(base: str | os.PathLike, value: str | os.PathLike) -> Path:
    """``value`` (``~`` expanded) relative to the folder ``base`` unless absolute, as an absolute
    path with symlinks resolved: the one way dreamvid turns a path written in a schedule or job
    file into a file (so two spellings of the same file compare equal)."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else Path(base) / path).resolve()


def write_atomic(path: str | os.PathLike, data: bytes | str, *, make_folder: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file beside it, fsync, rename, fsync the folder.

    Readers see the old file or the new one, never a mix. A failed write (disk full) leaves
    the old file and raises ``OSError`` naming the file (``write()`` itself names none).
    """
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as err:
        if err.filename is None:
            err.filename = str(tmp)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Filesystems that cannot sync a folder (some network
    and FUSE mounts) refuse with EINVAL/ENOTSUP: the rename has happened, so that is not a failure."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
