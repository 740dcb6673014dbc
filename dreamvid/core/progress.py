"""How long work reports progress: a callback receives :class:`Progress` records.

The library never prints; the CLI turns these records into a tqdm bar and warning lines,
a notebook into ``tqdm.auto``, the studio into events on a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    event: str  # "start" | "frame" | "checkpoint" | "warning" | "done"
    frame: int = 0  # frames (or tiles) finished so far (index of the last one + 1)
    total: int = 0
    start: int = 0  # first frame this run renders (> 0 when resuming)
    segment: int = 0
    message: str = ""


Callback = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """The default callback: report nothing."""


def warner(callback: Callback) -> Callable[[str], None]:
    """A function that reports a warning line through ``callback``."""
    return lambda message: callback(Progress("warning", message=message))
