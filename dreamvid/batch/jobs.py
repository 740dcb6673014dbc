"""Batch job files: a base schedule fanned out into variants, and which of them are done.

A job file fans a base schedule out into variants (every combination of the lists)::

    schedule: logo.yaml                  # the base schedule (relative to this file)
    output: out                          # folder for the videos (default: out)
    inputs: [a.png, b.png]               # relative to this file, or "noise"
    sizes: [[1920, 1080], [1080, 1920], "1080x1080"]
    seed: [0, 1]                         # any schedule key, as a list of values
    defaults.zoom: [1.02, 1.04]          # dotted paths reach nested keys (segments.1.zoom too)

or simply lists schedule files (``schedules: [a.yaml, b.yaml]``, or a bare YAML list).
Each variant is named from what varies (``b_1080x1920_seed1_zoom1.04``) and renders to
``<output>/<name><ext>``; its resolved schedule is written to ``<output>/<name>.yaml``
(absolute paths), so one variant can be re-rendered or previewed alone with the ordinary
commands.

"Finished" is known from a done-marker ``<video>.done`` (JSON) that the worker writes
after the render returned: it records the fingerprint of everything the video depends on
(input content, size, fps, seed, model, encoder, audio, every frame's parameters) and the
video's size in bytes. A variant is skipped when the marker's fingerprint equals the
current one, the video exists with that size, and no work folder is left. So editing the
job or the base schedule re-renders exactly the variants it changes, and a video that was
deleted, replaced or is still being worked on is never mistaken for done.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dreamvid.core.errors import InputError
from dreamvid.core.files import resolve_path, write_atomic
from dreamvid.core.problems import Invalid, message, one_line
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering.workdir import work_dir
from dreamvid.schedule.schedule import Schedule, ScheduleError, parse_schedule
from dreamvid.schedule.spec import NOISE, ScheduleSpec, file_problem, parse_size
from dreamvid.schedule.yamlfile import read_yaml_file

JOB_KEYS = ("schedule", "schedules", "output", "inputs", "sizes")
PATH_KEYS = ("input", "output", "audio", "model_weights", "mask")  # schedule keys holding paths


@dataclass(frozen=True)
class Variant:
    """One video of a batch: its name, parsed schedule and the data it was parsed from."""

    name: str
    schedule: Schedule
    data: dict  # the schedule as plain data, paths absolute: written to `schedule_file`

    @property
    def output(self) -> Path:
        return self.schedule.output_path

    @property
    def schedule_file(self) -> Path:
        return self.output.with_name(self.name + ".yaml")



# ------------------------------------------------------------------------- job files


def load_job(path: str | os.PathLike) -> list[Variant]:
    """Read a job file and build and validate every variant before any work starts.

    Raises :class:`InputError` (a :class:`ScheduleError` for schedule problems) listing
    every problem, each naming the job file, the variant and the key.
    """
    path = Path(path)
    name = str(path)
    job, problems = read_yaml_file(path, "job file")  # the schedule loader's checks: duplicate keys, unsafe tags
    if problems:
        raise InputError("\n".join(message(name, loc, text) for loc, text in problems))
    if isinstance(job, list):
        job = {"schedules": job}
    if not isinstance(job, dict):
        raise InputError(f"{name}: expected a mapping with schedule (or schedules), inputs, sizes, ... "
                         "or a list of schedule files")  # fmt: skip
    return _variants(job, path)


def _variants(job: dict, path: Path) -> list[Variant]:
    name, base = str(path), path.resolve().parent
    problems: list[str] = []
    bases = _schedule_files(job, name, base, problems)
    out = resolve_path(base, _opt_str(job, "output", name, problems) or "out")
    axes = _axes(job, name, base, problems)  # [(job key, key path, [(label, value)])]
    if problems:
        raise InputError("\n".join(map(one_line, problems)))

    variants, messages, seen = [], [], {}
    for schedule_file, data in bases:
        for combo in itertools.product(*(values for _, _, values in axes)):
            labels = ([schedule_file.stem] if len(bases) > 1 else []) + [label for label, _ in combo]
            vname = _safe_name("_".join(labels) or schedule_file.stem)
            where = f"{name}: variant {vname}"
            vdata, bad = _apply(data, [(key, value) for (_, key, _), (_, value) in zip(axes, combo)], where)
            if bad:
                messages += bad
                continue
            ext = Path(str(vdata.get("output", "video.mp4"))).suffix or ".mp4"
            vdata["output"] = str(out / (vname + ext))
            _absolute_paths(vdata, schedule_file.parent)
            try:
                schedule = parse_schedule(vdata, source=schedule_file)
            except ScheduleError as err:
                prefix = f"{schedule_file}: "
                messages += [f"{where} (from {schedule_file.name}): {m.removeprefix(prefix)}" for m in err.messages]
                continue
            if vname in seen:
                messages.append(f"{where}: the name is also that of an earlier variant ({seen[vname]}); expected "
                                "distinct names (input files with distinct stems, distinct schedule files)")
                continue
            seen[vname] = ", ".join([schedule_file.name] + [f"{key}={v!r}" for (key, _, _), (_, v) in zip(axes, combo)])
            variants.append(Variant(vname, schedule, vdata))
    if messages:
        raise ScheduleError(messages)
    return variants


def _schedule_files(job: dict, name: str, base: Path, problems: list[str]) -> list[tuple[Path, dict]]:
    """The base schedules, each as (absolute path, raw data)."""
    if ("schedule" in job) == ("schedules" in job):
        problems.append(f"{name}: expected exactly one of schedule (a file) or schedules (a list of files)")
        return []
    values = [job["schedule"]] if "schedule" in job else job["schedules"]
    key = "schedule" if "schedule" in job else "schedules"
    if not isinstance(values, list) or not values:
        problems.append(f"{name}: {key}: got {values!r}; expected a non-empty list of schedule files")
        return []
    out = []
    for i, value in enumerate(values):
        loc = key if key == "schedule" else f"{key}[{i}]"
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name}: {loc}: got {value!r}; expected a schedule file path")
            continue
        file = resolve_path(base, value)
        data, yaml_problems = read_yaml_file(file, "schedule")
        if yaml_problems and yaml_problems[0][1].startswith("cannot read"):
            problems.append(f"{name}: {loc}: {file}: {yaml_problems[0][1]} (paths are relative to the job file)")
            continue
        if yaml_problems or not isinstance(data, dict):
            why = yaml_problems[0][1] if yaml_problems else "not a mapping"
            problems.append(f"{name}: {loc}: {file}: {why}; expected a schedule (dreamvid validate shows more)")
            continue
        out.append((file, data))
    return out


def _axes(job: dict, name: str, base: Path, problems: list[str]) -> list[tuple[str, tuple, list]]:
    """The lists to fan out over, in naming order: inputs, sizes, then other keys in file order."""
    axes = []
    for key, value in job.items():
        if key in ("schedule", "schedules", "output"):
            continue
        if not isinstance(value, list) or not value:
            problems.append(f"{name}: {key}: got {value!r}; expected a non-empty list of values")
            continue
        if key == "inputs":
            axes.append((0, key, ("input",), [_input(v, f"{name}: inputs[{i}]", base, problems)
                                              for i, v in enumerate(value)]))  # fmt: skip
        elif key == "sizes":
            axes.append((1, key, ("size",), [_size(v, f"{name}: sizes[{i}]", problems) for i, v in enumerate(value)]))
        else:
            loc = _key_path(str(key))
            if loc is None:
                known = [*JOB_KEYS, *ScheduleSpec.model_fields]
                hint = difflib.get_close_matches(str(key), known, n=1)
                why = "input, output and size are set by inputs, output and sizes" if key in PATH_KEYS + ("size",) \
                    else f"did you mean {hint[0]}?" if hint else "unknown key"
                problems.append(f"{name}: {key}: {why}; expected {', '.join(JOB_KEYS)} or a schedule key "
                                "(seed, fps, defaults.zoom, segments.0.frames, ...) with a list of values")
                continue
            last = next(str(k) for k in reversed(loc) if not isinstance(k, int))
            axes.append((2, key, loc, [(_label(last, v, i), v) for i, v in enumerate(value)]))
    axes.sort(key=lambda a: a[0])  # stable: other keys keep their file order
    return [(key, loc, values) for _, key, loc, values in axes]


def _key_path(key: str) -> tuple | None:
    """``defaults.zoom`` -> ("defaults", "zoom"); None unless it starts at a schedule key."""
    parts = tuple(int(p) if p.isascii() and p.isdigit() and len(p) <= 18 else p for p in key.split("."))
    if not parts or parts[0] not in ScheduleSpec.model_fields or parts[0] in PATH_KEYS + ("size",):
        return None
    return parts


def _input(value: Any, where: str, base: Path, problems: list[str]) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: got {value!r}; expected an image path (relative to the job file) or 'noise'")
        return "", ""
    if value == NOISE:
        return NOISE, NOISE
    path = resolve_path(base, value)
    problem = file_problem(path)  # also a name too long for the file system
    if problem:
        problems.append(f"{where}: {problem}: {path}; expected an image file (relative to the job file)")
    return path.stem, str(path)


def _size(value: Any, where: str, problems: list[str]) -> tuple[str, Any]:
    try:
        w, h = parse_size(value)
    except Invalid as err:
        problems.append(f"{where}: {err}")
        return "", value
    return f"{w}x{h}", [w, h]


def _label(key: str, value: Any, index: int) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return f"{key}{value}"
    return f"{key}{index + 1}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.+-]+", "-", text, flags=re.ASCII).strip("-.") or "video"


def _apply(data: dict, overrides: list[tuple[tuple, Any]], where: str) -> tuple[dict, list[str]]:
    """A deep copy of ``data`` with each (key path, value) set; problems for paths that do not fit."""
    data = json.loads(json.dumps(data, default=str))  # deep copy of plain YAML data
    problems = []
    for loc, value in overrides:
        node = data
        for i, part in enumerate(loc[:-1]):
            here = ".".join(map(str, loc[: i + 1]))
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    problems.append(f"{where}: {'.'.join(map(str, loc))}: the base schedule has no {here}; "
                                    "expected an index of an existing list item")  # fmt: skip
                    break
                node = node[part]
            else:
                if not isinstance(node, dict):
                    problems.append(f"{where}: {'.'.join(map(str, loc))}: {here} is not a mapping in the base "
                                    "schedule; expected a key path through mappings and list indices")  # fmt: skip
                    break
                node = node.setdefault(part, {})
        else:
            last = loc[-1]
            if isinstance(last, int) and not (isinstance(node, list) and last < len(node)):
                problems.append(f"{where}: {'.'.join(map(str, loc))}: no such list item in the base schedule; "
                                "expected an existing index")
            elif not isinstance(last, int) and not isinstance(node, dict):
                problems.append(f"{where}: {'.'.join(map(str, loc))}: its parent is not a mapping; expected a "
                                "key path through mappings")
            else:
                node[last] = value
    return data, problems


def _absolute_paths(data: dict, base: Path) -> None:
    """Make the schedule's paths absolute, so the data means the same from any folder."""
    for key in PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip() and not (key == "input" and value == NOISE):
            data[key] = str(resolve_path(base, value))
    segments = data.get("segments")
    for segment in segments if isinstance(segments, list) else ():  # a segment's guide image (a wrong type: validation says so)
        if isinstance(segment, dict) and isinstance(segment.get("guide"), str) and segment["guide"].strip():
            segment["guide"] = str(resolve_path(base, segment["guide"]))


def _opt_str(job: dict, key: str, name: str, problems: list[str]) -> str | None:
    value = job.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        problems.append(f"{name}: {key}: got {value!r}; expected a folder path (relative to the job file)")
        return None
    return value


# ---------------------------------------------------------------------- finished or not


def fingerprint(schedule: Schedule) -> str:
    """A hash of everything the finished video depends on (see the module docstring)."""
    total = schedule.total_frames
    what = {
        "settings": ckpt.global_settings(schedule),
        "audio": ckpt.file_digest(schedule.audio_path) if schedule.audio_path else None,
        "frames": total,
        "digests": ckpt.frame_digests(schedule, total - 1),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def done_marker(output: Path) -> Path:
    return output.with_name(output.name + ".done")


def is_finished(schedule: Schedule) -> bool:
    """The video exists, was completed for exactly this schedule, and nothing is left to do."""
    output = schedule.output_path
    try:
        marker = json.loads(done_marker(output).read_text())
        size = output.stat().st_size
    except (OSError, ValueError):
        return False
    if work_dir(output).exists() or not isinstance(marker, dict) or marker.get("bytes") != size:
        return False
    try:
        return marker.get("fingerprint") == fingerprint(schedule)
    except OSError:  # the input file went away: not finished for this schedule
        return False


def write_schedule_file(variant: Variant, job: Path | None = None) -> Path:
    """Write the variant's resolved schedule beside its video (only when it changed)."""
    path = variant.schedule_file
    source = f" from {job}" if job else ""
    text = (f"# variant {variant.name}, written by dreamvid batch{source}; edits are overwritten.\n"
            f"# Render or preview it alone: dreamvid render {path.name}\n")  # fmt: skip
    text += yaml.safe_dump(variant.data, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_atomic(path, text)
    return path


