"""The frame loop: camera, dream, encode, checkpoint.

frame 0 is the fitted input; frame n = dream(camera(frame n-1)) with frame n's parameters
and a generator seeded by (seed, n), so frame n never depends on how the render started.
Frames stream into ffmpeg in parts that close at each checkpoint (see :mod:`.checkpoint`);
at the end the parts are joined without re-encoding and renamed onto the output.

The library reports progress through ``callback(Progress)``; it never prints.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .camera import move
from .dream import DreamSettings, dream
from .encode import VideoWriter, join_videos, probe_codec
from .errors import DreamvidError, InputError
from .images import fit, noise_image, read_image, to_tensor, to_uint8
from .model import FeatureNet, load_model, pick_device
from .objectives import weighted
from .schedule import FrameParams, Schedule


@dataclass(frozen=True)
class Progress:
    event: str  # "start" | "frame" | "checkpoint" | "warning" | "done"
    frame: int = 0  # frames finished so far (index of the last one + 1)
    total: int = 0
    start: int = 0  # first frame this run renders (> 0 when resuming)
    segment: int = 0
    message: str = ""


Callback = Callable[[Progress], None]


def _ignore(_: Progress) -> None:
    pass


class Interrupted(DreamvidError):
    exit_code = 130


def frame_generator(seed: int, n: int) -> torch.Generator:
    """The random stream of frame ``n``: a function of (seed, n) only."""
    state = np.random.SeedSequence([seed, n]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class Dreamer:
    """A schedule's network on its device, and the step from one frame to the next."""

    def __init__(self, schedule: Schedule, device: str | None = None, scale: float = 1.0):
        self.schedule = schedule
        self.device = pick_device(device or schedule.device)
        self.scale = scale
        w, h = schedule.size
        self.size = (max(32, round(w * scale)), max(32, round(h * scale)))
        self.net: FeatureNet = load_model(schedule.model, weights=schedule.model_weights_path, device=self.device)
        self.net.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU

    def first_frame(self) -> torch.Tensor:
        s = self.schedule
        if s.input_path is None:
            img = noise_image(self.size, torch.Generator().manual_seed(s.seed))
        else:
            img = fit(read_image(s.input_path), self.size)
        return to_tensor(img, self.device)

    def next_frame(self, frame: torch.Tensor, n: int) -> torch.Tensor:
        """Frame ``n`` from frame ``n - 1``."""
        p: FrameParams = self.schedule.params(n)
        k = self.scale
        frame = move(frame, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k))
        objective = weighted(p.layers, p.objective)
        settings = DreamSettings(p.iterations, p.step, p.octaves, p.octave_scale, round(p.jitter * k))
        frame = frame.contiguous(memory_format=torch.channels_last)
        out = dream(self.net, frame, objective, settings, frame_generator(self.schedule.seed, n))
        if not torch.isfinite(out).all():
            raise DreamvidError(f"frame {n}: the image became NaN/inf; try a smaller step (segment {p.segment})")
        return out


def work_dir(output: Path) -> Path:
    """Where a render keeps its parts and checkpoints: ``<output>.parts/`` beside it."""
    return output.with_name(output.name + ".parts")


def _settings(schedule: Schedule, codec: str) -> dict:
    settings = ckpt.global_settings(schedule)
    settings["encoder"] = {**settings["encoder"], "codec": codec}
    return settings


def find_checkpoint(schedule: Schedule, work: Path, settings: dict, upto: int, callback: Callback) -> dict | None:
    """The newest checkpoint in ``work`` at a frame <= ``upto`` that this schedule can continue.

    Corrupt checkpoints are reported and skipped. Raises when checkpoints exist but none
    belongs to this schedule (unless there are none at all).
    """
    mismatch = None
    for path in ckpt.list_checkpoints(work):
        try:
            state = ckpt.load(path)
        except (DreamvidError, OSError, RuntimeError) as e:
            callback(Progress("warning", message=f"{e}; falling back to the previous checkpoint"))
            continue
        n = state["index"]
        if n > upto:
            continue
        digests = ckpt.frame_digests(schedule, n)
        if state["settings"] != settings or state["digests"] != digests:
            mismatch = mismatch or (path, ckpt.describe_change(state["settings"], settings, state["digests"], digests))
            continue
        missing = [name for name, _, _ in state["parts"] if not (work / name).is_file()]
        if missing:
            callback(Progress("warning", message=f"{path}: part {missing[0]} is missing; trying an earlier checkpoint"))
            continue
        return state
    if mismatch:
        path, why = mismatch
        raise InputError(
            f"{path}: this checkpoint belongs to another schedule ({why}); "
            f"rerun with --fresh to start over (deletes {work})"
        )
    if ckpt.list_checkpoints(work) and upto >= 0:
        raise InputError(f"{work}: no usable checkpoint (all corrupt); rerun with --fresh to start over")
    return None


def render(
    schedule: Schedule,
    *,
    device: str | None = None,
    output: Path | None = None,
    frames: int | None = None,
    fresh: bool = False,
    keep_parts: bool = False,
    callback: Callback = _ignore,
) -> Path:
    """Render ``schedule`` (its first ``frames`` frames) to ``output``; resumes when it can."""
    output = Path(output or schedule.output_path).absolute()
    if schedule.input_path is not None and output.resolve() == schedule.input_path.resolve():
        raise InputError(f"{output}: the output path is the input image; choose another output")
    total = min(frames or schedule.total_frames, schedule.total_frames)
    enc = schedule.encoder
    codec = probe_codec(enc.codec)
    work = work_dir(output)
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    settings = _settings(schedule, codec)
    state = find_checkpoint(schedule, work, settings, total - 1, callback)

    dreamer = Dreamer(schedule, device)
    if state is None:
        start, parts, frame = 0, [], None
    else:
        start, parts = state["index"] + 1, [tuple(p) for p in state["parts"]]
        frame = state["frame"].to(dreamer.device)
    _remove_stray_parts(work, parts)
    callback(Progress("start", frame=start, total=total, start=start))

    writer, first, written, saved = None, start, None, start - 1
    try:
        for n in range(start, total):
            frame = dreamer.first_frame() if n == 0 else dreamer.next_frame(frame, n)
            if writer is None:
                first = n
                writer = VideoWriter(ckpt.part_path(work, first), schedule.size, schedule.fps, codec=codec,
                                     crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt)  # fmt: skip
            writer.write(to_uint8(frame).cpu().numpy())
            written = (n, frame)
            if (n + 1) % schedule.checkpoint_every == 0 or n == total - 1:
                writer, parts = _close_part(writer, parts, first, n)
                saved = _save(work, n, frame, parts, settings, schedule)
                callback(Progress("checkpoint", frame=n + 1, total=total, start=start))
            callback(Progress("frame", frame=n + 1, total=total, start=start, segment=schedule.segment_of(n)[0]))
    except KeyboardInterrupt:
        # Keep what is done: close the part and checkpoint its last frame, but only when the
        # part holds exactly the frames we know of; otherwise the previous checkpoint stands.
        if writer is not None:
            try:
                if written is None or first + writer.frames_written - 1 != written[0]:
                    raise RuntimeError("part and frame out of step")
                writer, parts = _close_part(writer, parts, first, written[0])
                saved = _save(work, written[0], written[1], parts, settings, schedule)
            except BaseException:  # noqa: BLE001 - fall back to the previous checkpoint
                if writer is not None:
                    writer.abort()
        raise Interrupted(f"interrupted; frames 0-{saved} of {total} are saved in {work}; "
                          "rerun the same command to resume") from None  # fmt: skip
    except BaseException:
        if writer is not None:
            writer.abort()
        raise

    join_videos([work / name for name, _, _ in parts], output, audio=schedule.audio_path,
                durations=[(last - first + 1) / schedule.fps for _, first, last in parts])
    if not keep_parts:
        shutil.rmtree(work, ignore_errors=True)
    callback(Progress("done", frame=total, total=total, start=start, message=str(output)))
    return output


def _close_part(writer: VideoWriter, parts: list, first: int, last: int):
    path = writer.close()
    return None, [*parts, (path.name, first, last)]


def _save(work: Path, n: int, frame: torch.Tensor, parts: list, settings: dict, schedule: Schedule) -> int:
    """Checkpoint frame ``n`` (the parts hold frames 0..n); returns ``n``."""
    state = {
        "index": n,
        "frame": frame.detach().float().cpu().contiguous(),
        "parts": [list(p) for p in parts],
        "settings": settings,
        "digests": ckpt.frame_digests(schedule, n),
    }
    ckpt.save(ckpt.checkpoint_path(work, n), state)
    ckpt.prune(work)
    return n


def _remove_stray_parts(work: Path, parts: list) -> None:
    """Parts and temp files written after the checkpoint we resume from are redone."""
    keep = {name for name, _, _ in parts}
    for p in work.iterdir():
        if p.name.startswith(("part-", ".part-")) and p.name not in keep:
            p.unlink()


def preview(
    schedule: Schedule,
    n: int,
    *,
    device: str | None = None,
    scale: float = 1.0,
    callback: Callback = _ignore,
) -> np.ndarray:
    """Frame ``n`` as the video shows it (before encoding), as HxWx3 uint8.

    Starts from the newest usable checkpoint at or before ``n`` when the render left one.
    ``scale`` < 1 renders smaller and faster, an approximation.
    """
    if not 0 <= n < schedule.total_frames:
        raise InputError(f"--frame {n} is outside the schedule; expected 0..{schedule.total_frames - 1}")
    dreamer = Dreamer(schedule, device, scale)
    start, frame = 0, None
    work = work_dir(schedule.output_path.absolute())
    if scale == 1.0 and work.is_dir():
        try:
            state = find_checkpoint(schedule, work, _settings(schedule, probe_codec(schedule.encoder.codec)), n, callback)
        except InputError as e:
            callback(Progress("warning", message=f"{e}; rendering from frame 0"))
            state = None
        if state is not None:
            start, frame = state["index"] + 1, state["frame"].to(dreamer.device)
    callback(Progress("start", frame=start, total=n + 1, start=start))
    for k in range(start, n + 1):
        frame = dreamer.first_frame() if k == 0 else dreamer.next_frame(frame, k)
        callback(Progress("frame", frame=k + 1, total=n + 1, start=start, segment=schedule.segment_of(k)[0]))
    return to_uint8(frame).cpu().numpy()
