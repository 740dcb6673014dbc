"""The studio's folder: the only place whose files the studio reads or writes.

Every name a request carries is a path relative to the folder. :meth:`Folder.file` refuses
absolute paths, ``..`` and names that lead out of the folder through a symlink, before any
file is opened; :meth:`Folder.schedule_problems` does the same for the files a schedule names
(input, output and its work folder, audio, weights), since the studio renders and previews
them on the user's behalf.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

SCHEDULE_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = ("__pycache__", "node_modules", "site-packages")  # besides hidden folders and work folders
MAX_DEPTH = 4  # folder levels searched for schedules
MAX_SCHEDULES = 200  # schedules listed at most


class Refused(ValueError):
    """A path the studio will not touch; the message is the one-line reason (HTTP 400/403/404)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Folder:
    """The studio's folder (absolute, symlinks resolved) and the checks on names within it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def contains(self, path: Path) -> bool:
        """``path`` (symlinks resolved) is the folder or inside it."""
        return path.resolve().is_relative_to(self.root)

    def file(self, name: object, suffixes: tuple[str, ...] = (), *, exists: bool = True) -> Path:
        """The file a request names: ``name`` relative to the folder, with forward slashes.

        Raises :class:`Refused` for anything but a plain relative path that stays inside the
        folder once symlinks are followed, with one of ``suffixes``, existing when ``exists``.
        """
        if not isinstance(name, str) or not name.strip():
            raise Refused("name: missing; expected a file name relative to the studio folder")
        if "\\" in name or "\0" in name or any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in name):
            raise Refused(f"name: {name!r} holds a backslash, a control character or half a UTF-16 pair; "
                          "expected a plain relative path")
        pure = PurePosixPath(name)
        if pure.is_absolute() or name.startswith("~"):
            raise Refused(f"name: {name!r} is absolute; expected a path relative to the studio folder", 403)
        if ".." in pure.parts:
            raise Refused(f"name: {name!r} climbs out with '..'; expected a path inside the studio folder", 403)
        path = self.root.joinpath(*pure.parts)
        try:
            if not self.contains(path):
                raise Refused(f"name: {name!r} leads out of the studio folder (a symlink); expected a file inside it",
                              403)
            if suffixes and path.suffix.lower() not in suffixes:
                raise Refused(f"name: {name!r}: expected a file name ending in {', '.join(suffixes)}")
            if exists and not path.is_file():
                raise Refused(f"name: {name!r}: no such file in the studio folder", 404)
        except OSError as err:  # a name too long for the file system, a loop of symlinks ...
            raise Refused(f"name: {name!r}: {err.strerror or err}; expected a file name the file system takes") from None
        return path

    def name(self, path: Path) -> str:
        """``path`` as a name relative to the folder (forward slashes)."""
        return path.resolve().relative_to(self.root).as_posix()

    def schedule_problems(self, schedule, *, output: bool = True) -> list[tuple[str, str]]:
        """(key, text) for each file of ``schedule`` outside the folder (none when all are inside).
        ``output``: the output and its work folder too (a render writes them; a check or a
        preview reads the other files only, so they leave the output out)."""
        files = [("input", schedule.input_path), ("audio", schedule.audio_path),
                 ("model_weights", schedule.model_weights_path), *schedule.images()]  # fmt: skip (guides, mask)
        if output:
            files += self.output_files(schedule)
        problems = []
        for key, path in files:
            if path is not None and not self.contains(path):
                problems.append((key, f"{path} is outside the studio folder; expected a file inside {self.root}"))
        return _first_per_key(problems)

    def output_files(self, schedule) -> list[tuple[str, Path]]:
        """What a render of ``schedule`` writes: its output and work folder (parts, checkpoints)."""
        from dreamvid.rendering.workdir import work_dir

        if schedule.output_path is None:
            return []
        return [("output", schedule.output_path), ("output", work_dir(schedule.output_path))]

    def output_inside(self, schedule) -> bool:
        """The render's output and work folder lie in the folder (or it has no output)."""
        return all(self.contains(path) for _, path in self.output_files(schedule))

    def output_refusal(self, name: str, schedule) -> str | None:
        """The one line a Render of ``name`` gets when its output lies outside the folder."""
        if self.output_inside(schedule):
            return None
        out = schedule.output_path
        return (f"{name}: output: {out} is outside the studio folder; expected a path inside {self.root} to render "
                f"here (e.g. output: out/{out.name}), or run `dreamvid render {self.root / name}` in a terminal")

    def schedules(self) -> list[Path]:
        """The YAML files in the folder and its subfolders (not hidden ones, not work folders),
        sorted by name; at most :data:`MAX_SCHEDULES`."""
        found: list[Path] = []
        for top, dirs, files in os.walk(self.root):
            depth = len(Path(top).relative_to(self.root).parts)
            dirs[:] = sorted(d for d in dirs if not (d.startswith(".") or d.endswith(".parts") or d in SKIP_DIRS)
                             and depth < MAX_DEPTH)  # fmt: skip
            for f in sorted(files):
                p = Path(top) / f
                if p.suffix.lower() in SCHEDULE_SUFFIXES and not f.startswith(".") and self.contains(p):
                    found.append(p)
                    if len(found) >= MAX_SCHEDULES:
                        return sorted(found, key=self.name)
        return sorted(found, key=self.name)


def _first_per_key(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen, out = set(), []
    for key, text in problems:
        if key not in seen:
            seen.add(key)
            out.append((key, text))
    return out
