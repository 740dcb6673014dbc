"""The render's newest frame, for eyes: a small JPEG rewritten now and then while it runs.

Every :data:`~dreamvid.core.defaults.PEEK_EVERY` seconds at most (and after the last frame)
the frame the render has just made, as it goes to the encoder (nothing is dreamed for it),
is shrunk to :data:`~dreamvid.core.defaults.PEEK_SIDE` pixels, encoded as JPEG and written
atomically (a reader sees the old picture or the new one) into the work folder
(``peek.jpg``, which the studio shows) and to ``dreamvid render --peek FILE``. The JPEG's
comment says which frame it is: ``dreamvid frame N of T`` (N counted from 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dreamvid.core import defaults as D
from dreamvid.core.errors import describe_os_error
from dreamvid.core.files import write_atomic
from dreamvid.core.stages import stage
from dreamvid.pixels.images import jpeg
from dreamvid.rendering.workdir import peek_comment


class Peek:
    """Writes the newest frame to ``paths`` at most every ``every`` seconds; a failed write
    (a full disk) is reported once through ``on_warning`` and the peek stops: the render goes on."""

    def __init__(self, paths: list[Path], *, every: float = D.PEEK_EVERY,
                 on_warning: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.paths, self.every, self.on_warning, self.clock = list(paths), every, on_warning, clock
        self.last: float | None = None  # when the last peek was written
        self.written = 0  # peeks written (each to every path)
        self.seconds = 0.0  # time spent writing them

    def __call__(self, n: int, total: int, rgb: np.ndarray) -> None:
        """Frame ``n`` (of ``total``) is made: write it if the last peek is old enough or it is the last."""
        now = self.clock()
        if not self.paths or (self.last is not None and now - self.last < self.every and n < total - 1):
            return
        self.last = now
        with stage("peek"):
            if not self._write(n, total, rgb):
                return
        self.written += 1
        self.seconds += self.clock() - now

    def _write(self, n: int, total: int, rgb: np.ndarray) -> bool:
        """The JPEG written to every path; False (and the peek stopped) when a write failed."""
        data = jpeg(rgb, max_side=D.PEEK_SIDE, quality=D.PEEK_QUALITY, comment=peek_comment(n + 1, total))
        for path in self.paths:
            try:
                write_atomic(path, data, make_folder=False)
            except OSError as err:
                self.on_warning(f"the peek stops: {describe_os_error(err)}; the render goes on")
                self.paths = []
                return False
        return True
