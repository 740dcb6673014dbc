"""`dreamvid gallery` (a labelled contact sheet of layers) and `dreamvid validate --plot` (the timeline)."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dreamvid.core.errors import InputError
from dreamvid.engine.ascent import DreamSettings
from dreamvid.engine.catalogue import layer_catalogue
from dreamvid.pixels.images import fit, read_image, to_tensor
from dreamvid.schedule.schedule import load_schedule
from dreamvid.tools import gallery, timeline

from .conftest import run_here, write_schedule


def _sheet_size(tiles: int, side: int, columns: int) -> tuple[int, int]:
    """(height, width) of a sheet, from the layout: PAD around and between tiles, a caption under each."""
    rows = -(-tiles // columns)
    return (rows * (side + gallery.LABEL_HEIGHT + gallery.PAD) + gallery.PAD,
            columns * (side + gallery.PAD) + gallery.PAD)


def test_gallery_cli_writes_a_labelled_grid(tmp_path):
    cv2.imwrite(str(tmp_path / "in.png"), (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8))
    keys = ["conv2d_2", "mixed0", "mixed0:3"]
    r = run_here("gallery", "--image", "in.png", "--size", 64, "--iterations", 1, "--octaves", 1, "--columns", 3,
                "--layers", *keys, "-o", "g.png", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sheet = cv2.imread(str(tmp_path / "g.png"))[:, :, ::-1]
    assert sheet.shape[:2] == _sheet_size(len(keys) + 1, 64, 3)  # the input, then one tile per key

    p, s, lab = gallery.PAD, 64, gallery.LABEL_HEIGHT
    tile = lambda i: sheet[p + (i // 3) * (s + lab + p):][:s, p + (i % 3) * (s + p):][:, :s]  # noqa: E731
    caption = lambda i: sheet[p + (i // 3) * (s + lab + p) + s:][:lab, p + (i % 3) * (s + p):][:, :s]  # noqa: E731
    expected_input = np.round(fit(read_image(tmp_path / "in.png"), (64, 64)) * 255).astype(np.uint8)
    assert np.abs(tile(0).astype(int) - expected_input).max() <= 1  # first tile: the picture undreamed
    for i in range(1, 4):
        assert np.abs(tile(i).astype(int) - expected_input).mean() > 1, f"tile {i} was not dreamed"
    for i in range(4):
        assert caption(i).max() > 200, f"tile {i} has no caption"
    assert tile(4).max() == 0 and caption(4).max() == 0  # the unused slot stays empty


def test_gallery_cli_rejects_an_unknown_layer_before_writing(tmp_path):
    r = run_here("gallery", "--size", 64, "--layers", "mixed0", "mixed9x", "-o", "g.png", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "mixed9x" in r.stderr and "expected one of" in r.stderr
    assert not (tmp_path / "g.png").exists()


def test_default_keys_are_every_layer_then_the_strongest_channels(net, photo):
    catalogue = layer_catalogue("inception_v3")
    image = to_tensor(fit(photo, (96, 96)))
    keys = gallery.gallery_keys(net, image, catalogue, channels=2)
    assert keys[: len(catalogue)] == list(catalogue)
    extra = keys[len(catalogue):]
    assert [k.split(":")[0] for k in extra] == ["mixed3", "mixed3", "mixed4", "mixed4"]
    with torch.no_grad():
        means = net(image, ["mixed4"])["mixed4"][0].mean(dim=(1, 2))
    chosen = [int(k.split(":")[1]) for k in extra[2:]]
    others = means[[c for c in range(len(means)) if c not in chosen]]
    assert means[chosen].min() >= others.max()  # no unchosen channel fires more


def test_too_small_tiles_name_the_size_that_works(net):
    with pytest.raises(InputError, match=r"mixed10.*at least (\d+) pixels") as err:
        gallery.check_size(net, ["mixed0", "mixed10"], 48, 48)
    need = int(err.value.args[0].split("at least ")[1].split()[0])
    gallery.check_size(net, ["mixed10"], need, need)  # the size it names works
    with pytest.raises(InputError):
        gallery.check_size(net, ["mixed10"], need - 1, need - 1)
    gallery.check_size(net, ["mixed0"], 48, 48)  # shallow layers are fine that small


def test_validate_plot_writes_the_timeline(tmp_path):
    path = write_schedule(tmp_path)
    r = run_here("validate", path, "--plot", "t.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    png = cv2.imread(str(tmp_path / "t.png"))
    assert png.shape[:2] == (round(timeline.FIGSIZE[1] * timeline.DPI), round(timeline.FIGSIZE[0] * timeline.DPI))
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 10  # something was drawn


def test_validate_plot_writes_nothing_for_a_bad_schedule(tmp_path):
    path = write_schedule(tmp_path, segments=[{"frames": 4, "layers": {"mixed9x": 1.0}}])
    r = run_here("validate", path, "--plot", "t.png", cwd=tmp_path)
    assert r.returncode == 2 and "mixed9x" in r.stderr
    assert not (tmp_path / "t.png").exists()


def test_timeline_values_are_the_renderers_and_the_size_follows_dpi(tmp_path):
    s = load_schedule(write_schedule(tmp_path, segments=[
        {"frames": 5, "layers": {"mixed0": 1.0}, "zoom": {0: 1.0, 4: 1.1}},
        {"frames": 5, "layers": {"mixed3": 2.0}, "transition": 4, "rotate": 0.5, "translate": [1, -2]},
    ]))
    t = timeline.timeline(s)
    assert list(t.frames) == list(range(10))
    for n in range(10):
        p = s.params(n)
        assert (t.zoom[n], t.rotate[n], tuple(t.translate[n])) == (p.zoom, p.rotate, p.translate)
        assert {k: v[n] for k, v in t.layers.items() if v[n]} == p.layers
    assert list(t.layers) == ["mixed0", "mixed3"]
    assert t.layers["mixed3"][7] == pytest.approx(1.0)  # frame 2 of a 4-frame transition: half of 2.0
    out = timeline.plot_timeline(s, tmp_path / "small.png", figsize=(4, 3), dpi=50)
    assert cv2.imread(str(out)).shape[:2] == (150, 200)


def test_timeline_shows_center_guide_and_mask_only_where_used(tmp_path):
    plain = load_schedule(write_schedule(tmp_path / "plain"))
    assert timeline.extra_panels(timeline.timeline(plain)) == []  # the plot of a schedule without them is as before
    folder = tmp_path / "used"
    folder.mkdir()
    cv2.imwrite(str(folder / "g.png"), np.full((8, 8, 3), 200, np.uint8))
    s = load_schedule(write_schedule(folder, mask="g.png", segments=[
        {"frames": 4, "layers": {"mixed3": 1.0}, "center": [{0: 0.5, 3: 0.2}, 0.5], "guide": "g.png",
         "guide_weight": {0: 0.0, 3: 2.0}, "mask_strength": 0.5}]))
    panels = dict(timeline.extra_panels(timeline.timeline(s)))
    assert list(panels) == ["center (fraction)", "guide / mask"]
    assert np.allclose(dict(panels["center (fraction)"])["x"], [0.5, 0.4, 0.3, 0.2])
    assert np.allclose(dict(panels["guide / mask"])["guide_weight"], [0, 2 / 3, 4 / 3, 2])
    header, rows = timeline.params_table(s)
    assert {"center_x", "center_y", "guide_weight", "mask_strength", "gradient_norm"} <= set(header)
    assert rows[3][header.index("guide_weight")] == 2.0 and rows[0][header.index("mask_strength")] == 0.5
    two = load_schedule(write_schedule(folder, segments=[{"frames": 2, "layers": {"mixed3": 1.0}},
                                                         {"frames": 2, "layers": {"mixed3": 1.0}, "guide": "g.png"}]))
    header, rows = timeline.params_table(two)  # a guide from the second segment on still gets its column
    assert [row[header.index("guide")] for row in rows] == [None, None, folder / "g.png", folder / "g.png"]
    assert timeline.plot_timeline(s, tmp_path / "t.png").is_file()


def test_gallery_guide_is_shown_and_pulls_the_tiles(tmp_path, net):
    picture = fit(skimage.data.coffee().astype(np.float32) / 255.0, (96, 96))
    guide = fit(skimage.data.chelsea().astype(np.float32) / 255.0, (96, 96))
    settings = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=4)
    plain = gallery.make_gallery(net, picture, net.catalogue, settings, keys=["mixed3"], columns=3)
    guided = gallery.make_gallery(net, picture, net.catalogue, settings, keys=["mixed3"], columns=3, guide=guide,
                                  guide_weight=3.0)  # fmt: skip
    assert plain.shape[:2] == _sheet_size(2, 96, 2) and guided.shape[:2] == _sheet_size(3, 96, 3)
    p = gallery.PAD
    tile = lambda sheet, i: sheet[p : p + 96, p + i * (96 + p) :][:, :96].astype(int)  # noqa: E731
    assert np.abs(tile(guided, 1) - np.round(guide * 255)).max() <= 1  # the guide comes after the input
    assert np.abs(tile(guided, 2) - tile(plain, 1)).mean() > 1  # the guide changed the dream


def test_gallery_cli_takes_a_guide(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), skimage.data.chelsea()[::4, ::4, ::-1])
    r = run_here("gallery", "--size", 64, "--iterations", 1, "--octaves", 1, "--layers", "mixed0", "--guide", "g.png",
                "--guide-weight", 2, "-o", "out.png", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape[:2] == _sheet_size(3, 64, 3)  # input, guide, mixed0
    r = run_here("gallery", "--size", 64, "--layers", "mixed0", "--guide", "nothere.png", "-o", "x.png", cwd=tmp_path)
    assert r.returncode == 2 and "nothere.png" in r.stderr and not (tmp_path / "x.png").exists()
