"""Starting ffmpeg: the one module of dreamvid that runs it.

    exe = ffmpeg_exe()                                     # the binary (IMAGEIO_FFMPEG_EXE honoured)
    proc = run(["-v", "error", "-i", path, ...], f"reading {path}")  # to completion, output captured
    proc = start([...], stdin=..., stdout=..., stderr=..., what=f"for {path}")  # a stream
    try:
        ...
    finally:
        stop(proc)                                          # terminate, then kill; always waited for

Every ffmpeg starts in a session of its own and without ``preexec_fn`` (see :func:`start`);
:func:`run` ends its process in every case (:func:`subprocess.run` kills it if we are
interrupted), and whoever holds a stream from :func:`start` ends it with :func:`stop` in a
``finally`` (or in the ``close()``/``abort()`` that its ``__exit__`` runs).

Failures are one-line ``DreamvidError``\\s: :func:`exit_reason` and :func:`reason` turn an exit
status and ffmpeg's stderr into their causes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from typing import IO

from dreamvid.core.errors import DreamvidError

__all__ = ["TERMINATE_WAIT_S", "exit_reason", "ffmpeg_exe", "reason", "run", "start", "stop"]

TERMINATE_WAIT_S = 3.0  # seconds ffmpeg gets to exit after SIGTERM (or a reader to answer) before SIGKILL


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg, or the one IMAGEIO_FFMPEG_EXE names
    (honoured as imageio-ffmpeg does, even where imageio-ffmpeg is not installed)."""
    try:
        exe = os.environ.get("IMAGEIO_FFMPEG_EXE")
        if not exe:
            import imageio_ffmpeg

            exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as err:  # ImportError, RuntimeError (binary missing)
        raise DreamvidError(
            f"ffmpeg not found ({err}); reinstall it with: pip install --force-reinstall imageio-ffmpeg"
        ) from None
    # imageio-ffmpeg trusts IMAGEIO_FFMPEG_EXE blindly; a wrong one would only fail later, as
    # a bare "No such file" from Popen. Check it here, with the variable named.
    found = shutil.which(exe)
    if found is None:
        source = "IMAGEIO_FFMPEG_EXE" if os.environ.get("IMAGEIO_FFMPEG_EXE") else "imageio-ffmpeg"
        raise DreamvidError(f"{exe}: ffmpeg not found or not executable (from {source}); expected an ffmpeg "
                            "binary: fix or unset IMAGEIO_FFMPEG_EXE, or pip install --force-reinstall imageio-ffmpeg")
    return found


def _popen_kwargs() -> dict:
    """Popen options shared by every ffmpeg we start.

    ``start_new_session``: a Ctrl-C in the terminal reaches Python only; Python then decides
    (abort kills ffmpeg, close lets it finish). Otherwise ffmpeg would quit on SIGINT by
    itself and leave a half-written file behind our back.

    No ``preexec_fn``: Python code between fork and exec can deadlock in a process with
    threads (the writer threads, torch's), and it rules out ``vfork``, so every part would
    fork a copy of a process holding gigabytes. An encoder still dies with its parent: we
    hold the only write end of its stdin, so when Python dies, however it dies, the kernel
    closes the pipe and ffmpeg reads end-of-file, finishes the (temp) file and exits. The
    other ffmpeg runs (probe, join) read no stdin and end with their short job.
    """
    return {"start_new_session": True}


def run(args: list[str], what: str = "", *, check: bool = True, timeout: float | None = None
        ) -> subprocess.CompletedProcess:  # fmt: skip
    """``ffmpeg -hide_banner -nostdin *args`` to completion, stdout and stderr captured (killed if
    we are interrupted, or after ``timeout`` seconds: ``subprocess.TimeoutExpired``).

    ``check``: a non-zero exit is a DreamvidError with ffmpeg's reason; ``what`` (e.g.
    ``"reading audio x.wav"``) says in the messages what ffmpeg was doing.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **_popen_kwargs())
    except OSError as err:  # e.g. IMAGEIO_FFMPEG_EXE names a file that is not a program
        doing = f"cannot run ffmpeg {what}" if what else "cannot run ffmpeg"
        raise DreamvidError(f"{cmd[0]}: {doing} ({err.strerror or err}); expected an "
                            "ffmpeg binary: fix or unset IMAGEIO_FFMPEG_EXE") from None
    if check and proc.returncode != 0:
        raise DreamvidError(f"ffmpeg failed {what} ({exit_reason(proc.returncode)}): {reason(proc.stderr)}")
    return proc


def start(args: list[str], *, stdin, stdout, stderr, what: str) -> subprocess.Popen:
    """``ffmpeg -hide_banner *args`` running beside us (a stream to feed or read), in its own
    session; ``stdin``/``stdout``/``stderr`` as for :class:`subprocess.Popen`. The caller ends it
    with :func:`stop`. DreamvidError ``cannot start ffmpeg <what>: ...`` if it does not start."""
    cmd = [ffmpeg_exe(), "-hide_banner", *args]
    try:
        return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, **_popen_kwargs())
    except OSError as err:
        raise DreamvidError(f"cannot start ffmpeg {what}: {err}") from None


def start_logged(args: list[str], *, stdin, stdout, what: str) -> tuple[subprocess.Popen, IO[bytes]]:
    """:func:`start` with stderr going to a temporary file (nobody has to drain a pipe; read it
    back with :func:`reason` on failure). Returns the process and the file, which the caller
    closes; on a failed start the file is closed here."""
    log = tempfile.TemporaryFile()
    try:
        return start(args, stdin=stdin, stdout=stdout, stderr=log, what=what), log
    except BaseException:
        log.close()
        raise


def stop(proc: subprocess.Popen, *, terminate: bool = True, close_pipes: bool = True) -> None:
    """End ``proc`` and wait for it: SIGTERM if it still runs (``terminate=False``: the caller
    sent it already), close our ends of its stdin and stdout (``close_pipes``: end-of-file, as
    ffmpeg's input thread may sit in ``read()`` even after SIGTERM; False while another thread
    still writes to it), wait up to ``TERMINATE_WAIT_S``, then SIGKILL. An interruption during
    the waits (a second Ctrl-C) kills it and is raised."""
    try:
        if terminate and proc.poll() is None:
            proc.terminate()
        if close_pipes:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:  # broken pipe: ffmpeg has gone already
                        pass
        try:
            proc.wait(timeout=TERMINATE_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    except BaseException:  # never leave it running
        if proc.poll() is None:
            proc.kill()
        raise


def reason(text: str | bytes, default: str = "no error message") -> str:
    """The cause from ffmpeg's stderr: its first message (what follows is the fallout),
    without the ``[libx264 @ 0x55...]`` prefixes."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for line in text.splitlines():
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())
        if line:
            return line
    return default


def exit_reason(rc: int) -> str:
    """``exit status 1`` or ``killed by SIGKILL`` for a return code."""
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"
