"""The frame loop: camera, dream, encode, checkpoint.

frame 0 is the fitted input; frame n = dream(camera(frame n-1)) with frame n's parameters
and a generator seeded by (seed, n), so frame n never depends on how the render started.
Frames stream into ffmpeg in parts that close at each checkpoint (see :mod:`.checkpoint`);
at the end the parts are joined without re-encoding and renamed onto the output.

The library reports progress through ``callback(Progress)``; it never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dreamvid.core.errors import DreamvidError, InputError, Interrupted, describe_os_error, is_out_of_memory
from dreamvid.core.progress import Callback, Progress, ignore, warner
from dreamvid.engine.ascent import DreamSettings, dream_frame, fallback, speed_setup
from dreamvid.engine.model import FeatureNet, pick_device, shared_model, weights_digest
from dreamvid.engine.objectives import guide_features, guided, weighted
from dreamvid.engine.precision import choose as choose_precision
from dreamvid.media.audio import probe_audio
from dreamvid.media.write import VideoWriter, join_videos, output_problem, probe_codec
from dreamvid.pixels import colour
from dreamvid.pixels.camera import affine_theta, move
from dreamvid.pixels.flow import Start
from dreamvid.pixels.images import check_images, fit, noise_image, read_image, to_tensor, to_uint8
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering import lease, workdir
from dreamvid.rendering import video_input as video
from dreamvid.rendering.checkpoint import ScheduleChanged  # noqa: F401 - part of this module's API (batch catches it)
from dreamvid.rendering.framesource import FrameSource
from dreamvid.rendering.video_input import VideoStart
from dreamvid.rendering.workdir import work_dir
from dreamvid.schedule.schedule import FrameParams, Schedule


def frame_rng(seed: int, n: int) -> torch.Generator:
    """The random stream of frame ``n``: a function of (seed, n) only."""
    state = np.random.SeedSequence([seed, n]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def load_network(schedule: Schedule, device: str | None = None) -> FeatureNet:
    """The schedule's network with its weights, on ``device`` (default: the schedule's), kept
    for the process (:func:`.model.shared_model`): a batch worker that renders many videos
    loads its network, and compiles it (:func:`.ascent.compiled`), once."""
    return shared_model(schedule.model, weights=schedule.model_weights_path, device=pick_device(device or schedule.device))


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
        self.use_precision(schedule.precision)
        self._input: torch.Tensor | None = None  # frame 0, once needed
        self._references: dict[str, colour.Reference] = {}  # colour references by name
        self._raw = False  # True while re-dreaming frame 1 as a colour reference
        self._guides: dict[tuple, torch.Tensor] = {}  # (guide path, layer) -> its features at self.size
        self._mask: torch.Tensor | None = None  # the fitted mask, (1, 1, H, W), once needed
        self._moves = [torch.eye(3, dtype=torch.float64)]  # camera moves of frames 1..n composed, n = index
        self.video = VideoStart(schedule, self.size, self.device) if schedule.clip is not None else None

    def close(self) -> None:
        """End the clip's ffmpeg stream, if any (a video input)."""
        if self.video is not None:
            self.video.close()

    def use_precision(self, precision: str) -> None:
        """Dream in ``precision`` (auto, fp32, bf16; see docs/performance.md)."""
        choice = choose_precision(precision, self.device)
        if choice.warning:
            self.on_warning(choice.warning)
        self.precision = choice.name  # "fp32" or "bf16"
        self.amp_dtype, self.step_net = speed_setup(self.net, self.device, self.schedule.compile, choice.name)

    def continue_from(self, state: dict | None) -> None:
        """Resume in the precision the checkpoint's frames were dreamed in when the schedule
        leaves it to ``auto``: auto decides once per render (on a CPU it times a probe, which
        could tip the other way in a later run), not once per run."""
        saved = ((state or {}).get("numerics") or {}).get("precision")
        if self.schedule.precision == "auto" and saved in ("fp32", "bf16") and saved != self.precision:
            self.use_precision(saved)

    def first_frame(self) -> torch.Tensor:
        s = self.schedule
        if self.video is not None:  # a clip's frame 0 is dreamed too
            return self.next_frame(None, 0)
        if s.input_path is None:
            img = noise_image(self.size, torch.Generator().manual_seed(s.seed))
        else:
            img = fit(read_image(s.input_path, video_too=True), self.size)
        return to_tensor(img, self.device)

    def next_frame(self, frame: torch.Tensor | None, n: int) -> torch.Tensor:
        """Frame ``n`` from frame ``n - 1`` (with a video input, and the clip's frame n)."""
        p: FrameParams = self.schedule.params(n)
        frame, start = self._start(frame, n, p)
        frame = frame.contiguous(memory_format=torch.channels_last)
        if not p.layers:  # a transition's weights cancel exactly on this frame: nothing to maximise
            return self.masked(self.colour_control(frame, frame, p), frame, p)
        objective = weighted(p.layers, p.objective)
        if p.guide is not None and p.guide_weight != 0:
            objective = objective + p.guide_weight * guided(p.layers, self.guide(p.guide, p.layers))
        settings = DreamSettings(p.iterations, p.step, p.octaves, p.octave_scale, round(p.jitter * self.scale),
                                 gradient_norm=p.gradient_norm)  # fmt: skip
        pull = None if start is None else video.after_step(start, p.temporal)
        out = self._dream(frame, objective, replace(settings, amp_dtype=self.amp_dtype), n, pull)
        if not torch.isfinite(out).all():
            raise DreamvidError(f"frame {n}: the image became NaN/inf; expected finite pixels: lower "
                                f"segments[{p.segment}].step (now {p.step:g})")
        return self.masked(self.colour_control(out, frame, p), frame, p)

    def _start(self, previous: torch.Tensor | None, n: int, p: FrameParams) -> tuple[torch.Tensor, Start | None]:
        """Where frame ``n``'s dream starts: the previous frame moved by the camera. With a
        video input, the clip's frame n blended with the flow-warped previous frame, then
        moved, and what the temporal term pulls toward (:mod:`.video`); frame 0 is the clip's
        frame 0 as it is, with nothing to pull toward."""
        k = self.scale

        def camera(image: torch.Tensor) -> torch.Tensor:
            return move(image, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k), p.center)

        if self.video is None:
            return camera(previous), None
        start = self.video.start(n, previous, p)
        if n == 0:
            return start.image, None
        start = video.moved(start, camera)
        return start.image, start

    def _dream(self, frame: torch.Tensor, objective, settings: DreamSettings, n: int, after_step=None) -> torch.Tensor:
        """Dream frame ``n`` with the (compiled) network, tiled as the schedule's ``tile`` says.

        If the compiled network fails (a compiler missing on this host, an unsupported op), the
        frame is redone with the next simpler one (CUDA graphs, then plain compiled, then
        eager), which is used from then on."""
        def run(net):
            return dream_frame(net, frame, objective, settings, lambda: frame_rng(self.schedule.seed, n),
                               self.schedule.tile, after_step)  # fmt: skip

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

    # -- guide images and masks (docs/schedule.md#guides-and-masks) -------------------------

    def guide(self, path: Path, layers) -> dict[str, torch.Tensor]:
        """The guide image's features at the layers ``layers`` read, computed once per layer."""
        names = {key.split(":")[0] for key in layers}
        missing = [name for name in names if (path, name) not in self._guides]
        if missing:
            found = guide_features(self.net, to_tensor(fit(read_image(path), self.size), self.device), missing)
            self._guides.update({(path, name): f for name, f in found.items()})
        return {name: self._guides[(path, name)] for name in names}

    def mask_at(self, n: int) -> torch.Tensor:
        """Frame ``n``'s mask (1, 1, H, W) in [0, 1]: the fitted mask, moved by the camera moves
        of frames 1..n composed into one warp when it follows the camera. A function of ``n``
        and the schedule alone (previews and resumed renders get the same one)."""
        if self._mask is None:
            grey = fit(read_image(self.schedule.mask_path), self.size).mean(axis=2, keepdims=True)
            self._mask = to_tensor(grey, self.device)
        if self.schedule.mask_follows == "frame" or n == 0:
            return self._mask
        while len(self._moves) <= n:  # output-to-input maps compose as M_n = M_(n-1) T_n
            p, k = self.schedule.params(len(self._moves)), self.scale
            theta = affine_theta(self.size, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k), p.center)
            step = torch.cat([theta.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
            self._moves.append(self._moves[-1] @ step)
        theta = self._moves[n][:2].float().to(self.device)[None]
        grid = torch.nn.functional.affine_grid(theta, list(self._mask.shape), align_corners=False)
        return torch.nn.functional.grid_sample(self._mask, grid, mode="bilinear", padding_mode="reflection",
                                               align_corners=False).clamp_(0.0, 1.0)  # fmt: skip

    def masked(self, out: torch.Tensor, moved: torch.Tensor, p: FrameParams) -> torch.Tensor:
        """``moved + m (out - moved)`` with ``m = 1 - mask_strength (1 - mask)``: outside the
        mask's white part the frame only follows the camera (the dream and its colour control
        are blended away)."""
        if self.schedule.mask_path is None or p.mask_strength == 0 or self._raw:
            return out
        m = 1.0 - p.mask_strength * (1.0 - self.mask_at(p.index))
        return torch.lerp(moved, out, m)

    # -- colour control (the logic lives in colour.py) -------------------------------------

    def colour_control(self, dreamed: torch.Tensor, moved: torch.Tensor, p: FrameParams) -> torch.Tensor:
        """The frame's colour match, input blend, smoothing and clip guard (see :mod:`.colour`).

        Its state is frame 0, frame 1 (both recomputed from the schedule when needed) and
        the previous frame (which a checkpoint holds), so resumed renders stay bit-exact.
        """
        if self._raw:
            return dreamed
        matching = p.colour != "none" and (p.colour_strength > 0 or p.saturation_match > 0)
        reference = self._colour_reference(p, dreamed) if matching else None
        return colour.control(dreamed, moved, self.input_at(p.index), reference, p)

    def input_at(self, n: int) -> torch.Tensor:
        """What frame ``n`` blends toward and matches colours to: the input image, or with a
        video input the clip's frame n."""
        return self.input_image if self.video is None else self.video.source(n)

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
        if self.video is not None:  # a clip: its frame n, or its first dreamed frame (0)
            return self._video_reference(which, p, dreamed)
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

    def _video_reference(self, which: str, p: FrameParams, dreamed: torch.Tensor) -> colour.Reference:
        if which == "input":
            return colour.Reference(self.video.source(p.index))
        if which not in self._references:
            if p.index == 0:
                image = dreamed
            else:  # dream frame 0 again, without colour control
                self._raw = True
                try:
                    image = self.next_frame(None, 0)
                finally:
                    self._raw = False
            self._references[which] = colour.Reference(image)
        return self._references[which]


def _settings(schedule: Schedule, codec: str, net: FeatureNet) -> dict:
    settings = ckpt.global_settings(schedule)
    settings["encoder"] = {**settings["encoder"], "codec": codec}
    if net.name != schedule.model:  # a network of the caller's: its weights decide the frames
        settings["model"], settings["model_weights"] = net.name, weights_digest(net)
    return settings


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
    checkpoint naming the open part's frames (already on disk) is written and
    :class:`Interrupted` raised (the CLI wires it to Ctrl-C and SIGTERM). A
    ``KeyboardInterrupt`` instead aborts at once, keeping the last checkpoint.
    """
    if output is None and schedule.output_path is None:
        raise InputError(f"{schedule.source}: output: no output file; expected `output:` in the schedule or -o")
    output = Path(output or schedule.output_path).absolute()
    if schedule.input_path is not None and output.resolve() == schedule.input_path.resolve():
        raise InputError(f"{output}: the output path is the input image; choose another output")
    problem = output_problem(output)  # before hours of rendering, not at the final join
    if problem:
        raise InputError(f"{output}: {problem}")
    if schedule.audio_path is not None:
        probe_audio(schedule.audio_path)
    check_images(schedule)
    for notice in video.notices(schedule.clip):
        callback(Progress("warning", message=notice))
    total = min(frames or schedule.total_frames, schedule.total_frames)
    enc = schedule.encoder
    codec = probe_codec(enc.codec)
    # device and model errors before any folder is made
    dreamer = Dreamer(schedule, model or load_network(schedule, device), on_warning=warner(callback))
    work = work_dir(output)
    workdir.make(work)
    with lease.exclusive(work, on_wait=warner(callback)):
        if fresh:
            workdir.empty(work)
        settings = _settings(schedule, codec, dreamer.net)
        state = ckpt.find(schedule, work, settings, total - 1, callback)
        frame = None if state is None else state["frame"].to(dreamer.device)
        dreamer.continue_from(state)
        numerics = ckpt.numerics(dreamer.device, dreamer.precision)
        if state is not None and (warning := ckpt.numerics_warning(state.get("numerics"), numerics)):
            callback(Progress("warning", message=warning))
        beyond = any(ckpt.index_of(p) >= total for p in ckpt.list_checkpoints(work))
        parts = workdir.Parts(work, state, total - 1, schedule.checkpoint_every, settings, numerics,
                              lambda n: ckpt.frame_digests(schedule, n), read_only=beyond,
                              new_writer=lambda path: VideoWriter(path, schedule.size, schedule.frame_rate, codec=codec,
                                                                  crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt))  # fmt: skip
        start = parts.start
        callback(Progress("start", frame=start, total=total, start=start))
        frames = FrameSource(dreamer, total)  # on CUDA frame n's copy to the host overlaps frame n+1's dream
        try:
            for n in range(start, total):
                frame, rgb = frames.get(n, frame)
                if parts.add(n, rgb) or n == total - 1:
                    parts.save(n, frame)
                    callback(Progress("checkpoint", frame=n + 1, total=total, start=start))
                callback(Progress("frame", frame=n + 1, total=total, start=start, segment=schedule.segment_of(n)[0]))
                if should_stop() and n < total - 1:
                    saved = parts.stop(n, frame)
                    raise Interrupted(f"stopped; frames 0-{saved} of {total} are saved in {work}; "
                                      "rerun the same command to resume")  # fmt: skip
            parts.finish(total - 1)
            join_videos([path for path, _ in parts.videos()], output, audio=schedule.audio_path,
                        durations=[count / schedule.fps for _, count in parts.videos()], fps=schedule.frame_rate)
        except BaseException as err:  # a hard stop (KeyboardInterrupt) too: the last checkpoint stands
            parts.abort()
            workdir.drop_if_empty(work)
            if _is_runtime_failure(err):
                raise _failed(err, work, parts.saved, schedule.size) from err
            raise
        finally:
            dreamer.close()
        kept = parts.close(keep=keep_parts)
        if kept:
            callback(Progress("warning", message=kept))
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
    from dreamvid.core.errors import out_of_memory_message

    if isinstance(err, OSError):
        what = describe_os_error(err)
    elif is_out_of_memory(err) and not isinstance(err, DreamvidError):
        what = out_of_memory_message(err, f"rendering a {size[0]}x{size[1]} frame")
    else:
        what = str(err)
    if saved >= 0:
        kept = f"frames 0-{saved} are saved in {work}: fix the cause, then rerun the same command to resume"
    else:
        kept = "no frame had been saved yet"
    out = DreamvidError(f"{what}; {kept}")
    out.exit_code = getattr(err, "exit_code", 1)
    return out


def frames(
    schedule: Schedule,
    *,
    start: int = 0,
    stop: int | None = None,
    device: str | None = None,
    scale: float = 1.0,
    model: FeatureNet | None = None,
    callback: Callback = ignore,
) -> Iterator[np.ndarray]:
    """Frames ``start`` .. ``stop - 1`` as the video shows them (before encoding), HxWx3 uint8.

    Starts from the newest checkpoint at or before ``start`` that a render of this schedule
    left (at ``scale`` 1), else from frame 0; each further frame costs one dream.
    ``scale`` < 1 renders smaller and faster, an approximation.
    """
    total = schedule.total_frames
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise InputError(f"frames {start}..{stop - 1} are outside the schedule; expected frames within 0..{total - 1}")
    dreamer = Dreamer(schedule, model or load_network(schedule, device), scale=scale, on_warning=warner(callback))
    known, frame = -1, None  # the last frame we have, and its index
    if scale == 1.0 and schedule.output_path is not None and work_dir(schedule.output_path).is_dir():
        settings = _settings(schedule, probe_codec(schedule.encoder.codec), dreamer.net)
        try:
            state = ckpt.find(schedule, work_dir(schedule.output_path), settings, start, callback)
        except InputError as e:
            callback(Progress("warning", message=f"{e}; rendering from frame 0"))
            state = None
        if state is not None:
            dreamer.continue_from(state)
            known, frame = state["index"], state["frame"].to(dreamer.device)
            saved = known + 1 - len(state["pending"])  # a stop saved frames saved..known as the video shows them
            if known > start and saved > start:  # frame start is inside an encoded part: dream from 0
                known, frame = -1, None
    callback(Progress("start", frame=min(known, stop - 1) + 1, total=stop, start=min(known, stop - 1) + 1))
    if known >= start:
        work = work_dir(schedule.output_path)
        for n in range(start, min(known, stop - 1) + 1):
            if n == known:
                yield to_uint8(frame).cpu().numpy()
            else:
                yield workdir.load_frame(work, state["pending"][n - saved][0])
    try:
        for n in range(known + 1, stop):
            frame = dreamer.first_frame() if n == 0 else dreamer.next_frame(frame, n)
            callback(Progress("frame", frame=n + 1, total=stop, start=known + 1, segment=schedule.segment_of(n)[0]))
            if n >= start:
                yield to_uint8(frame).cpu().numpy()
    finally:
        dreamer.close()


def preview(schedule: Schedule, n: int, *, device: str | None = None, scale: float = 1.0,
            model: FeatureNet | None = None, callback: Callback = ignore) -> np.ndarray:  # fmt: skip
    """Frame ``n`` as the video shows it (before encoding), as HxWx3 uint8 (see :func:`frames`)."""
    if not 0 <= n < schedule.total_frames:
        raise InputError(f"frame {n} is outside the schedule; expected 0..{schedule.total_frames - 1}")
    return next(frames(schedule, start=n, stop=n + 1, device=device, scale=scale, model=model, callback=callback))
