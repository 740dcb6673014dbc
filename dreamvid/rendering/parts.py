"""The parts and checkpoints of one render, written into its work folder (:mod:`.workdir`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dreamvid.core.stages import stage
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering import workdir
from dreamvid.rendering.checkpoint import Checkpoint


class Parts:
    """The parts and checkpoints of one render into ``work``, resumed from ``checkpoint``.

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

    def __init__(self, work: Path, checkpoint: Checkpoint | None, upto: int, every: int, settings: dict,
                 numerics: Callable[[], dict],
                 digests: Callable[[int], list[str]], new_writer: Callable[[Path], object], read_only: bool):  # fmt: skip
        self.work, self.every, self.settings, self.digests, self.new_writer = work, every, settings, digests, new_writer
        self.numerics = numerics  # what the frames' last bits depend on now (checkpoint.numerics)
        self.closed = list(checkpoint.parts) if checkpoint else []
        self.first = checkpoint.first_pending if checkpoint else 0  # the open part's first frame
        pending = list(checkpoint.pending) if checkpoint else []
        self.pending = pending[: upto + 1 - self.first]  # frames past the end are not this render's
        self.start = self.first + len(self.pending)  # the first frame to render
        if read_only:  # the last frame saved in the work folder: a longer render's
            newest = workdir.last_saved_frame(work)
            self.saved = -1 if newest is None else newest
        else:
            self.saved = self.start - 1
        self.read_only = read_only
        self.folder = Path(tempfile.mkdtemp(prefix=".short-", dir=work)) if read_only else work
        self.writer = None
        self.tail: tuple | None = None
        self._encoded: list = []  # frame files of the part that just closed, dropped once a checkpoint has it
        if not read_only:
            workdir.clean(work, checkpoint.files if checkpoint else set())

    def add(self, n: int, rgb: np.ndarray) -> bool:
        """Encode frame ``n`` and keep it on disk; True when that closed a part."""
        self._open()
        with stage("encoder"):
            self.writer.write(rgb)
        with stage("frame_file"):
            self.pending.append(workdir.save_frame(self.folder, self.work, n, rgb))
        if (n + 1) % self.every:
            return False
        self.closed.append((self._close(), self.first, n))
        self.first, self._encoded, self.pending = n + 1, self.pending, []
        return True

    def save(self, n: int, state) -> int:
        """Checkpoint frame ``n`` (the closed parts and the pending frames hold frames 0..n) and
        its :class:`.cadence.State`; then drop the frame files a closed part no longer needs.
        Returns the saved frame."""
        if self.read_only:  # the folder is not ours to change; our frames go with the scratch folder
            return self.saved
        with stage("checkpoint"):
            self._checkpoint(n, state)
        for name, _ in self._encoded:
            (self.work / name).unlink(missing_ok=True)
        self._encoded, self.saved = [], n
        return n

    def _checkpoint(self, n: int, state) -> None:
        saved = Checkpoint(n, state.frame, tuple(self.closed), tuple(self.pending), self.settings, self.digests(n),
                           self.numerics(), dreamed=state.kept)  # fmt: skip
        ckpt.save(workdir.checkpoint_path(self.work, n), saved)
        ckpt.prune(self.work)

    def stop(self, n: int, state) -> int:
        """A requested stop after frame ``n``: the open part's encoder is dropped, its frames
        stay on disk, and a checkpoint names them."""
        self.abort()
        return self.save(n, state)

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
            self.writer = self.new_writer(workdir.part_path(self.folder, self.first))
            for name, _ in self.pending:  # frames of this part saved by a stopped run
                self.writer.write(workdir.load_frame(self.work, name))

    def _close(self) -> str:
        path = self.writer.close()
        self.writer = None
        return str(path.relative_to(self.work))
