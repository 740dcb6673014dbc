"""Gradient ascent on an image: the DeepDream step, octaves and jitter.

``dream(net, image, objective, settings, generator)`` returns the dreamed image. Images are
float32 tensors (1, 3, H, W) with RGB in [0, 1], on the network's device.

The algorithm is the classic one of Google's DeepDream notebook:

- Octaves: the image is dreamed from coarse to fine. At each of ``octaves`` scales (each
  ``octave_scale`` times smaller than the next) we dream ``base + detail`` and carry the
  *detail* (what dreaming added) up to the next scale, so large structures form at coarse
  scales and fine texture at the finest.
- Jitter: before each step the image is rolled by a random offset in [-jitter, jitter],
  which hides the network's stride grid. We keep the image in rolled coordinates and roll
  only by the difference to the next offset (one roll per step, not two), and unroll once
  per octave: the same result as roll, step, unroll.
- Step: the gradient of the objective w.r.t. the image, divided by its mean absolute value
  (so ``step`` is in image units per iteration whatever the layer), then the image is
  clamped to [0, 1]. With ``gradient_norm="laplacian"`` the gradient is first split into a
  Laplacian pyramid whose bands are each divided by their RMS and summed again
  (:func:`laplacian_normalize`, the lucid/TF DeepDream tutorials' ``lap_normalize``): the
  coarse bands get as much weight as the fine ones, which keeps high-frequency noise down.
- Tiles (``settings.tile``): for frames too big for the device's memory the gradient is
  computed tile by tile, each tile's from a forward of that tile only (plus a small
  overlap for context), as the TF DeepDream tutorial's ``get_tiled_gradients`` does.
  The jitter roll moves the seams every step, so they do not show. :func:`dream_frame`
  is the one place that turns a CUDA out-of-memory error into a tiled retry.

Randomness comes only from ``generator`` (a CPU ``torch.Generator``), never the global
RNG, so the same inputs give the same image on any device.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from dreamvid.core import defaults as D
from dreamvid.core.defaults import MIN_TILE
from dreamvid.core.errors import DreamvidError, causes, is_out_of_memory, out_of_memory_kind, out_of_memory_message
from dreamvid.engine.model import COMPILED, FeatureNet
from dreamvid.engine.objectives import Objective
from dreamvid.engine.precision import choose as choose_precision

MIN_OCTAVE_SIDE = 80  # smaller octaves are skipped: too small for the deep layers to see
TILE_OVERLAP = 16  # context in pixels added around each tile (its gradient there is dropped)


@dataclass(frozen=True)
class DreamSettings:
    iterations: int = D.ITERATIONS  # gradient steps per octave
    step: float = D.STEP  # step size, in image units ([0, 1]) per iteration
    octaves: int = D.OCTAVES  # number of scales
    octave_scale: float = D.OCTAVE_SCALE  # size ratio between consecutive octaves
    jitter: int = D.JITTER  # max random roll in pixels, per step
    amp_dtype: torch.dtype | None = None  # autocast dtype for the forward (CUDA), None = fp32
    tile: int | None = None  # gradient tile side in pixels, None = the whole image at once
    gradient_norm: str = D.GRADIENT_NORM  # "mean" | "laplacian" (see gradient_step)


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """Sizes from coarsest to finest (the last is the image's own)."""
    sizes = []
    for i in reversed(range(octaves)):
        h, w = round(height / octave_scale**i), round(width / octave_scale**i)
        if i == 0 or min(h, w) >= MIN_OCTAVE_SIDE:
            sizes.append((h, w))
    return sizes


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _autocast(x: torch.Tensor, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype=dtype)


def gradient(net: FeatureNet, x: torch.Tensor, objective: Objective, amp_dtype=None) -> torch.Tensor:
    """d objective / d x, from one forward and backward of the whole ``x``."""
    x = x.detach().requires_grad_(True)
    with _autocast(x, amp_dtype):
        acts = net(x, objective.layers)
    loss = objective(acts)  # fp32 (objectives upcast)
    (g,) = torch.autograd.grad(loss, x)
    return g


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``range(length)`` into ceil(length / tile) nearly equal spans (no sliver at the end)."""
    n = max(1, math.ceil(length / tile))
    cuts = [round(i * length / n) for i in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def _window(span: tuple[int, int], size: int, length: int) -> tuple[int, int]:
    """A window of ``size`` (at most ``length``) around ``span``, shifted to stay inside the image."""
    size = min(size, length)
    start = min(max(0, span[0] - (size - (span[1] - span[0])) // 2), length - size)
    return start, start + size


def tiled_gradient(net: FeatureNet, x: torch.Tensor, objective: Objective, tile: int, amp_dtype=None,
                   overlap: int = TILE_OVERLAP) -> torch.Tensor:  # fmt: skip
    """d objective / d x computed tile by tile: peak memory is that of one tile's forward.

    Each tile's forward sees a window ``overlap`` pixels wider on every side (shifted inward
    at the image's borders, so every window has the same shape: one compiled graph); its
    gradient is kept only inside the tile. The objective is evaluated per window, so each
    window's gradient is weighted by its share of the image's area: the sum then
    approximates the gradient of the whole image's mean (exactly so for one tile).
    """
    height, width = x.shape[-2:]
    rows, cols = _spans(height, tile), _spans(width, tile)
    win_h = max(b - a for a, b in rows) + 2 * overlap
    win_w = max(b - a for a, b in cols) + 2 * overlap
    g = torch.zeros_like(x)
    for y0, y1 in rows:
        ya, yb = _window((y0, y1), win_h, height)
        for x0, x1 in cols:
            xa, xb = _window((x0, x1), win_w, width)
            gt = gradient(net, x[:, :, ya:yb, xa:xb], objective, amp_dtype)
            if (yb - ya, xb - xa) != (height, width):
                gt = gt * ((yb - ya) * (xb - xa) / (height * width))
            g[:, :, y0:y1, x0:x1] = gt[:, :, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return g


LAPLACIAN_LEVELS = 4  # the tutorials' scale_n


@functools.lru_cache(maxsize=32)
def _binomial_kernel(channels: int, device, dtype) -> torch.Tensor:
    """The 5x5 binomial blur ([1 4 6 4 1] outer itself / 256), one per channel (depthwise);
    made once per device and dtype (an upload per use would make the host wait, 4 per step)."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    k = torch.outer(k, k) / 256.0
    return k.expand(channels, 1, 5, 5).contiguous()


def laplacian_split(x: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> list[torch.Tensor]:
    """``x`` as ``levels`` Laplacian bands, finest first; :func:`laplacian_merge` inverts it."""
    k = _binomial_kernel(x.shape[1], x.device, x.dtype)
    bands = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 2:
            break
        low = F.conv2d(x, k, stride=2, padding=2, groups=x.shape[1])
        pad = (x.shape[-2] % 2 == 0, x.shape[-1] % 2 == 0)  # the transpose's output padding for even sides
        up = F.conv_transpose2d(low, 4 * k, stride=2, padding=2, output_padding=tuple(map(int, pad)), groups=x.shape[1])
        bands.append(x - up)
        x = low
    return [*bands, x]


def laplacian_merge(bands: list[torch.Tensor]) -> torch.Tensor:
    """The image whose :func:`laplacian_split` is ``bands``."""
    x = bands[-1]
    for band in reversed(bands[:-1]):
        k = _binomial_kernel(x.shape[1], x.device, x.dtype)
        pad = (band.shape[-2] % 2 == 0, band.shape[-1] % 2 == 0)
        x = band + F.conv_transpose2d(x, 4 * k, stride=2, padding=2, output_padding=tuple(map(int, pad)),
                                      groups=x.shape[1])  # fmt: skip
    return x


def laplacian_normalize(g: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> torch.Tensor:
    """Each Laplacian band of ``g`` divided by its RMS, summed again (lucid's ``lap_normalize``)."""
    return laplacian_merge([b / b.square().mean().sqrt().clamp(min=1e-10) for b in laplacian_split(g, levels)])


GRADIENT_NORMS = ("mean", "laplacian")


def gradient_step(net: FeatureNet, x: torch.Tensor, objective: Objective, step: float, amp_dtype=None,
                  tile: int | None = None, norm: str = "mean") -> torch.Tensor:  # fmt: skip
    """One normalised gradient-ascent step on ``x`` (no jitter); tiled when ``tile`` is set.

    ``norm``: ``mean`` divides the gradient by its mean absolute value; ``laplacian`` first
    normalises its Laplacian bands (:func:`laplacian_normalize`), then does the same, so
    ``step`` means image units per iteration either way."""
    if tile is None:
        g = gradient(net, x, objective, amp_dtype)
    else:
        g = tiled_gradient(net, x, objective, tile, amp_dtype)
    if norm == "laplacian":
        g = laplacian_normalize(g)
    elif norm != "mean":
        raise ValueError(f"unknown gradient norm {norm!r}; expected one of {', '.join(GRADIENT_NORMS)}")
    g = g / (g.abs().mean() + 1e-8)
    return (x.detach() + step * g).clamp_(0.0, 1.0)


AfterStep = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


def dream_octave(
    net: FeatureNet,
    x: torch.Tensor,
    objective: Objective,
    s: DreamSettings,
    generator: torch.Generator,
    after_step: AfterStep | None = None,
) -> torch.Tensor:
    """``s.iterations`` jittered steps at one scale (:func:`gradient_step`, tiled by ``s.tile``).

    ``after_step(x, (dy, dx))``, if given, runs after every step on ``x`` as it stands: at this
    octave's size and rolled by ``(dy, dx)`` (e.g. :func:`dreamvid.pixels.flow.pull_toward`).
    """
    oy = ox = 0  # current roll of x
    for _ in range(s.iterations):
        if s.jitter > 0:
            ny, nx = torch.randint(-s.jitter, s.jitter + 1, (2,), generator=generator).tolist()
            x = _roll(x, (ny - oy, nx - ox))
            oy, ox = ny, nx
        x = gradient_step(net, x, objective, s.step, s.amp_dtype, tile=s.tile, norm=s.gradient_norm)
        if after_step is not None:
            x = after_step(x, (oy, ox))
    return _roll(x, (-oy, -ox)) if (oy or ox) else x


def _roll(x: torch.Tensor, shifts: tuple[int, int]) -> torch.Tensor:
    """``torch.roll`` over height and width, keeping ``x``'s channels_last layout: on CUDA the
    roll returns NCHW, which would give the network a second layout to trace and run (and
    compile) from the first jitter on. Only the layout changes, never a value."""
    out = torch.roll(x, shifts, (2, 3))
    if x.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def dream(
    net: FeatureNet,
    image: torch.Tensor,
    objective: Objective,
    settings: DreamSettings,
    generator: torch.Generator,
    after_step: AfterStep | None = None,
) -> torch.Tensor:
    """Dream ``image`` (1, 3, H, W) in [0, 1]; returns a new tensor of the same shape.

    ``after_step``: see :func:`dream_octave` (a video frame's temporal term).
    """
    height, width = image.shape[-2:]
    sizes = octave_sizes(height, width, settings.octaves, settings.octave_scale)
    detail = None
    for size in sizes:
        base = _resize(image, size)
        x = base if detail is None else (base + _resize(detail, size)).clamp_(0.0, 1.0)
        x = dream_octave(net, x, objective, settings, generator, after_step)
        detail = x - base
    return x


# ----------------------------------------------------------------------------------------
# Speed settings per device (measured in docs/performance.md)


def speed_setup(net: FeatureNet, device: torch.device, compile: str | bool = "auto", precision: str = "auto"):
    """``(amp_dtype, step_net)`` for dreaming on ``device`` with ``net`` (already channels_last).

    ``precision`` (auto, fp32, bf16; :mod:`.precision`) gives the autocast dtype of the
    forward: bf16 on CUDA cards with bf16 arithmetic, and on CPUs where it is native and
    measured faster; the image, its update and the loss stay fp32. bf16 also halves
    activation memory (1080p with 4 octaves fits in 8 GiB). CUDA: cudnn picks its fastest
    kernels per shape (``cudnn.benchmark``), and the network is compiled unless ``compile``
    is False (:func:`compiled`). CPU: eager unless ``compile`` is True (compiled steps were
    1.36x slower on 2 cores and a cold compile takes minutes; docs/performance.md).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = choose_precision(precision, device).amp_dtype
    use = device.type == "cuda" if compile == "auto" else bool(compile)
    return amp_dtype, (compiled(net, cuda_graphs=device.type == "cuda") if use else net)


RECOMPILE_LIMIT = 64  # graphs per network (shapes x layer sets x modes); dynamo's default 8 is soon reached


def compiled(net: FeatureNet, cuda_graphs: bool = False) -> Callable:
    """``net`` compiled with ``torch.compile(dynamic=False)``: one static graph per image size.

    ``cuda_graphs``: ``mode="reduce-overhead"``, which replays each step's kernels as one
    CUDA graph (3.3 vs 6.4 ms per 1080p step on an H200). It is safe here: the step's
    shapes are static per octave and tile, and nothing inside it syncs with the host (the
    jitter comes from a CPU generator). Each call marks a new step, so the graph may reuse
    the previous step's outputs, which the step no longer holds.

    The compiled network is kept with ``net``, one per mode: a batch worker renders many
    videos with one network (:func:`dreamvid.rendering.loop.load_network`), and dynamo keeps a
    graph per input shape in it, so only a worker's first video of each shape compiles.
    """
    import torch._dynamo

    config = torch._dynamo.config
    if getattr(config, "recompile_limit", RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
        config.recompile_limit = RECOMPILE_LIMIT
    modes = net.__dict__.setdefault(COMPILED, {})  # a plain attribute, not a submodule
    mode = "reduce-overhead" if cuda_graphs else None
    if mode in modes and modes[mode] is None:  # it failed in this process: the next simpler one
        return compiled(net) if cuda_graphs else net
    if mode not in modes:
        fn = torch.compile(net, dynamic=False, mode=mode)
        modes[mode] = _GraphSteps(fn) if cuda_graphs else fn
    return modes[mode]


def fallback(step_net: Callable, net: FeatureNet) -> tuple[Callable, str]:
    """The next simpler network after ``step_net`` failed: CUDA graphs -> plain compiled ->
    eager ``net``; and how the render continues, for the warning. The failed one is not
    tried again in this process (a batch worker's next videos start from the simpler one)."""
    modes = net.__dict__.get(COMPILED, {})
    for mode, fn in modes.items():
        if fn is step_net:
            modes[mode] = None
    if isinstance(step_net, _GraphSteps):
        return compiled(net), "compiled without CUDA graphs"
    return net, "without it"


def compile_mode(step_net: Callable, net: FeatureNet) -> str:
    """How ``step_net`` runs ``net``: "eager", "compiled" or "cuda graphs" (for checkpoints'
    numerics: each gives other last bits)."""
    if step_net is net:
        return "eager"
    return "cuda graphs" if isinstance(step_net, _GraphSteps) else "compiled"


def is_compile_failure(err: BaseException) -> bool:
    """Whether ``err`` is torch.compile failing (dynamo, inductor, a missing compiler, CUDA graph
    trees), which a simpler mode may avoid, rather than a failure of the step itself: out of
    memory (wrapped or not) and CUDA errors go through, to the out-of-memory handling or the
    user, and are never retried in another mode."""
    chain = list(causes(err))
    if is_out_of_memory(err) or any(_is_cuda_error(e) for e in chain):
        return False
    return any(type(e).__module__.startswith(_COMPILER_MODULES) for e in chain) or _raised_in_compiler(err)


_COMPILER_MODULES = ("torch._dynamo", "torch._inductor")  # their errors: BackendCompilerFailed, Unsupported, ...


def _is_cuda_error(err: BaseException) -> bool:
    return type(err).__name__ == "AcceleratorError" or "CUDA error" in str(err) or "CUDA driver error" in str(err)


def _raised_in_compiler(err: BaseException) -> bool:
    """An untyped error (an AssertionError of CUDA graph trees off the main thread, say) raised
    inside dynamo or inductor themselves."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename.replace("\\", "/") if tb is not None else ""
    return "/torch/_dynamo/" in where or "/torch/_inductor/" in where


class _GraphSteps:
    """A CUDA-graph compiled network that marks each call as a new step."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, x: torch.Tensor, layers):
        torch.compiler.cudagraph_mark_step_begin()
        return self.fn(x, layers)

    @staticmethod
    def release() -> None:
        """Free the recorded graphs and their memory pool (``empty_cache`` does not): they are
        recorded again, for the shapes then used, at the next calls."""
        from torch._inductor.cudagraph_trees import reset_cudagraph_trees

        reset_cudagraph_trees()


# ----------------------------------------------------------------------------------------
# Fitting a frame into the device's memory

# Bytes of device memory per image pixel that one gradient step at mixed3 needs (activations
# kept for the backward, with the allocator's slack). Measured on an H200 at 1080p: 1.7 GiB
# fp32, 1.0 GiB bf16 for 2.07 Mpx; rounded up, as cudnn workspaces come on top.
BYTES_PER_PIXEL = {None: 1000, torch.bfloat16: 600, torch.float16: 600}


def auto_tile(shape: tuple[int, int], device: torch.device, amp_dtype=None) -> int | None:
    """The tile side for ``tile: auto``: None (no tiling) when the whole image fits in the
    free device memory, else the largest tile that does. Never tiles on the CPU."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached, reusable
    budget = 0.8 * free / BYTES_PER_PIXEL.get(amp_dtype, 1000)  # pixels
    height, width = shape
    if height * width <= budget:
        return None
    return max(MIN_TILE, int(math.sqrt(budget)) // 32 * 32)


# ``tile: auto`` remembers the tile side that fitted after an out-of-memory retry, per device,
# frame shape and precision: the next videos of a batch worker (one process renders video
# after video) start from it instead of failing again.
_FITTED: dict[tuple, int] = {}


def forget_fitted_tiles() -> None:
    """Forget what ``tile: auto`` learnt in this process (for tests and benchmarks)."""
    _FITTED.clear()


def _fitted_key(shape: tuple[int, int], device: torch.device, amp_dtype) -> tuple:
    return (str(device), tuple(shape), amp_dtype)


@dataclass
class AutoTile:
    """``tile: auto`` as one render decides it: the tile side its frames are dreamed with (None:
    whole frames), decided once (:meth:`decide`, or from a checkpoint) so that a frame near
    the memory limit does not switch between tiled and whole mid-render or on a resume, and
    lowered only by an out-of-memory retry (:func:`dream_frame`)."""

    side: int | None

    @classmethod
    def decide(cls, shape: tuple[int, int], device: torch.device, amp_dtype=None) -> AutoTile:
        """What fitted before in this process for this shape, else from the free memory (:func:`auto_tile`)."""
        key = _fitted_key(shape, device, amp_dtype)
        return cls(_FITTED[key] if key in _FITTED else auto_tile(shape, device, amp_dtype))


def dream_frame(net, image, objective, settings: DreamSettings, new_generator: Callable[[], torch.Generator],
                tile: int | str | AutoTile | None = "auto", after_step: AfterStep | None = None) -> torch.Tensor:  # fmt: skip
    """:func:`dream` one frame, fitting it into device memory (``after_step``: see :func:`dream_octave`).

    ``tile``: an integer (always tile with that side), None (never tile: an out-of-memory
    error becomes a one-line :class:`DreamvidError`), an :class:`AutoTile` (a render's
    decision; an out-of-memory lowers it) or ``"auto"`` (decided for this frame alone).
    Auto tiles only when the frame does not fit; on out-of-memory it frees the cache (and a
    CUDA-graph network's recorded graphs, whose memory pool the cache does not hold) and
    retries the frame with tiles half as big each time, down to :data:`MIN_TILE`; the side
    that fitted is kept for the render and for later renders of that shape in this process.
    ``new_generator()`` gives the frame's random stream afresh, so a retried frame uses the
    same jitter as a first try.
    """
    if tile == "auto":
        tile = AutoTile.decide(tuple(image.shape[-2:]), image.device, settings.amp_dtype)
    side = tile.side if isinstance(tile, AutoTile) else tile
    while True:
        try:
            extra = {} if after_step is None else {"after_step": after_step}
            out = dream(net, image, objective, replace(settings, tile=side), new_generator(), **extra)
            if isinstance(tile, AutoTile) and side != tile.side:
                tile.side = _FITTED[_fitted_key(tuple(image.shape[-2:]), image.device, settings.amp_dtype)] = side
            return out
        except Exception as err:  # GPU out of memory is handled below, anything else raised
            if out_of_memory_kind(err) != "GPU":
                raise
        # handled here, outside the except block, whose traceback holds the failed try's tensors
        _free_after_out_of_memory(net, image.device)
        side = _smaller_tile(image, side, settings, auto=isinstance(tile, AutoTile))


def _free_after_out_of_memory(net, device: torch.device) -> None:
    if isinstance(net, _GraphSteps):
        net.release()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _smaller_tile(image: torch.Tensor, side: int | None, settings: DreamSettings, auto: bool) -> int:
    """The tile side to retry with after an out-of-memory at ``side``; the one-line error when
    there is none (a fixed tile, or auto below :data:`MIN_TILE`)."""
    size = f"{image.shape[-1]}x{image.shape[-2]}"
    if not auto:
        where = "without tiles" if side is None else f"in tiles of {side} px"
        raise DreamvidError(out_of_memory_message("GPU", f"dreaming a {size} frame {where}", "set `tile: auto` "
                                                  "in the schedule (or a smaller tile, or a smaller size)"))
    side = max(image.shape[-2:]) // 2 if side is None else side // 2
    if side < MIN_TILE:
        raise DreamvidError(out_of_memory_message("GPU", f"dreaming a {size} frame even in tiles of {MIN_TILE} px",
                                                  "free GPU memory or choose a smaller size"))
    return side
