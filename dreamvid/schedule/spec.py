"""The schedule file format (v1): pydantic models of what the YAML may say.

The models below are the one definition of every key: its type, range, description (which
becomes the JSON Schema editors complete from, and the "expected ..." of error messages) and
default (taken from :mod:`.defaults`). Unknown keys are rejected. Validators raise
:class:`.problems.Invalid` so that every message names its key path; checks that need the
whole schedule (size parity vs pix_fmt, keyframes inherited from ``defaults``, the first
segment's transition) are in :func:`whole_schedule_problems`.

Nothing here imports torch: layer names are checked against :mod:`.catalogue` (or a
catalogue the caller passes in ``context["layers"]``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from dreamvid.core import defaults as D
from dreamvid.core.files import resolve_path
from dreamvid.core.problems import Invalid, Loc, finite_float, show
from dreamvid.engine.catalogue import LAYER_KEY_PATTERN, MODELS, check_layer_key, split_layer_key
from dreamvid.media.audio import AudioSettings
from dreamvid.schedule.expressions import AUDIO_VARIABLES
from dreamvid.schedule.keyframes import INTERPOLATIONS, Keyframes, Rule, parse_keyframes

NOISE = "noise"  # the `input` value that means "start from noise"
CODECS = ("auto", "libx264", "libx264rgb", "libx265", "h264_nvenc", "hevc_nvenc", "libsvtav1", "prores_ks")
OBJECTIVES = ("square", "mean")
COLOUR_MODES = D.COLOURS  # see dreamvid/pixels/colour.py
COLOUR_REFERENCES = ("auto", "input", "frame1")  # auto: input for an image, frame1 for noise
# pixel formats with chroma subsampling: width and height must both be even
_SUBSAMPLED_PIX_FMTS = frozenset(
    {"yuv420p", "yuv422p", "nv12", "nv21", "yuvj420p", "yuvj422p", "yuv420p10le", "yuv422p10le", "p010le"}
)

# --------------------------------------------------------------------------- keyframes

RULES = {  # what each keyframeable key accepts
    "iterations": Rule(integer=True, minimum=0),
    "cadence": Rule(integer=True, minimum=1),
    "step": Rule(integer=False, minimum=0, exclusive=True),
    "octaves": Rule(integer=True, minimum=1),
    "octave_scale": Rule(integer=False, minimum=1, exclusive=True),
    "jitter": Rule(integer=True, minimum=0),
    "zoom": Rule(integer=False, minimum=0, exclusive=True),
    "rotate": Rule(integer=False),
    "translate": Rule(integer=False),
    "center": Rule(integer=False, minimum=0, maximum=1),
    "colour_strength": Rule(integer=False, minimum=0, maximum=1),
    "input_blend": Rule(integer=False, minimum=0, maximum=1),
    "saturation_match": Rule(integer=False, minimum=0, maximum=1),
    "smoothing": Rule(integer=False, minimum=0, maximum=0.95),
    "clip_guard": Rule(integer=False, minimum=0, maximum=0.25),
    "guide_weight": Rule(integer=False),
    "mask_strength": Rule(integer=False, minimum=0, maximum=1),
    "flow_blend": Rule(integer=False, minimum=0, maximum=1),
    "temporal": Rule(integer=False, minimum=0, maximum=1),
    "attack": Rule(integer=False, minimum=0, maximum=D.MAX_ENVELOPE_S),
    "release": Rule(integer=False, minimum=0, maximum=D.MAX_ENVELOPE_S),
}
KEYFRAMED = tuple(RULES)  # segment keys that take keyframes (the PAIRS are two of them each)
PAIRS = ("translate", "center")  # [x, y] keys, each component keyframed on its own
COLOUR_KEYS = ("colour", "colour_reference")  # per-segment, not keyframeable
MASK_FOLLOWS = ("camera", "frame")  # see dreamvid/renderer.py
GRADIENT_NORMS = ("mean", "laplacian")  # see dreamvid/ascent.py
_NORM_DESCRIPTION = ("how each step's gradient is normalised: mean (divided by its mean absolute value) or "
                     "laplacian (each band of a 4-level Laplacian pyramid by its RMS first: less high-frequency noise)")
VIDEO_KEYS = ("flow",)  # per-segment, not keyframeable; with a video input only
ENVELOPE_KEYS = ("attack", "release")  # keyframeable; they shape the music, so no formula of the music
_CAMERA_DESCRIPTION = ("how zoom, rotate and translate compose: dreamvid (turn and zoom about the centre, then "
                       "translate) or deforum (Deforum's 2D warp: translate, then turn and zoom about pixel "
                       "(W*x, H*y), so the translation turns and scales with the camera)")


def _keyframeable(name: str, description: str) -> Any:
    rule = RULES[name]
    return Annotated[
        Keyframes,
        PlainValidator(lambda value: parse_keyframes(value, rule)),
        WithJsonSchema(rule.json_schema(description)),
    ]


# ------------------------------------------------------------------------------ layers

def _parse_layers(value: Any, info: ValidationInfo) -> tuple[tuple[str, float], ...]:
    """Layer mapping -> ((canonical key, weight), ...); checks names against the catalogue."""
    expected = "a non-empty mapping of layer name (or 'layer:channel', 'layer:c1,c2') to weight"
    if not isinstance(value, Mapping):
        raise Invalid([((), f"got {show(value)}; expected {expected}")])
    if not value:
        raise Invalid([((), f"no layers; expected {expected}")])
    catalogue: Mapping[str, int] | None = (info.context or {}).get("layers")
    problems: list[tuple[Loc, str]] = []
    terms: dict[str, float] = {}
    for key, weight in value.items():
        loc = (str(key),)
        if not isinstance(key, str):
            problems.append((loc, f"layer key {show(key)} is not a string; expected a layer name"))
            continue
        problem = check_layer_key(key, catalogue) if catalogue is not None else None
        try:
            layer, channels = split_layer_key(key)
        except ValueError:
            problem = problem or "bad layer key; expected 'layer', 'layer:channel' or 'layer:c1,c2'"
        if problem:
            problems.append((loc, problem))
            continue
        if finite_float(weight) is None:
            problems.append((loc, f"got {show(weight)}; expected a finite number (the layer's weight)"))
            continue
        canonical = layer + (":" + ",".join(map(str, channels)) if channels is not None else "")
        if canonical in terms:
            problems.append((loc, f"same layer term as another key ({canonical!r}); expected each term once"))
            continue
        terms[canonical] = float(weight)
    if not problems and all(w == 0.0 for w in terms.values()):
        problems.append(((), "all layer weights are zero; expected at least one non-zero weight"))
    if problems:
        raise Invalid(problems)
    return tuple(terms.items())


Layers = Annotated[
    tuple[tuple[str, float], ...],
    PlainValidator(_parse_layers),
    WithJsonSchema({
        "type": "object",
        "description": "layer name, 'layer:channel' or 'layer:c1,c2' -> weight (not all zero)",
        "minProperties": 1,
        "propertyNames": {"pattern": LAYER_KEY_PATTERN},
        "additionalProperties": {"type": "number"},
    }),
]

# ------------------------------------------------------------- the file format (pydantic)

def parse_size(value: Any) -> tuple[int, int]:
    """``[1280, 720]`` or ``"1280x720"`` -> ``(1280, 720)``; the one WxH parser (the schedule,
    batch jobs and the CLI's --size use it). Raises Invalid."""
    sides = f"{D.MIN_SIDE}..{D.MAX_SIDE} pixels"
    expected = f"[width, height] or 'WIDTHxHEIGHT', each {sides}"
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,5}\s*[xX]\s*\d{1,5}\s*", value):
        value = [int(v) for v in re.split(r"[xX]", value)]
    if not isinstance(value, (list, tuple)):
        raise Invalid([((), f"got {show(value)}; expected {expected}")])
    if len(value) != 2:
        raise Invalid([((), f"{'too few' if len(value) < 2 else 'too many'} items; expected {expected}")])
    problems = []
    for i, v in enumerate(value):
        side = ("width", "height")[i]
        if type(v) is not int:
            problems.append(((i,), f"got {show(v)}; expected the {side}, an integer {sides}"))
        elif not D.MIN_SIDE <= v <= D.MAX_SIDE:
            problems.append(((i,), f"{v} is out of range; expected the {side}, {sides}"))
    if problems:
        raise Invalid(problems)
    return value[0], value[1]


Size = Annotated[Any, PlainValidator(parse_size), WithJsonSchema({
    "anyOf": [{"type": "array", "items": {"type": "integer", "minimum": D.MIN_SIDE, "maximum": D.MAX_SIDE},
               "minItems": 2, "maxItems": 2},
              {"type": "string", "pattern": r"^\s*[0-9]+\s*[xX]\s*[0-9]+\s*$"}]})]

Int = Annotated[int, Strict()]  # YAML 10 -- not 10.0, "10" or true
Num = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # YAML 1, 1.5 -- not "1" or true
Str = Annotated[str, Strict()]

Iterations = _keyframeable("iterations", "gradient-ascent steps per octave per frame: integer >= 0, keyframeable")
Cadence = _keyframeable("cadence", "dream every k-th frame and crossfade the camera-moved dreams between them "
                                   "(1: every frame): integer >= 1, keyframeable")
Step = _keyframeable("step", "gradient step size: number > 0, keyframeable")
Octaves = _keyframeable("octaves", "number of octaves (image scales): integer >= 1, keyframeable")
OctaveScale = _keyframeable("octave_scale", "size ratio between octaves: number > 1, keyframeable")
Jitter = _keyframeable("jitter", "random shift in pixels: integer >= 0, keyframeable")
Zoom = _keyframeable("zoom", "scale per frame, > 1 zooms in: number > 0, keyframeable")
Rotate = _keyframeable("rotate", "degrees per frame: number, keyframeable")
Shift = _keyframeable("translate", "pixels per frame: number, keyframeable")
Centre = _keyframeable("center", "fraction of the frame's width (x) or height (y): number 0..1, keyframeable")
_CENTER_DESCRIPTION = "[x, y] the point zoom and rotation turn around, fractions of the frame, each keyframeable"
ColourStrength = _keyframeable("colour_strength", "how far colour matching moves each frame: number 0..1, "
                                                  "keyframeable")
SaturationMatch = _keyframeable("saturation_match", "how far each pixel's HSV saturation moves to the reference's "
                                                    "saturation distribution, at constant luma (with colour "
                                                    "histogram or lab): number 0..1, keyframeable")
InputBlend = _keyframeable("input_blend", "share of the input image blended back into each frame: number 0..1, "
                                          "keyframeable")
Smoothing = _keyframeable("smoothing", "share of the camera-moved previous frame kept (temporal smoothing "
                                       "against flicker): number 0..0.95, keyframeable")
ClipGuard = _keyframeable("clip_guard", "margin from 0 and 1 that each frame is shrunk into (contrast guard "
                                        "against blown-out pixels): number 0..0.25, keyframeable")
GuideWeight = _keyframeable("guide_weight", "weight of the guide image's objective (with `guide:` set): number, "
                                            "keyframeable")
MaskStrength = _keyframeable("mask_strength", "how far dreaming is held back outside the mask's white part (with "
                                              "`mask:` set): number 0..1, keyframeable")
_GUIDE_DESCRIPTION = ("an image path relative to this file, or null: the dream moves toward this image's features "
                      "(fitted to the frame like the input)")
_MASK_DESCRIPTION = ("a greyscale image path relative to this file, or null: dreaming is limited to its white part "
                     "(fitted to the frame like the input)")
FlowBlend = _keyframeable("flow_blend", "share of the previous output, warped along the clip's motion, in the "
                                        "start of a video frame: number 0..1, keyframeable")
Temporal = _keyframeable("temporal", "pull toward the previous dream carried along the motion after every "
                                     "gradient step of a video frame: number 0..1, keyframeable")
Attack = _keyframeable("attack", f"seconds 0..{D.MAX_ENVELOPE_S:g}: the music's rms, bass, mid, treble and onset "
                                  "rise toward a louder value with this time constant, frame by frame (0: at once); "
                                  "keyframeable, not a formula of the music")
Release = _keyframeable("release", f"seconds 0..{D.MAX_ENVELOPE_S:g}: they fall toward a quieter value with this "
                                    "time constant, frame by frame (0: at once); keyframeable, not a formula of the "
                                    "music")
_FLOW_DESCRIPTION = ("optical flow between the frames of a video input: dis, farneback, raft (needs flow_weights) "
                     "or none (plain blend)")
_COLOUR_DESCRIPTION = ("colour matching to the reference after each dream: histogram (per RGB channel), "
                       "lab (LAB mean/std) or none")
_REFERENCE_DESCRIPTION = ("what colour matching matches: input (frame 0, the fitted input image), frame1 (the first "
                          "dreamed frame) or auto (input, or frame1 when input is noise)")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EncoderSettings(_Spec):
    """How ffmpeg encodes the frames."""

    codec: Literal[CODECS] = Field(D.CODEC, description="one of " + ", ".join(CODECS))
    crf: Int = Field(D.CRF, ge=0, le=51, description="an integer 0..51 (lower is better quality)")
    preset: Str = Field(D.PRESET, min_length=1, description="an encoder preset name, e.g. medium")
    pix_fmt: Str = Field(D.PIX_FMT, pattern=r"^[a-z0-9_]+$", description="an ffmpeg pixel format, e.g. yuv420p")


class DefaultsSpec(_Spec):
    """Per-segment rendering parameters and their defaults; segments inherit or override them."""

    iterations: Iterations = D.ITERATIONS
    cadence: Cadence = D.CADENCE
    step: Step = D.STEP
    octaves: Octaves = D.OCTAVES
    octave_scale: OctaveScale = D.OCTAVE_SCALE
    jitter: Jitter = D.JITTER
    zoom: Zoom = D.ZOOM
    rotate: Rotate = D.ROTATE
    translate: tuple[Shift, Shift] = Field(D.TRANSLATE, description="[x, y] pixels per frame, each keyframeable")
    center: tuple[Centre, Centre] = Field(D.CENTER, description=_CENTER_DESCRIPTION)
    camera: Literal[D.CAMERAS] = Field(D.CAMERA, description=_CAMERA_DESCRIPTION)
    objective: Literal[OBJECTIVES] = Field(D.OBJECTIVE, description="square (mean of squared activations) or mean")
    interpolation: Literal[INTERPOLATIONS] = Field(D.INTERPOLATION, description="keyframe interpolation: linear, step or smooth")
    colour: Literal[COLOUR_MODES] = Field(D.COLOUR, description=_COLOUR_DESCRIPTION)
    colour_reference: Literal[COLOUR_REFERENCES] = Field(D.COLOUR_REFERENCE, description=_REFERENCE_DESCRIPTION)
    colour_strength: ColourStrength = D.COLOUR_STRENGTH
    saturation_match: SaturationMatch = D.SATURATION_MATCH
    input_blend: InputBlend = D.INPUT_BLEND
    smoothing: Smoothing = D.SMOOTHING
    clip_guard: ClipGuard = D.CLIP_GUARD
    gradient_norm: Literal[GRADIENT_NORMS] = Field(D.GRADIENT_NORM, description=_NORM_DESCRIPTION)
    guide_weight: GuideWeight = D.GUIDE_WEIGHT
    mask_strength: MaskStrength = D.MASK_STRENGTH
    flow: Literal[D.FLOWS] = Field(D.FLOW, description=_FLOW_DESCRIPTION)
    flow_blend: FlowBlend = D.FLOW_BLEND
    temporal: Temporal = D.TEMPORAL
    attack: Attack = D.ATTACK
    release: Release = D.RELEASE


class SegmentSpec(_Spec):
    """One segment: frames and layers, plus any `defaults` key it overrides (null = inherit)."""

    frames: Int = Field(ge=1, le=D.MAX_FRAMES, description=f"an integer 1..{D.MAX_FRAMES} (frames in this segment)")
    layers: Layers = Field(description="a non-empty mapping of layer name (or 'layer:channel', 'layer:c1,c2') to weight")
    transition: Int = Field(0, ge=0, description="an integer 0..frames: frames over which the previous "
                                                 "segment's layers and camera blend into these (0 on the first segment)")
    iterations: Optional[Iterations] = None
    cadence: Optional[Cadence] = None
    step: Optional[Step] = None
    octaves: Optional[Octaves] = None
    octave_scale: Optional[OctaveScale] = None
    jitter: Optional[Jitter] = None
    zoom: Optional[Zoom] = None
    rotate: Optional[Rotate] = None
    translate: Optional[tuple[Shift, Shift]] = Field(None, description="[x, y] pixels per frame, each keyframeable")
    center: Optional[tuple[Centre, Centre]] = Field(None, description=_CENTER_DESCRIPTION)
    camera: Optional[Literal[D.CAMERAS]] = Field(None, description=_CAMERA_DESCRIPTION)
    objective: Optional[Literal[OBJECTIVES]] = Field(None, description="square or mean")
    interpolation: Optional[Literal[INTERPOLATIONS]] = Field(None, description="linear, step or smooth")
    colour: Optional[Literal[COLOUR_MODES]] = Field(None, description=_COLOUR_DESCRIPTION)
    colour_reference: Optional[Literal[COLOUR_REFERENCES]] = Field(None, description=_REFERENCE_DESCRIPTION)
    colour_strength: Optional[ColourStrength] = None
    saturation_match: Optional[SaturationMatch] = None
    input_blend: Optional[InputBlend] = None
    smoothing: Optional[Smoothing] = None
    clip_guard: Optional[ClipGuard] = None
    gradient_norm: Optional[Literal[GRADIENT_NORMS]] = Field(None, description=_NORM_DESCRIPTION)
    guide_weight: Optional[GuideWeight] = None
    mask_strength: Optional[MaskStrength] = None
    guide: Optional[Str] = Field(None, description=_GUIDE_DESCRIPTION)

    @field_validator("guide")
    @classmethod
    def _check_guide(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _existing_file(value, info, _GUIDE_DESCRIPTION)
    flow: Optional[Literal[D.FLOWS]] = Field(None, description=_FLOW_DESCRIPTION)
    flow_blend: Optional[FlowBlend] = None
    temporal: Optional[Temporal] = None
    attack: Optional[Attack] = None
    release: Optional[Release] = None

    def keyframes(self) -> list[tuple[Loc, Keyframes]]:
        """The keyframed values this segment sets itself, with their key paths."""
        return keyframes_of(self)

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
            raise Invalid(problems)
        return self


def keyframes_of(spec: DefaultsSpec | SegmentSpec) -> list[tuple[Loc, Keyframes]]:
    out: list[tuple[Loc, Keyframes]] = []
    for name in KEYFRAMED:
        value = getattr(spec, name)
        if name in PAIRS:
            out.extend(((name, i), kf) for i, kf in enumerate(value or ()))
        elif value is not None:
            out.append(((name,), value))
    return out


_FPS_DESCRIPTION = (f"a number > 0 and <= {D.MAX_FPS}, a fraction such as '30000/1001', or 'auto' (a video "
                    f"input's own rate; {D.FPS} otherwise) (frames per second)")


def _check_fps(value: Any) -> Fraction | str:
    """``auto``, a number or a fraction string -> ``"auto"`` or the exact rate as a Fraction."""
    rate = None
    if value == D.FPS_AUTO:
        return value
    if finite_float(value) is not None:
        rate = Fraction(value) if type(value) is int else Fraction(repr(float(value)))
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,18}\s*/\s*[0-9]{1,18}\s*", value):
        num, den = (int(v) for v in value.split("/"))
        rate = Fraction(num, den) if den else None
    if rate is None:
        raise Invalid([((), f"got {show(value)}; expected {_FPS_DESCRIPTION}")])
    if not 0 < rate <= D.MAX_FPS:
        raise Invalid([((), f"{show(value)} is out of range; expected a number > 0 and <= {D.MAX_FPS} "
                            "(frames per second)")])
    return rate


Fps = Annotated[Any, PlainValidator(_check_fps), WithJsonSchema({
    "anyOf": [{"const": D.FPS_AUTO}, {"type": "number", "exclusiveMinimum": 0, "maximum": D.MAX_FPS},
              {"type": "string", "pattern": r"^\s*[0-9]+\s*/\s*[0-9]+\s*$"}],
    "description": _FPS_DESCRIPTION})]

_TILE_DESCRIPTION = f"null, 'auto' or an integer >= {D.MIN_TILE} (gradient tile side in pixels)"
_COMPILE_DESCRIPTION = "auto, true or false (torch.compile the network; auto: on CUDA only)"


def _check_tile(value: Any) -> int | str | None:
    if value is None or value == "auto" or (type(value) is int and value >= D.MIN_TILE):
        return value
    raise Invalid([((), f"got {show(value)}; expected {_TILE_DESCRIPTION}")])


def _check_compile(value: Any) -> str | bool:
    if value == "auto" or type(value) is bool:
        return value
    raise Invalid([((), f"got {show(value)}; expected {_COMPILE_DESCRIPTION}")])


Tile = Annotated[Any, PlainValidator(_check_tile), WithJsonSchema({
    "anyOf": [{"type": "null"}, {"const": "auto"}, {"type": "integer", "minimum": D.MIN_TILE}],
    "description": _TILE_DESCRIPTION})]
Compile = Annotated[Any, PlainValidator(_check_compile), WithJsonSchema({
    "anyOf": [{"const": "auto"}, {"type": "boolean"}], "description": _COMPILE_DESCRIPTION})]


_AUDIO = AudioSettings()  # the defaults of `audio_features` live in dreamvid/audio.py
Band = tuple[Num, Num]


class AudioFeaturesSpec(_Spec):
    """How the schedule's audio becomes the formula variables rms, bass, mid, treble, onset, beat."""

    bass: Band = Field(_AUDIO.bass, description="[low, high] Hz of the bass band")
    mid: Band = Field(_AUDIO.mid, description="[low, high] Hz of the mid band")
    treble: Band = Field(_AUDIO.treble, description="[low, high] Hz of the treble band")
    attack: Num = Field(_AUDIO.attack, description="seconds 0..10: rise time of rms and the bands (0: instant)")
    release: Num = Field(_AUDIO.release, description="seconds 0..10: fall time of rms and the bands")
    percentile: Num = Field(_AUDIO.percentile, description="50..100: each feature is divided by this percentile "
                                                            "of itself, then clipped to 1")
    max_gain: Num = Field(_AUDIO.max_gain, description="1..1000: at most this much more gain than dividing by "
                                                       "the maximum (quiet tracks are not blown up)")
    beat_band: Band = Field(_AUDIO.beat_band, description="[low, high] Hz whose onsets make beats")
    beat_threshold: Num = Field(_AUDIO.beat_threshold, description="0..1: how far a beat's onset stands above "
                                                                   "its running median")
    beat_min_gap: Num = Field(_AUDIO.beat_min_gap, description="seconds 0.02..10 between beats, at least")
    beat_decay: Num = Field(_AUDIO.beat_decay, description="seconds 0.01..10: a beat falls from 1 to 0 in this time")

    @model_validator(mode="after")
    def _valid(self) -> "AudioFeaturesSpec":
        problems = AudioSettings.problems(self)  # the same checks as the dataclass (duck-typed)
        if problems:
            raise Invalid([((text.split(":", 1)[0],), text.split(": ", 1)[1]) for text in problems])
        return self

    def settings(self) -> AudioSettings:
        return AudioSettings(**{name: getattr(self, name) for name in type(self).model_fields})


class ScheduleSpec(_Spec):
    """A dreamvid schedule (format v1), as written in the YAML file."""

    model_config = ConfigDict(title="dreamvid schedule")

    version: Int = Field(D.SCHEDULE_VERSION, ge=1, le=D.SCHEDULE_VERSION,
                         description=f"the schedule format: {D.SCHEDULE_VERSION} (a file without it is version 1; "
                                     "dreamvid import writes it)")
    input: Str = Field(description="an image or video path relative to this file, or 'noise'")
    output: Optional[Str] = Field(None, description="a video file path relative to this file (needed to render)")
    size: Size = Field(D.SIZE, description=f"[width, height] or 'WIDTHxHEIGHT', each {D.MIN_SIDE}..{D.MAX_SIDE} "
                                           "pixels (both even for yuv420p/yuv422p/nv12)")
    fps: Fps = D.FPS_AUTO
    seed: Int = Field(D.SEED, ge=0, le=2**32 - 1, description="an integer 0..4294967295 (random seed)")
    model: Str = Field(D.MODEL, description="a model name: " + ", ".join(MODELS))
    model_weights: Optional[Str] = Field(None, description="a weight file path relative to this file, or null")
    flow_weights: Optional[Str] = Field(None, description="a local RAFT weights file (state dict of torchvision's "
                                                          "raft_large or raft_small) relative to this file, or null")
    device: Str = Field(D.DEVICE, pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", description="auto, cpu, cuda or cuda:N")
    checkpoint_every: Int = Field(D.CHECKPOINT_EVERY, ge=1, description="an integer >= 1 (frames between checkpoints)")
    tile: Tile = D.TILE
    compile: Compile = D.COMPILE
    precision: Literal[D.PRECISIONS] = Field(D.PRECISION, description="auto, fp32 or bf16 (arithmetic of the "
                                                                    "network; auto: bf16 where it is native and faster)")
    encoder: EncoderSettings = Field(default_factory=EncoderSettings, description="a mapping with codec, crf, "
                                                                                  "preset, pix_fmt")
    audio: Optional[Str] = Field(None, description="an audio file path relative to this file, 'input' (a video "
                                                   "input's own sound), or null")
    mask: Optional[Str] = Field(None, description=_MASK_DESCRIPTION)
    mask_follows: Literal[MASK_FOLLOWS] = Field(D.MASK_FOLLOWS, description="camera (the mask moves with the camera) "
                                                "or frame (it stays where it is on the frame)")
    audio_features: AudioFeaturesSpec = Field(default_factory=AudioFeaturesSpec, description="a mapping of audio "
                                              "analysis settings (bass, mid, treble, attack, release, ...)")
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec, description="a mapping of per-segment "
                                                                            "parameters (iterations, step, ...)")
    segments: tuple[SegmentSpec, ...] = Field(description="a non-empty list of segments, each with frames and "
                                                          "layers", json_schema_extra={"minItems": 1})

    @field_validator("segments", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # checked here, not with min_length, which also fires when a segment is invalid
        if isinstance(value, (list, tuple)) and not value:
            raise Invalid([((), "got an empty list; expected " + cls.model_fields["segments"].description)])
        return value

    @field_validator("input", "output", "model_weights", "flow_weights", "audio")
    @classmethod
    def _check_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise Invalid([((), f"empty path; expected {cls.model_fields[info.field_name].description}")])
        ctx = info.context or {}
        if info.field_name == "output":
            _check_output(value, info.data.get("input"), ctx)
            return value
        if not ctx.get("check_files"):
            return value
        if (info.field_name, value) in (("input", NOISE), ("audio", D.AUDIO_INPUT)):
            return value
        _require_file(ctx["base"], value, "an existing file")
        return value

    @field_validator("mask")
    @classmethod
    def _check_mask(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _existing_file(value, info, _MASK_DESCRIPTION)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str, info: ValidationInfo) -> str:
        problem = (info.context or {}).get("model_problem")
        if problem:
            raise Invalid([((), problem)])
        return value


def _existing_file(value: str | None, info: ValidationInfo, description: str) -> str | None:
    """An image key's path (guide, mask): it must name an existing file when files are checked."""
    if value is None:
        return None
    if not value.strip():
        raise Invalid([((), f"empty path; expected {description}")])
    ctx = info.context or {}
    if ctx.get("check_files"):
        _require_file(ctx["base"], value, "an existing image file")
    return value


def _require_file(base: Path, value: str, expected: str) -> None:
    """Refuse ``value`` (relative to ``base``) unless it names a readable file."""
    path = resolve_path(base, value)
    what = file_problem(path)
    if what:
        raise Invalid([((), f"{what}: {path}; expected {expected} (paths are relative to the schedule file)")])


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not an existing file ("file not found", ...), or None."""
    try:
        return None if path.is_file() else "file not found" if not path.exists() else "not a file"
    except OSError as err:  # a name too long for the file system, a loop of symlinks ...
        return f"cannot look at the file ({err.strerror or err})"


def _check_output(value: str, input_value: str | None, ctx: dict) -> None:
    """The output must be a video file name whose folders can be created (the renderer
    creates them), and not the input image: found now, not after hours of rendering."""
    from dreamvid.media.write import VIDEO_SUFFIXES, output_problem

    if not ctx.get("check_files"):
        if Path(value).suffix.lower() not in VIDEO_SUFFIXES:
            raise Invalid([((), f"unsupported video file extension {Path(value).suffix or '(none)'!r}; "
                                 f"expected a file name ending in {', '.join(VIDEO_SUFFIXES)}")])
        return
    path = resolve_path(ctx["base"], value)
    if input_value not in (None, NOISE) and path == resolve_path(ctx["base"], input_value):
        raise Invalid([((), f"{path} is the input image; expected another file (the video must not overwrite it)")])
    try:
        problem = output_problem(path)
    except OSError as err:  # a name too long for the file system, a loop of symlinks ...
        problem = f"{path}: cannot look at the path ({err.strerror or err}); expected a video file path"
    if problem:
        raise Invalid([((), problem if problem.startswith(str(path)) else f"{path}: {problem}")])



def version_problem(data: Mapping) -> tuple[Loc, str] | None:
    """A schedule written for a newer dreamvid (``version:`` above :data:`.defaults.SCHEDULE_VERSION`):
    one problem, said before any other (its other keys may mean what this dreamvid cannot know)."""
    version = data.get("version")
    if type(version) is int and version > D.SCHEDULE_VERSION:
        text = (f"{version} is a schedule format newer than this dreamvid ({D.VERSION}) reads; "
                f"expected version {D.SCHEDULE_VERSION}, or upgrade dreamvid to read it")
        return ("version",), text
    return None


def model_at(parent: Loc) -> type[BaseModel] | None:
    """The pydantic model whose keys live at ``parent``."""
    if parent == ():
        return ScheduleSpec
    if parent == ("encoder",):
        return EncoderSettings
    if parent == ("audio_features",):
        return AudioFeaturesSpec
    if parent == ("defaults",):
        return DefaultsSpec
    if len(parent) == 2 and parent[0] == "segments" and isinstance(parent[1], int):
        return SegmentSpec
    return None



def whole_schedule_problems(spec: ScheduleSpec) -> list[tuple[Loc, str]]:
    """Checks that need the whole (structurally valid) schedule."""
    problems: list[tuple[Loc, str]] = []
    w, h = spec.size
    if spec.encoder.pix_fmt in _SUBSAMPLED_PIX_FMTS and (w % 2 or h % 2):
        problems.append((("size",), f"{w}x{h} has an odd side; expected even width and height for "
                                    f"pix_fmt {spec.encoder.pix_fmt}"))
    total = sum(s.frames for s in spec.segments)
    if total > D.MAX_FRAMES:
        problems.append((("segments",), f"{total} frames in all; expected at most {D.MAX_FRAMES} frames in the video"))
    if spec.segments[0].transition:
        problems.append((("segments", 0, "transition"), "the first segment has nothing to blend from; expected 0"))
    for loc, kf in [(("defaults",) + loc, kf) for loc, kf in keyframes_of(spec.defaults)] + [
            (("segments", i) + loc, kf) for i, seg in enumerate(spec.segments) for loc, kf in keyframes_of(seg)]:
        music = kf.variables & set(AUDIO_VARIABLES)
        if loc[-1] in ENVELOPE_KEYS and music:
            text = (f"a formula of the music ({', '.join(sorted(music))}) cannot shape the music; expected a number "
                    "or a formula of t, f, s, T, max_f, seed and fps")
            problems.append((loc, text))
    for loc, kf in keyframes_of(spec.defaults):
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



# ------------------------------------------------------------------------- JSON schema


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the schedule format, for editors (yaml-language-server)."""
    schema = ScheduleSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_json_schema(path: str | os.PathLike) -> None:
    """Write :func:`json_schema` to ``path`` (indent 2, trailing newline)."""
    Path(path).write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
