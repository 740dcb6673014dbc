"""Per-frame picture statistics of a video, to see whether a long zoom drifts (``dreamvid stats``).

For every frame (uint8 RGB as decoded, i.e. what a viewer sees):

- ``luminance``: mean Rec.709 luma ``0.2126 R' + 0.7152 G' + 0.0722 B'`` of the gamma-encoded
  values, in [0, 1];
- ``saturation``: mean HSV saturation ``(max - min) / max`` per pixel (0 where max is 0), in [0, 1];
- ``clipped``: the fraction of pixel *channels* at 0 or 255;
- ``change``: mean absolute difference from the previous frame over all channels, in [0, 1]
  (0 for frame 0); in a zoom it includes the motion, so compare it between renders of one schedule.

Optionally (``dreamvid stats --schedule``, computed by :mod:`dreamvid.tools.warp_error`, which knows
the camera): ``warp_error``, the mean squared [0, 1] RGB difference of each frame and the previous
frame moved by the camera, over the pixels the move carries (0 for frame 0); its mean over frames
1.. is :func:`warp_error_mean`. Every function here shows it when the stats hold it.

:func:`drift` summarises a run as the worst relative drift of luminance and saturation from
frame 0 and the worst rise in clipped channels (in points of the share).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from dreamvid.core.errors import DreamvidError
from dreamvid.core.files import write_atomic

METRICS = ("luminance", "saturation", "clipped", "change")
WARP = "warp_error"  # the optional column (see the module's docstring)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


def frame_stats(rgb: np.ndarray, previous: np.ndarray | None = None) -> dict[str, float]:
    """The four metrics of one HxWx3 uint8 frame (``previous``: the frame before, for change)."""
    x = rgb.astype(np.float64) / 255.0
    top, bottom = x.max(axis=2), x.min(axis=2)
    saturation = np.divide(top - bottom, top, out=np.zeros_like(top), where=top > 0)
    change = 0.0 if previous is None else float(np.abs(x - previous.astype(np.float64) / 255.0).mean())
    return {
        "luminance": float((x @ _LUMA).mean()),
        "saturation": float(saturation.mean()),
        "clipped": float(((rgb == 0) | (rgb == 255)).mean()),
        "change": change,
    }


def video_stats(frames) -> dict[str, list[float]]:
    """Columns ``frame`` + :data:`METRICS` over an iterable of uint8 frames."""
    out: dict[str, list[float]] = {"frame": [], **{m: [] for m in METRICS}}
    previous = None
    for n, rgb in enumerate(frames):
        out["frame"].append(n)
        for key, value in frame_stats(rgb, previous).items():
            out[key].append(value)
        previous = rgb
    if not out["frame"]:
        raise DreamvidError("the video has no frames")
    return out


def drift(stats: dict[str, list[float]]) -> dict[str, float]:
    """Worst drift from frame 0: relative for luminance and saturation, in points for clipped;
    plus the mean and largest frame-to-frame change."""
    def relative(key: str) -> float:
        v = np.asarray(stats[key])
        return float(np.abs(v - v[0]).max() / v[0]) if v[0] > 0 else float(np.abs(v - v[0]).max())

    clipped = np.asarray(stats["clipped"])
    change = np.asarray(stats["change"][1:]) if len(stats["change"]) > 1 else np.zeros(1)
    return {
        "luminance": relative("luminance"),
        "saturation": relative("saturation"),
        "clipped": float((clipped - clipped[0]).max()),
        "clipped_max": float(clipped.max()),
        "change_mean": float(change.mean()),
        "change_max": float(change.max()),
    }


def columns(stats: dict[str, list[float]]) -> tuple[str, ...]:
    """The metrics ``stats`` holds: :data:`METRICS`, plus ``warp_error`` when present."""
    return METRICS + ((WARP,) if WARP in stats else ())


def warp_error_mean(stats: dict[str, list[float]]) -> float:
    """The warp error's mean over frames 1.. (frame 0 has no previous frame); frames with no
    pixel the move carries (NaN) are left out."""
    values = np.asarray(stats[WARP][1:], dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else 0.0


def summary(stats: dict[str, list[float]]) -> str:
    """A small table: frame 0, last frame, and worst drift per metric."""
    d = drift(stats)
    last = len(stats["frame"]) - 1
    rows = [f"{'metric':<11} {'frame 0':>9} {'frame ' + str(last):>11} {'worst drift':>12}"]
    rows.append(f"{'luminance':<11} {stats['luminance'][0]:9.4f} {stats['luminance'][-1]:11.4f} "
                f"{100 * d['luminance']:11.1f}%")
    rows.append(f"{'saturation':<11} {stats['saturation'][0]:9.4f} {stats['saturation'][-1]:11.4f} "
                f"{100 * d['saturation']:11.1f}%")
    rows.append(f"{'clipped':<11} {100 * stats['clipped'][0]:8.2f}% {100 * stats['clipped'][-1]:10.2f}% "
                f"{100 * d['clipped']:+10.2f}pt")
    rows.append(f"{'change':<11} {'':>9} {stats['change'][-1]:11.4f} {'mean ' + format(d['change_mean'], '.4f'):>12}")
    if WARP in stats:
        rows.append(f"{'warp error':<11} {'':>9} {stats[WARP][-1]:11.6f} "
                    f"{'mean ' + format(warp_error_mean(stats), '.6f'):>12}")
    return "\n".join(rows)


def write_json(path, stats: dict[str, list[float]]) -> Path:
    data = {"metrics": stats, "drift": drift(stats)}
    if WARP in stats:  # NaN (no valid pixel) is not JSON: null
        data["metrics"] = {**stats, WARP: [v if np.isfinite(v) else None for v in stats[WARP]]}
        data["warp_error_mean"] = warp_error_mean(stats)
    return write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


def write_csv(path, stats: dict[str, list[float]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = columns(stats)
    writer.writerow(["frame", *names])
    for row in zip(stats["frame"], *(stats[m] for m in names)):
        writer.writerow([row[0], *(f"{v:.6f}" for v in row[1:])])
    return write_atomic(path, buf.getvalue().encode())


def plot(path, runs: dict[str, dict[str, list[float]]], title: str = "", size=(8.0, 6.0), dpi=100) -> Path:
    """One PNG of ``size`` inches at ``dpi``: a panel per metric, a line per run (label -> stats);
    a warp error panel under them when every run holds it."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    names = METRICS + ((WARP,) if all(WARP in stats for stats in runs.values()) else ())
    rows = 3 if WARP in names else 2
    fig, axes = plt.subplots(rows, 2, figsize=size, dpi=dpi, sharex=True)
    if rows == 3:
        axes[2, 1].set_visible(False)
    for ax, metric in zip(axes.flat, names):
        for label, stats in runs.items():
            values = np.asarray(stats[metric]) * (100 if metric == "clipped" else 1)
            first = 1 if metric == WARP else 0  # frame 0 has no previous frame
            ax.plot(stats["frame"][first:], values[first:], label=label, linewidth=1)
        ax.set_title({"clipped": "clipped (% of channels)", WARP: "warp error (MSE of [0, 1] RGB)"}.get(metric, metric),
                     fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in (*axes[-1], axes[1, 1]):  # the bottom panel of each column
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelbottom=True)
    if len(runs) > 1:
        axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
