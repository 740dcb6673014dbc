"""A video input in the render: its source frames, and where each frame's dream starts.

With ``input:`` a clip, frame n of the video is dreamed from the clip's frame n (fitted to
``size``), carrying the dream of frame n-1 along the clip's motion (docs/video.md)::

    start[0] = source[0]
    start[n] = (1 - flow_blend) * source[n] + flow_blend * warp(out[n-1])   (n >= 1)

with occluded and newly visible pixels taken from ``source[n]`` (:func:`dreamvid.pixels.flow.start_image`);
the camera move and the dream then run as for an image, and after every gradient step the
``temporal`` term pulls the image toward the previous dream carried onto this frame
(:func:`dreamvid.pixels.flow.pull_toward`). Colour control matches and blends toward ``source[n]``.

What frame n needs is ``out[n-1]`` (the checkpoint's frame) and source frames n-1 and n,
which :class:`ClipFrames` reads again from the clip (its stream position is the frame
index): so a resumed render, or ``preview --frame N``, starts exactly where it stood.
"""

from __future__ import annotations

import torch

from dreamvid.media.colourspace import is_hd
from dreamvid.media.read import ClipInfo, ClipReader
from dreamvid.pixels import flow
from dreamvid.pixels.images import to_tensor
from dreamvid.schedule.schedule import FrameParams, Schedule


class ClipFrames:
    """Source frames ``n`` of a clip, fitted to ``size``, as (1, 3, H, W) tensors on ``device``.

    One ffmpeg stream is read forward; asking for a frame behind it (a resume, a preview)
    reopens the stream there. The last two frames are kept (frame n's start needs n-1 and n),
    and frame 0 (a ``colour_reference: frame1`` re-dream needs it).
    """

    def __init__(self, clip: ClipInfo, size: tuple[int, int], device: torch.device):
        self.clip, self.size, self.device = clip, size, device
        self._reader: ClipReader | None = None
        self._kept: dict[int, torch.Tensor] = {}
        self._first: torch.Tensor | None = None

    def get(self, n: int) -> torch.Tensor:
        if n == 0 and self._first is not None:
            return self._first
        if n in self._kept:
            return self._kept[n]
        if n == 0 and self._reader is not None and self._reader.position > 1:  # keep the stream where it is
            with ClipReader(self.clip, self.size, start=0) as once:
                self._first = to_tensor(next(once), self.device)
            return self._first
        if self._reader is None or self._reader.position > n:
            self.close()
            self._reader = ClipReader(self.clip, self.size, start=n)
        while self._reader.position <= n:
            index = self._reader.position
            image = next(self._reader)
            if index >= n - 1:
                self._kept = {k: v for k, v in self._kept.items() if k >= index - 1}
                self._kept[index] = to_tensor(image, self.device)
        if n == 0:
            self._first = self._kept[0]
        return self._kept[n]

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


class VideoStart:
    """Where each frame of a video-input render starts (see the module doc)."""

    def __init__(self, schedule: Schedule, size: tuple[int, int], device: torch.device):
        self.schedule, self.device = schedule, device
        self.frames = ClipFrames(schedule.clip, size, device)
        self._flows: dict[str, flow.FlowFn | None] = {}

    def source(self, n: int) -> torch.Tensor:
        return self.frames.get(n)

    def start(self, n: int, previous: torch.Tensor | None, p: FrameParams) -> flow.Start:
        """Frame ``n``'s start image, and the target and mask of its temporal term."""
        if n == 0:
            source = self.source(0)
            return flow.Start(source, source, torch.zeros_like(source[:, :1]))
        prev_source, source = self.source(n - 1), self.source(n)
        return flow.start_image(source, prev_source, previous, p.flow_blend, self._flow(p.flow))

    def _flow(self, name: str) -> flow.FlowFn | None:
        if name not in self._flows:
            self._flows[name] = flow.flow_method(name, weights=self.schedule.flow_weights_path, device=self.device)
        return self._flows[name]

    def close(self) -> None:
        self.frames.close()


def notices(clip: ClipInfo | None) -> list[str]:
    """What a render says about its clip before it starts: a variable frame
    rate (resampled), a damaged clip (ffmpeg's first decoding error; the frames that decode are
    used), an HD clip with no colour tags (:func:`colour_notices`)."""
    if clip is None:
        return []
    out = []
    if clip.variable_rate:
        out.append(f"{clip.path.name}: variable frame rate: resampled to a constant {clip.fps} fps, its average "
                   f"({clip.source_frames} frames decoded, {clip.frames} after resampling; frames are repeated or "
                   "dropped so that frame i shows the clip at time i / fps)")
    if clip.warning:
        out.append(f"{clip.path.name}: ffmpeg reports a decoding error ({clip.warning}); the {clip.frames} frames "
                   "that decode are used")
    return out + colour_notices(clip)


def colour_notices(clip: ClipInfo | None) -> list[str]:
    """A note on an HD clip without colour tags (``validate`` says it too): it is decoded with
    BT.709, as players decode it, which is right unless it was made with another matrix."""
    if clip is None or not (clip.tags.untagged and is_hd(clip.size)):
        return []
    return [(f"{clip.path.name}: no colour tags: decoded with the BT.709 matrix, as players decode untagged HD "
             f"video ({clip.width}x{clip.height}); if its colours look off, export it with colour tags")]


def moved(start: flow.Start, move) -> flow.Start:
    """``start`` with the camera move applied to its image, target and mask alike."""
    return flow.Start(move(start.image), move(start.target), move(start.valid))


def after_step(start: flow.Start, strength: float):
    """The temporal term for :func:`.ascent.dream` (None when there is nothing to pull)."""
    return flow.pull_toward(start, strength) if strength else None
