"""Process helpers for tests: find ffmpeg processes left running, by reading /proc (Linux).

    from tests.procs import ffmpeg_children
    assert ffmpeg_children() == []
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and ')' so split on the last ')'
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    state, ppid = raw[raw.rindex(")") + 2 :].split()[:2]
    return comm, state, int(ppid)


def _looks_like_ffmpeg(pid: int, comm: str) -> bool:
    if "ffmpeg" in comm.lower():
        return True
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return b"ffmpeg" in os.path.basename(argv0).lower()


def ffmpeg_children(pid: int | None = None) -> list[int]:
    """Live (not zombie) descendants of ``pid`` (default: this process) that look like ffmpeg."""
    root = os.getpid() if pid is None else pid
    info = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                info[int(entry)] = st
    children: dict[int, list[int]] = {}
    for p, (_, _, ppid) in info.items():
        children.setdefault(ppid, []).append(p)
    found, todo = [], list(children.get(root, []))
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        comm, state, _ = info[p]
        if state not in ("Z", "X") and _looks_like_ffmpeg(p, comm):
            found.append(p)
    return sorted(found)
