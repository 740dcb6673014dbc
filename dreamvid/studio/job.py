"""One studio render, in its own process: ``python -m dreamvid.studio.job SCHEDULE --root FOLDER``.

It calls :func:`dreamvid.render`, so it uses the work folder, lock and checkpoints of
``dreamvid render`` and resumes the same way. Progress goes to the studio as JSON lines on
stdout (anything else the process prints goes to stderr). Like the CLI, SIGINT or SIGTERM
once finishes the frame, checkpoints and exits 130, a second one aborts at once (the last
checkpoint stands); and when the studio that started it is gone (its stdin closes) it
stops the same way, so no render is left running unwatched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from dreamvid.core.stop import StopRequest


class _Stop(StopRequest):
    """``should_stop`` for the render: set by SIGINT or SIGTERM (a second one aborts), or by
    the studio going away."""

    def watch(self, fd: int) -> None:
        """Stop when ``fd`` (our stdin, whose other end the studio holds) closes. Raw reads:
        a buffered stream's lock would trip up the interpreter's exit in a daemon thread."""
        def run():
            try:
                while os.read(fd, 1 << 10):
                    pass
            except OSError:
                pass
            self.request()

        threading.Thread(target=run, daemon=True, name="studio-watch").start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dreamvid.studio.job")
    parser.add_argument("schedule", type=Path)
    parser.add_argument("--root", type=Path, required=True, help="the studio folder: every file must lie inside")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)

    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (libraries) go to stderr, not into the event stream

    stop = _Stop()

    def emit(event: str, **fields) -> None:
        try:
            events.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        except OSError:  # the studio is gone (a broken pipe): stop as if it had said so
            stop.request()

    stop.install()
    stop.watch(sys.stdin.fileno())
    emit("launched", pid=os.getpid())
    import dreamvid
    from dreamvid.core.errors import describe_os_error, is_out_of_memory, out_of_memory_message
    from dreamvid.studio.paths import Folder

    def report(p) -> None:
        emit(p.event, frame=p.frame, total=p.total, start=p.start, segment=p.segment, message=p.message)

    try:
        schedule = dreamvid.load_schedule(args.schedule)
        outside = Folder(args.root).schedule_problems(schedule)
        if outside:
            key, text = outside[0]
            raise dreamvid.InputError(f"{args.schedule}: {key}: {text}")
        out = dreamvid.render(schedule, fresh=args.fresh, callback=report, should_stop=stop, progress=False)
        emit("finished", output=str(out))
        return 0
    except dreamvid.DreamvidError as err:
        emit("error", message=str(err), code=err.exit_code)
        return err.exit_code
    except KeyboardInterrupt:
        emit("error", message="aborted; the last checkpoint stands", code=130)
        return 130
    except OSError as err:
        emit("error", message=describe_os_error(err), code=1)
        return 1
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        emit("error", message=out_of_memory_message(err), code=1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
