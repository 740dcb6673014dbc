"""dreamvid.pixels.flow: optical flow methods, warping, occlusion, the flow-warped start image."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from dreamvid.core.errors import InputError
from dreamvid.engine.ascent import DreamSettings, dream
from dreamvid.engine.objectives import weighted
from dreamvid.pixels import flow as FL
from dreamvid.pixels.images import fit, to_tensor

pytestmark = pytest.mark.timeout(300)

W, H = 96, 64


def panned(name: str, n: int, dx: int, dy: int = 0) -> list[torch.Tensor]:
    """``n`` frames of a photo whose content moves (dx, dy) px per frame (right, down)."""
    big = fit(getattr(skimage.data, name)().astype(np.float32) / 255, (W + abs(dx) * n, H + abs(dy) * n))
    x0, y0 = (abs(dx) * n if dx > 0 else 0), (abs(dy) * n if dy > 0 else 0)
    return [to_tensor(big[y0 - dy * i : y0 - dy * i + H, x0 - dx * i : x0 - dx * i + W]) for i in range(n)]


def constant(dx: float, dy: float) -> torch.Tensor:
    f = torch.zeros(1, 2, H, W)
    f[:, 0], f[:, 1] = dx, dy
    return f


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_of_a_known_shift(method, photo):
    prev, cur = panned(photo, 2, 3, 2)  # content moves 3 px right, 2 px down
    backward, forward = FL.flows(FL.flow_method(method), cur, prev)
    assert backward.shape == forward.shape == (1, 2, H, W) and backward.dtype == torch.float32
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    # each pixel of the new frame was 3 px left and 2 px up in the previous one
    assert torch.allclose(backward[inner].median(-1).values.median(-1).values, torch.tensor([[-3.0, -2.0]]), atol=0.1)
    assert torch.allclose(forward[inner].median(-1).values.median(-1).values, torch.tensor([[3.0, 2.0]]), atol=0.1)
    assert (backward[inner] - constant(-3, -2)[inner]).norm(dim=1).mean() < 0.3  # mean end-point error, px


def test_warp_moves_the_previous_frame_onto_the_next():
    prev, cur = panned("astronaut", 2, 3, 2)
    warped = FL.warp(prev, constant(-3, -2))
    assert torch.allclose(warped[..., 2:, 3:], cur[..., 2:, 3:], atol=1e-5)  # exact where both frames see it
    assert not torch.allclose(FL.warp(prev, constant(3, 2))[..., 2:-2, 3:-3], cur[..., 2:-2, 3:-3], atol=0.05)
    half = FL.warp(prev, constant(-0.5, 0))  # bilinear: halfway between neighbours
    assert torch.allclose(half[..., 1:], (prev[..., 1:] + prev[..., :-1]) / 2, atol=1e-5)
    assert torch.allclose(FL.warp(prev, constant(0, 0)), prev, atol=1e-4)  # float rounding of the grid only


def test_occlusion_marks_new_and_inconsistent_pixels():
    occ = FL.occlusion(constant(-3, -2), constant(3, 2))[0, 0]
    assert occ.shape == (H, W) and occ.dtype == torch.bool
    new = torch.zeros(H, W, dtype=torch.bool)
    new[:2, :] = new[:, :3] = True  # the strips that entered the frame from the left and top
    assert occ.equal(new)
    assert not FL.occlusion(constant(0, 0), constant(0, 0)).any()
    forward = constant(3, 2)
    forward[..., 20:30, 40:50] = 0  # these pixels do not come back: an occluder covered them
    occ = FL.occlusion(constant(-3, -2), forward)[0, 0]
    assert occ[22:32, 43:53].all() and occ.float().mean() < 0.12  # their targets are flagged, not the rest


def test_start_image_blends_warps_and_masks():
    src = panned("coffee", 3, 4)
    out_prev = src[1] * 0.5 + 0.25  # a stand-in for the dreamed frame n-1
    plain = FL.start_image(src[2], src[1], out_prev, 0.6, None)
    assert torch.allclose(plain.image, 0.4 * src[2] + 0.6 * out_prev, atol=1e-6) and plain.valid.all()
    assert torch.allclose(plain.target, (src[2] + out_prev - src[1]).clamp(0, 1), atol=1e-6)  # the dream, carried
    assert FL.start_image(src[2], src[1], out_prev, 0.0, FL.dis()).image.equal(src[2])
    st = FL.start_image(src[2], src[1], out_prev, 1.0, FL.dis())
    occluded = st.valid[0, 0] == 0
    assert occluded[:, :4].all() and occluded.float().mean() < 0.15  # the strip that came in from the left
    assert torch.equal(st.image[..., occluded], src[2][..., occluded])  # takes the source pixel
    want = FL.warp(out_prev, constant(-4, 0))  # elsewhere: the previous output moved with the content
    assert (st.image - want)[..., ~occluded].abs().mean() < 0.01
    pair = FL.flows(FL.dis(), src[2], src[1])  # flows computed ahead give the same start
    assert FL.start_image(src[2], src[1], out_prev, 1.0, pair).image.equal(st.image)


def test_the_pull_target_follows_a_change_no_motion_explains():
    src = panned("chelsea", 1, 0)[0] * 0.9
    out_prev = (src + 0.1 * torch.sin(torch.arange(W) / 2.0)).clamp(0, 1)  # the previous dream: stripes
    brighter = src + 0.05  # the clip brightens, nothing moves
    st = FL.start_image(brighter, src, out_prev, 0.7, FL.dis())
    assert st.valid.mean() > 0.95
    assert (st.target - (out_prev + 0.05).clamp(0, 1)).abs().mean() < 0.005  # the stripes, on the new light
    assert (st.image - (0.3 * brighter + 0.7 * out_prev)).abs().mean() < 0.005  # the start blends as specified


def test_a_scene_cut_starts_from_the_new_source():
    a, b = panned("astronaut", 1, 0)[0], panned("coffee", 1, 0)[0]
    st = FL.start_image(b, a, a, 0.8, FL.dis())
    assert st.valid.mean() < 0.01 and (st.image - b).abs().mean() < 0.002


def temporal_error(outs: list[torch.Tensor], dx: int) -> float:
    """Mean |out[n] - out[n-1] moved dx px right| over pixels visible in both, 0-255 units."""
    return float(np.mean([(b[..., dx:] - a[..., :-dx]).abs().mean() * 255 for a, b in zip(outs, outs[1:])]))


def test_flow_warped_video_is_steadier_than_plain_blend_and_per_frame(net):
    dx, blend = 3, 0.7
    frames = panned("coffee", 5, dx)
    objective, settings = weighted({"mixed3": 1.0}), DreamSettings(iterations=2, step=0.03, octaves=1, jitter=8)

    def render(mode: str, pull: float = 0.0) -> list[torch.Tensor]:
        gen, outs = torch.Generator().manual_seed(0), []
        for i, src in enumerate(frames):
            if i == 0 or mode == "alone":
                outs.append(dream(net, src, objective, settings, gen))
                continue
            st = FL.start_image(src, frames[i - 1], outs[-1], blend, FL.flow_method(mode))
            outs.append(dream(net, st.image, objective, settings, gen, after_step=FL.pull_toward(st, pull)))
        return outs

    err = {mode: temporal_error(render(mode), dx) for mode in ("alone", "none", "dis")}
    err["dis+pull"] = temporal_error(render("dis", 0.3), dx)
    # measured 14.4 / 23.9 / 11.8 (coffee; bench/video_flow.py does it at 160x96, 16 frames, 2 photos, 2 motions)
    assert err["dis"] < 0.7 * err["none"] and err["dis"] < 0.95 * err["alone"], err
    assert err["dis+pull"] < 0.8 * err["dis"], err


def test_pull_toward_is_the_plain_dream_at_strength_0(net):
    src = panned("chelsea", 2, 5)
    st = FL.start_image(src[1], src[0], src[0] * 0.5, 0.7, FL.dis())
    objective = weighted({"mixed3": 1.0})
    settings = DreamSettings(iterations=2, step=0.03, octaves=2, octave_scale=1.2, jitter=8)  # 2 sizes, rolled
    plain = dream(net, st.image, objective, settings, torch.Generator().manual_seed(1))
    same = dream(net, st.image, objective, settings, torch.Generator().manual_seed(1), after_step=FL.pull_toward(st, 0))
    pulled = dream(net, st.image, objective, settings, torch.Generator().manual_seed(1),
                   after_step=FL.pull_toward(st, 0.5))
    assert same.equal(plain)
    gap = lambda x: ((x - st.target).abs() * st.valid).mean()  # noqa: E731
    assert gap(pulled) < 0.6 * gap(plain)  # closer to the warped previous output where it is trusted
    occluded = st.valid.expand_as(plain) == 0
    assert (pulled - plain)[occluded].abs().mean() < 0.3 * (pulled - plain)[~occluded].abs().mean()


def test_temporal_pull_moves_valid_pixels_only():
    x, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    valid = torch.zeros(1, 1, 4, 4)
    valid[..., :2] = 1
    y = FL.temporal_pull(x, target, valid, 0.3)
    assert torch.allclose(y[..., :2], torch.full_like(y[..., :2], 0.3)) and y[..., 2:].eq(0).all()


def test_raft_from_a_local_file(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)  # random weights: shapes only
    assert callable(FL.flow_method("raft", weights=path, device="cpu"))
    fn = FL.raft(path, "cpu", iterations=3)  # fewer flow updates than the default 12: a faster test
    a, b = panned("coffee", 2, 3)
    backward, forward = FL.flows(fn, b, a)  # 96x64: padded up to RAFT's minimum and cropped back
    assert backward.shape == (1, 2, H, W) and torch.isfinite(torch.cat([backward, forward])).all()
    assert not torch.equal(backward, forward)


def one_line(fn, *args, **kw) -> str:
    with pytest.raises(InputError) as err:
        fn(*args, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_raft_and_method_errors(tmp_path):
    missing = tmp_path / "raft.pth"
    assert one_line(FL.raft, missing).startswith(f"{missing}: RAFT weights not found; expected a local")
    (tmp_path / "junk.pth").write_text("not weights")
    assert one_line(FL.raft, tmp_path / "junk.pth").startswith(f"{tmp_path / 'junk.pth'}: not a readable weights file")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    assert "fit neither raft_large nor raft_small" in one_line(FL.raft, tmp_path / "other.pth")
    assert "needs a weights file" in one_line(FL.flow_method, "raft")
    assert "unknown flow method 'optical'; expected one of dis, farneback, raft, none" in one_line(
        FL.flow_method, "optical")
    assert "unknown DIS preset" in one_line(FL.dis, "slow")
    assert FL.flow_method("none") is None


# ------------------------------------------------------------------------- RAFT's memory bound


def test_capped_size_keeps_the_aspect_within_the_pixel_count():
    assert FL.capped_size((1080, 1920), 1280 * 720) == (720, 1280)
    assert FL.capped_size((2160, 3840), 1280 * 720) == (720, 1280)
    assert FL.capped_size((720, 1280), 1280 * 720) == (720, 1280)  # at the cap: as it is
    assert FL.capped_size((64, 96), 1280 * 720) == (64, 96)
    for h, w in [(1080, 1440), (1000, 1001), (37, 4000)]:
        ch, cw = FL.capped_size((h, w), 100_000)
        assert ch * cw <= 100_000 and abs(cw / ch - w / h) < 0.06 * w / h


def test_a_capped_flow_is_scaled_back_to_the_frame():
    """The flow is estimated on smaller images, then sized and scaled back: a constant 2 px
    right, 1 px down at half the size is 4 px right, 2 px down at the frame's size."""
    seen = []

    def half_size_flow(a, b):
        seen.append(tuple(a.shape[-2:]))
        f = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        f[:, 0], f[:, 1] = 2.0, 1.0
        return f

    fn = FL.capped(half_size_flow, (W // 2) * (H // 2))
    a, b = panned("coffee", 2, 3)
    f = fn(a, b)
    assert seen == [(H // 2, W // 2)] and f.shape == (1, 2, H, W)
    assert torch.allclose(f[:, 0], torch.full((1, H, W), 4.0)) and torch.allclose(f[:, 1], torch.full((1, H, W), 2.0))
    fn(a[..., :16, :16], b[..., :16, :16])
    assert seen[-1] == (16, 16)  # under the cap: the images as they are


def test_a_capped_dis_still_finds_a_known_shift():
    prev, cur = panned("astronaut", 2, 4, 2)  # 4 px right, 2 px down; estimated at a quarter of the pixels
    backward, _ = FL.flows(FL.capped(FL.dis(), (W // 2) * (H // 2)), cur, prev)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (backward[inner] - constant(-4, -2)[inner]).norm(dim=1).mean() < 0.5  # mean end-point error, px


def test_raft_sees_at_most_its_pixel_cap(tmp_path):
    """RAFT's input (so its (H/8 x W/8)^2 correlation volume) is bounded by ``max_pixels``; the
    flow comes back at the frame's size."""
    from torchvision.models.optical_flow import raft_small
    from torchvision.models.optical_flow.raft import RAFT

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)
    sizes = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: sizes.append(tuple(args[0].shape[-2:])) if isinstance(module, RAFT) else None)
    try:
        a = torch.rand(1, 3, 192, 256)
        f = FL.raft(path, "cpu", iterations=1, max_pixels=128 * 96)(a, a.flip(-1))
    finally:
        hook.remove()
    assert f.shape == (1, 2, 192, 256) and torch.isfinite(f).all()
    assert sizes == [(128, 128)]  # 96x128 at the cap, padded to RAFT's 128 px minimum (not 192x256)
