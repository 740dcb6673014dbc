"""`dreamvid stats`: per-frame numbers that match frames built by hand, plot, JSON and CSV."""

import csv
import json

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from dreamvid.media import stats as S
from dreamvid.media.read import iter_frames
from tests.conftest import run_here

W, H = 40, 30


def constructed_frames():
    grey = np.full((H, W, 3), 128, np.uint8)  # saturation 0, luminance 128/255, nothing clipped
    lit = np.full((H, W, 3), 100, np.uint8)
    lit[:6] = 255  # 6 of 30 rows white: 20 % of the channels at 255
    colour = np.full((H, W, 3), 60, np.uint8)
    colour[:, : W // 2] = (200, 100, 50)  # half the pixels: HSV S = (200 - 50) / 200 = 0.75
    return [grey, lit, colour]


def expected_metrics():
    l_colour = 0.5 * (0.2126 * 200 + 0.7152 * 100 + 0.0722 * 50) / 255 + 0.5 * 60 / 255
    change_1 = (0.2 * (255 - 128) + 0.8 * (128 - 100)) / 255
    # lit -> colour: top rows (20 %) x left/right half, bottom rows (80 %) x left/right half
    change_2 = (0.1 * ((255 - 200) + (255 - 100) + (255 - 50)) / 3 + 0.1 * (255 - 60)
                + 0.4 * ((200 - 100) + 0 + (100 - 50)) / 3 + 0.4 * (100 - 60))  # fmt: skip
    return {
        "luminance": [128 / 255, 0.2 + 0.8 * 100 / 255, l_colour],
        "saturation": [0.0, 0.0, 0.375],
        "clipped": [0.0, 0.2, 0.0],
        "change": [0.0, change_1, change_2 / 255],
    }


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A lossless (PNG-in-Matroska) video of the constructed frames, so decoding is exact."""
    path = tmp_path_factory.mktemp("stats") / "tiny.mkv"
    writer = imageio_ffmpeg.write_frames(str(path), (W, H), codec="png", pix_fmt_in="rgb24", pix_fmt_out="rgb24",
                                         macro_block_size=1, quality=None)  # fmt: skip
    writer.send(None)
    for frame in constructed_frames():
        writer.send(frame)
    writer.close()
    assert all(np.array_equal(a, b) for a, b in zip(iter_frames(path), constructed_frames()))
    return path


def test_frame_metrics_match_hand_computed_values(video):
    stats = S.video_stats(iter_frames(video))
    assert stats["frame"] == [0, 1, 2]
    for key, values in expected_metrics().items():
        np.testing.assert_allclose(stats[key], values, atol=1e-12, err_msg=key)


def test_stats_command_writes_plot_json_and_csv(video, tmp_path):
    plot, js, table = tmp_path / "p" / "stats.png", tmp_path / "stats.json", tmp_path / "stats.csv"
    r = run_here("stats", video, "--plot", plot, "--json", js, "--csv", table)
    assert r.returncode == 0, r.stderr
    assert "luminance" in r.stdout and "saturation" in r.stdout and "clipped" in r.stdout
    assert cv2.imread(str(plot)).shape == (600, 800, 3)
    data = json.loads(js.read_text())
    expected = expected_metrics()
    for key, values in expected.items():
        np.testing.assert_allclose(data["metrics"][key], values, atol=1e-12, err_msg=key)
    lum = expected["luminance"]
    drift = data["drift"]
    assert drift["luminance"] == pytest.approx(max(abs(v - lum[0]) for v in lum) / lum[0])
    assert drift["saturation"] == pytest.approx(0.375)  # frame 0 has none: absolute change
    assert drift["clipped"] == pytest.approx(0.2) and drift["clipped_max"] == pytest.approx(0.2)
    rows = list(csv.DictReader(table.open()))
    assert [int(row["frame"]) for row in rows] == [0, 1, 2]
    assert [float(row["clipped"]) for row in rows] == pytest.approx([0.0, 0.2, 0.0], abs=1e-6)
    assert not list(tmp_path.glob("**/.*partial*"))


def test_stats_of_a_missing_or_broken_video_is_one_line(tmp_path):
    r = run_here("stats", tmp_path / "none.mp4")
    assert r.returncode == 2 and "none.mp4: video not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    r = run_here("stats", bad, "--plot", tmp_path / "p.png")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bad.mp4" in r.stderr
    assert not (tmp_path / "p.png").exists()
