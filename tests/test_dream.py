import torch

from dreamvid.engine.ascent import DreamSettings, dream, dream_octave, gradient_step, octave_sizes
from dreamvid.engine.objectives import layer

FAST = DreamSettings(iterations=4, step=0.02, octaves=2, octave_scale=1.4, jitter=8)


def g(seed):
    return torch.Generator().manual_seed(seed)


def test_dreaming_raises_the_objective(net, photo_tensor):
    obj = layer("mixed3")
    out = dream(net, photo_tensor, obj, FAST, g(0))
    before = obj(net(photo_tensor, obj.layers)).item()
    after = obj(net(out, obj.layers)).item()
    assert after > 1.5 * before, (before, after)
    assert out.shape == photo_tensor.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert (out - photo_tensor).abs().mean() > 0.02  # the image visibly changed


def test_same_seed_same_image_different_seed_different(net, photo_tensor):
    obj = layer("mixed0")
    a = dream(net, photo_tensor, obj, FAST, g(1))
    b = dream(net, photo_tensor, obj, FAST, g(1))
    c = dream(net, photo_tensor, obj, FAST, g(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dream_does_not_touch_the_global_rng(net, photo_tensor):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dream(net, photo_tensor, layer("mixed0"), FAST, g(0))
    assert torch.equal(torch.rand(3), expected)


def test_single_roll_jitter_equals_roll_step_unroll(net, photo_tensor):
    """The one-roll-per-step jitter is the textbook roll, step, unroll."""
    s = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=16)
    obj = layer("mixed0")
    fast = dream_octave(net, photo_tensor, obj, s, g(5))
    gen, x = g(5), photo_tensor
    for _ in range(s.iterations):
        oy, ox = torch.randint(-s.jitter, s.jitter + 1, (2,), generator=gen).tolist()
        x = torch.roll(gradient_step(net, torch.roll(x, (oy, ox), (2, 3)), obj, s.step), (-oy, -ox), (2, 3))
    assert (fast - x).abs().max() < 1e-5


def test_no_parameter_gradients(net, photo_tensor):
    dream(net, photo_tensor, layer("mixed0"), FAST, g(0))
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_octave_sizes():
    assert octave_sizes(400, 300, 3, 2.0) == [(200, 150), (400, 300)]  # 100x75 is under 80 px
    assert octave_sizes(400, 320, 3, 2.0) == [(100, 80), (200, 160), (400, 320)]
    assert octave_sizes(100, 100, 4, 1.5) == [(100, 100)]  # smaller octaves would be < 80 px
