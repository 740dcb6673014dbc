"""The Ray side of :mod:`.batch` (optional: ``pip install 'dreamvid[ray]'``).

Each video is one Ray task running :func:`.worker.render_variant`, with ``num_gpus=1`` on a
cluster with GPUs (Ray then sets ``CUDA_VISIBLE_DEVICES``, so "cuda" is the task's GPU),
else ``cpus_per_video`` CPUs and as many torch threads. A task whose worker dies (node
lost, preempted, killed) is rerun by Ray (``max_retries``) and resumes from the video's
last checkpoint, which is why outputs and work folders must be on storage that every
node mounts at the same path. Errors inside a task are returned as results, not raised
(``retry_exceptions`` stays off: a bad input fails the same way every time).

Progress travels through one ``ray.util.queue.Queue`` actor on the driver's node (a node
that goes away must not take it along): tasks put their render start/frame/warning events,
the driver drains it between ``ray.wait`` polls. One small actor call per frame is
negligible next to a frame's seconds of dreaming. Progress is best effort; the results
come from the tasks themselves.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from dreamvid.batch import reach
from dreamvid.core.errors import InputError, first_line

POLL_S = 0.25


def require_ray():
    """The ray module, or a one-line error saying how to get it."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray, which is not installed; install it with: "
                         "pip install 'dreamvid[ray]' (or pip install 'ray>=2.9')") from None  # fmt: skip
    return ray


def connect(address: str, logs: bool = False):
    """Join the cluster at ``address`` ("auto": the one this machine belongs to), or start a
    private one with ``address == "local"``. Returns True when this call connected.

    Before joining, :func:`.reach.prepare` checks in seconds that a cluster answers there and
    takes its token where Ray keeps it; a missing or wrong token, or no cluster, is one line.
    Ray's own log lines (e.g. its notice that token authentication is enabled) stay out of
    dreamvid's output unless ``logs``: only its errors show."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    target = reach.prepare(address, logs)
    if address == "local":  # a private instance for this batch: no usage report
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    auth_error = getattr(ray.exceptions, "AuthenticationError", ())
    try:
        ray.init(address=None if address == "local" else target, include_dashboard=False,
                 log_to_driver=logs, logging_level="INFO" if logs else "ERROR")  # fmt: skip
    except ConnectionError as err:
        raise InputError(f"--ray {address}: no Ray cluster found ({first_line(err)}); start one with "
                         "`ray start --head`, or use --ray local for a private one on this machine") from None
    except auth_error:
        raise InputError(reach.token_problem(address)) from None
    return True


def disconnect() -> None:
    require_ray().shutdown()


@contextlib.contextmanager
def joined(address: str, logs: bool = False):
    """:func:`connect` for the duration of a ``with`` block, then :func:`disconnect`. Inside,
    Python's stdout is stderr: Ray prints its error messages (a node lost, a task retried,
    a raylet's last log lines) on ``sys.stdout`` from a driver thread, and stdout is where
    ``dreamvid batch`` prints its table, for scripts to read."""
    connected = connect(address, logs)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            yield
        finally:
            if connected:  # inside the redirect: shutdown joins the thread that prints
                disconnect()


def _remote_render(task: dict, queue) -> dict:
    import ray

    problem = node_problem(task, ray.util.get_node_ip_address())
    if problem:  # this node does not see the job's folder: fail at once, not deep in the render
        return {"status": "failed", "frames": 0, "error": problem}
    from dreamvid.batch.worker import render_variant

    def report(p) -> None:
        if p.event in ("start", "frame", "warning"):
            try:
                queue.put((task["name"], p))
            except ray.exceptions.RayError:  # the queue is gone (the batch is ending): the render goes on
                pass

    return render_variant(task, report)


def node_problem(task: dict, node: str) -> str:
    """Why the node ``node`` cannot render ``task`` here ('' when it can): the variant's
    schedule, written by the driver beside the video, must be seen and its folder written at
    the same path on every node (shared storage)."""
    schedule = Path(task["schedule"])
    shared = "expected the job's folders (job file, inputs, output) on storage every node mounts at the same path"
    if not schedule.is_file():
        return f"node {node} cannot see {schedule}; {shared}"
    if not os.access(schedule.parent, os.W_OK):
        return f"node {node} cannot write in {schedule.parent}; {shared}, writable"
    return ""


def run(tasks: list[dict], in_flight: int | None, retries: int, cpus_per_video: int, tracker) -> None:
    """Render ``tasks`` as Ray tasks (after :func:`connect`), at most ``in_flight`` at a time
    (default: all; Ray starts them as resources free up); progress and results go to ``tracker``."""
    ray = require_ray()
    from ray.util.queue import Queue

    gpus = ray.cluster_resources().get("GPU", 0) >= 1
    options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": cpus_per_video}
    options.update(max_retries=retries, retry_exceptions=False)
    remote = ray.remote(_remote_render)
    waiting = [{**t, "threads": 0 if gpus else cpus_per_video} for t in tasks]
    running: dict = {}  # ObjectRef -> video name
    stopping = False
    queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": _here(ray)})
    try:
        while waiting or running:
            try:
                while waiting and not stopping and len(running) < (in_flight or len(tasks)):
                    task = waiting.pop(0)
                    ref = remote.options(name=f"dreamvid {task['name']}", **options).remote(task, queue)
                    running[ref] = task["name"]
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                _drain(queue, tracker)
                for ref in ready:
                    tracker.finish(running.pop(ref), _result(ray, ref, stopping, retries))
            except KeyboardInterrupt:
                if stopping:
                    raise
                stopping = True  # the tasks stop at once; their last checkpoints stand
                tracker.emit("warning", message="stopping: cancelling the Ray tasks (their last checkpoints stand)")
                waiting.clear()
                for ref in running:
                    ray.cancel(ref)
        _drain(queue, tracker)
    finally:
        queue.shutdown()


def _here(ray):
    """A scheduling strategy for this (the driver's) node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _drain(queue, tracker) -> None:
    import ray
    from ray.util.queue import Empty

    try:
        n = queue.qsize()
        items = queue.get_nowait_batch(n) if n else []
    except (Empty, ray.exceptions.RayError):  # the queue's actor failed: the next poll tries again
        items = []
    for name, p in items:
        tracker.progress(name, p)


def _result(ray, ref, stopping: bool, retries: int) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return {"status": "interrupted", "frames": 0, "error": "cancelled"}
    except ray.exceptions.RayError as err:  # the worker died more than max_retries times, ...
        status = "interrupted" if stopping else "failed"
        return {"status": status, "frames": 0, "error": _failure(ray, err, retries)}


def _failure(ray, err: Exception, retries: int) -> str:
    """One line for a task that Ray reports failed (render_variant itself never raises)."""
    if isinstance(err, ray.exceptions.RayTaskError):  # raised outside the render, e.g. dreamvid missing on a node
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # Ray colours the task's name
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        node = re.search(r"\bip=([^,)\s]+)", text)
        hint = "; expected dreamvid installed on every node (docs/batch.md)" if "No module named 'dreamvid" in last else ""
        return f"{type(err).__name__}{f' on node {node[1]}' if node else ''}: {last}{hint}"
    if isinstance(err, ray.exceptions.WorkerCrashedError) or type(err).__name__ == "NodeDiedError":
        return (f"its worker died {retries + 1} times (killed, out of memory or its node lost; --retries {retries}); "
                "the frames of its last checkpoint are kept: rerun to resume")
    return f"{type(err).__name__}: {first_line(err, '')}"
