"""The YAML schedule: parse, validate (once, before any work) and evaluate per frame.

A schedule describes one video (format v1)::

    input: logo.png            # image path relative to this file, or the literal "noise"
    output: out/logo.mp4       # relative to this file (the renderer creates the folder)
    size: [1280, 720]          # width, height: 32..8192, both even for yuv420p/yuv422p/nv12
    fps: 30                    # > 0, <= 240
    seed: 0                    # integer 0..2**32-1
    model: inception_v3        # a name known to dreamvid.model.layer_catalogue
    model_weights: null        # optional weight file (torchvision models), relative to this file
    device: auto               # auto | cpu | cuda | cuda:N
    checkpoint_every: 50       # frames between checkpoints, >= 1
    tile: auto                 # gradient tiles: auto (only if a frame does not fit the GPU), null or a side >= 128
    compile: auto              # torch.compile the network: auto (on CUDA), true or false
    encoder: {codec: auto, crf: 18, preset: medium, pix_fmt: yuv420p}
    audio: null                # optional audio file, relative to this file
    defaults:                  # every segment inherits these unless it overrides them
      zoom: 1.02
    segments:                  # non-empty list, played one after the other
      - frames: 150
        layers: {mixed0: 1.0}
      - frames: 150
        layers: {mixed3: 1.0, "mixed4:97": 0.5}
        transition: 30         # blend the objective in from the previous segment over 30 frames
        zoom: {0: 1.02, 149: 1.06}

Only ``input``, ``output`` and ``segments`` are required; every other key has the
default written in the pydantic models below (:class:`ScheduleSpec`,
:class:`EncoderSettings`, :class:`DefaultsSpec` -- the one place defaults live).

Per-segment parameters (``defaults`` keys, each overridable by a segment):
``iterations``, ``step``, ``octaves``, ``octave_scale``, ``jitter``, ``zoom``,
``rotate``, both components of ``translate`` and the colour controls ``colour_strength``,
``input_blend``, ``smoothing`` and ``clip_guard`` (see :mod:`.colour`; ``colour`` and
``colour_reference`` are plain per-segment choices) are *keyframeable*: a number, a
mapping ``{frame_in_segment: value}`` (keys >= 0, increasing, each below the
segment's frame count; keys in ``defaults`` are checked against every segment that
inherits them) or a Deforum string ``"0:(1.02), 149:(1.06)"``.  Before the first
key the value is the first key's value, after the last key the last value; in
between it follows ``interpolation``: ``linear``, ``step`` (hold the previous key)
or ``smooth`` (smoothstep ``t*t*(3-2t)``).  Integer parameters (iterations,
octaves, jitter) are rounded half up after interpolation.

``layers`` maps ``layer``, ``layer:channel`` or ``layer:c1,c2`` to a weight (may be
negative, not all zero).  With ``transition: T`` the weights at frame ``k < T`` of
the segment are ``(1 - k/T) * previous + (k/T) * current`` (a key missing on one side
counts 0).

Every problem is reported, one line each, as
``<schedule file>: <key path>: <what is wrong>; expected <what>``, gathered in a
:class:`ScheduleError`.  Structural checks (types, ranges, unknown keys, layer
names, files) run together; checks that need the whole schedule to be well formed
(size parity vs pix_fmt, keyframes inherited from ``defaults``, the first
segment's transition) run once those pass.
"""

from __future__ import annotations

import bisect
import difflib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .errors import InputError

__all__ = [
    "CODECS",
    "DefaultsSpec",
    "EncoderSettings",
    "FrameParams",
    "Keyframes",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "Segment",
    "SegmentSpec",
    "json_schema",
    "load_schedule",
    "parse_schedule",
    "split_layer_key",
    "write_json_schema",
]

NOISE = "noise"  # the `input` value that means "start from noise"
CODECS = ("auto", "libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libsvtav1", "prores_ks")
OBJECTIVES = ("square", "mean")
INTERPOLATIONS = ("linear", "step", "smooth")
COLOUR_MODES = ("lab", "histogram", "none")  # see dreamvid/colour.py
COLOUR_REFERENCES = ("auto", "input", "frame1")  # auto: input for an image, frame1 for noise
# pixel formats with chroma subsampling: width and height must both be even
_SUBSAMPLED_PIX_FMTS = frozenset(
    {"yuv420p", "yuv422p", "nv12", "nv21", "yuvj420p", "yuvj422p", "yuv420p10le", "yuv422p10le", "p010le"}
)
_DEFORUM_EXAMPLE = "'0:(1.02), 149:(1.06)'"

Loc = tuple  # a key path: str = mapping key, int = list index


class ScheduleError(InputError):
    """A schedule that cannot be used; ``messages`` holds one line per problem."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class _Invalid(ValueError):
    """Raised inside validators: problems as (key path relative to the value, text)."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("; ".join(text for _, text in problems))


def _show(value: Any) -> str:
    """A short YAML-ish rendering of a user value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- keyframes


@dataclass(frozen=True)
class _Rule:
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
                    "description": "Deforum keyframes, e.g. " + _DEFORUM_EXAMPLE,
                    "pattern": r"^\s*[0-9]+\s*:\s*\(",
                },
            ],
        }


_RULES = {
    "iterations": _Rule(integer=True, minimum=0),
    "step": _Rule(integer=False, minimum=0, exclusive=True),
    "octaves": _Rule(integer=True, minimum=1),
    "octave_scale": _Rule(integer=False, minimum=1, exclusive=True),
    "jitter": _Rule(integer=True, minimum=0),
    "zoom": _Rule(integer=False, minimum=0, exclusive=True),
    "rotate": _Rule(integer=False),
    "translate": _Rule(integer=False),
    "colour_strength": _Rule(integer=False, minimum=0, maximum=1),
    "input_blend": _Rule(integer=False, minimum=0, maximum=1),
    "smoothing": _Rule(integer=False, minimum=0, maximum=0.95),
    "clip_guard": _Rule(integer=False, minimum=0, maximum=0.25),
}
KEYFRAMED = ("iterations", "step", "octaves", "octave_scale", "jitter", "zoom", "rotate", "translate",
             "colour_strength", "input_blend", "smoothing", "clip_guard")
COLOUR_KEYS = ("colour", "colour_reference")  # per-segment, not keyframeable


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


def _parse_keyframes(value: Any, rule: _Rule) -> Keyframes:
    """Number, {frame: value} mapping or Deforum string -> Keyframes; raises _Invalid."""
    accepted = f"{rule.expected}, a mapping {{frame: value}} or a string like {_DEFORUM_EXAMPLE}"
    entries: list[tuple[Loc, Any, Any, bool]] = []  # (loc, frame, value, value came from text)
    problems: list[tuple[Loc, str]] = []
    if _is_number(value):
        entries.append(((), 0, value, False))
    elif isinstance(value, str):
        pieces = value.split(",")
        if pieces and not pieces[-1].strip() and len(pieces) > 1:
            pieces = pieces[:-1]  # a trailing comma is fine
        for piece in pieces:
            m = _DEFORUM_ENTRY.fullmatch(piece)
            if m is None:
                whole = f" in {_show(value)}" if piece.strip() != value.strip() else ""
                raise _Invalid([((), f"bad keyframe entry {piece.strip()!r}{whole}; expected "
                                     f"'frame:(number)' entries like {_DEFORUM_EXAMPLE}, or {rule.expected}")])
            entries.append(((m.group(1),), int(m.group(1)), float(m.group(2)), True))
    elif isinstance(value, Mapping):
        if not value:
            raise _Invalid([((), f"empty keyframe mapping; expected {accepted}")])
        for key, val in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                frame = key
            elif isinstance(key, str) and re.fullmatch(r"\s*-?\d+\s*", key):
                frame = int(key)
            else:
                problems.append(((str(key),), f"keyframe key {_show(key)} is not a frame number; "
                                              "expected an integer frame in the segment >= 0"))
                continue
            entries.append(((str(key),), frame, val, False))
    else:
        raise _Invalid([((), f"got {_show(value)}; expected {accepted}")])

    points: list[tuple[int, float]] = []
    for loc, frame, val, textual in entries:
        if frame < 0:
            problems.append((loc, f"negative keyframe {frame}; expected a frame in the segment >= 0"))
            continue
        if not _is_number(val) or (rule.integer and not textual and not isinstance(val, int)):
            problems.append((loc, f"got {_show(val)}; expected {rule.expected}"))
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
        raise _Invalid(problems)
    return Keyframes(tuple(points), integer=rule.integer)


def _keyframeable(name: str, description: str) -> Any:
    rule = _RULES[name]
    return Annotated[
        Keyframes,
        PlainValidator(lambda value: _parse_keyframes(value, rule)),
        WithJsonSchema(rule.json_schema(description)),
    ]


# ------------------------------------------------------------------------------ layers

_LAYER_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(?::(\d+(?:,\d+)*))?")
_LAYER_KEY_PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_.]*\s*(:\s*[0-9]+\s*(,\s*[0-9]+\s*)*)?$"


def split_layer_key(key: str) -> tuple[str, tuple[int, ...] | None]:
    """``"mixed4:97,98"`` -> ``("mixed4", (97, 98))``; ``"mixed4"`` -> ``("mixed4", None)``.

    Raises ValueError for a key that is not ``layer``, ``layer:c`` or ``layer:c1,c2``.
    """
    m = _LAYER_KEY.fullmatch(re.sub(r"\s+", "", key))
    if m is None:
        raise ValueError(f"bad layer key {key!r}")
    channels = tuple(int(c) for c in m.group(2).split(",")) if m.group(2) else None
    return m.group(1), channels


def _parse_layers(value: Any, info: ValidationInfo) -> tuple[tuple[str, float], ...]:
    """Layer mapping -> ((canonical key, weight), ...); checks names against the catalogue."""
    expected = "a non-empty mapping of layer name (or 'layer:channel', 'layer:c1,c2') to weight"
    if not isinstance(value, Mapping):
        raise _Invalid([((), f"got {_show(value)}; expected {expected}")])
    if not value:
        raise _Invalid([((), f"no layers; expected {expected}")])
    catalogue: Mapping[str, int] | None = (info.context or {}).get("layers")
    problems: list[tuple[Loc, str]] = []
    terms: dict[str, float] = {}
    for key, weight in value.items():
        loc = (str(key),)
        if not isinstance(key, str):
            problems.append((loc, f"layer key {_show(key)} is not a string; expected a layer name"))
            continue
        try:
            layer, channels = split_layer_key(key)
        except ValueError:
            problems.append((loc, "bad layer key; expected 'layer', 'layer:channel' or 'layer:c1,c2'"))
            continue
        canonical = layer + (":" + ",".join(map(str, channels)) if channels is not None else "")
        if channels is not None and len(set(channels)) != len(channels):
            problems.append((loc, "a channel is listed twice; expected distinct channels"))
        if catalogue is not None:
            if layer not in catalogue:
                names = list(catalogue)
                close = difflib.get_close_matches(layer, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append((loc, f"unknown layer {layer!r}{hint}; expected one of {', '.join(names)}"))
            elif channels is not None:
                count = catalogue[layer]
                for c in channels:
                    if c >= count:
                        problems.append((loc, f"channel {c} out of range; expected 0..{count - 1} "
                                              f"({layer} has {count} channels)"))
        if not _is_number(weight) or not math.isfinite(weight):
            problems.append((loc, f"got {_show(weight)}; expected a finite number (the layer's weight)"))
            continue
        if canonical in terms:
            problems.append((loc, f"same layer term as another key ({canonical!r}); expected each term once"))
            continue
        terms[canonical] = float(weight)
    if not problems and all(w == 0.0 for w in terms.values()):
        problems.append(((), "all layer weights are zero; expected at least one non-zero weight"))
    if problems:
        raise _Invalid(problems)
    return tuple(terms.items())


Layers = Annotated[
    tuple[tuple[str, float], ...],
    PlainValidator(_parse_layers),
    WithJsonSchema({
        "type": "object",
        "description": "layer name, 'layer:channel' or 'layer:c1,c2' -> weight (not all zero)",
        "minProperties": 1,
        "propertyNames": {"pattern": _LAYER_KEY_PATTERN},
        "additionalProperties": {"type": "number"},
    }),
]

# ------------------------------------------------------------- the file format (pydantic)

Int = Annotated[int, Strict()]  # YAML 10 -- not 10.0, "10" or true
Num = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # YAML 1, 1.5 -- not "1" or true
Str = Annotated[str, Strict()]

Iterations = _keyframeable("iterations", "gradient-ascent steps per octave per frame: integer >= 0, keyframeable")
Step = _keyframeable("step", "gradient step size: number > 0, keyframeable")
Octaves = _keyframeable("octaves", "number of octaves (image scales): integer >= 1, keyframeable")
OctaveScale = _keyframeable("octave_scale", "size ratio between octaves: number > 1, keyframeable")
Jitter = _keyframeable("jitter", "random shift in pixels: integer >= 0, keyframeable")
Zoom = _keyframeable("zoom", "scale per frame, > 1 zooms in: number > 0, keyframeable")
Rotate = _keyframeable("rotate", "degrees per frame: number, keyframeable")
Shift = _keyframeable("translate", "pixels per frame: number, keyframeable")
ColourStrength = _keyframeable("colour_strength", "how far colour matching moves each frame: number 0..1, "
                                                  "keyframeable")
InputBlend = _keyframeable("input_blend", "share of the input image blended back into each frame: number 0..1, "
                                          "keyframeable")
Smoothing = _keyframeable("smoothing", "share of the camera-moved previous frame kept (temporal smoothing "
                                       "against flicker): number 0..0.95, keyframeable")
ClipGuard = _keyframeable("clip_guard", "margin from 0 and 1 that each frame is shrunk into (contrast guard "
                                        "against blown-out pixels): number 0..0.25, keyframeable")
_COLOUR_DESCRIPTION = ("colour matching to the reference after each dream: histogram (per RGB channel), "
                       "lab (LAB mean/std) or none")
_REFERENCE_DESCRIPTION = ("what colour matching matches: input (frame 0, the fitted input image), frame1 (the first "
                          "dreamed frame) or auto (input, or frame1 when input is noise)")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EncoderSettings(_Spec):
    """How ffmpeg encodes the frames."""

    codec: Literal[CODECS] = Field("auto", description="one of " + ", ".join(CODECS))  # auto: the encoder picks
    crf: Int = Field(18, ge=0, le=51, description="an integer 0..51 (lower is better quality)")
    preset: Str = Field("medium", min_length=1, description="an encoder preset name, e.g. medium")
    pix_fmt: Str = Field("yuv420p", pattern=r"^[a-z0-9_]+$", description="an ffmpeg pixel format, e.g. yuv420p")


class DefaultsSpec(_Spec):
    """Per-segment rendering parameters and their defaults; segments inherit or override them."""

    iterations: Iterations = 10  # gradient-ascent steps per octave, per frame
    step: Step = 0.01  # gradient step size
    octaves: Octaves = 3  # image scales the dream runs at
    octave_scale: OctaveScale = 1.4  # size ratio between octaves
    jitter: Jitter = 32  # random shift in pixels
    zoom: Zoom = 1.02  # scale per frame (> 1 zooms in)
    rotate: Rotate = 0.0  # degrees per frame
    translate: tuple[Shift, Shift] = Field((0, 0), description="[x, y] pixels per frame, each keyframeable")
    objective: Literal[OBJECTIVES] = Field("square", description="square (mean of squared activations) or mean")
    interpolation: Literal[INTERPOLATIONS] = Field("linear", description="keyframe interpolation: linear, step or smooth")
    # colour control against drift over long zooms (dreamvid/colour.py; defaults measured in docs/quality.md)
    colour: Literal[COLOUR_MODES] = Field("histogram", description=_COLOUR_DESCRIPTION)
    colour_reference: Literal[COLOUR_REFERENCES] = Field("auto", description=_REFERENCE_DESCRIPTION)
    colour_strength: ColourStrength = 0.75  # the weakest histogram match that met the targets
    input_blend: InputBlend = 0.0  # share of the input image mixed back into each frame
    smoothing: Smoothing = 0.0  # share of the (camera-moved) previous frame kept
    clip_guard: ClipGuard = 0.0  # frames reaching 0 or 1 are mapped into [clip_guard, 1 - clip_guard]


class SegmentSpec(_Spec):
    """One segment: frames and layers, plus any `defaults` key it overrides (null = inherit)."""

    frames: Int = Field(ge=1, description="an integer >= 1 (frames in this segment)")
    layers: Layers = Field(description="a non-empty mapping of layer name (or 'layer:channel', 'layer:c1,c2') to weight")
    transition: Int = Field(0, ge=0, description="an integer 0..frames: frames over which the previous "
                                                 "segment's layers blend into these (0 on the first segment)")
    iterations: Optional[Iterations] = None
    step: Optional[Step] = None
    octaves: Optional[Octaves] = None
    octave_scale: Optional[OctaveScale] = None
    jitter: Optional[Jitter] = None
    zoom: Optional[Zoom] = None
    rotate: Optional[Rotate] = None
    translate: Optional[tuple[Shift, Shift]] = Field(None, description="[x, y] pixels per frame, each keyframeable")
    objective: Optional[Literal[OBJECTIVES]] = Field(None, description="square or mean")
    interpolation: Optional[Literal[INTERPOLATIONS]] = Field(None, description="linear, step or smooth")
    colour: Optional[Literal[COLOUR_MODES]] = Field(None, description=_COLOUR_DESCRIPTION)
    colour_reference: Optional[Literal[COLOUR_REFERENCES]] = Field(None, description=_REFERENCE_DESCRIPTION)
    colour_strength: Optional[ColourStrength] = None
    input_blend: Optional[InputBlend] = None
    smoothing: Optional[Smoothing] = None
    clip_guard: Optional[ClipGuard] = None

    def keyframes(self) -> list[tuple[Loc, Keyframes]]:
        """The keyframed values this segment sets itself, with their key paths."""
        return _keyframes_of(self)

    @model_validator(mode="after")
    def _fits_frames(self) -> "SegmentSpec":
        problems: list[tuple[Loc, str]] = []
        if self.transition > self.frames:
            problems.append((("transition",), f"{self.transition} is longer than the segment; "
                                              f"expected 0..{self.frames} (the segment's frames)"))
        for loc, kf in self.keyframes():
            for frame in kf.frames:
                if frame >= self.frames:
                    problems.append((loc + (str(frame),), f"keyframe {frame} is beyond the segment; "
                                                          f"expected a frame < {self.frames} (its frame count)"))
        if problems:
            raise _Invalid(problems)
        return self


def _keyframes_of(spec: DefaultsSpec | SegmentSpec) -> list[tuple[Loc, Keyframes]]:
    out: list[tuple[Loc, Keyframes]] = []
    for name in KEYFRAMED:
        value = getattr(spec, name)
        if name == "translate":
            out.extend(((name, i), kf) for i, kf in enumerate(value or ()))
        elif value is not None:
            out.append(((name,), value))
    return out


_TILE_DESCRIPTION = "null, 'auto' or an integer >= 128 (gradient tile side in pixels)"
_COMPILE_DESCRIPTION = "auto, true or false (torch.compile the network; auto: on CUDA only)"


def _check_tile(value: Any) -> int | str | None:
    from .dream import MIN_TILE

    if value is None or value == "auto" or (type(value) is int and value >= MIN_TILE):
        return value
    raise _Invalid([((), f"got {_show(value)}; expected {_TILE_DESCRIPTION}")])


def _check_compile(value: Any) -> str | bool:
    if value == "auto" or type(value) is bool:
        return value
    raise _Invalid([((), f"got {_show(value)}; expected {_COMPILE_DESCRIPTION}")])


Tile = Annotated[Any, PlainValidator(_check_tile), WithJsonSchema({
    "anyOf": [{"type": "null"}, {"const": "auto"}, {"type": "integer", "minimum": 128}],
    "description": _TILE_DESCRIPTION})]
Compile = Annotated[Any, PlainValidator(_check_compile), WithJsonSchema({
    "anyOf": [{"const": "auto"}, {"type": "boolean"}], "description": _COMPILE_DESCRIPTION})]


class ScheduleSpec(_Spec):
    """A dreamvid schedule (format v1), as written in the YAML file."""

    model_config = ConfigDict(title="dreamvid schedule")

    input: Str = Field(description="an image path relative to this file, or 'noise'")
    output: Str = Field(description="a video file path relative to this file")
    size: tuple[Annotated[Int, Field(ge=32, le=8192)], Annotated[Int, Field(ge=32, le=8192)]] = Field(
        (1280, 720), description="[width, height], each 32..8192 pixels (both even for yuv420p/yuv422p/nv12)")
    fps: Num = Field(30, gt=0, le=240, description="a number > 0 and <= 240 (frames per second)")
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="an integer 0..4294967295 (random seed)")
    model: Str = Field("inception_v3", description="a model name: inception_v3, googlenet, "
                                                   "torchvision_inception_v3 or vgg16")
    model_weights: Optional[Str] = Field(None, description="a weight file path relative to this file, or null")
    device: Str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", description="auto, cpu, cuda or cuda:N")
    checkpoint_every: Int = Field(50, ge=1, description="an integer >= 1 (frames between checkpoints)")
    tile: Tile = "auto"  # auto: tile only when a frame would not fit in GPU memory (never on the CPU)
    compile: Compile = "auto"  # auto: torch.compile on CUDA, not on the CPU (where it does not pay)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings, description="a mapping with codec, crf, "
                                                                                  "preset, pix_fmt")
    audio: Optional[Str] = Field(None, description="an audio file path relative to this file, or null")
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec, description="a mapping of per-segment "
                                                                            "parameters (iterations, step, ...)")
    segments: tuple[SegmentSpec, ...] = Field(description="a non-empty list of segments, each with frames and "
                                                          "layers", json_schema_extra={"minItems": 1})

    @field_validator("segments", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # checked here, not with min_length, which also fires when a segment is invalid
        if isinstance(value, (list, tuple)) and not value:
            raise _Invalid([((), "got an empty list; expected " + cls.model_fields["segments"].description)])
        return value

    @field_validator("input", "output", "model_weights", "audio")
    @classmethod
    def _check_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise _Invalid([((), f"empty path; expected {cls.model_fields[info.field_name].description}")])
        ctx = info.context or {}
        if info.field_name == "output":
            _check_output(value, info.data.get("input"), ctx)
            return value
        if not ctx.get("check_files"):
            return value
        if info.field_name == "input" and value == NOISE:
            return value
        path = _resolve_path(ctx["base"], value)
        if not path.is_file():
            what = "file not found" if not path.exists() else "not a file"
            raise _Invalid([((), f"{what}: {path}; expected an existing file (paths are relative to the "
                                 "schedule file)")])
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str, info: ValidationInfo) -> str:
        problem = (info.context or {}).get("model_problem")
        if problem:
            raise _Invalid([((), problem)])
        return value


def _check_output(value: str, input_value: str | None, ctx: dict) -> None:
    """The output must be a video file name whose folders can be created (the renderer
    creates them), and not the input image: found now, not after hours of rendering."""
    from .encode import VIDEO_SUFFIXES, output_problem

    if not ctx.get("check_files"):
        if Path(value).suffix.lower() not in VIDEO_SUFFIXES:
            raise _Invalid([((), f"unsupported video file extension {Path(value).suffix or '(none)'!r}; "
                                 f"expected a file name ending in {', '.join(VIDEO_SUFFIXES)}")])
        return
    path = _resolve_path(ctx["base"], value)
    if input_value not in (None, NOISE) and path == _resolve_path(ctx["base"], input_value):
        raise _Invalid([((), f"{path} is the input image; expected another file (the video must not overwrite it)")])
    problem = output_problem(path)
    if problem:
        raise _Invalid([((), problem if problem.startswith(str(path)) else f"{path}: {problem}")])


def _resolve_path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


# ------------------------------------------------------------------ the parsed schedule


@dataclass(frozen=True)
class Segment:
    """A segment with `defaults` merged in; ``start`` is its first frame in the video."""

    index: int
    start: int
    frames: int
    layers: tuple[tuple[str, float], ...]  # (canonical key, weight) in file order
    transition: int
    iterations: Keyframes
    step: Keyframes
    octaves: Keyframes
    octave_scale: Keyframes
    jitter: Keyframes
    zoom: Keyframes
    rotate: Keyframes
    translate: tuple[Keyframes, Keyframes]
    objective: str
    interpolation: str
    colour_strength: Keyframes
    input_blend: Keyframes
    smoothing: Keyframes
    clip_guard: Keyframes
    colour: str
    colour_reference: str

    @property
    def layer_weights(self) -> dict[str, float]:
        return dict(self.layers)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"frames": self.frames, "layers": dict(self.layers), "transition": self.transition}
        for name in KEYFRAMED:
            value = getattr(self, name)
            data[name] = [kf.to_data() for kf in value] if name == "translate" else value.to_data()
        data["objective"] = self.objective
        data["interpolation"] = self.interpolation
        data.update({name: getattr(self, name) for name in COLOUR_KEYS})
        return data


@dataclass(frozen=True)
class FrameParams:
    """Everything the renderer needs for one output frame."""

    index: int
    segment: int
    frame_in_segment: int
    iterations: int
    step: float
    octaves: int
    octave_scale: float
    jitter: int
    zoom: float
    rotate: float
    translate: tuple[float, float]
    objective: str  # "square" | "mean"
    layers: dict[str, float]  # blended objective weights, zeros dropped
    # colour control (dreamvid/colour.py); these neutral values do nothing
    colour: str = "none"  # "lab" | "histogram" | "none"
    colour_reference: str = "auto"  # "auto" | "input" | "frame1"
    colour_strength: float = 0.0
    input_blend: float = 0.0
    smoothing: float = 0.0
    clip_guard: float = 0.0


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


@dataclass(frozen=True)
class Schedule:
    """A parsed, validated schedule. Build it with :func:`load_schedule` or :func:`parse_schedule`."""

    source: Path
    input_path: Path | None  # None: start from noise
    output_path: Path
    audio_path: Path | None
    model_weights_path: Path | None
    size: tuple[int, int]  # (width, height)
    fps: float
    seed: int
    model: str
    device: str
    checkpoint_every: int
    encoder: EncoderSettings
    segments: tuple[Segment, ...]
    tile: int | str | None = "auto"  # gradient tile side, "auto" or None (see dreamvid.dream.dream_frame)
    compile: str | bool = "auto"  # torch.compile the network: "auto" (on CUDA), True, False
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(s.start for s in self.segments))

    @property
    def total_frames(self) -> int:
        last = self.segments[-1]
        return last.start + last.frames

    def segment_of(self, n: int) -> tuple[int, int]:
        """(segment index, frame in segment) of video frame ``n``; IndexError outside the video."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"frame index must be an int, not {type(n).__name__}")
        if not 0 <= n < self.total_frames:
            raise IndexError(f"frame {n} outside 0..{self.total_frames - 1}")
        i = bisect.bisect_right(self._starts, n) - 1
        return i, n - self._starts[i]

    def layers_at(self, n: int) -> dict[str, float]:
        """Objective weights at frame ``n`` after the transition blend, zero weights dropped."""
        i, k = self.segment_of(n)
        seg = self.segments[i]
        if i == 0 or k >= seg.transition:
            weights = dict(seg.layers)
        else:
            a = k / seg.transition
            weights = {key: (1.0 - a) * w for key, w in self.segments[i - 1].layers}
            for key, w in seg.layers:
                weights[key] = weights.get(key, 0.0) + a * w
        return {key: w for key, w in weights.items() if w != 0.0}

    def params(self, n: int) -> FrameParams:
        i, k = self.segment_of(n)
        seg = self.segments[i]

        def at(kf: Keyframes) -> float:
            return kf.at(k, seg.interpolation)

        return FrameParams(
            index=n,
            segment=i,
            frame_in_segment=k,
            iterations=_round_half_up(at(seg.iterations)),
            step=at(seg.step),
            octaves=_round_half_up(at(seg.octaves)),
            octave_scale=at(seg.octave_scale),
            jitter=_round_half_up(at(seg.jitter)),
            zoom=at(seg.zoom),
            rotate=at(seg.rotate),
            translate=(at(seg.translate[0]), at(seg.translate[1])),
            objective=seg.objective,
            layers=self.layers_at(n),
            colour=seg.colour,
            colour_reference=seg.colour_reference,
            colour_strength=at(seg.colour_strength),
            input_blend=at(seg.input_blend),
            smoothing=at(seg.smoothing),
            clip_guard=at(seg.clip_guard),
        )

    def summary(self) -> str:
        w, h = self.size
        lines = [
            f"{self.source.name}: {self.total_frames} frames, {self.total_frames / self.fps:.2f} s at "
            f"{self.fps:g} fps, {w}x{h}, model {self.model}, seed {self.seed}",
            f"  input {self.input_path or NOISE} -> output {self.output_path} "
            f"({self.encoder.codec}, crf {self.encoder.crf}, {self.encoder.pix_fmt})",
        ]
        for seg in self.segments:
            layers = ", ".join(f"{key} {weight:g}" for key, weight in seg.layers)
            blend = f", transition {seg.transition}" if seg.transition else ""
            lines.append(f"  segment {seg.index}: frames {seg.start}-{seg.start + seg.frames - 1} "
                         f"({seg.frames}){blend}, layers {layers}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Canonical plain data (JSON-serialisable, absolute paths, defaults merged into segments).

        It is itself a valid schedule: ``parse_schedule(s.to_dict(), source=s.source) == s``.
        """
        def opt(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return {
            "input": opt(self.input_path) or NOISE,
            "output": str(self.output_path),
            "size": list(self.size),
            "fps": self.fps,
            "seed": self.seed,
            "model": self.model,
            "model_weights": opt(self.model_weights_path),
            "device": self.device,
            "checkpoint_every": self.checkpoint_every,
            "tile": self.tile,
            "compile": self.compile,
            "encoder": self.encoder.model_dump(),
            "audio": opt(self.audio_path),
            "segments": [seg.to_dict() for seg in self.segments],
        }


# ----------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader whose node tree is checked for duplicate keys and unsafe tags first."""

    _TAGS = frozenset("tag:yaml.org,2002:" + t for t in
                      ("null", "bool", "int", "float", "str", "seq", "map", "merge", "timestamp"))

    def problems(self, node: yaml.Node | None) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        self._walk(node, (), found, set())
        return found

    def _walk(self, node: yaml.Node | None, loc: Loc, found: list, seen: set[int]) -> None:
        if node is None or id(node) in seen:  # aliases may repeat (or contain) a node
            return
        seen.add(id(node))
        line = node.start_mark.line + 1
        if node.tag not in self._TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            found.append((loc, f"tag {tag!r} is not allowed (line {line}); expected plain YAML values"))
            return
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._walk(value_node, loc, found, seen)
                    continue
                key = self._key(key_node)
                sub = loc + (str(key),)
                key_line = key_node.start_mark.line + 1
                if key in first:
                    found.append((sub, f"duplicate key (line {key_line}, first at line {first[key]}); "
                                       "expected each key once"))
                else:
                    first[key] = key_line
                self._walk(key_node, sub, found, seen)
                self._walk(value_node, sub, found, seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, loc + (i,), found, seen)

    def _key(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag in self._TAGS:
            try:
                key = self.construct_object(node)
                hash(key)
                return key
            except (yaml.YAMLError, TypeError, ValueError):
                pass
        return (node.tag, id(node))


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_yaml(text: str) -> tuple[Any, list[tuple[Loc, str]]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        problems = loader.problems(node)
        if problems:
            return None, problems
        return (loader.construct_document(node) if node is not None else None), []
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        return None, [((), f"{where}not valid YAML ({what}); expected a YAML mapping of schedule keys")]
    finally:
        loader.dispose()


def load_schedule(
    path: str | os.PathLike,
    *,
    check_files: bool = True,
    catalogue: Callable[[str], Mapping[str, int]] | None = None,
) -> Schedule:
    """Read, parse and validate a schedule file; raises ScheduleError listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ScheduleError([f"{name}: cannot read the schedule ({reason}); expected a readable YAML file"]) from None
    data, problems = _read_yaml(text)
    if problems:
        raise ScheduleError([_message(name, loc, text) for loc, text in problems])
    return parse_schedule(data, source=Path(path), check_files=check_files, catalogue=catalogue)


def parse_schedule(
    data: Any,
    *,
    source: str | os.PathLike,
    check_files: bool = True,
    catalogue: Callable[[str], Mapping[str, int]] | None = None,
) -> Schedule:
    """Validate already-loaded schedule data; ``source`` names the file (messages, relative paths).

    ``catalogue(model_name)`` returns the model's ordered layer -> channel count mapping and
    raises InputError (or KeyError) for an unknown model; it defaults to
    ``dreamvid.model.layer_catalogue``.
    """
    source = Path(source)
    name = str(source)
    if not isinstance(data, Mapping):
        what = "an empty file" if data is None else _show(data)
        raise ScheduleError([f"{name}: got {what} at the top level; expected a mapping of schedule keys "
                             "(input, output, segments, ...)"])
    base = source.resolve().parent
    context: dict[str, Any] = {"base": base, "check_files": check_files, "layers": None, "model_problem": None}
    model = data.get("model", ScheduleSpec.model_fields["model"].default)
    if isinstance(model, str):
        if catalogue is None:
            from .model import layer_catalogue as catalogue  # lazily: model.py imports torch
        try:
            context["layers"] = dict(catalogue(model))
        except (InputError, KeyError) as err:
            problem = _first_line(err)
            if "; expected" not in problem:
                problem += "; expected " + ScheduleSpec.model_fields["model"].description
            context["model_problem"] = problem
    try:
        spec = ScheduleSpec.model_validate(data, context=context)
    except ValidationError as err:
        raise ScheduleError([_message(name, loc, text) for loc, text in _translate(err)]) from None
    problems = _whole_schedule_problems(spec)
    if problems:
        raise ScheduleError([_message(name, loc, text) for loc, text in problems])
    return _build(spec, source, base)


def _first_line(err: Exception) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return (text.splitlines() or [f"unknown model ({type(err).__name__})"])[0]


def _message(name: str, loc: Loc, text: str) -> str:
    return f"{name}: {_format_loc(loc)}: {text}" if loc else f"{name}: {text}"


def _whole_schedule_problems(spec: ScheduleSpec) -> list[tuple[Loc, str]]:
    """Checks that need the whole (structurally valid) schedule."""
    problems: list[tuple[Loc, str]] = []
    w, h = spec.size
    if spec.encoder.pix_fmt in _SUBSAMPLED_PIX_FMTS and (w % 2 or h % 2):
        problems.append((("size",), f"{w}x{h} has an odd side; expected even width and height for "
                                    f"pix_fmt {spec.encoder.pix_fmt}"))
    if spec.segments[0].transition:
        problems.append((("segments", 0, "transition"), "the first segment has nothing to blend from; expected 0"))
    for loc, kf in _keyframes_of(spec.defaults):
        name = loc[0]
        inheriting = [(i, s.frames) for i, s in enumerate(spec.segments) if getattr(s, name) is None]
        for frame in kf.frames:
            short = [(i, frames) for i, frames in inheriting if frame >= frames]
            if short:
                names = ", ".join(f"segments[{i}] ({frames} frames)" for i, frames in short)
                verb = "inherits" if len(short) == 1 else "inherit"
                problems.append((("defaults",) + loc + (str(frame),),
                                 f"keyframe {frame} is beyond the end of {names}, which {verb} it; expected a "
                                 f"frame < {min(f for _, f in short)} or an override in the segment"))
    return problems


def _build(spec: ScheduleSpec, source: Path, base: Path) -> Schedule:
    def path(value: str | None) -> Path | None:
        return None if value is None else _resolve_path(base, value)

    segments = []
    start = 0
    for i, seg in enumerate(spec.segments):
        merged = {name: getattr(seg, name) if getattr(seg, name) is not None else getattr(spec.defaults, name)
                  for name in (*KEYFRAMED, "objective", "interpolation", *COLOUR_KEYS)}
        segments.append(Segment(index=i, start=start, frames=seg.frames, layers=seg.layers,
                                transition=seg.transition, **merged))
        start += seg.frames
    return Schedule(
        source=source.resolve(),
        input_path=None if spec.input == NOISE else path(spec.input),
        output_path=path(spec.output),
        audio_path=path(spec.audio),
        model_weights_path=path(spec.model_weights),
        size=spec.size,
        fps=float(spec.fps),
        seed=spec.seed,
        model=spec.model,
        device=spec.device,
        checkpoint_every=spec.checkpoint_every,
        encoder=spec.encoder,
        segments=tuple(segments),
        tile=spec.tile,
        compile=spec.compile,
    )


# -------------------------------------------------------- pydantic errors -> our messages


def _model_at(parent: Loc) -> type[BaseModel] | None:
    """The pydantic model whose keys live at ``parent``."""
    if parent == ():
        return ScheduleSpec
    if parent == ("encoder",):
        return EncoderSettings
    if parent == ("defaults",):
        return DefaultsSpec
    if len(parent) == 2 and parent[0] == "segments" and isinstance(parent[1], int):
        return SegmentSpec
    return None


def _description(loc: Loc) -> str | None:
    """The description of the field that ``loc`` is in (or an item of)."""
    for end in range(len(loc), 0, -1):
        model = _model_at(loc[:end - 1])
        if model is not None and loc[end - 1] in model.model_fields:
            return model.model_fields[loc[end - 1]].description
    return None


def _translate(err: ValidationError) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for e in err.errors():
        loc, kind, got, ctx = tuple(e["loc"]), e["type"], e.get("input"), e.get("ctx") or {}
        expected = _description(loc) or e["msg"].splitlines()[0]
        if kind == "value_error" and isinstance(ctx.get("error"), _Invalid):
            problems.extend((loc + sub, text) for sub, text in ctx["error"].problems)
        elif kind in ("extra_forbidden", "invalid_key"):
            model = _model_at(loc[:-1])
            valid = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(valid)
            if str(loc[-1]).lstrip("!%").lower() in ("include", "includes", "import", "extends"):
                hint = ("schedules have no includes; expected one self-contained file (reuse values "
                        "within it with YAML anchors: &name, *name, <<: *name)")
            problems.append((loc[:-1] + (str(loc[-1]),), f"unknown key; {hint}"))
        elif kind == "model_type":
            model = _model_at(loc)
            keys = ", ".join(list(model.model_fields)[:3]) + ", ..." if model else "keys"
            problems.append((loc, f"got {_show(got)}; expected a mapping of {keys}"))
        elif kind == "missing" and loc and isinstance(loc[-1], int):  # a short [x, y] pair
            problems.append((loc[:-1], f"too few items; expected {expected}"))
        elif kind == "missing":
            problems.append((loc, f"missing required key; expected {expected}"))
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
            close = difflib.get_close_matches(str(got), choices, n=1) if isinstance(got, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((loc, f"got {_show(got)}{hint}; expected one of {', '.join(choices)}"))
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            problems.append((loc, f"{_show(got)} is out of range; expected {expected}"))
        elif kind in ("too_short", "too_long"):
            count = len(got) if hasattr(got, "__len__") else "?"
            what = "an empty list" if count == 0 else f"{count} item{'' if count == 1 else 's'}"
            problems.append((loc, f"got {what}; expected {expected}"))
        elif kind == "finite_number":
            problems.append((loc, f"got {_show(got)}; expected a finite number"))
        else:  # type errors, pattern mismatches, ...
            problems.append((loc, f"got {_show(got)}; expected {expected}"))
    return problems


# ------------------------------------------------------------------------- JSON schema


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the schedule format, for editors (yaml-language-server)."""
    schema = ScheduleSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_json_schema(path: str | os.PathLike) -> None:
    """Write :func:`json_schema` to ``path`` (indent 2, trailing newline)."""
    Path(path).write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
