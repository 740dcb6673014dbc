"""A render's frames and their host copies; on CUDA frame n's copy runs while frame n+1 dreams.

:meth:`FrameSource.get` gives the frame loop frame ``n`` (its :class:`.cadence.State`,
the frame a device tensor) and its HxWx3 uint8 copy on the host, as :meth:`.cadence.Cadenced.make`
and ``to_uint8(...).cpu()`` would. On CUDA it works one frame ahead: it starts frame n's copy into a pinned, reused host
buffer on a side stream (``non_blocking``), dreams frame n+1 meanwhile, and only then waits
for the copy. The frames and the order in which the :class:`~dreamvid.rendering.step.Dreamer` makes
them are the same as without look-ahead (frame n+1 depends only on frame n and n), so the
video is too. A failure while dreaming frame n+1 is kept and raised when the loop asks for
frame n+1, after frame n was written and checkpointed, as without look-ahead. A frame
dreamed ahead of a stop request is dropped. With look-ahead the Dreamer's NaN/inf checks are
deferred (:class:`~dreamvid.rendering.step.FiniteChecks`): they travel to the host with the
frame's copy and fail frame n when the loop asks for it, as a check at once would, without
making the host wait for the device in the middle of a frame.

On the CPU there is nothing to overlap (the copy is a view) and no look-ahead: ``get`` is
the plain call. Encoding already overlaps dreaming there: :class:`~dreamvid.media.write.VideoWriter`
encodes in a thread (the loop waited on it 0.2-1.5 % of a frame, docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import torch

from dreamvid.core.stages import stage
from dreamvid.pixels.images import to_uint8
from dreamvid.rendering.cadence import Cadenced, State


class FrameSource:
    """Frames ``n`` of ``dreamer`` for a loop over ``range(start, total)``."""

    def __init__(self, dreamer, total: int, ahead: bool | None = None):
        self.dreamer, self.total = dreamer, total
        self.frames = Cadenced(dreamer)
        self.cuda = dreamer.device.type == "cuda"
        self.ahead = self.cuda if ahead is None else ahead  # look-ahead pays only where the copy is a transfer
        self._next: tuple[int, State, State | None, BaseException | None] | None = None
        self._buffer: torch.Tensor | None = None  # pinned host memory, reused for every frame
        self._stream = torch.cuda.Stream(dreamer.device) if self.cuda else None
        dreamer.checks.deferred = self.ahead  # a frame's NaN check travels with its copy, not waited for at once

    def get(self, n: int, previous: State | None) -> tuple[State, np.ndarray]:
        """(frame ``n`` made from ``previous``, the state after frame n-1, its uint8 HxWx3 host copy)."""
        frame = self._made_ahead(n, previous)
        if frame is None:
            frame = self.frames.make(n, previous)
        with stage("to_uint8"):
            copy = self._start_copy(frame.frame)
        if self.ahead and n + 1 < self.total:
            try:
                self._next = (n + 1, frame, self.frames.make(n + 1, frame), None)
            except Exception as err:  # noqa: BLE001 -- raised when frame n + 1 is asked for
                self._next = (n + 1, frame, None, err)
        with stage("to_uint8"):
            return frame, self._finish_copy(copy)

    def _made_ahead(self, n: int, previous: State | None) -> State | None:
        ahead, self._next = self._next, None
        if ahead is None or ahead[0] != n or ahead[1] is not previous:
            return None
        _, _, frame, err = ahead
        if err is not None:
            raise err
        return frame

    def _start_copy(self, frame: torch.Tensor):
        """Frame n's host copy started, with its finite checks (:class:`~dreamvid.rendering.step.FiniteChecks`)
        on the same stream before the same event: reading them later waits for nothing more."""
        rgb = to_uint8(frame)  # on the device
        finite, errors = self.dreamer.checks.take()
        if not self.cuda:
            return rgb, finite, errors
        if self._buffer is None or self._buffer.shape != rgb.shape:
            self._buffer = torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True)
        self._stream.wait_stream(torch.cuda.current_stream(rgb.device))  # rgb is computed
        with torch.cuda.stream(self._stream):
            self._buffer.copy_(rgb, non_blocking=True)
            rgb.record_stream(self._stream)  # not reused by the allocator before the copy is done
            if finite is not None:
                host = torch.empty(finite.shape, dtype=torch.bool, pin_memory=True)
                host.copy_(finite, non_blocking=True)
                finite.record_stream(self._stream)
                finite = host
            done = torch.cuda.Event()
            done.record(self._stream)
        return done, finite, errors

    def _finish_copy(self, copy) -> np.ndarray:
        """The frame's host copy, once its finite checks passed."""
        started, finite, errors = copy
        if isinstance(started, torch.Tensor):
            rgb = started.cpu().numpy()
        else:
            started.synchronize()
            rgb = self._buffer.numpy().copy()  # the loop keeps it (open part, checkpoint); the buffer is reused
        if finite is not None:
            self.dreamer.checks.verify(finite.tolist(), errors)
        return rgb
