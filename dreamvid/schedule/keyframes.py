"""Keyframed values: a number, a formula, a ``{frame: value}`` mapping or a Deforum string.

Each keyframeable schedule key (``zoom``, ``step``, ...) accepts::

    zoom: 1.02                       # constant
    zoom: "1.01 + 0.04*bass"         # a formula of the frame and the music (see :mod:`.expressions`)
    zoom: {0: 1.02, 149: 1.06}       # keyframes: frame in the segment -> value (or formula)
    zoom: "0:(1.02), 149:(1.06)"     # the same, as Deforum writes it; values may be formulas

Before the first key the value is the first key's, after the last key the last one's; in
between it follows the segment's ``interpolation``: ``linear``, ``step`` (hold the previous
key) or ``smooth`` (smoothstep ``t*t*(3-2t)``). Integer parameters are rounded half up
after interpolation (:func:`round_half_up`). A :class:`Rule` says what values a key takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamvid.core.problems import Invalid, Loc, finite_float, is_number, show
from dreamvid.schedule.expressions import (
    MAX_FRAME_DIGITS,
    MAX_KEYFRAME_STRING,
    Expression,
    ExpressionError,
    evaluate_keyframes,
    is_keyframe_string,
    parse_keyframe_string,
    parse_value,
)

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
                    "patternProperties": {"^[0-9]+$": {"anyOf": [number, {"type": "string"}]}},
                    "additionalProperties": False,
                    "minProperties": 1,
                },
                {
                    "type": "string",
                    "description": "a formula of the frame and the music, e.g. '1.01 + 0.04*bass', or Deforum "
                                   "keyframes, e.g. " + DEFORUM_EXAMPLE,
                    "maxLength": MAX_KEYFRAME_STRING,
                },
            ],
        }




@dataclass(frozen=True)
class Keyframes:
    """A keyframed value: (frame in segment, value) points, increasing frames, at least one.

    A value is a number or an :class:`~dreamvid.schedule.expressions.Expression` of the frame and the
    music, evaluated per frame by :meth:`values` (see :mod:`.expressions` for how formula keys
    and number keys interpolate)."""

    points: tuple[tuple[int, float | Expression], ...]
    integer: bool = False  # the parameter is an integer (rounded after interpolation)

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(f for f, _ in self.points)

    @property
    def variables(self) -> frozenset[str]:
        """The names the value's formulas use (empty for numbers)."""
        return frozenset().union(*(v.variables for _, v in self.points if isinstance(v, Expression)))

    def values(self, frames: int, interpolation: str = "linear", variables: Mapping | None = None) -> np.ndarray:
        """The (unrounded) values at frames 0..frames-1 of a segment, float64; ``variables`` as
        :func:`.expressions.frame_variables` gives them (needed only for formulas)."""
        if len(self.points) == 1 and not isinstance(self.points[0][1], Expression):
            return np.full(frames, self.points[0][1], dtype=np.float64)
        return evaluate_keyframes(self.points, frames, interpolation, variables)

    def to_data(self) -> Any:
        """Plain data: a number (or formula) when constant, else {"frame": value} (JSON keys are strings)."""
        conv = int if self.integer else float

        def plain(v):
            return v.source if isinstance(v, Expression) else conv(v)

        if len(self.points) == 1 and self.points[0][0] == 0:
            return plain(self.points[0][1])
        return {str(f): plain(v) for f, v in self.points}


def parse_keyframes(value: Any, rule: Rule) -> Keyframes:
    """Number, formula, {frame: value} mapping or Deforum string -> Keyframes; raises Invalid."""
    accepted = (f"{rule.expected}, a formula such as '1.01 + 0.04*bass', a mapping {{frame: value}} or a "
                f"string like {DEFORUM_EXAMPLE}")
    entries: list[tuple[Loc, Any, Any, bool]] = []  # (loc, frame, value, value came from text)
    problems: list[tuple[Loc, str]] = []
    if is_number(value):
        entries.append(((), 0, value, False))
    elif isinstance(value, str):
        try:
            if is_keyframe_string(value):
                entries += [(((str(frame),)), frame, v, True) for frame, v in parse_keyframe_string(value)]
            else:
                entries.append(((), 0, parse_value(value), True))
        except ExpressionError as err:
            raise Invalid([((), f"{err}")]) from None
    elif isinstance(value, Mapping):
        if not value:
            raise Invalid([((), f"empty keyframe mapping; expected {accepted}")])
        for key, val in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                frame = key
            elif isinstance(key, str) and re.fullmatch(rf"\s*-?\d{{1,{MAX_FRAME_DIGITS}}}\s*", key):
                frame = int(key)
            else:
                problems.append(((str(key),), f"keyframe key {show(key)} is not a frame number; "
                                              "expected an integer frame in the segment >= 0"))
                continue
            textual = isinstance(val, str)
            if textual:
                try:
                    val = parse_value(val)
                except ExpressionError as err:
                    problems.append(((str(key),), str(err)))
                    continue
            entries.append(((str(key),), frame, val, textual))
    else:
        raise Invalid([((), f"got {show(value)}; expected {accepted}")])

    points: list[tuple[int, float | Expression]] = []
    for loc, frame, val, textual in entries:
        if frame < 0:
            problems.append((loc, f"negative keyframe {frame}; expected a frame in the segment >= 0"))
            continue
        if not isinstance(val, Expression):
            if not is_number(val) or (rule.integer and not textual and not isinstance(val, int)):
                problems.append((loc, f"got {show(val)}; expected {rule.expected}"))
                continue
            number = finite_float(val)
            if number is None or not rule.ok(number) or (rule.integer and not number.is_integer()):
                shown = show(val) if number is None else f"{number:g}"
                problems.append((loc, f"{shown} is out of range; expected {rule.expected}"))
                continue
            val = number
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
