"""The step from frame n-1 to frame n: camera -> dream -> colour -> mask.

    moved    = camera(frame[n-1])            with a video input: the clip's frame n carrying the
                                             dream along the clip's motion, then moved (:mod:`.video_input`)
    dreamed  = dream(moved)                  frame n's objective (layers, guide), seeded by (seed, n)
    coloured = colour(dreamed, moved)        colour match to a reference, input blend, smoothing, clip guard
    frame[n] = mask(coloured, moved)         outside the mask the frame only follows the camera

Frame 0 is the fitted input (a clip's frame 0 is dreamed too). What a step keeps besides
frame n-1 (the colour references, the guide images' features, the mask's composed camera
moves) is a function of the schedule and n alone, rebuilt when needed: so frame n never
depends on how the render started (a resume, a preview), and a checkpoint holds frame n-1 only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dreamvid.core.errors import DreamvidError, first_line
from dreamvid.core.stages import stage
from dreamvid.engine.ascent import (
    AutoTile,
    DreamSettings,
    compile_mode,
    dream_frame,
    fallback,
    is_compile_failure,
    speed_setup,
)
from dreamvid.engine.catalogue import split_layer_key
from dreamvid.engine.model import FeatureNet
from dreamvid.engine.objectives import Objective, guide_features, guided, weighted
from dreamvid.engine.precision import choose as choose_precision
from dreamvid.pixels import colour
from dreamvid.pixels.camera import affine_theta, homogeneous, move, warp
from dreamvid.pixels.images import fit, noise_image, read_image, to_device, to_tensor
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering import video_input as video
from dreamvid.rendering.checkpoint import Checkpoint
from dreamvid.rendering.video_input import VideoStart
from dreamvid.schedule.cadence import next_dreamed
from dreamvid.schedule.schedule import FrameParams, Schedule

Image = torch.Tensor  # (1, C, H, W) in [0, 1] on the Dreamer's device
AfterStep = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]  # the temporal term (see .ascent.dream)


def frame_rng(seed: int, n: int) -> torch.Generator:
    """The random stream of frame ``n``: a function of (seed, n) only."""
    state = np.random.SeedSequence([seed, n]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class FiniteChecks:
    """Whether each dreamed image is finite (a too large ``step`` makes NaN/inf).

    Checked at once, which makes the host wait for the device, unless ``deferred``: then the
    checks wait, as device tensors, until :meth:`take` hands them to whoever copies the frame
    to the host anyway (:class:`.framesource.FrameSource`, which copies them with it and calls
    :meth:`verify` once the copy is done)."""

    def __init__(self):
        self.deferred = False
        self._pending: list[tuple[torch.Tensor, str]] = []  # (finite?, the error if not), not yet checked

    def add(self, image: Image, error: str) -> None:
        finite = torch.isfinite(image).all()
        if self.deferred:
            self._pending.append((finite, error))
        elif not finite:
            raise DreamvidError(error)

    def take(self) -> tuple[torch.Tensor | None, list[str]]:
        """The checks not done yet, as one bool tensor on the device, and their errors."""
        pending, self._pending = self._pending, []
        if not pending:
            return None, []
        return torch.stack([finite for finite, _ in pending]), [error for _, error in pending]

    @staticmethod
    def verify(finite, errors: list[str]) -> None:
        """Raise the first error whose check (``finite``, host booleans in :meth:`take`'s order) failed."""
        for ok, error in zip(finite, errors):
            if not ok:
                raise DreamvidError(error)


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
        self.checks = FiniteChecks()  # each dream's NaN/inf check
        self.compile_fallback: str | None = None  # why torch.compile failed, if it did (checkpoints say)
        self._tile: AutoTile | None = None  # ``tile: auto`` as this render decided it (see tile)
        self.use_precision(schedule.precision)
        self._input: Image | None = None  # frame 0 of an image input, once needed
        self.motion = Motion(schedule, self.size, scale, self.device)
        self.video = self.motion.video
        self.guides = Guides(self.net, self.size, self.device)
        self.mask = Mask(schedule, self.size, self.device, self.motion.matrix) if schedule.mask_path is not None \
            else Unmasked()
        if self.video is None:
            references = ImageReferences(schedule, lambda: self.input_image, self.dream_without_colour)
        else:
            references = ClipReferences(schedule, self.video.source, self.dream_without_colour)
        self.colour = ColourControl(references, self.input_at)

    def close(self) -> None:
        """End the clip's ffmpeg stream, if any (a video input)."""
        self.motion.close()

    def use_precision(self, precision: str) -> None:
        """Dream in ``precision`` (auto, fp32, bf16; see docs/performance.md)."""
        choice = choose_precision(precision, self.device)
        if choice.warning:
            self.on_warning(choice.warning)
        self.precision = choice.name  # "fp32" or "bf16"
        self.amp_dtype, self.step_net = speed_setup(self.net, self.device, self.schedule.compile, choice.name)

    def continue_from(self, checkpoint: Checkpoint | None) -> None:
        """Resume in the precision, and with the tiles, the checkpoint's frames were dreamed
        with when the schedule leaves them to ``auto``: auto decides once per render (on a CPU
        precision times a probe, and on a GPU the tiles follow the free memory, either of which
        could tip the other way in a later run), not once per run."""
        saved = checkpoint.precision if checkpoint is not None else None
        if self.schedule.precision == "auto" and saved in ("fp32", "bf16") and saved != self.precision:
            self.use_precision(saved)
        if checkpoint is not None and checkpoint.tile_side is not None and self.schedule.tile == "auto":
            self._tile = AutoTile(checkpoint.tile_side or None)  # the same tiles as the frames before

    # -- the step ---------------------------------------------------------------------------

    def first_frame(self) -> Image:
        if self.video is not None:  # a clip's frame 0 is dreamed too
            return self.next_frame(None, 0)
        return self.motion.first_frame()

    def next_frame(self, previous: Image | None, n: int, since: int | None = None) -> Image:
        """Frame ``n`` from frame ``since`` (default ``n - 1``; an earlier dreamed frame with a
        cadence, :mod:`.cadence`), and with a video input the clip's frame n."""
        p: FrameParams = self.schedule.params(n)
        moved, pull = self.start(previous, n, p, since)
        dreamed = self.dream(moved, pull, n, p)
        coloured = self.colour(dreamed, moved, p)
        return self.mask(coloured, moved, p)

    def dream_without_colour(self, previous: Image | None, n: int, since: int | None = None) -> Image:
        """Frame ``n`` as the dream leaves it, before colour control and the mask: what a
        colour reference of the first dreamed frame is made of when that frame is not at hand
        (a render resumed, or a preview, past it)."""
        p = self.schedule.params(n)
        moved, pull = self.start(previous, n, p, since)
        return self.dream(moved, pull, n, p)

    def start(self, previous: Image | None, n: int, p: FrameParams,
              since: int | None = None) -> tuple[Image, AfterStep | None]:  # fmt: skip
        """Where frame ``n``'s dream starts (:meth:`Motion.start`)."""
        return self.motion.start(previous, n, p, since)

    def dream(self, moved: Image, pull: AfterStep | None, n: int, p: FrameParams) -> Image:
        """Frame ``n``'s dream from ``moved``; ``moved`` itself when the frame has no layers (a
        transition's weights cancel exactly on it: nothing to maximise)."""
        if not p.layers:
            return moved
        settings = DreamSettings(p.iterations, p.step, p.octaves, p.octave_scale, round(p.jitter * self.scale),
                                 gradient_norm=p.gradient_norm, amp_dtype=self.amp_dtype)  # fmt: skip
        with stage("dream"):
            out = self._ascend(moved, self.objective(p), settings, n, pull)
            self.checks.add(out, f"frame {n}: the image became NaN/inf; expected finite pixels: lower "
                                 f"segments[{p.segment}].step (now {p.step:g})")  # fmt: skip
        return out

    def objective(self, p: FrameParams) -> Objective:
        """What frame ``p.index``'s dream maximises: its layers, and its guide image's features."""
        objective = weighted(p.layers, p.objective)
        if p.guide is not None and p.guide_weight != 0:
            objective = objective + p.guide_weight * guided(p.layers, self.guides.features(p.guide, p.layers))
        return objective

    def _ascend(self, frame: Image, objective, settings: DreamSettings, n: int, after_step=None) -> Image:
        """Dream frame ``n`` with the (compiled) network, tiled as the schedule's ``tile`` says
        (``auto``: as this render decided, :attr:`tile`).

        If compiling fails (a compiler missing on this host, an unsupported op: only what
        torch.compile raises, :func:`.ascent.is_compile_failure`), the frame is redone with the
        next simpler mode (CUDA graphs, then plain compiled, then eager), which is used from
        then on. Any other error (CUDA's, out of memory) is raised at once, not retried."""
        def run(net):
            return dream_frame(net, frame, objective, settings, lambda: frame_rng(self.schedule.seed, n),
                               self.tile, after_step)  # fmt: skip

        while True:
            try:
                return run(self.step_net)
            except Exception as e:
                if isinstance(e, DreamvidError) or self.step_net is self.net or not is_compile_failure(e):
                    raise
                self.step_net, what = fallback(self.step_net, self.net)
                self.compile_fallback = f"{type(e).__name__}: {first_line(e, '')[:200]}"
                self.on_warning(f"torch.compile failed ({self.compile_fallback}); "
                                f"continuing {what} (set `compile: false` to skip it)")

    @property
    def tile(self) -> int | AutoTile | None:
        """The schedule's ``tile``; for ``auto`` this render's decision, made at its first dream
        (or taken from the checkpoint it resumes, :meth:`continue_from`) and kept."""
        if self.schedule.tile != "auto":
            return self.schedule.tile
        if self._tile is None:
            self._tile = AutoTile.decide((self.size[1], self.size[0]), self.device, self.amp_dtype)
        return self._tile

    def numerics(self) -> dict:
        """What this render's last bits depend on, for its checkpoints (:func:`.checkpoint.numerics`)."""
        tile = self.tile
        side = tile.side if isinstance(tile, AutoTile) else tile
        return ckpt.numerics(self.device, self.precision, compile=compile_mode(self.step_net, self.net),
                             tile=side, fallback=self.compile_fallback)  # fmt: skip

    # -- the input ----------------------------------------------------------------------------

    def input_at(self, n: int) -> Image:
        """What frame ``n`` blends toward and matches colours to: the input image, or with a
        video input the clip's frame n."""
        return self.input_image if self.video is None else self.video.source(n)

    @property
    def input_image(self) -> Image:
        """Frame 0 of an image input, kept for input_blend and colour matching."""
        if self._input is None:
            self._input = self.first_frame()
        return self._input


class Motion:
    """The camera alone: frame 0 and where each frame's dream starts, without a network. A
    render's step starts here; the motion preview (:mod:`.motion`) is this and nothing else, so
    it equals a render with ``iterations: 0`` and colour control off."""

    def __init__(self, schedule: Schedule, size: tuple[int, int], scale: float, device: torch.device):
        self.schedule, self.size, self.scale, self.device = schedule, size, scale, device
        self.video = VideoStart(schedule, size, device) if schedule.clip is not None else None

    def close(self) -> None:
        """End the clip's ffmpeg stream, if any (a video input)."""
        if self.video is not None:
            self.video.close()

    def first_frame(self) -> Image:
        """Frame 0 as the input gives it: the fitted image, noise, or the clip's frame 0."""
        s = self.schedule
        if self.video is not None:
            return self.video.source(0)
        if s.input_path is None:
            img = noise_image(self.size, torch.Generator().manual_seed(s.seed))
        else:
            img = fit(read_image(s.input_path, video_too=True), self.size)
        return to_tensor(img, self.device)

    def start(self, previous: Image | None, n: int, p: FrameParams,
              since: int | None = None) -> tuple[Image, AfterStep | None]:  # fmt: skip
        """Where frame ``n``'s dream starts: the previous frame moved by the camera. With a
        video input, the clip's frame n blended with the flow-warped previous frame, then
        moved, and the temporal term pulling toward that previous frame (:mod:`.video_input`);
        frame 0 is the clip's frame 0 as it is, with nothing to pull toward. ``since``: the
        frame ``previous`` is, when earlier than n - 1 (a cadence; image inputs only): it is
        moved by the camera moves of frames since+1..n composed into one warp."""
        if since is not None and since < n - 1:
            with stage("camera"):
                return self.carried(previous, since, n).contiguous(memory_format=torch.channels_last), None
        k = self.scale

        def camera(image: Image) -> Image:
            return move(image, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k), p.center, p.camera)

        if self.video is None:
            with stage("camera"):
                return camera(previous).contiguous(memory_format=torch.channels_last), None
        with stage("flow"):
            start = self.video.start(n, previous, p)
        if n == 0:
            return start.image.contiguous(memory_format=torch.channels_last), None
        with stage("camera"):
            start = video.moved(start, camera)
            return start.image.contiguous(memory_format=torch.channels_last), video.after_step(start, p.temporal)

    def matrix(self, n: int) -> torch.Tensor:
        """Frame ``n``'s camera move as a 3x3 float64 output-to-input map (:func:`.camera.homogeneous`)."""
        p, k = self.schedule.params(n), self.scale
        return homogeneous(affine_theta(self.size, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k),
                                        p.center, p.camera))  # fmt: skip

    def path(self, a: int, n: int) -> torch.Tensor:
        """The camera moves of frames a+1..n composed: frame a's pixels as frame n shows them."""
        out = torch.eye(3, dtype=torch.float64)
        for m in range(a + 1, n + 1):
            out = out @ self.matrix(m)
        return out

    def carried(self, image: Image, a: int, n: int) -> Image:
        """Frame ``a``'s ``image`` carried by the camera to frame ``n`` > a, in one warp."""
        return warp(image, self.path(a, n))[0]

    def carried_back(self, image: Image, b: int, n: int) -> tuple[Image, torch.Tensor]:
        """Frame ``b``'s ``image`` carried back by the camera to frame ``n`` < b (the inverse of
        the moves n+1..b), and where frame b shows that (1 inside, 0 where frame n sees more)."""
        return warp(image, torch.linalg.inv(self.path(n, b)))


# -- guide images and masks (docs/schedule.md#guides-and-masks) -------------------------------


class Guides:
    """Guide images' features at the layers frames read, each computed once at the frame size."""

    def __init__(self, net: FeatureNet, size: tuple[int, int], device: torch.device):
        self.net, self.size, self.device = net, size, device
        self._features: dict[tuple[Path, str], torch.Tensor] = {}  # (guide path, layer) -> its features

    def features(self, path: Path, layers) -> dict[str, torch.Tensor]:
        """The guide image's features at the layers ``layers`` read."""
        names = {split_layer_key(key)[0] for key in layers}
        missing = [name for name in names if (path, name) not in self._features]
        if missing:
            found = guide_features(self.net, to_tensor(fit(read_image(path), self.size), self.device), missing)
            self._features.update({(path, name): f for name, f in found.items()})
        return {name: self._features[(path, name)] for name in names}


class Mask:
    """The schedule's mask: where the dream (and its colour control) shows; elsewhere the frame
    only follows the camera."""

    def __init__(self, schedule: Schedule, size: tuple[int, int], device: torch.device,
                 matrix: Callable[[int], torch.Tensor]):  # fmt: skip
        self.schedule, self.size, self.device = schedule, size, device
        self.matrix = matrix  # frame n's camera move, 3x3 (Motion.matrix)
        self._mask: torch.Tensor | None = None  # the fitted mask, (1, 1, H, W), once needed
        self._moves = [torch.eye(3, dtype=torch.float64)]  # camera moves of frames 1..n composed, n = index

    def __call__(self, out: Image, moved: Image, p: FrameParams) -> Image:
        """``moved + m (out - moved)`` with ``m = 1 - mask_strength (1 - mask)``."""
        if p.mask_strength == 0:
            return out
        with stage("mask"):
            m = 1.0 - p.mask_strength * (1.0 - self.at(p.index))
            return torch.lerp(moved, out, m)

    def at(self, n: int) -> torch.Tensor:
        """Frame ``n``'s mask (1, 1, H, W) in [0, 1]: the fitted mask, moved by the camera moves
        of frames 1..n composed into one warp when it follows the camera. A function of ``n``
        and the schedule alone (previews and resumed renders get the same one)."""
        if self._mask is None:
            grey = fit(read_image(self.schedule.mask_path), self.size).mean(axis=2, keepdims=True)
            self._mask = to_tensor(grey, self.device)
        if self.schedule.mask_follows == "frame" or n == 0:
            return self._mask
        while len(self._moves) <= n:  # output-to-input maps compose as M_n = M_(n-1) T_n
            self._moves.append(self._moves[-1] @ self.matrix(len(self._moves)))
        theta = to_device(self._moves[n][:2].float()[None], self.device)
        grid = torch.nn.functional.affine_grid(theta, list(self._mask.shape), align_corners=False)
        return torch.nn.functional.grid_sample(self._mask, grid, mode="bilinear", padding_mode="reflection",
                                               align_corners=False).clamp_(0.0, 1.0)  # fmt: skip


class Unmasked:
    """No mask: the frame is the coloured dream."""

    def __call__(self, out: Image, moved: Image, p: FrameParams) -> Image:
        return out


# -- colour control (the logic lives in pixels/colour.py) -------------------------------------


class ColourControl:
    """A frame's colour match, input blend, smoothing and clip guard (:func:`.colour.control`).

    Its state is the colour references (rebuilt from the schedule when needed) and the
    previous frame (which a checkpoint holds), so resumed renders stay bit-exact."""

    def __init__(self, references: ImageReferences | ClipReferences, input_at: Callable[[int], Image]):
        self.references, self.input_at = references, input_at

    def __call__(self, dreamed: Image, moved: Image, p: FrameParams) -> Image:
        matching = p.colour != "none" and (p.colour_strength > 0 or p.saturation_match > 0)
        with stage("colour_reference"):
            reference = self.references.get(p, dreamed) if matching else None
        return colour.control(dreamed, moved, self.input_at(p.index), reference, p)


def _reference_name(schedule: Schedule, p: FrameParams) -> str:
    """``input`` or ``frame1`` (the first dreamed frame); ``auto`` is frame1 for a noise input."""
    which = p.colour_reference
    if which == "auto":
        which = "frame1" if schedule.input_path is None else "input"
    return which


class ImageReferences:
    """The colour references of an image or noise input: the input image, or the first dreamed
    frame (frame 1; with a cadence, :mod:`.schedule.cadence`) as the dream left it (before colour
    control), dreamed again when a render starts past it."""

    def __init__(self, schedule: Schedule, input_image: Callable[[], Image],
                 dream_without_colour: Callable[[Image | None, int], Image]):  # fmt: skip
        self.schedule, self.input_image, self.dream_without_colour = schedule, input_image, dream_without_colour
        self.built: dict[str, colour.Reference] = {}  # by name

    def get(self, p: FrameParams, dreamed: Image) -> colour.Reference:
        """Frame ``p.index``'s reference (``dreamed``: that frame before colour control)."""
        which = _reference_name(self.schedule, p)
        if which not in self.built:
            if which == "input":
                image = self.input_image()
            elif p.index == (first := next_dreamed(self.schedule, 0)):  # frame 1, or frame k with a cadence k
                image = dreamed
            else:  # resumed or previewed past it
                image = self.dream_without_colour(self.input_image(), first, 0)
            self.built[which] = colour.Reference(image)
        return self.built[which]


class ClipReferences:
    """The colour references of a video input: the clip's frame n, or its first dreamed frame
    (0) as the dream left it, dreamed again when a render starts past it."""

    def __init__(self, schedule: Schedule, source: Callable[[int], Image],
                 dream_without_colour: Callable[[Image | None, int], Image]):  # fmt: skip
        self.schedule, self.source, self.dream_without_colour = schedule, source, dream_without_colour
        self.built: dict[str, colour.Reference] = {}  # by name

    def get(self, p: FrameParams, dreamed: Image) -> colour.Reference:
        which = _reference_name(self.schedule, p)
        if which == "input":  # a new reference each frame: counted, not sorted (no host sync)
            return colour.Reference(self.source(p.index), counted=True)
        if which not in self.built:
            image = dreamed if p.index == 0 else self.dream_without_colour(None, 0)
            self.built[which] = colour.Reference(image)
        return self.built[which]
