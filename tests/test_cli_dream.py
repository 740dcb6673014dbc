import cv2
import skimage.data

from .conftest import run_cli


def test_dream_writes_a_png_of_the_requested_size(tmp_path):
    src = tmp_path / "coffee.png"
    cv2.imwrite(str(src), skimage.data.coffee()[:, :, ::-1])
    out = tmp_path / "sub" / "dreamed.png"
    r = run_cli("dream", src, "-o", out, "--size", "160x96", "--iterations", "3", "--octaves", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape == (96, 160, 3)
    assert not list(out.parent.glob(".*partial*"))


def test_unknown_layer_is_one_line_exit_2(tmp_path):
    src = tmp_path / "coffee.png"
    cv2.imwrite(str(src), skimage.data.coffee()[:, :, ::-1])
    r = run_cli("dream", src, "-o", tmp_path / "x.png", "--layers", "mixed3+mixed99")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "mixed99" in lines[0] and "mixed0" in lines[0] and "mixed10" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_layers_lists_names_and_channels():
    r = run_cli("layers")
    assert r.returncode == 0
    assert "mixed3" in r.stdout and "768" in r.stdout
    r = run_cli("layers", "--model", "vgg16")
    assert "conv4_3" in r.stdout
