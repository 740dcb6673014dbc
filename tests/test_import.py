"""dreamvid import: Deforum settings and Parseq manifests (schedules/deforum-2d.txt and
schedules/parseq-manifest.json, files of our own in those tools' formats) as schedules whose
camera is Deforum's, frame for frame and pixel for pixel."""

import json
import math
import os
import re

import cv2
import numpy as np
import pytest
import yaml

import dreamvid
from dreamvid.schedule.importers import ImportError_, import_file, write_import
from dreamvid.schedule.schedule import parse_schedule
from tests.conftest import ROOT, run_here

DEFORUM = ROOT / "schedules" / "deforum-2d.txt"
PARSEQ = ROOT / "schedules" / "parseq-manifest.json"


# ------------------------------------------------------------ Deforum's rules, written out again


def deforum_series(text: str, max_frames: int, seed: int) -> np.ndarray:
    """Deforum's FrameInterpolater, re-implemented for the test: keys split on commas and colons,
    quoted frames computed with max_f and s, a number key kept for interpolation, a formula key
    evaluated at every frame up to the next key, then pandas' linear interpolation."""
    env = {"max_f": max_frames - 1, "s": seed, "sin": math.sin, "cos": math.cos}
    keys = {}
    for part in text.split(","):
        frame, value = part.split(":")[:2]
        frame = frame.strip().strip("'\"")
        keys[int(frame) if re.fullmatch(r"-?\d+", frame) else int(eval(frame, env))] = value.strip()
    out = np.full(max_frames, np.nan)
    is_number, value = True, None
    for i in range(max_frames):
        if i in keys:
            value = keys[i]
            plain = value.replace("(", "").replace(")", "").replace("'", "").replace('"', "")
            try:
                out[i], is_number = float(plain), True
            except ValueError:
                is_number = False
        if not is_number:
            out[i] = eval(value, {**env, "t": i})
    valid = np.flatnonzero(~np.isnan(out))
    out[0], out[-1] = out[valid[0]], out[valid[-1]]
    valid = np.flatnonzero(~np.isnan(out))
    return np.interp(np.arange(max_frames), valid, out[valid])


def deforum_warp(image: np.ndarray, zoom, angle, tx, ty, cx, cy) -> np.ndarray:
    """Deforum's anim_frame_warp_2d: getRotationMatrix2D about (W*cx, H*cy) times the translation,
    through warpPerspective with replicated borders."""
    h, w = image.shape[:2]
    rot = np.vstack([cv2.getRotationMatrix2D((w * cx, h * cy), angle, zoom), [0, 0, 1]])
    trans = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return cv2.warpPerspective(image, rot @ trans, (w, h), borderMode=cv2.BORDER_REPLICATE)


def imported(tmp_path, source=DEFORUM, **kw):
    out = tmp_path / "imported.yaml"
    result = import_file(source, out, **kw)
    return result, parse_schedule(result.data, source=out, check_files=False)


# ------------------------------------------------------------------------ values per frame


def test_deforum_keyframes_give_deforums_values_at_every_frame_maths_included(tmp_path):
    settings = json.loads(DEFORUM.read_text())
    frames, seed = settings["max_frames"], settings["seed"]
    _, s = imported(tmp_path)
    assert s.total_frames == frames and s.fps == 12 and s.seed == seed and s.size == (256, 144)
    expect = {name: deforum_series(settings[key], frames, seed) for name, key in (
        ("zoom", "zoom"), ("rotate", "angle"), ("tx", "translation_x"), ("ty", "translation_y"),
        ("cx", "transform_center_x"), ("cy", "transform_center_y"))}
    assert expect["rotate"][40] == pytest.approx(1.0)  # "32: (s/7)": Deforum's s is the seed, 7
    assert expect["zoom"][47] == 1.03  # the key at "max_f"
    for n in range(frames):
        p = s.params(n)
        got = {"zoom": p.zoom, "rotate": p.rotate, "tx": p.translate[0], "ty": p.translate[1],
               "cx": p.center[0], "cy": p.center[1]}
        for name, value in got.items():
            assert value == pytest.approx(expect[name][n], abs=1e-9), (name, n)
        assert p.camera == "deforum"


def test_a_deforum_s_becomes_seed_and_frames_may_be_formulas(tmp_path):
    result, _ = imported(tmp_path)
    text = yaml.safe_dump(result.data)
    assert "seed/7" in text and "s/7" not in text.replace("seed/7", "")
    assert "max_f" in text  # carried as written: dreamvid knows max_f now


def test_parseq_deltas_are_the_per_frame_camera(tmp_path):
    manifest = json.loads(PARSEQ.read_text())
    rows = manifest["rendered_frames"]
    result, s = imported(tmp_path, PARSEQ, size=(128, 72))
    assert s.total_frames == len(rows) and s.fps == manifest["options"]["output_fps"] and s.size == (128, 72)
    for row in rows:
        p = s.params(row["frame"])
        assert p.zoom == pytest.approx(row["zoom_delta"], abs=1e-12)
        assert p.rotate == pytest.approx(row["angle_delta"], abs=1e-12)
        assert p.translate == pytest.approx((row["translation_x_delta"], 0.0), abs=1e-12)
    assert any("translation_y_delta: not in the manifest" in n for n in result.notes)


def test_a_manifest_inside_deforum_settings_holds_its_last_values_past_its_frames(tmp_path):
    settings = json.loads(DEFORUM.read_text())
    manifest = json.loads(PARSEQ.read_text())
    manifest["options"]["output_fps"] = 24
    settings.update(parseq_manifest=json.dumps(manifest), parseq_non_schedule_overrides=False, max_frames=50)
    path = tmp_path / "with-manifest.txt"
    path.write_text(json.dumps(settings))
    result, s = imported(tmp_path, path)
    rows = manifest["rendered_frames"]
    assert s.total_frames == 50 and s.fps == 12  # the settings' own, as Deforum with overrides off
    for n in range(50):
        row = rows[min(n, len(rows) - 1)]
        assert s.params(n).zoom == pytest.approx(row["zoom_delta"], abs=1e-12), n
    # what the manifest does not have comes from the settings' own schedule
    assert s.params(20).translate[1] == -0.5
    assert any("output_fps 24 differs from the settings' fps 12" in w for w in result.warnings)


def test_what_has_no_meaning_here_is_listed_one_line_each(tmp_path):
    result, _ = imported(tmp_path)
    settings = json.loads(DEFORUM.read_text())
    notes = "\n".join(result.notes)
    for key in ("prompts", "strength", "cfg_scale_schedule", "sampler", "seed_schedule", "sd_model_name"):
        assert re.search(rf"^not carried: {key} = ", notes, re.MULTILINE), key
    assert "not carried: translation_z and 1 more: 3D motion" in notes  # translation_z, rotation_3d_x
    assert "not carried: cn_1_enabled and 2 more: ControlNet unit 1" in notes
    assert "border: 'replicate'" in notes and "diffusion_cadence" not in notes  # carried: cadence 2
    # every key is read or listed: none is dropped without a word
    from dreamvid.schedule.importers.deforum import READ

    lines = re.finditer(r"^not carried: (\S+)(?: and (\d+) more)?", notes, re.MULTILINE)
    listed = sum(int(m.group(2) or 0) + 1 for m in lines)
    assert listed + len([k for k in settings if k in READ]) == len(settings)
    assert all("\n" not in line for line in result.notes)


# ---------------------------------------------------------------------------- the camera path


def _smooth_picture(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 13.0), 0.5 + 0.4 * np.cos((x + 2 * y) / 17.0),
                    0.2 + 0.6 * x / w], axis=2)
    return np.round(rgb * 255).astype(np.uint8)


def _camera_error(tmp_path, net, camera: str) -> tuple[float, float, float]:
    """Mean and largest |dreamvid - Deforum| (0..1) over the pixels Deforum's warps never take from
    outside the picture, and the share of such pixels."""
    settings = json.loads(DEFORUM.read_text())
    w, h, frames, seed = settings["W"], settings["H"], settings["max_frames"], settings["seed"]
    picture = _smooth_picture(w, h)
    tmp_path.mkdir()
    cv2.imwrite(str(tmp_path / "start.png"), picture[:, :, ::-1])
    result = import_file(DEFORUM, tmp_path / "s.yaml", layers="mixed3", input=tmp_path / "start.png")
    data = result.data
    data["defaults"].update(iterations=0, colour="none", camera=camera, cadence=1)  # each frame moved on its own
    s = parse_schedule(data, source=tmp_path / "s.yaml")
    got = [f.astype(np.float32) / 255 for f in dreamvid.frames(s, model=net, progress=False)]
    keys = {k: deforum_series(settings[k], frames, seed) for k in (
        "zoom", "angle", "translation_x", "translation_y", "transform_center_x", "transform_center_y")}
    image, inside = picture.astype(np.float32) / 255, np.ones((h, w), np.float32)
    for n in range(1, frames):
        args = [keys[k][n] for k in keys]
        image = deforum_warp(image, *args)
        inside = cv2.warpPerspective(inside, _matrix(w, h, *args), (w, h), borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    diff = np.abs(got[-1] - image)[valid]
    return float(diff.mean()), float(diff.max()), float(valid.mean())


def _matrix(w, h, zoom, angle, tx, ty, cx, cy):
    rot = np.vstack([cv2.getRotationMatrix2D((w * cx, h * cy), angle, zoom), [0, 0, 1]])
    return rot @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)


def test_an_imported_schedule_moves_the_picture_as_deforums_2d_warp_does(tmp_path, net):
    """47 moves (zoom by a formula of t/max_f, a sine turn, a turn of s/7 degrees, translation
    and an off-centre centre) undreamed: the last frame against Deforum's warps applied frame
    after frame with OpenCV. What differs: bilinear weights (OpenCV rounds the sampling position
    to 1/32 pixel; grid_sample does not), 8-bit output, and the borders (reflection here,
    replication there), which are left out: only pixels Deforum never takes from outside count."""
    mean, largest, share = _camera_error(tmp_path / "deforum", net, "deforum")
    print(f"deforum: mean {mean:.5f}, largest {largest:.4f} over {share:.0%} of the frame")
    assert share > 0.5
    assert mean < 0.004 and largest < 0.03, (mean, largest)
    # the check can fail: dreamvid's own order (translate after the turn and zoom) drifts away
    other_mean, other_largest, _ = _camera_error(tmp_path / "dreamvid", net, "dreamvid")
    print(f"dreamvid's order: mean {other_mean:.5f}, largest {other_largest:.4f}")
    assert other_mean > 5 * mean, (other_mean, mean)


def test_deforums_diffusion_cadence_is_dreamvids_cadence_except_on_a_video_input(tmp_path):
    result, s = imported(tmp_path)  # the fixture's diffusion_cadence: 2
    assert result.data["defaults"]["cadence"] == 2 and s.params(0).cadence == 2
    settings = {**json.loads(DEFORUM.read_text()), "diffusion_cadence": "3"}  # the web UI's text field
    (tmp_path / "three.txt").write_text(json.dumps(settings))
    assert import_file(tmp_path / "three.txt", tmp_path / "three.yaml").data["defaults"]["cadence"] == 3
    del settings["diffusion_cadence"]
    (tmp_path / "none.txt").write_text(json.dumps(settings))
    assert "cadence" not in import_file(tmp_path / "none.txt", tmp_path / "none.yaml").data["defaults"]
    (tmp_path / "clip.mp4").write_bytes(b"")
    video = {**settings, "animation_mode": "Video Input", "video_init_path": "clip.mp4", "diffusion_cadence": 2}
    (tmp_path / "video.txt").write_text(json.dumps(video))
    result = import_file(tmp_path / "video.txt", tmp_path / "video.yaml")
    assert "cadence" not in result.data["defaults"]
    assert any(n.startswith("diffusion_cadence: 2: dreamvid dreams every frame of a video input") for n in result.notes)


# ------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("content, expected", [
    ("not json at all", "line 1, column 1: not JSON (Expecting value); expected a Deforum settings file"),
    ('{"max_frames": 10, "zoom": "0: (1.0', "not JSON"),  # a truncated file
    ('[1, 2, 3]', "got a list at the top level; expected a Deforum settings file"),
    ('{"name": "a tsconfig", "compilerOptions": {}}', "JSON with neither rendered_frames nor max_frames"),
    ('{"options": {"output_fps": 12}, "rendered_frames": []}', "rendered_frames: got a list; expected a non-empty"),
    ('{"max_frames": "ten"}', "max_frames: got 'ten'; expected the frame count, an integer"),
    ('{"max_frames": 10, "zoom": 1.5e999}', "zoom: got inf; expected a number or a Deforum keyframe string"),
    ('{"max_frames": 10, "fps": NaN}', "NaN is not a number JSON allows"),
    ('{"max_frames": 10, "zoom": "0: (where(t > 3, 1, 2))"}', "zoom: keyframe 0: unknown function 'where'"),
    ('{"max_frames": 10, "angle": ["0: (1)"]}', "angle: got a list; expected a Deforum keyframe string"),
    ('{"max_frames": 10, "diffusion_cadence": 0}', "diffusion_cadence: got 0; expected frames per diffusion, an integer"),
    ('{"max_frames": 10, "zoom": "0: (-1)"}', "the imported schedule would not load"),
    ('{"options": {"output_fps": 12}, "rendered_frames": [{"frame": 0, "zoom_delta": 1}, {"frame": 2}]}',
     "rendered_frames: frame 1 is missing"),
    ('{"options": {"output_fps": 12}, "rendered_frames": [{"frame": 0, "zoom_delta": "1.0"}]}',
     "rendered_frames[0].zoom_delta: got '1.0'; expected a finite number"),
])
def test_a_bad_file_is_one_line_and_nothing_is_written(tmp_path, content, expected):
    path = tmp_path / "in.txt"
    path.write_text(content)
    with pytest.raises(ImportError_) as info:
        import_file(path, tmp_path / "out.yaml")
    assert len(info.value.messages) == 1 and expected in info.value.messages[0], info.value.messages
    assert info.value.messages[0].startswith(str(path) + ": ")
    assert not (tmp_path / "out.yaml").exists()


def test_the_command_writes_the_schedule_lists_what_it_left_and_refuses_bad_files(tmp_path):
    out = tmp_path / "deforum.yaml"
    r = run_here("import", DEFORUM, "-o", out, "--layers", "mixed3 mixed4+mixed4:97")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out} (Deforum settings: 48 frames at 12 fps, 2 segments)")
    assert "  not carried: prompts = a mapping" in r.stdout
    data = yaml.safe_load(out.read_text())
    assert data["version"] == 1 and data["defaults"]["camera"] == "deforum"
    assert [s["layers"] for s in data["segments"]] == [{"mixed3": 1.0}, {"mixed4": 1.0, "mixed4:97": 1.0}]
    assert data["input"] == os.path.relpath((DEFORUM.parent / "logo.png").resolve(), out.parent.resolve())  # from the schedule
    assert [p.name for p in tmp_path.iterdir()] == ["deforum.yaml"]  # no temp file left
    before = out.read_text()
    again = run_here("import", PARSEQ, "-o", out)  # a file is there: refused, untouched
    assert again.returncode == 2 and "a file is already there" in again.stderr and out.read_text() == before
    bad = tmp_path / "bad.txt"
    bad.write_text('{"max_frames": 5, "W": true}')
    r = run_here("import", bad, "-o", tmp_path / "bad.yaml")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"dreamvid: error: {bad}: W: got true; expected the width in pixels, an integer 32..8192"]
    assert not (tmp_path / "bad.yaml").exists()


def test_write_import_replaces_only_when_told(tmp_path):
    result = import_file(PARSEQ, tmp_path / "p.yaml")
    write_import(result, tmp_path / "p.yaml")
    with pytest.raises(dreamvid.InputError):
        write_import(result, tmp_path / "p.yaml")
    assert write_import(result, tmp_path / "p.yaml", force=True).read_text() == result.text


def test_an_imported_camera_that_moves_on_across_segments_is_no_jump(tmp_path):
    """Segments without a transition, a camera that goes on smoothly (a formula of t, a line
    between keys): validate warns of no jump (it warned at every segment start before); the
    fixture's real jump (the angle's sine gives way to s/7 = 1 degree at frame 32) it names."""
    _, s = imported(tmp_path)
    assert len(s.segments) == 3 and all(seg.transition == 0 for seg in s.segments)
    jumps = s.camera_jumps()
    assert len(jumps) == 1 and "segments[2]: rotate jumps from -0.421445 to 1 at frame 32" in jumps[0]
    data = imported(tmp_path)[0].data
    data["segments"][1]["zoom"] = 1.2  # another real jump
    jumps = parse_schedule(data, source=tmp_path / "j.yaml", check_files=False).camera_jumps()
    assert len(jumps) == 3 and "segments[1]: zoom jumps" in jumps[0]


def test_validate_warns_where_s_reads_like_deforums_seed(tmp_path):
    from dreamvid.api import validate
    from tests.conftest import write_schedule

    path = write_schedule(tmp_path, defaults={"iterations": 0, "zoom": "0: (1.0 + 0.01*s/max_f)",
                                              "rotate": "0: (s)", "step": "0.01 + 0.001*sin(s)"})
    seen = []
    validate(str(path), callback=seen.append)
    lines = [p.message for p in seen if p.event == "warning" and "reads s" in p.message]
    assert len(lines) == 2 and "'1.0 + 0.01*s/max_f' reads s, which is seconds in dreamvid" in lines[0]
    assert "'s' reads s" in lines[1]  # sin(s) alone is seconds as dreamvid means them: no warning


def test_a_manifest_inside_deforum_settings_brings_its_frames_and_rate_by_default(tmp_path):
    settings = json.loads(DEFORUM.read_text())
    settings["parseq_manifest"] = PARSEQ.read_text()  # parseq_non_schedule_overrides: true, as Deforum defaults
    path = tmp_path / "with-manifest.txt"
    path.write_text(json.dumps(settings))
    result, s = imported(tmp_path, path)
    rows = json.loads(PARSEQ.read_text())["rendered_frames"]
    assert s.total_frames == len(rows) and s.size == (256, 144)
    assert [s.params(n).rotate for n in range(len(rows))] == pytest.approx([r["angle_delta"] for r in rows])
    assert "parseq_manifest: its 36 frames at 12 fps replace the settings' 48 at 12" in "\n".join(result.notes)


def test_more_layer_terms_than_frames_are_said_to_be_left_out(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(json.dumps({"max_frames": 2, "zoom": "0: (1.01)"}))
    result = import_file(path, tmp_path / "short.yaml", layers="mixed0 mixed3 mixed4")
    assert [seg["frames"] for seg in result.data["segments"]] == [1, 1]
    assert "--layers: 3 terms for 2 frames: the last 1 left out" in "\n".join(result.notes)
