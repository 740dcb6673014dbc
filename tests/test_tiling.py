"""Gradient tiles (schedule key ``tile``) and the out-of-memory retry in dream_frame."""

import pytest
import torch

import dreamvid.engine.ascent as dream_module
from dreamvid.core.errors import DreamvidError
from dreamvid.engine.ascent import DreamSettings, dream, dream_frame, gradient, gradient_step, tiled_gradient
from dreamvid.engine.model import load_model
from dreamvid.engine.objectives import layer
from dreamvid.schedule.schedule import ScheduleError, load_schedule

from .conftest import write_schedule

OBJ = layer("mixed3")


@pytest.fixture(scope="module")
def fast_net():
    return load_model().to(memory_format=torch.channels_last)  # its own: .to() would change the shared `net`


def test_one_tile_equals_untiled_exactly(fast_net, photo_tensor):
    g = gradient(fast_net, photo_tensor, OBJ)
    assert torch.equal(tiled_gradient(fast_net, photo_tensor, OBJ, tile=128), g)
    assert torch.equal(tiled_gradient(fast_net, photo_tensor, OBJ, tile=500), g)
    a = gradient_step(fast_net, photo_tensor, OBJ, 0.02)
    assert torch.equal(gradient_step(fast_net, photo_tensor, OBJ, 0.02, tile=128), a)


def test_small_tiles_dream_close_to_untiled(fast_net, photo_tensor):
    g = gradient(fast_net, photo_tensor, OBJ)
    gt = tiled_gradient(fast_net, photo_tensor, OBJ, tile=64)  # 4 tiles of 64, each seen in a 96 px window
    cos = torch.nn.functional.cosine_similarity(g.flatten(), gt.flatten(), dim=0).item()
    assert 0.6 < cos < 0.999  # mostly the same direction (measured 0.97), not the same computation
    s = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=16)
    untiled = dream(fast_net, photo_tensor, OBJ, s, torch.Generator().manual_seed(1))
    s64 = DreamSettings(3, 0.02, 1, 1.4, 16, tile=64)
    tiled = dream(fast_net, photo_tensor, OBJ, s64, torch.Generator().manual_seed(1))
    assert torch.isfinite(tiled).all()
    change = (tiled - photo_tensor).abs().mean().item()
    assert change > 0.01  # it dreams
    assert 0 < (tiled - untiled).abs().mean().item() < change  # moderately different


def test_tiles_have_no_slivers_and_windows_one_shape():
    spans = dream_module._spans(1080, 512)
    assert spans == [(0, 360), (360, 720), (720, 1080)]
    assert dream_module._spans(100, 512) == [(0, 100)]
    windows = [dream_module._window(s, 392, 1080) for s in spans]  # 360 + 2 x 16 of context
    assert windows == [(0, 392), (344, 736), (688, 1080)]  # shifted inward at the borders


def test_speed_setup_on_cpu_changes_nothing(fast_net):
    assert dream_module.speed_setup(fast_net, torch.device("cpu"), precision="fp32") == (None, fast_net)


def _fake_dream(tries, fits_below):
    def fake(net, image, objective, settings, generator):
        tries.append((settings.tile, generator.initial_seed()))
        if settings.tile is None or settings.tile >= fits_below:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return image

    return fake


def test_oom_with_auto_retries_with_smaller_tiles(monkeypatch):
    tries = []
    monkeypatch.setattr(dream_module, "dream", _fake_dream(tries, fits_below=400))
    image = torch.zeros(1, 3, 1080, 1920)
    out = dream_frame(None, image, OBJ, DreamSettings(), lambda: torch.Generator().manual_seed(7), tile="auto")
    assert out is image
    assert [t for t, _ in tries] == [None, 960, 480, 240]  # halved until it fits
    assert {seed for _, seed in tries} == {7}  # each try from the frame's own random stream


def test_oom_without_tiling_is_one_line_error(monkeypatch):
    monkeypatch.setattr(dream_module, "dream", _fake_dream([], fits_below=0))
    with pytest.raises(DreamvidError, match="tile: auto") as e:
        dream_frame(None, torch.zeros(1, 3, 64, 64), OBJ, DreamSettings(), torch.Generator, tile=None)
    assert "\n" not in str(e.value)
    with pytest.raises(DreamvidError, match="even in tiles of 128"):  # auto gives up below MIN_TILE
        dream_frame(None, torch.zeros(1, 3, 300, 300), OBJ, DreamSettings(), torch.Generator, tile="auto")


def test_auto_never_tiles_on_cpu():
    assert dream_module.auto_tile((4320, 7680), torch.device("cpu")) is None


@pytest.mark.parametrize("value", [64, 0, "big", 1.5, True, [256]])
def test_tile_key_validates(tmp_path, value):
    path = write_schedule(tmp_path, tile=value)
    with pytest.raises(ScheduleError) as e:
        load_schedule(path)
    assert str(e.value).count("\n") == 0 and ": tile: " in str(e.value)


@pytest.mark.parametrize("value", [None, "auto", 128, 512])
def test_tile_key_accepts(tmp_path, value):
    assert load_schedule(write_schedule(tmp_path, tile=value)).tile == value


def test_compile_key_validates(tmp_path):
    assert load_schedule(write_schedule(tmp_path)).compile == "auto"
    assert load_schedule(write_schedule(tmp_path, compile=False)).compile is False
    with pytest.raises(ScheduleError, match=": compile: got 'yes'"):
        load_schedule(write_schedule(tmp_path, compile="yes"))


def test_failed_compile_falls_back_to_eager(tmp_path):
    from dreamvid.rendering.step import Dreamer

    warnings = []
    dreamer = Dreamer(load_schedule(write_schedule(tmp_path)), load_model(device="cpu"), on_warning=warnings.append)
    expected = dreamer.next_frame(dreamer.first_frame(), 1)

    dreamer.step_net = compile_failing()
    assert torch.equal(dreamer.next_frame(dreamer.first_frame(), 1), expected)
    assert dreamer.step_net is dreamer.net and "torch.compile failed" in warnings[0]


def compile_failing(inner: BaseException | None = None):
    """A network whose torch.compile fails as a missing compiler makes it fail: dynamo wraps
    the backend's error (``inner``, a RuntimeError by default) in BackendCompilerFailed."""
    def backend(gm, example_inputs):
        raise inner or RuntimeError("no C++ compiler (simulated)")

    fn = torch.compile(lambda x: x * 2, backend=backend)
    return lambda x, layers: fn(x)


def test_auto_keeps_the_tile_that_fitted_for_later_frames_and_videos(monkeypatch):
    """Once a frame had to be retried in tiles, later frames of the same shape, precision and
    device start with the tile that fitted: one try each, in this video and the next one
    a batch worker renders (a per-process memory)."""
    tries = []
    monkeypatch.setattr(dream_module, "dream", _fake_dream(tries, fits_below=400))
    for frame in range(3):
        dream_frame(None, torch.zeros(1, 3, 1080, 1920), OBJ, DreamSettings(), torch.Generator, tile="auto")
    assert [t for t, _ in tries] == [None, 960, 480, 240, 240, 240]
    tries.clear()  # another shape or precision has its own
    dream_frame(None, torch.zeros(1, 3, 1080, 1080), OBJ, DreamSettings(), torch.Generator, tile="auto")
    dream_frame(None, torch.zeros(1, 3, 1080, 1920), OBJ, DreamSettings(amp_dtype=torch.bfloat16), torch.Generator,
                tile="auto")  # fmt: skip
    assert [t for t, _ in tries] == [None, 540, 270, None, 960, 480, 240]
    tries.clear()
    with pytest.raises(DreamvidError):  # an explicit setting is not overridden by what auto learnt
        dream_frame(None, torch.zeros(1, 3, 1080, 1920), OBJ, DreamSettings(), torch.Generator, tile=None)
    assert [t for t, _ in tries] == [None]
