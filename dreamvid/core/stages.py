"""Where a frame's time goes, stage by stage, when someone asks (``dreamvid bench``).

The render path marks its stages with ``with stage("dream"):``. Nothing is timed unless a
:class:`StageTimer` is active in this thread (:func:`timing`, as ``dreamvid bench`` uses it):
then each stage's wall time adds to the timer's total for its name. Without one a stage
costs a context-variable read, and never makes the host wait for a device: on CUDA the
timer's ``sync`` (``torch.cuda.synchronize``, given by the bench) runs only while a timer
is active, so the queued work lands in the stage that queued it.

The stage names, in a frame's order, are :data:`STAGES`. A stage inside another counts for
the inner one alone, so the stages add up to the time they cover.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

STAGES = (
    "camera",  # the previous frame moved by the camera (with a clip: the warped start moved)
    "flow",  # a clip's frame, its optical flow and the flow-warped previous frame
    "dream",  # gradient ascent (and the NaN/inf check it queues)
    "colour_reference",  # a colour reference's statistics, when a frame needs a new one
    "colour_match",  # colour: histogram or lab
    "saturation_match",
    "blend",  # input_blend and smoothing
    "clip_guard",
    "mask",
    "to_uint8",  # the frame as HxWx3 uint8 on the host (on CUDA the copy and its wait)
    "encoder",  # handing the frame to the encoder's queue (waiting when it is full)
    "frame_file",  # the frame kept on disk (.npy, fsynced)
    "peek",  # the peek JPEG, now and then
    "checkpoint",  # a checkpoint, where a part closes
)

_ACTIVE: contextvars.ContextVar[StageTimer | None] = contextvars.ContextVar("dreamvid_stage_timer", default=None)


class StageTimer:
    """Seconds per stage name, summed over the stages run while it is active: wall time
    (``seconds``) and this process's CPU time (``cpu_seconds``, all its threads: steadier than
    wall time on a busy machine, when torch runs one thread)."""

    def __init__(self, sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.process_time):  # fmt: skip
        self.sync = sync or (lambda: None)
        self.clock, self.cpu_clock = clock, cpu_clock
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._open: list[list[float]] = []  # the stages running now, outermost first

    def reset(self) -> None:
        self.seconds, self.cpu_seconds = {}, {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time ``name``; a stage inside it (a colour reference dreamed again on a resume) counts
        for the inner stage only, so the stages still add up to the frame."""
        self.sync()
        start, cpu = self.clock(), self.cpu_clock()
        inner = [0.0, 0.0]  # wall and CPU seconds of the stages inside this one
        self._open.append(inner)
        try:
            yield
        finally:
            self.sync()
            self._open.pop()
            wall, used = self.clock() - start, self.cpu_clock() - cpu
            self.seconds[name] = self.seconds.get(name, 0.0) + wall - inner[0]
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + used - inner[1]
            if self._open:
                self._open[-1][0] += wall
                self._open[-1][1] += used


@contextlib.contextmanager
def timing(timer: StageTimer) -> Iterator[StageTimer]:
    """Time this thread's stages into ``timer`` inside the ``with`` block."""
    token = _ACTIVE.set(timer)
    try:
        yield timer
    finally:
        _ACTIVE.reset(token)


def stage(name: str) -> contextlib.AbstractContextManager:
    """Mark a stage of the frame (a no-op unless a :class:`StageTimer` is active in this thread)."""
    timer = _ACTIVE.get()
    return contextlib.nullcontext() if timer is None else timer.stage(name)
