"""Which frames are dreamed: the schedule's ``cadence`` (docs/schedule.md#cadence).

Frame 0 is dreamed (an image input's frame 0 is the fitted input itself). From a dreamed frame
``a`` the next dreamed frame is ``a + cadence(a)`` (frame a's own cadence), clipped to the
schedule's last frame: so the last frame is always dreamed, and every frame between two dreamed
frames ``a < n < b`` has both. With cadence 1 everywhere (the default) every frame is dreamed.

The plan depends on the schedule alone (never on ``--frames`` or where a render started), so a
shorter render, a resumed one and a preview dream the same frames. Nothing here imports torch.
"""

from __future__ import annotations

import bisect
import weakref

_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # schedule -> its _Plan, extended as asked


class _Plan:
    """The dreamed frames of one schedule, found in order up to the frame asked about."""

    def __init__(self, schedule):
        self.schedule, self.last = schedule, schedule.total_frames - 1
        self.dreamed = [0]  # increasing

    def reach(self, n: int) -> None:
        """Find dreamed frames until one is at or past ``n``."""
        while self.dreamed[-1] < min(n, self.last):
            a = self.dreamed[-1]
            self.dreamed.append(min(a + self.schedule.params(a).cadence, self.last))


def every_frame(schedule) -> bool:
    """Whether every frame is dreamed (cadence 1 throughout, or a schedule that has no cadence)."""
    segments = getattr(schedule, "segments", ())
    return all(len(kf.points) == 1 and kf.points[0][1] == 1
               for kf in (getattr(seg, "cadence", None) for seg in segments) if kf is not None)  # fmt: skip


def _plan(schedule) -> _Plan:
    try:
        plan = _PLANS.get(schedule)
        if plan is None:
            plan = _PLANS[schedule] = _Plan(schedule)
    except TypeError:  # a stand-in that cannot be a weak dictionary key
        plan = _Plan(schedule)
    return plan


def around(schedule, n: int) -> tuple[int, int]:
    """``(a, b)``: the last dreamed frame at or before ``n`` and the first at or after it
    (``a == b == n`` when frame n is dreamed)."""
    if every_frame(schedule):
        return n, n
    plan = _plan(schedule)
    plan.reach(n)
    i = bisect.bisect_left(plan.dreamed, n)
    b = plan.dreamed[i]
    return (n, n) if b == n else (plan.dreamed[i - 1], b)


def is_dreamed(schedule, n: int) -> bool:
    """Whether frame ``n`` is dreamed (else it is a crossfade of the dreamed frames around it)."""
    a, _ = around(schedule, n)
    return a == n


def next_dreamed(schedule, a: int) -> int:
    """The dreamed frame after the dreamed frame ``a`` (``a`` before the schedule's last frame)."""
    return around(schedule, a + 1)[1]


def reach(schedule, n: int) -> int:
    """The last frame whose parameters frame ``n`` depends on (beside the frames before it): the
    first dreamed frame at or after ``n``."""
    return around(schedule, n)[1]


def clipped_end(schedule, n: int) -> bool:
    """Whether frame ``n`` is dreamed only because it is the schedule's last frame (its dreamed
    frame before it had a cadence that reaches past the end): appending frames changes it."""
    if every_frame(schedule) or n != schedule.total_frames - 1 or n == 0:
        return False
    a, _ = around(schedule, n - 1)
    return a + schedule.params(a).cadence != n


def dreamed_frames(schedule) -> list[int]:
    """Every dreamed frame of the schedule, in order."""
    if every_frame(schedule):
        return list(range(schedule.total_frames))
    plan = _plan(schedule)
    plan.reach(plan.last)
    return list(plan.dreamed)
