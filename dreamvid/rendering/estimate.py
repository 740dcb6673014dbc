"""How long a render will take on this machine, before it starts (``validate --estimate``).

Two frames of the schedule's heaviest segment are dreamed at full size on the render's
device, with the render's own step (:class:`.step.Dreamer`: camera, dream, colour, mask);
the second one is timed (the first pays for warm-ups: cuDNN's kernel search, a compile, a
colour reference). Every frame's cost relative to that one comes from its parameters,

    cost(n) = iterations * (sum over octaves of the octave's share of the pixels) * depth

with ``depth`` the deepest layer's place in the network (1 for its last layer; a frame
without layers costs nothing to dream), so the estimate is the timed frame's seconds times
the sum of every frame's cost over the timed frame's. With a ``cadence`` only the dreamed
frames count (:mod:`dreamvid.schedule.cadence`): a frame between two dreams is two warps and a
blend, next to nothing beside a dream. The encoder runs beside the dream and is not counted. The peak memory is the GPU's peak allocation on CUDA, the process's peak
resident size on a CPU.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from dreamvid.core.errors import InputError
from dreamvid.engine.catalogue import split_layer_key
from dreamvid.engine.model import FeatureNet
from dreamvid.rendering.step import Dreamer
from dreamvid.schedule.cadence import is_dreamed
from dreamvid.schedule.schedule import FrameParams, Schedule


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole render, estimated
    frame_seconds: float  # the timed frame of the heaviest segment
    segment: int  # the heaviest segment
    frames: int  # frames in the schedule
    device: str  # what dreamed them
    peak_bytes: int  # GPU peak allocation (CUDA) or the process's peak resident size (CPU)

    def __str__(self) -> str:
        return (f"estimate: {duration(self.seconds)} for {self.frames} frames on {self.device} "
                f"({self.frame_seconds:.2f} s a frame in segment {self.segment}, the heaviest, dreamed at full size; "
                f"peak memory {self.peak_bytes / 2**30:.2f} GiB)")  # fmt: skip


def duration(seconds: float) -> str:
    """``2 h 05 min``, ``4 min 10 s``, ``12 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def frame_cost(p: FrameParams, order: list[str]) -> float:
    """Frame ``p``'s dreaming cost in arbitrary units (see the module doc)."""
    if not p.layers or p.iterations == 0:
        return 0.0
    pixels = sum(p.octave_scale ** (-2 * k) for k in range(p.octaves))
    deepest = max(order.index(split_layer_key(key)[0]) for key in p.layers) if order else 0
    return p.iterations * pixels * (deepest + 1) / max(1, len(order))


def heaviest_frame(schedule: Schedule, costs: list[float]) -> int:
    """The first frame (past frame 0) of the segment whose frames cost most on average."""
    best, first = -1.0, 1
    for seg in schedule.segments:
        share = costs[seg.start:seg.start + seg.frames]
        mean = sum(share) / len(share)
        if mean > best:
            best, first = mean, seg.start
    return max(1, min(first, schedule.total_frames - 2))


def estimate(schedule: Schedule, net: FeatureNet) -> Estimate:
    """Dream two frames of the heaviest segment and scale up (see the module doc). Needs at
    least 3 frames."""
    order = list(net.catalogue)
    costs = [frame_cost(schedule.params(n), order) if is_dreamed(schedule, n) else 0.0
             for n in range(schedule.total_frames)]  # fmt: skip
    if schedule.clip is None:
        costs[0] = 0.0  # an image's frame 0 is the input, not dreamed
    if schedule.total_frames < 3:
        raise InputError(f"{schedule.source}: {schedule.total_frames} frame(s); expected 3 or more to estimate "
                         "(render it: it takes no longer than the estimate)")  # fmt: skip
    n = heaviest_frame(schedule, costs)
    dreamer = Dreamer(schedule, net)
    cuda = dreamer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dreamer.device)
    try:
        frame = dreamer.first_frame()
        frame = dreamer.next_frame(frame, n)  # warm-up: kernels, a compile, colour references
        _sync(dreamer.device)
        t0 = time.perf_counter()
        dreamer.next_frame(frame, n + 1)
        _sync(dreamer.device)
        seconds = time.perf_counter() - t0
    finally:
        dreamer.close()
    timed = frame_cost(schedule.params(n + 1), order) or 1.0  # dreamed here even where the cadence skips it
    total = seconds * sum(costs) / timed
    peak = torch.cuda.max_memory_allocated(dreamer.device) if cuda else _peak_rss()
    return Estimate(total, seconds, schedule.segment_of(n + 1)[0], schedule.total_frames, str(dreamer.device), peak)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss() -> int:
    """The process's peak resident size in bytes (Linux and macOS; 0 elsewhere)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
