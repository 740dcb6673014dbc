"""A render's work folder, ``<output>.parts/``: its parts and its leftovers.

The folder holds the encoded video parts, the open part's frames and the checkpoints (see
:mod:`.checkpoint`). One render at a time writes into it (:mod:`.lease`); what a killed
render left behind (parts and frames after the checkpoint being resumed, temp files) is
removed before work starts. :class:`Parts` writes the parts and checkpoints of one render.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dreamvid.core.errors import InputError, describe_os_error
from dreamvid.core.files import write_atomic
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering.lease import LOCK


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
    if work.is_dir() and not ckpt.list_checkpoints(work):
        shutil.rmtree(work, ignore_errors=True)


def clean(work: Path, state: dict | None) -> None:
    """Remove parts and frames written after the checkpoint we resume from (they are redone),
    and the temp files and folders (hidden names) a killed render left behind."""
    keep = {name for name, _, _ in state["parts"]} | {name for name, _ in state["pending"]} if state else set()
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
    path = write_atomic(ckpt.frame_path(folder, index), data, make_folder=False)
    return str(path.relative_to(work)), hashlib.sha256(data).hexdigest()


def load_frame(work: Path, name: str) -> np.ndarray:
    return np.load(work / name, allow_pickle=False)


class Parts:
    """The parts and checkpoints of one render into ``work``, resumed from ``state``.

    Each frame goes into the open part's encoder and, losslessly, into a frame file as it
    is made, so no part is held in memory and a stop writes only a checkpoint naming those
    files. Parts close on ``every`` boundaries only. A render's last, shorter part (its
    *tail*) is encoded for the join but not recorded as a part: its frames stay pending,
    so a longer rerun resumes with the same boundaries, and the same encoder calls, as an
    uninterrupted render.

    ``read_only``: the folder holds frames beyond this render's end (a longer render was
    stopped there). Nothing there is then changed: this render's parts and frames go to a
    hidden folder inside, removed at the end, and it writes no checkpoint.
    """

    def __init__(self, work: Path, state: dict | None, upto: int, every: int, settings: dict, numerics: dict,
                 digests: Callable[[int], list[str]], new_writer: Callable[[Path], object], read_only: bool):  # fmt: skip
        self.work, self.every, self.settings, self.digests, self.new_writer = work, every, settings, digests, new_writer
        self.numerics = numerics  # what the frames' last bits depend on (checkpoint.numerics)
        self.closed = [tuple(p) for p in state["parts"]] if state else []
        pending = [tuple(p) for p in state["pending"]] if state else []
        self.first = (state["index"] + 1 if state else 0) - len(pending)  # the open part's first frame
        self.pending = pending[: upto + 1 - self.first]  # frames past the end are not this render's
        self.start = self.first + len(self.pending)  # the first frame to render
        newest = max((ckpt.index_of(p) for p in ckpt.list_checkpoints(work)), default=-1)
        self.saved = newest if read_only else self.start - 1  # the last frame saved in the work folder
        self.read_only = read_only
        self.folder = Path(tempfile.mkdtemp(prefix=".short-", dir=work)) if read_only else work
        self.writer = None
        self.tail: tuple | None = None
        self._encoded: list = []  # frame files of the part that just closed, dropped once a checkpoint has it
        if not read_only:
            clean(work, state)

    def add(self, n: int, rgb: np.ndarray) -> bool:
        """Encode frame ``n`` and keep it on disk; True when that closed a part."""
        self._open()
        self.writer.write(rgb)
        self.pending.append(save_frame(self.folder, self.work, n, rgb))
        if (n + 1) % self.every:
            return False
        self.closed.append((self._close(), self.first, n))
        self.first, self._encoded, self.pending = n + 1, self.pending, []
        return True

    def save(self, n: int, frame) -> int:
        """Checkpoint frame ``n`` (the closed parts and the pending frames hold frames 0..n);
        then drop the frame files a closed part no longer needs. Returns the saved frame."""
        if self.read_only:  # the folder is not ours to change; our frames go with the scratch folder
            return self.saved
        self._checkpoint(n, frame)
        for name, _ in self._encoded:
            (self.work / name).unlink(missing_ok=True)
        self._encoded, self.saved = [], n
        return n

    def _checkpoint(self, n: int, frame) -> None:
        state = {"index": n, "frame": frame.detach().float().cpu().contiguous(), "parts": [list(p) for p in self.closed],
                 "pending": [list(p) for p in self.pending], "settings": self.settings,
                 "digests": self.digests(n), "numerics": self.numerics}  # fmt: skip
        ckpt.save(ckpt.checkpoint_path(self.work, n), state)
        ckpt.prune(self.work)

    def stop(self, n: int, frame) -> int:
        """A requested stop after frame ``n``: the open part's encoder is dropped, its frames
        stay on disk, and a checkpoint names them."""
        self.abort()
        return self.save(n, frame)

    def finish(self, last: int) -> None:
        """After the render's last frame: encode the open part's frames as the tail."""
        if self.first <= last:
            self._open()
            self.tail = (self._close(), self.first, last)

    def videos(self) -> list[tuple[Path, int]]:
        """The files to join, with their frame counts."""
        return [(self.work / name, last - first + 1) for name, first, last in [*self.closed, *filter(None, [self.tail])]]

    def abort(self) -> None:
        """Drop the open part's encoder (its frames stay on disk); a read-only render's
        scratch folder goes too."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.read_only:
            shutil.rmtree(self.folder, ignore_errors=True)

    def close(self, keep: bool) -> str | None:
        """The render is done: remove the work folder, unless ``keep`` or it holds frames past
        this render's end (then say so)."""
        if self.read_only:
            shutil.rmtree(self.folder, ignore_errors=True)
            return (f"kept {self.work}: it holds frames 0-{self.saved}, past this render's end; a longer "
                    "render resumes from them (or delete the folder)")  # fmt: skip
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return None

    def _open(self) -> None:
        if self.writer is None:
            self.writer = self.new_writer(ckpt.part_path(self.folder, self.first))
            for name, _ in self.pending:  # frames of this part saved by a stopped run
                self.writer.write(load_frame(self.work, name))

    def _close(self) -> str:
        path = self.writer.close()
        self.writer = None
        return str(path.relative_to(self.work))
