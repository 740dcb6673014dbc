"""Parseq manifests (JSON with ``options`` and ``rendered_frames``) as a :class:`.Draft`.

The camera comes from the per-frame ``*_delta`` fields, as Deforum reads a manifest by default
(``parseq_use_deltas``): ``zoom_delta`` is the scale from one frame to the next (Parseq writes
``1 + zoom[n] - zoom[n-1]``), ``angle_delta`` and ``translation_x_delta``/``_y_delta`` are
degrees and pixels per frame; ``transform_center_x``/``_y`` are used as they are. The frames
are the manifest's (0 to its highest ``frame``), its rate ``options.output_fps``. In a Deforum
settings file that embeds a manifest and keeps its own frame count and rate
(``parseq_non_schedule_overrides: false``), frames past the manifest hold its last values, as
Deforum does, and a rate that differs from the manifest's is a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dreamvid.core import defaults as D
from dreamvid.core.problems import show
from dreamvid.schedule.importers.draft import Draft, ImportProblem, compress, finite_number

MOTION = {  # Parseq field (its delta when deltas are used) -> dreamvid's camera key
    "zoom": "zoom", "angle": "rotate", "translation_x": "translate_x", "translation_y": "translate_y",
}
ABSOLUTE = {"transform_center_x": "center_x", "transform_center_y": "center_y"}  # never deltas (Deforum's rule)


def draft(manifest: Mapping[str, Any]) -> Draft:
    """A Draft of a standalone manifest; ImportProblem on a bad one."""
    rows = frames_of(manifest)
    fps = output_fps(manifest)
    if fps is None:
        raise ImportProblem("options.output_fps", "missing; expected the manifest's frames per second")
    out = Draft(kind="Parseq manifest", frames=len(rows), fps=fps, mapping_style=True)
    _camera(rows, len(rows), True, out, fallback={})
    out.notes += _not_carried(manifest, rows)
    return out


def into(settings: Mapping[str, Any], text: str, out: Draft) -> None:
    """A manifest embedded in Deforum settings (``parseq_manifest``), laid over their camera."""
    if text.strip().startswith("http"):
        out.notes.append("parseq_manifest: a URL; dreamvid reads no URLs: the settings' own camera was imported "
                         "(save the manifest and import it)")
        return
    try:
        manifest = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise ImportProblem("parseq_manifest", f"not JSON ({str(err).splitlines()[0][:80]}); expected a Parseq "
                                               "manifest") from None
    if not isinstance(manifest, Mapping):
        raise ImportProblem("parseq_manifest", f"got {show(manifest)}; expected a Parseq manifest (a JSON object)")
    rows = frames_of(manifest)
    fps = output_fps(manifest)
    if settings.get("parseq_non_schedule_overrides", True):
        if (len(rows), fps) != (out.frames, out.fps):
            out.notes.append(f"parseq_manifest: its {len(rows)} frames at {fps if fps is not None else out.fps:g} fps "
                             f"replace the settings' {out.frames} at {out.fps:g} (parseq_non_schedule_overrides)")
        out.frames = len(rows)
        out.fps = fps if fps is not None else out.fps
        out.camera = {key: [(k, v) for k, v in points if k < out.frames] or [(0, points[0][1])]
                      for key, points in out.camera.items()}
    elif fps is not None and fps != out.fps:
        out.warnings.append(f"parseq_manifest: its output_fps {fps:g} differs from the settings' fps {out.fps:g}; "
                            f"the schedule uses {out.fps:g} (Deforum too, with parseq_non_schedule_overrides off)")
    deltas = settings.get("parseq_use_deltas", True)
    _camera(rows, out.frames, bool(deltas), out, fallback=dict(out.camera))
    out.mapping_style = True
    out.notes += _not_carried(manifest, rows, prefix="parseq_manifest.")


def frames_of(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The rendered frames by index 0..n-1 (a later duplicate wins, as in Deforum); ImportProblem
    for no frames, a frame without an integer ``frame``, or a frame missing in between."""
    rows = manifest.get("rendered_frames")
    if not isinstance(rows, list) or not rows:
        raise ImportProblem("rendered_frames", f"got {show(rows)}; expected a non-empty list of frames (render the "
                                               "document in Parseq, then copy its output)")
    by_frame: dict[int, Mapping] = {}
    for i, row in enumerate(rows):
        frame = row.get("frame") if isinstance(row, Mapping) else None
        if type(frame) is not int or not 0 <= frame < D.MAX_FRAMES:
            raise ImportProblem(f"rendered_frames[{i}].frame", f"got {show(frame)}; expected a frame number "
                                                               f"0..{D.MAX_FRAMES - 1}")
        by_frame[frame] = row
    count = max(by_frame) + 1
    missing = [f for f in range(count) if f not in by_frame]
    if missing:
        raise ImportProblem("rendered_frames", f"frame {missing[0]} is missing; expected every frame from 0 to "
                                               f"{count - 1}")
    return [by_frame[f] for f in range(count)]


def output_fps(manifest: Mapping[str, Any]) -> float | None:
    options = manifest.get("options", {})
    if not isinstance(options, Mapping):
        raise ImportProblem("options", f"got {show(options)}; expected a mapping (output_fps, bpm, ...)")
    if options.get("output_fps") is None:
        return None
    fps = finite_number("options.output_fps", options["output_fps"], f"a number > 0 and <= {D.MAX_FPS}")
    if not 0 < fps <= D.MAX_FPS:
        raise ImportProblem("options.output_fps", f"{fps:g} is out of range; expected a number > 0 and <= "
                                                  f"{D.MAX_FPS}")
    return fps


def _camera(rows: list[Mapping], frames: int, deltas: bool, out: Draft, fallback: dict) -> None:
    """Each camera key from the rows (past the rows: the last value); a key the manifest does not
    have keeps ``fallback``'s (the settings' own schedule), as Deforum falls back."""
    fields = {(name + "_delta" if deltas else name): key for name, key in MOTION.items()}
    fields.update({name: key for name, key in ABSOLUTE.items()})
    for name, key in fields.items():
        if name not in rows[0]:
            if key in fallback:
                continue
            if name in ("zoom_delta", "angle_delta", "zoom", "angle") or name.startswith("translation"):
                out.notes.append(f"{name}: not in the manifest; no {key.replace('_', ' ')} (Deforum would use "
                                 "its own schedule)")
            continue
        values = []
        for i, row in enumerate(rows):
            if name not in row:
                raise ImportProblem(f"rendered_frames[{i}].{name}", "missing; expected a number on every frame "
                                                                    "(frame 0 has one)")
            values.append(finite_number(f"rendered_frames[{i}].{name}", row[name], "a finite number"))
        values += [values[-1]] * (frames - len(values))  # frames past the manifest hold its last value
        out.camera[key] = compress(values[:frames])


def _not_carried(manifest: Mapping[str, Any], rows: list[Mapping], prefix: str = "") -> list[str]:
    used = {"frame", *(n + "_delta" for n in MOTION), *MOTION, *ABSOLUTE}
    lines = []
    fields = sorted({name for row in rows for name in row if isinstance(name, str)} - used)
    for name in fields:
        if name.endswith(("_pc", "_delta")):
            continue  # Parseq's percentage and delta views of a field listed on its own
        lines.append(f"not carried: {prefix}rendered_frames[*].{name} = {show(rows[0].get(name))}: "
                     f"{'Stable Diffusion prompt' if 'prompt' in name else 'no meaning in dreamvid'}")
    options = manifest.get("options", {})
    for name, value in options.items():
        if name != "output_fps":
            lines.append(f"not carried: {prefix}options.{name} = {show(value)}: no meaning in dreamvid")
    kept = [k for k in manifest if k not in ("options", "rendered_frames")]
    if kept:
        lines.append(f"not carried: {prefix}{', '.join(map(str, kept))}: Parseq's document (its rendered frames "
                     "were imported)")
    return lines


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")
