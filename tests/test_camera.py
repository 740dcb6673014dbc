import torch
import torch.nn.functional as F

from dreamvid.pixels.camera import move


def dot(h, w, y, x):
    img = torch.zeros(1, 3, h, w)
    img[..., y - 1 : y + 2, x - 1 : x + 2] = 1.0
    return img


def centroid(img):
    m = img[0, 0]
    ys, xs = torch.meshgrid(torch.arange(m.shape[0]), torch.arange(m.shape[1]), indexing="ij")
    return (m * ys).sum().item() / m.sum().item(), (m * xs).sum().item() / m.sum().item()


def test_identity_is_a_no_op():
    x = torch.rand(1, 3, 20, 30)
    assert move(x, 1.0) is x


def test_zoom_in_scales_about_the_centre():
    h, w = 60, 80  # centre at (29.5, 39.5) in pixel coordinates
    out = move(dot(h, w, 20, 30), zoom=2.0)
    y, x = centroid(out)
    assert abs(y - (29.5 + 2 * (20 - 29.5))) < 0.6 and abs(x - (39.5 + 2 * (30 - 39.5))) < 0.6


def test_zoom_matches_upscaled_centre_crop():
    x = F.interpolate(torch.rand(1, 3, 16, 16), size=(64, 64), mode="bilinear", align_corners=False)
    out = move(x, zoom=2.0)
    crop = F.interpolate(x[..., 16:48, 16:48], size=(64, 64), mode="bilinear", align_corners=False)
    assert (out - crop)[..., 4:-4, 4:-4].abs().max() < 0.02


def test_translate_moves_right_and_down():
    y, x = centroid(move(dot(40, 50, 20, 20), zoom=1.0, translate=(5.0, -3.0)))
    assert abs(x - 25) < 0.01 and abs(y - 17) < 0.01


def test_rotation_keeps_shape_on_wide_frames():
    # a dot 20 px right of the centre, rotated 90 degrees counter-clockwise, ends 20 px above it
    h, w = 61, 101  # centre (30, 50)
    y, x = centroid(move(dot(h, w, 30, 70), zoom=1.0, rotate=90.0))
    assert abs(y - 10) < 0.6 and abs(x - 50) < 0.6


def _fixed_point(theta):
    """The point (grid_sample's [-1, 1] units) that the output-to-input map leaves in place."""
    a, b = theta[:, :2].double(), theta[:, 2].double()
    return torch.linalg.solve(torch.eye(2, dtype=torch.float64) - a, b)


def test_center_is_the_fixed_point_of_the_zoom():
    from dreamvid.pixels.camera import affine_theta

    w, h = 160, 90
    x, y = _fixed_point(affine_theta((w, h), 1.05, 0.0, (0.0, 0.0), (0.25, 0.5)))
    assert abs((x.item() + 1) / 2 - 0.25) < 1e-6 and abs((y.item() + 1) / 2 - 0.5) < 1e-6  # a quarter of the width
    x, y = _fixed_point(affine_theta((w, h), 1.05, 10.0, (0.0, 0.0), (0.7, 0.2)))  # rotation turns about it too
    assert abs((x.item() + 1) / 2 - 0.7) < 1e-6 and abs((y.item() + 1) / 2 - 0.2) < 1e-6


def test_center_keeps_a_dot_there_in_the_image():
    h, w = 60, 80
    out = move(dot(h, w, 30, 20), zoom=1.05, center=(20.5 / w, 30.5 / h))  # pixel (20, 30)'s middle
    y, x = centroid(out)
    assert abs(y - 30) < 0.05 and abs(x - 20) < 0.05
    y, x = centroid(move(dot(h, w, 30, 20), zoom=1.05))  # about the middle the dot moves out
    assert x < 19.5


def test_default_center_is_bit_identical():
    from dreamvid.pixels.camera import affine_theta

    x = torch.rand(1, 3, 30, 50)
    assert torch.equal(affine_theta((50, 30), 1.03, 2.0, (1.5, -2.0)), affine_theta((50, 30), 1.03, 2.0, (1.5, -2.0), (0.5, 0.5)))
    assert torch.equal(move(x, 1.03, 2.0, (1.5, -2.0)), move(x, 1.03, 2.0, (1.5, -2.0), (0.5, 0.5)))
