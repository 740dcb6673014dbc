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

The flow between source frames n-1 and n depends on the clip alone. The CPU methods
(:data:`.flow.HOST_METHODS`: ``dis``, ``farneback``) are computed from the clip's host frames
on any device, and on the devices in :data:`~dreamvid.core.defaults.FLOW_AHEAD_DEVICES` (CUDA)
one frame ahead, in one worker thread (:class:`FlowAhead`): frame n+1's source frame is read
and its flow computed while frame n dreams. The same function computes it in line or ahead,
so the frames are the same bit for bit; a failure in the worker (a clip that breaks off) is
raised by the frame that needs it; ``close()`` stops the worker. ``raft`` runs in line on the
render's device.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from dreamvid.core import defaults as D
from dreamvid.media.colourspace import is_hd
from dreamvid.media.read import ClipInfo, ClipReader
from dreamvid.pixels import flow
from dreamvid.pixels.images import to_device, to_tensor
from dreamvid.schedule.schedule import FrameParams, Schedule


class ClipFrames:
    """Source frames ``n`` of a clip, fitted to ``size``, as (1, 3, H, W) tensors on ``device``
    (:meth:`get`) or on the host (:meth:`host`).

    One ffmpeg stream is read forward; asking for a frame behind it (a resume, a preview)
    reopens the stream there. The last two frames are kept (frame n's start needs n-1 and n),
    and frame 0 (a ``colour_reference: frame1`` re-dream needs it), with their device copies.
    Safe to call from two threads (the render's and :class:`FlowAhead`'s).
    """

    def __init__(self, clip: ClipInfo, size: tuple[int, int], device: torch.device):
        self.clip, self.size, self.device = clip, size, torch.device(device)
        self._reader: ClipReader | None = None
        self._kept: dict[int, torch.Tensor] = {}  # host tensors
        self._first: torch.Tensor | None = None
        self._on_device: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # n -> (host tensor, its device copy)
        self._lock = threading.Lock()

    def get(self, n: int) -> torch.Tensor:
        """Frame ``n`` on the render's device (uploaded without waiting for the device)."""
        with self._lock:
            host = self._host(n)
            if self.device.type == "cpu":
                return host
            copy = self._on_device.get(n)
            if copy is None or copy[0] is not host:
                copy = (host, to_device(host, self.device))
            self._on_device = {k: v for k, v in self._on_device.items() if v[0] is self._kept.get(k)
                               or v[0] is self._first}  # fmt: skip
            self._on_device[n] = copy
            return copy[1]

    def host(self, n: int) -> torch.Tensor:
        """Frame ``n`` on the host, as decoded and fitted."""
        with self._lock:
            return self._host(n)

    def _host(self, n: int) -> torch.Tensor:
        if n == 0 and self._first is not None:
            return self._first
        if n in self._kept:
            return self._kept[n]
        if n == 0 and self._reader is not None and self._reader.position > 1:  # keep the stream where it is
            with ClipReader(self.clip, self.size, start=0) as once:
                self._first = to_tensor(next(once))
            return self._first
        if self._reader is None or self._reader.position > n:
            self._end_stream()
            self._reader = ClipReader(self.clip, self.size, start=n)
        while self._reader.position <= n:
            index = self._reader.position
            image = next(self._reader)
            if index >= n - 1:
                self._kept = {k: v for k, v in self._kept.items() if k >= index - 1}
                self._kept[index] = to_tensor(image)
        if n == 0:
            self._first = self._kept[0]
        return self._kept[n]

    def close(self) -> None:
        with self._lock:
            self._end_stream()

    def _end_stream(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


Flows = tuple[torch.Tensor, torch.Tensor]  # (backward, forward) between source frames n-1 and n (flow.flows)


class FlowAhead:
    """One worker thread that runs ``job(*args)`` for the next frame while this one dreams.

    :meth:`take` gives the job's result for ``key``: the one computed ahead when it was for
    ``key``, else it runs it in the worker now and waits (so the worker is the only thread
    that runs jobs: an OpenCV flow object is never used by two threads at once). A job's error
    is raised by the :meth:`take` that asks for its key; a job computed ahead and not asked for
    is dropped. The thread starts with the first job; :meth:`close` waits for a running job
    and ends the thread.
    """

    def __init__(self, job):
        self.job = job
        self._worker: ThreadPoolExecutor | None = None
        self._ahead: tuple[object, Future] | None = None  # (key, its job's future)

    def take(self, key, *args):
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == key:
            return ahead[1].result()
        if ahead is not None:
            ahead[1].cancel()  # a job not started yet is dropped; a running one ends before the next starts
        return self._submit(args).result()

    def prefetch(self, key, *args) -> None:
        """Start ``job(*args)`` now, to be taken with ``key``."""
        if self._ahead is not None:
            self._ahead[1].cancel()
        self._ahead = (key, self._submit(args))

    def _submit(self, args: tuple) -> Future:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamvid-flow")
        return self._worker.submit(self.job, *args)

    def close(self) -> None:
        """Drop the job ahead, wait for a running one, end the thread. Idempotent."""
        worker, self._worker, self._ahead = self._worker, None, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)


def flow_ahead(device: torch.device | str) -> bool:
    """Whether a render on ``device`` computes its clip's CPU flow one frame ahead
    (:data:`~dreamvid.core.defaults.FLOW_AHEAD_DEVICES`)."""
    return torch.device(device).type in D.FLOW_AHEAD_DEVICES


class VideoStart:
    """Where each frame of a video-input render starts (see the module doc).

    ``ahead``: compute the CPU flow one frame ahead in a thread (default: :func:`flow_ahead`).
    """

    def __init__(self, schedule: Schedule, size: tuple[int, int], device: torch.device, ahead: bool | None = None):
        self.schedule, self.device = schedule, device
        self.frames = ClipFrames(schedule.clip, size, device)
        self.ahead = flow_ahead(device) if ahead is None else ahead
        self._flows: dict[str, flow.FlowFn | None] = {}
        self._worker = FlowAhead(self._host_flows) if self.ahead else None

    def source(self, n: int) -> torch.Tensor:
        return self.frames.get(n)

    def start(self, n: int, previous: torch.Tensor | None, p: FrameParams) -> flow.Start:
        """Frame ``n``'s start image, and the target and mask of its temporal term."""
        if n == 0:
            source = self.source(0)
            self._prefetch(1)
            return flow.Start(source, source, torch.zeros_like(source[:, :1]))
        flows = self._source_flows(n, p.flow)
        prev_source, source = self.source(n - 1), self.source(n)
        self._prefetch(n + 1)  # after taking frames n-1 and n: the worker reads n+1
        return flow.start_image(source, prev_source, previous, p.flow_blend, flows)

    def _source_flows(self, n: int, name: str) -> Flows | flow.FlowFn | None:
        """The flows between source frames n-1 and n (host methods), or the method that
        computes them on the device (``raft``), or None (``none``)."""
        fn = self._flow(name)  # made in this thread: an error in making it is this frame's
        if name not in flow.HOST_METHODS:
            return fn
        if self._worker is None:
            backward, forward = self._host_flows(n, fn)
        else:
            backward, forward = self._worker.take((n, name), n, fn)
        return to_device(backward, self.frames.device), to_device(forward, self.frames.device)

    def _host_flows(self, n: int, fn: flow.FlowFn) -> Flows:
        """(backward, forward) between source frames n-1 and n, from their host copies, by
        ``fn`` (a host method): the one function for in line and ahead."""
        return flow.flows(fn, self.frames.host(n), self.frames.host(n - 1))

    def _prefetch(self, n: int) -> None:
        if self._worker is None or n >= self.schedule.total_frames:
            return
        name = self.schedule.params(n).flow
        if name in flow.HOST_METHODS:
            self._worker.prefetch((n, name), n, self._flow(name))

    def _flow(self, name: str) -> flow.FlowFn | None:
        if name not in self._flows:
            self._flows[name] = flow.flow_method(name, weights=self.schedule.flow_weights_path, device=self.device)
        return self._flows[name]

    def close(self) -> None:
        """Stop the flow's worker (waiting for a running flow), then end the clip's stream."""
        try:
            if self._worker is not None:
                self._worker.close()
        finally:
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
