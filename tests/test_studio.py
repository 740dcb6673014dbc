"""dreamvid studio: the API behind the page (Starlette's TestClient) and the server process.

Tiny schedules (64x64, 1 iteration, 1 octave, a few frames); renders run in real background
processes, as in use. The page itself is driven in Chromium by tests/test_studio_e2e.py.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("starlette", reason="the studio extra (pip install 'dreamvid[studio]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import dreamvid  # noqa: E402
from dreamvid.media.read import read_frames  # noqa: E402
from dreamvid.studio.app import Studio, create_app  # noqa: E402
from dreamvid.studio.checks import key_lines  # noqa: E402
from dreamvid.studio.previews import Cancelled, Previewer  # noqa: E402
from tests.conftest import ENV, run_cli  # noqa: E402

SCHEDULE = {
    "input": "in.png",
    "output": "out/video.mp4",
    "size": [64, 64],
    "fps": 10,
    "seed": 1,
    "checkpoint_every": 4,
    "defaults": {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05},
    "segments": [{"frames": 12, "layers": {"mixed0": 1.0}}, {"frames": 12, "layers": {"mixed3": 1.0}, "transition": 4}],
}


def make_folder(folder: Path, **changes) -> Path:
    """A studio folder holding ``s.yaml`` (the tiny schedule, with ``changes``) and its input."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "in.png"), skimage.data.coffee()[::6, ::6, ::-1])
    (folder / "s.yaml").write_text(yaml.safe_dump({**SCHEDULE, **changes}, sort_keys=False))
    return folder


@pytest.fixture()
def folder(tmp_path):
    return make_folder(tmp_path / "studio")


@pytest.fixture()
def studio(folder):
    s = Studio(folder)
    yield s
    s.close()
    assert s.renders.wait_all(120)


@pytest.fixture()
def client(studio):
    return TestClient(create_app(studio, allowed_hosts=["testserver"]), headers={"X-Dreamvid-Token": studio.token})


def one_line_error(r, status):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert "\n" not in error and "Traceback" not in error and error
    return error


# ------------------------------------------------------------------------------ security


def test_every_request_needs_the_token(studio):
    app = create_app(studio, allowed_hosts=["testserver"])
    bare = TestClient(app)
    for path in ("/", "/api/state", "/static/app.js", "/api/file?name=s.yaml"):
        assert "no token" in one_line_error(bare.get(path), 403)
    before = (studio.folder.root / "s.yaml").read_text()
    assert "no token" in one_line_error(bare.post("/api/save", json={"name": "s.yaml", "text": "x: 1\n"}), 403)
    assert (studio.folder.root / "s.yaml").read_text() == before
    wrong = TestClient(app, headers={"X-Dreamvid-Token": studio.token[:-1] + ("A" if studio.token[-1] != "A" else "B")})
    assert "wrong token" in one_line_error(wrong.get("/api/state"), 403)

    # the printed URL: ?token= sets a cookie and drops the token from the address
    r = bare.get(f"/?token={studio.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert studio.cookie in r.cookies and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert bare.get("/").status_code == 200  # the cookie now
    assert "dreamvid studio" in bare.get("/").text
    assert bare.get("/api/file?name=s.yaml").json()["text"] == before

    open_studio = Studio(studio.folder.root, token=None)  # --no-token
    assert TestClient(create_app(open_studio, allowed_hosts=["testserver"])).get("/api/state").status_code == 200


def test_posts_are_json_from_the_page_and_gets_change_nothing(client, studio):
    before = (studio.folder.root / "s.yaml").read_text()
    r = client.post("/api/save", data={"name": "s.yaml", "text": "x: 1\n"})  # a form post from any page
    assert "JSON" in one_line_error(r, 415)
    r = client.post("/api/save", json={"name": "s.yaml", "text": "x: 1\n"}, headers={"Origin": "http://evil.example"})
    assert "another site" in one_line_error(r, 403)
    assert (studio.folder.root / "s.yaml").read_text() == before
    for path in ("/api/save", "/api/render", "/api/new", "/api/stop", "/api/preview"):
        one_line_error(client.get(path + "?name=s.yaml&text=x"), 405)
    assert (studio.folder.root / "s.yaml").read_text() == before and not (studio.folder.root / "out").exists()
    one_line_error(client.put("/api/save", json={"name": "s.yaml", "text": ""}), 405)
    one_line_error(client.post("/api/save", content=b"{not json", headers={"Content-Type": "application/json"}), 400)
    one_line_error(client.post("/api/save", json=["s.yaml"]), 400)
    one_line_error(client.get("/nowhere"), 404)
    # a page on another host name (DNS rebinding) is refused whatever it sends
    assert client.get("/api/state", headers={"Host": "evil.example"}).status_code == 400


def test_only_files_inside_the_folder_are_read_or_written(client, studio, tmp_path):
    root = studio.folder.root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("secret: 1\n")
    (outside / "v.mp4").write_bytes(b"not a video")
    os.symlink(outside / "secret.yaml", root / "link.yaml")  # a symlink inside pointing out
    os.symlink(outside, root / "linkdir")  # a folder symlink pointing out
    os.symlink(outside / "v.mp4", root / "v.mp4")
    names = ["../outside/secret.yaml", str(outside / "secret.yaml"), "link.yaml", "linkdir/secret.yaml",
             "sub/../../outside/secret.yaml", "~/secret.yaml", "..\\outside\\secret.yaml", "s.yaml\0.yaml"]
    for name in names:
        r = client.get("/api/file", params={"name": name})
        assert r.status_code in (400, 403), (name, r.text)
        assert "secret: 1" not in r.text
        one_line_error(r, r.status_code)
        r = client.post("/api/save", json={"name": name, "text": "pwned: 1\n"})
        assert r.status_code in (400, 403), (name, r.text)
        r = client.post("/api/new", json={"name": name.replace("secret", "fresh")})
        assert r.status_code in (400, 403), (name, r.text)
    # encoded slashes and dots, as raw URLs
    for raw in ("/api/file?name=..%2Foutside%2Fsecret.yaml", "/api/file?name=%2e%2e%2foutside%2fsecret.yaml",
                "/api/file?name=%2Fetc%2Fpasswd", "/api/file?name=..%252Foutside%252Fsecret.yaml",
                "/api/video?name=..%2Foutside%2Fv.mp4", "/api/video?name=v.mp4", "/api/video?name=linkdir%2Fv.mp4",
                "/static/..%2F..%2Fapp.py", "/static/%2e%2e/%2e%2e/app.py"):  # fmt: skip
        r = client.get(raw)
        assert 400 <= r.status_code < 500, (raw, r.status_code)
        assert "secret: 1" not in r.text and "not a video" not in r.text and "Starlette" not in r.text
    assert (outside / "secret.yaml").read_text() == "secret: 1\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.yaml", "v.mp4"]
    assert client.get("/api/state").json()["renders"][0]["schedule"] == "s.yaml"  # link.yaml is not listed


def test_a_schedule_naming_files_outside_is_refused(client, studio, tmp_path):
    import skimage.data

    cv2.imwrite(str(tmp_path / "secret.png"), skimage.data.camera()[::8, ::8])
    text = yaml.safe_dump({**SCHEDULE, "input": "../secret.png"}, sort_keys=False)
    r = client.post("/api/check", json={"name": "s.yaml", "text": text}).json()
    assert not r["ok"]
    (p,) = r["problems"]
    assert p["message"].startswith("s.yaml: input: ") and "outside the studio folder" in p["message"]
    assert p["line"] == 1
    r = client.post("/api/preview", json={"name": "s.yaml", "text": text, "frame": 0, "scale": 0.5})
    assert "outside the studio folder" in one_line_error(r, 422)
    text = yaml.safe_dump({**SCHEDULE, "output": str(tmp_path / "out.mp4")}, sort_keys=False)
    client.post("/api/save", json={"name": "s.yaml", "text": text}).raise_for_status()
    assert "outside the studio folder" in one_line_error(client.post("/api/render", json={"name": "s.yaml"}), 422)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.mp4.parts").exists()
    segments = [{**SCHEDULE["segments"][0], "guide": "../secret.png"}, SCHEDULE["segments"][1]]
    text = yaml.safe_dump({**SCHEDULE, "mask": "../secret.png", "segments": segments}, sort_keys=False)
    messages = [p["message"] for p in client.post("/api/check", json={"name": "s.yaml", "text": text}).json()["problems"]]
    assert any(m.startswith("s.yaml: segments[0].guide: ") and "outside the studio folder" in m for m in messages)
    assert any(m.startswith("s.yaml: mask: ") and "outside the studio folder" in m for m in messages)


def test_schedules_are_read_with_the_safe_loader(client):
    text = "input: !!python/object/apply:os.system ['touch /tmp/dreamvid-pwned']\n" + yaml.safe_dump(SCHEDULE)
    r = client.post("/api/check", json={"name": "s.yaml", "text": text}).json()
    assert not r["ok"] and "not allowed" in r["problems"][0]["message"] and r["problems"][0]["line"] == 1
    assert not Path("/tmp/dreamvid-pwned").exists()


# ---------------------------------------------------------------------------- validation


def test_validation_gives_the_cli_messages_with_their_lines(client, folder):
    good = (folder / "s.yaml").read_text()
    r = client.post("/api/check", json={"name": "s.yaml", "text": good}).json()
    assert r["ok"] and r["problems"] == [] and r["total_frames"] == 24 and r["size"] == [64, 64]
    assert r["summary"] == dreamvid.validate(folder / "s.yaml")

    lines = good.splitlines()
    bad = good.replace("fps: 10", "fps: -1").replace("mixed3: 1.0", "mixed9x: 1.0")
    r = client.post("/api/check", json={"name": "s.yaml", "text": bad}).json()
    (folder / "bad.yaml").write_text(bad)
    with pytest.raises(dreamvid.ScheduleError) as cli:
        dreamvid.load_schedule(folder / "bad.yaml")
    expected = [m.replace(str(folder / "bad.yaml"), "s.yaml", 1) for m in cli.value.messages]
    assert [p["message"] for p in r["problems"]] == expected  # the CLI's lines, word for word
    assert [p["line"] for p in r["problems"]] == [lines.index("fps: 10") + 1,
                                                  next(i for i, line in enumerate(lines) if "mixed3" in line) + 1]
    # a YAML syntax error, a duplicate key, a missing key (its parent's line)
    r = client.post("/api/check", json={"name": "s.yaml", "text": good.replace("fps: 10", "fps: [10")}).json()
    assert "not valid YAML" in r["problems"][0]["message"] and r["problems"][0]["line"] is not None
    r = client.post("/api/check", json={"name": "s.yaml", "text": good + "fps: 12\n"}).json()
    assert "duplicate key" in r["problems"][0]["message"] and r["problems"][0]["line"] == len(lines) + 1
    no_frames = good.replace("- frames: 12\n  layers:\n    mixed0", "- layers:\n    mixed0")
    assert no_frames != good
    r = client.post("/api/check", json={"name": "s.yaml", "text": no_frames}).json()
    assert r["problems"][0]["message"].startswith("s.yaml: segments[0].frames: missing required key")
    assert lines[r["problems"][0]["line"] - 1].startswith("- ")
    # a one-word text is YAML, never a path to read
    r = client.post("/api/check", json={"name": "s.yaml", "text": "/etc/passwd"}).json()
    assert not r["ok"] and "at the top level" in r["problems"][0]["message"]


def test_key_lines_follow_the_yaml_nodes():
    text = ("size: [64, 64]\nsegments:\n  - frames: 3\n    zoom: {0: 1.0, 2: 1.1}\n"
            "  - frames: 4\n    layers:\n      'mixed4:97': 1\n")
    lines = key_lines(text)
    assert lines["size"] == 1 and lines["segments"] == 2 and lines["segments[0]"] == 3
    assert lines["segments[0].zoom"] == 4 and lines["segments[0].zoom[2]"] == 4
    assert lines["segments[1]"] == 5 and lines["segments[1].layers.mixed4:97"] == 7
    assert key_lines("a: [") == {}


def test_new_and_save_write_schedules_in_the_folder(client, folder):
    r = client.post("/api/new", json={"name": "logo.yaml"})
    assert r.json() == {"name": "logo.yaml", "created": True}
    text = (folder / "logo.yaml").read_text()
    checked = client.post("/api/check", json={"name": "logo.yaml", "text": text}).json()
    assert checked["ok"] and checked["total_frames"] == 90 and "90 frames" in checked["summary"]
    assert "exists" in one_line_error(client.post("/api/new", json={"name": "logo.yaml"}), 409)
    assert "folder does not exist" in one_line_error(client.post("/api/new", json={"name": "no/logo.yaml"}), 404)
    assert "ending in .yaml" in one_line_error(client.post("/api/new", json={"name": "logo.txt"}), 400)
    edited = text.replace("fps: 15", "fps: 12")
    assert client.post("/api/save", json={"name": "logo.yaml", "text": edited}).json()["saved"]
    assert (folder / "logo.yaml").read_text() == edited
    assert [r["schedule"] for r in client.get("/api/state").json()["renders"]] == ["logo.yaml", "s.yaml"]
    assert not [p for p in folder.iterdir() if ".partial" in p.name]  # written atomically, nothing left over


# ------------------------------------------------------------------------------- previews


def test_preview_is_the_api_frame_and_is_cached(client, studio, folder):
    text = (folder / "s.yaml").read_text()
    r = client.post("/api/preview", json={"name": "s.yaml", "text": text, "frame": 3, "scale": 0.5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["x-frame"] == "3"
    got = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    expected = dreamvid.preview(dreamvid.load_schedule(folder / "s.yaml"), 3, scale=0.5, progress=False)
    assert got.shape == (32, 32, 3) and np.array_equal(got, expected)
    dreamed = studio.previewer.dreamed
    assert dreamed == 4  # frames 0..3, each cached on the way
    r = client.post("/api/preview", json={"name": "s.yaml", "text": text, "frame": 1, "scale": 0.5})
    assert r.status_code == 200 and studio.previewer.dreamed == dreamed  # from the cache
    edited = text.replace("seed: 1", "seed: 2")
    client.post("/api/preview", json={"name": "s.yaml", "text": edited, "frame": 1, "scale": 0.5}).raise_for_status()
    assert studio.previewer.dreamed == dreamed + 2  # another schedule: dreamed anew
    r = client.post("/api/preview", json={"name": "s.yaml", "text": text, "frame": 20, "scale": 0.5})
    assert one_line_error(r, 422) == ("frame 20 at scale 0.5 is 32x32 pixels (less at its coarser octaves): too small "
                                      "for its layers; expected a larger scale")  # mixed3 needs more than 32 pixels
    for frame, scale in ((24, 0.5), (-1, 0.5), ("2", 0.5), (1, 0.3)):
        one_line_error(client.post("/api/preview", json={"name": "s.yaml", "text": text, "frame": frame,
                                                          "scale": scale}), 400)  # fmt: skip


SHIPPED = Path(__file__).resolve().parents[1] / "schedules"


def test_the_shipped_schedules_check_preview_and_say_how_to_render(tmp_path):
    """The README's `dreamvid studio schedules/`: the shipped schedules write ../out/, outside
    the folder; they check and preview all the same, Render says how to fix it in one line, and
    the job file is listed as a job file, not as a broken schedule."""
    import shutil

    folder = tmp_path / "repo" / "schedules"
    shutil.copytree(SHIPPED, folder)
    studio = Studio(folder)
    client = TestClient(create_app(studio, allowed_hosts=["testserver"]), headers={"X-Dreamvid-Token": studio.token})
    rows = {r["schedule"]: r for r in client.get("/api/state").json()["renders"]}
    assert rows["logo-batch.yaml"]["state"] == "job file" and "dreamvid batch" in rows["logo-batch.yaml"]["message"]
    assert [n for n, r in rows.items() if r["state"] == "invalid"] == []
    assert rows["demo.yaml"]["state"] == "outside" and rows["demo.yaml"]["total"] == 90
    text = (folder / "demo.yaml").read_text()
    r = client.post("/api/check", json={"name": "demo.yaml", "text": text}).json()
    assert r["ok"], r["problems"]
    r = client.post("/api/preview", json={"name": "demo.yaml", "text": text, "frame": 0, "scale": 0.25})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    error = one_line_error(client.post("/api/render", json={"name": "demo.yaml"}), 422)
    assert error == (f"demo.yaml: output: {tmp_path / 'repo' / 'out' / 'demo.mp4'} is outside the studio folder; "
                     f"expected a path inside {folder} to render here (e.g. output: out/demo.mp4), or run "
                     f"`dreamvid render {folder / 'demo.yaml'}` in a terminal")  # fmt: skip
    assert not (tmp_path / "repo" / "out").exists()
    studio.close()


def test_the_newest_frame_of_a_render_is_in_the_state_and_served(client, folder):
    """A render (here or in a terminal) keeps its work folder's peek.jpg current; the page gets
    its frame number in the state and the picture from /api/peek."""
    from dreamvid.rendering.peek import Peek
    from dreamvid.rendering.workdir import peek_path

    r = client.get("/api/peek", params={"name": "s.yaml"})
    assert one_line_error(r, 404) == "s.yaml: its render has shown no frame yet"
    work = folder / "out" / "video.mp4.parts"
    work.mkdir(parents=True)
    (work / "ckpt-00000003.pt").write_bytes(b"")  # a stopped render, as the list reads it: by its file names
    rgb = np.full((64, 64, 3), 200, np.uint8)
    Peek([peek_path(work)], every=0.0)(3, 24, rgb)
    (row,) = client.get("/api/state").json()["renders"]
    assert row["state"] == "stopped" and row["peek"]["frame"] == 4 and row["peek"]["total"] == 24
    r = client.get("/api/peek", params={"name": "s.yaml", "v": row["peek"]["version"]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == peek_path(work).read_bytes()


def test_motion_and_estimate_answer_for_the_editors_text(client, studio, folder, tmp_path):
    text = (folder / "s.yaml").read_text()
    r = client.post("/api/motion", json={"name": "s.yaml", "text": text})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    (tmp_path / "m.mp4").write_bytes(r.content)
    frames = read_frames(tmp_path / "m.mp4")
    assert len(frames) == 24 and frames[0].shape == (64, 64, 3)
    assert client.post("/api/motion", json={"name": "s.yaml", "text": text}).content == r.content  # kept
    assert not (folder / "out").exists()  # nothing written into the folder
    bad = text.replace("fps: 10", "fps: -1")
    assert "fps: -1 is out of range" in one_line_error(client.post("/api/motion", json={"name": "s.yaml",
                                                                                         "text": bad}), 422)  # fmt: skip
    e = client.post("/api/estimate", json={"name": "s.yaml", "text": text}).json()
    assert e["text"].startswith("estimate: ") and e["seconds"] > e["frame_seconds"] > 0


def test_a_new_preview_cancels_the_one_in_progress(tmp_path):
    folder = make_folder(tmp_path, segments=[{"frames": 400, "layers": {"mixed0": 1.0}}])
    s = dreamvid.load_schedule(folder / "s.yaml")
    previewer = Previewer()
    outcome = {}

    def slow():
        try:
            previewer.png(s, "k", 399, 0.25)
            outcome["slow"] = "finished"
        except Cancelled:
            outcome["slow"] = "cancelled"

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.time() + 120
    while previewer.dreamed < 2:
        assert time.time() < deadline and t.is_alive()
        time.sleep(0.01)
    png = previewer.png(s, "k", 1, 0.5)  # the slider moved
    t.join(60)
    assert outcome["slow"] == "cancelled" and previewer.dreamed < 300
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (32, 32, 3)
    assert previewer.cached("k", 1, 0.25) is not None  # what it had dreamed is kept


# -------------------------------------------------------------------------------- renders


def same_video(a, b):
    fa, fb = read_frames(a), read_frames(b)
    return len(fa) == len(fb) == 24 and all(np.array_equal(x, y) for x, y in zip(fa, fb))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted render of the tiny schedule, by ``dreamvid render``."""
    folder = make_folder(tmp_path_factory.mktemp("reference"))
    r = run_cli("render", folder / "s.yaml", "--quiet")
    assert r.returncode == 0, r.stderr
    return folder / "out" / "video.mp4"


def ffmpeg_writing_into(folder: Path) -> list[int]:
    """Live ffmpeg processes whose command line names ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"ffmpeg" in cmd.split(b"\0", 1)[0] and str(folder).encode() in cmd and state not in "ZX":
            found.append(int(entry))
    return found


def row(state_json, name="s.yaml"):
    return next(r for r in state_json["renders"] if r["schedule"] == name)


def wait_for(get, until, timeout=240):
    deadline = time.time() + timeout
    while True:
        value = get()
        if until(value):
            return value
        assert time.time() < deadline, value
        time.sleep(0.1)


def test_render_stop_and_resume_to_the_same_video(client, studio, folder, reference):
    r = client.post("/api/render", json={"name": "s.yaml"})
    assert r.status_code == 200 and r.json()["state"] == "starting"
    # a second Render of the same output is refused, as `dreamvid render` refuses it
    error = one_line_error(client.post("/api/render", json={"name": "s.yaml"}), 409)
    assert re.search(r"out/video\.mp4\.parts: another dreamvid \(pid \d+\) is rendering into this folder", error)
    state = lambda: row(client.get("/api/state").json())  # noqa: E731
    # stopped early (after its first dreamed frame): the other 22 frames leave the stop time to arrive
    running = wait_for(state, lambda r: r["state"] == "running" and r["frame"] >= 2, timeout=240)
    assert running["total"] == 24 and running["fps"] > 0 and running["eta"] >= 0
    assert client.post("/api/stop", json={"name": "s.yaml"}).json()["state"] == "stopping"
    stopped = wait_for(state, lambda r: r["state"] == "stopped")
    assert 2 <= stopped["frame"] < 24 and stopped["message"] == f"stopped at frame {stopped['frame']} of 24"
    assert not (folder / "out" / "video.mp4").exists() and not ffmpeg_writing_into(folder)
    assert "no render" in one_line_error(client.post("/api/stop", json={"name": "s.yaml"}), 409)

    client.post("/api/render", json={"name": "s.yaml"}).raise_for_status()  # Resume
    done = wait_for(state, lambda r: r["state"] in ("done", "failed"))
    assert done["state"] == "done", done
    assert done["video"]["name"] == "out/video.mp4"
    assert same_video(folder / "out" / "video.mp4", reference)
    r = client.get("/api/video", params={"name": "out/video.mp4"}, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100
    assert r.content == (folder / "out" / "video.mp4").read_bytes()[:100]


def test_a_render_whose_studio_is_gone_stops_with_a_checkpoint(folder):
    """The studio killed outright (kill -9) closes the render's stdin: the render stops as on Ctrl-C."""
    job = subprocess.Popen([sys.executable, "-m", "dreamvid.studio.job", str(folder / "s.yaml"), "--root", str(folder)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)  # fmt: skip
    events = []
    for line in job.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "frame" and events[-1]["frame"] >= 2:
            break
    assert [e["event"] for e in events[:2]] == ["launched", "start"] and events[1]["total"] == 24
    job.stdin.close()  # what the kernel does when the studio dies
    rest = [json.loads(line) for line in job.stdout]
    assert job.wait(120) == 130, job.stderr.read()
    assert rest[-1]["event"] == "error" and rest[-1]["code"] == 130 and rest[-1]["message"].startswith("stopped; ")
    assert list((folder / "out" / "video.mp4.parts").glob("ckpt-*.pt")) and not ffmpeg_writing_into(folder)


class Server:
    """``dreamvid studio FOLDER --port 0`` in a process of its own."""

    def __init__(self, folder: Path, log: Path | None = None):
        """``log``: a file for the server's stderr (default: a pipe read at the end)."""
        self.log = open(log, "w") if log else subprocess.PIPE
        self.proc = subprocess.Popen([sys.executable, "-m", "dreamvid", "studio", str(folder), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=ENV)  # fmt: skip
        lines = [self.proc.stdout.readline() for _ in range(2)]
        match = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", lines[1])
        assert match, (lines, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url, self.token = match.groups()
        self.http = httpx.Client(base_url=self.url, headers={"X-Dreamvid-Token": self.token}, timeout=60)

    def state(self):
        return row(self.http.get("/api/state").json())

    def stop(self, sig=signal.SIGTERM, timeout=120) -> int:
        self.http.close()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self.log is not subprocess.PIPE:
            self.log.close()
        return code


def read_events(server: Server, count: int, out: list):
    with httpx.stream("GET", server.url + "api/events", headers={"X-Dreamvid-Token": server.token},
                      timeout=60) as r:  # fmt: skip
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(line[6:])
                if len(out) == count:
                    return


def test_stopping_the_server_checkpoints_its_renders_and_a_restart_resumes(tmp_path, reference):
    folder = make_folder(tmp_path / "studio")
    server = Server(folder)
    try:
        server.http.post("/api/render", json={"name": "s.yaml"}).raise_for_status()
        seen = []
        read_events(server, 1, seen)  # a page opens, then closes: the render goes on
        assert row(json.loads(seen[0]))["state"] in ("starting", "running")
        running = wait_for(server.state, lambda r: r["state"] == "running" and r["frame"] >= 2)
        assert server.http.post("/api/render", json={"name": "s.yaml"}).status_code == 409
        pid = running["pid"]
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.proc.stderr.read()
    with pytest.raises(ProcessLookupError):  # the render ended with the server
        os.kill(pid, 0)
    assert not ffmpeg_writing_into(folder)
    assert list((folder / "out" / "video.mp4.parts").glob("ckpt-*.pt"))
    assert not (folder / "out" / "video.mp4").exists()

    server = Server(folder)  # a restart: the render is listed as stopped, and Resume finishes it
    try:
        stopped = server.state()
        assert stopped["state"] == "stopped" and 2 <= stopped["frame"] < 24, stopped
        tabs = [[], []]
        readers = [threading.Thread(target=read_events, args=(server, 1, tab)) for tab in tabs]
        for t in readers:
            t.start()
        for t in readers:
            t.join(60)
        assert tabs[0] == tabs[1] and row(json.loads(tabs[0][0])) == stopped  # two tabs, one state
        server.http.post("/api/render", json={"name": "s.yaml"}).raise_for_status()
        done = wait_for(server.state, lambda r: r["state"] in ("done", "failed"))
        assert done["state"] == "done", done
    finally:
        assert server.stop(signal.SIGINT) == 0
    assert same_video(folder / "out" / "video.mp4", reference)


# ---------------------------------------------------------------------------------- the CLI


def test_studio_without_its_extra_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['starlette'] = None; from dreamvid.cli import main; "
            f"sys.exit(main(['studio', {str(tmp_path)!r}]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("dreamvid: error: dreamvid studio needs starlette; install the extra: "
                                "pip install 'dreamvid[studio]'")  # fmt: skip


def test_a_busy_port_or_a_missing_folder_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("studio", tmp_path, "--port", port, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"dreamvid: error: cannot listen on 127.0.0.1:{port} (")
    r = run_cli("studio", tmp_path / "nowhere", timeout=60)
    assert r.returncode == 2
    assert r.stderr == f"dreamvid: error: {tmp_path / 'nowhere'}: not a folder; expected the folder of your schedules\n"


HOLD_LEASE = """
import sys, time
from pathlib import Path
from dreamvid.rendering.lease import exclusive
from dreamvid.rendering.workdir import make
make(Path(sys.argv[1]))
with exclusive(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_render_started_elsewhere_shows_as_running_and_refuses_a_second(client, studio, folder):
    """A `dreamvid render` in a terminal holds the work folder's lease (the same lease module the
    studio reads): the page lists it as running elsewhere with its pid, never as stopped at its
    last checkpoint, and Render is refused in one line instead of queueing behind the lease."""
    from dreamvid.rendering.workdir import work_dir

    work = work_dir(folder / "out" / "video.mp4")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(work), "60"], stdout=subprocess.PIPE, text=True,
                              env=ENV)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        (work / "ckpt-00000003.pt").write_bytes(b"a checkpoint of the terminal render")  # it has saved frames
        state = row(client.get("/api/state").json())
        assert state["state"] == "running", state
        assert state["message"] == f"rendering elsewhere (pid {holder.pid})" and state["pid"] == holder.pid
        error = one_line_error(client.post("/api/render", json={"name": "s.yaml"}), 409)
        assert f"another dreamvid (pid {holder.pid}) is rendering into this folder" in error
        assert not studio.renders.jobs  # nothing was started behind the lease
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed): its lease is dead at once, and the next scan shows its checkpoint
    wait_for(lambda: row(client.get("/api/state").json()), lambda r: r["state"] == "stopped", timeout=10)
