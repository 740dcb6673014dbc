"""The schedule as a picture: camera moves and layer weights over the frames.

Keyframes, Deforum strings, inherited ``defaults`` and transitions are easy to get wrong
and slow to check by rendering. ``dreamvid validate S --plot timeline.png`` evaluates
:meth:`~dreamvid.schedule.schedule.Schedule.params` at every frame -- exactly what the renderer will
use -- and plots zoom, rotation, translation and the blended layer weights (and ``center``,
``guide_weight`` and ``mask_strength`` where a schedule uses them, ``flow_blend`` and
``temporal`` with a video input, ``cadence`` and the dreamed frames as dots where some frames
are not dreamed), with segment boundaries
as dashed lines and transitions shaded; when formulas follow the music, the audio's
loudness (``rms``) is drawn in grey under every panel. No network is loaded.
``dreamvid validate S --params p.csv`` writes the same values, every setting of every frame,
as CSV (:func:`write_params`), with a ``dreamed`` column (1: dreamed, 0: a crossfade of the
dreamed frames around it, :mod:`dreamvid.schedule.cadence`).

Matplotlib runs on its Agg canvas through the object API (no pyplot, no global state, no
display needed); the PNG is written atomically like every other output.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from dreamvid.core.files import write_atomic
from dreamvid.schedule.cadence import dreamed_frames, every_frame
from dreamvid.schedule.schedule import Schedule

FIGSIZE = (10.0, 7.5)  # inches
DPI = 100  # the PNG is FIGSIZE * DPI pixels: 1000x750


@dataclass(frozen=True)
class Timeline:
    """Per-frame values of a schedule, as arrays indexed by frame."""

    frames: np.ndarray
    zoom: np.ndarray
    rotate: np.ndarray
    translate: np.ndarray  # (frames, 2): x, y
    layers: dict[str, np.ndarray]  # key -> weight per frame (0 where unused), in order of appearance
    center: np.ndarray | None = None  # (frames, 2): x, y fractions of the frame
    guide_weight: np.ndarray | None = None  # 0 where a frame has no guide
    mask_strength: np.ndarray | None = None  # 0 without a mask
    flow_blend: np.ndarray | None = None  # None with an image input (the keys of a video input)
    temporal: np.ndarray | None = None
    cadence: np.ndarray | None = None  # None where every frame is dreamed
    dreamed: np.ndarray | None = None  # the dreamed frames, with a cadence


def timeline(schedule: Schedule) -> Timeline:
    """Evaluate ``schedule.params(n)`` for every frame n."""
    params = [schedule.params(n) for n in range(schedule.total_frames)]
    keys: dict[str, None] = {}
    for p in params:
        keys.update(dict.fromkeys(p.layers))
    return Timeline(
        frames=np.arange(len(params)),
        zoom=np.array([p.zoom for p in params]),
        rotate=np.array([p.rotate for p in params]),
        translate=np.array([p.translate for p in params], dtype=float).reshape(-1, 2),
        layers={k: np.array([p.layers.get(k, 0.0) for p in params]) for k in keys},
        center=np.array([p.center for p in params], dtype=float).reshape(-1, 2),
        guide_weight=np.array([p.guide_weight for p in params]),
        mask_strength=np.array([p.mask_strength for p in params]),
        flow_blend=None if params[0].flow_blend is None else np.array([p.flow_blend for p in params]),
        temporal=None if params[0].temporal is None else np.array([p.temporal for p in params]),
        cadence=None if every_frame(schedule) else np.array([p.cadence for p in params]),
        dreamed=None if every_frame(schedule) else np.array(dreamed_frames(schedule)),
    )


def extra_panels(t: Timeline) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Panels of the keys a schedule uses beyond the camera basics (none for a schedule without them)."""
    panels = []
    if t.center is not None and (t.center != 0.5).any():
        panels.append(("center (fraction)", [("x", t.center[:, 0]), ("y", t.center[:, 1])]))
    lines = [(name, values) for name, values in (("guide_weight", t.guide_weight), ("mask_strength", t.mask_strength))
             if values is not None and values.any()]  # fmt: skip
    if lines:
        panels.append(("guide / mask", lines))
    if t.flow_blend is not None:  # a video input
        panels.append(("video input", [("flow_blend", t.flow_blend), ("temporal", t.temporal)]))
    if t.cadence is not None:
        panels.append(("cadence (dots: dreamed)", [("cadence", t.cadence)]))
    return panels


def params_table(schedule: Schedule) -> tuple[list[str], list[list]]:
    """(header, rows): ``frame``, then each setting of :class:`~dreamvid.schedule.schedule.FrameParams` under
    its schedule key (pairs as ``translate_x``, ``translate_y``), then ``layers.<key>`` weights."""
    params = [schedule.params(n) for n in range(schedule.total_frames)]
    skip = {"index", "frame_in_segment", "layers"}
    names = [f.name for f in fields(params[0])  # a video input's keys (flow, ...) are None with an image,
             if f.name not in skip and any(getattr(p, f.name) is not None for p in params)]  # guide without one
    keys: dict[str, None] = {}
    for p in params:
        keys.update(dict.fromkeys(p.layers))
    header = ["frame"]
    for name in names:
        value = getattr(params[0], name)
        header += [f"{name}_{axis}" for axis in "xy"] if isinstance(value, tuple) else [name]
    header += ["dreamed", *(f"layers.{k}" for k in keys)]
    dreamed = set(dreamed_frames(schedule))
    rows = []
    for p in params:
        row: list = [p.index]
        for name in names:
            value = getattr(p, name)
            row += list(value) if isinstance(value, tuple) else [value]
        rows.append(row + [int(p.index in dreamed)] + [p.layers.get(k, 0.0) for k in keys])
    return header, rows


def write_params(schedule: Schedule, path: str | os.PathLike) -> Path:
    """Every frame's resolved parameters as CSV (a header row, one row per frame), atomically."""
    header, rows = params_table(schedule)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(header)
    out.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return write_atomic(Path(path), buf.getvalue())


def _mark_segments(ax, schedule: Schedule, label: bool) -> None:
    for seg in schedule.segments:
        if seg.index:
            ax.axvline(seg.start - 0.5, color="0.4", linestyle="--", linewidth=0.8)
        if seg.transition:
            ax.axvspan(seg.start - 0.5, seg.start + seg.transition - 0.5, color="0.85", linewidth=0)
        if label:
            ax.text(seg.start + seg.frames / 2 - 0.5, 1.02, f"segment {seg.index}", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="0.3")


def plot_timeline(schedule: Schedule, path: str | os.PathLike, *, figsize=FIGSIZE, dpi: int = DPI) -> Path:
    """Write the timeline of ``schedule`` to the PNG ``path`` (figsize * dpi pixels); returns it."""
    return write_atomic(Path(path), timeline_png(schedule, figsize=figsize, dpi=dpi))


def timeline_png(schedule: Schedule, *, figsize=FIGSIZE, dpi: int = DPI) -> bytes:
    """The timeline of ``schedule`` as PNG bytes (figsize * dpi pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = timeline(schedule)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    panels = [
        ("zoom (scale/frame)", [("zoom", t.zoom)]),
        ("rotate (deg/frame)", [("rotate", t.rotate)]),
        ("translate (px/frame)", [("x", t.translate[:, 0]), ("y", t.translate[:, 1])]),
        *extra_panels(t),
        ("layer weights", list(t.layers.items())),
    ]
    axes = fig.subplots(len(panels), 1, sharex=True)
    loudness = schedule.audio_features()["rms"] if schedule.audio_driven else None
    for i, (ax, (title, lines)) in enumerate(zip(axes, panels)):
        _mark_segments(ax, schedule, label=i == 0)
        if loudness is not None:  # the music under the curves it drives
            under = ax.twinx()
            under.fill_between(t.frames, loudness, color="0.88", linewidth=0, step="mid",
                               label="audio rms" if i == 0 else None)  # fmt: skip
            under.set_ylim(0, 1.05)
            under.set_yticks([])
            under.set_zorder(ax.get_zorder() - 1)
            ax.patch.set_visible(False)
        for name, values in lines:
            ax.plot(t.frames, values, label=name, linewidth=1.4)
            if name == "cadence" and t.dreamed is not None:  # the frames that are dreamed, on the line
                ax.plot(t.dreamed, values[t.dreamed], "o", markersize=2.5, color="0.2", label="dreamed")
        ax.set_ylabel(title, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.margins(x=0)
        ax.grid(True, axis="y", color="0.9", linewidth=0.6)
        if len(lines) > 1:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    seconds = schedule.total_frames / schedule.fps
    axes[-1].set_xlabel(f"frame ({schedule.total_frames} frames, {seconds:.2f} s at {schedule.fps:g} fps)", fontsize=8)
    fig.suptitle(schedule.source.name, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
