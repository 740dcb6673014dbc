"""Progress bars for people: :class:`~dreamvid.core.progress.Progress` records as a tqdm bar.

The CLI uses the terminal bar; the Python API uses ``tqdm.auto`` (a widget in a notebook,
a text bar elsewhere). Warnings become ``dreamvid: warning: ...`` lines above the bar; they
are shown even when the bar is off. This and :mod:`.cli` are the only modules that write
to the user.
"""

from __future__ import annotations

import sys


class Bar:
    """A callback that draws one bar per run (``start`` opens it; ``close()`` ends it)."""

    def __init__(self, quiet: bool = False, unit: str = "frame", notebook: bool = False):
        self.quiet, self.unit, self.notebook, self.bar = quiet, unit, notebook, None

    def _tqdm(self):
        if self.notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        return tqdm

    def warn(self, p) -> bool:
        """Print warnings (even when quiet); True when the bar has nothing more to show."""
        if p.event == "warning":
            (self.bar.write if self.bar else print)(f"dreamvid: warning: {p.message}", file=sys.stderr)
        return self.quiet

    def __call__(self, p) -> None:
        if self.warn(p):
            return
        if p.event == "start":
            self.close()
            if p.start:
                print(f"resuming at frame {p.start} of {p.total}", file=sys.stderr)
            self.bar = self._tqdm()(total=p.total, initial=p.start, unit=self.unit, dynamic_ncols=True,
                                    smoothing=0.1)  # fmt: skip
        elif p.event == "frame" and self.bar is not None:
            self.bar.set_postfix_str(p.message or f"segment {p.segment}", refresh=False)
            self.bar.update(p.frame - self.bar.n)
        elif p.event == "done":
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class BatchBar(Bar):
    """:class:`~dreamvid.batch.run.BatchProgress` as one bar for the whole batch (frames of all
    videos, so its ETA is the batch's), and one line per finished video."""

    def __call__(self, p) -> None:
        if self.warn(p):
            return
        if p.event == "start":
            if p.videos_done == p.videos_total:
                print(f"all {p.videos_total} videos are already complete; nothing to render", file=sys.stderr)
                return
            if p.videos_done:
                print(f"{p.videos_done} of {p.videos_total} videos already complete; skipping them", file=sys.stderr)
            self.bar = self._tqdm()(total=p.frames_total, unit="frame", dynamic_ncols=True, smoothing=0.1)
        elif self.bar is not None and p.event in ("video", "frame", "retry", "finished"):
            if self.bar.total != p.frames_total:
                self.bar.total = p.frames_total
            self.bar.set_postfix_str(f"videos {p.videos_done}/{p.videos_total}", refresh=False)
            self.bar.update(p.frames_done - self.bar.n)
            if p.message:
                self.bar.write(p.message, file=sys.stderr)
            if p.event == "finished":
                r = p.result
                fps = f", {r.fps:.2f} fps after the first" if r.fps and r.status == "done" else ""
                what = f"{work_done(r)}{fps} -> {r.output}" if r.status == "done" else f"{r.error} ({work_done(r)})"
                self.bar.write(f"{r.status} {r.name}: {what}", file=sys.stderr)


def work_done(r) -> str:
    """What this batch run did for a video: the frames it really dreamed, and the time spent."""
    did = f"{r.rendered} frames rendered" if r.rendered else "joined only" if r.status == "done" else "no frame rendered"
    return f"{did} in {r.seconds:.1f} s"
