"""The schedule-driven render: frame count, size, fps, zoom, preview, cleanup on failure."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamvid.engine.model import load_model
from dreamvid.media.read import probe_video, read_frames
from dreamvid.pixels.camera import move
from dreamvid.pixels.images import fit, read_image, to_tensor
from dreamvid.rendering.loop import render
from dreamvid.rendering.step import Dreamer
from dreamvid.schedule.schedule import load_schedule
from tests.conftest import ENV, run_here, write_schedule
from tests.procs import ffmpeg_children

ZOOM = 1.15


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render")
    path = write_schedule(folder, defaults={"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.01, "zoom": ZOOM})
    r = run_here("render", path, "--quiet")
    assert r.returncode == 0, r.stderr
    return path, folder / "out" / "video.mp4", read_frames(folder / "out" / "video.mp4")


def test_video_has_the_scheduled_frames_size_and_fps(rendered):
    path, video, frames = rendered
    info = probe_video(video)
    assert info == {"frames": 12, "size": (96, 64), "fps": 12.0}
    assert not (video.parent / "video.mp4.parts").exists()  # work folder removed
    assert [p.name for p in video.parent.iterdir()] == ["video.mp4"]


def test_frames_are_dreamed_and_zoom(rendered):
    path, video, frames = rendered
    src = (fit(read_image(path.parent / "in.png"), (96, 64)) * 255).astype(np.uint8)
    assert psnr(frames[0], src) > 30  # frame 0 is the fitted input
    assert psnr(frames[-1], src) < 15  # later frames are dreamed, far from it
    # the centre of frame n+1 is an enlarged centre of frame n
    better = 0
    for a, b in zip(frames[:-1], frames[1:]):
        ta = to_tensor(a.astype(np.float32) / 255)
        zoomed = F.interpolate(ta, scale_factor=ZOOM, mode="bilinear", align_corners=False)
        h, w = zoomed.shape[-2:]
        y0, x0 = (h - 64) // 2, (w - 96) // 2
        zc = (zoomed[0, :, y0 : y0 + 64, x0 : x0 + 96].permute(1, 2, 0).numpy() * 255)[16:-16, 24:-24]
        bc = b[16:-16, 24:-24]
        better += psnr(zc, bc) > psnr(a[16:-16, 24:-24], bc)
    assert better >= len(frames) - 2


def test_preview_equals_the_video_frame(rendered, tmp_path):
    path, video, frames = rendered
    k = 7
    out = tmp_path / "p.png"
    r = run_here("preview", path, "--frame", k, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    img = (read_image(out) * 255).round().astype(np.uint8)
    assert psnr(img, frames[k]) > 30
    assert psnr(img, frames[k]) > psnr(img, frames[k - 1]) + 3
    assert psnr(img, frames[k]) > psnr(img, frames[k + 1]) + 3


def test_same_schedule_same_frames_in_process(tmp_path):
    """Dreamer is deterministic: two chains give the same float frames."""
    s = load_schedule(write_schedule(tmp_path))
    a, b = Dreamer(s, load_model(device="cpu")), Dreamer(s, load_model(device="cpu"))
    fa, fb = a.first_frame(), b.first_frame()
    for n in range(1, 4):
        fa, fb = a.next_frame(fa, n), b.next_frame(fb, n)
    assert (fa - fb).abs().max().item() == 0.0


def test_exception_mid_render_leaves_no_output_and_no_ffmpeg(tmp_path, monkeypatch):
    s = load_schedule(write_schedule(tmp_path))
    real = Dreamer.next_frame

    def failing(self, frame, n):
        if n == 6:
            raise RuntimeError("boom")
        return real(self, frame, n)

    monkeypatch.setattr(Dreamer, "next_frame", failing)
    with pytest.raises(RuntimeError, match="boom"):
        render(s)
    assert not s.output_path.exists()
    assert ffmpeg_children() == []
    assert not [p for p in s.output_path.parent.rglob("*partial*")]


def test_sigint_leaves_no_output_and_no_ffmpeg(tmp_path):
    # one long part, so that ffmpeg is running whenever we look
    path = write_schedule(tmp_path, segments=[{"frames": 200, "layers": {"mixed3": 1.0}}], checkpoint_every=500)
    proc = subprocess.Popen([sys.executable, "-m", "dreamvid", "render", str(path), "--quiet"],
                            stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    work = tmp_path / "out" / "video.mp4.parts"
    deadline = time.time() + 120
    while not list(work.glob(".part-*")) and time.time() < deadline:  # a part is being encoded
        time.sleep(0.1)
    time.sleep(0.5)
    children = ffmpeg_children(proc.pid)
    assert children, "the render should be streaming into ffmpeg"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "rerun the same command to resume" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "video.mp4").exists()
    assert list((tmp_path / "out" / "video.mp4.parts").glob("ckpt-*.pt"))  # the frames done are checkpointed
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_frames_option_renders_only_the_first_frames(tmp_path):
    path = write_schedule(tmp_path)
    r = run_here("render", path, "--frames", "3", "-o", tmp_path / "short.mp4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert probe_video(tmp_path / "short.mp4")["frames"] == 3


def test_validate_prints_a_summary_and_rejects_bad_schedules(tmp_path):
    path = write_schedule(tmp_path)
    r = run_here("validate", path)
    assert r.returncode == 0 and "12 frames" in r.stdout and "mixed3" in r.stdout
    bad = write_schedule(tmp_path / "bad", segments=[{"frames": 3, "layers": {"mixed9x": 1.0}}])
    r = run_here("validate", bad)
    assert r.returncode == 2
    assert "segments[0].layers.mixed9x" in r.stderr and "s.yaml" in r.stderr and "Traceback" not in r.stderr


def test_cancelling_transition_weights_only_move_the_camera(tmp_path):
    """Halfway through a transition from {mixed3: 1} to {mixed3: -1} the weights sum to 0:
    that frame is the camera move (and colour control) alone, not an error."""
    path = write_schedule(tmp_path, segments=[{"frames": 2, "layers": {"mixed3": 1.0}},
                                              {"frames": 4, "layers": {"mixed3": -1.0}, "transition": 2}],
                          defaults={"iterations": 1, "octaves": 1, "jitter": 0, "zoom": 1.05,
                                    "colour": "none"})
    s = load_schedule(path)
    assert s.params(3).layers == {} and s.params(2).layers == {"mixed3": 1.0}
    d = Dreamer(s, load_model(device="cpu"))
    f0 = d.first_frame()
    moved_only = d.next_frame(f0, 3)  # frame 3 from frame 0: the camera move alone
    dreamed = d.next_frame(f0, 2)
    assert torch.isfinite(moved_only).all()
    assert (dreamed - moved_only).abs().mean() > 1e-3  # frame 2 was dreamed, frame 3 not
    assert torch.equal(moved_only, move(f0, 1.05, 0.0, (0.0, 0.0)).contiguous(memory_format=torch.channels_last))
