"""The Python API, through its public names only (``import dreamvid``; ``dreamvid.X``).

What a notebook user relies on: a schedule from a path, a dict or YAML text; frames as
arrays equal to the video's; a render that resumes; stills from any kind of image; a network
of one's own; lazy imports.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import dreamvid
from dreamvid.media.read import read_frames

TINY = {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05}


@pytest.fixture(scope="module")
def net():
    return dreamvid.load_model(device="cpu")  # once: each call without model= loads it again


def schedule_data(**extra):
    data = {"input": "noise", "size": [64, 48], "seed": 3, "defaults": TINY, "precision": "fp32",
            "segments": [{"frames": 5, "layers": {"mixed0": 1.0}}, {"frames": 3, "layers": {"mixed2": 1.0},
                                                                      "transition": 2}]}  # fmt: skip
    data.update(extra)
    return data


def decode(path):
    return read_frames(path)  # with the stream's colour tags, as players decode it


def test_import_is_lazy_and_complete():
    code = ("import sys, dreamvid; assert 'torch' not in sys.modules; "
            "missing = [n for n in dreamvid.__all__ if not hasattr(dreamvid, n)]; assert not missing, missing")
    subprocess.run([sys.executable, "-c", code], check=True)
    # the functions are not shadowed by submodules of the same name once those are imported
    import dreamvid.rendering.loop

    assert callable(dreamvid.render) and callable(dreamvid.dream) and callable(dreamvid.gallery)


def test_load_schedule_from_a_path_a_dict_or_yaml_text(tmp_path):
    import yaml

    data = schedule_data(output="out/v.mp4")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    from_file = dreamvid.load_schedule(tmp_path / "s.yaml")
    from_dict = dreamvid.load_schedule(data, base_dir=tmp_path)
    from_text = dreamvid.load_schedule(yaml.safe_dump(data), base_dir=tmp_path)
    for s in (from_dict, from_text):
        assert s.output_path == from_file.output_path == tmp_path / "out" / "v.mp4"
        assert [s.params(n) for n in range(8)] == [from_file.params(n) for n in range(8)]
    # output may be left out when only frames are wanted; render then asks for one
    frames_only = dreamvid.load_schedule(schedule_data())
    assert frames_only.output_path is None
    with pytest.raises(dreamvid.InputError, match="output: no output file"):
        dreamvid.render(frames_only, progress=False)


def test_the_same_one_line_errors_as_the_command(tmp_path):
    bad = "input: noise\nsegments: [{frames: 2, layers: {mixed9x: 1}}]\n"
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(dreamvid.ScheduleError) as from_text:
        dreamvid.load_schedule(bad)
    with pytest.raises(dreamvid.ScheduleError) as from_file:
        dreamvid.load_schedule(tmp_path / "bad.yaml")
    cli = subprocess.run([sys.executable, "-m", "dreamvid", "validate", str(tmp_path / "bad.yaml")],
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2
    assert cli.stderr.strip() == f"dreamvid: error: {from_file.value}"
    assert str(from_text.value) == str(from_file.value).replace(str(tmp_path / "bad.yaml"), "<schedule>")
    assert "segments[0].layers.mixed9x: unknown layer 'mixed9x' (did you mean 'mixed9'?)" in str(from_text.value)


def test_frames_equal_the_decoded_frames_of_a_lossless_render(tmp_path, net):
    """libx264rgb at crf 0 is lossless for RGB frames (yuv444p is not: its colour conversion
    rounds), so the video's decoded frames must equal frames() exactly."""
    lossless = {"codec": "libx264rgb", "crf": 0, "pix_fmt": "rgb24"}
    s = dreamvid.load_schedule(schedule_data(output="v.mp4", encoder=lossless, checkpoint_every=3), base_dir=tmp_path)
    video = dreamvid.render(s, model=net, progress=False)
    ours = list(dreamvid.frames(s, model=net, progress=False))
    assert len(ours) == 8 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in ours)
    assert all(np.array_equal(a, b) for a, b in zip(decode(video), ours, strict=True))
    assert np.array_equal(dreamvid.preview(s, 6, model=net, progress=False), ours[6])


def test_frames_start_from_what_a_render_left(tmp_path, net):
    s = dreamvid.load_schedule(schedule_data(output="v.mp4", checkpoint_every=3), base_dir=tmp_path)
    dreamvid.render(s, model=net, keep_parts=True, progress=False)  # its checkpoints and saved frames stay
    longer = schedule_data(output="v.mp4", checkpoint_every=3)
    longer["segments"][1]["frames"] = 5  # two frames appended: frames 0..7 are the same
    s10 = dreamvid.load_schedule(longer, base_dir=tmp_path)
    everything = list(dreamvid.frames(dreamvid.load_schedule({**longer, "output": "other.mp4"}, base_dir=tmp_path),
                                      model=net, progress=False))  # fmt: skip
    events = []
    tail = list(dreamvid.frames(s10, start=6, model=net, callback=events.append))
    assert [np.array_equal(a, b) for a, b in zip(tail, everything[6:], strict=True)] == [True] * 4
    assert events[0].event == "start" and events[0].start == 8  # frames 6 and 7 were saved by the render
    assert sum(e.event == "frame" for e in events) == 2  # only frames 8 and 9 were dreamed


def test_dream_takes_a_path_an_array_a_pil_image_or_a_tensor(tmp_path, net):
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), rgb[:, :, ::-1])
    kw = dict(layers={"mixed0": 1.0}, iterations=2, octaves=1, jitter=4, seed=1, model=net)
    outs = [
        dreamvid.dream(tmp_path / "p.png", **kw),
        dreamvid.dream(rgb, **kw),
        dreamvid.dream(Image.fromarray(rgb), **kw),
        dreamvid.dream(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, **kw),
        dreamvid.dream(rgb.astype(np.float32) / 255, **kw),
    ]
    assert outs[0].shape == (40, 56, 3) and outs[0].dtype == np.uint8
    assert not np.array_equal(outs[0], rgb)  # it dreamed
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    assert dreamvid.dream(rgb, size=(32, 32), **kw).shape == (32, 32, 3)
    with pytest.raises(dreamvid.InputError, match="image: an array of shape"):
        dreamvid.dream(np.zeros((4, 4, 5), np.uint8), model=net)


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 2)  # never reached when dreaming: the forward stops at the layer

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def test_a_network_of_your_own_dreams_end_to_end(tmp_path):
    torch.manual_seed(0)
    net = dreamvid.network(TinyCNN(), {"body": "body", "edges": "stem.0"}, input_range=(0, 1),
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="tiny")  # fmt: skip
    assert dreamvid.layers(net) == {"edges": 8, "body": 16}  # forward order, with channels
    data = schedule_data(output="tiny.mp4", segments=[{"frames": 4, "layers": {"body": 1.0, "edges:3": 0.5}}])
    s = dreamvid.load_schedule(data, base_dir=tmp_path, model=net)
    ours = list(dreamvid.frames(s, model=net, progress=False))
    assert np.abs(ours[3].astype(int) - ours[0].astype(int)).mean() > 1  # the tiny net changed the picture
    video = dreamvid.render(s, model=net, progress=False)
    assert len(decode(video)) == 4
    with pytest.raises(dreamvid.ScheduleError, match=r"segments\[0\].layers.mixed0: unknown layer 'mixed0'; expected one of edges, body"):
        dreamvid.load_schedule(schedule_data(), model=net)
    with pytest.raises(dreamvid.InputError, match="layers.nope: TinyCNN has no submodule 'nope'"):
        dreamvid.network(TinyCNN(), {"nope": "nope"})
    with pytest.raises(dreamvid.InputError, match=r"expected dreamvid.network\(module, layers="):
        dreamvid.layers(TinyCNN())


def test_show_outside_a_notebook_says_so_in_one_line(capsys):
    dreamvid.show(np.zeros((8, 8, 3), np.uint8))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not in a notebook" in err[0]


def test_the_quickstart_notebook_runs(tmp_path):
    """examples/quickstart.ipynb executes on the CPU (its outputs are stripped in the repo)."""
    import nbformat
    from nbclient import NotebookClient

    from tests.conftest import ROOT

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip the notebook's outputs"
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "display_data"]
    assert any("image/png" in o.data for o in shown) and any("text/html" in o.data for o in shown)
    assert (tmp_path / "quickstart.mp4").is_file()
