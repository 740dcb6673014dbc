"""A render's work folder, ``<output>.parts/``: its lock, its parts and its leftovers.

The folder holds the encoded video parts and the checkpoints (see :mod:`.checkpoint`).
One render at a time writes into it (:func:`exclusive`); what a killed render left behind
(parts after the checkpoint being resumed, temp files) is removed before work starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from . import checkpoint as ckpt
from .errors import InputError, describe_os_error

LOCK = "lock"  # in the work folder: held (flock) by the render writing there


def work_dir(output: Path) -> Path:
    """Where a render keeps its parts and checkpoints: ``<output>.parts/`` beside it."""
    return output.with_name(output.name + ".parts")


def make(work: Path) -> None:
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{describe_os_error(err)} (the work folder {work})") from None


@contextlib.contextmanager
def exclusive(work: Path):
    """Hold ``work/lock`` while rendering into ``work``. A second render into the same folder
    (the same command in another terminal, a batch started twice) stops with a message instead
    of interleaving parts and checkpoints. The kernel drops the lock with the process, however
    it ends, so a killed render never leaves a stale lock."""
    fd = os.open(work / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 20, 0).decode(errors="replace").strip() or "?"
            raise InputError(f"{work}: another dreamvid (pid {pid}) is rendering into this folder; "
                             "wait for it to finish, or render to another output (-o)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def empty(work: Path) -> None:
    """``--fresh``: delete everything in the work folder but the lock we hold."""
    try:
        for p in work.iterdir():
            if p.name != LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    except OSError as err:
        raise InputError(f"{describe_os_error(err)} (the work folder {work})") from None


def drop_if_empty(work: Path) -> None:
    """Remove a work folder that holds no checkpoint: a render that failed before its first
    checkpoint leaves nothing behind (it had nothing to resume from)."""
    if work.is_dir() and not ckpt.list_checkpoints(work):
        shutil.rmtree(work, ignore_errors=True)


def clean(work: Path, parts: list) -> None:
    """Remove parts written after the checkpoint we resume from (they are redone), and temp
    files a killed render left behind."""
    keep = {name for name, _, _ in parts}
    for p in work.iterdir():
        if (p.name.startswith("part-") and p.name not in keep) or (p.name.startswith(".") and "partial" in p.name):
            p.unlink()
