"""The render's newest frame: a small JPEG (render --peek, and the work folder's peek.jpg that
the studio shows), written now and then, atomically, saying which frame it is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import dreamvid
from dreamvid.rendering import workdir
from dreamvid.rendering.peek import Peek
from tests.conftest import run_here, write_schedule


def test_render_peek_shows_the_last_frame_it_made(tmp_path, net):
    path = write_schedule(tmp_path)
    s = dreamvid.load_schedule(path)
    seen = []
    out = dreamvid.render(s, model=net, keep_parts=True, peek=tmp_path / "peek.jpg", progress=False,
                          callback=lambda p: seen.append(p.event))  # fmt: skip
    before, last = dreamvid.frames(s, start=10, model=net, progress=False)
    for jpeg in (tmp_path / "peek.jpg", workdir.peek_path(workdir.work_dir(out))):
        assert workdir.peek_frame(jpeg) == (12, 12)  # the last frame, counted from 1, of 12
        img = cv2.imread(str(jpeg))[:, :, ::-1]
        assert img.shape == last.shape
        error = [np.abs(img.astype(int) - frame).mean() for frame in (last, before)]
        assert error[0] < 10 and error[0] < error[1] / 2  # that frame, through JPEG (not the one before)
    assert "warning" not in seen


def test_peeks_are_written_at_most_every_few_seconds_and_the_last_frame_always(tmp_path):
    now = [0.0]
    peek = Peek([tmp_path / "a.jpg"], every=2.0, clock=lambda: now[0])
    rgb = np.zeros((48, 64, 3), np.uint8)
    for t, n in ((0.0, 0), (0.5, 1), (1.9, 2), (2.1, 3), (2.2, 4), (2.3, 9)):
        now[0] = t
        rgb[:] = n
        peek(n, 10, rgb)
    assert peek.written == 3  # frames 0, 3 (2.1 s after 0) and 9 (the last)
    assert workdir.peek_frame(tmp_path / "a.jpg") == (10, 10)
    assert abs(int(cv2.imread(str(tmp_path / "a.jpg"))[0, 0, 0]) - 9) <= 1


def test_a_failed_peek_warns_once_and_the_render_goes_on(tmp_path):
    warnings = []
    peek = Peek([tmp_path / "gone" / "a.jpg"], every=0.0, on_warning=warnings.append)
    for n in range(3):
        peek(n, 3, np.zeros((32, 32, 3), np.uint8))
    assert len(warnings) == 1 and warnings[0].startswith("the peek stops: ") and "render goes on" in warnings[0]


@pytest.mark.parametrize("where", ["missing/p.jpg", "."])
def test_a_bad_peek_path_is_one_line_before_any_work(tmp_path, where):
    path = write_schedule(tmp_path)
    r = run_here("render", path, "--peek", tmp_path / where, "--quiet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--peek: " in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_large_frame_peeks_small_and_in_its_colours(tmp_path):
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[..., 0] = 230  # red
    Peek([tmp_path / "p.jpg"], every=0.0)(0, 1, rgb)
    img = cv2.imread(str(tmp_path / "p.jpg"))
    assert img.shape == (360, 640, 3)  # PEEK_SIDE on the longer side
    assert abs(int(img[180, 320, 2]) - 230) <= 2 and img[180, 320, :2].max() <= 2  # BGR on disk: red stays red
