"""Creative controls (issue 19): Laplacian gradient normalisation, guide images, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamvid.engine.ascent import DreamSettings, dream, laplacian_merge, laplacian_normalize, laplacian_split
from dreamvid.engine.objectives import weighted

OBJ = weighted({"mixed3": 1.0})


def _high_share(x: torch.Tensor) -> float:
    """Share of the energy of a (1, 3, H, W) image above half Nyquist."""
    y = x[0].mean(0).double()
    power = torch.fft.fft2(y - y.mean()).abs().square()
    fy = torch.fft.fftfreq(y.shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(y.shape[1], dtype=torch.float64)[None, :]
    return (power[torch.hypot(fx, fy) > 0.25].sum() / power.sum()).item()


@pytest.mark.parametrize("shape", [(64, 96), (63, 97), (17, 33)])
def test_laplacian_pyramid_splits_and_merges_exactly(shape):
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    bands = laplacian_split(x, 4)
    assert len(bands) == 4 and bands[1].shape[-2:] == ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    assert (laplacian_merge(bands) - x).abs().max() < 1e-5
    normalised = laplacian_split(laplacian_normalize(x), 4)
    # the bands come back with unit RMS (up to the pyramid's small overlap between bands)
    assert all(0.5 < b.square().mean().sqrt().item() < 2.0 for b in normalised)


def test_laplacian_norm_dreams_less_high_frequency_than_mean(net, photo_tensor):
    settings = DreamSettings(iterations=4, step=0.02, octaves=1, jitter=8)
    mean = dream(net, photo_tensor, OBJ, settings, torch.Generator().manual_seed(0))
    again = dream(net, photo_tensor, OBJ, DreamSettings(4, 0.02, 1, 1.4, 8, gradient_norm="mean"),
                  torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(mean, again)  # the default is today's step, bit for bit
    lap = dream(net, photo_tensor, OBJ, DreamSettings(4, 0.02, 1, 1.4, 8, gradient_norm="laplacian"),
                torch.Generator().manual_seed(0))  # fmt: skip
    assert _high_share(lap - photo_tensor) < 0.7 * _high_share(mean - photo_tensor)
    assert (lap - photo_tensor).abs().mean() > 0.01  # it still dreams


# ------------------------------------------------------------------------------- guides


def _best_cosine(net, x, features, layer="mixed3") -> float:
    """Mean over the frame's positions of the best cosine similarity to a guide feature vector."""
    with torch.no_grad():
        a = net(x, [layer])[layer][0].flatten(1)
    f = torch.nn.functional.normalize
    return (f(a, dim=0).T @ f(features, dim=0)).max(1).values.mean().item()


def test_guide_pulls_the_activations_toward_the_guides(net, photo_tensor):
    import skimage.data

    from dreamvid.engine.ascent import gradient_step
    from dreamvid.engine.objectives import guide_features, guided
    from dreamvid.pixels.images import fit, to_tensor

    guide = to_tensor(fit(skimage.data.chelsea().astype(np.float32) / 255.0, (128, 128)))
    features = guide_features(net, guide, ["mixed3"])
    assert features["mixed3"].shape[0] == net.catalogue["mixed3"]  # (channels, positions)

    def run(objective) -> list[float]:
        x, seen = photo_tensor, [_best_cosine(net, photo_tensor, features["mixed3"])]
        for i in range(6):
            x = gradient_step(net, x, objective, 0.02)
            if i % 2 == 1:
                seen.append(_best_cosine(net, x, features["mixed3"]))
        return seen

    alone = run(guided({"mixed3": 1.0}, features))
    assert all(b > a - 0.003 for a, b in zip(alone, alone[1:])), alone  # rises over the iterations (then levels)
    assert alone[1] > alone[0] + 0.01 and alone[-1] > alone[0] + 0.025, alone
    layer = weighted({"mixed3": 1.0})
    assert run(layer + guided({"mixed3": 1.0}, features))[-1] > run(layer)[-1]  # added to the layers' objective


def test_guide_features_are_pooled_to_at_most_max_vectors(net, photo_tensor):
    from dreamvid.engine.objectives import guide_features

    full = guide_features(net, photo_tensor, ["mixed0"], max_vectors=10**9)["mixed0"]
    pooled = guide_features(net, photo_tensor, ["mixed0"], max_vectors=64)["mixed0"]
    assert full.shape[1] > 64 >= pooled.shape[1] > 32 and pooled.shape[0] == full.shape[0]


# -------------------------------------------------------------------------------- masks


def _mask_schedule(tmp_path, **over):
    import cv2

    from dreamvid.schedule.schedule import load_schedule
    from tests.conftest import write_schedule

    tmp_path.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((64, 96), np.uint8)
    mask[:, :48] = 255  # the left half dreams
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    return load_schedule(write_schedule(tmp_path, mask="mask.png", **over))


def test_outside_the_mask_pixels_change_five_times_less(tmp_path, net):
    from dreamvid.rendering.loop import frames

    s = _mask_schedule(tmp_path, defaults={"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.03, "zoom": 1.0},
                       segments=[{"frames": 4, "layers": {"mixed3": 1.0}}])  # fmt: skip
    assert s.params(1).colour == "histogram"  # colour control is on, and respects the mask too
    video = [f.astype(np.float64) for f in frames(s, model=net)]
    change = np.abs(video[-1] - video[0]).mean(axis=2)
    inside, outside = change[:, :40].mean(), change[:, 56:].mean()
    assert inside > 1.0 and outside * 5 < inside, (inside, outside)


def test_a_mask_that_follows_the_camera_comes_from_the_frame_number_alone(tmp_path, net):
    from dreamvid.pixels.camera import move
    from dreamvid.rendering.step import Dreamer

    s = _mask_schedule(tmp_path, defaults={"zoom": 1.1, "rotate": 3.0, "center": [0.3, 0.6], "translate": [1, 0]},
                       segments=[{"frames": 6, "layers": {"mixed3": 1.0}}])  # fmt: skip
    walked = Dreamer(s, net)
    step_by_step = [walked.mask.at(n) for n in range(6)]
    assert torch.equal(Dreamer(s, net).mask.at(5), step_by_step[5])  # straight to frame 5: the same mask
    moved = step_by_step[0]
    for n in range(1, 6):  # as if the mask were moved with the frames, frame by frame
        p = s.params(n)
        moved = move(moved.expand(1, 3, -1, -1), p.zoom, p.rotate, p.translate, p.center)[:, :1]
    assert (moved - step_by_step[5])[..., 8:-8, 8:-8].abs().mean() < 0.05
    still = _mask_schedule(tmp_path / "frame", mask_follows="frame", defaults={"zoom": 1.1},
                           segments=[{"frames": 3, "layers": {"mixed3": 1.0}}])  # fmt: skip
    d = Dreamer(still, net)
    assert torch.equal(d.mask.at(2), d.mask.at(0))


# -------------------------------------------------------------------------------- resume


def test_a_preview_from_a_checkpoint_equals_one_from_scratch_with_every_new_key(tmp_path, net):
    """Frame n with a camera-following mask, a guide, a centre and Laplacian steps depends
    on the schedule and frame n - 1 only: resumed from a checkpoint it is the same."""
    import shutil

    import cv2
    import skimage.data

    from dreamvid.api import preview
    from dreamvid.rendering.loop import render

    cv2.imwrite(str(tmp_path / "g.png"), skimage.data.chelsea()[::4, ::4, ::-1])
    s = _mask_schedule(tmp_path, mask_follows="camera", defaults={
        "iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.06, "rotate": 2.0, "center": [0.3, 0.6],
        "gradient_norm": "laplacian", "mask_strength": 0.8}, segments=[
        {"frames": 4, "layers": {"mixed3": 1.0}},
        {"frames": 5, "layers": {"mixed0": 1.0}, "guide": "g.png", "guide_weight": 3.0, "transition": 2,
         "zoom": 0.97, "center": [0.7, 0.4]}])  # fmt: skip
    render(s, model=net, frames=7, keep_parts=True)
    starts = []
    resumed = preview(s, 8, model=net, progress=False, callback=lambda p: p.event == "start" and starts.append(p.start))
    assert starts == [7]  # from the checkpoint of frame 6
    shutil.rmtree(tmp_path / "out")
    assert np.array_equal(preview(s, 8, model=net, progress=False), resumed)


def test_a_batch_variant_keeps_its_guide_and_mask(tmp_path):
    """Batch variants carry their schedule as data with absolute paths: guides and the mask too."""
    import cv2
    import yaml

    from dreamvid.batch.jobs import load_job
    from tests.conftest import write_schedule

    folder = tmp_path / "project"
    folder.mkdir()
    cv2.imwrite(str(folder / "g.png"), np.full((8, 8, 3), 99, np.uint8))
    write_schedule(folder, mask="g.png", segments=[{"frames": 3, "layers": {"mixed3": 1.0}, "guide": "g.png"}])
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"schedule": "project/s.yaml", "seed": [1, 2]}))
    for v in load_job(job):
        assert v.data["mask"] == str(folder / "g.png") and v.data["segments"][0]["guide"] == str(folder / "g.png")
        assert v.schedule.mask_path == folder / "g.png" and v.schedule.segments[0].guide == folder / "g.png"


def test_guide_and_mask_content_decide_the_checkpoints(tmp_path):
    import cv2

    from dreamvid.rendering import checkpoint as ckpt
    from dreamvid.schedule.schedule import load_schedule
    from tests.conftest import write_schedule

    tmp_path.mkdir(exist_ok=True)
    for name, value in (("g.png", 50), ("m.png", 255)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    segments = [{"frames": 3, "layers": {"mixed3": 1.0}}, {"frames": 3, "layers": {"mixed3": 1.0}, "guide": "g.png"}]

    def load():
        s = load_schedule(write_schedule(tmp_path, mask="m.png", segments=segments))
        return s, ckpt.global_settings(s), ckpt.frame_digests(s, 5)

    s, settings, digests = load()
    assert settings["mask"]["follows"] == "camera"
    cv2.imwrite(str(tmp_path / "g.png"), np.full((8, 8, 3), 60, np.uint8))  # the same path, another guide
    _, settings2, digests2 = load()
    assert digests2[:3] == digests[:3] and digests2[3:] != digests[3:]  # frames before the guided segment stay valid
    cv2.imwrite(str(tmp_path / "m.png"), np.full((8, 8, 3), 0, np.uint8))
    _, settings3, _ = load()
    assert ckpt.describe_change(settings2, settings3, [], []) == "the mask (its content or mask_follows) changed"
    plain = load_schedule(write_schedule(tmp_path / "plain"))
    assert "mask" not in ckpt.global_settings(plain)


def test_the_logo_mask_example_validates_and_its_mask_is_current():
    import cv2

    from dreamvid.schedule.schedule import load_schedule
    from schedules.make_logo_mask import logo_mask

    root = __import__("pathlib").Path(__file__).resolve().parents[1] / "schedules"
    s = load_schedule(root / "logo-mask.yaml")
    assert s.mask_path == root / "logo-mask.png" and s.params(0).gradient_norm == "laplacian"
    assert s.camera_jumps() == []
    made = logo_mask(cv2.imread(str(root / "logo.png")))
    assert np.array_equal(cv2.imread(str(root / "logo-mask.png"), cv2.IMREAD_GRAYSCALE), made)
