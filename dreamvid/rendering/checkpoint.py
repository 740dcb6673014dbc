"""Checkpoints: what frame n+1 needs, saved atomically and verified on load.

A render's work folder (``<output>.parts/``) holds encoded video parts and checkpoints::

    part-00000000.mp4   frames 0..49      (each part closes at a checkpoint)
    part-00000050.mp4   frames 50..99
    frame-00000100.npy  the open part's frames, as they are (uint8), until it closes
    ckpt-00000049.pt    frame 49 as float32, the part list, the fingerprint
    ckpt-00000099.pt

A checkpoint written at a stop (or at a render's end between two boundaries) also names
the open part's frame files and their SHA-256 (``pending``); a resume feeds them to that
part's encoder again, so parts always hold the same frames as in an uninterrupted render.

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

from dreamvid.core import defaults as D
from dreamvid.core.errors import DreamvidError, InputError
from dreamvid.core.files import write_atomic
from dreamvid.core.progress import Callback, Progress

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


class ScheduleChanged(InputError):
    """The work folder's checkpoints were written by another version of the schedule."""


def global_settings(schedule) -> dict:
    """What every frame depends on (besides its own parameters), and what shapes the parts:
    ``checkpoint_every`` sets the part boundaries (the encoder's calls), ``tile`` how the
    gradient is computed (tiles change the last bits)."""
    settings = {
        "input": file_digest(schedule.input_path),
        "size": list(schedule.size),
        "fps": schedule.fps,
        "seed": schedule.seed,
        "model": schedule.model,
        "model_weights": file_digest(schedule.model_weights_path) if schedule.model_weights_path else None,
        "encoder": schedule.encoder.model_dump(),
        "checkpoint_every": schedule.checkpoint_every,
        "tile": schedule.tile,
    }
    if getattr(schedule, "mask_path", None) is not None:  # its content and how it moves decide the frames
        settings["mask"] = {"file": file_digest(schedule.mask_path), "follows": schedule.mask_follows}
    if getattr(schedule, "clip", None) is not None and schedule.flow_weights_path is not None \
            and any(seg.flow == "raft" for seg in schedule.segments):  # RAFT's weights decide the flow
        settings["flow_weights"] = file_digest(schedule.flow_weights_path)
    if schedule.audio_driven:  # the music moves the camera or the dream: its content decides the frames
        settings["audio"] = {"file": file_digest(schedule.audio_path), **schedule.audio_settings.to_data()}
    return settings


# schedule -> digests of its frames 0..k found so far: a render checkpoints every
# ``checkpoint_every`` frames and each checkpoint needs the digests of all frames before it,
# which would cost O(n^2 / every) hashes if recomputed each time.
_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# parameters added after checkpoints existed, at the values that change nothing: left out of
# the digest, so checkpoints of schedules that do not use them stay valid
NEUTRAL = {"center": (0.5, 0.5), "gradient_norm": "mean", "guide": None, "guide_weight": 0.0, "mask_strength": 0.0}


def _frame_digest(schedule, n: int, guides: dict) -> str:
    p = asdict(schedule.params(n))
    p.pop("segment"), p.pop("frame_in_segment")  # where a frame sits does not change it
    if p.get("guide") is not None:  # the guide image's content decides the frame, not its path
        p["guide"] = guides[p["guide"]]
    for key, value in NEUTRAL.items():
        if key in p and p[key] == value:
            del p[key]
    for key in ("flow", "flow_blend", "temporal"):  # a video input's keys: absent (None) with an image
        if p[key] is None:
            p.pop(key)
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:16]


def frame_digests(schedule, upto: int) -> list[str]:
    """One short hash per frame 0..upto of that frame's parameters (cached per schedule and
    the content of its guide images: equal schedules share the cache, their files may not)."""
    images = getattr(schedule, "images", None)
    guides = {path: file_digest(path) for key, path in (images() if images else []) if key != "mask"}
    try:
        known = _DIGESTS.setdefault(schedule, {}).setdefault(tuple(sorted(guides.items())), [])
    except TypeError:  # a stand-in that cannot be a weak dictionary key
        known = []
    for n in range(len(known), upto + 1):
        known.append(_frame_digest(schedule, n, guides))
    return known[: upto + 1]


def describe_change(old: dict, settings: dict, old_digests: list[str], digests: list[str]) -> str:
    """A short phrase naming what differs between a checkpoint and the schedule."""
    for key in settings:
        if old.get(key) != settings[key]:
            if key in ("input", "audio", "mask"):
                return {"input": "the input file's content", "audio": "the audio (its content or audio_features)",
                        "mask": "the mask (its content or mask_follows)"}[key] + " changed"
            was, now = old.get(key, "unset"), settings[key]
            values = f" ({was} -> {now})" if not isinstance(now, (dict, list)) else ""
            return f"{key} changed{values}"
    for n, (a, b) in enumerate(zip(old_digests, digests)):
        if a != b:
            return f"the parameters of frame {n} changed"
    return "the schedule changed"


def save(path: Path, state: dict) -> None:
    """Write ``state`` atomically with a checksum. ``state['frame']`` is a float32 tensor."""
    buf = io.BytesIO()
    torch.save({**state, "version": D.VERSION}, buf)
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
    try:  # the checksum matched, yet the payload may not be one (a writer's bug, another version)
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the unpickler makes of bad bytes
        raise DreamvidError(f"{path}: checkpoint is corrupt ({type(err).__name__} while reading it)") from None
    if not isinstance(state, dict) or not _KEYS.issubset(state) or not isinstance(state["index"], int):
        raise DreamvidError(f"{path}: checkpoint is corrupt (not the data dreamvid saves)")
    return state


_KEYS = frozenset({"index", "frame", "parts", "pending", "settings", "digests"})  # what save() is given


CKPT_RE = re.compile(r"ckpt-(\d{8})\.pt$")


def checkpoint_path(work: Path, index: int) -> Path:
    return work / f"ckpt-{index:08d}.pt"


def part_path(work: Path, first: int) -> Path:
    return work / f"part-{first:08d}.mp4"


def frame_path(work: Path, index: int) -> Path:
    return work / f"frame-{index:08d}.npy"


def index_of(path: Path) -> int:
    return int(CKPT_RE.match(path.name)[1])


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


def missing_file(work: Path, state: dict) -> str | None:
    """The first part or saved frame of ``state`` that is gone or damaged, or None."""
    for name, _, _ in state["parts"]:
        if not (work / name).is_file():
            return f"part {name} is missing"
    for name, digest in state["pending"]:
        try:
            data = (work / name).read_bytes()
        except OSError:
            return f"frame {name} is missing"
        if hashlib.sha256(data).hexdigest() != digest:
            return f"frame {name} is damaged (checksum mismatch)"
    return None


def find(schedule, work: Path, settings: dict, upto: int, callback: Callback) -> dict | None:
    """The newest checkpoint in ``work`` this schedule can continue to frame ``upto``.

    That is one at a frame <= ``upto``, or a later one whose closed parts end by ``upto``
    (a stop saved the frames after them: a shorter render uses them). Corrupt checkpoints
    are reported and skipped. Raises when checkpoints exist but none can serve.
    """
    mismatch = corrupt = further = None
    for path in list_checkpoints(work):
        try:
            state = load(path)
        except (DreamvidError, OSError, RuntimeError) as e:
            corrupt = corrupt or str(e)
            callback(Progress("warning", message=f"{e}; falling back to the previous checkpoint"))
            continue
        n = state["index"]
        if n > upto and state["parts"] and state["parts"][-1][2] > upto:
            further = further or n  # its parts hold frames past the end: an earlier one may serve
            continue
        digests = frame_digests(schedule, min(n, upto))
        if state["settings"] != settings or state["digests"][: len(digests)] != digests:
            mismatch = mismatch or (path, describe_change(state["settings"], settings, state["digests"], digests))
            continue
        missing = missing_file(work, state)
        if missing:
            callback(Progress("warning", message=f"{path}: {missing}; trying an earlier checkpoint"))
            continue
        return state
    fresh = f"rerun with --fresh to start over (deletes {work})"
    if mismatch:
        path, why = mismatch
        raise ScheduleChanged(f"{path}: this checkpoint belongs to another schedule ({why}); {fresh}")
    if further is not None:
        raise InputError(f"{work}: holds a render that is further along (frame {further}); {fresh}, or render to another -o")
    if corrupt:
        raise InputError(f"{work}: no usable checkpoint ({corrupt}); {fresh}")
    return None


def numerics(device: torch.device, precision: str = "fp32") -> dict:
    """What a frame's last bits depend on besides the schedule: the device, the precision the
    step runs in ("fp32" or "bf16", as :mod:`.precision` chose it), and on the CPU the thread
    count (it changes how convolutions split their sums; see docs/resume.md)."""
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "precision": precision, "torch": str(torch.__version__)}
    return {"device": "cpu", "threads": torch.get_num_threads(), "precision": precision, "torch": str(torch.__version__)}


def numerics_warning(saved: dict | None, now: dict) -> str | None:
    """A warning when a checkpoint was written with other numerics than this process's."""
    if not saved:
        return None
    if "precision" not in saved and saved.get("device") == "cpu":
        saved = {**saved, "precision": "fp32"}  # written before the key existed: the CPU dreamed in fp32
    keys = sorted(k for k in set(saved) | set(now) if k in saved and saved.get(k) != now.get(k))
    if not keys:
        return None
    changed = ", ".join(f"{k} {saved.get(k)} -> {now.get(k)}" for k in keys)
    hints = []
    if "threads" in keys:
        hints.append(f"OMP_NUM_THREADS={saved['threads']}")
    if "precision" in keys:
        hints.append(f"precision: {saved['precision']} in the schedule (or --precision {saved['precision']})")
    hint = f"; set {' and '.join(hints)} for an identical video" if hints else ""
    how = "in their details (same look)" if "precision" in keys else "invisibly"
    return (f"the checkpoint was written with other numerics ({changed}): the resumed frames may differ "
            f"{how} from an uninterrupted render{hint}")
