"""What an importer reads out of another tool's file, and the dreamvid schedule made from it.

A :class:`Draft` holds the video (frames, fps, size, seed, files) and the camera as keyframes
counted in video frames, the way Deforum and Parseq count them: ``[(frame, value)]`` with a
value that is a number or a formula in dreamvid's syntax. :func:`schedule_data` splits the
frames into one segment per layer term of ``--layers`` and each camera key into those
segments (dreamvid's keyframes count frames in their segment): a key at each segment's start
and, where a line between numbers crosses into the next segment, at its last frame, so every
frame keeps the value it had (formulas read ``t``, the frame in the video, so they carry over
as they are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dreamvid.core import defaults as D
from dreamvid.core.problems import finite_float, show
from dreamvid.engine.catalogue import layer_sum
from dreamvid.schedule.expressions import ExpressionError, evaluate_keyframes, frame_variables, parse_value

Value = float | str  # a number, or a formula's text
Points = list[tuple[int, Value]]  # (frame in the video, value), increasing frames

CAMERA_KEYS = ("zoom", "rotate", "translate_x", "translate_y", "center_x", "center_y")
NEUTRAL = {"zoom": 1.0, "rotate": 0.0, "translate_x": 0.0, "translate_y": 0.0, "center_x": 0.5, "center_y": 0.5}


class ImportProblem(ValueError):
    """One problem with the file being imported: ``key`` (the other tool's name) and the text."""

    def __init__(self, key: str, text: str):
        self.key, self.text = key, text
        super().__init__(f"{key}: {text}" if key else text)


@dataclass
class Draft:
    """A schedule in the making: what was read, what it is in dreamvid, what was left out."""

    kind: str  # "Deforum settings" | "Parseq manifest"
    frames: int
    fps: float
    size: tuple[int, int] | None = None
    seed: int = D.SEED
    input: str | None = None  # a path as the file wrote it (None: noise)
    audio: str | None = None
    colour: str | None = None
    cadence: int | None = None  # dream every k-th frame (None: every frame, dreamvid's default)
    camera: dict[str, Points] = field(default_factory=dict)  # CAMERA_KEYS -> keyframes in video frames
    mapping_style: bool = False  # write keyframes as {frame: value} (per-frame series) rather than a string
    notes: list[str] = field(default_factory=list)  # one line each: what was not carried over, and why
    warnings: list[str] = field(default_factory=list)  # one line each: what the user should check


def layer_segments(spec: str) -> list[dict[str, float]]:
    """``--layers``: one segment per space-separated term, each a layer sum (``mixed3``,
    ``mixed4:97``, ``mixed3+mixed4:97``). ImportProblem when empty."""
    terms = spec.split()
    if not terms:
        raise ImportProblem("--layers", f"got {show(spec)}; expected layer terms separated by spaces, e.g. "
                                        f"{D.IMPORT_LAYERS!r}")
    out = []
    for term in terms:
        try:
            out.append(layer_sum(term))
        except ValueError as err:
            raise ImportProblem("--layers", str(err)) from None
    return out


def segment_lengths(frames: int, count: int) -> list[int]:
    """``frames`` split into ``min(count, frames)`` runs as even as possible (the longer first)."""
    count = min(count, frames)
    base, extra = divmod(frames, count)
    return [base + (i < extra) for i in range(count)]


def series(points: Points, frames: int, fps: float, seed: int) -> np.ndarray:
    """The value at every video frame: Deforum's rule (a number moves linearly toward the next key,
    a formula holds from its key, evaluated every frame), which is dreamvid's ``linear``."""
    parsed = [(k, parse_value(v)) for k, v in points]
    variables = frame_variables(0, frames, frames, fps, None, seed)
    return evaluate_keyframes(parsed, frames, "linear", variables)


def split(points: Points, values: np.ndarray, start: int, stop: int) -> Points:
    """The keyframes of video frames ``start..stop-1`` counted from ``start``, giving the same values."""
    frames = [k for k, _ in points]
    active = max((i for i, k in enumerate(frames) if k <= start), default=None)
    out: Points = []
    if start not in frames:  # the segment starts between keys (or before the first)
        held = active is not None and not _is_number(points[active][1])
        out.append((0, points[active][1] if held else float(values[start])))
    out += [(k - start, v) for k, v in points if start <= k < stop]
    later = any(k >= stop for k in frames)
    if later and _is_number(out[-1][1]) and out[-1][0] != stop - 1 - start:
        out.append((stop - 1 - start, float(values[stop - 1])))  # the line toward a key past the segment
    return out


def _is_number(value: Value) -> bool:
    return isinstance(value, float)


def keyframe_text(points: Points, mapping: bool) -> Any:
    """Keyframes as the schedule writes them: a number when constant, else a Deforum string
    (``"0: (1.02), 60: (1.0 + 0.01*t)"``) or, for per-frame series, a ``{frame: value}`` mapping."""
    if len(points) == 1 and points[0][0] == 0:
        return points[0][1]
    if mapping:
        return {k: v for k, v in points}
    return ", ".join(f"{k}: ({_number(v) if _is_number(v) else v})" for k, v in points)


def _number(value: float) -> str:
    return repr(float(value))


def compress(values: list[float]) -> Points:
    """A per-frame series as the fewest keyframes that linear interpolation turns back into it:
    keys where the series bends (exactly: a key is dropped only where it lies on the line of its
    neighbours within 1e-12 of the values' scale)."""
    n = len(values)
    if n == 0:
        return []
    scale = max(1.0, max(abs(v) for v in values))
    keep = [0]
    for i in range(1, n - 1):
        if abs(values[i - 1] - 2.0 * values[i] + values[i + 1]) > 1e-12 * scale:
            keep.append(i)
    if n > 1:
        keep.append(n - 1)
    points = [(i, float(values[i])) for i in keep]
    if all(v == points[0][1] for _, v in points):
        return [(0, points[0][1])]
    return points


def check_formula(key: str, text: str) -> None:
    """ImportProblem when ``text`` is not a formula dreamvid evaluates (a function it lacks ...)."""
    try:
        parse_value(text)
    except ExpressionError as err:
        raise ImportProblem(key, f"{err}") from None


def relative(path: str, base: Path, schedule_folder: Path) -> str:
    """A path the other tool wrote (relative to its file's folder ``base``) as the new schedule
    writes it: relative to the schedule's folder, or absolute when it was."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    return os.path.relpath((base / p).resolve(), schedule_folder.resolve())


def schedule_data(draft: Draft, layers: list[dict[str, float]], output: Path) -> dict[str, Any]:
    """The schedule (plain data, keys in the order docs/schedule.md shows them)."""
    data: dict[str, Any] = {"version": D.SCHEDULE_VERSION,
                            "input": draft.input or "noise",
                            "output": output.with_suffix(".mp4").name}
    if draft.size is not None:
        data["size"] = list(draft.size)
    data["fps"] = int(draft.fps) if float(draft.fps).is_integer() else draft.fps
    data["seed"] = draft.seed
    if draft.audio is not None:
        data["audio"] = draft.audio
    defaults: dict[str, Any] = {"camera": "deforum", "interpolation": "linear"}
    if draft.colour is not None:
        defaults["colour"] = draft.colour
    if draft.cadence is not None:
        defaults["cadence"] = draft.cadence
    data["defaults"] = defaults
    lengths = segment_lengths(draft.frames, len(layers))
    if len(lengths) < len(layers):
        draft.notes.append(f"--layers: {len(layers)} terms for {draft.frames} frames: the last "
                           f"{len(layers) - len(lengths)} left out (a segment has at least one frame)")
    every = {key: series(draft.camera[key], draft.frames, draft.fps, draft.seed)
             for key in CAMERA_KEYS if key in draft.camera}
    segments, start = [], 0
    for length, weights in zip(lengths, layers[:len(lengths)], strict=True):
        segment: dict[str, Any] = {"frames": length, "layers": weights}
        camera = {key: keyframe_text(split(draft.camera[key], every[key], start, start + length), draft.mapping_style)
                  for key in every}
        for name, (x, y) in (("translate", ("translate_x", "translate_y")), ("center", ("center_x", "center_y"))):
            if x in camera or y in camera:
                camera[name] = [camera.pop(x, NEUTRAL[x]), camera.pop(y, NEUTRAL[y])]
        segment.update({key: camera[key] for key in ("zoom", "rotate", "translate", "center") if key in camera})
        segments.append(segment)
        start += length
    for key in ("zoom", "rotate", "translate", "center"):  # the same in every segment: said once, in defaults
        if all(key in seg and seg[key] == segments[0][key] for seg in segments):
            defaults[key] = segments[0][key]
            for seg in segments:
                del seg[key]
    data["segments"] = segments
    return data


def finite_number(key: str, value: Any, what: str) -> float:
    """``value`` as a float, or ImportProblem naming ``key`` and ``what`` was expected."""
    number = finite_float(value)
    if number is None:
        raise ImportProblem(key, f"got {show(value)}; expected {what}")
    return number
