"""A render's frames with a ``cadence``: dream every k-th frame, crossfade the frames between.

Which frames are dreamed is the schedule's (:mod:`dreamvid.schedule.cadence`). For two
consecutive dreamed frames ``a < b``::

    frame b = step(frame a carried by the camera moves a+1..b in one warp, b)      (:class:`.step.Dreamer`)
    frame n = lerp(forward, back, t * inside)                                      a < n < b, t = (n - a) / (b - a)
      forward = frame a carried to n (the moves a+1..n, one warp)
      back    = frame b carried back to n (the inverse of the moves n+1..b, one warp)
      inside  = 1 where frame b shows frame n's pixel, 0 where frame n sees past frame b's border

Frames still come in order: frame a+1 dreams frame b first, frames a+2..b reuse it. What the
next frame needs is a :class:`State`; a checkpoint of frame n holds it (frame n, and frame a
when n lies between two dreams); frame b is dreamed again after a resume, the same bits. With
cadence 1 every frame is ``step(frame n-1, n)``, exactly as before cadence existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dreamvid.rendering.checkpoint import Checkpoint
from dreamvid.schedule.cadence import next_dreamed

Image = torch.Tensor  # (1, C, H, W) in [0, 1] on the Dreamer's device


@dataclass(frozen=True)
class State:
    """Frame ``index`` and what the frames after it are made from."""

    index: int
    frame: Image  # frame ``index`` as the video shows it
    dreamed: int  # the last dreamed frame at or before ``index``
    dream: Image  # that frame (``frame`` itself when it is ``index``)
    ahead: tuple[int, Image] | None = None  # the next dreamed frame and its image, once dreamed

    @property
    def kept(self) -> tuple[int, Image] | None:
        """What a checkpoint of this frame holds besides the frame: the dreamed frame before it
        when it lies between two dreams, else None."""
        return None if self.dreamed == self.index else (self.dreamed, self.dream)


def dreamed(n: int, frame: Image) -> State:
    """The state after the dreamed frame ``n``."""
    return State(n, frame, n, frame)


def resumed(checkpoint: Checkpoint, device: torch.device) -> State:
    """The state a checkpoint holds, on ``device``."""
    frame = checkpoint.frame.to(device)
    if checkpoint.dreamed is None:
        return dreamed(checkpoint.index, frame)
    a, dream = checkpoint.dreamed
    return State(checkpoint.index, frame, a, dream.to(device))


class Cadenced:
    """Frame n from the state after frame n-1, with the dreamer's step and camera."""

    def __init__(self, dreamer):
        self.dreamer, self.schedule = dreamer, getattr(dreamer, "schedule", None)  # None: every frame dreamed

    def make(self, n: int, state: State | None) -> State:
        if n == 0:
            return dreamed(0, self.dreamer.first_frame())
        if state is None or state.index != n - 1:
            raise ValueError(f"frame {n} needs the state after frame {n - 1}")
        a = state.dreamed
        b, dream = state.ahead if state.ahead is not None else (next_dreamed(self.schedule, a), None)
        if dream is None:  # dream b, once (b == a + 1: the plain step from frame n-1, as without cadence)
            dream = self.dreamer.next_frame(state.dream, b) if b == a + 1 else self.dreamer.next_frame(state.dream, b, a)
        if n == b:
            return dreamed(n, dream)
        return State(n, self.between(state.dream, a, dream, b, n), a, state.dream, (b, dream))

    def between(self, first: Image, a: int, second: Image, b: int, n: int) -> Image:
        """Frame ``n`` (a < n < b) from the dreamed frames a and b (see the module doc)."""
        motion = self.dreamer.motion
        forward = motion.carried(first, a, n)
        back, inside = motion.carried_back(second, b, n)
        return torch.lerp(forward, back, inside * ((n - a) / (b - a)))
