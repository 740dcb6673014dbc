"""A stop asked for by a signal: the first one sets a flag that a long job reads between two
safe points (a render between two frames); a second one aborts at once."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable


class StopRequest:
    """A "stop requested" flag, set by the first of ``signals`` (or by :meth:`request`).

    Calling it returns the flag, so it is the ``should_stop`` a render takes. A render that
    sees it finishes its frame, checkpoints and stops; with ``second_aborts`` a second
    signal raises KeyboardInterrupt, to abort at once (the previous checkpoint stands).
    ``on_first(signum)`` runs on the first signal (to tell the user; nothing is printed here).

    :meth:`install` takes over the signals (from the main thread only: elsewhere they are
    not ours to catch, and it returns False); :meth:`restore` gives back the handlers that
    were there. As a context manager it does both.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM), *, second_aborts: bool = True,
                 on_first: Callable[[int], None] | None = None):  # fmt: skip
        self.signals = tuple(signals)
        self.second_aborts = second_aborts
        self.on_first = on_first
        self.requested = False
        self._old: dict[int, object] = {}

    def install(self) -> bool:
        """Handle ``signals`` from now on; False (and nothing changed) when not on the main thread."""
        try:
            for sig in self.signals:
                old = signal.signal(sig, self._handler)
                self._old.setdefault(sig, old)
        except ValueError:  # not the main thread (embedded use)
            return False
        return True

    def restore(self) -> None:
        """Put back the handlers that :meth:`install` replaced."""
        for sig, old in self._old.items():
            if old is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, old)
        self._old.clear()

    def request(self) -> None:
        """Ask for a stop without a signal (the job's watcher is gone, say)."""
        self.requested = True

    def _handler(self, signum, frame) -> None:
        if self.requested and self.second_aborts:
            raise KeyboardInterrupt  # the second one: abort now
        first = not self.requested
        self.requested = True
        if first and self.on_first is not None:
            self.on_first(signum)

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self) -> StopRequest:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
