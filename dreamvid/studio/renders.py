"""Renders in the background: one process per video, watched by the studio.

Each render is ``python -m dreamvid.studio.job`` (see :mod:`.job`) in its own session, so a
Ctrl-C in the studio's terminal reaches the studio alone, which then stops each render the
way Ctrl-C stops ``dreamvid render``: one SIGINT finishes the frame and checkpoints, a
second aborts. A render outlives the browser; it does not outlive the studio (it stops when
its stdin, held by the studio, closes).

What the page lists comes from disk as much as from this process: a render is *running*
while its work folder's lease is held, by this studio or by a ``dreamvid render`` elsewhere
(:func:`dreamvid.rendering.lease.holder`), *stopped at frame N* when the work folder holds checkpoints
(:func:`dreamvid.rendering.workdir.last_saved_frame`), *done* when the video exists. So a restarted
studio, or a second tab, shows the same state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from dreamvid.studio.paths import Folder, Refused

RUNNING = ("starting", "running", "stopping")


@dataclass
class Job:
    """A render this studio started."""

    schedule: str  # its name in the folder
    output: Path
    proc: subprocess.Popen
    state: str = "starting"  # starting | running | stopping | done | stopped | failed
    frame: int = 0  # frames finished (index of the last one + 1)
    total: int = 0
    start: int = 0  # first frame of this run (> 0: resumed)
    fps: float | None = None
    eta: float | None = None  # seconds
    message: str = ""
    started: float = field(default_factory=time.time)
    ticks: deque = field(default_factory=lambda: deque(maxlen=20))  # (time, frame) of recent frames
    stderr: deque = field(default_factory=lambda: deque(maxlen=20))  # last lines the process wrote

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def to_json(self) -> dict:
        return {"state": self.state, "frame": self.frame, "total": self.total, "start": self.start,
                "fps": self.fps, "eta": self.eta, "message": self.message, "pid": self.proc.pid}  # fmt: skip


class Renders:
    """The renders this studio started, and the state of every schedule's render on disk."""

    def __init__(self, folder: Folder):
        self.folder = folder
        self.jobs: dict[Path, Job] = {}  # by output path
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change a page should see

    def changed(self) -> None:
        with self._lock:
            self.version += 1

    # -- starting and stopping --------------------------------------------------------------

    def start(self, name: str, schedule, *, fresh: bool = False) -> Job:
        """Render the schedule file ``name`` (parsed: ``schedule``) in a new process.
        Refused (409) while a render into the same output runs, here or elsewhere, with the
        message ``dreamvid render`` gives."""
        from dreamvid.rendering.lease import holder
        from dreamvid.rendering.workdir import work_dir

        if schedule.output_path is None:
            raise Refused(f"{name}: output: no output file; expected `output:` in the schedule")
        refusal = self.folder.output_refusal(name, schedule)
        if refusal:
            raise Refused(refusal, 422)
        output = schedule.output_path
        with self._lock:
            job = self.jobs.get(output)
            elsewhere = holder(work_dir(output))
            pid = job.proc.pid if job is not None and job.alive else elsewhere and elsewhere["pid"]
            if pid:
                raise Refused(f"{work_dir(output)}: another dreamvid (pid {pid}) is rendering into this folder; "
                              "wait for it to finish, or render to another output (-o)", 409)  # fmt: skip
            cmd = [sys.executable, "-m", "dreamvid.studio.job", str(self.folder.root / name), "--root",
                   str(self.folder.root)] + (["--fresh"] if fresh else [])  # fmt: skip
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=self.folder.root, start_new_session=True)  # fmt: skip
            job = Job(name, output, proc, total=schedule.total_frames)
            self.jobs[output] = job
            self.version += 1
        threading.Thread(target=self._follow, args=(job,), daemon=True, name=f"render-{proc.pid}").start()
        threading.Thread(target=self._drain, args=(job,), daemon=True, name=f"render-err-{proc.pid}").start()
        return job

    def stop(self, output: Path) -> Job:
        """Ask the render into ``output`` to stop as Ctrl-C does (finish the frame, checkpoint)."""
        job = self.jobs.get(output)
        if job is None or not job.alive:
            raise Refused("no render of this schedule is running in this studio", 409)
        if job.state != "stopping":
            job.state = "stopping"
            self.changed()
            _signal(job.proc, signal.SIGINT)
        return job

    def signal_all(self) -> int:
        """The studio is stopping: pass one SIGINT to every render (the first stops it after its
        frame with a checkpoint, a second aborts at once). Returns how many were running."""
        alive = [j for j in list(self.jobs.values()) if j.alive]
        for job in alive:
            job.state = "stopping"
            _signal(job.proc, signal.SIGINT)
        self.changed()
        return len(alive)

    def wait_all(self, timeout: float | None = None) -> bool:
        """Wait for every render to end; False if some still run after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in list(self.jobs.values()):
            try:
                job.proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    # -- following a render -----------------------------------------------------------------

    def _follow(self, job: Job) -> None:
        for line in job.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._event(job, event)
        code = job.proc.wait()
        with self._lock:
            if code == 0:
                job.state, job.message = "done", ""
            elif code == 130:
                job.state = "stopped"
            else:
                job.state = "failed"
                if not job.message:
                    last = (list(job.stderr) or [f"exit status {code}"])[-1]
                    job.message = f"the render process ended ({last})"
            job.eta = None
            self.version += 1

    def _event(self, job: Job, e: dict) -> None:
        with self._lock:
            kind = e.get("event")
            if kind == "start":
                job.state = "running" if job.state != "stopping" else job.state
                job.frame = job.start = e.get("start", 0)
                job.total = e.get("total", job.total)
                job.ticks.clear()
                job.ticks.append((e["time"], job.frame))
            elif kind in ("frame", "checkpoint"):
                job.frame, job.total = e.get("frame", job.frame), e.get("total", job.total)
                if kind == "frame":
                    job.ticks.append((e["time"], job.frame))
                    (t0, f0), (t1, f1) = job.ticks[0], job.ticks[-1]
                    if t1 > t0 and f1 > f0:
                        job.fps = (f1 - f0) / (t1 - t0)
                        job.eta = (job.total - job.frame) / job.fps
            elif kind == "warning":
                job.message = "warning: " + e.get("message", "")
            elif kind == "error":
                job.message = e.get("message", "")
            elif kind == "finished":
                job.frame = job.total
            self.version += 1

    def _drain(self, job: Job) -> None:
        for raw in job.proc.stderr:  # read it all, or a chatty process would block on a full pipe
            text = raw.decode(errors="replace").strip()
            if text:
                job.stderr.append(text[:300])

    # -- what the page lists ----------------------------------------------------------------

    def rows(self, schedules: list[tuple[str, object, str]]) -> list[dict]:
        """One row per schedule: ``(name, parsed schedule or None, problem)`` -> its render's state."""
        from dreamvid.rendering.lease import holder
        from dreamvid.rendering.workdir import last_saved_frame, work_dir

        out = []
        for name, schedule, problem in schedules:
            row: dict = {"schedule": name, "state": "invalid", "message": problem, "frame": 0, "total": 0,
                         "output": None, "video": None, "peek": None}  # fmt: skip
            out.append(row)
            if schedule is None:
                continue
            row["total"] = schedule.total_frames
            if schedule.output_path is None:
                row.update(state="no output", message="add `output:` to render")
                continue
            output = schedule.output_path
            if not self.folder.output_inside(schedule):  # its work folder is not ours to read
                row.update(state="outside", message=f"output outside this folder ({output}): Render says what to do")
                continue
            row["output"] = self.folder.name(output)
            if output.is_file():
                # the version as a string: JavaScript numbers would round the nanoseconds
                row["video"] = {"name": row["output"], "version": str(output.stat().st_mtime_ns)}
            work = work_dir(output)
            row["peek"] = _peek(work)
            job = self.jobs.get(output)
            if job is not None and (job.alive or job.state in RUNNING):
                row.update(job.to_json())
                continue
            elsewhere = holder(work)
            last = last_saved_frame(work)
            if elsewhere is not None:
                pid = elsewhere["pid"]
                row.update(state="running", message=f"rendering elsewhere (pid {pid})", pid=pid)
            elif last is not None:
                saved = last + 1
                row.update(state="stopped", frame=saved, message=f"stopped at frame {saved} of {schedule.total_frames}")
            elif row["video"]:
                row.update(state="done", frame=schedule.total_frames, message="")
            else:
                row.update(state="new", message="not rendered yet")
            if job is not None and job.state == "failed":
                row.update(state="failed", message=job.message)
        return out


def _peek(work: Path) -> dict | None:
    """The render's newest frame, as its work folder's peek JPEG shows it (a render started here
    or in a terminal): ``{frame, total, version}``, or None."""
    from dreamvid.rendering.workdir import peek_frame, peek_path

    path = peek_path(work)
    try:
        version = str(path.stat().st_mtime_ns)  # a string: JavaScript numbers would round the nanoseconds
    except OSError:
        return None
    found = peek_frame(path)
    return None if found is None else {"frame": found[0], "total": found[1], "version": version}


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
