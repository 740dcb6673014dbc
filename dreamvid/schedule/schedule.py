"""A parsed schedule: what every frame of the video is made with.

:func:`load_schedule` reads a schedule file (:mod:`.yamlfile`), :func:`parse_schedule`
validates its data against the file format (:mod:`.spec`) and builds a :class:`Schedule`:
segments with ``defaults`` merged in, whose :meth:`Schedule.params` gives frame ``n``'s
parameters (:class:`FrameParams`). Every problem is reported, one line each, as
``<schedule file>: <key path>: <what is wrong>; expected <what>``, gathered in a
:class:`ScheduleError`. The format and every key: docs/schedule.md.

With ``transition: T`` a segment's layer weights at its frame ``k < T`` are
``(1 - k/T) * previous + (k/T) * current`` (a key missing on one side counts 0), and so are
its camera parameters (:data:`CAMERA`), blended from the previous segment's last values, so
the camera does not jump. Without a transition a jump is allowed, and
:meth:`Schedule.camera_jumps` names it (``dreamvid validate`` warns).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError, first_line
from dreamvid.core.files import resolve_path
from dreamvid.core.problems import message, one_line, show, translate
from dreamvid.engine.catalogue import layer_catalogue, size_problem, weights_problem
from dreamvid.media.audio import ENVELOPED, AudioSettings, envelope
from dreamvid.media.audio import features as audio_features
from dreamvid.media.read import ClipInfo, probe_input
from dreamvid.schedule.expressions import AUDIO_VARIABLES, Expression, frame_variables, looks_like_deforum_seed
from dreamvid.schedule.keyframes import Keyframes, parse_keyframes, round_half_up
from dreamvid.schedule.spec import (
    COLOUR_KEYS,
    KEYFRAMED,
    NOISE,
    PAIRS,
    RULES,
    VIDEO_KEYS,
    EncoderSettings,
    ScheduleSpec,
    model_at,
    version_problem,
    whole_schedule_problems,
)
from dreamvid.schedule.yamlfile import read_yaml_file

AUDIO_SET = frozenset(AUDIO_VARIABLES)
CAMERA = ("zoom", "rotate", "translate", "center")  # what a transition blends besides the layers
NO_ENVELOPE = Keyframes(((0, D.ATTACK),))  # attack and release 0: the music as analysed
EVERY_FRAME = Keyframes(((0, D.CADENCE),))  # cadence 1: every frame dreamed

__all__ = ["FrameParams", "Schedule", "ScheduleError", "Segment", "load_schedule", "parse_schedule"]


class ScheduleError(InputError):
    """A schedule that cannot be used; ``messages`` holds one line per problem."""

    def __init__(self, messages: list[str]):
        self.messages = [one_line(m) for m in messages]
        super().__init__("\n".join(self.messages))


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
    center: tuple[Keyframes, Keyframes]
    objective: str
    interpolation: str
    colour_strength: Keyframes
    saturation_match: Keyframes
    input_blend: Keyframes
    smoothing: Keyframes
    clip_guard: Keyframes
    flow_blend: Keyframes
    temporal: Keyframes
    colour: str
    colour_reference: str
    guide_weight: Keyframes
    mask_strength: Keyframes
    attack: Keyframes = NO_ENVELOPE  # the music's envelope (see Schedule.audio_features)
    release: Keyframes = NO_ENVELOPE
    cadence: Keyframes = EVERY_FRAME  # dream every k-th frame (dreamvid/schedule/cadence.py)
    gradient_norm: str = "mean"  # "mean" | "laplacian"
    guide: Path | None = None  # the guide image (absolute), None: unguided
    flow: str = D.FLOW
    camera: str = D.CAMERA  # "dreamvid" | "deforum" (dreamvid/pixels/camera.py)

    @property
    def layer_weights(self) -> dict[str, float]:
        return dict(self.layers)

    def keyframes(self) -> list[tuple[str, Keyframes]]:
        """Every keyframed value of the segment with its key name (each of PAIRS twice)."""
        out = []
        for name in KEYFRAMED:
            value = getattr(self, name)
            out += [(name, kf) for kf in value] if isinstance(value, tuple) else [(name, value)]
        return out

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"frames": self.frames, "layers": dict(self.layers), "transition": self.transition}
        for name in KEYFRAMED:
            value = getattr(self, name)
            data[name] = [kf.to_data() for kf in value] if name in PAIRS else value.to_data()
        data["objective"] = self.objective
        data["interpolation"] = self.interpolation
        data.update({name: getattr(self, name) for name in (*COLOUR_KEYS, *VIDEO_KEYS)})
        data["gradient_norm"] = self.gradient_norm
        data["camera"] = self.camera
        data["guide"] = None if self.guide is None else str(self.guide)
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
    saturation_match: float = 0.0
    input_blend: float = 0.0
    smoothing: float = 0.0
    clip_guard: float = 0.0
    center: tuple[float, float] = (0.5, 0.5)  # what zoom and rotation turn around, fractions of the frame
    camera: str = D.CAMERA  # how zoom, rotate and translate compose: "dreamvid" | "deforum"
    gradient_norm: str = "mean"  # "mean" | "laplacian" (dreamvid/ascent.py)
    guide: Path | None = None  # the segment's guide image (dreamvid/objectives.py: guide)
    guide_weight: float = 0.0  # 0 without a guide
    mask_strength: float = 0.0  # 0 without a mask (dreamvid/renderer.py: Dreamer.masked)
    # a video input's frame start (dreamvid/video.py); None with an image or noise input
    flow: str | None = None  # "dis" | "farneback" | "raft" | "none"
    flow_blend: float | None = None
    temporal: float | None = None
    cadence: int = D.CADENCE  # from a dreamed frame, the next dreamed one is this many frames on (schedule/cadence.py)


@dataclass(frozen=True)
class Schedule:
    """A parsed, validated schedule. Build it with :func:`load_schedule` or :func:`parse_schedule`."""

    source: Path
    input_path: Path | None  # None: start from noise
    output_path: Path | None  # None: frames only (the Python API); render needs an output
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
    tile: int | str | None = "auto"  # gradient tile side, "auto" or None (see dreamvid.engine.ascent.dream_frame)
    compile: str | bool = "auto"  # torch.compile the network: "auto" (on CUDA), True, False
    audio_settings: AudioSettings = AudioSettings()  # how the audio becomes formula variables
    precision: str = "auto"  # arithmetic of the network: "auto", "fp32", "bf16" (see dreamvid.engine.precision)
    mask_path: Path | None = None  # where dreaming is allowed (white); None: everywhere
    mask_follows: str = "camera"  # "camera" | "frame"
    clip: ClipInfo | None = None  # the input when it is a video (probed), else None
    rate: Fraction | None = None  # the exact frame rate when ``fps`` (a float) is not (30000/1001)
    flow_weights_path: Path | None = None  # RAFT's weights, for `flow: raft`
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _series: dict = field(init=False, repr=False, compare=False)  # (segment, id(keyframes)) -> values
    _audio: list = field(init=False, repr=False, compare=False)  # [features] once computed

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(s.start for s in self.segments))
        object.__setattr__(self, "_series", {})
        object.__setattr__(self, "_audio", [])

    @property
    def frame_rate(self) -> Fraction:
        """The exact frames per second, for the encoder (a clip's 30000/1001, not 29.97...)."""
        return self.rate if self.rate is not None else Fraction(repr(self.fps))

    @property
    def audio_driven(self) -> bool:
        """Some value is a formula of the music (rms, bass, ..., beat)."""
        return any(kf.variables & AUDIO_SET for seg in self.segments for _, kf in seg.keyframes())

    def audio_features(self) -> dict[str, np.ndarray] | None:
        """The audio variables at every frame (computed once), or None when nothing uses them."""
        if not self.audio_driven:
            return None
        if not self._audio:
            if self.audio_path is None:
                raise InputError(f"{self.source}: audio: a formula uses the music, but there is no audio; "
                                 "expected `audio:` a sound file")  # fmt: skip
            self._audio.append(self._enveloped(audio_features(self.audio_path, self.fps, self.total_frames,
                                                              self.audio_settings)))
        return self._audio[0]

    def _enveloped(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``features`` with rms, bass, mid, treble and onset followed frame by frame with each
        frame's ``attack`` and ``release``; the same arrays when both are 0 everywhere."""
        attack = np.concatenate([self.values(i, seg.attack) for i, seg in enumerate(self.segments)])
        release = np.concatenate([self.values(i, seg.release) for i, seg in enumerate(self.segments)])
        if not attack.any() and not release.any():
            return features
        return {name: envelope(values, attack, release, 1.0 / self.fps) if name in ENVELOPED else values
                for name, values in features.items()}

    def values(self, i: int, kf: Keyframes) -> np.ndarray:
        """The unrounded values of ``kf`` at every frame of segment ``i`` (computed once)."""
        key = (i, id(kf))
        if key not in self._series:
            seg = self.segments[i]
            variables = None
            if kf.variables:
                variables = frame_variables(seg.start, seg.frames, self.total_frames, self.fps,
                                            self.audio_features() if kf.variables & AUDIO_SET else None, self.seed)
            self._series[key] = kf.values(seg.frames, seg.interpolation, variables)
        return self._series[key]

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

    def camera_at(self, n: int) -> dict[str, Any]:
        """The camera parameters (:data:`CAMERA`) at frame ``n``, after the transition blend:
        ``previous + (k/T) * (own - previous)`` from the previous segment's last values (exactly
        the own value where both agree)."""
        i, k = self.segment_of(n)
        seg = self.segments[i]

        def at(kf: Keyframes) -> float:
            return float(self.values(i, kf)[k])

        own = {}
        for name in CAMERA:
            kf = getattr(seg, name)
            own[name] = tuple(map(at, kf)) if isinstance(kf, tuple) else at(kf)
        if i == 0 or k >= seg.transition:
            return own
        a, previous = k / seg.transition, self.camera_at(seg.start - 1)

        def blend(p: float, o: float) -> float:
            return p + a * (o - p)

        return {name: tuple(map(blend, previous[name], own[name])) if isinstance(own[name], tuple)
                else blend(previous[name], own[name]) for name in CAMERA}  # fmt: skip

    def check_weights(self) -> None:
        """The model's weights are there to load (a torchvision model needs ``model_weights``):
        ``validate`` checks it, and a render before it builds the network; the schedule itself
        may name any model, as a network of your own can be passed to the render instead."""
        if problem := weights_problem(self.model, self.model_weights_path):
            raise InputError(f"{self.source}: model_weights: {problem}")

    def camera_jumps(self) -> list[str]:
        """One line per camera parameter that jumps where a segment without a transition starts:
        that changes there by more than it does from frame to frame on either side (a camera that
        moves on smoothly across the start, as a formula of ``t`` does, is no jump)."""
        out = []
        for seg in self.segments[1:]:
            if seg.transition:
                continue
            before, after = self.camera_at(seg.start - 1), self.camera_at(seg.start)
            earlier = self.camera_at(seg.start - 2) if seg.start >= 2 else before
            later = self.camera_at(seg.start + 1) if seg.start + 1 < self.total_frames else after
            for name in CAMERA:
                was, now = before[name], after[name]
                step = np.maximum(np.abs(np.subtract(was, earlier[name])), np.abs(np.subtract(later[name], now)))
                if np.any(np.abs(np.subtract(now, was)) > 2.0 * step + 1e-9):
                    show_value = (lambda v: f"[{v[0]:g}, {v[1]:g}]") if isinstance(now, tuple) else (lambda v: f"{v:g}")
                    out.append(f"{self.source.name}: segments[{seg.index}]: {name} jumps from {show_value(was)} to "
                               f"{show_value(now)} at frame {seg.start}; set segments[{seg.index}].transition to "
                               "blend the camera over some frames")  # fmt: skip
        return out

    def deforum_seconds(self) -> list[str]:
        """One line per formula that reads ``s`` as Deforum writes its seed (see
        :func:`.expressions.looks_like_deforum_seed`): in dreamvid ``s`` is seconds."""
        out, seen = [], set()
        for seg in self.segments:
            for name, kf in seg.keyframes():
                for _, value in kf.points:
                    if isinstance(value, Expression) and looks_like_deforum_seed(value) and value not in seen:
                        seen.add(value)
                        out.append(f"{self.source.name}: segments[{seg.index}]: {name}: {value.source!r} reads s, "
                                   "which is seconds in dreamvid (Deforum's s is the seed); write seed for the "
                                   "seed (dreamvid import does), or ignore this if seconds are meant")
        return out

    def params(self, n: int) -> FrameParams:
        i, k = self.segment_of(n)
        seg = self.segments[i]

        def at(kf: Keyframes) -> float:
            return float(self.values(i, kf)[k])

        camera = self.camera_at(n)

        return FrameParams(
            index=n,
            segment=i,
            frame_in_segment=k,
            iterations=round_half_up(at(seg.iterations)),
            step=at(seg.step),
            octaves=round_half_up(at(seg.octaves)),
            octave_scale=at(seg.octave_scale),
            jitter=round_half_up(at(seg.jitter)),
            zoom=camera["zoom"],
            rotate=camera["rotate"],
            translate=camera["translate"],
            objective=seg.objective,
            layers=self.layers_at(n),
            colour=seg.colour,
            colour_reference=seg.colour_reference,
            colour_strength=at(seg.colour_strength),
            saturation_match=at(seg.saturation_match),
            input_blend=at(seg.input_blend),
            smoothing=at(seg.smoothing),
            clip_guard=at(seg.clip_guard),
            center=camera["center"],
            camera=seg.camera,
            gradient_norm=seg.gradient_norm,
            guide=seg.guide,
            guide_weight=at(seg.guide_weight) if seg.guide is not None else 0.0,
            mask_strength=at(seg.mask_strength) if self.mask_path is not None else 0.0,
            cadence=round_half_up(at(seg.cadence)),
            **({} if self.clip is None else
               {"flow": seg.flow, "flow_blend": at(seg.flow_blend), "temporal": at(seg.temporal)}),
        )

    def images(self) -> list[tuple[str, Path]]:
        """(key path, file) of the guide and mask images the schedule uses."""
        out = [(f"segments[{seg.index}].guide", seg.guide) for seg in self.segments if seg.guide is not None]
        return out + ([("mask", self.mask_path)] if self.mask_path is not None else [])

    def summary(self) -> str:
        w, h = self.size
        lines = [
            f"{self.source.name}: {self.total_frames} frames, {self.total_frames / self.fps:.2f} s at "
            f"{self.fps:g} fps, {w}x{h}, model {self.model}, seed {self.seed}",
            f"  input {self.input_path or NOISE} -> output {self.output_path or '(none: give -o to render)'} "
            f"({self.encoder.codec}, crf {self.encoder.crf}, {self.encoder.pix_fmt})",
        ]
        if self.clip is not None:
            c = self.clip
            rate = f"{c.fps} fps" + (f" ({float(c.fps):.3f})" if c.fps.denominator != 1 else "")
            vfr = f", variable rate resampled to a constant one ({c.source_frames} frames decoded)" \
                if c.variable_rate else ""
            lines.append(f"  input clip: {c.frames} frames, {c.width}x{c.height}, {rate}, "
                            f"{'with' if c.has_audio else 'no'} sound{vfr}")
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
            "output": opt(self.output_path),
            "size": list(self.size),
            "fps": self.fps if self.rate is None or Fraction(repr(self.fps)) == self.rate else str(self.rate),
            "seed": self.seed,
            "model": self.model,
            "model_weights": opt(self.model_weights_path),
            "flow_weights": opt(self.flow_weights_path),
            "device": self.device,
            "checkpoint_every": self.checkpoint_every,
            "tile": self.tile,
            "compile": self.compile,
            "precision": self.precision,
            "encoder": self.encoder.model_dump(),
            "audio": D.AUDIO_INPUT if self.audio_path is not None and self.audio_path == self.input_path
            else opt(self.audio_path),
            "mask": opt(self.mask_path),
            "mask_follows": self.mask_follows,
            "audio_features": self.audio_settings.to_data(),
            "segments": [seg.to_dict() for seg in self.segments],
        }



# ----------------------------------------------------------------------------- loading


def load_schedule(
    path: str | os.PathLike,
    *,
    check_files: bool = True,
    catalogue: Mapping[str, int] | Callable[[str], Mapping[str, int]] | None = None,
) -> Schedule:
    """Read, parse and validate a schedule file; raises ScheduleError listing every problem."""
    name = str(path)
    data, problems = read_yaml_file(path, "schedule")
    if problems:
        raise ScheduleError([message(name, loc, text) for loc, text in problems])
    return parse_schedule(data, source=Path(path), check_files=check_files, catalogue=catalogue)


def parse_schedule(
    data: Any,
    *,
    source: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    check_files: bool = True,
    catalogue: Mapping[str, int] | Callable[[str], Mapping[str, int]] | None = None,
) -> Schedule:
    """Validate already-loaded schedule data; ``source`` names the file in messages, and its
    folder is where relative paths start unless ``base_dir`` is given.

    ``catalogue`` is the network's ordered layer -> channel count mapping (a network of your
    own: ``net.catalogue``), or a function of the schedule's model name that returns it and
    raises InputError (or KeyError) for an unknown model; it defaults to the built-in models'
    (:func:`.catalogue.layer_catalogue`).
    """
    source = Path(source)
    name = str(source)
    if not isinstance(data, Mapping):
        what = "an empty file" if data is None else show(data)
        raise ScheduleError([f"{name}: got {what} at the top level; expected a mapping of schedule keys "
                             "(input, output, segments, ...)"])
    base = Path(base_dir).resolve() if base_dir is not None else source.resolve().parent
    context: dict[str, Any] = {"base": base, "check_files": check_files, "layers": None, "model_problem": None}
    model = data.get("model", ScheduleSpec.model_fields["model"].default)
    if isinstance(catalogue, Mapping):
        context["layers"] = dict(catalogue)
    elif isinstance(model, str):
        try:
            context["layers"] = dict((catalogue or layer_catalogue)(model))
        except (InputError, KeyError) as err:
            problem = first_line(err, f"unknown model ({type(err).__name__})")
            if "; expected" not in problem:
                problem += "; expected " + ScheduleSpec.model_fields["model"].description
            context["model_problem"] = problem
    newer = version_problem(data)
    if newer:  # its other keys may mean what this dreamvid cannot know: this one line only
        raise ScheduleError([message(name, *newer)])
    try:
        spec = ScheduleSpec.model_validate(data, context=context)
    except ValidationError as err:
        raise ScheduleError([message(name, loc, text) for loc, text in translate(err, model_at)]) from None
    problems = whole_schedule_problems(spec)
    if not isinstance(catalogue, Mapping):  # a built-in network: it needs frames large enough for its layers
        problems += [(("segments", i, "layers"), problem) for i, seg in enumerate(spec.segments)
                     if (problem := size_problem(spec.model, [key for key, _ in seg.layers], *spec.size))]
    if problems:
        raise ScheduleError([message(name, loc, text) for loc, text in problems])
    clip = None
    if check_files and spec.input != NOISE:  # a video is told from an image by its content (ffmpeg)
        try:
            clip = probe_input(resolve_path(base, spec.input))
        except InputError as err:
            raise ScheduleError([message(name, ("input",), first_line(err))]) from None
    problems = _video_problems(spec, clip, check_files)
    if problems:
        raise ScheduleError([message(name, loc, text) for loc, text in problems])
    schedule = _build(spec, source, base, clip)
    if check_files:  # formulas: every frame's value in range (needs the audio file, if they use it)
        problems = _value_problems(spec, schedule)
        if problems:
            raise ScheduleError([message(name, loc, text) for loc, text in problems])
    return schedule


def _value_problems(spec: ScheduleSpec, schedule: Schedule) -> list[tuple[tuple, str]]:
    """Keys whose formulas give a value out of range (or NaN/inf) at some frame: the first
    such frame of each key, with the value. Constant keys were checked when parsed."""
    problems: list[tuple[tuple, str]] = []
    reported: set[tuple] = set()
    for seg in schedule.segments:
        own = spec.segments[seg.index]
        for slot, (name, kf) in enumerate(seg.keyframes()):
            if not kf.variables:
                continue
            inherited = getattr(own, name) is None
            loc = ("defaults",) if inherited else ("segments", seg.index)
            loc += (name,) + ((slot - [n for n, _ in seg.keyframes()].index(name),) if name in PAIRS else ())
            if loc in reported:
                continue
            if kf.variables & AUDIO_SET and schedule.audio_path is None:
                used = ", ".join(sorted(kf.variables & AUDIO_SET))
                text = (f"uses {used} of the music, but the schedule has no audio; expected `audio:` a sound file, "
                        "or a formula of t, f, s, T, max_f, seed and fps only")
                problems.append((loc, text))
                reported.add(loc)
                continue
            rule = RULES[name]
            values = schedule.values(seg.index, kf)
            shown = np.floor(values + 0.5) if rule.integer else values
            bad = ~np.isfinite(shown) | ~np.vectorize(rule.ok, otypes=[bool])(np.nan_to_num(shown))
            if bad.any():
                k = int(np.argmax(bad))
                where = f"frame {seg.start + k} (frame {k} of segments[{seg.index}])" if inherited or seg.index else \
                    f"frame {seg.start + k}"
                problems.append((loc, f"the formula gives {float(shown[k]):g} at {where}; expected {rule.expected}"))
                reported.add(loc)
    return problems


def _video_problems(spec: ScheduleSpec, clip: ClipInfo | None, check_files: bool) -> list[tuple[tuple, str]]:
    """What a video input (or its absence) rules out: more frames than the clip, the clip's
    sound without a clip or without sound, RAFT without weights."""
    problems: list[tuple[tuple, str]] = []
    total = sum(seg.frames for seg in spec.segments)
    if clip is not None and total > clip.frames:
        problems.append((("segments",), f"{total} frames, but the input clip {clip.path.name} has {clip.frames}; "
                                        f"expected at most {clip.frames} frames in all (or a longer clip)"))
    if spec.audio == D.AUDIO_INPUT and check_files:
        if clip is None:
            what = "noise" if spec.input == NOISE else f"an image ({spec.input})"
            problems.append((("audio",), f"'input' keeps a video input's sound, but the input is {what}; "
                                         "expected a video input, or an audio file"))
        elif not clip.has_audio:
            problems.append((("audio",), f"'input': the input clip {clip.path.name} has no sound; expected a "
                                         "clip with a sound track, an audio file, or no audio"))
    if clip is not None:
        problems += _clip_cadence_problems(spec)
    uses_raft = [i for i, seg in enumerate(spec.segments) if (seg.flow or spec.defaults.flow) == "raft"]
    if clip is not None and uses_raft and spec.flow_weights is None:
        loc = ("segments", uses_raft[0], "flow") if spec.segments[uses_raft[0]].flow else ("defaults", "flow")
        problems.append((loc, "raft needs its weights; expected `flow_weights:` a local raft_large or raft_small "
                              "state-dict file (nothing is downloaded), or flow dis, farneback or none"))
    return problems



def _clip_cadence_problems(spec: ScheduleSpec) -> list[tuple[tuple, str]]:
    """A video input dreams every frame: ``cadence`` other than 1 is refused (not implemented
    with the clip's flow yet; docs/schedule.md#cadence)."""
    sources = [(("defaults", "cadence"), spec.defaults.cadence)]
    sources += [(("segments", i, "cadence"), seg.cadence) for i, seg in enumerate(spec.segments)]
    return [(loc, f"{_shown(kf)} with a video input; expected 1 (a clip's frames are all dreamed: cadence works "
                  "with an image or noise input only)")
            for loc, kf in sources if kf is not None and kf.points != EVERY_FRAME.points]


def _shown(kf: Keyframes) -> str:
    """A keyframed value as the error line shows it: the number, or 'keyframes'."""
    if len(kf.points) == 1 and isinstance(kf.points[0][1], (int, float)):
        return f"{kf.points[0][1]:g}"
    return "keyframes or a formula"


def _build(spec: ScheduleSpec, source: Path, base: Path, clip: ClipInfo | None = None) -> Schedule:
    def path(value: str | None) -> Path | None:
        return None if value is None else resolve_path(base, value)

    defaults = spec.defaults
    if clip is not None and "zoom" not in defaults.model_fields_set:  # a clip's camera holds still by default
        defaults = defaults.model_copy(update={"zoom": parse_keyframes(D.VIDEO_ZOOM, RULES["zoom"])})
    rate = spec.fps if spec.fps != D.FPS_AUTO else clip.fps if clip is not None else Fraction(D.FPS)
    segments = []
    start = 0
    for i, seg in enumerate(spec.segments):
        merged = {name: getattr(seg, name) if getattr(seg, name) is not None else getattr(defaults, name)
                  for name in (*KEYFRAMED, "objective", "interpolation", *COLOUR_KEYS, *VIDEO_KEYS, "gradient_norm",
                               "camera")}
        segments.append(Segment(index=i, start=start, frames=seg.frames, layers=seg.layers,
                                transition=seg.transition, guide=path(seg.guide), **merged))
        start += seg.frames
    return Schedule(
        source=source.resolve(),
        input_path=None if spec.input == NOISE else path(spec.input),
        output_path=path(spec.output),
        audio_path=(None if spec.input == NOISE else path(spec.input)) if spec.audio == D.AUDIO_INPUT
        else path(spec.audio),
        model_weights_path=path(spec.model_weights),
        size=spec.size,
        fps=float(rate),
        seed=spec.seed,
        model=spec.model,
        device=spec.device,
        checkpoint_every=spec.checkpoint_every,
        encoder=spec.encoder,
        segments=tuple(segments),
        tile=spec.tile,
        compile=spec.compile,
        audio_settings=spec.audio_features.settings(),
        precision=spec.precision,
        mask_path=path(spec.mask),
        mask_follows=spec.mask_follows,
        clip=clip,
        rate=None if Fraction(repr(float(rate))) == rate else rate,
        flow_weights_path=path(spec.flow_weights),
    )


