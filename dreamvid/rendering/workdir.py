"""A render's work folder, ``<output>.parts/``: its files' names, and its leftovers.

Every file name in the folder is made and read here::

    part-00000000.mp4   frames 0..49      (each part closes at a checkpoint)
    part-00000050.mp4   frames 50..99
    frame-00000100.npy  the open part's frames, as they are (uint8), until it closes
    ckpt-00000049.pt    a checkpoint at frame 49 (:mod:`.checkpoint`)
    ckpt-00000099.pt
    lock                the lease of the render writing here (:mod:`.lease`)
    peek.jpg            the newest frame, small, rewritten now and then (:mod:`.peek`)

One render at a time writes into the folder (:mod:`.lease`); what a killed render left
behind (parts and frames after the checkpoint being resumed, temp files: hidden names) is
removed before work starts. :class:`.parts.Parts` writes the parts and checkpoints of one render.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections.abc import Collection
from pathlib import Path

import numpy as np

from dreamvid.core.errors import InputError, describe_os_error
from dreamvid.core.files import write_atomic

LOCK = "lock"  # the lease of the render writing into the folder (see lease.exclusive)
PEEK = "peek.jpg"  # the render's newest frame (see peek.Peek)
CKPT_RE = re.compile(r"ckpt-(\d{8})\.pt$")
PEEK_RE = re.compile(r"dreamvid frame (\d+) of (\d+)")


def checkpoint_path(work: Path, index: int) -> Path:
    return work / f"ckpt-{index:08d}.pt"


def part_path(work: Path, first: int) -> Path:
    return work / f"part-{first:08d}.mp4"


def frame_path(work: Path, index: int) -> Path:
    return work / f"frame-{index:08d}.npy"


def peek_path(work: Path) -> Path:
    return work / PEEK


def peek_comment(frame: int, total: int) -> str:
    """What a peek JPEG's comment says: which frame it shows (from 1) of how many."""
    return f"dreamvid frame {frame} of {total}"


def peek_frame(path: Path) -> tuple[int, int] | None:
    """(frame, total) of the peek JPEG at ``path`` (its comment, :func:`peek_comment`, in the
    COM segment right after the start marker); None when it is missing or not a peek."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if head[:4] != b"\xff\xd8\xff\xfe" or len(head) < 6:
        return None
    found = PEEK_RE.fullmatch(head[6:4 + int.from_bytes(head[4:6], "big")].decode("ascii", errors="replace"))
    return (int(found[1]), int(found[2])) if found else None


def index_of(path: Path) -> int:
    """The frame a checkpoint file holds."""
    return int(CKPT_RE.match(path.name)[1])


def list_checkpoints(work: Path) -> list[Path]:
    """Checkpoint files in the work folder, newest first."""
    if not work.is_dir():
        return []
    found = [p for p in work.iterdir() if CKPT_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def last_saved_frame(work: Path) -> int | None:
    """The frame of the newest checkpoint in ``work`` (frames 0..it are saved), or None."""
    newest = list_checkpoints(work)[:1]
    return index_of(newest[0]) if newest else None


def work_dir(output: Path) -> Path:
    """Where a render keeps its parts and checkpoints: ``<output>.parts/`` beside it."""
    return output.with_name(output.name + ".parts")


def make(work: Path) -> None:
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{describe_os_error(err)} (the work folder {work})") from None


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
    if work.is_dir() and not list_checkpoints(work):
        shutil.rmtree(work, ignore_errors=True)


def clean(work: Path, keep: Collection[str]) -> None:
    """Remove parts and frames written after the checkpoint we resume from (they are redone;
    ``keep`` names those it holds), and the temp files and folders (hidden names) a killed
    render left behind."""
    for p in work.iterdir():
        if p.name.startswith((".", "part-", "frame-")) and p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def save_frame(folder: Path, work: Path, index: int, rgb: np.ndarray) -> tuple[str, str]:
    """Write frame ``index`` as it is (an ``.npy`` file: lossless and with no encoding cost on
    the render's thread; PNG took 10x longer than writing at 1080p) into ``folder``,
    atomically; returns its path relative to ``work`` and its SHA-256."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(rgb), allow_pickle=False)
    data = buf.getvalue()
    path = write_atomic(frame_path(folder, index), data, make_folder=False)
    return str(path.relative_to(work)), hashlib.sha256(data).hexdigest()


def load_frame(work: Path, name: str) -> np.ndarray:
    return np.load(work / name, allow_pickle=False)
