"""Many videos from one job file: variants of a schedule, rendered in parallel.

A job file fans a base schedule out into variants (every combination of the lists)::

    schedule: logo.yaml                  # the base schedule (relative to this file)
    output: out                          # folder for the videos (default: out)
    inputs: [a.png, b.png]               # relative to this file, or "noise"
    sizes: [[1920, 1080], [1080, 1920], "1080x1080"]
    seed: [0, 1]                         # any schedule key, as a list of values
    defaults.zoom: [1.02, 1.04]          # dotted paths reach nested keys (segments.1.zoom too)

or simply lists schedule files (``schedules: [a.yaml, b.yaml]``, or a bare YAML list).
Each variant is named from what varies (``b_1080x1920_seed1_zoom1.04``) and renders to
``<output>/<name><ext>``; its work folder is render's usual ``<video>.parts/``, and its
resolved schedule is written to ``<output>/<name>.yaml`` (absolute paths), so one variant
can be re-rendered or previewed alone with the ordinary commands.

The unit of parallel work is the video (its frames depend on each other). Locally, N
worker processes each render one video at a time (one per GPU, or sharing the CPU cores);
with Ray, every video is one Ray task (see :mod:`._ray`). A worker that dies by a signal
is restarted and resumes the video from its last checkpoint; a video that fails with an
error fails alone.

"Finished" is known from a done-marker ``<video>.done`` (JSON) that the worker writes
after the render returned: it records the fingerprint of everything the video depends on
(input content, size, fps, seed, model, encoder, audio, every frame's parameters) and the
video's size in bytes. A variant is skipped when the marker's fingerprint equals the
current one, the video exists with that size, and no work folder is left. So editing the
job or the base schedule re-renders exactly the variants it changes, and a video that was
deleted, replaced or is still being worked on is never mistaken for done.

The library reports through ``callback(BatchProgress)``; only the CLI prints.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import checkpoint as ckpt
from .errors import DreamvidError, InputError
from .files import write_atomic
from .schedule import NOISE, Schedule, ScheduleError, ScheduleSpec, _read_yaml, parse_schedule

JOB_KEYS = ("schedule", "schedules", "output", "inputs", "sizes")
PATH_KEYS = ("input", "output", "audio", "model_weights")  # schedule keys holding paths
RETRIES = 3  # restarts of a video whose worker died (node lost, preempted, killed)
# Test-only hook: a marker file path. The first worker to reach a checkpoint creates it
# (writing its video's name) and SIGKILLs itself, so tests can kill a worker mid-render.
TEST_KILL_ENV = "DREAMVID_TEST_KILL_AFTER_CHECKPOINT"


@dataclass(frozen=True)
class Variant:
    """One video of a batch: its name, parsed schedule and the data it was parsed from."""

    name: str
    schedule: Schedule
    data: dict  # the schedule as plain data, paths absolute: written to `schedule_file`

    @property
    def output(self) -> Path:
        return self.schedule.output_path

    @property
    def schedule_file(self) -> Path:
        return self.output.with_name(self.name + ".yaml")


@dataclass
class VideoResult:
    name: str
    output: Path
    status: str = "not started"  # done | failed | skipped | interrupted | not started
    frames: int = 0  # frames of the video that exist (all of them when done or skipped)
    total: int = 0
    seconds: float = 0.0
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


# ------------------------------------------------------------------------- job files


def load_job(path: str | os.PathLike) -> list[Variant]:
    """Read a job file and build and validate every variant before any work starts.

    Raises :class:`InputError` (a :class:`ScheduleError` for schedule problems) listing
    every problem, each naming the job file, the variant and the key.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise InputError(f"{name}: cannot read the job file ({reason}); expected a readable YAML file") from None
    job, problems = _read_yaml(text)  # the schedule loader's checks: duplicate keys, unsafe tags
    if problems:
        raise InputError("\n".join(f"{name}: {'.'.join(map(str, loc)) + ': ' if loc else ''}"
                                   f"{text.replace('schedule keys', 'job keys')}" for loc, text in problems))
    if isinstance(job, list):
        job = {"schedules": job}
    if not isinstance(job, dict):
        raise InputError(f"{name}: expected a mapping with schedule (or schedules), inputs, sizes, ... "
                         "or a list of schedule files")  # fmt: skip
    return _variants(job, path)


def _variants(job: dict, path: Path) -> list[Variant]:
    name, base = str(path), path.resolve().parent
    problems: list[str] = []
    bases = _schedule_files(job, name, base, problems)
    out = _resolve(base, _opt_str(job, "output", name, problems) or "out")
    axes = _axes(job, name, base, problems)  # [(job key, key path, [(label, value)])]
    if problems:
        raise InputError("\n".join(problems))

    variants, messages, seen = [], [], {}
    for schedule_file, data in bases:
        for combo in itertools.product(*(values for _, _, values in axes)):
            labels = ([schedule_file.stem] if len(bases) > 1 else []) + [label for label, _ in combo]
            vname = _safe_name("_".join(labels) or schedule_file.stem)
            where = f"{name}: variant {vname}"
            vdata, bad = _apply(data, [(key, value) for (_, key, _), (_, value) in zip(axes, combo)], where)
            if bad:
                messages += bad
                continue
            ext = Path(str(vdata.get("output", "video.mp4"))).suffix or ".mp4"
            vdata["output"] = str(out / (vname + ext))
            _absolute_paths(vdata, schedule_file.parent)
            try:
                schedule = parse_schedule(vdata, source=schedule_file)
            except ScheduleError as err:
                prefix = f"{schedule_file}: "
                messages += [f"{where} (from {schedule_file.name}): {m.removeprefix(prefix)}" for m in err.messages]
                continue
            if vname in seen:
                messages.append(f"{where}: the name is also that of an earlier variant ({seen[vname]}); expected "
                                "distinct names (input files with distinct stems, distinct schedule files)")
                continue
            seen[vname] = ", ".join([schedule_file.name] + [f"{key}={v!r}" for (key, _, _), (_, v) in zip(axes, combo)])
            variants.append(Variant(vname, schedule, vdata))
    if messages:
        raise ScheduleError(messages)
    return variants


def _schedule_files(job: dict, name: str, base: Path, problems: list[str]) -> list[tuple[Path, dict]]:
    """The base schedules, each as (absolute path, raw data)."""
    if ("schedule" in job) == ("schedules" in job):
        problems.append(f"{name}: expected exactly one of schedule (a file) or schedules (a list of files)")
        return []
    values = [job["schedule"]] if "schedule" in job else job["schedules"]
    key = "schedule" if "schedule" in job else "schedules"
    if not isinstance(values, list) or not values:
        problems.append(f"{name}: {key}: got {values!r}; expected a non-empty list of schedule files")
        return []
    out = []
    for i, value in enumerate(values):
        loc = key if key == "schedule" else f"{key}[{i}]"
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name}: {loc}: got {value!r}; expected a schedule file path")
            continue
        file = _resolve(base, value)
        try:
            data, yaml_problems = _read_yaml(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{name}: {loc}: cannot read {file} ({getattr(err, 'strerror', None) or err}); "
                            "expected a readable schedule file (paths are relative to the job file)")
            continue
        if yaml_problems or not isinstance(data, dict):
            why = yaml_problems[0][1] if yaml_problems else "not a mapping"
            problems.append(f"{name}: {loc}: {file}: {why}; expected a schedule (dreamvid validate shows more)")
            continue
        out.append((file, data))
    return out


def _axes(job: dict, name: str, base: Path, problems: list[str]) -> list[tuple[str, tuple, list]]:
    """The lists to fan out over, in naming order: inputs, sizes, then other keys in file order."""
    axes = []
    for key, value in job.items():
        if key in ("schedule", "schedules", "output"):
            continue
        if not isinstance(value, list) or not value:
            problems.append(f"{name}: {key}: got {value!r}; expected a non-empty list of values")
            continue
        if key == "inputs":
            axes.append((0, key, ("input",), [_input(v, f"{name}: inputs[{i}]", base, problems)
                                              for i, v in enumerate(value)]))  # fmt: skip
        elif key == "sizes":
            axes.append((1, key, ("size",), [_size(v, f"{name}: sizes[{i}]", problems) for i, v in enumerate(value)]))
        else:
            loc = _key_path(str(key))
            if loc is None:
                known = [*JOB_KEYS, *ScheduleSpec.model_fields]
                hint = difflib.get_close_matches(str(key), known, n=1)
                why = "input, output and size are set by inputs, output and sizes" if key in PATH_KEYS + ("size",) \
                    else f"did you mean {hint[0]}?" if hint else "unknown key"
                problems.append(f"{name}: {key}: {why}; expected {', '.join(JOB_KEYS)} or a schedule key "
                                "(seed, fps, defaults.zoom, segments.0.frames, ...) with a list of values")
                continue
            last = next(str(k) for k in reversed(loc) if not isinstance(k, int))
            axes.append((2, key, loc, [(_label(last, v, i), v) for i, v in enumerate(value)]))
    axes.sort(key=lambda a: a[0])  # stable: other keys keep their file order
    return [(key, loc, values) for _, key, loc, values in axes]


def _key_path(key: str) -> tuple | None:
    """``defaults.zoom`` -> ("defaults", "zoom"); None unless it starts at a schedule key."""
    parts = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    if not parts or parts[0] not in ScheduleSpec.model_fields or parts[0] in PATH_KEYS + ("size",):
        return None
    return parts


def _input(value: Any, where: str, base: Path, problems: list[str]) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: got {value!r}; expected an image path (relative to the job file) or 'noise'")
        return "", ""
    if value == NOISE:
        return NOISE, NOISE
    path = _resolve(base, value)
    if not path.is_file():
        problems.append(f"{where}: file not found: {path}; expected an image file (relative to the job file)")
    return path.stem, str(path)


def _size(value: Any, where: str, problems: list[str]) -> tuple[str, Any]:
    if isinstance(value, str) and re.fullmatch(r"\d+x\d+", value.strip()):
        value = [int(v) for v in value.strip().split("x")]
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
        problems.append(f"{where}: got {value!r}; expected [width, height] or 'WIDTHxHEIGHT'")
        return "", value
    return f"{value[0]}x{value[1]}", value


def _label(key: str, value: Any, index: int) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return f"{key}{value}"
    return f"{key}{index + 1}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.+-]+", "-", text, flags=re.ASCII).strip("-.") or "video"


def _apply(data: dict, overrides: list[tuple[tuple, Any]], where: str) -> tuple[dict, list[str]]:
    """A deep copy of ``data`` with each (key path, value) set; problems for paths that do not fit."""
    data = json.loads(json.dumps(data, default=str))  # deep copy of plain YAML data
    problems = []
    for loc, value in overrides:
        node = data
        for i, part in enumerate(loc[:-1]):
            here = ".".join(map(str, loc[: i + 1]))
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    problems.append(f"{where}: {'.'.join(map(str, loc))}: the base schedule has no {here}; "
                                    "expected an index of an existing list item")  # fmt: skip
                    break
                node = node[part]
            else:
                if not isinstance(node, dict):
                    problems.append(f"{where}: {'.'.join(map(str, loc))}: {here} is not a mapping in the base "
                                    "schedule; expected a key path through mappings and list indices")  # fmt: skip
                    break
                node = node.setdefault(part, {})
        else:
            last = loc[-1]
            if isinstance(last, int) and not (isinstance(node, list) and last < len(node)):
                problems.append(f"{where}: {'.'.join(map(str, loc))}: no such list item in the base schedule; "
                                "expected an existing index")
            elif not isinstance(last, int) and not isinstance(node, dict):
                problems.append(f"{where}: {'.'.join(map(str, loc))}: its parent is not a mapping; expected a "
                                "key path through mappings")
            else:
                node[last] = value
    return data, problems


def _absolute_paths(data: dict, base: Path) -> None:
    """Make the schedule's paths absolute, so the data means the same from any folder."""
    for key in PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip() and not (key == "input" and value == NOISE):
            data[key] = str(_resolve(base, value))


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return Path(os.path.normpath((path if path.is_absolute() else base / path).absolute()))


def _opt_str(job: dict, key: str, name: str, problems: list[str]) -> str | None:
    value = job.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        problems.append(f"{name}: {key}: got {value!r}; expected a folder path (relative to the job file)")
        return None
    return value


# ---------------------------------------------------------------------- finished or not


def fingerprint(schedule: Schedule) -> str:
    """A hash of everything the finished video depends on (see the module docstring)."""
    total = schedule.total_frames
    what = {
        "settings": ckpt.global_settings(schedule),
        "audio": ckpt.file_digest(schedule.audio_path) if schedule.audio_path else None,
        "frames": total,
        "digests": ckpt.frame_digests(schedule, total - 1),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def done_marker(output: Path) -> Path:
    return output.with_name(output.name + ".done")


def is_finished(schedule: Schedule) -> bool:
    """The video exists, was completed for exactly this schedule, and nothing is left to do."""
    from .render import work_dir

    output = schedule.output_path
    try:
        marker = json.loads(done_marker(output).read_text())
        size = output.stat().st_size
    except (OSError, ValueError):
        return False
    if work_dir(output).exists() or not isinstance(marker, dict) or marker.get("bytes") != size:
        return False
    try:
        return marker.get("fingerprint") == fingerprint(schedule)
    except OSError:  # the input file went away: not finished for this schedule
        return False


def write_schedule_file(variant: Variant, job: Path | None = None) -> Path:
    """Write the variant's resolved schedule beside its video (only when it changed)."""
    path = variant.schedule_file
    source = f" from {job}" if job else ""
    text = (f"# variant {variant.name}, written by dreamvid batch{source}; edits are overwritten.\n"
            f"# Render or preview it alone: dreamvid render {path.name}\n")  # fmt: skip
    text += yaml.safe_dump(variant.data, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_atomic(path, text)
    return path


# ------------------------------------------------------------------------ the worker side


def render_variant(task: dict, report: Callable, *, should_stop: Callable[[], bool] = lambda: False,
                   device: str | None = None) -> dict:  # fmt: skip
    """Render one variant from its schedule file; runs in a worker process or a Ray task.

    ``task``: {"name", "schedule" (path of the resolved schedule), "threads" (torch threads
    or 0), "kill_marker" (test hook or None)}. ``report(render.Progress)`` carries progress.
    Never raises for a failing video: returns {"status", "frames", "start", "error"}.
    """
    from .images import read_image
    from .render import Interrupted, Progress, ScheduleChanged, render, work_dir
    from .schedule import load_schedule

    state = {"start": 0, "frame": 0, "t0": time.monotonic()}

    def result(status: str, error: str = "", frames: int | None = None) -> dict:
        return {"status": status, "frames": state["frame"] if frames is None else frames, "start": state["start"],
                "error": error, "seconds": time.monotonic() - state["t0"]}

    def callback(p: Progress) -> None:
        if p.event == "start":
            state["start"] = p.start
        state["frame"] = max(state["frame"], p.frame)
        report(p)
        if p.event == "checkpoint" and p.frame < p.total and task.get("kill_marker"):
            _test_kill_once(task["kill_marker"], task["name"])

    try:
        if task.get("threads"):
            import torch

            torch.set_num_threads(task["threads"])
        schedule = load_schedule(task["schedule"])
        if schedule.input_path is not None:
            read_image(schedule.input_path)  # a bad image fails now, not after loading the model
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


def _test_kill_once(marker: str, name: str) -> None:
    """Test hook: the first worker to get here records its video and dies by SIGKILL."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, name.encode())
    os.fsync(fd)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


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
        self.emit("start")

    def emit(self, event: str, name: str = "", message: str = "", result: VideoResult | None = None) -> None:
        done = sum(r.status in ("done", "failed", "skipped") for r in self.results.values())
        self.callback(BatchProgress(event, name, done, len(self.results), sum(self.frames.values()),
                                    sum(self.totals.values()), message, result))  # fmt: skip

    def progress(self, name: str, p) -> None:
        r = self.results[name]
        if p.event == "start":
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
        r.seconds = result.get("seconds", 0.0)  # the last run's, model loading included
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
    callback: BatchCallback = _ignore,
) -> list[VideoResult]:
    """Render every unfinished variant; returns one result per variant, in order.

    Without ``ray``: ``workers`` processes on this machine (default: one per GPU, else 1),
    each with ``cores // workers`` torch threads on the CPU. With ``ray`` ("auto", an
    address or "local"): one Ray task per video, ``num_gpus=1`` on clusters with GPUs,
    else ``cpus_per_video`` CPUs; at most ``workers`` in flight when given. Outputs and
    work folders must then be on storage every node mounts at the same path.
    """
    if ray is not None:
        from . import _ray

        connected = _ray.connect(ray)  # before writing anything: no Ray, no cluster -> one-line error
    try:
        for v in variants:
            write_schedule_file(v, job)
        todo, _ = plan(variants)
        tracker = Tracker(variants, todo, callback)
        kill_marker = os.environ.get(TEST_KILL_ENV) or None
        tasks = [{"name": v.name, "schedule": str(v.schedule_file), "threads": 0, "kill_marker": kill_marker}
                 for v in todo]  # fmt: skip
        if tasks and ray is None:
            _run_local(tasks, workers, retries, tracker)
        elif tasks:
            _ray.run(tasks, workers, retries, cpus_per_video, tracker)
    finally:
        if ray is not None and connected:
            _ray.disconnect()
    tracker.emit("done")
    return list(tracker.results.values())


# ------------------------------------------------------------------- local worker processes


def local_plan(workers: int | None, videos: int) -> tuple[int, list[str | None], int]:
    """(workers, device per worker, torch threads per worker) for ``videos`` on this machine."""
    import torch

    gpus = torch.cuda.device_count()
    n = max(1, min(workers or max(1, gpus), videos))
    devices = [f"cuda:{i % gpus}" for i in range(n)] if gpus > 1 else [None] * n
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return n, devices, max(1, cores // n)


def _run_local(tasks: list[dict], workers: int | None, retries: int, tracker: Tracker) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    n, devices, threads = local_plan(workers, len(tasks))
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited torch threads or CUDA state
    queue = deque({**t, "threads": threads} for t in tasks)
    pool = [_Worker(ctx, devices[i]) for i in range(n)]
    stopping = False
    try:
        for w in pool:
            w.give(queue.popleft())
        while any(w.task for w in pool):
            try:
                busy = [w for w in pool if w.task]
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
                for w in busy:
                    _service(w, tracker, retries, queue, stopping)
            except KeyboardInterrupt:
                if stopping:  # a second Ctrl-C: abort now, the last checkpoints stand
                    for w in pool:
                        w.kill()
                    raise
                stopping = True  # each worker checkpoints its open part and stops
                tracker.emit("warning", message="stopping: each video finishes its frame and checkpoints "
                                                "(Ctrl-C again to abort now)")  # fmt: skip
                queue.clear()
                for w in pool:
                    w.terminate()
    finally:
        for w in pool:
            w.close()


def _service(w: _Worker, tracker: Tracker, retries: int, queue: deque, stopping: bool) -> None:
    """Read what worker ``w`` sent; hand it the next video, or restart it if it died."""
    name = w.task["name"]
    try:
        while w.conn.poll():
            kind, payload = w.conn.recv()
            if kind == "progress":
                tracker.progress(name, payload)
            else:
                tracker.finish(name, payload)
                w.task = None
                if queue and not stopping:
                    w.give(queue.popleft())
                return
    except (EOFError, OSError):
        pass  # it died; the exit code says how
    if w.proc.is_alive():
        return
    code = w.proc.exitcode
    why = f"worker killed by {signal.Signals(-code).name}" if code and code < 0 else f"worker exited ({code})"
    if code is not None and code < 0 and w.attempts <= retries and not stopping:
        tracker.lost(name, why)
        w.restart()
    else:
        status = "interrupted" if stopping else "failed"
        tracker.finish(name, {"status": status, "frames": tracker.frames.get(name, 0), "error": why})
        w.task = None
        w.restart_idle()
        if queue and not stopping:
            w.give(queue.popleft())


class _Worker:
    """A child process that renders videos one after another (torch is imported once)."""

    def __init__(self, ctx, device: str | None):
        self.ctx, self.device = ctx, device
        self.task: dict | None = None
        self.attempts = 0
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker_main, args=(child, self.device), daemon=True)
        self.proc.start()
        child.close()

    def give(self, task: dict) -> None:
        self.task, self.attempts = task, 1
        try:
            self.conn.send(task)
        except OSError:  # it died between two videos: a fresh process takes this one
            self.restart_idle()
            self.conn.send(task)

    def restart(self) -> None:
        """Start a fresh process on the same video (it resumes from its last checkpoint)."""
        self.restart_idle()
        self.attempts += 1
        self.conn.send(self.task)

    def restart_idle(self) -> None:
        self.conn.close()
        self.proc.join()
        self._start()

    def terminate(self) -> None:
        if self.task and self.proc.is_alive():
            self.proc.terminate()  # SIGTERM: the worker stops after the frame, checkpointing

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _worker_main(conn, device: str | None) -> None:
    """A local worker process: render the tasks it is sent, report over ``conn``."""
    stop = {"requested": False}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("requested", True))
    _die_with_parent()

    def report(p) -> None:
        conn.send(("progress", p))

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = render_variant(task, report, should_stop=lambda: stop["requested"], device=device)
        conn.send(("result", result))


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the batch process dies (it checkpoints and stops)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass
