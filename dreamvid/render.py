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
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from . import checkpoint as ckpt
from . import colour, workdir
from .camera import move
from .dream import DreamSettings, dream_frame, fallback, speed_setup
from .encode import VideoWriter, join_videos, output_problem, probe_audio, probe_codec
from .errors import DreamvidError, InputError, describe_os_error, is_out_of_memory
from .frames import FrameSource
from .images import fit, noise_image, read_image, to_tensor, to_uint8
from .model import FeatureNet, load_model, pick_device
from .objectives import weighted
from .precision import choose as choose_precision
from .progress import Callback, Progress, ignore, warner
from .schedule import FrameParams, Schedule
from .workdir import work_dir


class Interrupted(DreamvidError):
    exit_code = 130


class ScheduleChanged(InputError):
    """The work folder's checkpoints were written by another version of the schedule."""


def frame_rng(seed: int, n: int) -> torch.Generator:
    """The random stream of frame ``n``: a function of (seed, n) only."""
    state = np.random.SeedSequence([seed, n]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


_NETWORKS: dict[tuple, FeatureNet] = {}  # (model, weight file and its stamp, device) -> network
KEPT_NETWORKS = 4


def load_network(schedule: Schedule, device: str | None = None) -> FeatureNet:
    """The schedule's network with its weights, on ``device`` (default: the schedule's).

    Kept for the process, one per (model, weight file, device), the last few: a batch worker
    that renders many videos loads its network, and compiles it (:func:`.dream.compiled`), once.
    """
    dev = pick_device(device or schedule.device)
    weights = schedule.model_weights_path
    try:
        stamp = None if weights is None else (weights.stat().st_mtime_ns, weights.stat().st_size)
    except OSError:
        stamp = "missing"  # load_model says what is wrong
    key = (schedule.model, str(weights), stamp, str(dev))
    if key not in _NETWORKS:
        net = load_model(schedule.model, weights=weights, device=dev)
        while len(_NETWORKS) >= KEPT_NETWORKS:
            _NETWORKS.pop(next(iter(_NETWORKS)))
        _NETWORKS[key] = net
    return _NETWORKS[key]


class Dreamer:
    """A schedule's network on its device, and the step from one frame to the next."""

    def __init__(self, schedule: Schedule, net: FeatureNet, *, scale: float = 1.0,
                 on_warning: Callable[[str], None] | None = None):  # fmt: skip
        self.schedule = schedule
        self.on_warning = on_warning or (lambda message: None)
        self.net = net.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
        self.device = next(net.parameters()).device
        self.scale = scale
        w, h = schedule.size
        self.size = (max(32, round(w * scale)), max(32, round(h * scale)))
        choice = choose_precision(schedule.precision, self.device)  # see docs/performance.md
        if choice.warning:
            self.on_warning(choice.warning)
        self.precision = choice.name  # "fp32" or "bf16"
        self.amp_dtype, self.step_net = speed_setup(self.net, self.device, schedule.compile, choice.name)
        self._input: torch.Tensor | None = None  # frame 0, once needed
        self._references: dict[str, colour.Reference] = {}  # colour references by name
        self._raw = False  # True while re-dreaming frame 1 as a colour reference

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
        frame = frame.contiguous(memory_format=torch.channels_last)
        if not p.layers:  # a transition's weights cancel exactly on this frame: nothing to maximise
            return self.colour_control(frame, frame, p)
        objective = weighted(p.layers, p.objective)
        settings = DreamSettings(p.iterations, p.step, p.octaves, p.octave_scale, round(p.jitter * k))
        out = self._dream(frame, objective, replace(settings, amp_dtype=self.amp_dtype), n)
        if not torch.isfinite(out).all():
            raise DreamvidError(f"frame {n}: the image became NaN/inf; expected finite pixels: lower "
                                f"segments[{p.segment}].step (now {p.step:g})")
        return self.colour_control(out, frame, p)

    def _dream(self, frame: torch.Tensor, objective, settings: DreamSettings, n: int) -> torch.Tensor:
        """Dream frame ``n`` with the (compiled) network, tiled as the schedule's ``tile`` says.

        If the compiled network fails (a compiler missing on this host, an unsupported op), the
        frame is redone with the next simpler one (CUDA graphs, then plain compiled, then
        eager), which is used from then on."""
        def run(net):
            return dream_frame(net, frame, objective, settings, lambda: frame_rng(self.schedule.seed, n),
                               self.schedule.tile)  # fmt: skip

        while True:
            try:
                return run(self.step_net)
            except (DreamvidError, KeyboardInterrupt):
                raise
            except Exception as e:
                if self.step_net is self.net or is_out_of_memory(e):
                    raise
                self.step_net, what = fallback(self.step_net, self.net)
                self.on_warning(f"torch.compile failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}); "
                                f"continuing {what} (set `compile: false` to skip it)")

    # -- colour control (the logic lives in colour.py) -------------------------------------

    def colour_control(self, dreamed: torch.Tensor, moved: torch.Tensor, p: FrameParams) -> torch.Tensor:
        """The frame's colour match, input blend, smoothing and clip guard (see :mod:`.colour`).

        Its state is frame 0, frame 1 (both recomputed from the schedule when needed) and
        the previous frame (which a checkpoint holds), so resumed renders stay bit-exact.
        """
        if self._raw:
            return dreamed
        matching = p.colour != "none" and p.colour_strength > 0
        reference = self._colour_reference(p, dreamed) if matching else None
        return colour.control(dreamed, moved, self.input_image, reference, p)

    @property
    def input_image(self) -> torch.Tensor:
        """Frame 0, kept for input_blend and colour matching."""
        if self._input is None:
            self._input = self.first_frame()
        return self._input

    def _colour_reference(self, p: FrameParams, dreamed: torch.Tensor) -> colour.Reference:
        which = p.colour_reference
        if which == "auto":
            which = "frame1" if self.schedule.input_path is None else "input"
        if which not in self._references:
            if which == "input":
                image = self.input_image
            elif p.index == 1:
                image = dreamed
            else:  # resumed or previewed past frame 1: dream frame 1 again, without colour control
                self._raw = True
                try:
                    image = self.next_frame(self.input_image, 1)
                finally:
                    self._raw = False
            self._references[which] = colour.Reference(image)
        return self._references[which]


def _settings(schedule: Schedule, codec: str) -> dict:
    settings = ckpt.global_settings(schedule)
    settings["encoder"] = {**settings["encoder"], "codec": codec}
    return settings


def find_checkpoint(schedule: Schedule, work: Path, settings: dict, upto: int, callback: Callback) -> dict | None:
    """The newest checkpoint in ``work`` at a frame <= ``upto`` that this schedule can continue.

    Corrupt checkpoints are reported and skipped. Raises when checkpoints exist but none
    belongs to this schedule (unless there are none at all).
    """
    mismatch = corrupt = further = None
    for path in ckpt.list_checkpoints(work):
        try:
            state = ckpt.load(path)
        except (DreamvidError, OSError, RuntimeError) as e:
            corrupt = corrupt or str(e)
            callback(Progress("warning", message=f"{e}; falling back to the previous checkpoint"))
            continue
        n = state["index"]
        if n > upto:
            further = further or n
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
    fresh = f"rerun with --fresh to start over (deletes {work})"
    if mismatch:
        path, why = mismatch
        raise ScheduleChanged(f"{path}: this checkpoint belongs to another schedule ({why}); {fresh}")
    if further is not None:
        raise InputError(f"{work}: holds a render that is further along (frame {further}); {fresh}, or render to another -o")
    if corrupt:
        raise InputError(f"{work}: no usable checkpoint ({corrupt}); {fresh}")
    return None


def render(
    schedule: Schedule,
    *,
    device: str | None = None,
    output: Path | None = None,
    frames: int | None = None,
    fresh: bool = False,
    keep_parts: bool = False,
    model: FeatureNet | None = None,
    callback: Callback = ignore,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """Render ``schedule`` (its first ``frames`` frames) to ``output``; resumes when it can.

    ``should_stop`` is asked after each frame; when it says yes the encoder is stopped, a
    checkpoint holding the open part's frames is written and :class:`Interrupted` raised
    (the CLI wires it to Ctrl-C and SIGTERM). A ``KeyboardInterrupt`` instead aborts at
    once, keeping the last checkpoint.
    """
    output = Path(output or schedule.output_path).absolute()
    if schedule.input_path is not None and output.resolve() == schedule.input_path.resolve():
        raise InputError(f"{output}: the output path is the input image; choose another output")
    problem = output_problem(output)  # before hours of rendering, not at the final join
    if problem:
        raise InputError(f"{output}: {problem}")
    if schedule.audio_path is not None:
        probe_audio(schedule.audio_path)
    total = min(frames or schedule.total_frames, schedule.total_frames)
    enc = schedule.encoder
    codec = probe_codec(enc.codec)
    # device and model errors before any folder is made
    dreamer = Dreamer(schedule, model or load_network(schedule, device), on_warning=warner(callback))
    work = work_dir(output)
    workdir.make(work)
    with workdir.exclusive(work):
        if fresh:
            workdir.empty(work)
        settings = _settings(schedule, codec)
        state = find_checkpoint(schedule, work, settings, total - 1, callback)

        start, parts, frame, pending = 0, [], None, []  # pending: encoded frames of the open part
        if state is not None:
            start, parts = state["index"] + 1, [tuple(p) for p in state["parts"]]
            frame, pending = state["frame"].to(dreamer.device), [_unpng(b) for b in state.get("pending", [])]
            warning = _numerics_warning(state.get("numerics"), numerics(dreamer.device, schedule.precision))
            if warning:
                callback(Progress("warning", message=warning))
        workdir.clean(work, parts)
        callback(Progress("start", frame=start, total=total, start=start))

        writer, first, saved = None, start - len(pending), start - 1
        frames = FrameSource(dreamer, total)  # on CUDA frame n's copy to the host overlaps frame n+1's dream
        try:
            for n in range(start, total):
                frame, rgb = frames.get(n, frame)
                if writer is None:
                    writer = VideoWriter(ckpt.part_path(work, first), schedule.size, schedule.fps, codec=codec,
                                         crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt)  # fmt: skip
                    for old in pending:  # frames of this part saved by an interrupted run
                        writer.write(old)
                writer.write(rgb)
                pending.append(rgb)
                if (n + 1) % schedule.checkpoint_every == 0 or n == total - 1:
                    writer, parts = _close_part(writer, parts, first, n)
                    first, pending = n + 1, []
                    saved = _save(work, n, frame, parts, settings, schedule)
                    callback(Progress("checkpoint", frame=n + 1, total=total, start=start))
                callback(Progress("frame", frame=n + 1, total=total, start=start, segment=schedule.segment_of(n)[0]))
                if should_stop() and n < total - 1:
                    # Parts always end at checkpoint_every boundaries, so that a resumed render
                    # encodes exactly as an uninterrupted one: the open part's frames go into the
                    # checkpoint (lossless PNG) and are re-fed to its encoder on resume.
                    if writer is not None:
                        writer.abort()
                        writer = None
                    saved = _save(work, n, frame, parts, settings, schedule, pending)
                    raise Interrupted(f"stopped; frames 0-{saved} of {total} are saved in {work}; "
                                      "rerun the same command to resume")  # fmt: skip
        except BaseException as err:  # a hard stop (KeyboardInterrupt) too: the last checkpoint stands
            if writer is not None:
                writer.abort()
            workdir.drop_if_empty(work)
            if _is_runtime_failure(err):
                raise _failed(err, work, saved, schedule.size) from err
            raise

        try:
            join_videos([work / name for name, _, _ in parts], output, audio=schedule.audio_path,
                        durations=[(last - first + 1) / schedule.fps for _, first, last in parts])
        except (DreamvidError, OSError) as err:
            raise _failed(err, work, saved, schedule.size) from err
        if not keep_parts:
            shutil.rmtree(work, ignore_errors=True)
        callback(Progress("done", frame=total, total=total, start=start, message=str(output)))
        return output


def _is_runtime_failure(err: BaseException) -> bool:
    """Failures the user can act on, reported as one line (not bugs, not a stop request)."""
    if isinstance(err, (Interrupted, InputError)):
        return False
    return isinstance(err, (DreamvidError, OSError)) or is_out_of_memory(err)


def _failed(err: BaseException, work: Path, saved: int, size: tuple[int, int]) -> DreamvidError:
    """A runtime failure (disk full, ffmpeg died, NaN, out of memory) as one line that
    also says what survived: checkpoints are written atomically, so the last one stands."""
    if isinstance(err, OSError):
        what = describe_os_error(err)
    elif is_out_of_memory(err) and not isinstance(err, DreamvidError):
        where = "GPU" if type(err).__name__ == "OutOfMemoryError" else "CPU"
        what = (f"out of {where} memory rendering a {size[0]}x{size[1]} frame; expected a size that fits: "
                "choose a smaller size (on a GPU, `tile: auto` splits frames that do not fit)")
    else:
        what = str(err)
    if saved >= 0:
        kept = f"frames 0-{saved} are saved in {work}: fix the cause, then rerun the same command to resume"
    else:
        kept = "no frame had been saved yet"
    out = DreamvidError(f"{what}; {kept}")
    out.exit_code = getattr(err, "exit_code", 1)
    return out


def _close_part(writer: VideoWriter, parts: list, first: int, last: int):
    path = writer.close()
    return None, [*parts, (path.name, first, last)]


def _save(work: Path, n: int, frame: torch.Tensor, parts: list, settings: dict, schedule: Schedule,
          pending: list[np.ndarray] = ()) -> int:  # fmt: skip
    """Checkpoint frame ``n``: the closed parts plus ``pending`` frames hold frames 0..n."""
    state = {
        "index": n,
        "frame": frame.detach().float().cpu().contiguous(),
        "parts": [list(p) for p in parts],
        "pending": [_png(rgb) for rgb in pending],
        "settings": settings,
        "digests": ckpt.frame_digests(schedule, n),
        "numerics": numerics(frame.device, schedule.precision),
    }
    ckpt.save(ckpt.checkpoint_path(work, n), state)
    ckpt.prune(work)
    return n


def numerics(device: torch.device, precision: str = "auto") -> dict:
    """What a frame's last bits depend on besides the schedule: the device, the precision the
    schedule's ``precision`` resolves to there (:mod:`.precision`), and on the CPU the thread
    count (it changes how convolutions split their sums; see docs/resume.md)."""
    used = choose_precision(precision, device).name
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "precision": used, "torch": str(torch.__version__)}
    return {"device": "cpu", "threads": torch.get_num_threads(), "precision": used, "torch": str(torch.__version__)}


def _numerics_warning(saved: dict | None, now: dict) -> str | None:
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


def _png(rgb: np.ndarray) -> torch.Tensor:
    ok, buf = cv2.imencode(".png", rgb)  # channel order is irrelevant: it round-trips as is
    assert ok
    return torch.from_numpy(buf.reshape(-1).copy())


def _unpng(data: torch.Tensor) -> np.ndarray:
    return cv2.imdecode(data.numpy(), cv2.IMREAD_UNCHANGED)


def preview(
    schedule: Schedule,
    n: int,
    *,
    device: str | None = None,
    scale: float = 1.0,
    model: FeatureNet | None = None,
    callback: Callback = ignore,
) -> np.ndarray:
    """Frame ``n`` as the video shows it (before encoding), as HxWx3 uint8.

    Starts from the newest usable checkpoint at or before ``n`` when the render left one.
    ``scale`` < 1 renders smaller and faster, an approximation.
    """
    if not 0 <= n < schedule.total_frames:
        raise InputError(f"--frame {n} is outside the schedule; expected 0..{schedule.total_frames - 1}")
    dreamer = Dreamer(schedule, model or load_network(schedule, device), scale=scale, on_warning=warner(callback))
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
