"""One video of a batch, rendered in a worker: the function local workers and Ray tasks share.

A worker renders a variant from its resolved schedule file (see :mod:`.jobs`) and writes
the video's done-marker when the render returned. It never raises for a failing video: the
failure is its result, so one bad input fails alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from dreamvid.batch.jobs import done_marker, fingerprint
from dreamvid.core.errors import DreamvidError
from dreamvid.core.files import write_atomic


def render_variant(task: dict, report: Callable, *, should_stop: Callable[[], bool] = lambda: False,
                   device: str | None = None) -> dict:  # fmt: skip
    """Render one variant from its schedule file; runs in a worker process or a Ray task.

    ``task``: {"name", "schedule" (path of the resolved schedule), "threads" (torch threads
    or 0)}. ``report(progress.Progress)`` carries progress.
    Never raises for a failing video: returns {"status", "frames", "start", "error", "seconds",
    "fps"}. ``seconds`` is the whole run (model loading and compiling included); ``fps`` the
    speed from the end of the run's first frame to its last (the first, which loads and
    compiles the network, is not counted), None when the run made fewer than two frames.
    """
    from dreamvid.core.progress import Progress
    from dreamvid.pixels.images import read_image
    from dreamvid.rendering.loop import Interrupted, ScheduleChanged, render
    from dreamvid.rendering.workdir import work_dir
    from dreamvid.schedule.schedule import load_schedule

    state = {"start": 0, "frame": 0, "t0": time.monotonic()}
    speed = {"first": None, "frames": 0, "seconds": 0.0}  # frames after this run's first one, and their time

    def result(status: str, error: str = "", frames: int | None = None) -> dict:
        fps = speed["frames"] / speed["seconds"] if speed["frames"] and speed["seconds"] > 0 else None
        return {"status": status, "frames": state["frame"] if frames is None else frames, "start": state["start"],
                "error": error, "seconds": time.monotonic() - state["t0"], "fps": fps}  # fmt: skip

    def callback(p: Progress) -> None:
        if p.event == "start":
            state["start"] = p.start
            speed.update(first=None, frames=0, seconds=0.0)
        elif p.event == "frame":
            now = time.monotonic()
            if speed["first"] is None:
                speed["first"] = now  # the warm-up frame ends: loading and compiling are behind
            else:
                speed["frames"] += 1
                speed["seconds"] = now - speed["first"]
        state["frame"] = max(state["frame"], p.frame)
        report(p)

    try:
        if task.get("threads"):
            import torch

            torch.set_num_threads(task["threads"])
        schedule = load_schedule(task["schedule"])
        if schedule.input_path is not None and schedule.clip is None:
            read_image(schedule.input_path, video_too=True)  # a bad image fails now, not after loading the model
        output = schedule.output_path
        if device and schedule.device not in ("auto", "cuda"):
            device = None  # the schedule asked for a device itself
        done_marker(output).unlink(missing_ok=True)
        run = dict(device=device, callback=callback, should_stop=should_stop)
        try:
            render(schedule, **run)
        except ScheduleChanged:
            # The work folder belongs to an earlier version of this variant's schedule. (Only
            # then: a corrupt or unreadable work folder fails the video and keeps its files.)
            report(Progress("warning", message=f"the checkpoints in {work_dir(output)} do not fit the current "
                                               "schedule; starting this video over"))  # fmt: skip
            render(schedule, fresh=True, **run)
        marker = {"fingerprint": fingerprint(schedule), "bytes": output.stat().st_size,
                  "frames": schedule.total_frames, "schedule": str(task["schedule"])}  # fmt: skip
        write_atomic(done_marker(output), json.dumps(marker, indent=1) + "\n")
        return result("done", frames=schedule.total_frames)
    except Interrupted as err:
        return result("interrupted", str(err))
    except DreamvidError as err:
        return result("failed", _one_line(err))
    except Exception as err:  # noqa: BLE001 -- one failing video must not stop the others
        return result("failed", f"{type(err).__name__}: {_one_line(err)}")


def _one_line(err: Exception) -> str:
    lines = str(err).splitlines()
    more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
    return (lines[0] if lines else type(err).__name__) + more

