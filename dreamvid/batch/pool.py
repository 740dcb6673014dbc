"""Local worker processes for a batch: each renders one video at a time.

N processes (one per GPU, or sharing the CPU cores), started with ``spawn`` so that none
inherits torch threads or CUDA state. A worker that dies by a signal is restarted on the
same video, which resumes from its last checkpoint. Ctrl-C asks every worker to finish its
frame and checkpoint (SIGTERM); a second Ctrl-C kills them.
"""

from __future__ import annotations

import os
import signal
from collections import deque

from dreamvid.batch.worker import render_variant
from dreamvid.core.stop import StopRequest


def local_plan(workers: int | None, videos: int) -> tuple[int, list[str | None], int]:
    """(workers, device per worker, torch threads per worker) for ``videos`` on this machine."""
    import torch

    gpus = torch.cuda.device_count()
    n = max(1, min(workers or max(1, gpus), videos))
    devices = [f"cuda:{i % gpus}" for i in range(n)] if gpus > 1 else [None] * n
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return n, devices, max(1, cores // n)


def run(tasks: list[dict], workers: int | None, retries: int, tracker) -> None:
    """Render ``tasks`` with local worker processes; progress and results go to ``tracker``."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    n, devices, threads = local_plan(workers, len(tasks))
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited torch threads or CUDA state
    queue = deque({**t, "threads": threads} for t in tasks)
    pool = [_Worker(ctx, devices[i]) for i in range(n)]
    # While installed (main thread only), the first Ctrl-C only sets the flag: the loop acts on
    # it between two steps, so it never lands between a worker's result and its bookkeeping
    # (which left a finished worker counted as busy: a hang). A second one aborts at once.
    stopping, ctrl_c = False, StopRequest((signal.SIGINT,))
    ctrl_c.install()  # not on the main thread: Ctrl-C is not ours to catch
    try:
        for w in pool:
            w.give(queue.popleft())
        while any(w.task for w in pool):
            try:
                if ctrl_c() and not stopping:  # asked between two steps: no result is ever half-booked
                    stopping = True  # each worker checkpoints its open part and stops
                    tracker.emit("warning", message="stopping: each video finishes its frame and checkpoints "
                                                    "(Ctrl-C again to abort now)")  # fmt: skip
                    queue.clear()
                    for w in pool:
                        w.terminate()
                busy = [w for w in pool if w.task]
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.5)
                for w in busy:
                    _service(w, tracker, retries, queue, stopping)
            except KeyboardInterrupt:  # a second Ctrl-C (or one we could not catch): abort now
                for w in pool:
                    w.kill()
                raise
    finally:
        ctrl_c.restore()
        for w in pool:
            w.close()


def _service(w: _Worker, tracker, retries: int, queue: deque, stopping: bool) -> None:
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    stop = StopRequest((signal.SIGTERM,), second_aborts=False)  # the parent kills it to abort
    stop.install()
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
        result = render_variant(task, report, should_stop=stop, device=device)
        conn.send(("result", result))


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the batch process dies (it checkpoints and stops)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass
