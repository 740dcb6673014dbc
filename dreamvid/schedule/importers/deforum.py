"""Deforum settings files (the JSON ``.txt`` its web UI and notebook save) as a :class:`.Draft`.

Read: ``max_frames``, ``fps``, ``W``/``H``, ``seed``, ``animation_mode``, the 2D camera
(``zoom``, ``angle``, ``translation_x``/``_y``, ``transform_center_x``/``_y``), ``border``,
``color_coherence``, ``diffusion_cadence``, ``use_init``/``init_image``, ``video_init_path``,
``add_soundtrack``/``soundtrack_path`` and an embedded Parseq manifest (``parseq_manifest``,
``parseq_use_deltas``, ``parseq_non_schedule_overrides``). Every other key is listed as not
carried over, one line each (a family such as ``cn_1_*`` on one line).

Keyframe strings are read as Deforum reads them (``FrameInterpolater.parse_key_frames``):
entries split on commas (outside brackets: Deforum would fail on ``max(a, b)``), each
``frame: (value)``; a frame may be a formula of ``max_f`` in quotes
(``"max_f-1": (1.0)``), computed now; keys outside ``0..max_frames-1`` are ignored, as Deforum
ignores them. A value is a number or a formula of ``t`` (the frame), ``max_f`` and ``s`` (the
seed), which becomes dreamvid's ``seed`` (dreamvid's ``s`` is seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dreamvid.core import defaults as D
from dreamvid.core.problems import show
from dreamvid.schedule.expressions import MAX_FRAME_DIGITS, ExpressionError, compile_expression, split_entries
from dreamvid.schedule.importers import parseq
from dreamvid.schedule.importers.draft import Draft, ImportProblem, Points, check_formula, finite_number, relative

CAMERA = {  # Deforum's 2D key -> dreamvid's
    "zoom": "zoom", "angle": "rotate", "translation_x": "translate_x", "translation_y": "translate_y",
    "transform_center_x": "center_x", "transform_center_y": "center_y",
}
READ = frozenset({*CAMERA, "max_frames", "fps", "W", "H", "seed", "animation_mode", "border", "color_coherence",
                  "diffusion_cadence", "use_init", "init_image", "video_init_path", "add_soundtrack",
                  "soundtrack_path", "parseq_manifest", "parseq_use_deltas", "parseq_non_schedule_overrides"})
COLOURS = {"LAB": "lab", "RGB": "histogram", "None": "none"}  # color_coherence -> colour
# keys of one feature, listed on one line: (pattern, what it is)
FAMILIES = (
    (r"cn_(\d+)_", "ControlNet unit {0}"),
    (r"hybrid_", "hybrid video"),
    (r"frame_interpolation_", "frame interpolation (RIFE/FILM)"),
    (r"r_upscale_", "upscaling"),
    (r"perspective_flip_|enable_perspective_flip", "perspective flip"),
    ((r"(rotation_3d_|translation_z|fov_|near_|far_|depth_|midas_|use_depth_warping|save_depth_maps|"
     r"aspect_ratio_|padding_mode|sampling_mode)"), "3D motion; dreamvid moves in 2D"),
)
WHAT = (  # single keys: (pattern, what it is)
    (r"(positive_|negative_|animation_)?prompts$", "Stable Diffusion prompts; dreamvid dreams the layers of --layers"),
    ((r"(strength|cfg_scale|steps|sampler|scale|checkpoint|clipskip|ddim_eta|ancestral_eta|noise_multiplier|"
     r"pix2pix_img_cfg_scale|subseed|subseed_strength)(_schedule)?$|enable_.*_scheduling$|sampler$|steps$"),
     "Stable Diffusion sampling"),
    (r"seed_|seed$", "Stable Diffusion seeds"),
    (r"noise|perlin_|contrast_schedule|amount_schedule|kernel_schedule|sigma_schedule|threshold_schedule",
     "diffusion noise and sharpening"),
    (r"mask|use_alpha_as_mask|invert_mask|overlay_mask|fill$|full_res_mask", "inpainting masks"),
)
_SEED_NAME = re.compile(r"(?<![A-Za-z0-9_.])s(?![A-Za-z0-9_])")


def draft(settings: Mapping[str, Any], source: Path, schedule_folder: Path) -> Draft:
    """A Draft of a Deforum settings mapping read from ``source``; ImportProblem on bad values."""
    frames = _integer(settings, "max_frames", 1, D.MAX_FRAMES, "the frame count")
    fps = finite_number("fps", settings.get("fps", D.FPS), f"frames per second, a number > 0 and <= {D.MAX_FPS}")
    if not 0 < fps <= D.MAX_FPS:
        raise ImportProblem("fps", f"{fps:g} is out of range; expected a number > 0 and <= {D.MAX_FPS}")
    out = Draft(kind="Deforum settings", frames=frames, fps=fps)
    if "W" in settings or "H" in settings:
        out.size = (_integer(settings, "W", D.MIN_SIDE, D.MAX_SIDE, "the width in pixels"),
                    _integer(settings, "H", D.MIN_SIDE, D.MAX_SIDE, "the height in pixels"))
    out.seed = _seed(settings.get("seed", -1), out)
    mode = _text(settings, "animation_mode", "2D")
    _files(settings, mode, source, schedule_folder, out)
    _colour(settings, out)
    _camera(settings, mode, out)
    _notes(settings, mode, out)
    manifest = settings.get("parseq_manifest")
    if isinstance(manifest, str) and manifest.strip():
        parseq.into(settings, manifest, out)
    out.notes += not_carried(settings)
    return out


def _integer(settings: Mapping, key: str, lo: int, hi: int, what: str) -> int:
    if key not in settings:
        raise ImportProblem(key, f"missing; expected {what}, an integer {lo}..{hi}")
    value = settings[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not lo <= value <= hi:
        raise ImportProblem(key, f"got {show(value)}; expected {what}, an integer {lo}..{hi}")
    return value


def _text(settings: Mapping, key: str, default: str) -> str:
    value = settings.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ImportProblem(key, f"got {show(value)}; expected text")
    return value


def _seed(value: Any, out: Draft) -> int:
    if type(value) is int and 0 <= value <= 2**32 - 1:
        return value
    if type(value) is int and value < 0:
        out.notes.append(f"seed: {value} (a random seed in Deforum): dreamvid's seed {D.SEED} used")
        return D.SEED
    raise ImportProblem("seed", f"got {show(value)}; expected an integer 0..4294967295, or -1 (random)")


def _files(settings: Mapping, mode: str, source: Path, folder: Path, out: Draft) -> None:
    """The input (the init video in Video Input mode, else the init image when used) and the soundtrack."""
    base = source.resolve().parent
    key = "video_init_path" if mode == "Video Input" else "init_image" if settings.get("use_init") else None
    if key is not None:
        out.input = _local(settings, key, base, folder, out)
    sound = settings.get("add_soundtrack", "None")
    if sound == "File":
        out.audio = _local(settings, "soundtrack_path", base, folder, out)
    elif sound == "Init Video" and out.input is not None and mode == "Video Input":
        out.audio = "input"


def _local(settings: Mapping, key: str, base: Path, folder: Path, out: Draft) -> str | None:
    """A file the settings name, as the schedule writes it; None (with a note) for a URL or none."""
    value = settings.get(key)
    if not isinstance(value, str) or not value.strip():
        out.notes.append(f"{key}: {show(value)}: no file named; the schedule has none (give --input)")
        return None
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        out.notes.append(f"{key}: {show(value)} is a URL; dreamvid reads local files: download it and give --input")
        return None
    return relative(value, base, folder)


def _colour(settings: Mapping, out: Draft) -> None:
    value = settings.get("color_coherence")
    if value is None:
        return
    if value in COLOURS:
        out.colour = COLOURS[value]
    else:
        out.notes.append(f"color_coherence: {show(value)} has no match here: dreamvid's colour default "
                         f"({D.COLOUR}) used (it has lab, histogram, none)")


def _camera(settings: Mapping, mode: str, out: Draft) -> None:
    if mode not in ("2D", "3D"):
        keys = [k for k in CAMERA if k in settings]
        if keys:
            out.notes.append(f"{', '.join(keys)}: not carried: animation_mode {mode} has no camera move")
        return
    for key, name in CAMERA.items():
        if key in settings:
            out.camera[name] = keyframes(key, settings[key], out.frames, out.seed)
    if mode == "3D":
        out.notes.append("animation_mode: 3D: its 2D keys (zoom, angle, translation_x/_y, transform_center_x/_y) "
                         "are imported as Deforum's 2D mode moves them; the 3D keys are listed below")


def _notes(settings: Mapping, mode: str, out: Draft) -> None:
    border = settings.get("border")
    if border is not None:
        out.notes.append(f"border: {show(border)}: dreamvid fills the edges a move reveals by reflection")
    _cadence(settings, mode, out)


def _cadence(settings: Mapping, mode: str, out: Draft) -> None:
    """``diffusion_cadence`` k > 1 is dreamvid's ``cadence: k`` (dream every k-th frame, the
    frames between warped); dreamvid's cadence works on image inputs only, so a video input
    is dreamed every frame and says so."""
    if settings.get("diffusion_cadence") in (None, 1, "1"):
        return
    if isinstance(settings["diffusion_cadence"], str) and settings["diffusion_cadence"].strip().isdigit():
        settings = {**settings, "diffusion_cadence": int(settings["diffusion_cadence"])}
    cadence = _integer(settings, "diffusion_cadence", 1, D.MAX_FRAMES, "frames per diffusion")
    if mode == "Video Input":
        out.notes.append(f"diffusion_cadence: {cadence}: dreamvid dreams every frame of a video input (its "
                         "cadence works on image inputs)")
    elif cadence > 1:
        out.cadence = cadence


def keyframes(key: str, text: Any, frames: int, seed: int) -> Points:
    """A Deforum keyframe string as [(frame, number or formula)], Deforum's way (see the module)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return [(0, finite_number(key, text, "a number or a Deforum keyframe string"))]
    if not isinstance(text, str):
        raise ImportProblem(key, f"got {show(text)}; expected a Deforum keyframe string like '0: (1.02)'")
    points: dict[int, float | str] = {}
    try:
        entries = split_entries(text)  # commas inside brackets belong to a function (Deforum would fail there)
    except ExpressionError as err:
        raise ImportProblem(key, str(err)) from None
    for entry in entries:
        if not entry.strip():
            continue
        frame_text, colon, value = entry.partition(":")
        if not colon or not value.strip():
            raise ImportProblem(key, f"bad keyframe entry {show(entry.strip())}; expected 'frame: (value)' entries "
                                     "separated by commas")
        frame = _frame(key, frame_text, frames, seed)
        if 0 <= frame < frames:
            points[frame] = _value(key, frame, value)
    if not points:
        raise ImportProblem(key, f"no keyframe within frames 0..{frames - 1}; expected at least one")
    return sorted(points.items())


def _frame(key: str, text: str, frames: int, seed: int) -> int:
    """A keyframe's frame: a number, or a formula of max_f (and s, the seed) in quotes."""
    bare = text.strip().strip("'\"").strip()
    if re.fullmatch(r"-?\d+", bare):
        if len(bare) > MAX_FRAME_DIGITS:
            raise ImportProblem(key, f"keyframe {bare[:12]}... has {len(bare)} digits; expected a frame number")
        return int(bare)
    try:
        value = compile_expression(to_dreamvid(bare)).evaluate({"max_f": frames - 1.0, "seed": float(seed)})
    except ExpressionError as err:
        raise ImportProblem(key, f"keyframe frame {show(text.strip())}: {err}") from None
    if not math.isfinite(value):
        raise ImportProblem(key, f"keyframe frame {show(text.strip())} gives {value}; expected a frame number")
    return int(value)  # Deforum's int(): toward zero


def _value(key: str, frame: int, text: str) -> float | str:
    bare = text.strip()
    plain = bare.replace("(", "").replace(")", "").replace("'", "").replace('"', "").strip()
    try:
        number = float(plain)
    except ValueError:
        formula = to_dreamvid(_unwrap(bare))
        check_formula(f"{key}: keyframe {frame}", formula)
        return formula
    return finite_number(f"{key}: keyframe {frame}", number, "a finite number")


def _unwrap(text: str) -> str:
    """``(1 + 0.5*t)`` -> ``1 + 0.5*t``: the brackets Deforum writes around every value (the
    schedule's Deforum strings add their own)."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and i < len(text) - 1:
                return text  # "(a)*(b)": the first bracket closes early
        text = text[1:-1].strip()
    return text


def to_dreamvid(formula: str) -> str:
    """A Deforum formula in dreamvid's names: ``s`` (Deforum's seed) becomes ``seed``."""
    return _SEED_NAME.sub("seed", formula)


def not_carried(settings: Mapping[str, Any]) -> list[str]:
    """One line per key (per family of keys) that has no meaning here."""
    lines, families = [], {}
    for key, value in settings.items():
        if key in READ:
            continue
        family = _family(key)
        if family is not None:
            families.setdefault(family, []).append(key)
            continue
        lines.append(f"not carried: {key} = {show(value)}: {_what(key)}")
    for what, keys in families.items():
        more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
        lines.append(f"not carried: {keys[0]}{more}: {what}")
    return lines


def _family(key: str) -> str | None:
    for pattern, what in FAMILIES:
        m = re.match(pattern, key)
        if m:
            return what.format(*m.groups())
    return None


def _what(key: str) -> str:
    for pattern, what in WHAT:
        if re.match(pattern, key):
            return what
    return "no meaning in dreamvid"
