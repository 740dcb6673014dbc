"""The music's features without and with `attack`/`release`: the plot in docs/audio.md.

Reads schedules/beat.flac (8 s at 120 bpm: a kick every 0.5 s, hi-hats between), analyses it
at 24 fps and follows ``bass`` and ``onset`` with attack 0.05 s and release 0.4 s, as a
schedule with those keys does (``Schedule.audio_features``), then plots the first 3 s.

    python3 bench/envelope_plot.py            # writes docs/envelope.png (about 40 KB)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dreamvid.media.audio import envelope, features  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FPS, SECONDS, ATTACK, RELEASE = 24, 3, 0.05, 0.4


def main() -> None:
    frames = FPS * SECONDS
    raw = features(ROOT / "schedules" / "beat.flac", float(FPS), frames)
    t = np.arange(frames) / FPS
    fig, axes = plt.subplots(2, 1, figsize=(8, 3.6), dpi=100, sharex=True)
    for ax, name in zip(axes, ("bass", "onset")):
        ax.step(t, raw[name], where="mid", color="0.6", label=f"{name} (attack 0, release 0: as analysed)")
        ax.plot(t, envelope(raw[name], ATTACK, RELEASE, 1 / FPS), color="C0", lw=2,
                label=f"attack {ATTACK:g} s, release {RELEASE:g} s")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    axes[-1].set_xlabel(f"seconds (schedules/beat.flac, {FPS} fps)")
    fig.tight_layout()
    out = ROOT / "docs" / "envelope.png"
    fig.savefig(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
