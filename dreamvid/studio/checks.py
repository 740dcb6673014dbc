"""Checking the schedule in the editor as the user types: the CLI's messages, with lines.

:func:`check` runs the API's :func:`dreamvid.load_schedule` on the editor's text (the CLI's
safe YAML loader and checks), then the studio's own rule that every file the schedule reads
lies inside the studio folder (the output is checked at Render only, so a schedule that
writes elsewhere can still be checked and previewed), then :func:`dreamvid.validate` (the input image and audio
must decode). Each message is the CLI's line, ``<file>: <key path>: <problem>; expected
<what>``; :func:`key_lines` maps key paths to line numbers with PyYAML's node marks, so the
page can point at the line.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dreamvid.core.problems import format_loc
from dreamvid.studio.paths import Folder

_LINE = re.compile(r"\bline (\d+)\b")


@dataclass
class Problem:
    message: str  # the CLI's one line
    line: int | None = None  # 1-based line of the editor's text it points at


@dataclass
class Check:
    problems: list[Problem] = field(default_factory=list)
    schedule: Any = None  # the parsed Schedule when there are no problems
    summary: str = ""  # what `dreamvid validate` prints

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        s = self.schedule
        return {
            "ok": self.ok,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "summary": self.summary,
            "total_frames": s.total_frames if s is not None else None,
            "size": list(s.size) if s is not None else None,
            "fps": s.fps if s is not None else None,
        }


def check(folder: Folder, name: str, text: str, *, decode: bool = True) -> Check:
    """Validate the editor's ``text`` as the schedule file ``name`` (already checked to lie in
    ``folder``): paths in it are relative to that file, as on disk. ``decode``: also decode the
    input image and audio (what ``dreamvid validate`` adds to parsing)."""
    import dreamvid

    path = folder.root / name
    lines = key_lines(text)
    try:
        # A trailing line break keeps the API from taking a one-word text for a file path.
        schedule = dreamvid.load_schedule(text if text.endswith("\n") else text + "\n", base_dir=path.parent)
    except dreamvid.ScheduleError as err:
        return Check([_problem(_renamed(m, name), name, lines) for m in err.messages])
    except dreamvid.InputError as err:
        return Check([_problem(_renamed(str(err), name), name, lines)])
    schedule = dataclasses.replace(schedule, source=path)  # the file's name in plot titles and messages
    outside = folder.schedule_problems(schedule, output=False)  # a render checks its output (Folder.output_refusal)
    if outside:
        return Check([_problem(f"{name}: {key}: {text}", name, lines) for key, text in outside])
    if not decode:
        return Check(schedule=schedule, summary=schedule.summary())
    warnings: list[str] = []
    try:
        summary = dreamvid.validate(schedule, callback=lambda p: warnings.append(p.message) if p.event == "warning" else None)
    except dreamvid.DreamvidError as err:
        return Check([_problem(line, name, lines) for line in str(err).splitlines()])
    return Check(schedule=schedule, summary="\n".join([summary, *(f"warning: {w}" for w in warnings)]))


JOB_KEYS = ("schedule", "schedules")  # the keys that make a YAML file a batch job file (dreamvid/batch/jobs.py)


def is_job_file(text: str) -> bool:
    """``text`` is a batch job file (``dreamvid batch``), not a schedule: a mapping with
    ``schedule:`` or ``schedules:`` and no ``segments:``, or a bare list of schedule files."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing is constructed
    except (yaml.YAMLError, RecursionError):
        return False
    if isinstance(root, yaml.SequenceNode):
        return True
    if not isinstance(root, yaml.MappingNode):
        return False
    keys = {key.value for key, _ in root.value if isinstance(key, yaml.ScalarNode)}
    return bool(keys & set(JOB_KEYS)) and "segments" not in keys


def _renamed(message: str, name: str) -> str:
    """The API names YAML text ``<schedule>``; the page names the file."""
    return name + message[len("<schedule>"):] if message.startswith("<schedule>") else message


def _problem(message: str, name: str, lines: dict[str, int]) -> Problem:
    return Problem(message, line_of(message, name, lines))


def line_of(message: str, name: str, lines: dict[str, int]) -> int | None:
    """The line ``message`` points at: a line number it states (YAML syntax errors, duplicate
    keys, bad tags), else the line of the longest key path it starts with (the parent's line
    for a missing key)."""
    stated = _LINE.search(message)
    if stated:
        return int(stated.group(1))
    rest = message[len(name) + 2:] if message.startswith(name + ": ") else message
    best = None
    for path in lines:
        if rest.startswith(path) and rest[len(path):len(path) + 1] in (":", ".", "[") and (
                best is None or len(path) > len(best)):  # fmt: skip
            best = path
    return lines[best] if best is not None else None


def key_lines(text: str) -> dict[str, int]:
    """Key path (as messages write it: ``segments[1].layers.mixed3``) -> 1-based line of its
    key (of the item, for list items), from PyYAML's node marks. Text that is not valid YAML
    maps nothing (its message states the line)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing is constructed
    except (yaml.YAMLError, RecursionError):
        return {}
    found: dict[str, int] = {}
    todo: list[tuple[yaml.Node, tuple]] = [(root, ())] if root is not None else []
    seen: set[int] = set()
    while todo:
        node, loc = todo.pop()
        if id(node) in seen:  # aliases repeat nodes
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                for sub in _spellings(loc, key.value):
                    found.setdefault(format_loc(sub), key.start_mark.line + 1)
                todo.append((value, loc + (key.value,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found.setdefault(format_loc(loc + (i,)), item.start_mark.line + 1)
                todo.append((item, loc + (i,)))
    return found


def _spellings(loc: tuple, key: str) -> list[tuple]:
    """A mapping key as messages may write it: ``.key``, and ``[0]`` for integer keys
    (keyframe maps ``{0: 1.02}``)."""
    out = [loc + (key,)]
    if re.fullmatch(r"[+-]?\d+", key):
        out.append(loc + (int(key),))
    return out


def read_text(path: Path) -> str:
    """A schedule file's text for the editor (UTF-8; anything else is refused)."""
    return path.read_text(encoding="utf-8")
