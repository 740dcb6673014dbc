"""Preview frames for the slider: one at a time, the newest request wins, results cached.

Frame n costs n dreams from frame 0 (or from a render's checkpoint at full scale), so a
preview can take a while; when the user moves the slider again, the preview in progress is
abandoned at its next frame (the API's progress callback raises :class:`Cancelled`). Every
frame dreamed on the way is kept as a PNG in an LRU cache keyed by (schedule hash, frame,
scale): moving the slider back costs nothing. The schedule hash covers the editor's text,
the folder it is read from and the input image's size and mtime, so editing either makes
new previews. Previews dream without torch.compile (:func:`eager`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

CACHE_BYTES = 64 << 20  # PNGs kept, all previews together


class Cancelled(Exception):
    """A newer preview was asked for."""


def schedule_key(text: str, base: Path, input_path: Path | None) -> str:
    """What a preview depends on besides frame and scale."""
    h = hashlib.sha256(text.encode())
    h.update(str(base).encode())
    if input_path is not None:
        try:
            st = input_path.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            pass
    return h.hexdigest()[:32]


class Previewer:
    """Renders preview frames (PNG bytes) with :func:`dreamvid.frames`; thread-safe."""

    def __init__(self, cache_bytes: int = CACHE_BYTES):
        self._run = threading.Lock()  # one preview dreams at a time
        self._meta = threading.Lock()
        self._current: threading.Event | None = None  # the cancel flag of the newest request
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes, self._limit = 0, cache_bytes
        self.dreamed = 0  # frames dreamed so far (for tests and the page's status)

    def cancel(self) -> None:
        """Abandon the preview in progress (the studio is stopping)."""
        with self._meta:
            if self._current is not None:
                self._current.set()

    def cached(self, key: str, n: int, scale: float) -> bytes | None:
        with self._meta:
            png = self._cache.get((key, n, scale))
            if png is not None:
                self._cache.move_to_end((key, n, scale))
            return png

    def ticket(self) -> threading.Event:
        """A new request's cancel flag; the request before it is cancelled. Taken when a request
        arrives, before its schedule is checked, so that the newest request wins."""
        cancel = threading.Event()
        with self._meta:
            if self._current is not None:
                self._current.set()
            self._current = cancel
        return cancel

    def png(self, schedule, key: str, n: int, scale: float, cancel: threading.Event | None = None) -> bytes:
        """Frame ``n`` of ``schedule`` at ``scale`` as PNG; raises :class:`Cancelled` when a newer
        request arrives before it is done (the API's errors pass through). ``cancel``: this
        request's :meth:`ticket` (default: a new one)."""
        png = self.cached(key, n, scale)
        if png is not None:
            return png
        cancel = cancel or self.ticket()
        with self._run:
            png = self.cached(key, n, scale)  # the previous request may have dreamed it on its way
            if png is not None:
                return png
            if cancel.is_set():
                raise Cancelled()
            return self._dream(schedule, key, n, scale, cancel)

    def _dream(self, schedule, key: str, n: int, scale: float, cancel: threading.Event) -> bytes:
        import dreamvid

        def callback(p) -> None:
            if cancel.is_set():
                raise Cancelled()

        # At full scale a render's checkpoint at or before n may spare most of the dreams; a
        # smaller scale dreams from frame 0 anyway, so every frame on the way is cached.
        # (A cached PNG cannot be continued from: the next frame needs the float frame.)
        start = n if scale == 1.0 else 0
        png = b""
        frames = dreamvid.frames(eager(schedule), start=start, stop=n + 1, scale=scale, progress=False,
                                 callback=callback)  # fmt: skip
        try:
            for i, rgb in enumerate(frames, start):
                png = _encode(rgb)
                self._put((key, i, scale), png)
                self.dreamed += 1
                if cancel.is_set() and i < n:
                    raise Cancelled()
        finally:
            frames.close()
        return png

    def _put(self, k: tuple, png: bytes) -> None:
        with self._meta:
            if k in self._cache:
                return
            self._cache[k] = png
            self._bytes += len(png)
            while self._bytes > self._limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._bytes -= len(old)


def eager(schedule):
    """``schedule`` dreamed without torch.compile, as previews are: they run in worker threads
    (CUDA graph trees expect the thread that recorded them, and assert off it in some torch
    releases) and at several scales (each a new compiled graph: a compile per slider scale
    costs more than the preview). A frame may then differ from the render's in its last bits."""
    return replace(schedule, compile=False) if schedule.compile is not False else schedule


def _encode(rgb) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
