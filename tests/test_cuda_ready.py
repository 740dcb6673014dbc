"""What a CUDA render depends on, checked on the CPU (issue 34): which errors the compile
fallback takes, the out-of-memory classifier, ``tile: auto`` decided once per render and kept
by its checkpoints, the CUDA graphs dropped before an out-of-memory retry."""

from dataclasses import replace

import pytest
import torch

from dreamvid.core.errors import DreamvidError, is_out_of_memory, out_of_memory_message
from dreamvid.engine import ascent
from dreamvid.engine.ascent import AutoTile, DreamSettings, dream_frame, is_compile_failure
from dreamvid.engine.objectives import layer
from dreamvid.rendering.checkpoint import Checkpoint
from dreamvid.rendering.step import Dreamer
from dreamvid.schedule.schedule import load_schedule

from .conftest import write_schedule
from .test_tiling import compile_failing

CUDNN = "cuDNN error: CUDNN_STATUS_ALLOC_FAILED"
CUBLAS = "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
ILLEGAL = "CUDA error: an illegal memory access was encountered"


def _wrapped(inner: BaseException, how: str) -> BaseException:
    """``inner`` as an error that wraps it: raised from it, raised while handling it, or a
    compile failure that hit it (dynamo's BackendCompilerFailed)."""
    if how == "compile":
        try:
            compile_failing(inner)(torch.ones(2), ())
        except Exception as e:  # noqa: BLE001 - whatever dynamo wraps it in
            return e
    try:
        try:
            raise inner
        except BaseException as e:
            if how == "cause":
                raise RuntimeError("step failed") from e
            raise RuntimeError("step failed")  # the context is the point
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("text", [CUDNN, CUBLAS, "CUDA error: out of memory", "CUDA out of memory. Tried to allocate"])
def test_gpu_allocation_failures_are_out_of_memory_however_wrapped(text):
    err = RuntimeError(text)
    assert is_out_of_memory(err)
    assert out_of_memory_message(err).startswith("out of GPU memory")
    for how in ("cause", "context", "compile"):
        wrapped = _wrapped(RuntimeError(text), how)
        assert is_out_of_memory(wrapped), how
        assert out_of_memory_message(wrapped).startswith("out of GPU memory")
        assert not is_compile_failure(wrapped)  # to the out-of-memory handling, not to a simpler mode


def test_other_errors_are_not_out_of_memory():
    assert not is_out_of_memory(RuntimeError(ILLEGAL))
    assert not is_out_of_memory(_wrapped(ValueError("bad"), "cause"))
    assert is_out_of_memory(MemoryError()) and out_of_memory_message(MemoryError()).startswith("out of CPU memory")


def test_only_what_compiling_raises_is_a_compile_failure():
    assert is_compile_failure(_wrapped(RuntimeError("no C++ compiler"), "compile"))
    assert not is_compile_failure(_wrapped(RuntimeError(ILLEGAL), "compile"))  # CUDA's own error, even inside
    assert not is_compile_failure(RuntimeError(ILLEGAL))
    assert not is_compile_failure(RuntimeError("inductor: something"))  # words alone are not a compile error
    assert not is_compile_failure(ValueError("a bug of ours"))


@pytest.fixture()
def dreamer(tmp_path):
    d = Dreamer(load_schedule(write_schedule(tmp_path)), _net())
    d.first = d.first_frame()
    return d


_NET = []


def _net():
    from dreamvid.engine.model import load_model

    if not _NET:
        _NET.append(load_model(device="cpu"))
    return _NET[0]


def _failing_step(err: BaseException, calls: list):
    def step(x, layers):
        calls.append(1)
        raise err

    return step


@pytest.mark.parametrize("message", [ILLEGAL, "CUDA error: device-side assert triggered"])
def test_a_cuda_error_in_a_compiled_step_is_raised_once_and_keeps_the_mode(dreamer, message):
    warnings, calls = [], []
    dreamer.on_warning = warnings.append
    compiled = dreamer.step_net = _failing_step(RuntimeError(message), calls)
    with pytest.raises(RuntimeError, match="illegal memory|device-side"):
        dreamer.next_frame(dreamer.first, 1)
    assert calls == [1]  # not rerun in a simpler mode
    assert dreamer.step_net is compiled and warnings == [] and dreamer.compile_fallback is None


def test_out_of_memory_in_a_compiled_step_goes_to_the_tiles_not_the_fallback(dreamer):
    warnings, calls = [], []
    dreamer.on_warning = warnings.append
    dreamer.schedule = replace(dreamer.schedule, tile=None)
    compiled = dreamer.step_net = _failing_step(RuntimeError(CUDNN), calls)
    with pytest.raises(DreamvidError, match="out of GPU memory"):
        dreamer.next_frame(dreamer.first, 1)
    assert calls == [1] and dreamer.step_net is compiled and warnings == []


def test_a_compile_failure_falls_back_once_and_the_checkpoint_says_so(dreamer):
    warnings = []
    dreamer.on_warning = warnings.append
    expected = dreamer.next_frame(dreamer.first, 1)
    dreamer.step_net = compile_failing()
    assert torch.equal(dreamer.next_frame(dreamer.first, 1), expected)
    assert len(warnings) == 1 and "BackendCompilerFailed" in warnings[0]
    numerics = dreamer.numerics()
    assert numerics["compile"] == "eager" and "BackendCompilerFailed" in numerics["compile_fallback"]


# -- tile: auto, once per render ------------------------------------------------------------


def test_auto_tile_is_decided_once_per_render_and_recorded(dreamer, monkeypatch):
    """The free memory changes from frame to frame; the render keeps its first decision."""
    free = iter([None, 256, None, 512])
    asked = []
    monkeypatch.setattr(ascent, "auto_tile", lambda shape, device, dtype=None: asked.append(shape) or next(free))
    sides = []
    real = ascent.dream

    def spy(net, image, objective, settings, generator, **kw):
        sides.append(settings.tile)
        return real(net, image, objective, settings, generator, **kw)

    monkeypatch.setattr(ascent, "dream", spy)
    frame = dreamer.first
    for n in range(1, 4):
        frame = dreamer.next_frame(frame, n)
    assert asked == [(64, 96)] and sides == [None, None, None]
    assert dreamer.numerics()["tile"] == 0  # whole frames, as recorded in its checkpoints


def _checkpoint(numerics):
    return Checkpoint(3, torch.zeros(1, 3, 64, 96), (), (), {}, [], numerics)


def test_a_resume_dreams_with_the_recorded_tiles(tmp_path, monkeypatch):
    monkeypatch.setattr(ascent, "auto_tile", lambda *a, **k: pytest.fail("decided again on a resume"))
    d = Dreamer(load_schedule(write_schedule(tmp_path)), _net())
    d.continue_from(_checkpoint({"device": "cpu", "precision": "fp32", "tile": 128}))
    assert d.tile.side == 128 and d.numerics()["tile"] == 128
    d = Dreamer(load_schedule(write_schedule(tmp_path)), _net())
    d.continue_from(_checkpoint({"device": "cpu", "precision": "fp32", "tile": 0}))
    assert d.tile.side is None


def test_a_checkpoint_without_the_tile_decides_as_before(tmp_path):
    """Checkpoints of 0.1.0 and later releases before the key: auto decides again (on the
    CPU: whole frames, as then)."""
    assert _checkpoint({"device": "cpu", "threads": 2}).tile_side is None
    assert _checkpoint(None).tile_side is None
    d = Dreamer(load_schedule(write_schedule(tmp_path)), _net())
    d.continue_from(_checkpoint({"device": "cpu", "threads": 2}))
    assert d.tile.side is None


def test_out_of_memory_lowers_the_renders_tile_and_later_frames_keep_it(monkeypatch):
    tries = []

    def fake(net, image, objective, settings, generator):
        tries.append(settings.tile)
        if settings.tile is None or settings.tile >= 400:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return image

    monkeypatch.setattr(ascent, "dream", fake)
    tile = AutoTile(None)
    for _ in range(2):
        dream_frame(None, torch.zeros(1, 3, 1080, 1920), layer("mixed3"), DreamSettings(), torch.Generator, tile=tile)
    assert tries == [None, 960, 480, 240, 240] and tile.side == 240


def test_out_of_memory_with_cuda_graphs_drops_the_graphs_before_the_retry(monkeypatch):
    """``empty_cache`` does not free a CUDA graph pool: the retry must release the graphs first."""
    import torch._inductor.cudagraph_trees as trees

    events = []
    monkeypatch.setattr(trees, "reset_cudagraph_trees", lambda: events.append("release"))

    def fake(net, image, objective, settings, generator):
        events.append(f"try {settings.tile}")
        if settings.tile is None:
            raise RuntimeError(CUDNN)
        return image

    monkeypatch.setattr(ascent, "dream", fake)
    graphs = ascent._GraphSteps(lambda x, layers: x)
    dream_frame(graphs, torch.zeros(1, 3, 512, 512), layer("mixed3"), DreamSettings(), torch.Generator, tile="auto")
    assert events == ["try None", "release", "try 256"]
    events.clear()
    dream_frame(lambda x, layers: x, torch.zeros(1, 3, 512, 600), layer("mixed3"), DreamSettings(), torch.Generator,
                tile="auto")  # fmt: skip
    assert events == ["try None", "try 300"]  # no graphs, nothing to release


# -- no host syncs in a frame --------------------------------------------------------------

# aten ops that make the host wait for the device on CUDA: a scalar read (.item(), bool(), an
# `if` on a tensor) or an output whose shape depends on the data
SYNC_OPS = {"_local_scalar_dense", "is_nonzero", "equal", "nonzero", "masked_select", "_unique", "_unique2",
            "unique_dim", "unique_consecutive", "item"}


class SyncCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts, on any device, what would make the host wait on CUDA: the ops above, an upload
    that is not ``non_blocking`` (``.to(device)`` from pageable memory waits for the queue) and a
    tensor made straight on a device from Python values (``torch.tensor(..., device=)``)."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.seen = []
        real_to, real_tensor = torch.Tensor.to, torch.tensor

        def to(t, *args, **kwargs):
            moves = any(isinstance(a, (torch.device, str)) for a in args) or "device" in kwargs
            if moves and not kwargs.get("non_blocking"):
                self.seen.append("blocking upload (.to)")
            return real_to(t, *args, **kwargs)

        def tensor(*args, **kwargs):
            if kwargs.get("device") is not None:
                self.seen.append("torch.tensor(device=)")
            return real_tensor(*args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", to)
        monkeypatch.setattr(torch, "tensor", tensor)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in SYNC_OPS:
            self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _mask(folder):
    import cv2
    import numpy as np

    mask = np.zeros((64, 96), np.uint8)
    mask[:, :48] = 255
    cv2.imwrite(str(folder / "mask.png"), mask)
    return "mask.png"


@pytest.mark.parametrize("extra", ["default", "laplacian", "mask", "clip_guard"])
def test_no_host_sync_in_a_frame_after_the_first(tmp_path, monkeypatch, extra):
    """The default path (colour: histogram with the saturation match, a camera move), and with
    gradient_norm: laplacian, a mask that follows the camera, a clip guard: after frame 1 (which
    builds the colour reference), a frame asks nothing of the device that makes the host wait.
    The NaN check is deferred there, as FrameSource does on CUDA."""
    over = {"laplacian": {"defaults": {"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.02, "zoom": 1.05,
                                       "gradient_norm": "laplacian"}},
            "mask": {"mask": _mask(tmp_path) if extra == "mask" else None},
            "clip_guard": {"defaults": {"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.02, "zoom": 1.05,
                                        "clip_guard": 0.02}}}.get(extra, {})  # fmt: skip
    tmp_path.mkdir(exist_ok=True)
    d = Dreamer(load_schedule(write_schedule(tmp_path, **over)), _net())
    d.checks.deferred = True
    frame = d.next_frame(d.first_frame(), 1)
    with SyncCounter(monkeypatch) as counter:
        for n in (2, 3):
            frame = d.next_frame(frame, n)
    assert counter.seen == []
    finite, errors = d.checks.take()
    assert finite.tolist() == [True] * 3 and len(errors) == 3  # the checks were made, for the copy to carry


def test_jitter_keeps_channels_last_where_roll_returns_nchw(monkeypatch):
    """torch.roll on CUDA returns NCHW: the network must still get channels_last at every step."""
    real = torch.roll
    monkeypatch.setattr(torch, "roll", lambda x, shifts, dims: real(x, shifts, dims).contiguous())  # as on CUDA
    layouts = []

    def net(x, layers):
        layouts.append(x.is_contiguous(memory_format=torch.channels_last))
        return {"mixed3": x.mean(1, keepdim=True)}

    x = torch.rand(1, 3, 48, 64).contiguous(memory_format=torch.channels_last)
    out = ascent.dream_octave(net, x, layer("mixed3"), DreamSettings(iterations=3, jitter=4), torch.Generator())
    assert layouts == [True, True, True] and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("tail", [0.005, 0.2])
def test_clip_guard_by_sort_picks_the_same_values_as_kthvalue(tail):
    from dreamvid.pixels.colour import _tails

    image = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(2))
    image[0, 1, :5] = 0.5  # ties
    assert [t.item() for t in _tails(image, tail, by_sort=True)] == [t.item() for t in _tails(image, tail, by_sort=False)]


def _shares_by_unique(values: torch.Tensor, midpoint: bool) -> torch.Tensor:
    """Each value's cumulative share among ``values`` from torch.unique (the host waits for it)."""
    from dreamvid.pixels.colour import _quantiles

    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    return _quantiles(counts, values.numel(), values.dtype, midpoint)[inverse]


@pytest.mark.parametrize("midpoint", [False, True])
def test_histogram_shares_by_count_equal_the_unique_ones(midpoint):
    """The shares counted per level (no sort, no host sync) are bit for bit the torch.unique ones
    when no two distinct values share a level (here 51 values, ties many)."""
    from dreamvid.core import defaults as D
    from dreamvid.pixels.colour import _key_shares, _level_keys

    values = (torch.rand(1, 1, 40, 100, generator=torch.Generator().manual_seed(1)) * 50).round() / 50
    keys = _level_keys(values, D.HISTOGRAM_LEVELS).reshape(1, -1)
    shares = _key_shares(keys, D.HISTOGRAM_LEVELS, values.dtype, midpoint)[0][keys[0]]
    assert torch.equal(shares, _shares_by_unique(values.reshape(-1), midpoint))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saturation_match_by_count_equals_the_sort(dtype):
    """The saturation target counted per shown (max, min) pair is bit for bit the one a sort of the
    pixels' shown saturations gives (issue 31: linear time, no sort)."""
    from dreamvid.pixels import colour as C

    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 61, 67, generator=g, dtype=dtype) ** 2
    image[0, :, :4] = 0.5  # greys
    reference = C.Reference(torch.rand(1, 3, 30, 40, generator=g, dtype=dtype)).saturation
    shown = C.saturation(C.as_shown(image)).reshape(-1)
    for strength in (1.0, 0.6):
        q = _shares_by_unique(shown, midpoint=True)
        expected = C.blend(shown, C._interp(q, reference.quantiles[0], reference.values[0]), strength)
        assert torch.equal(C._matched_saturation(image, reference, strength).reshape(-1), expected)
    image[0, 0, 10, :5] = float("nan")  # the dream's finite check reports a NaN frame: the match must not fail first
    clean = C.Reference(image[:, :, 20:])
    for match, histogram in ((C.match_saturation, clean.saturation), (C.match_histogram, clean.histogram)):
        assert match(image, histogram, 1.0).shape == image.shape


def test_a_clips_per_frame_colour_reference_is_counted_without_a_host_sync(monkeypatch, photo):
    """With a video input and ``colour_reference: input`` the reference is the clip's frame n,
    new every frame (issue 34): its histograms are counted, not torch.unique'd, so building
    and using them makes no host wait; the maps equal the sorted reference's (the saturation's
    bit for bit, the channels' within their 2^14 levels)."""
    from types import SimpleNamespace

    from dreamvid.pixels import colour as C
    from dreamvid.pixels.images import fit, to_tensor
    from dreamvid.rendering.step import ClipReferences

    frames = [to_tensor(fit(photo, (64, 48))), to_tensor(fit(photo[::-1], (64, 48)))]
    schedule = SimpleNamespace(input_path=None)
    references = ClipReferences(schedule, lambda n: frames[n], lambda previous, n: None)
    p = SimpleNamespace(index=1, colour="histogram", colour_reference="input", colour_strength=0.75,
                        saturation_match=1.0, input_blend=0.0, smoothing=0.0, clip_guard=0.0)  # fmt: skip
    dreamed = (frames[0] * 1.1 - 0.05).clamp(0, 1)
    C.control(dreamed, dreamed, frames[0], references.get(SimpleNamespace(**{**vars(p), "index": 0}), dreamed), p)
    with SyncCounter(monkeypatch) as counter:  # frame 1, after frame 0 made the tables a process makes once
        reference = references.get(p, dreamed)
        out = C.control(dreamed, dreamed, frames[1], reference, p)
    assert counter.seen == [] and reference.counted
    sorted_reference = C.Reference(frames[1])
    assert torch.equal(C.match_saturation(dreamed, reference.saturation),
                       C.match_saturation(dreamed, sorted_reference.saturation))  # fmt: skip
    levels = C.match_histogram(dreamed, reference.histogram) - C.match_histogram(dreamed, sorted_reference.histogram)
    assert levels.abs().max().item() < 1e-3  # the reference's values stand on 2^14 levels
    assert (out - C.control(dreamed, dreamed, frames[1], sorted_reference, p)).abs().mean().item() < 1e-4
    assert (out - dreamed).abs().mean().item() > 1e-2  # matched to frame 1, not frame 0


def test_studio_previews_dream_without_compiling(tmp_path, monkeypatch):
    """Previews run in worker threads at several scales: no CUDA graphs, no graph per scale."""
    import threading

    import numpy as np

    import dreamvid
    from dreamvid.studio.previews import Previewer

    asked = []

    def frames(schedule, *, start, stop, **kw):
        asked.append((schedule.compile, threading.current_thread() is threading.main_thread()))
        yield from (np.zeros((8, 8, 3), np.uint8) for _ in range(start, stop))

    monkeypatch.setattr(dreamvid, "frames", frames)
    s = load_schedule(write_schedule(tmp_path, compile=True))
    worker = threading.Thread(target=lambda: Previewer().png(s, "k", 2, 0.5))
    worker.start()
    worker.join()
    assert asked == [(False, False)] and s.compile is True  # the schedule itself is left as it was


def test_a_resume_in_another_compile_mode_warns_and_old_checkpoints_do_not():
    from dreamvid.rendering.checkpoint import numerics, numerics_warning

    cpu = torch.device("cpu")
    saved = numerics(cpu, "fp32", compile="cuda graphs", tile=0, fallback=None)
    now = numerics(cpu, "fp32", compile="compiled", tile=0, fallback="BackendCompilerFailed: no compiler")
    assert "compile cuda graphs -> compiled" in numerics_warning(saved, now)
    assert numerics_warning(now, {**now, "compile_fallback": "another"}) is None  # the reason is not compared
    old = {"device": "cpu", "threads": torch.get_num_threads(), "precision": "fp32", "torch": str(torch.__version__)}
    assert numerics_warning(old, now) is None  # written before the keys existed


def test_the_installed_torch_is_in_the_declared_range():
    """pyproject.toml declares the torch and torchvision releases dreamvid is tested with; the
    lent GPUs' 2.11 is one of them (bench/device_check.sh --rehearse renders with it)."""
    import re
    from pathlib import Path

    import torchvision
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = dict(re.findall(r'^\s*"(torch|torchvision)([<>=!~][^"]*)",', text, re.MULTILINE))
    assert Version("2.11.0") in SpecifierSet(declared["torch"]) and Version("0.26.0") in SpecifierSet(declared["torchvision"])
    assert Version(torch.__version__.split("+")[0]) in SpecifierSet(declared["torch"])
    assert Version(torchvision.__version__.split("+")[0]) in SpecifierSet(declared["torchvision"])
