"""Checkpoints: what frame n+1 needs, saved atomically and verified on load.

A checkpoint (:class:`Checkpoint`) is frame n as float32, the parts of the work folder
(:mod:`.workdir`) that hold frames 0..n, and the fingerprint of what those frames depend on.
A checkpoint written at a stop (or at a render's end between two boundaries) also names the
open part's frame files and their SHA-256 (``pending``); a resume feeds them to that part's
encoder again, so parts always hold the same frames as in an uninterrupted render.

This module alone turns a checkpoint into bytes and back (:func:`save`, :func:`load`): one
dict, written as ``MAGIC + sha256 + payload`` to a temp file, fsynced and renamed, so a
reader sees either the old file or the whole new one; the checksum catches truncation and
bit rot. The dict's keys and types are those every release wrote, so checkpoints move
between releases both ways. The previous checkpoint is kept until a newer one is safely on disk.

Whether a checkpoint belongs to a schedule is decided from what frames 0..n depend on: the
:func:`global_settings` (the input file's content, size, seed, model, encoder, ...) and one
digest per frame of its parameters up to n (:func:`frame_digests`), so appending segments
or editing frames after n keeps n valid. With a ``cadence`` a frame between two dreamed
frames also depends on the next dreamed one: the digests then run up to it
(:func:`checkpoint_digests`), and a checkpoint between two dreamed frames holds the earlier
one too (``dreamed``).
"""

from __future__ import annotations

import hashlib
import io
import json
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dreamvid.core import defaults as D
from dreamvid.core.errors import DreamvidError, InputError
from dreamvid.core.files import write_atomic
from dreamvid.core.progress import Callback, Progress
from dreamvid.engine.model import weights_digest
from dreamvid.rendering.workdir import list_checkpoints
from dreamvid.schedule import cadence

MAGIC = b"DREAMVID-CKPT-1\n"
KEEP = 2  # checkpoints kept in the work folder (the newest and the one before)


@dataclass(frozen=True)
class Checkpoint:
    """Frame ``index`` of a render and what holds frames 0..index in the work folder."""

    index: int  # the frame it holds
    frame: torch.Tensor  # frame ``index`` (1, 3, H, W), float32 on the CPU once loaded
    parts: tuple[tuple[str, int, int], ...]  # the closed parts: (file in the work folder, first frame, last frame)
    pending: tuple[tuple[str, str], ...]  # the open part's frames up to ``index``: (file, its SHA-256)
    settings: dict  # what every frame depends on (global_settings, with the codec and network)
    digests: list[str]  # one per frame 0..index of its parameters (frame_digests)
    numerics: dict | None = None  # what the frames' last bits depend on (numerics); None before it was saved
    version: str | None = None  # the release that wrote it (save writes this one's)
    # with a cadence, when frame ``index`` is not dreamed: the last dreamed frame before it,
    # (its index, the frame as float32), which the frames after ``index`` are made from
    dreamed: tuple[int, torch.Tensor] | None = None

    @property
    def first_pending(self) -> int:
        """The first frame not in a closed part (the open part's first frame)."""
        return self.index + 1 - len(self.pending)

    def pending_file(self, n: int) -> str:
        """The file of frame ``n``, one of the open part's (``first_pending <= n <= index``)."""
        return self.pending[n - self.first_pending][0]

    @property
    def files(self) -> set[str]:
        """The work folder's files it refers to: its parts and pending frames."""
        return {name for name, _, _ in self.parts} | {name for name, _ in self.pending}

    @property
    def precision(self) -> str | None:
        """The precision its frames were dreamed in, when it says."""
        return (self.numerics or {}).get("precision")

    @property
    def tile_side(self) -> int | None:
        """The gradient tile side its frames were dreamed with, 0 for whole frames; None where it
        does not say (written before the key existed: ``tile: auto`` then decides again)."""
        side = (self.numerics or {}).get("tile")
        return side if isinstance(side, int) and not isinstance(side, bool) and side >= 0 else None

    def fits(self, settings: dict, digests: list[str]) -> bool:
        """Whether it was written by a render of these settings and frame digests (up to its frame)."""
        return self.settings == settings and self.digests[: len(digests)] == digests

    def reaches_past(self, last: int) -> bool:
        """Whether it is past frame ``last`` with closed parts that hold frames past it too."""
        return self.index > last and bool(self.parts) and self.parts[-1][2] > last


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


def render_settings(schedule, codec: str, net) -> dict:
    """:func:`global_settings` as a render with ``codec`` and the network ``net`` has them."""
    settings = global_settings(schedule)
    settings["encoder"] = {**settings["encoder"], "codec": codec}
    if net.name != schedule.model:  # a network of the caller's: its weights decide the frames
        settings["model"], settings["model_weights"] = net.name, weights_digest(net)
    return settings


# schedule -> digests of its frames 0..k found so far: a render checkpoints every
# ``checkpoint_every`` frames and each checkpoint needs the digests of all frames before it,
# which would cost O(n^2 / every) hashes if recomputed each time.
_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# parameters added after checkpoints existed, at the values that change nothing: left out of
# the digest, so checkpoints of schedules that do not use them stay valid
NEUTRAL = {"center": (0.5, 0.5), "gradient_norm": "mean", "guide": None, "guide_weight": 0.0, "mask_strength": 0.0,
           "camera": "dreamvid", "cadence": 1}


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
    if cadence.clipped_end(schedule, n):  # dreamed as the last frame: more frames after it would change it
        p["cadence_end"] = True
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


def checkpoint_digests(schedule, n: int) -> list[str]:
    """The frame digests a checkpoint of frame ``n`` is matched by: frames 0..n, and with a
    cadence on to the next dreamed frame (frame n's crossfade reads it)."""
    return frame_digests(schedule, cadence.reach(schedule, n))


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


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically with a checksum, as this release's."""
    state = {"index": checkpoint.index, "frame": checkpoint.frame.detach().float().cpu().contiguous(),
             "parts": [list(p) for p in checkpoint.parts], "pending": [list(p) for p in checkpoint.pending],
             "settings": checkpoint.settings, "digests": checkpoint.digests, "numerics": checkpoint.numerics,
             "version": D.VERSION}  # fmt: skip
    if checkpoint.dreamed is not None:  # a key only cadence writes: older checkpoints read the same
        index, frame = checkpoint.dreamed
        state["dreamed"] = [index, frame.detach().float().cpu().contiguous()]
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    write_atomic(path, MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload, make_folder=False)


def load(path: Path) -> Checkpoint:
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
    checkpoint = _from_saved(state)
    if checkpoint is None:
        raise DreamvidError(f"{path}: checkpoint is corrupt (not the data dreamvid saves)")
    return checkpoint


def _from_saved(state) -> Checkpoint | None:
    """The checkpoint in a loaded payload (keys it does not know are ignored), or None when
    it is not one."""
    if not isinstance(state, dict) or not _KEYS.issubset(state) or not isinstance(state["index"], int):
        return None
    try:
        parts = tuple((name, first, last) for name, first, last in state["parts"])
        pending = tuple((name, digest) for name, digest in state["pending"])
    except (TypeError, ValueError):
        return None
    well_formed = (isinstance(state["frame"], torch.Tensor) and isinstance(state["settings"], dict)
                   and isinstance(state["digests"], list) and isinstance(state.get("numerics"), (dict, type(None)))
                   and all(isinstance(name, str) and isinstance(first, int) and isinstance(last, int)
                           for name, first, last in parts)
                   and all(isinstance(name, str) and isinstance(digest, str) for name, digest in pending))  # fmt: skip
    if not well_formed:
        return None
    version = state.get("version")
    dreamed = state.get("dreamed")
    if dreamed is not None:
        if not (isinstance(dreamed, list) and len(dreamed) == 2 and isinstance(dreamed[0], int)
                and isinstance(dreamed[1], torch.Tensor) and dreamed[0] < state["index"]):  # fmt: skip
            return None
        dreamed = (dreamed[0], dreamed[1])
    return Checkpoint(state["index"], state["frame"], parts, pending, state["settings"], state["digests"],
                      state.get("numerics"), version if isinstance(version, str) else None, dreamed)  # fmt: skip


_KEYS = frozenset({"index", "frame", "parts", "pending", "settings", "digests"})  # what every release saved


def prune(work: Path, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` newest checkpoints."""
    for old in list_checkpoints(work)[keep:]:
        old.unlink(missing_ok=True)


def missing_file(work: Path, checkpoint: Checkpoint) -> str | None:
    """The first part or saved frame of ``checkpoint`` that is gone or damaged, or None."""
    for name, _, _ in checkpoint.parts:
        if not (work / name).is_file():
            return f"part {name} is missing"
    for name, digest in checkpoint.pending:
        try:
            data = (work / name).read_bytes()
        except OSError:
            return f"frame {name} is missing"
        if hashlib.sha256(data).hexdigest() != digest:
            return f"frame {name} is damaged (checksum mismatch)"
    return None


def find(schedule, work: Path, settings: dict, upto: int, callback: Callback) -> Checkpoint | None:
    """The newest checkpoint in ``work`` this schedule can continue to frame ``upto``.

    That is one at a frame <= ``upto``, or a later one whose closed parts end by ``upto``
    (a stop saved the frames after them: a shorter render uses them). Corrupt checkpoints
    are reported and skipped. Raises when checkpoints exist but none can serve.
    """
    mismatch = corrupt = further = None
    for path in list_checkpoints(work):
        try:
            found = load(path)
        except (DreamvidError, OSError, RuntimeError) as e:
            corrupt = corrupt or str(e)
            callback(Progress("warning", message=f"{e}; falling back to the previous checkpoint"))
            continue
        if found.reaches_past(upto):
            further = further or found.index  # its parts hold frames past the end: an earlier one may serve
            continue
        digests = checkpoint_digests(schedule, min(found.index, upto))
        if not found.fits(settings, digests):
            mismatch = mismatch or (path, describe_change(found.settings, settings, found.digests, digests))
            continue
        missing = missing_file(work, found)
        if missing:
            callback(Progress("warning", message=f"{path}: {missing}; trying an earlier checkpoint"))
            continue
        return found
    fresh = f"rerun with --fresh to start over (deletes {work})"
    if mismatch:
        path, why = mismatch
        raise ScheduleChanged(f"{path}: this checkpoint belongs to another schedule ({why}); {fresh}")
    if further is not None:
        raise InputError(f"{work}: holds a render that is further along (frame {further}); {fresh}, or render to another -o")
    if corrupt:
        raise InputError(f"{work}: no usable checkpoint ({corrupt}); {fresh}")
    return None


def numerics(device: torch.device, precision: str = "fp32", *, compile: str | None = None, tile: int | None = None,
             fallback: str | None = None) -> dict:  # fmt: skip
    """What a frame's last bits depend on besides the schedule: the device, the precision the
    step runs in ("fp32" or "bf16", as :mod:`.precision` chose it), on the CPU the thread
    count (it changes how convolutions split their sums; see docs/resume.md), and when given
    how the network runs (``compile``: "eager", "compiled" or "cuda graphs"), the gradient tile
    side (``tile``, 0 for whole frames: a render's ``tile: auto`` decision, kept on a resume)
    and why torch.compile failed (``fallback``: recorded, not compared)."""
    if device.type == "cuda":
        found = {"device": torch.cuda.get_device_name(device), "precision": precision, "torch": str(torch.__version__)}
    else:
        found = {"device": "cpu", "threads": torch.get_num_threads(), "precision": precision,
                 "torch": str(torch.__version__)}  # fmt: skip
    if compile is not None:
        found["compile"] = compile
    found["tile"] = tile or 0
    if fallback:
        found["compile_fallback"] = fallback
    return found


NOT_COMPARED = ("compile_fallback",)  # numerics recorded for the reader, which do not change a frame by themselves


def numerics_warning(saved: dict | None, now: dict) -> str | None:
    """A warning when a checkpoint was written with other numerics than this process's."""
    if not saved:
        return None
    if "precision" not in saved and saved.get("device") == "cpu":
        saved = {**saved, "precision": "fp32"}  # written before the key existed: the CPU dreamed in fp32
    keys = sorted(k for k in set(saved) if k not in NOT_COMPARED and saved.get(k) != now.get(k))
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
