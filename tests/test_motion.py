"""preview --motion: the camera path without dreaming equals a render with iterations: 0 and
colour control off, frame for frame (a lossless encode, decoded), for an image and a clip."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

import dreamvid
from dreamvid.rendering.motion import caption
from tests.conftest import pan_clip, run_cli, run_here
from tests.test_api import decode

LOSSLESS = {"codec": "libx264rgb", "crf": 0, "pix_fmt": "rgb24"}  # decoded frames equal the frames given
NO_DREAM = {"iterations": 0, "octaves": 2, "colour": "none"}  # colour none, input_blend/smoothing/clip_guard 0
CAMERAS = [  # zoom, rotate, translate, a centre off the middle, and all of them keyframed together
    {"frames": 3, "layers": {"mixed0": 1.0}, "zoom": 1.08},
    {"frames": 3, "layers": {"mixed0": 1.0}, "zoom": 1.0, "rotate": 4.0},
    {"frames": 3, "layers": {"mixed0": 1.0}, "zoom": 1.0, "translate": [3, -2]},
    {"frames": 3, "layers": {"mixed3": 1.0}, "zoom": {0: 1.05, 2: 0.95}, "rotate": -3.0, "translate": [1.5, 0.5],
     "center": [0.25, 0.7]},
]  # fmt: skip


def schedule(tmp_path, **over):
    data = {"input": "in.png", "output": "out/v.mp4", "size": [64, 48], "fps": 10, "seed": 2, "precision": "fp32",
            "checkpoint_every": 5, "encoder": LOSSLESS, "defaults": NO_DREAM, "segments": CAMERAS}  # fmt: skip
    data.update(over)
    return dreamvid.load_schedule(data, base_dir=tmp_path)


@pytest.fixture()
def image_input(tmp_path):
    import skimage.data

    cv2.imwrite(str(tmp_path / "in.png"), skimage.data.astronaut()[::4, ::4, ::-1])
    return tmp_path


def test_motion_equals_a_render_without_dreaming(image_input, net):
    s = schedule(image_input)
    rendered = decode(dreamvid.render(s, model=net, progress=False))
    motion = decode(dreamvid.motion(s, image_input / "m.mp4", captions=False, progress=False))
    frames = list(dreamvid.motion_frames(s))
    assert len(rendered) == len(motion) == len(frames) == 12
    for n, (a, b, c) in enumerate(zip(rendered, motion, frames, strict=True)):
        assert np.array_equal(a, b) and np.array_equal(a, c), n
    assert not np.array_equal(frames[3], frames[5])  # the camera moved: the test compares moving pictures


def test_motion_of_a_clip_equals_a_render_without_dreaming(tmp_path, net):
    pan_clip(tmp_path / "clip.mp4", frames=8, size=(64, 48))
    cams = [{"frames": 4, "layers": {"mixed0": 1.0}, "zoom": 1.04, "center": [0.7, 0.4]},
            {"frames": 4, "layers": {"mixed0": 1.0}, "rotate": 2.0, "translate": [1, 1]}]  # fmt: skip
    s = schedule(tmp_path, input="clip.mp4", segments=cams, defaults={**NO_DREAM, "temporal": 0.3})
    rendered = decode(dreamvid.render(s, model=net, progress=False))
    frames = list(dreamvid.motion_frames(s))
    assert len(rendered) == len(frames) == 8
    assert all(np.array_equal(a, b) for a, b in zip(rendered, frames, strict=True))
    assert not np.array_equal(frames[1], frames[6])


def test_captions_stay_in_the_corners(image_input):
    s = schedule(image_input, size=[256, 144])
    plain = list(dreamvid.motion_frames(s, start=4, stop=8))
    captioned = list(dreamvid.motion_frames(s, start=4, stop=8, captions=True))
    for a, b in zip(plain, captioned, strict=True):
        changed = np.argwhere((a != b).any(axis=2))
        assert len(changed) > 100  # there is a caption
        h, w = a.shape[:2]
        rows, cols = changed[:, 0], changed[:, 1]
        assert not ((rows > h / 4) & (rows < 3 * h / 4) & (cols > w / 4) & (cols < 3 * w / 4)).any()
    p = s.params(10)  # the zoom centre's map: its marker moves with `center`
    a = caption(plain[0], p)
    b = caption(plain[0], dataclasses.replace(p, center=(0.9, 0.9)))
    assert not np.array_equal(a, b)


def test_cli_writes_the_video_beside_the_output_and_a_frame_as_png(image_input):
    s = image_input / "s.yaml"
    import yaml

    s.write_text(yaml.safe_dump({"input": "in.png", "output": "out/v.mp4", "size": [64, 48], "fps": 10,
                                 "encoder": LOSSLESS, "defaults": NO_DREAM, "segments": CAMERAS}))  # fmt: skip
    r = run_cli("preview", s, "--motion", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    video = image_input / "out" / "v.motion.mp4"
    frames = decode(video)
    assert len(frames) == 12 and not (image_input / "out" / "v.mp4").exists()
    r = run_here("preview", s, "--motion", "--frame", "7", "--no-captions", "-o", image_input / "f7.png")
    assert r.returncode == 0 and r.stdout.strip() == f"wrote {image_input / 'f7.png'} (frame 7 of the camera path)"
    f7 = cv2.imread(str(image_input / "f7.png"))[:, :, ::-1]
    (expected,) = dreamvid.motion_frames(dreamvid.load_schedule(s), start=7, stop=8)
    assert np.array_equal(f7, expected)
    r = run_here("preview", s, "--motion", "--frame", "12")
    assert r.returncode == 2
    assert r.stderr.strip() == f"dreamvid: error: {s}: frame 12 is outside the schedule; expected 0..11"  # as preview's
    r = run_here("preview", s, "--motion", "--scale", "0.5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--scale applies to dreamed previews" in r.stderr
