"""Upgrades keep work: a render stopped by an earlier release resumes after an upgrade.

``fixtures/stopped-render-0.1.0`` is a render stopped by dreamvid 0.1.0 (commit f0f122a, the
release before the layered layout; made by ``fixtures/make_stopped_render.py``): frames 0-3
in an encoded part, frames 4-5 as pending frame files, checkpoints at frames 3 and 5. Never
regenerate it with newer code: then it would prove nothing.
"""

import shutil
from pathlib import Path

import cv2
import numpy as np

from dreamvid.media.read import read_frames
from tests.conftest import run_here
from tests.test_colour_fidelity import stream_line

FIXTURE = Path(__file__).parent / "fixtures" / "stopped-render-0.1.0"


def test_a_render_stopped_by_0_1_0_resumes_and_keeps_its_saved_frames(tmp_path):
    folder = shutil.copytree(FIXTURE, tmp_path / "render")
    work = folder / "out" / "video.mp4.parts"
    part = read_frames(work / "part-00000000.mp4")  # frames 0-3 as 0.1.0 encoded them
    pending = [np.load(work / f"frame-{n:08d}.npy") for n in (4, 5)]  # frames 4-5 as 0.1.0 dreamed them
    assert len(part) == 4

    r = run_here("render", str(folder / "s.yaml"))
    assert r.returncode == 0, r.stderr
    assert "resuming at frame 6 of 10" in r.stderr
    assert "belongs to another schedule" not in r.stderr and "warning" not in r.stderr, r.stderr

    video = read_frames(folder / "out" / "video.mp4")
    assert len(video) == 10
    for n in range(4):  # the closed part is joined as it is (-c copy): its frames exactly
        assert np.array_equal(video[n], part[n]), n
    luma = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731 (yuv420p keeps it whole)
    for n, saved in zip((4, 5), pending):  # fed to the open part's encoder again: its frames, as x264 keeps them
        # measured 2.4 and 2.6 grey levels from their saved frames, 13-27 from their neighbours
        distance = [np.abs(luma(video[m]) - luma(saved)).mean() for m in range(10)]
        assert distance[n] < 4.0 and min(d for m, d in enumerate(distance) if m != n) > 3 * distance[n], (n, distance)
    # and the resumed frames continue from frame 5 (a fresh start would dream frames 0-5 again)
    assert not work.exists()
    # 0.1.0 tagged nothing and converted with ffmpeg's default, BT.601: the render keeps it and says so
    assert "yuv420p(tv, smpte170m/bt709/bt709, progressive)" in stream_line(folder / "out" / "video.mp4")
