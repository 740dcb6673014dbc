"""Many videos from one job file, rendered in parallel: the driver.

The unit of parallel work is the video (its frames depend on each other). Locally, worker
processes each render one video at a time (:mod:`.pool`); with Ray, every video is one Ray
task (:mod:`.cluster`). Both run :func:`.worker.render_variant`. Job files, variants and the
done-markers that say which videos are finished: :mod:`.jobs`.

The library reports through ``callback(BatchProgress)``; only the CLI prints.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dreamvid.batch import pool
from dreamvid.batch.jobs import Variant, is_finished, write_schedule_file

RETRIES = 3  # restarts of a video whose worker died (node lost, preempted, killed)


@dataclass
class VideoResult:
    name: str
    output: Path
    status: str = "not started"  # done | failed | skipped | interrupted | not started
    frames: int = 0  # frames of the video that exist (all of them when done or skipped)
    total: int = 0
    seconds: float = 0.0  # time spent on it in this batch run (from its first start to its result, retries included)
    rendered: int = 0  # frames dreamed in this batch run (0 for a video that was only joined)
    fps: float | None = None  # frames per second after the run's first frame (which loads and compiles)
    error: str = ""  # one line, for failed videos
    attempts: int = 0  # worker runs (> 1: it was retried)
    resumed_from: int = 0  # first frame the last run rendered (> 0: resumed from a checkpoint)


@dataclass(frozen=True)
class BatchProgress:
    event: str  # "start" | "video" (one starts) | "frame" | "retry" | "finished" | "warning" | "done"
    name: str = ""  # the video, for per-video events
    videos_done: int = 0  # finished, failed or skipped
    videos_total: int = 0
    frames_done: int = 0  # over the videos being rendered (skipped ones do not count)
    frames_total: int = 0
    message: str = ""
    result: VideoResult | None = None


BatchCallback = Callable[[BatchProgress], None]


def _ignore(_: BatchProgress) -> None:
    pass


# --------------------------------------------------------------------------- the driver


class Tracker:
    """Turns workers' render.Progress events and results into BatchProgress and results."""

    def __init__(self, variants: list[Variant], todo: list[Variant], callback: BatchCallback):
        self.callback = callback
        self.results = {v.name: VideoResult(v.name, v.output, total=v.schedule.total_frames) for v in variants}
        for v in variants:
            if v not in todo:
                r = self.results[v.name]
                r.status, r.frames = "skipped", r.total
        self.frames = {v.name: 0 for v in todo}
        self.totals = {v.name: v.schedule.total_frames for v in todo}
        self.reason: dict[str, str] = {}
        self.started: dict[str, float] = {}  # when each video's first run started (this process's clock)
        self.emit("start")

    def emit(self, event: str, name: str = "", message: str = "", result: VideoResult | None = None) -> None:
        done = sum(r.status in ("done", "failed", "skipped") for r in self.results.values())
        self.callback(BatchProgress(event, name, done, len(self.results), sum(self.frames.values()),
                                    sum(self.totals.values()), message, result))  # fmt: skip

    def progress(self, name: str, p) -> None:
        r = self.results[name]
        if p.event == "start":
            self.started.setdefault(name, time.monotonic())
            r.attempts += 1
            r.resumed_from = p.start
            self.frames[name] = p.start
            if r.attempts > 1:
                why = self.reason.pop(name, "its worker was restarted")
                self.emit("retry", name, f"{name}: {why}; resuming at frame {p.start} (attempt {r.attempts})")
            else:
                self.emit("video", name, f"{name}: resuming at frame {p.start}" if p.start else "")
        elif p.event == "frame":
            self.frames[name] = p.frame
            r.rendered += 1
            self.emit("frame", name)
        elif p.event == "warning":
            self.emit("warning", name, f"{name}: {p.message}")

    def lost(self, name: str, why: str) -> None:
        """A worker died; the runner restarts it (the next start event reports the retry)."""
        self.reason[name] = why

    def finish(self, name: str, result: dict) -> None:
        r = self.results[name]
        r.status, r.error = result["status"], result.get("error", "")
        r.attempts = max(r.attempts, 1)
        # measured here, from the first start: also right for runs that were cancelled or died
        r.seconds = time.monotonic() - self.started[name] if name in self.started else result.get("seconds", 0.0)
        r.fps = result.get("fps")
        if r.status == "done":
            r.frames = self.frames[name] = r.total
        else:
            r.frames = max(result.get("frames", 0), self.frames[name])
            if r.status == "failed":  # the bar's total no longer waits for frames that will not come
                self.totals[name] = self.frames[name]
        self.emit("finished", name, result=r)


def plan(variants: list[Variant]) -> tuple[list[Variant], list[Variant]]:
    """(to render, already finished)."""
    todo, finished = [], []
    for v in variants:
        (finished if is_finished(v.schedule) else todo).append(v)
    return todo, finished


def run(
    variants: list[Variant],
    *,
    workers: int | None = None,
    ray: str | None = None,
    retries: int = RETRIES,
    cpus_per_video: int = 1,
    job: Path | None = None,
    ray_logs: bool = False,
    callback: BatchCallback = _ignore,
) -> list[VideoResult]:
    """Render every unfinished variant; returns one result per variant, in order.

    Without ``ray``: ``workers`` processes on this machine (default: one per GPU, else 1),
    each with ``cores // workers`` torch threads on the CPU. With ``ray`` ("auto", an
    address or "local"): one Ray task per video, ``num_gpus=1`` on clusters with GPUs,
    else ``cpus_per_video`` CPUs; at most ``workers`` in flight when given. Outputs and
    work folders must then be on storage every node mounts at the same path. Ray is not
    started when nothing is left to render; its own log lines show only with ``ray_logs``.
    """
    if ray is not None:
        from dreamvid.batch import cluster

        cluster.require_ray()  # before writing anything: no Ray -> one-line error
    todo, _ = plan(variants)
    use_ray = bool(todo) and ray is not None  # no cluster is joined when nothing is left to render
    # joined() before writing anything: no cluster -> one-line error
    with cluster.joined(ray, logs=ray_logs) if use_ray else contextlib.nullcontext():
        for v in variants:
            write_schedule_file(v, job)
        tracker = Tracker(variants, todo, callback)
        tasks = [{"name": v.name, "schedule": str(v.schedule_file), "threads": 0} for v in todo]
        if tasks and ray is None:
            pool.run(tasks, workers, retries, tracker)
        elif tasks:
            cluster.run(tasks, workers, retries, cpus_per_video, tracker)
    tracker.emit("done")
    return list(tracker.results.values())
