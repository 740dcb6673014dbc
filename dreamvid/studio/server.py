"""Serving the studio with uvicorn, and stopping it the way Ctrl-C stops a render.

The listening socket is bound here (so a busy port is one clear line, and port 0 picks a
free one). On SIGINT or SIGTERM the studio ends its event streams, tells each render to stop
after its frame (a second signal aborts them, as a second Ctrl-C aborts ``dreamvid render``)
and waits for them, so their checkpoints are on disk and no ffmpeg is left when it exits.
"""

from __future__ import annotations

import importlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from dreamvid.core.errors import InputError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; InputError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({err.strerror or err}); expected a free port "
                         "(--port N) on an address of this machine (--host)") from None  # fmt: skip
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: bool = True,
          say: Callable[[str], None] = lambda line: None) -> int:  # fmt: skip
    """Serve the studio for ``folder`` until SIGINT/SIGTERM; ``say`` prints a line for the user."""
    from dreamvid.studio import require_extra

    require_extra()
    import uvicorn

    from dreamvid.studio.app import Studio, create_app

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected the folder of your schedules")
    sock = bind(host, port)
    port = sock.getsockname()[1]
    studio = Studio(folder, token="auto" if token else None, port=port)
    hosts = None if host in ("127.0.0.1", "localhost", "::1") else (["*"] if host in ("0.0.0.0", "::") else
                                                                    ["127.0.0.1", "localhost", host])  # fmt: skip
    app = create_app(studio, allowed_hosts=hosts)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            told = studio.close()
            if told:
                say(f"dreamvid studio: stopping {told} render(s) after their frame, with a checkpoint "
                    "(again to abort them now)")  # fmt: skip
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None) -> None:
            await super().shutdown(sockets)
            from anyio import to_thread

            await to_thread.run_sync(studio.renders.wait_all)  # their checkpoints are on disk now
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()  # a signal is the way to stop the studio: not an error to re-raise

    # Previews dream (torch, seconds to import): import it while the user opens the page rather
    # than on the first preview. The render list reads only file names.
    threading.Thread(target=lambda: importlib.import_module("torch"), daemon=True).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    say(f"dreamvid studio: serving {studio.folder.root}")
    say(f"    {url(host, port, studio.token)}")
    if not token:
        say("dreamvid studio: --no-token: anyone who can reach this address can read and write the folder")
    Server(config).run(sockets=[sock])
    return 0
