"""Brand colours as viewers see them (issue 35): a colour chart rendered without dreaming comes
out of the video, decoded as a colour-managed player decodes it, within CIEDE2000 2 of the input.

The player here is independent of dreamvid's reader: ffmpeg hands over the raw YCbCr planes
(no conversion), the stream's tags in ``ffmpeg -i``'s report choose the matrix (untagged: BT.709
for HD, BT.601 below, as browsers and QuickTime do), and the maths below turns them into RGB.
"""

import re
import subprocess

import cv2
import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

import dreamvid
from dreamvid.core.progress import Progress
from dreamvid.media import colourspace as C
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import probe_clip, read_frames
from dreamvid.media.write import VideoWriter, join_videos, part_colour
from tests.conftest import write_schedule

# brand-like colours: saturated greens, magentas and reds move most between BT.601 and BT.709
CHART = np.array([(40, 200, 60), (200, 60, 200), (220, 40, 40), (30, 60, 220), (240, 220, 30), (0, 160, 170),
                  (250, 120, 20), (128, 128, 128)], dtype=np.uint8)
KR_KB = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}  # luma weights of red and blue per matrix
MAX_DE = 2.0


def chart(size):
    """An HxWx3 chart: one vertical stripe per CHART colour."""
    w, h = size
    rgb = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(CHART):
        rgb[:, i * w // len(CHART): (i + 1) * w // len(CHART)] = c
    return rgb


def patches(rgb):
    """Each stripe's median colour, away from its edges (where 4:2:0 chroma blends neighbours)."""
    h, w = rgb.shape[:2]
    n, m = len(CHART), max(4, w // (8 * len(CHART)))
    return np.array([np.median(rgb[h // 4: 3 * h // 4, i * w // n + m: (i + 1) * w // n - m].reshape(-1, 3), axis=0)
                     for i in range(n)])


def worst_de(got):
    return float(deltaE_ciede2000(rgb2lab(CHART[None] / 255.0), rgb2lab(np.asarray(got, float)[None] / 255.0)).max())


def stream_line(path):
    # no output named: ffmpeg reports the input and exits 1
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                         check=False).stderr
    return next(line.strip() for line in err.splitlines() if "Video:" in line)


def player_matrix(line, size):
    """The matrix a colour-managed player decodes with: the tagged one, else its convention by size."""
    found = re.search(r"yuv420p\((?:tv|pc)?(?:, )?([a-z0-9]+)", line)
    tag = found[1] if found and found[1] != "progressive" else None
    if tag in ("smpte170m", "bt470bg"):
        return "bt601"
    if tag in ("bt709", None):
        return tag or ("bt709" if size[0] >= 1280 or size[1] >= 720 else "bt601")
    raise AssertionError(f"unexpected matrix tag in {line}")


def player_decode(path, size, matrix):
    """Frame 0 of a limited-range yuv420p ``path`` as RGB, with ``matrix``: raw planes, own maths."""
    w, h = size
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout  # the stream's own yuv420p, unconverted
    assert len(raw) == w * h * 3 // 2, "expected yuv420p"
    y = np.frombuffer(raw, np.uint8, w * h).reshape(h, w).astype(float)
    u, v = (np.frombuffer(raw, np.uint8, w * h // 4, w * h + k * w * h // 4).reshape(h // 2, w // 2)
            .repeat(2, 0).repeat(2, 1).astype(float) for k in (0, 1))
    kr, kb = KR_KB[matrix]
    luma, cb, cr = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    r, b = luma + 2 * (1 - kr) * cr, luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return (np.clip(np.stack([r, g, b], -1), 0, 1) * 255).round()


def render_chart(folder, size, net, clip=None):
    """A render of the chart (or of ``clip``) with no dreaming and no colour control."""
    defaults = {"iterations": 0, "colour": "none", "saturation_match": 0.0, "zoom": 1.0}
    if clip is None:
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "chart.png"), chart(size)[:, :, ::-1])
    else:
        defaults["flow"] = "none"
    path = write_schedule(folder, input=clip or "chart.png", size=list(size), fps=8, checkpoint_every=2,
                          defaults=defaults, segments=[{"frames": 3, "layers": {"mixed0": 1.0}}])
    return dreamvid.render(dreamvid.load_schedule(path), model=net, progress=False)


@pytest.mark.parametrize("size, tags", [((1280, 720), "yuv420p(tv, bt709, progressive)"),
                                        ((320, 240), "yuv420p(tv, smpte170m/bt709/bt709, progressive)")])
def test_a_chart_rendered_without_dreaming_shows_its_colours_in_a_player(tmp_path, net, size, tags):
    video = render_chart(tmp_path, size, net)
    line = stream_line(video)
    assert tags in line, line  # tagged, so no player guesses (main: untagged, BT.601 at every size)
    got = patches(player_decode(video, size, player_matrix(line, size)))
    assert worst_de(got) <= MAX_DE, (worst_de(got), got.tolist())  # main at 1280x720: 7.7


def tagged_clip(path, size, frames=4):
    """An HD clip as a camera or an editor exports it: BT.709, tagged (made by ffmpeg directly)."""
    w, h = size
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "8", "-i", "-", "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
                    "-c:v", "libx264", "-crf", "4", "-preset", "veryfast", "-colorspace", "bt709",
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", str(path)],
                   input=chart(size).tobytes() * frames, check=True)
    return path


def test_a_tagged_hd_clip_input_keeps_its_colours(tmp_path, net):
    size = (1280, 720)
    tagged_clip(tmp_path / "clip.mp4", size)
    assert "bt709" in stream_line(tmp_path / "clip.mp4")
    assert worst_de(patches(read_frames(tmp_path / "clip.mp4")[0])) <= MAX_DE  # read with its tags
    video = render_chart(tmp_path, size, net, clip="clip.mp4")
    line = stream_line(video)
    got = patches(player_decode(video, size, player_matrix(line, size)))
    assert worst_de(got) <= MAX_DE, (worst_de(got), got.tolist())  # main: 7.3


def test_untagged_hd_is_read_as_players_read_it_and_validate_notes_it(tmp_path):
    size = (1280, 720)
    w, h = size
    clip = tmp_path / "untagged.mp4"  # BT.709 numbers with no tags: what a player assumes at HD
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "8", "-i", "-", "-vf", ("scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
                                                  "setparams=colorspace=unknown:range=unknown"), "-c:v", "libx264", "-crf", "4", "-preset", "veryfast",
                    str(clip)],
                   input=chart(size).tobytes() * 2, check=True)
    assert "yuv420p(progressive)" in stream_line(clip)  # no tags
    assert probe_clip(clip).tags.untagged
    assert worst_de(patches(read_frames(clip)[0])) <= MAX_DE
    notes = []
    path = write_schedule(tmp_path, input="untagged.mp4", size=[w, h], fps="auto",
                          segments=[{"frames": 2, "layers": {"mixed0": 1.0}}])
    dreamvid.validate(path, callback=lambda p: notes.append(p.message) if p.event == "warning" else None)
    assert any("untagged.mp4: no colour tags: decoded with the BT.709 matrix" in n for n in notes), notes
    tagged_clip(tmp_path / "untagged.mp4", size, frames=2)  # the same clip with tags: nothing to note
    dreamvid.validate(path, callback=lambda p: notes.append(p.message) if isinstance(p, Progress) else None)
    assert sum("no colour tags" in n for n in notes) == 1, notes


@pytest.mark.parametrize("codec, pix_fmt, tags", [
    ("libx264", "yuv444p", "yuv444p(tv, smpte170m/bt709/bt709"),
    ("libx264", "yuv420p10le", "yuv420p10le(tv, smpte170m/bt709/bt709"),
    ("libx265", "yuv420p10le", "yuv420p10le(tv, smpte170m/bt709/bt709"),
    ("libsvtav1", "yuv420p", "yuv420p(tv, smpte170m/bt709/bt709"),
    ("prores_ks", "yuv422p10le", "yuv422p10le(tv, smpte170m/bt709/bt709"),
    ("libx264", "yuvj420p", "yuvj420p(pc, smpte170m/bt709/bt709"),
    ("libx264rgb", "rgb24", "(pc, gbr/bt709/bt709"),
])
def test_pixel_formats_and_codecs_keep_their_options_with_tags(tmp_path, codec, pix_fmt, tags):
    size = (128, 64)
    path = tmp_path / ("v.mov" if codec == "prores_ks" else "v.mp4")
    with VideoWriter(path, size, 8, codec=codec, crf=10, preset=None, pix_fmt=pix_fmt) as writer:
        for _ in range(2):
            writer.write(chart(size))
    line = stream_line(path)
    assert tags in line, line
    assert worst_de(patches(read_frames(path)[0])) <= MAX_DE


def test_joined_parts_and_their_sound_keep_the_tags(tmp_path):
    size, parts = (1280, 720), []
    for k in range(2):
        parts.append(tmp_path / f"part{k}.mp4")
        with VideoWriter(parts[-1], size, 8, codec="libx264", preset="veryfast") as writer:
            writer.write(chart(size))
    wav = tmp_path / "a.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(wav)], check=True)
    colour = C.for_writing(size, "yuv420p")
    out = join_videos(parts, tmp_path / "all.mp4", audio=wav, durations=[1 / 8] * 2, fps=8, colour=colour)
    line = stream_line(out)
    assert "yuv420p(tv, bt709, progressive)" in line, line
    assert worst_de(patches(player_decode(out, size, player_matrix(line, size)))) <= MAX_DE


def test_a_render_begun_untagged_keeps_its_matrix_and_is_tagged_with_it(tmp_path):
    """Parts written before colours were tagged used ffmpeg's default, BT.601 (at HD too): the
    rest of that render keeps it, and the joined video says so in the stream and container."""
    size = (1280, 720)
    w, h = size
    old = tmp_path / "old.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "8", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(old)],
                   input=chart(size).tobytes(), check=True)
    colour = part_colour(old, size, "yuv420p")
    assert colour == C.Colour("smpte170m")
    with VideoWriter(tmp_path / "new.mp4", size, 8, codec="libx264", preset="veryfast", colour=colour) as writer:
        writer.write(chart(size))
    out = join_videos([old, tmp_path / "new.mp4"], tmp_path / "all.mp4", fps=8, colour=colour)
    line = stream_line(out)
    assert "yuv420p(tv, smpte170m/bt709/bt709, progressive)" in line, line
    assert all(worst_de(patches(f)) <= MAX_DE for f in read_frames(out))


@pytest.mark.parametrize("line, tags", [
    ("Stream #0:0: Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1280x720",
     C.Tags("bt709", "tv", "bt709", "bt709")),
    ("Stream #0:0: Video: h264, yuv420p(tv, smpte170m/bt709/bt709, progressive), 320x240",
     C.Tags("smpte170m", "tv", "bt709", "bt709")),
    ("Stream #0:0: Video: h264 (High), yuv420p(progressive), 1920x1080", C.Tags()),
    ("Stream #0:0: Video: h264, yuv420p(tv, progressive), 1920x1080", C.Tags(range="tv")),
    ("Stream #0:0: Video: h264, yuv420p(bt709/unknown/unknown, progressive), 1920x1080", C.Tags(matrix="bt709")),
    ("Stream #0:0: Video: mjpeg, yuvj420p(pc, bt470bg/unknown/unknown), 640x480", C.Tags("bt470bg", "pc")),
    ("Stream #0:0: Video: gif, bgra, 64x48", C.Tags()),
])
def test_tags_are_read_from_ffmpegs_report(line, tags):
    assert C.parse_tags(line) == tags


def test_untagged_streams_follow_the_players_convention():
    assert C.for_reading(C.Tags(), (1280, 534)).matrix == "bt709"  # a wide HD film: 1280 wide
    assert C.for_reading(C.Tags(), (960, 720)).matrix == "bt709"
    assert C.for_reading(C.Tags(), (1278, 718)).matrix == "smpte170m"
    assert C.for_reading(C.Tags("bt709"), (320, 240)).matrix == "bt709"  # tags win
