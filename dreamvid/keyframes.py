"""Keyframed values: a number, a ``{frame: value}`` mapping or a Deforum string.

Each keyframeable schedule key (``zoom``, ``step``, ...) accepts::

    zoom: 1.02                       # constant
    zoom: {0: 1.02, 149: 1.06}       # keyframes: frame in the segment -> value
    zoom: "0:(1.02), 149:(1.06)"     # the same, as Deforum writes it

Before the first key the value is the first key's, after the last key the last one's; in
between it follows the segment's ``interpolation``: ``linear``, ``step`` (hold the previous
key) or ``smooth`` (smoothstep ``t*t*(3-2t)``). Integer parameters are rounded half up
after interpolation (:func:`round_half_up`). A :class:`Rule` says what values a key takes.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .problems import Invalid, Loc, is_number, show

DEFORUM_EXAMPLE = "'0:(1.02), 149:(1.06)'"
INTERPOLATIONS = ("linear", "step", "smooth")


@dataclass(frozen=True)
class Rule:
    """What values a keyframeable parameter accepts."""

    integer: bool
    minimum: float | None = None
    exclusive: bool = False  # minimum itself not allowed
    maximum: float | None = None  # inclusive

    @property
    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.minimum is not None and self.maximum is not None and not self.exclusive:
            return f"{kind} {self.minimum:g}..{self.maximum:g}"
        if self.minimum is None:
            return kind
        return f"{kind} {'>' if self.exclusive else '>='} {self.minimum:g}"

    def ok(self, value: float) -> bool:
        if self.maximum is not None and value > self.maximum:
            return False
        if self.minimum is None:
            return True
        return value > self.minimum if self.exclusive else value >= self.minimum

    def json_schema(self, description: str) -> dict:
        number: dict = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            number["exclusiveMinimum" if self.exclusive else "minimum"] = self.minimum
        if self.maximum is not None:
            number["maximum"] = self.maximum
        return {
            "description": description,
            "anyOf": [
                number,
                {
                    "type": "object",
                    "description": "keyframes: frame in segment -> value",
                    "patternProperties": {"^[0-9]+$": number},
                    "additionalProperties": False,
                    "minProperties": 1,
                },
                {
                    "type": "string",
                    "description": "Deforum keyframes, e.g. " + DEFORUM_EXAMPLE,
                    "pattern": r"^\s*[0-9]+\s*:\s*\(",
                },
            ],
        }




@dataclass(frozen=True)
class Keyframes:
    """A keyframed value: (frame in segment, value) points, increasing frames, at least one."""

    points: tuple[tuple[int, float], ...]
    integer: bool = False  # the parameter is an integer (rounded after interpolation)

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(f for f, _ in self.points)

    def at(self, frame: int, interpolation: str = "linear") -> float:
        """The (unrounded) value at ``frame``; clamped to the first/last key outside them."""
        pts = self.points
        if frame <= pts[0][0]:
            return pts[0][1]
        if frame >= pts[-1][0]:
            return pts[-1][1]
        i = bisect.bisect_right(self.frames, frame) - 1
        (f0, v0), (f1, v1) = pts[i], pts[i + 1]
        if interpolation == "step":
            return v0
        t = (frame - f0) / (f1 - f0)
        if interpolation == "smooth":
            t = t * t * (3.0 - 2.0 * t)
        return v0 + (v1 - v0) * t

    def to_data(self) -> Any:
        """Plain data: a number when constant, else {"frame": value} (JSON keys are strings)."""
        conv = int if self.integer else float
        if len(self.points) == 1:
            return conv(self.points[0][1])
        return {str(f): conv(v) for f, v in self.points}


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DEFORUM_ENTRY = re.compile(rf"\s*(-?\d+)\s*:\s*\(\s*({_NUMBER})\s*\)\s*")


def parse_keyframes(value: Any, rule: Rule) -> Keyframes:
    """Number, {frame: value} mapping or Deforum string -> Keyframes; raises Invalid."""
    accepted = f"{rule.expected}, a mapping {{frame: value}} or a string like {DEFORUM_EXAMPLE}"
    entries: list[tuple[Loc, Any, Any, bool]] = []  # (loc, frame, value, value came from text)
    problems: list[tuple[Loc, str]] = []
    if is_number(value):
        entries.append(((), 0, value, False))
    elif isinstance(value, str):
        pieces = value.split(",")
        if pieces and not pieces[-1].strip() and len(pieces) > 1:
            pieces = pieces[:-1]  # a trailing comma is fine
        for piece in pieces:
            m = _DEFORUM_ENTRY.fullmatch(piece)
            if m is None:
                whole = f" in {show(value)}" if piece.strip() != value.strip() else ""
                raise Invalid([((), f"bad keyframe entry {piece.strip()!r}{whole}; expected "
                                     f"'frame:(number)' entries like {DEFORUM_EXAMPLE}, or {rule.expected}")])
            entries.append(((m.group(1),), int(m.group(1)), float(m.group(2)), True))
    elif isinstance(value, Mapping):
        if not value:
            raise Invalid([((), f"empty keyframe mapping; expected {accepted}")])
        for key, val in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                frame = key
            elif isinstance(key, str) and re.fullmatch(r"\s*-?\d+\s*", key):
                frame = int(key)
            else:
                problems.append(((str(key),), f"keyframe key {show(key)} is not a frame number; "
                                              "expected an integer frame in the segment >= 0"))
                continue
            entries.append(((str(key),), frame, val, False))
    else:
        raise Invalid([((), f"got {show(value)}; expected {accepted}")])

    points: list[tuple[int, float]] = []
    for loc, frame, val, textual in entries:
        if frame < 0:
            problems.append((loc, f"negative keyframe {frame}; expected a frame in the segment >= 0"))
            continue
        if not is_number(val) or (rule.integer and not textual and not isinstance(val, int)):
            problems.append((loc, f"got {show(val)}; expected {rule.expected}"))
            continue
        val = float(val)
        if not math.isfinite(val) or not rule.ok(val) or (rule.integer and not val.is_integer()):
            problems.append((loc, f"{val:g} is out of range; expected {rule.expected}"))
            continue
        if points and frame <= points[-1][0]:
            what = "duplicate keyframe" if frame == points[-1][0] else f"keyframe {frame} comes after {points[-1][0]}"
            problems.append((loc, f"{what}; expected keyframes in increasing order"))
            continue
        points.append((frame, val))
    if problems:
        raise Invalid(problems)
    return Keyframes(tuple(points), integer=rule.integer)


def round_half_up(value: float) -> int:
    """Integer parameters after interpolation: 2.5 -> 3 (Python's round would give 2)."""
    return int(math.floor(value + 0.5))
