"""A render's work folder, ``<output>.parts/``: its lock, its parts and its leftovers.

The folder holds the encoded video parts, the open part's frames and the checkpoints (see
:mod:`.checkpoint`). One render at a time writes into it (:func:`exclusive`); what a killed
render left behind (parts and frames after the checkpoint being resumed, temp files) is
removed before work starts. :class:`Parts` writes the parts and checkpoints of one render.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .errors import InputError, describe_os_error
from .files import write_atomic

LOCK = "lock"  # in the work folder: the lease of the render writing there (see exclusive)
HEARTBEAT_S = 5.0  # the holder rewrites its lease this often
STALE_S = 30.0  # a lease seen unchanged this long belongs to a dead holder
OLD_S = 300.0  # a lease whose own time is this old is a dead holder's at first sight
WAIT_S = 45.0  # how long a render waits for a live holder before refusing (> STALE_S: a lost node is outwaited)
_SETTLE_S = 0.2  # after taking over a stale lease: re-read it, in case another render took it too
_WIDTH = 200  # a lease line's length: heartbeats rewrite it in place, one small write


def work_dir(output: Path) -> Path:
    """Where a render keeps its parts and checkpoints: ``<output>.parts/`` beside it."""
    return output.with_name(output.name + ".parts")


def make(work: Path) -> None:
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{describe_os_error(err)} (the work folder {work})") from None


@contextlib.contextmanager
def exclusive(work: Path, *, wait: float | None = None, stale: float | None = None,
              on_wait: Callable[[str], None] | None = None):  # fmt: skip
    """Hold the work folder's lease while rendering into ``work``.

    A second render into the same folder (another terminal, a batch started twice, a retry
    of a task whose node is lost) must not interleave parts and checkpoints. ``flock`` is not
    enough on shared storage: on NFS a dead node's lock outlives it. So the holder writes a
    lease, ``work/lock``: ``pid host boot-id time token checksum``, created atomically
    (``link``) and rewritten in place every :data:`HEARTBEAT_S` by a thread. Another render
    takes the lease over when its holder is dead: a process of this machine that is gone
    (at once), a lease whose time is :data:`OLD_S` old, or one it saw unchanged for ``stale``
    seconds (its own clock: clocks of nodes differ). It waits up to ``wait`` seconds for a
    live holder (``on_wait`` is told once), then refuses in one line.
    """
    wait = WAIT_S if wait is None else wait
    stale = STALE_S if stale is None else stale
    path, token = work / LOCK, secrets.token_hex(8)
    _acquire(path, token, wait, stale, on_wait)
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, token, done), name="dreamvid-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()
        holder = _read_lease(path)
        if holder is not None and holder["token"] == token:
            path.unlink(missing_ok=True)


def holder(work: Path) -> dict | None:
    """The live render holding ``work``'s lease (``{"pid", "host", ...}``), or None when none does:
    no lease, or its holder is dead (gone from this machine, or its lease time is :data:`OLD_S`
    old). Only reads: a render starting now is never refused because someone looked."""
    for _ in range(3):  # a heartbeat rewrites the line in place: a torn read is read again
        lease = _read_lease(work / LOCK)
        if lease is None:
            return None
        if "pid" in lease:
            return None if time.time() - lease["time"] > OLD_S or _gone_here(lease) else lease
        time.sleep(0.01)
    return {"pid": -1, "host": "?", "torn": lease["text"]}


def lease_line(pid: int, host: str, boot: str, when: float, token: str) -> str:
    """One lease: its fields, a checksum (a torn read is never trusted) and padding to a fixed width."""
    body = f"{pid} {host} {boot} {when:.3f} {token}"
    return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:12]}".ljust(_WIDTH - 1) + "\n"


def _read_lease(path: Path) -> dict | None:
    """The lease in ``path``: None when there is none, ``{"torn": text}`` when it does not check."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    fields = text.split()
    if len(fields) == 6 and hashlib.sha256(" ".join(fields[:5]).encode()).hexdigest()[:12] == fields[5]:
        pid, host, boot, when, token = fields[:5]
        if pid.isdigit():
            return {"pid": int(pid), "host": host, "boot": boot, "time": float(when), "token": token, "text": text}
    return {"torn": text, "text": text, "token": None}


def _this_machine() -> tuple[str, str]:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "-"
    return socket.gethostname().replace(" ", "_") or "-", boot


def _gone_here(holder: dict) -> bool:
    """The holder ran on this machine (same host and boot) and its process is gone (or a zombie)."""
    if (holder["host"], holder["boot"]) != _this_machine() or holder["boot"] == "-":
        return False
    try:
        state = Path(f"/proc/{holder['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _my_line(token: str) -> str:
    return lease_line(os.getpid(), *_this_machine(), time.time(), token)


def _acquire(path: Path, token: str, wait: float, stale: float, on_wait) -> None:
    deadline = time.monotonic() + wait
    seen, since, told = None, time.monotonic(), False
    while True:
        holder = _read_lease(path)
        text = holder and holder["text"]
        if text != seen:
            seen, since = text, time.monotonic()
        if holder is None:
            if _create(path, _my_line(token)):
                return
            continue
        dead = (time.monotonic() - since >= stale
                or ("pid" in holder and (time.time() - holder["time"] > OLD_S or _gone_here(holder))))  # fmt: skip
        if dead:
            try:
                write_atomic(path, _my_line(token), make_folder=False)
            except FileNotFoundError:  # the holder's cleanup removed our temp file: look again
                continue
            time.sleep(_SETTLE_S)
            mine = _read_lease(path)
            if mine is not None and mine["token"] == token:
                return
            continue
        who = f"pid {holder['pid']} on {holder['host']}" if "pid" in holder else "pid ?"
        if time.monotonic() >= deadline:
            raise InputError(f"{path.parent}: another dreamvid ({who}) is rendering into this folder; wait for it "
                             "to finish, or render to another output (-o)")  # fmt: skip
        if on_wait is not None and not told:
            told = True
            on_wait(f"another dreamvid ({who}) is rendering into {path.parent}; waiting up to {wait:.0f} s for it")
        time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))


def _create(path: Path, line: str) -> bool:
    """Create ``path`` holding ``line`` unless it exists, atomically (a hard link never
    replaces a file, on NFS too); False if it existed."""
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        tmp.write_text(line)
        os.link(tmp, path)
        return True
    except (FileExistsError, FileNotFoundError):  # taken, or our temp file was cleaned away: look again
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _heartbeat(path: Path, token: str, done: threading.Event) -> None:
    """Rewrite our lease's time every HEARTBEAT_S, in place, while it is ours."""
    while not done.wait(HEARTBEAT_S):
        try:
            holder = _read_lease(path)
            if holder is None or holder["token"] != token:
                return  # taken over (we were seen as dead), or the folder is gone: stop writing
            with open(path, "r+") as f:
                f.write(_my_line(token))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            continue  # a full disk or a network hiccup: the next beat tries again


def empty(work: Path) -> None:
    """``--fresh``: delete everything in the work folder but the lock we hold."""
    try:
        for p in work.iterdir():
            if p.name != LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    except OSError as err:
        raise InputError(f"{describe_os_error(err)} (the work folder {work})") from None


def drop_if_empty(work: Path) -> None:
    """Remove a work folder that holds no checkpoint: a render that failed before its first
    checkpoint leaves nothing behind (it had nothing to resume from)."""
    if work.is_dir() and not ckpt.list_checkpoints(work):
        shutil.rmtree(work, ignore_errors=True)


def clean(work: Path, state: dict | None) -> None:
    """Remove parts and frames written after the checkpoint we resume from (they are redone),
    and the temp files and folders (hidden names) a killed render left behind."""
    keep = {name for name, _, _ in state["parts"]} | {name for name, _ in state["pending"]} if state else set()
    for p in work.iterdir():
        if p.name.startswith((".", "part-", "frame-")) and p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def save_frame(folder: Path, work: Path, index: int, rgb: np.ndarray) -> tuple[str, str]:
    """Write frame ``index`` as it is (an ``.npy`` file: lossless and with no encoding cost on
    the render's thread; PNG took 10x longer than writing at 1080p) into ``folder``,
    atomically; returns its path relative to ``work`` and its SHA-256."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(rgb), allow_pickle=False)
    data = buf.getvalue()
    path = write_atomic(ckpt.frame_path(folder, index), data, make_folder=False)
    return str(path.relative_to(work)), hashlib.sha256(data).hexdigest()


def load_frame(work: Path, name: str) -> np.ndarray:
    return np.load(work / name, allow_pickle=False)


class Parts:
    """The parts and checkpoints of one render into ``work``, resumed from ``state``.

    Each frame goes into the open part's encoder and, losslessly, into a frame file as it
    is made, so no part is held in memory and a stop writes only a checkpoint naming those
    files. Parts close on ``every`` boundaries only. A render's last, shorter part (its
    *tail*) is encoded for the join but not recorded as a part: its frames stay pending,
    so a longer rerun resumes with the same boundaries, and the same encoder calls, as an
    uninterrupted render.

    ``read_only``: the folder holds frames beyond this render's end (a longer render was
    stopped there). Nothing there is then changed: this render's parts and frames go to a
    hidden folder inside, removed at the end, and it writes no checkpoint.
    """

    def __init__(self, work: Path, state: dict | None, upto: int, every: int, settings: dict, numerics: dict,
                 digests: Callable[[int], list[str]], new_writer: Callable[[Path], object], read_only: bool):  # fmt: skip
        self.work, self.every, self.settings, self.digests, self.new_writer = work, every, settings, digests, new_writer
        self.numerics = numerics  # what the frames' last bits depend on (checkpoint.numerics)
        self.closed = [tuple(p) for p in state["parts"]] if state else []
        pending = [tuple(p) for p in state["pending"]] if state else []
        self.first = (state["index"] + 1 if state else 0) - len(pending)  # the open part's first frame
        self.pending = pending[: upto + 1 - self.first]  # frames past the end are not this render's
        self.start = self.first + len(self.pending)  # the first frame to render
        newest = max((ckpt.index_of(p) for p in ckpt.list_checkpoints(work)), default=-1)
        self.saved = newest if read_only else self.start - 1  # the last frame saved in the work folder
        self.read_only = read_only
        self.folder = Path(tempfile.mkdtemp(prefix=".short-", dir=work)) if read_only else work
        self.writer = None
        self.tail: tuple | None = None
        self._encoded: list = []  # frame files of the part that just closed, dropped once a checkpoint has it
        if not read_only:
            clean(work, state)

    def add(self, n: int, rgb: np.ndarray) -> bool:
        """Encode frame ``n`` and keep it on disk; True when that closed a part."""
        self._open()
        self.writer.write(rgb)
        self.pending.append(save_frame(self.folder, self.work, n, rgb))
        if (n + 1) % self.every:
            return False
        self.closed.append((self._close(), self.first, n))
        self.first, self._encoded, self.pending = n + 1, self.pending, []
        return True

    def save(self, n: int, frame) -> int:
        """Checkpoint frame ``n`` (the closed parts and the pending frames hold frames 0..n);
        then drop the frame files a closed part no longer needs. Returns the saved frame."""
        if self.read_only:  # the folder is not ours to change; our frames go with the scratch folder
            return self.saved
        self._checkpoint(n, frame)
        for name, _ in self._encoded:
            (self.work / name).unlink(missing_ok=True)
        self._encoded, self.saved = [], n
        return n

    def _checkpoint(self, n: int, frame) -> None:
        state = {"index": n, "frame": frame.detach().float().cpu().contiguous(), "parts": [list(p) for p in self.closed],
                 "pending": [list(p) for p in self.pending], "settings": self.settings,
                 "digests": self.digests(n), "numerics": self.numerics}  # fmt: skip
        ckpt.save(ckpt.checkpoint_path(self.work, n), state)
        ckpt.prune(self.work)

    def stop(self, n: int, frame) -> int:
        """A requested stop after frame ``n``: the open part's encoder is dropped, its frames
        stay on disk, and a checkpoint names them."""
        self.abort()
        return self.save(n, frame)

    def finish(self, last: int) -> None:
        """After the render's last frame: encode the open part's frames as the tail."""
        if self.first <= last:
            self._open()
            self.tail = (self._close(), self.first, last)

    def videos(self) -> list[tuple[Path, int]]:
        """The files to join, with their frame counts."""
        return [(self.work / name, last - first + 1) for name, first, last in [*self.closed, *filter(None, [self.tail])]]

    def abort(self) -> None:
        """Drop the open part's encoder (its frames stay on disk); a read-only render's
        scratch folder goes too."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.read_only:
            shutil.rmtree(self.folder, ignore_errors=True)

    def close(self, keep: bool) -> str | None:
        """The render is done: remove the work folder, unless ``keep`` or it holds frames past
        this render's end (then say so)."""
        if self.read_only:
            shutil.rmtree(self.folder, ignore_errors=True)
            return (f"kept {self.work}: it holds frames 0-{self.saved}, past this render's end; a longer "
                    "render resumes from them (or delete the folder)")  # fmt: skip
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return None

    def _open(self) -> None:
        if self.writer is None:
            self.writer = self.new_writer(ckpt.part_path(self.folder, self.first))
            for name, _ in self.pending:  # frames of this part saved by a stopped run
                self.writer.write(load_frame(self.work, name))

    def _close(self) -> str:
        path = self.writer.close()
        self.writer = None
        return str(path.relative_to(self.work))
