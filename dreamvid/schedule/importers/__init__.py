"""``dreamvid import``: a Deforum settings file or a Parseq manifest as a dreamvid schedule.

:func:`import_file` reads the file (JSON; which tool wrote it is told by its keys: a manifest
has ``rendered_frames``, Deforum settings ``max_frames``), builds the schedule
(:mod:`.draft`; the tools' own readers in :mod:`.deforum` and :mod:`.parseq`), checks it as
``dreamvid validate`` would (without looking for its files), and returns it with the lines to
tell the user: what was not carried over, and what to check. :func:`write_import` writes it
atomically (temp file, fsync, rename). Every problem is one line naming the file and the key;
nothing is written then.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError
from dreamvid.core.files import write_atomic
from dreamvid.core.problems import one_line, show
from dreamvid.schedule.importers import deforum, parseq
from dreamvid.schedule.importers.draft import ImportProblem, layer_segments, relative, schedule_data
from dreamvid.schedule.schedule import ScheduleError, parse_schedule

__all__ = ["ImportError_", "Imported", "import_file", "write_import"]

MAX_BYTES = 256 << 20  # a manifest of every frame of a long video is a few MB; a larger file is not one


class ImportError_(InputError):
    """A file that cannot be imported; ``messages`` holds one line per problem."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


@dataclass(frozen=True)
class Imported:
    """An imported schedule: its data, its YAML text, and the lines to tell the user."""

    kind: str  # "Deforum settings" | "Parseq manifest"
    data: dict[str, Any]
    text: str
    notes: tuple[str, ...]  # what was not carried over, one line each
    warnings: tuple[str, ...]  # what the user should check, one line each


def import_file(path: str | os.PathLike, output: str | os.PathLike, *, layers: str = D.IMPORT_LAYERS,
                input: str | os.PathLike | None = None, size: tuple[int, int] | None = None) -> Imported:
    """The schedule that ``path`` (Deforum settings or a Parseq manifest) makes, to be written at
    ``output``; ``layers``: one segment per space-separated layer term; ``input``: the image or
    clip to start from (a path from here), instead of the file's own; ``size``: (width, height)
    instead of the file's (a manifest has none). ImportError_ when it cannot."""
    path, output = Path(path), Path(output)
    name = str(path)
    try:
        source = _read(path)
        folder = output.resolve().parent
        if "rendered_frames" in source:
            draft = parseq.draft(source)
        elif "max_frames" in source:
            draft = deforum.draft(source, path, folder)
        else:
            raise ImportProblem("", f"JSON with neither rendered_frames nor max_frames (keys {_keys(source)}); "
                                    "expected a Deforum settings file or a Parseq manifest")
        if input is not None:
            draft.input = relative(str(input), Path.cwd(), folder)
        if size is not None:
            draft.size = tuple(size)
        data = schedule_data(draft, layer_segments(layers), output)
    except ImportProblem as err:
        raise ImportError_([one_line(f"{name}: {err}")]) from None
    try:
        parse_schedule(data, source=output, check_files=False)
    except ScheduleError as err:
        lines = [one_line(f"{name}: the imported schedule would not load: {line}") for line in err.messages]
        raise ImportError_(lines) from None
    text = _yaml(data, path, draft.kind)
    return Imported(draft.kind, data, text, tuple(map(one_line, draft.notes)), tuple(map(one_line, draft.warnings)))


def write_import(imported: Imported, output: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the schedule at ``output`` (temp file, fsync, rename); InputError if a file is there
    and not ``force``."""
    output = Path(output)
    if output.exists() and not force:
        raise InputError(f"{output}: a file is already there; expected a new file name (or --force to replace it)")
    return write_atomic(output, imported.text)


def _read(path: Path) -> dict[str, Any]:
    """The file's JSON object; ImportProblem (one line) for anything else."""
    expected = "expected a Deforum settings file (JSON .txt) or a Parseq manifest (JSON)"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ImportProblem("", f"{path.stat().st_size} bytes; {expected}, at most {MAX_BYTES >> 20} MB")
        text = path.read_text(encoding="utf-8-sig")  # Windows editors may add a byte-order mark
    except UnicodeDecodeError as err:
        raise ImportProblem("", f"not UTF-8 text (byte {err.start}); {expected}") from None
    except OSError as err:
        raise ImportProblem("", f"cannot read it ({err.strerror or err}); {expected}") from None
    try:
        data = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError) as err:
        where = f"line {err.lineno}, column {err.colno}: " if isinstance(err, json.JSONDecodeError) else ""
        what = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        raise ImportProblem("", f"{where}not JSON ({what}); {expected}") from None
    if not isinstance(data, dict):
        raise ImportProblem("", f"got {show(data)} at the top level; {expected} (a JSON object)")
    return data


def _refuse(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _keys(data: dict) -> str:
    keys = [str(k) for k in list(data)[:4]]
    return ", ".join(keys) + (", ..." if len(data) > 4 else "") if keys else "none"


def _yaml(data: dict[str, Any], source: Path, kind: str) -> str:
    head = (f"# Imported by `dreamvid import` from {source.name} ({kind}). The camera follows Deforum's 2D warp\n"
            "# (`camera: deforum`); what was not carried over was listed by the import.\n")
    return head + yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


class _Dumper(yaml.SafeDumper):
    """Lists on one line (``size: [256, 144]``), mappings of scalars too (``layers: {mixed3: 1.0}``)
    unless they are long (a per-frame series: one keyframe a line)."""


def _flat(value) -> bool:
    """A value written on one line: a scalar, or a short list or mapping of scalars."""
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return len(value) <= 4 and all(not isinstance(v, (list, dict)) for v in items)
    return True


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=all(map(_flat, value)))


def _represent_dict(dumper: yaml.SafeDumper, value: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=_flat(value))


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
