"""`dreamvid stats --schedule`: the warp error under the schedule's own camera (docs/quality.md#warp-error)."""

import csv
import json
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import yaml

from dreamvid.pixels.camera import affine_theta, move
from dreamvid.tools.warp_error import pair_error
from tests.conftest import pan_clip, run_here, write_schedule, write_video_schedule
from tests.test_motion import LOSSLESS, NO_DREAM

W, H = 64, 48
CAMERA = [  # zoom, rotate, translate and an off-centre zoom: every part of the move
    {"frames": 4, "layers": {"mixed0": 1.0}, "zoom": 1.06},
    {"frames": 4, "layers": {"mixed0": 1.0}, "zoom": 1.0, "rotate": 3.0, "translate": [2, -1]},
    {"frames": 4, "layers": {"mixed3": 1.0}, "zoom": 0.97, "center": [0.3, 0.6]},
]
# A camera-only render is the previous frame resampled (bilinear, float32) and rounded to 8 bits;
# the warp error resamples the previous *decoded* frame again (float64), so the rounding differs by
# at most half a level per pixel. Measured here (coffee photo, 64x48, this CAMERA): 1.8e-6. Noise
# frames under the same camera: 0.12 (independent uniform values, 1/6, less what the bilinear
# interpolation averages out). A dream at 2 iterations: 2.1e-3. The bound sits 50x above the
# camera-only figure and 20x below the dream's.
STILL_BOUND = 1e-4


def frames_of(video):
    from dreamvid.media.read import iter_frames

    return list(iter_frames(video))


def test_integer_shift_forward_is_exactly_zero_and_backward_is_not():
    """The render moves frame n-1 forward by frame n's theta: that move, measured, leaves nothing;
    the border the move reveals (filled by reflection) is out of the valid pixels."""
    rng = np.random.default_rng(0)
    previous = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    tensor = torch.from_numpy(previous).permute(2, 0, 1)[None].float() / 255.0
    current = (move(tensor, 1.0, 0.0, (3, -2)) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert pair_error(previous, current, affine_theta((W, H), 1.0, 0.0, (3, -2))) < 1e-12
    assert pair_error(previous, current, affine_theta((W, H), 1.0, 0.0, (-3, 2))) > 0.05  # the wrong direction


def render(folder, defaults):
    path = write_schedule(folder, size=[W, H], encoder=LOSSLESS, defaults=defaults, segments=CAMERA)
    done = run_here("render", path)
    assert done.returncode == 0, done.stderr
    return path, folder / "out" / "video.mp4"


def warp_stats(video, schedule, folder):
    done = run_here("stats", video, "--schedule", schedule, "--json", folder / "s.json", "--csv", folder / "s.csv")
    assert done.returncode == 0, done.stderr
    assert "warp error" in done.stdout
    data = json.loads((folder / "s.json").read_text())
    with open(folder / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["warp_error"]) for r in rows] == pytest.approx(data["metrics"]["warp_error"], abs=1e-6)
    assert len(rows) == 12 and data["metrics"]["warp_error"][0] == 0.0
    assert data["warp_error_mean"] == pytest.approx(np.mean(data["metrics"]["warp_error"][1:]))
    return data["warp_error_mean"]


def noise_video(path, count=12):
    rng = np.random.default_rng(1)
    writer = imageio_ffmpeg.write_frames(str(path), (W, H), codec="png", pix_fmt_in="rgb24", pix_fmt_out="rgb24",
                                         macro_block_size=1, quality=None)  # fmt: skip
    writer.send(None)
    for _ in range(count):
        writer.send(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    writer.close()
    return path


def test_still_image_under_the_camera_is_near_zero_a_dream_and_noise_are_not(tmp_path):
    schedule, still = render(tmp_path / "still", NO_DREAM)
    still_error = warp_stats(still, schedule, tmp_path / "still")
    noise_error = warp_stats(noise_video(tmp_path / "noise.mkv"), schedule, tmp_path)
    dreamed_schedule, dreamed = render(tmp_path / "dream", {"iterations": 2, "octaves": 1, "step": 0.02, "jitter": 4,
                                                             "colour": "none"})  # fmt: skip
    dream_error = warp_stats(dreamed, dreamed_schedule, tmp_path / "dream")
    print(f"warp error: still {still_error:.3g}, dream {dream_error:.3g}, noise {noise_error:.3g}")
    assert still_error < STILL_BOUND
    assert noise_error > 100 * STILL_BOUND
    assert dream_error > 2 * STILL_BOUND


def test_a_video_longer_than_the_schedule_is_one_line_and_exit_2(tmp_path):
    schedule = write_schedule(tmp_path, size=[W, H], segments=[{"frames": 4, "layers": {"mixed0": 1.0}}])
    video = noise_video(tmp_path / "long.mkv", count=6)
    done = run_here("stats", video, "--schedule", schedule, "--json", tmp_path / "s.json")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "long.mkv" in done.stderr and "4" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "s.json").exists()
    data = yaml.safe_load(schedule.read_text())
    assert data["segments"][0]["frames"] == 4


def test_stats_files_carry_the_warp_error_and_a_frame_without_valid_pixels_is_null(tmp_path):
    from dreamvid.media import stats as S

    frames = [np.full((H, W, 3), v, np.uint8) for v in (10, 20, 30)]
    data = S.video_stats(frames)
    data[S.WARP] = [0.0, float("nan"), 0.25]
    assert S.warp_error_mean(data) == 0.25  # frame 0 and the NaN left out
    assert "mean 0.250000" in S.summary(data).splitlines()[-1]
    saved = json.loads(S.write_json(tmp_path / "s.json", data).read_text())
    assert saved["metrics"]["warp_error"] == [0.0, None, 0.25] and saved["warp_error_mean"] == 0.25
    with open(S.write_csv(tmp_path / "s.csv", data), newline="") as f:
        assert [r["warp_error"] for r in csv.DictReader(f)] == ["0.000000", "nan", "0.250000"]
    import cv2

    png = cv2.imread(str(S.plot(tmp_path / "p.png", {"a": data})))
    assert png.shape == (600, 800, 3)



def test_a_variable_rate_source_is_read_as_the_render_reads_it(tmp_path):
    """A variable-rate clip is resampled to its average rate when a render reads it; --source
    reads it so too, or frame n of the video meets another source frame than its own. Measured
    (a 4 px/frame pan, 12 frames at 24 fps then 12 at 8 fps): 1.2e-5 as rendered, 0.016 with
    the clip's frames as decoded."""
    from dreamvid.media.read import ClipReader, iter_frames, probe_clip
    from dreamvid.media.write import VideoWriter
    from dreamvid.tools.warp_error import source_warp_errors

    pan = pan_clip(tmp_path / "pan.mp4", frames=24, speed=4)
    clip = tmp_path / "vfr.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(pan), "-vf",
                    "setpts='if(lt(N,12),N/24,12/24+(N-12)/8)/TB'", "-fps_mode", "passthrough", "-c:v", "libx264",
                    "-crf", "0", str(clip)], check=True)  # fmt: skip
    info = probe_clip(clip)
    assert info.variable_rate
    video = tmp_path / "as-rendered.mkv"  # the clip's frames as a render reads them, kept losslessly
    with ClipReader(info) as reader, VideoWriter(video, info.size, info.fps, **LOSSLESS) as writer:
        for frame in reader:
            writer.write((frame * 255).round().astype(np.uint8))
    done = run_here("stats", video, "--source", clip, "--json", tmp_path / "s.json")
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert len(data["metrics"]["warp_error"]) == info.frames
    decoded = source_warp_errors(iter_frames(video), iter_frames(clip))  # the clip's frames as decoded: wrong pairs
    print(f"as rendered {data['warp_error_mean']:.3g}, as decoded {np.mean(decoded[1:]):.3g}")
    assert data["warp_error_mean"] < 0.01 * np.mean(decoded[1:])


def source_error(video, clip, folder):
    done = run_here("stats", video, "--source", clip, "--json", folder / "s.json")
    assert done.returncode == 0, done.stderr
    data = json.loads((folder / "s.json").read_text())
    assert len(data["metrics"]["warp_error"]) == 8 and data["metrics"]["warp_error"][0] == 0.0
    return data["warp_error_mean"]


def test_source_flow_and_temporal_lower_the_warp_error_of_a_clip_render(tmp_path):
    """Measured (96x64 pan, 8 frames, 3 iterations): the clip itself 4.7e-4 (what DIS flow on a
    small clip leaves), flow + temporal 1.2e-3, flow: none 5.4e-3, noise 0.16."""
    errors = {}
    for name, over in (("flow", {}), ("none", {"flow": "none"})):
        folder = tmp_path / name
        path = write_video_schedule(folder, frames=8, defaults={"iterations": 3, "octaves": 1, "jitter": 8,
                                                                "step": 0.02, **over})  # fmt: skip
        done = run_here("render", path)
        assert done.returncode == 0, done.stderr
        errors[name] = source_error(folder / "out" / "video.mp4", folder / "clip.mp4", folder)
    clip = tmp_path / "flow" / "clip.mp4"
    errors["clip"] = source_error(clip, clip, tmp_path)
    errors["noise"] = source_error(noise_video(tmp_path / "n.mkv", count=8), clip, tmp_path)
    print("source warp error:", {k: f"{v:.3g}" for k, v in errors.items()})
    assert errors["clip"] < errors["flow"] < errors["none"] / 2
    assert errors["noise"] > 10 * errors["none"]
