"""Colour control (dreamvid/colour.py): each operation against values computed by hand."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab
from skimage.exposure import match_histograms

from dreamvid.pixels import colour as C
from dreamvid.pixels.images import fit, to_tensor


def image(*channels):
    """(1, 3, 1, N) float64 tensor from three lists of N values."""
    return torch.tensor(channels, dtype=torch.float64)[None, :, None, :]


def grey_with_lightness(L):
    """sRGB grey value whose CIE L is ``L``, by the textbook formulas (not dreamvid's)."""
    f = (L + 16) / 116
    y = f**3 if f > 6 / 29 else (f - 16 / 116) / 7.787
    return 1.055 * y ** (1 / 2.4) - 0.055 if y > 0.0031308 else 12.92 * y


def test_lab_conversion_matches_skimage_and_round_trips():
    x = torch.rand(1, 3, 12, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[0, :, 0, :3] = torch.tensor([[0.0, 1.0, 0.5]] * 3)  # black, white, grey
    lab = C.rgb_to_lab(x)
    expected = rgb2lab(x[0].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(lab[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(C.lab_to_rgb(lab).numpy(), x.numpy(), atol=1e-6)
    some_lab = np.array([[[50.0, 20.0, -30.0], [80.0, -10.0, 40.0]]])
    np.testing.assert_allclose(C.lab_to_rgb(torch.from_numpy(some_lab).permute(2, 0, 1)[None])[0].permute(1, 2, 0),
                               lab2rgb(some_lab), atol=1e-6)  # fmt: skip


def test_lab_match_moves_mean_and_std_of_lightness():
    # black and white pixels: L = 0 and 100 (mean 50, std 50), a = b = 0
    source = image([0.0, 1.0], [0.0, 1.0], [0.0, 1.0])
    # reference greys with L = 25 and 75 (mean 50, std 25)
    g25, g75 = grey_with_lightness(25), grey_with_lightness(75)
    reference = C.Reference(image([g25, g75], [g25, g75], [g25, g75]))
    full = C.match_lab(source, reference.lab_stats, 1.0)
    np.testing.assert_allclose(full[0, :, 0].T.numpy(), [[g25] * 3, [g75] * 3], atol=1e-5)
    # half strength: target std 50 + 0.5 (25 - 50) = 37.5 -> L = 12.5 and 87.5
    half = C.match_lab(source, reference.lab_stats, 0.5)
    g12, g87 = grey_with_lightness(12.5), grey_with_lightness(87.5)
    np.testing.assert_allclose(half[0, :, 0].T.numpy(), [[g12] * 3, [g87] * 3], atol=1e-5)
    assert C.match_lab(source, reference.lab_stats, 0.0) is source


def test_lab_match_shifts_colour_means():
    red = image([0.6, 0.5], [0.4, 0.4], [0.4, 0.4])  # mild colours: the match stays in gamut
    blue = image([0.4, 0.4], [0.4, 0.45], [0.6, 0.5])
    out = C.match_lab(red, C.Reference(blue).lab_stats, 1.0)
    mean, std = C.channel_stats(C.rgb_to_lab(out))
    ref_mean, ref_std = C.Reference(blue).lab_stats
    np.testing.assert_allclose(mean.flatten(), ref_mean.flatten(), atol=0.05)
    np.testing.assert_allclose(std.flatten(), ref_std.flatten(), atol=0.05)


def test_histogram_match_on_two_value_images():
    # source values 0.2, 0.8 at cumulative shares 0.5, 1; reference quantiles 0.25, 0.5, 0.75, 1
    source = image([0.2, 0.2, 0.8, 0.8], [0.8, 0.8, 0.8, 0.2], [0.5] * 4)
    reference = C.histogram(image([0.1, 0.3, 0.5, 0.9], [0.1, 0.1, 0.1, 0.9], [0.0, 0.0, 1.0, 1.0]))
    out = C.match_histogram(source, reference)
    # R: share 0.5 -> 0.3, 1 -> 0.9; G: 0.2 at share 0.25 (below the reference's first
    # share 0.75) -> 0.1, 0.8 at share 1 -> 0.9; B: a single value at share 1 -> 1.0
    expected = [[0.3, 0.3, 0.9, 0.9], [0.9, 0.9, 0.9, 0.1], [1.0] * 4]
    np.testing.assert_allclose(out[0, :, 0].numpy(), expected, atol=1e-12)
    half = C.match_histogram(source, reference, 0.5)
    np.testing.assert_allclose(half.numpy(), (0.5 * source + 0.5 * out).numpy(), atol=1e-12)


def test_histogram_match_agrees_with_skimage():
    g = torch.Generator().manual_seed(1)
    source = torch.rand(1, 3, 9, 11, generator=g, dtype=torch.float64).mul(20).round() / 20  # ties
    reference = torch.rand(1, 3, 7, 13, generator=g, dtype=torch.float64) ** 2
    out = C.match_histogram(source, C.histogram(reference))
    expected = match_histograms(source[0].permute(1, 2, 0).numpy(), reference[0].permute(1, 2, 0).numpy(),
                                channel_axis=-1)  # fmt: skip
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1e-12)


def test_blend_arithmetic():
    a, b = image([0.0, 1.0], [0.4, 0.4], [1.0, 0.2]), image([1.0, 1.0], [0.0, 0.8], [0.2, 0.2])
    np.testing.assert_allclose(C.blend(a, b, 0.25)[0, :, 0].numpy(), [[0.25, 1.0], [0.3, 0.5], [0.8, 0.2]])
    assert C.blend(a, b, 0.0) is a
    np.testing.assert_allclose(C.blend(a, b, 1.0).numpy(), b.numpy())


def test_clip_guard_squeezes_only_frames_that_reach_the_ends():
    full = image([0.0, 0.5, 1.0], [0.25, 0.5, 0.75], [0.0, 0.0, 0.0])
    # range [0, 1] -> [0.1, 0.9]: 0.1 + 0.8 x
    np.testing.assert_allclose(C.clip_guard(full, 0.1)[0, :, 0].numpy(),
                               [[0.1, 0.5, 0.9], [0.3, 0.5, 0.7], [0.1, 0.1, 0.1]])  # fmt: skip
    inside = image([0.2, 0.5], [0.3, 0.6], [0.8, 0.9])
    np.testing.assert_allclose(C.clip_guard(inside, 0.1).numpy(), inside.numpy())
    # only the top reaches out: lo = margin stays, [0.1, 1] -> [0.1, 0.9]
    bright = image([0.1, 1.0], [0.55, 0.55], [0.1, 0.1])
    np.testing.assert_allclose(C.clip_guard(bright, 0.1)[0, :, 0].numpy(), [[0.1, 0.9], [0.5, 0.5], [0.1, 0.1]])
    assert C.clip_guard(full, 0.0) is full
    grey = image([0.0, 1.0], [0.0, 1.0], [0.0, 1.0])
    out = C.clip_guard(grey, 0.05)
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 1], out[0, 2])  # greys stay grey


def test_clip_guard_ignores_a_few_outlying_pixels():
    """The guard's range is the frame's 0.5th..99.5th percentile, not its darkest and brightest
    value: one hot (or dead) pixel must not squeeze the whole frame."""
    g = torch.Generator().manual_seed(5)
    x = 0.2 + 0.6 * torch.rand(1, 3, 40, 40, generator=g)  # inside [0.1, 0.9]: left alone
    hot = x.clone()
    hot[0, :, 7, 11] = 1.0  # one white pixel
    hot[0, 1, 30, 2] = 0.0  # one dead channel
    out = C.clip_guard(hot, 0.1)
    mask = torch.ones_like(hot, dtype=torch.bool)
    mask[0, :, 7, 11] = False
    mask[0, 1, 30, 2] = False
    torch.testing.assert_close(out[mask], x[mask], atol=1e-6, rtol=0)  # the rest is untouched
    assert out[0, 0, 7, 11] == pytest.approx(0.9) and out[0, 1, 30, 2] == pytest.approx(0.1)  # outliers clamped
    # a frame whose tails really reach out is still squeezed: 2 % of its values at 0 and 1
    wide = x.clone().flatten()
    wide[: wide.numel() // 50] = 0.0
    wide[-(wide.numel() // 50):] = 1.0
    out = C.clip_guard(wide.reshape(x.shape), 0.1)
    torch.testing.assert_close(out.flatten(), 0.1 + 0.8 * wide)  # range [0, 1] -> [0.1, 0.9], a squeeze


def params(**kw):
    base = dict(colour="none", colour_strength=0.0, saturation_match=0.0, input_blend=0.0, smoothing=0.0,
                clip_guard=0.0)
    return SimpleNamespace(**{**base, **kw})


def test_control_applies_blend_smoothing_and_guard_in_order():
    dreamed, moved, first = image([1.0], [0.0], [0.5]), image([0.0], [1.0], [0.5]), image([0.5], [0.5], [0.5])
    assert C.control(dreamed, moved, first, None, params()) is dreamed
    # input_blend 0.5: (0.75, 0.25, 0.5); smoothing 0.5 with moved: (0.375, 0.625, 0.5)
    out = C.control(dreamed, moved, first, None, params(input_blend=0.5, smoothing=0.5))
    np.testing.assert_allclose(out.flatten().numpy(), [0.375, 0.625, 0.5])
    # the guard runs last: dreamed alone spans [0, 1] -> [0.2, 0.8]
    out = C.control(dreamed, moved, first, None, params(clip_guard=0.2))
    np.testing.assert_allclose(out.flatten().numpy(), [0.8, 0.2, 0.5])
    # colour matching to a reference equal to the frame itself changes (almost) nothing
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for mode in ("lab", "histogram"):
        out = C.control(x, x, x, C.Reference(x), params(colour=mode, colour_strength=1.0))
        torch.testing.assert_close(out, x, atol=2e-3, rtol=0)


@pytest.mark.parametrize("mode", ["lab", "histogram"])
def test_colour_matching_keeps_shape_dtype_and_range(mode):
    x = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(3))
    ref = C.Reference(torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(4)) * 0.5)
    out = C.control(x, x, ref.image, ref, params(colour=mode, colour_strength=1.0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert abs(out.mean().item() - ref.image.mean().item()) < 0.05  # pulled to the darker reference


def test_a_resumed_dreamer_repeats_colour_control_bit_exactly(tmp_path):
    """A Dreamer that starts from frame 2 (as a resumed render does) dreams frame 1 again
    (without colour control) as the colour reference of a noise input, and gives the same
    frames 3 and 4.
    (Image inputs, whose reference is frame 0, are covered by tests/test_resume.py.)"""
    from dreamvid.engine.model import load_model
    from dreamvid.rendering.step import Dreamer
    from dreamvid.schedule.schedule import load_schedule
    from tests.conftest import write_schedule

    colour = {"colour": "lab", "colour_strength": 1.0, "input_blend": 0.1, "smoothing": 0.3, "clip_guard": 0.05}
    path = write_schedule(tmp_path, input="noise", segments=[{"frames": 5, "layers": {"mixed0": 1.0}}],
                          defaults={"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05, **colour})
    a = Dreamer(load_schedule(path), load_model(device="cpu"))
    frames = [a.first_frame()]
    for n in range(1, 5):
        frames.append(a.next_frame(frames[-1], n))
    b = Dreamer(load_schedule(path), a.net)  # the same network, but no colour state: as after a restart
    f3 = b.next_frame(frames[2].clone(), 3)
    assert torch.equal(f3, frames[3]) and torch.equal(b.next_frame(f3, 4), frames[4])
    assert torch.equal(b.colour.references.built["frame1"].image, a.colour.references.built["frame1"].image)
    assert torch.equal(b.colour.references.built["frame1"].image, a.dream_without_colour(frames[0], 1))
    assert frames[4].min() >= 0.05 and frames[4].max() <= 0.95  # the guard held


def test_saturation_match_moves_saturation_at_constant_luma():
    ref = C.Reference(image([200 / 255] * 2, [100 / 255] * 2, [100 / 255] * 2))  # every pixel at saturation 0.5
    x = image([0.8, 0.6, 0.98], [0.2, 0.6, 0.97], [0.2, 0.6, 0.96])  # saturation 0.75, a grey, a near-white
    out = C.match_saturation(x, ref.saturation, 1.0)
    luma = torch.tensor([0.2126, 0.7152, 0.0722])[:, None]
    np.testing.assert_allclose((out[0, :, 0] * luma).sum(0).numpy(), (x[0, :, 0] * luma).sum(0).numpy(), atol=1e-6)
    # the red pixel: y = 0.32756, k = 0.5 y / (0.6 - 0.5 (0.8 - y)) = 0.450223, y + k (x - y)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [0.54026, 0.27013, 0.27013], atol=2e-5)
    assert C.saturation(out)[0, 0, 0, 0].item() == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_allclose(out[0, :, 0, 1].numpy(), [0.6, 0.6, 0.6])  # greys stay grey
    # the near-white pixel would need to leave [0, 1] to reach 0.5: it goes as far as it can
    # without a channel showing as 255 (1/255 short of 1), so the match never clips
    assert out[0, :, 0, 2].max().item() == pytest.approx(254 / 255, abs=1e-6) and 0.5 > C.saturation(out)[0, 0, 0, 2] > 0.02
    assert C.match_saturation(x, ref.saturation, 0.0) is x
    half = C.match_saturation(x, ref.saturation, 0.5)  # half way: saturation 0.625
    assert C.saturation(half)[0, 0, 0, 0].item() == pytest.approx(0.625, abs=1e-5)


def _text_on_white(n: int, g: torch.Generator, trace: float) -> torch.Tensor:
    """n pixels: 80 % white, 10 % black, 10 % red (220, 20, 30); ``trace``: the most colour
    (in 8-bit steps) the dream has added to the white pixels (the black get under half a step)."""
    x = torch.ones(1, 3, 1, n, dtype=torch.float64)
    x[..., n * 8 // 10: n * 9 // 10] = 0.0
    x[..., n * 9 // 10:] = torch.tensor([220, 20, 30], dtype=torch.float64)[None, :, None, None] / 255
    grey = torch.arange(n) < n * 9 // 10
    noise = trace / 255 * torch.rand(1, 3, 1, n, generator=g, dtype=torch.float64)
    black_trace = min(trace, 0.45) / trace if trace else 0.0  # under half a step: shows as black
    x[..., grey] = x[..., grey] + torch.where(x[..., grey] > 0.5, -noise[..., grey], noise[..., grey] * black_trace)
    return x


def test_saturation_match_holds_a_near_grey_picture_as_the_video_shows_it():
    """Text on white: 90 % exact greys. The dream tints the white a little and the black with
    traces of colour that show as black. The match keeps the greys grey in their proportion
    (ties are flat stretches of the mapping, not a ramp to the next value) and ranks the
    traces as the 8-bit video shows them (black), so the red keeps the colour; the shown
    saturation is the reference's."""
    g = torch.Generator().manual_seed(3)
    ref = C.Reference(_text_on_white(4000, g, 0.0))
    frame = _text_on_white(4000, g, 3.0)
    red = frame[..., 3600:]
    luma = (red * torch.tensor([0.2126, 0.7152, 0.0722], dtype=red.dtype)[:, None, None]).sum(1, keepdim=True)
    frame[..., 3600:] = luma + 0.8 * (red - luma)  # the red a little washed out (at its luma)
    shown = lambda x: C.saturation(C.as_shown(x))  # noqa: E731
    base = shown(ref.image).mean().item()
    assert (shown(frame) == 0).double().mean().item() < 0.5  # most whites show a tint
    out = C.match_saturation(frame, ref.saturation, 1.0)
    assert shown(out).mean().item() == pytest.approx(base, rel=0.02)
    assert (shown(out) == 0).double().mean().item() >= 0.89  # the whites and blacks show as exact greys again


def test_saturation_match_never_makes_a_clipped_value(photo):
    """Raising saturation stops a channel 1/255 short of 0 and 1: no value that shows as 0 or
    255 where the frame had none (each would count as a clipped channel in the video)."""
    x = to_tensor(fit(photo, (48, 48))).double() * 0.9 + 0.05  # nothing near 0 or 1 ...
    ref = C.Reference(to_tensor(fit(photo, (48, 48))).double().clamp(0, 1) ** 0.5)
    ref.image[:, 1:] *= 0.2  # ... and a reference far more saturated than the frame
    out = C.as_shown(C.match_saturation(x, ref.saturation, 1.0))
    assert C.saturation(out).mean() > 1.5 * C.saturation(x).mean()  # it did raise saturation a lot
    assert ((out == 0) | (out == 1)).sum().item() == 0


def test_channel_histograms_do_not_hold_saturation_and_the_saturation_match_does(photo):
    """The dream decorrelates the channels: each channel keeps its distribution while the
    pixels grow more colourful. Shuffling each channel's pixels apart keeps all three
    histograms, so histogram matching cannot undo it; the saturation match does."""
    ref = C.Reference(to_tensor(fit(photo, (64, 64))))
    g = torch.Generator().manual_seed(6)
    flat = ref.image.reshape(3, -1)
    shuffled = torch.stack([c[torch.randperm(c.numel(), generator=g)] for c in flat]).reshape(ref.image.shape)
    shown = lambda x: C.saturation(C.as_shown(x)).mean().item()  # noqa: E731 - as the 8-bit video shows it
    base = shown(ref.image)
    matched = C.match_histogram(shuffled, ref.histogram, 1.0)
    assert shown(matched) > 1.3 * base
    held = C.match_saturation(matched, ref.saturation, 1.0)
    assert shown(held) == pytest.approx(base, rel=0.03)


def test_default_colour_control_holds_saturation_on_a_short_zoom(tmp_path, net, photo):
    """A regression bound from bench/quality.py --set (docs/quality.md), small enough for a
    unit test: default settings at 64x64, 12 frames, on a photo and a flat logo. The
    saturation (dreamvid stats, on the frames before encoding) stays within 10 % of frame
    0's; the defaults before the saturation match drift more than that on the photo
    (59 % here, against 0.5 %; the logo drifts 0.9 % with the defaults)."""
    from dreamvid.media import stats
    from dreamvid.pixels.images import write_png
    from dreamvid.rendering.loop import frames
    from dreamvid.schedule.schedule import parse_schedule

    write_png(tmp_path / "photo.png", (photo * 255).round().astype(np.uint8))
    logo = Path(__file__).resolve().parents[1] / "schedules" / "logo.png"

    def drift(path, **colour):
        data = {"input": str(path), "size": [64, 64], "device": "cpu", "precision": "fp32", "defaults": colour,
                "segments": [{"frames": 12, "layers": {"mixed3": 1.0}}]}
        return stats.drift(stats.video_stats(frames(parse_schedule(data, source=tmp_path / "s.yaml"), model=net)))

    found = {path.name: drift(path)["saturation"] for path in (tmp_path / "photo.png", logo)}
    old = drift(tmp_path / "photo.png", saturation_match=0.0)["saturation"]  # the defaults before
    assert max(found.values()) < 0.10 < old, (found, old)
