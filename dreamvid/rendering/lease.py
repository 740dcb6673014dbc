"""The lease on a work folder: one render at a time writes into it.

A second render into the same folder (another terminal, a batch started twice, a retry of a
task whose node is lost, the studio) must not interleave parts and checkpoints. The holder
writes ``<work>/lock`` and keeps it fresh (:func:`exclusive`); anyone may ask who holds it
(:func:`holder`), which is how the studio shows a render started elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dreamvid.core.errors import InputError
from dreamvid.core.files import write_atomic
from dreamvid.rendering.workdir import LOCK  # in the work folder: the lease of the render writing there

HEARTBEAT_S = 5.0  # the holder rewrites its lease this often
STALE_S = 30.0  # a lease seen unchanged this long belongs to a dead holder
OLD_S = 300.0  # a lease whose own time is this old is a dead holder's at first sight
WAIT_S = 45.0  # how long a render waits for a live holder before refusing (> STALE_S: a lost node is outwaited)
_SETTLE_S = 0.2  # after taking over a stale lease: re-read it, in case another render took it too
_WIDTH = 200  # a lease line's length: heartbeats rewrite it in place, one small write



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
