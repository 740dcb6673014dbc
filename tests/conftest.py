import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from dreamvid.engine.model import load_model
from dreamvid.pixels.images import fit, to_tensor

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def net():
    return load_model("inception_v3")


@pytest.fixture(scope="session")
def photo():
    """A real photo (skimage's astronaut), HxWx3 float32 RGB in [0, 1]."""
    return skimage.data.astronaut().astype(np.float32) / 255.0


@pytest.fixture()
def photo_tensor(photo):
    return to_tensor(fit(photo, (128, 128)))


ROOT = Path(__file__).resolve().parents[1]
# subprocesses import the dreamvid under test, whatever else is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_cli(*args, cwd=None, timeout=300):
    """Run ``python -m dreamvid ARGS`` in a subprocess; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "dreamvid", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=ENV,
    )


def run_here(*args, cwd=None):
    """``dreamvid ARGS`` run in this process (``dreamvid.cli.main``); returns a CompletedProcess
    like :func:`run_cli`. A process start costs seconds (torch's import, the model's load): tests
    not about the program's process itself (its signals, its first import) run commands here.
    The signal handlers a render installs are put back; ``cwd`` is entered for the call."""
    import contextlib
    import io
    import signal

    from dreamvid import cli

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess(["dreamvid", *argv], code, out.getvalue(), err.getvalue())


def write_schedule(folder, *, segments=None, **top):
    """A tiny schedule (96x64, few frames, 2 iterations) in ``folder``; returns its path."""
    import cv2
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "in.png").exists():
        cv2.imwrite(str(folder / "in.png"), skimage.data.coffee()[::4, ::4, ::-1])
    data = {
        "input": "in.png",
        "output": "out/video.mp4",
        "size": [96, 64],
        "fps": 12,
        "seed": 3,
        "checkpoint_every": 4,
        # auto times a bf16 probe on CPUs with bf16 instructions: two test processes could
        # choose differently and their videos differ; tests that are about auto say so
        "precision": "fp32",
        "defaults": {"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.02, "zoom": 1.05},
        "segments": segments or [{"frames": 6, "layers": {"mixed0": 1.0}},
                                 {"frames": 6, "layers": {"mixed3": 1.0}, "transition": 3}],
    }
    data.update(top)
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _forget_fitted_tiles():
    """``tile: auto`` remembers per process what fitted; each test starts without that memory."""
    from dreamvid.engine import ascent

    ascent.forget_fitted_tiles()
    yield


def pan_clip(path, frames=8, size=(96, 64), speed=3, fps=12, sound=False, photo="coffee"):
    """A clip made here: a photo panned right ``speed`` px per frame (its content moves right),
    HxWx3 uint8 frames encoded nearly losslessly; returns its path. ``sound``: a 440 Hz tone."""
    from dreamvid.media.ffmpeg import ffmpeg_exe
    from dreamvid.media.write import VideoWriter

    w, h = size
    img = getattr(skimage.data, photo)().astype(np.float32) / 255
    big = (fit(img, (w + speed * frames, h)) * 255).round().astype(np.uint8)
    wav = None
    if sound:
        wav = path.with_suffix(".wav")
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                        str(wav)], check=True)
    with VideoWriter(path, size, fps, codec="libx264", crf=4, preset="veryfast", audio=wav) as writer:
        for i in range(frames):
            writer.write(big[:, speed * (frames - i): speed * (frames - i) + w].copy())
    return path


def write_video_schedule(folder, clip="clip.mp4", frames=6, **top):
    """write_schedule with a clip as the input (made by :func:`pan_clip` unless it exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / clip).exists():
        pan_clip(folder / clip, frames=max(frames, 8))
    top.setdefault("defaults", {"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.02})
    top.setdefault("fps", "auto")
    return write_schedule(folder, input=clip, segments=[{"frames": frames, "layers": {"mixed3": 1.0}}], **top)
