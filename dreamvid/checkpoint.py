"""Checkpoints: what frame n+1 needs, saved atomically and verified on load.

A render's work folder (``<output>.parts/``) holds encoded video parts and checkpoints::

    part-00000000.mp4   frames 0..49      (each part closes at a checkpoint)
    part-00000050.mp4   frames 50..99
    ckpt-00000049.pt    frame 49 as float32, the part list, the fingerprint
    ckpt-00000099.pt

One checkpoint is one dict (see :func:`save`), written as ``MAGIC + sha256 + payload`` to a
temp file, fsynced and renamed, so a reader sees either the old file or the whole new one;
the checksum catches truncation and bit rot. The previous checkpoint is kept until a newer
one is safely on disk.

Whether a checkpoint belongs to a schedule is decided from what frames 0..n depend on: the
:func:`global_settings` (the input file's content, size, seed, model, encoder, ...) and one
digest per frame of its parameters up to n (:func:`frame_digests`), so appending segments
or editing frames after n keeps n valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import weakref
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .errors import DreamvidError
from .files import write_atomic

MAGIC = b"DREAMVID-CKPT-1\n"
KEEP = 2  # checkpoints kept in the work folder (the newest and the one before)


def file_digest(path: Path | None) -> str:
    if path is None:
        return "noise"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def global_settings(schedule) -> dict:
    """What every frame depends on (besides its own parameters)."""
    settings = {
        "input": file_digest(schedule.input_path),
        "size": list(schedule.size),
        "fps": schedule.fps,
        "seed": schedule.seed,
        "model": schedule.model,
        "model_weights": file_digest(schedule.model_weights_path) if schedule.model_weights_path else None,
        "encoder": schedule.encoder.model_dump(),
    }
    if schedule.audio_driven:  # the music moves the camera or the dream: its content decides the frames
        settings["audio"] = {"file": file_digest(schedule.audio_path), **schedule.audio_settings.to_data()}
    return settings


# schedule -> digests of its frames 0..k found so far: a render checkpoints every
# ``checkpoint_every`` frames and each checkpoint needs the digests of all frames before it,
# which would cost O(n^2 / every) hashes if recomputed each time.
_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _frame_digest(schedule, n: int) -> str:
    p = asdict(schedule.params(n))
    p.pop("segment"), p.pop("frame_in_segment")  # where a frame sits does not change it
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:16]


def frame_digests(schedule, upto: int) -> list[str]:
    """One short hash per frame 0..upto of that frame's parameters (cached per schedule)."""
    try:
        known = _DIGESTS.setdefault(schedule, [])
    except TypeError:  # a stand-in that cannot be a weak dictionary key
        known = []
    for n in range(len(known), upto + 1):
        known.append(_frame_digest(schedule, n))
    return known[: upto + 1]


def describe_change(old: dict, settings: dict, old_digests: list[str], digests: list[str]) -> str:
    """A short phrase naming what differs between a checkpoint and the schedule."""
    for key in settings:
        if old.get(key) != settings[key]:
            what = {"input": "the input file's content", "audio": "the audio (its content or audio_features)"}.get(key, key)
            return f"{what} changed"
    for n, (a, b) in enumerate(zip(old_digests, digests)):
        if a != b:
            return f"the parameters of frame {n} changed"
    return "the schedule changed"


def save(path: Path, state: dict) -> None:
    """Write ``state`` atomically with a checksum. ``state['frame']`` is a float32 tensor."""
    buf = io.BytesIO()
    torch.save({**state, "version": __version__}, buf)
    payload = buf.getvalue()
    write_atomic(path, MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload, make_folder=False)


def load(path: Path) -> dict:
    """Read and verify a checkpoint; :class:`DreamvidError` if it is not a whole, valid one."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise DreamvidError(f"{path}: not a dreamvid checkpoint")
    digest, _, payload = data[len(MAGIC) :].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise DreamvidError(f"{path}: checkpoint is truncated or corrupt (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


CKPT_RE = re.compile(r"ckpt-(\d{8})\.pt$")


def checkpoint_path(work: Path, index: int) -> Path:
    return work / f"ckpt-{index:08d}.pt"


def part_path(work: Path, first: int) -> Path:
    return work / f"part-{first:08d}.mp4"


def list_checkpoints(work: Path) -> list[Path]:
    """Checkpoint files in the work folder, newest first."""
    if not work.is_dir():
        return []
    found = [p for p in work.iterdir() if CKPT_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def prune(work: Path, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` newest checkpoints."""
    for old in list_checkpoints(work)[keep:]:
        old.unlink(missing_ok=True)
